//! Outcomes → what the user sees: the original's one-line message, the
//! result property list (`--print plist`), JSON, and the exit code.

use std::fmt::Write as _;
use std::path::PathBuf;

pub use crate::args::PrintStyle;
use crate::command::{Command, Exits};
use crate::reader::lisp_string;
use crate::visible;

pub use crate::daemon::{Details, Fact, Image, ImageFacts, Supervision};

/// Exit codes, following the LSB init-script conventions.
pub mod exit {
    pub const OK: u8 = 0;
    /// Generic failure; also `status`: not running but the pid file remains.
    pub const FAILED: u8 = 1;
    /// Invalid or excess arguments, unknown command.
    pub const USAGE: u8 = 2;
    /// Unimplemented feature; also `status`: not running.
    pub const NOT_RUNNING: u8 = 3;
    /// The user lacks the privileges for what the conf asks.
    pub const PRIVILEGE: u8 = 4;
    /// `status`: the status cannot be told (LSB 4).
    pub const STATUS_UNKNOWN: u8 = 4;
    /// The program (the Lisp) is not installed.
    pub const NOT_INSTALLED: u8 = 5;
    /// The program is not configured: a conf error (LSB 6).
    pub const CONF_ERROR: u8 = 6;
    /// `reload`: the daemon is not running (LSB 7).
    pub const PROGRAM_NOT_RUNNING: u8 = 7;
    /// `reload`: unimplemented, no `:reload-function` (LSB 3).
    pub const UNIMPLEMENTED: u8 = 3;
}

/// Which of the conf's functions a start's report says signalled: its
/// line `(a condition of type T, signalled by :KEY)` (the bootstrap's
/// `failure-text`).
fn function_reason(report: &str) -> Reason {
    let by = report
        .lines()
        .find(|l| l.starts_with("(a condition of type ") && l.contains(", signalled by :"))
        .and_then(|l| l.rsplit(", signalled by ").next());
    match by {
        Some(":preload)") => Reason::PreloadError,
        Some(":before-init-fn)") => Reason::BeforeInitError,
        _ => Reason::MainFunctionError,
    }
}

/// Why a command ended as it did, in the original's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    AlreadyRunning,
    MainFunctionError,
    /// `:preload` signalled (loading a system or file).
    PreloadError,
    /// `:before-init-fn` signalled.
    BeforeInitError,
    Died,
    LispNotFound,
    InternalError,
    NoPidFile,
    NotRunning,
    Running,
    ServiceUnavailable,
    /// Ready was not reported within the start timeout; the daemon is alive.
    StillInitializing,
    /// `reload` of a conf without `:reload-function`.
    Unimplemented,
    /// `:reload-function` signalled.
    ReloadFunctionError,
    /// A supervisor gave up at `:start-limit`.
    StartLimit,
    /// A service manager runs the daemon: stop and restart go through it.
    ManagedBySystemd,
}

impl Reason {
    pub fn name(self) -> &'static str {
        match self {
            Reason::AlreadyRunning => "already-running",
            Reason::MainFunctionError => "main-function-error",
            Reason::PreloadError => "preload-error",
            Reason::BeforeInitError => "before-init-fn-error",
            Reason::Died => "died",
            Reason::LispNotFound => "lisp-not-found",
            Reason::InternalError => "internal-error",
            Reason::NoPidFile => "no-pid-file",
            Reason::NotRunning => "not-running",
            Reason::Running => "running",
            Reason::ServiceUnavailable => "service-unavailable",
            Reason::StillInitializing => "still-initializing",
            Reason::Unimplemented => "unimplemented",
            Reason::ReloadFunctionError => "reload-function-error",
            Reason::StartLimit => "start-limit",
            Reason::ManagedBySystemd => "managed-by-systemd",
        }
    }
}

