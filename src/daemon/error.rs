//! Errors of the daemon steps: one variant per step, with the errno and the
//! path or id involved.

use std::io;
use std::path::PathBuf;

use nix::errno::Errno;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum DaemonError {
    #[error("cannot create the pid file directory {}: {source}", path.display())]
    CreatePidDir { path: PathBuf, source: io::Error },
    #[error("refusing the pid file {}: it is a symbolic link", path.display())]
    PidFileSymlink { path: PathBuf },
    #[error("refusing the pid file {}: writable by group or others (mode {mode:04o})", path.display())]
    PidFileWritable { path: PathBuf, mode: u32 },
    #[error("cannot read the pid file {}: {source}", path.display())]
    ReadPidFile { path: PathBuf, source: io::Error },
    #[error("cannot remove the pid file {}: {source}", path.display())]
    RemovePidFile { path: PathBuf, source: io::Error },
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
