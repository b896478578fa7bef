//! What the daemon layer found or did, as facts: a command's `Fact`, a
//! supervisor's `Supervision`, and `status -v`'s `Details`. The daemon
//! layer returns them; `crate::report` alone words them (a result line, a
//! plist, JSON, an exit code).

use std::path::PathBuf;

/// `status -v`, like `systemctl status`: the daemon's process, its Lisp,
/// its files and its last output lines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Details {
    pub name: Option<String>,
    /// The Lisp and its version (`SBCL 2.2.9.debian`).
    pub lisp: Option<String>,
    pub conf: PathBuf,
    /// When the Lisp process started (seconds since the epoch) and how long
    /// it has run.
    pub since: Option<u64>,
    pub uptime: Option<std::time::Duration>,
    /// Its resident memory, in KiB.
    pub rss_kib: Option<u64>,
    pub output: Option<PathBuf>,
    /// The last lines of `:output`.
    pub last_lines: Vec<String>,
    /// The saved core and whether it is fresh (`:core`).
    pub core: Option<String>,
    /// How many processes the daemon is (its whole tree), and the cgroup
    /// that holds them, if it has one.
    pub processes: Option<u64>,
    pub cgroup: Option<PathBuf>,
    /// What the image said of itself on its control socket, if it has one.
    pub image: Option<Image>,
    /// The control socket (for SLIME), when the daemon has one.
    pub control_socket: Option<PathBuf>,
}

/// The image's own word on its control socket (`status -v`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Image {
    Answered(ImageFacts),
    NotAnswering(String),
}

/// What only the Lisp knows: its `fact`s, as it gave them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageFacts {
    pub heap_used: Option<u64>,
    pub heap_limit: Option<u64>,
    pub gc_count: Option<u64>,
    pub gc_seconds: Option<String>,
    pub uptime_seconds: Option<u64>,
    pub threads: Vec<String>,
    pub systems: Vec<String>,
}

/// What a supervisor says of the Lisp it runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Supervision {
    pub lisp_pid: Option<i32>,
    pub restarts: u32,
    pub last_exit: Option<String>,
    /// Its Lisp said it is ready.
    pub ready: bool,
}

/// What a daemon command found or did, in the daemon layer's words;
/// `Outcome::of` alone makes it a result line, a plist, JSON and an exit
/// code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fact {
    /// The daemon runs (`status`).
    Runs {
        pid: i32,
        supervision: Option<Supervision>,
        /// Not ready yet (`:ready`): started, and not said so.
        activating: bool,
        /// Its Lisp is stopped by a signal (SIGSTOP): it serves nothing.
        stopped: bool,
    },
    /// A pid file remains, but no daemon runs.
    Stale {
        pid: Option<i32>,
    },
    NoPidFile,
    /// `:main-function` returned.
    Started {
        pid: i32,
    },
    AlreadyRunning {
        pid: i32,
        /// The service manager's unit that runs it, if one does.
        unit: Option<String>,
    },
    /// A service manager runs the daemon (`unit`): stopping it here would
    /// fight the manager.
    Managed {
        pid: i32,
        unit: String,
        /// What to run instead.
        instead: &'static str,
    },
    /// Alive, but not ready within the start timeout.
    StillInitializing {
        pid: i32,
        /// How long start waited.
        waited: std::time::Duration,
        /// What it waited for (`:ready`).
        awaiting: crate::config::Readiness,
    },
    /// A function of the conf signalled: the Lisp's report.
    FunctionError {
        report: String,
    },
    /// The daemon died before it was ready: how.
    Died {
        how: String,
    },
    /// The set-up before exec failed.
    SetupFailed {
        message: String,
    },
    /// The daemon broke the readiness protocol (its Lisp runs the
    /// daemon's code, so it may say anything): it was ended, with its tree.
    ProtocolBroken {
        message: String,
    },
    LispNotFound {
        message: String,
    },
    /// The stop schedule ended the daemon.
    Stopped {
        pid: i32,
    },
    /// Nothing ran: a stale pid file was removed.
    WasNotRunning {
        pid: Option<i32>,
    },
    /// The stop schedule ran out with the daemon alive.
    StillRunning {
        pid: i32,
        schedule: String,
    },
    /// The pid file is gone (and no daemon it named runs).
    Zapped,
    /// `zap` refused: the daemon runs.
    ZapRefused {
        pid: i32,
    },
    /// The tool itself failed (a syscall, a refused file).
    Failed {
        message: String,
    },
    /// `try-restart` of a daemon that does not run: nothing to do.
    NothingToRestart,
    /// `:reload-function` returned in the daemon.
    Reloaded {
        pid: i32,
    },
    /// `restart` with `:listen`: the new Lisp failed (or was not ready in
    /// time) and was ended, or none was started (`error` says why); the
    /// old one (`serving`, when one is ready) goes on.
    ReplaceFailed {
        pid: i32,
        serving: Option<i32>,
        error: String,
    },
    /// It signalled: the Lisp's report.
    ReloadError {
        pid: i32,
        report: String,
    },
    /// A supervisor gave up at `:start-limit` (its record stays until
    /// `start`, `stop` or `zap`).
    GaveUp {
        restarts: u32,
        last_exit: Option<String>,
    },
    /// The conf has no `:reload-function`.
    NoReloadFunction,
}

impl From<super::DaemonError> for Fact {
    /// A step of the tool that failed: a Lisp that is not installed is a
    /// fact of its own (LSB's exit 5), anything else a failure.
    fn from(error: super::DaemonError) -> Fact {
        match error {
            super::DaemonError::LispNotFound { .. } => Fact::LispNotFound {
                message: error.to_string(),
            },
            error => Fact::Failed {
                message: error.to_string(),
            },
        }
    }
}
