//! The typed daemon spec: what a merged conf means.

use std::path::PathBuf;
use std::time::Duration;

use super::schedule::StopSchedule;

/// Every key of a conf, typed. Filled key by key through the table in
/// `keys.rs`; a key no layer gives keeps the value of `DaemonSpec::default()`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DaemonSpec {
    pub pid_file: Option<PathBuf>,
    pub pid_file_dir: Option<Dir>,
    pub main_function: Option<LispCode>,
    pub before_init_fn: Option<LispCode>,
    pub before_parent_exit_fn: Option<LispCode>,
    pub name: Option<String>,
    pub user: Option<String>,
    pub group: Option<String>,
    /// Accepted for compatibility; it has no effect on the command line tool.
    pub exit: bool,
    pub listen_privileged_ports: bool,
    pub os_params: OsParams,
    pub parent_conf_file: Option<PathBuf>,
    pub parent_conf_file_dir: Option<Dir>,
    /// Set by the tool to the conf file given on the command line.
    pub conf_params_file: Option<PathBuf>,
    /// Extension: how long `start` waits for readiness.
    pub start_timeout: Option<Duration>,
    /// Extension: how long `stop` waits before SIGKILL.
    pub stop_timeout: Option<Duration>,
    /// Extension: the file the daemon's stdout and stderr are appended to.
    pub output: Option<PathBuf>,
    /// Extension: ASDF's output cache, created and given to the daemon's user.
    pub fasl_dir: Option<PathBuf>,
    /// Extension: the signals `stop` sends, and how long it waits after each.
    pub stop_schedule: Option<StopSchedule>,
    /// Extension: when a supervisor restarts the Lisp.
    pub restart: RestartPolicy,
    /// Extension: when a starting daemon is ready.
    pub ready: Readiness,
    /// Extension: listening sockets held across restarts.
    pub listen: Vec<Listen>,
    /// Extension: called in the daemon when it is stopped, before it exits
    /// (stop accepting, finish what is in flight).
    pub stop_function: Option<LispCode>,
    /// Extension: the control socket (`None`: the default, on).
    pub control: Option<bool>,
    /// Extension: the watchdog, every `.0`, restarting after `.1` misses.
    pub watchdog: Option<(Duration, u32)>,
    /// Extension: what the watchdog's question calls in the daemon.
    pub watchdog_check: Option<LispCode>,
    /// Derived by the loader: the control socket's directory (the pid
    /// file's name and `.control`, beside it), unless `:control nil`.
    pub control_dir: Option<PathBuf>,
    /// Extension: the first delay before a restart (doubles on quick failures).
    pub restart_delay: Option<Duration>,
    /// Extension: the longest delay between restarts.
    pub restart_max_delay: Option<Duration>,
    /// Extension: at most this many starts within this time, then give up.
    pub start_limit: Option<(u32, Duration)>,
    /// Extension: rotate `:output` when it would grow beyond this many bytes.
    pub output_max_size: Option<u64>,
    /// Extension: how many rotated `:output` files to keep.
    pub output_keep: Option<u32>,
    /// Extension: which Lisp runs the daemon (wins over `LISP_RUNNER`).
    pub lisp: Option<LispKind>,
    /// Extension: `NAME=value` variables added to the daemon's environment.
    pub environment: Vec<(String, String)>,
    /// Extension: called in the running daemon by `reload`.
    pub reload_function: Option<LispCode>,
    /// Extension: what is loaded into the image before `:main-function`
    /// (and saved in its core).
    pub preload: Vec<Preload>,
    /// Extension: the saved core the Lisp runs on.
    pub core: Option<CoreFile>,
    /// Extension: the Lisp's heap, in megabytes.
    pub dynamic_space_size: Option<u64>,
    /// Extension: the Lisp's control stack, in megabytes.
    pub control_stack_size: Option<u64>,
    /// Extension: more arguments for the Lisp.
    pub lisp_options: Vec<String>,
}

/// The Lisps the tool can run (`:lisp`, or `LISP_RUNNER`'s basename).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LispKind {
    Sbcl,
    Ecl,
    Clisp,
    Ccl,
}

/// `:restart`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RestartPolicy {
    #[default]
    Never,
    OnFailure,
    Always,
}

/// `:ready`: when a starting daemon is ready.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Readiness {
    /// `:returned`: once `:main-function` has returned (the original's rule).
    #[default]
    Returned,
    /// `:notify`: once the daemon says so, with `(daemonization:ready)` or
    /// `READY=1` on `$NOTIFY_SOCKET`; its main function may never return.
    Notify,
    /// `(:port N :address A)`: once a TCP connection to the daemon's own
    /// port succeeds (for code that cannot be changed).
    Port {
        port: u16,
        address: std::net::IpAddr,
    },
}

/// One of `:listen`: a listening socket the tool binds once and holds
/// across restarts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listen {
    /// Its name in `LISTEN_FDNAMES` (and `(daemonization:listener NAME)`).
    pub name: String,
    pub port: u16,
    pub address: std::net::IpAddr,
    pub backlog: u32,
}

/// The most listeners a conf holds (descriptors 3 to 7).
pub const MAX_LISTEN: usize = 5;

/// A directory setting: a path, or `:this-dir`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dir {
    /// `:this-dir`: the directory of the conf file given on the command line.
    ThisDir,
    Path(PathBuf),
}

/// One thing of `:preload`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Preload {
    /// An ASDF system, by its name (lower case, as ASDF names them).
    System(String),
    /// A Lisp file to load (relative: to the conf file's directory).
    File(PathBuf),
    /// A function to call (`#.(lambda () ...)`): what a file would do,
    /// written in the conf (a restas-daemon conf's loading part).
    Code(LispCode),
}

/// `:core`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CoreFile {
    /// Kept and rebuilt by the tool in its cache directory.
    Auto,
    /// This file (relative: to the conf file's directory).
    Path(PathBuf),
}

/// `:os-params`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OsParams {
    pub linux_umask: Option<u32>,
}

/// Lisp code from a function key, kept as the exact source text, to be read
/// by the Lisp itself (in `CL-USER`, `*read-eval*` true).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LispCode {
    pub text: String,
    pub shape: FunctionShape,
    /// Where the text was written: file, line, column.
    pub origin: (PathBuf, usize, usize),
}

/// How a function key's value was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FunctionShape {
    /// `#.(lambda ...)` or any other read-time evaluation.
    ReadEval,
    /// `#'(lambda ...)` or `#'name`.
    Function,
    /// `(lambda ...)`.
    Lambda,
    /// A symbol naming a global function.
    Symbol,
}