/// The outcome of one command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub command: Command,
    /// Success or failure; for `status`, whether the daemon runs.
    pub ok: bool,
    pub reason: Option<Reason>,
    pub pid: Option<i32>,
    pub pid_file: PathBuf,
    /// What went wrong, for stderr (`ERROR: ...`).
    pub error: Option<String>,
    /// What the user must act on although the command succeeded, for
    /// stderr (`WARNING: ...`).
    pub warning: Option<String>,
    pub exit: u8,
    /// For a supervised daemon: its Lisp.
    pub supervision: Option<Supervision>,
    /// `status`: the daemon runs but has not said it is ready (`:ready`).
    pub activating: bool,
    /// `status`: its Lisp is stopped by a signal (SIGSTOP).
    pub stopped: bool,
    /// `status -v`: what a person wants to know of a daemon.
    pub details: Option<Details>,
}

impl Details {
    /// The block printed after the status line.
    pub fn block(&self, outcome: &Outcome) -> String {
        let mut out = String::new();
        let mut field = |name: &str, value: String| {
            let _ = writeln!(out, "  {:<12}{value}", format!("{name}:"));
        };
        field("name", self.name.clone().unwrap_or_else(|| "(none)".into()));
        let state = match (outcome.ok, self.since, self.uptime) {
            (true, Some(since), Some(up)) => format!(
                "{} since {} ({})",
                outcome.status().unwrap_or("running"),
                utc(since),
                span(up)
            ),
            (true, _, _) => outcome.status().unwrap_or("running").into(),
            (false, _, _) => outcome.line().split(" (").next().unwrap_or("").to_string(),
        };
        field("state", state);
        if let Some(pid) = outcome.pid {
            match &outcome.supervision {
                Some(s) => {
                    let lisp = s.lisp_pid.map_or("none now".into(), |p| p.to_string());
                    let last = s
                        .last_exit
                        .as_deref()
                        .map_or(String::new(), |e| format!(", last exit: {e}"));
                    field("main pid", format!("{lisp} (the Lisp)"));
                    field(
                        "supervisor",
                        format!("{pid}: {} restarts{last}", s.restarts),
                    );
                }
                None => field("main pid", pid.to_string()),
            }
        }
        if let Some(n) = self.processes {
            field("processes", n.to_string());
        }
        if let Some(cgroup) = &self.cgroup {
            field("cgroup", cgroup.display().to_string());
        }
        if let Some(kib) = self.rss_kib {
            field("memory", format!("{:.1} MiB resident", kib as f64 / 1024.0));
        }
        if let Some(lisp) = &self.lisp {
            field("lisp", lisp.clone());
        }
        if let Some(core) = &self.core {
            field("core", core.clone());
        }
        field("conf", self.conf.display().to_string());
        field("pid file", outcome.pid_file.display().to_string());
        match &self.image {
            Some(Image::Answered(facts)) => {
                for (name, value) in facts.lines() {
                    field(name, value);
                }
            }
            Some(Image::NotAnswering(why)) => {
                field("image", format!("not answering: {}", visible::line(why)))
            }
            None => {}
        }
        if let Some(socket) = &self.control_socket {
            field("control", socket.display().to_string());
        }
        match &self.output {
            Some(output) => field("output", output.display().to_string()),
            None => field("output", "not captured (set :output)".into()),
        }
        for line in &self.last_lines {
            let _ = writeln!(out, "    {line}");
        }
        out
    }

    fn plist(&self) -> String {
        let text = |s: Option<&str>| s.map_or("nil".to_string(), lisp_string);
        let number = |n: Option<u64>| n.map_or("nil".to_string(), |n| n.to_string());
        let lines: Vec<String> = self.last_lines.iter().map(|l| lisp_string(l)).collect();
        format!(
            " :name {} :lisp {} :conf {} :since {} :uptime {} :rss-kib {} :output {} :last-lines ({}) :core {} :processes {} :cgroup {}",
            text(self.name.as_deref()),
            text(self.lisp.as_deref()),
            lisp_string(&self.conf.display().to_string()),
            number(self.since),
            number(self.uptime.map(|u| u.as_secs())),
            number(self.rss_kib),
            text(
                self.output
                    .as_ref()
                    .map(|o| o.display().to_string())
                    .as_deref()
            ),
            lines.join(" "),
            text(self.core.as_deref()),
            number(self.processes),
            text(
                self.cgroup
                    .as_ref()
                    .map(|c| c.display().to_string())
                    .as_deref()
            )
        )
    }

