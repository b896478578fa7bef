//! `unit`: a systemd service unit for a conf, for users who move from
//! hand-run daemons to systemd. systemd then runs `nodaemon`, which notifies
//! it (`Type=notify`) once `:main-function` has returned.

use std::fmt::Write as _;
use std::path::Path;

use nix::sys::signal::Signal;

use crate::config::{Conf, RestartPolicy};

/// The unit's name: the conf's `:name`, else its file's stem, with what a
/// unit name cannot hold made `-` (`Conf::service_name`).
pub fn unit_name(conf: &Conf) -> String {
    conf.service_name()
}

/// What to do with the unit, for stderr: where to save it and the
/// systemctl commands.
pub fn next_steps(conf: &Conf) -> String {
    let name = unit_name(conf);
    format!(
        "Save it as /etc/systemd/system/{name}.service, then:\n  \
         systemctl daemon-reload\n  \
         systemctl enable --now {name}\n"
    )
}

/// Why a unit should not run the tool at `tool`, if it lies in a
/// temporary or a home directory (gone, or someone else's, at boot).
pub fn misplaced_tool(tool: &Path, home: Option<&Path>) -> Option<&'static str> {
    let temporary = ["/tmp/", "/var/tmp/", "/dev/shm/"];
    let homes = ["/home/", "/root/"];
    let text = tool.to_string_lossy();
    if temporary.iter().any(|t| text.starts_with(t)) {
        Some("a temporary directory")
    } else if homes.iter().any(|h| text.starts_with(h)) || home.is_some_and(|h| tool.starts_with(h))
    {
        Some("a home directory")
    } else {
        None
    }
}

/// The unit text for `conf`, run by the tool at `tool` (absolute).
/// `stop_signal` is the runner's first stop signal when the conf gives no
/// stop schedule.
pub fn unit(conf: &Conf, tool: &Path, stop_signal: Signal) -> String {
    let spec = &conf.spec;
    let conf_path = conf.path.display();
    let name = spec.name.clone().unwrap_or_else(|| unit_name(conf));
    let mut out = format!(
        "# systemd unit for the daemonization conf {conf_path}\n\
         # (made by `daemonization {conf_path} unit`)\n\
         [Unit]\n\
         Description={name} (daemonization)\n\
         After=network.target\n\
         {limit}\
         \n\
         [Service]\n\
         Type=notify\n\
         NotifyAccess=main\n\
         ExecStart={} {} nodaemon\n",
        quote(&tool.display().to_string()),
        quote(&conf_path.to_string()),
        limit = spec
            .start_limit
            .map_or(String::new(), |(starts, within)| format!(
                "StartLimitBurst={starts}\nStartLimitIntervalSec={}\n",
                seconds(within.as_secs_f64())
            )),
    );
    if let Some(user) = &spec.user {
        let _ = writeln!(out, "User={user}");
    }
    if let Some(group) = &spec.group {
        let _ = writeln!(out, "Group={group}");
    }
    if spec.user.is_some() && spec.listen_privileged_ports {
        out.push_str("AmbientCapabilities=CAP_NET_BIND_SERVICE\n");
    }
    let _ = writeln!(out, "UMask={:04o}", spec.umask());
    let _ = writeln!(
        out,
        "TimeoutStartSec={}",
        seconds(spec.start_timeout().as_secs_f64())
    );
    // systemd sends KillSignal=, waits TimeoutStopSec=, then SIGKILL: the
    // schedule's first signal, and its waits before SIGKILL.
    let schedule = spec.stop_schedule(stop_signal);
    let first = schedule.first();
    let before_kill: f64 = schedule
        .steps
        .iter()
        .take_while(|s| s.signal != Signal::SIGKILL)
        .map(|s| s.timeout.as_secs_f64())
        .sum();
    if spec.reload_function.is_some() {
        // `reload` waits for :reload-function's verdict: a failed reload
        // fails `systemctl reload`.
        let _ = writeln!(out, "ExecReload={} {conf_path} reload", tool.display());
    }
    // The stop signal to the tool, which stops the Lisp as its stop
    // schedule says; SIGKILL to the whole unit only at the end.
    out.push_str("KillMode=mixed\n");
    let _ = writeln!(out, "KillSignal={}", first.signal.as_str());
    let _ = writeln!(out, "TimeoutStopSec={}", seconds(before_kill.max(1.0)));
    // The watchdog's kill is a failure systemd restarts.
    let policy = match (spec.restart, spec.watchdog) {
        (RestartPolicy::Never, Some(_)) => RestartPolicy::OnFailure,
        (restart, _) => restart,
    };
    let restart = match policy {
        RestartPolicy::Never => "no",
        RestartPolicy::OnFailure => "on-failure",
        RestartPolicy::Always => "always",
    };
    let _ = writeln!(out, "Restart={restart}");
    // The supervisor sends WATCHDOG=1 each time the Lisp answers.
    if let Some((every, misses)) = spec.watchdog {
        let _ = writeln!(
            out,
            "WatchdogSec={}",
            seconds((every * misses).as_secs_f64().max(1.0))
        );
    }
    if policy != RestartPolicy::Never {
        let _ = writeln!(
            out,
            "RestartSec={}",
            seconds(spec.restart_delay().as_secs_f64())
        );
    }
    out.push_str("\n[Install]\nWantedBy=multi-user.target\n");
    out
}

fn seconds(secs: f64) -> String {
    let mut text = format!("{secs:.3}");
    while text.ends_with('0') {
        text.pop();
    }
    text.trim_end_matches('.').to_string()
}

/// A word of `ExecStart=`, quoted when it holds spaces or quotes.
fn quote(word: &str) -> String {
    if word
        .chars()
        .any(|c| c.is_whitespace() || c == '"' || c == '\\')
    {
        format!("\"{}\"", word.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        word.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::misplaced_tool;
    use std::path::Path;

    #[test]
    fn a_tool_in_a_temporary_or_home_directory_is_misplaced() {
        let home = Some(Path::new("/srv/me"));
        let place = |p: &str| misplaced_tool(Path::new(p), home);
        assert_eq!(place("/tmp/x/daemonization"), Some("a temporary directory"));
        assert_eq!(
            place("/home/ann/src/target/release/daemonization"),
            Some("a home directory")
        );
        assert_eq!(place("/srv/me/bin/daemonization"), Some("a home directory"));
        assert_eq!(place("/usr/bin/daemonization"), None);
        assert_eq!(place("/usr/local/bin/daemonization"), None);
        assert_eq!(place("/tmpfoo/daemonization"), None);
    }
}
