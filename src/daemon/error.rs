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
        "the claim file {} stayed locked by another command of this tool for 10 s; try again, or look for a hung daemonization process",
        path.display()
    )]
    ClaimBusy { path: PathBuf },
    #[error("cannot lock {}: {errno}", path.display())]
    Lock { path: PathBuf, errno: Errno },
    #[error("cannot query the lock of the pid file {}: {errno}", path.display())]
    QueryLock { path: PathBuf, errno: Errno },
    #[error("cannot create the bootstrap file: {0}")]
    Memfd(Errno),
    #[error("cannot write the bootstrap file: {0}")]
    WriteBootstrap(io::Error),
    #[error("cannot create the readiness pipe: {0}")]
    Pipe(Errno),
    #[error("cannot become the subreaper of the daemon: {0}")]
    Subreaper(Errno),
    #[error("cannot fork: {0}")]
    Fork(Errno),
    #[error("cannot wait for process {pid}: {errno}")]
    Wait { pid: i32, errno: Errno },
    #[error("cannot read the readiness pipe: {0}")]
    ReadReady(io::Error),
    #[error("cannot open a pidfd for process {pid}: {errno}")]
    PidFd { pid: i32, errno: Errno },
    #[error("cannot send {signal} to process {pid}: {errno}")]
    Signal {
        pid: i32,
        signal: &'static str,
        errno: Errno,
    },
    #[error("{0}")]
    Setup(String),
    #[error("cannot create the :fasl-dir {}: {source}", path.display())]
    FaslDir { path: PathBuf, source: io::Error },
    #[error("cannot run {program}: {errno}")]
    Exec { program: String, errno: Errno },
}