    fn add_to(&self, json: &mut serde_json::Value) {
        json["name"] = serde_json::json!(self.name);
        json["lisp"] = serde_json::json!(self.lisp);
        json["conf"] = serde_json::json!(self.conf.display().to_string());
        json["since"] = serde_json::json!(self.since);
        json["uptime"] = serde_json::json!(self.uptime.map(|u| u.as_secs()));
        json["rss-kib"] = serde_json::json!(self.rss_kib);
        json["output"] = serde_json::json!(self.output.as_ref().map(|o| o.display().to_string()));
        json["last-lines"] = serde_json::json!(self.last_lines);
        json["core"] = serde_json::json!(self.core);
        json["processes"] = serde_json::json!(self.processes);
        json["cgroup"] = serde_json::json!(self.cgroup.as_ref().map(|c| c.display().to_string()));
        json["control-socket"] = serde_json::json!(
            self.control_socket
                .as_ref()
                .map(|c| c.display().to_string())
        );
        json["image"] = match &self.image {
            Some(Image::Answered(f)) => serde_json::json!({
                "heap-used": f.heap_used,
                "heap-limit": f.heap_limit,
                "gc-count": f.gc_count,
                "gc-seconds": f.gc_seconds,
                "uptime-seconds": f.uptime_seconds,
                "threads": f.threads,
                "systems": f.systems,
            }),
            Some(Image::NotAnswering(why)) => serde_json::json!({ "not-answering": why }),
            None => serde_json::Value::Null,
        };
    }
}

impl ImageFacts {
    /// The `status -v` fields of what the image said.
    fn lines(&self) -> Vec<(&'static str, String)> {
        let mib = |b: u64| format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0));
        let mut lines = Vec::new();
        let mut image = Vec::new();
        match (self.heap_used, self.heap_limit) {
            (Some(used), Some(limit)) => {
                image.push(format!("heap {} of {}", mib(used), mib(limit)))
            }
            (Some(used), None) => image.push(format!("heap {}", mib(used))),
            _ => {}
        }
        if let Some(n) = self.gc_count {
            let time = self
                .gc_seconds
                .as_deref()
                .map_or(String::new(), |s| format!(" ({} s)", visible::line(s)));
            image.push(format!("{n} GCs{time}"));
        }
        if let Some(up) = self.uptime_seconds {
            image.push(format!("up {}", span(std::time::Duration::from_secs(up))));
        }
        if !image.is_empty() {
            lines.push(("image", image.join(", ")));
        }
        let shown = |items: &[String]| {
            let names: Vec<String> = items.iter().take(20).map(|t| visible::line(t)).collect();
            let more = items.len().saturating_sub(20);
            match more {
                0 => names.join(", "),
                n => format!("{}, and {n} more", names.join(", ")),
            }
        };
        lines.push((
            "threads",
            format!("{} ({})", self.threads.len(), shown(&self.threads)),
        ));
        if !self.systems.is_empty() {
            lines.push((
                "systems",
                format!("{} ({})", self.systems.len(), shown(&self.systems)),
            ));
        }
        lines
    }
}

/// `2026-11-29T21:30:01Z`.
fn utc(epoch: u64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch);
    humantime::format_rfc3339_seconds(time).to_string()
}

/// `5m 3s`, `3days 2h 1m` (whole seconds).
fn span(d: std::time::Duration) -> String {
    humantime::format_duration(std::time::Duration::from_secs(d.as_secs())).to_string()
}

