//! `unit`: a systemd service unit for a conf, for users who move from
//! hand-run daemons to systemd. systemd then runs `nodaemon`, which notifies
//! it (`Type=notify`) once `:main-function` has returned.

use std::fmt::Write as _;
use std::path::Path;

use nix::sys::signal::Signal;

use crate::config::{Conf, RestartPolicy};

/// The unit text for `conf`, run by the tool at `tool` (absolute).
/// `stop_signal` is the runner's first stop signal when the conf gives no
/// stop schedule.
pub fn unit(conf: &Conf, tool: &Path, stop_signal: Signal) -> String {
    let spec = &conf.spec;
    let conf_path = conf.path.display();
    let name = spec.name.clone().unwrap_or_else(|| {
        conf.path
            .file_stem()
            .map_or("daemon".into(), |s| s.to_string_lossy().into_owned())
    });
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
    let _ = writeln!(out, "KillSignal={}", first.signal.as_str());
    let _ = writeln!(out, "TimeoutStopSec={}", seconds(before_kill.max(1.0)));
    let restart = match spec.restart {
        RestartPolicy::Never => "no",
        RestartPolicy::OnFailure => "on-failure",
        RestartPolicy::Always => "always",
    };
    let _ = writeln!(out, "Restart={restart}");
    if spec.restart != RestartPolicy::Never {
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
