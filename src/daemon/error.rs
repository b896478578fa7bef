//! Errors of the daemon steps: one variant per step, with the errno and the
//! path or id involved.

use std::io;
use std::path::PathBuf;

use nix::errno::Errno;
use thiserror::Error;

use crate::trust::PathError;

#[derive(Debug, Error)]
pub enum DaemonError {
    /// A pid directory or file refused, or one the system would not open.
    #[error(transparent)]
    PidPath(#[from] PathError),
    #[error("cannot remove {}: {errno}", path.display())]
    RemovePidFile { path: PathBuf, errno: Errno },
    #[error(
        "the pid directory {} is on a read-only file system, so the daemon's pid file could not be \
         removed after it ended; nothing was stopped: make it writable (mount -o remount,rw), then \
         stop again",
        dir.display()
    )]
    PidDirReadOnly { dir: PathBuf },
    #[error(
        "the claim file {} stayed locked by another command of this tool for 10 s; try again, or look for a hung daemonization process",
        path.display()
    )]
    ClaimBusy { path: PathBuf },
    #[error("cannot lock {}: {errno}", path.display())]
    Lock { path: PathBuf, errno: Errno },
    #[error("cannot create the bootstrap file: {0}")]
    Memfd(Errno),
    #[error("cannot write the bootstrap file: {0}")]
    WriteBootstrap(io::Error),
    #[error("cannot create the readiness pipe: {0}")]
    Pipe(Errno),
    /// The daemon's control socket broke its protocol (see `control`).
    #[error("{0}")]
    Control(String),
    #[error("cannot watch the pid directory for the supervisor's verdict: {0}")]
    Watch(Errno),
    #[error("the daemon already runs (pid {pid}): stop it first, or use it")]
    Running { pid: i32 },
    #[error("cannot make the notify socket for :ready :notify: {0}")]
    NotifySocket(io::Error),
    #[error("cannot become the subreaper of the daemon: {0}")]
    Subreaper(Errno),
    #[error("cannot fork: {0}")]
    Fork(Errno),
    #[error("cannot wait for process {pid}: {errno}")]
    Wait { pid: i32, errno: Errno },
    #[error("cannot take signals: {0}")]
    Signals(Errno),
    #[error("cannot wait for events: {0}")]
    Poll(Errno),
    #[error("cannot open a pidfd for process {pid}: {errno}")]
    PidFd { pid: i32, errno: Errno },
    #[error("cannot send {signal} to process {pid}: {errno}")]
    Signal {
        pid: i32,
        signal: &'static str,
        errno: Errno,
    },
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(
        "the daemon (pid = {pid}) has no reload pipe: it was started before its conf had \
         :reload-function (or by an older version of the tool); restart it once (it is not \
         sent SIGHUP, which would end it)"
    )]
    NoReloadPipe { pid: i32 },
    #[error("{}", crate::plan::no_cores(lisp))]
    NoCores { lisp: &'static str },
    #[error(
        "the Lisp program \"{program}\" was not found{}; install it (on Debian: {package}) \
         or choose another with the LISP_RUNNER environment variable",
        if *on_path { " on PATH" } else { "" }
    )]
    LispNotFound {
        program: String,
        on_path: bool,
        package: &'static str,
    },
    #[error(
        "the core file {} cannot be used: {why}; rebuild it with `daemonization CONF build-core`",
        path.display()
    )]
    CoreForeign { path: PathBuf, why: String },
    #[error(
        "the core file {} does not exist: make it with `daemonization CONF build-core` \
         (or write :core :auto, and the tool keeps it)",
        path.display()
    )]
    CoreMissing { path: PathBuf },
    #[error("no core was saved (a previous one is kept): {report}")]
    CoreBuild { report: String },
    #[error("the core file {}: {error}", path.display())]
    CoreFile { path: PathBuf, error: String },
    #[error("the daemon (pid = {pid}) ended while reloading")]
    DiedReloading { pid: i32 },
    #[error(
        "no word from :reload-function of the daemon (pid = {pid}) within {secs} s: it may \
         still be running (see the daemon's log)"
    )]
    ReloadTimeout { pid: i32, secs: f64 },
    #[error("the daemon (pid = {pid}) said more than a reload's verdict on its reload pipe")]
    ReloadGarbled { pid: i32 },
    #[error("cannot make a pseudo-terminal for the Lisp: {0}")]
    Pty(Errno),
    #[error(
        "{count} processes of the daemon are still in its cgroup {} after SIGKILL; \
         see them with `cat {}/cgroup.procs`",
        cgroup.display(), cgroup.display()
    )]
    Leftovers { cgroup: PathBuf, count: usize },
    #[error("cannot remove {}: {error}; remove it by hand", path.display())]
    Staging { path: PathBuf, error: String },
}

/// Errors of the steps between fork and exec: one variant per step, with
/// the errno and the id involved.
#[derive(Debug, Error)]
pub enum SetupError {
    #[error("cannot open /dev/null: {0}")]
    DevNull(Errno),
    #[error("cannot open the bootstrap: {0}")]
    Bootstrap(Errno),
    #[error("cannot copy a descriptor: {0}")]
    Dup(Errno),
    #[error("cannot place descriptor {target}: {errno}")]
    Place { target: i32, errno: Errno },
    #[error("cannot create the output pipe: {0}")]
    OutputPipe(Errno),
    /// `:output` refused, or the system would not open it.
    #[error(transparent)]
    Output(PathError),
    /// The pid file could not be claimed.
    #[error(transparent)]
    Claim(Box<DaemonError>),
    #[error("setsid: {0}")]
    Setsid(Errno),
    #[error("PR_SET_KEEPCAPS: {0}")]
    KeepCaps(Errno),
    #[error("initgroups({user}): {errno}")]
    InitGroups { user: String, errno: Errno },
    #[error("setresgid({gid}): {errno}")]
    SetGid { gid: u32, errno: Errno },
    #[error("setresuid({uid}): {errno}")]
    SetUid { uid: u32, errno: Errno },
    #[error("capabilities: {0}")]
    Capabilities(caps::errors::CapsError),
    #[error("PR_SET_NO_NEW_PRIVS: {0}")]
    NoNewPrivs(Errno),
    #[error("cannot run {program}: {errno}")]
    Exec { program: String, errno: Errno },
    #[error("cannot take the pseudo-terminal as the controlling terminal: {0}")]
    Terminal(Errno),
    #[error("cannot change to the directory {}: {errno}", dir.display())]
    Chdir { dir: PathBuf, errno: Errno },
    #[error("cannot enter the daemon's cgroup: {0}")]
    Cgroup(String),
    #[error(
        "cannot listen on {address} (the :listen socket {name:?}): {errno}; free the port, or name another"
    )]
    Listen {
        name: String,
        address: std::net::SocketAddr,
        errno: Errno,
    },
}