impl Outcome {
    /// The outcome of `command` that found or did `fact`.
    pub fn of(command: Command, fact: Fact, pid_file: PathBuf) -> Outcome {
        use Fact::*;
        let (ok, reason, pid) = match &fact {
            Runs { pid, .. } | Started { pid } | Stopped { pid } => (true, None, Some(*pid)),
            Stale { pid } => (false, Some(Reason::ServiceUnavailable), *pid),
            NoPidFile => (false, Some(Reason::NoPidFile), None),
            GaveUp { .. } => (false, Some(Reason::StartLimit), None),
            AlreadyRunning { pid, .. } => (true, Some(Reason::AlreadyRunning), Some(*pid)),
            Managed { pid, .. } => (false, Some(Reason::ManagedBySystemd), Some(*pid)),
            StillInitializing { pid, .. } => (true, Some(Reason::StillInitializing), Some(*pid)),
            FunctionError { report } => (false, Some(function_reason(report)), None),
            Died { .. } => (false, Some(Reason::Died), None),
            SetupFailed { .. } | ProtocolBroken { .. } | Failed { .. } => {
                (false, Some(Reason::InternalError), None)
            }
            LispNotFound { .. } => (false, Some(Reason::LispNotFound), None),
            WasNotRunning { pid } => (false, Some(Reason::NotRunning), *pid),
            StillRunning { pid, .. } | ZapRefused { pid } => {
                (false, Some(Reason::Running), Some(*pid))
            }
            Zapped => (true, None, None),
            NothingToRestart => (true, Some(Reason::NotRunning), None),
            Reloaded { pid } => (true, None, Some(*pid)),
            ReloadError { pid, .. } => (false, Some(Reason::ReloadFunctionError), Some(*pid)),
            ReplaceFailed { pid, .. } => (false, Some(Reason::Died), Some(*pid)),
            NoReloadFunction => (false, Some(Reason::Unimplemented), None),
        };
        let mut outcome = Outcome::new(command, ok, reason, pid, pid_file);
        match fact {
            Runs {
                supervision,
                activating,
                stopped,
                ..
            } => {
                outcome.supervision = supervision;
                outcome.activating = activating;
                outcome.stopped = stopped;
                if stopped {
                    outcome.exit = exit::FAILED;
                    outcome.error = Some(
                        "the daemon's Lisp is stopped by a signal (SIGSTOP): it serves nothing \
                         until it gets SIGCONT (kill -CONT)"
                            .to_string(),
                    );
                }
            }
            // What a Lisp said, or a message naming what a user made:
            // shown, never raw (see `visible`).
            FunctionError { report: text }
            | Died { how: text }
            | SetupFailed { message: text }
            | LispNotFound { message: text }
            | Failed { message: text }
            | ReloadError { report: text, .. } => outcome.error = Some(visible::block(&text)),
            ProtocolBroken { message } => {
                outcome.error = Some(format!(
                    "the daemon's Lisp {}; it was ended, with every process it started",
                    visible::block(&message)
                ))
            }
            AlreadyRunning {
                unit: Some(unit), ..
            } => {
                outcome.warning = Some(format!(
                    "{}: start, stop and restart it with systemctl",
                    runs_it(&unit)
                ));
            }
            Managed { unit, instead, .. } => {
                let how = match unit.ends_with(".service") {
                    true => format!("use `{instead} {unit}`"),
                    false => "use the service manager".to_string(),
                };
                outcome.error = Some(format!(
                    "{}: {how} (done here, the manager would start it again, \
                     or run a second copy beside it)",
                    runs_it(&unit)
                ));
            }
            GaveUp { last_exit, .. } => {
                outcome.error = Some(format!(
                    "the supervisor gave up at :start-limit; the Lisp {}. \
                     Fix it and start it again (zap or stop clears this record)",
                    visible::line(last_exit.as_deref().unwrap_or("failed"))
                ));
            }
            NoReloadFunction => {
                outcome.error = Some(
                    "the conf has no :reload-function, so there is nothing to call: add one \
                     (for example #.(lambda () (asdf:load-system :my-site))), or use restart"
                        .to_string(),
                )
            }
            ReplaceFailed { serving, error, .. } => {
                let error = visible::line(&error);
                outcome.error = Some(match serving {
                    Some(p) => format!("{error}; the old Lisp (pid {p}) keeps serving"),
                    None => error,
                });
            }
            StillRunning { pid, schedule } => {
                outcome.error = Some(format!(
                    "process {pid} is still running at the end of the stop schedule {schedule}; \
                     end it with the kill command (SIGKILL), or give it longer with --retry"
                ));
            }
            ZapRefused { pid } => {
                outcome.error = Some(format!(
                    "the daemon (pid = {pid}) runs: stop it first (the stop command, or kill); \
                     zap is for the pid file of a daemon that died (zap --force ends it, then removes it)"
                ));
            }
            StillInitializing {
                waited, awaiting, ..
            } => {
                let secs = waited.as_secs_f64();
                let more = "if it only needs longer, give start more time with --timeout or :start-timeout";
                outcome.warning = Some(match awaiting {
                    crate::config::Readiness::Returned => format!(
                        "the daemon is still initializing: :main-function has not returned within {secs} s. \
                         It must return once the service is up (start the server, then return), \
                         or say so itself with :ready :notify and (daemonization:ready); {more}"
                    ),
                    crate::config::Readiness::Notify => format!(
                        "the daemon is still initializing: it has not said it is ready within {secs} s \
                         (:ready :notify: call (daemonization:ready), or send READY=1 to $NOTIFY_SOCKET, \
                         once the service is up); {more}"
                    ),
                    crate::config::Readiness::Port { port, address } => format!(
                        "the daemon is still initializing: nothing answered on {address} port {port} \
                         within {secs} s (:ready (:port {port})); {more}"
                    ),
                });
            }
            _ => {}
        }
        outcome
    }

    pub fn new(
        command: Command,
        ok: bool,
        reason: Option<Reason>,
        pid: Option<i32>,
        pid_file: PathBuf,
    ) -> Outcome {
        let exit = exit_code(command, ok, reason);
        Outcome {
            command,
            ok,
            reason,
            pid,
            pid_file,
            error: None,
            warning: None,
            exit,
            supervision: None,
            activating: false,
            stopped: false,
            details: None,
        }
    }

    /// The one line the original printed, e.g.
    /// `success started (pid = 42 pid-file = /run/x.pid)`.
    pub fn line(&self) -> String {
        let mut line = match self.command {
            Command::Status => self.status().unwrap_or_default().to_string(),
            command => format!(
                "{} {}",
                if self.ok { "success" } else { "failed" },
                command.past()
            ),
        };
        match self.reason {
            Some(Reason::StillInitializing) | None => {}
            Some(reason) => {
                let _ = write!(line, " - {}", reason.name());
            }
        }
        let pid = self.pid.map(|p| format!("pid = {p} ")).unwrap_or_default();
        let _ = write!(line, " ({pid}pid-file = {})", self.pid_file.display());
        if self.reason == Some(Reason::StillInitializing) {
            line.push_str(" - still initializing");
        }
        if let Some(s) = &self.supervision {
            let lisp = s.lisp_pid.map_or("none".to_string(), |p| p.to_string());
            let _ = write!(
                line,
                " - supervising (lisp-pid = {lisp} restarts = {}",
                s.restarts
            );
            if let Some(exit) = &s.last_exit {
                let _ = write!(line, " last-exit = {}", crate::visible::line(exit));
            }
            line.push(')');
        }
        line
    }

    fn result(&self) -> Option<&'static str> {
        match self.command {
            Command::Status => None,
            _ => Some(if self.ok { "success" } else { "failed" }),
        }
    }

    fn status(&self) -> Option<&'static str> {
        match self.command {
            Command::Status => Some(match (self.ok, self.activating, self.reason) {
                (true, _, _) if self.stopped => "stopped",
                (true, false, _) => "running",
                (true, true, _) => "activating",
                (false, _, Some(Reason::StartLimit)) => "failed",
                (false, _, _) => "not-running",
            }),
            _ => None,
        }
    }

    /// The original's result property list, readable by CL `read`.
    pub fn plist(&self) -> String {
        let text = |s: Option<&str>| s.map_or("nil".to_string(), lisp_string);
        let supervision = self.supervision.as_ref().map_or(String::new(), |s| {
            format!(
                " :lisp-pid {} :restarts {} :last-exit {}",
                s.lisp_pid.map_or("nil".to_string(), |p| p.to_string()),
                s.restarts,
                text(s.last_exit.as_deref())
            )
        });
        let details = self.details.as_ref().map_or(String::new(), Details::plist);
        format!(
            "(:result {} :command {} :status {} :reason {} :pid {} :pid-file {}{supervision}{details} :line {})",
            text(self.result()),
            lisp_string(self.command.name()),
            text(self.status()),
            text(self.reason.map(Reason::name)),
            self.pid.map_or("nil".to_string(), |p| p.to_string()),
            lisp_string(&self.pid_file.display().to_string()),
            lisp_string(&self.line()),
        )
    }

    /// The same fields as JSON.
    pub fn json(&self) -> String {
        let mut json = serde_json::json!({
            "result": self.result(),
            "command": self.command.name(),
            "status": self.status(),
            "reason": self.reason.map(Reason::name),
            "pid": self.pid,
            "pid-file": self.pid_file.display().to_string(),
            "line": self.line(),
        });
        if let Some(s) = &self.supervision {
            json["lisp-pid"] = serde_json::json!(s.lisp_pid);
            json["restarts"] = serde_json::json!(s.restarts);
            json["last-exit"] = serde_json::json!(s.last_exit);
        }
        if let Some(details) = &self.details {
            details.add_to(&mut json);
        }
        json.to_string()
    }
}

/// Who runs a daemon of a service manager: its unit, when known.
fn runs_it(unit: &str) -> String {
    match unit.ends_with(".service") {
        true => format!("systemd runs this daemon as {}", visible::line(unit)),
        false => "a service manager runs this daemon (nodaemon under NOTIFY_SOCKET)".to_string(),
    }
}

/// LSB: 4 for insufficient privilege, 6 for a conf naming what is not there.
pub fn identity_exit(error: &crate::daemon::identity::IdentityError) -> u8 {
    use crate::daemon::identity::IdentityError;
    match error {
        IdentityError::DeniedUser { .. } | IdentityError::DeniedGroup { .. } => exit::PRIVILEGE,
        _ => exit::CONF_ERROR,
    }
}

/// The LSB exit code of an outcome, by the command's row (`Exits`).
fn exit_code(command: Command, ok: bool, reason: Option<Reason>) -> u8 {
    match (command.row().exits, ok, reason) {
        (Exits::Status, true, _) => exit::OK,
        (Exits::Status, false, Some(Reason::NoPidFile)) => exit::NOT_RUNNING,
        (Exits::Status, false, Some(Reason::InternalError)) => exit::STATUS_UNKNOWN,
        (Exits::Status, false, _) => exit::FAILED,
        (Exits::Reloading, true, _) => exit::OK,
        (
            Exits::Reloading,
            false,
            Some(Reason::NoPidFile | Reason::ServiceUnavailable | Reason::NotRunning),
        ) => exit::PROGRAM_NOT_RUNNING,
        (Exits::Reloading, false, Some(Reason::Unimplemented)) => exit::UNIMPLEMENTED,
        (_, true, _) => exit::OK,
        // Stopping, killing or zapping what is not running leaves the wanted state.
        (Exits::Ending, false, Some(Reason::NoPidFile | Reason::NotRunning)) => exit::OK,
        (_, false, Some(Reason::LispNotFound)) => exit::NOT_INSTALLED,
        (_, false, _) => exit::FAILED,
    }
}

/// Prints an outcome: the result on stdout, any error on stderr.
pub fn print(outcome: &Outcome, style: PrintStyle) {
    match style {
        PrintStyle::Simple => {
            println!("{}", outcome.line());
            if let Some(details) = &outcome.details {
                print!("{}", details.block(outcome));
            }
        }
        PrintStyle::Plist => println!("{}", outcome.plist()),
        PrintStyle::Json => println!("{}", outcome.json()),
        PrintStyle::None => {}
    }
    if let Some(warning) = &outcome.warning {
        eprintln!("WARNING: {warning}");
    }
    if let Some(error) = &outcome.error {
        eprintln!("ERROR: {error}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reasons the Lisp library (lisp/daemonized.lisp) reads from the
    /// tool's plist are reasons the tool gives.
    #[test]
    fn the_lisp_librarys_reasons_are_the_tools() {
        use Reason::*;
        let all = [
            AlreadyRunning,
            MainFunctionError,
            PreloadError,
            BeforeInitError,
            Died,
            LispNotFound,
            InternalError,
            NoPidFile,
            NotRunning,
            Running,
            ServiceUnavailable,
            StillInitializing,
            Unimplemented,
            ReloadFunctionError,
            StartLimit,
            ManagedBySystemd,
        ];
        // A new reason is added to `all` (the match has no wildcard).
        for reason in all {
            match reason {
                AlreadyRunning | MainFunctionError | PreloadError | BeforeInitError | Died
                | LispNotFound | InternalError | NoPidFile | NotRunning | Running
                | ServiceUnavailable | StillInitializing | Unimplemented | ReloadFunctionError
                | StartLimit | ManagedBySystemd => {}
            }
        }
        let names: Vec<&str> = all.iter().map(|r| r.name()).collect();
        let library = include_str!("../lisp/daemonized.lisp");
        let read: Vec<&str> = library
            .split("(equal reason \"")
            .skip(1)
            .map(|rest| &rest[..rest.find('"').unwrap()])
            .collect();
        assert!(read.len() >= 4, "{read:?}");
        for reason in read {
            assert!(
                names.contains(&reason),
                "the library reads a reason {reason:?} the tool never gives"
            );
        }
        for (key, word) in [("status", "running"), ("result", "success")] {
            assert!(library.contains(&format!("(equal {key} \"{word}\")")));
        }
    }

    fn outcome(command: Command, ok: bool, reason: Option<Reason>, pid: Option<i32>) -> Outcome {
        Outcome::new(command, ok, reason, pid, PathBuf::from("/run/x.pid"))
    }

    /// The daemon layer's facts become lines, errors, warnings and exit
    /// codes here alone.
    #[test]
    fn facts_become_outcomes() {
        let of = |command, fact| Outcome::of(command, fact, PathBuf::from("/run/x.pid"));
        let failed = of(
            Command::Status,
            Fact::Failed {
                message: "refusing it".into(),
            },
        );
        assert_eq!(
            (failed.line(), failed.exit, failed.error.as_deref()),
            (
                "not-running - internal-error (pid-file = /run/x.pid)".to_string(),
                exit::STATUS_UNKNOWN,
                Some("refusing it")
            )
        );
        let zapped = of(Command::Zap, Fact::Zapped);
        assert_eq!(zapped.line(), "success zapped (pid-file = /run/x.pid)");
        assert_eq!(zapped.warning, None, "quiet when it is done");
        let stuck = of(
            Command::Stop,
            Fact::StillRunning {
                pid: 9,
                schedule: "TERM/1".into(),
            },
        );
        assert_eq!(
            (stuck.line(), stuck.exit),
            (
                "failed stopped - running (pid = 9 pid-file = /run/x.pid)".to_string(),
                1
            )
        );
        let gone = of(Command::Kill, Fact::WasNotRunning { pid: Some(3) });
        assert_eq!(
            (gone.line(), gone.exit),
            (
                "failed killed - not-running (pid = 3 pid-file = /run/x.pid)".to_string(),
                0
            )
        );
    }

    #[test]
    fn dates_and_spans_read_as_people_write_them() {
        assert_eq!(utc(1_796_074_201), "2026-11-30T21:30:01Z");
        assert_eq!(span(std::time::Duration::from_millis(303_400)), "5m 3s");
    }

    #[test]
    fn lines_and_exit_codes_match_the_table() {
        use Command::*;
        use Reason::*;
        let cases = [
            (
                outcome(Start, true, None, Some(42)),
                "success started (pid = 42 pid-file = /run/x.pid)",
                0,
            ),
            (
                outcome(Start, true, Some(AlreadyRunning), Some(42)),
                "success started - already-running (pid = 42 pid-file = /run/x.pid)",
                0,
            ),
            (
                outcome(Start, false, Some(MainFunctionError), None),
                "failed started - main-function-error (pid-file = /run/x.pid)",
                1,
            ),
            (
                outcome(Start, false, Some(Died), None),
                "failed started - died (pid-file = /run/x.pid)",
                1,
            ),
            (
                outcome(Start, true, Some(StillInitializing), Some(42)),
                "success started (pid = 42 pid-file = /run/x.pid) - still initializing",
                0,
            ),
            (
                outcome(Start, false, Some(LispNotFound), None),
                "failed started - lisp-not-found (pid-file = /run/x.pid)",
                5,
            ),
            (
                outcome(Stop, true, None, Some(42)),
                "success stopped (pid = 42 pid-file = /run/x.pid)",
                0,
            ),
            (
                outcome(Stop, false, Some(NoPidFile), None),
                "failed stopped - no-pid-file (pid-file = /run/x.pid)",
                0,
            ),
            (
                outcome(Stop, false, Some(NotRunning), Some(42)),
                "failed stopped - not-running (pid = 42 pid-file = /run/x.pid)",
                0,
            ),
            (
                outcome(Kill, true, None, Some(42)),
                "success killed (pid = 42 pid-file = /run/x.pid)",
                0,
            ),
            (
                outcome(Zap, true, None, None),
                "success zapped (pid-file = /run/x.pid)",
                0,
            ),
            (
                outcome(Zap, false, Some(Running), Some(42)),
                "failed zapped - running (pid = 42 pid-file = /run/x.pid)",
                1,
            ),
            (
                outcome(Restart, true, None, Some(43)),
                "success restarted (pid = 43 pid-file = /run/x.pid)",
                0,
            ),
            (
                outcome(Status, true, None, Some(42)),
                "running (pid = 42 pid-file = /run/x.pid)",
                0,
            ),
            (
                outcome(Status, false, Some(ServiceUnavailable), Some(42)),
                "not-running - service-unavailable (pid = 42 pid-file = /run/x.pid)",
                1,
            ),
            (
                outcome(Status, false, Some(NoPidFile), None),
                "not-running - no-pid-file (pid-file = /run/x.pid)",
                3,
            ),
        ];
        for (outcome, line, exit) in cases {
            assert_eq!((outcome.line().as_str(), outcome.exit), (line, exit));
        }
    }

    #[test]
    fn plist_and_json_carry_the_same_fields() {
        let o = outcome(Command::Start, true, None, Some(42));
        assert_eq!(
            o.plist(),
            "(:result \"success\" :command \"start\" :status nil :reason nil :pid 42 :pid-file \"/run/x.pid\" :line \"success started (pid = 42 pid-file = /run/x.pid)\")"
        );
        assert_eq!(
            o.json(),
            r#"{"command":"start","line":"success started (pid = 42 pid-file = /run/x.pid)","pid":42,"pid-file":"/run/x.pid","reason":null,"result":"success","status":null}"#
        );
        let s = outcome(Command::Status, false, Some(Reason::NoPidFile), None);
        assert_eq!(
            s.plist(),
            "(:result nil :command \"status\" :status \"not-running\" :reason \"no-pid-file\" :pid nil :pid-file \"/run/x.pid\" :line \"not-running - no-pid-file (pid-file = /run/x.pid)\")"
        );
    }
}
