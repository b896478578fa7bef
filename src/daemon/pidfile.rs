//! Pid files, with the lock that says a daemon is alive.
//!
//! The daemon process itself takes a POSIX record lock (a read lock, through
//! a read-only descriptor) on its pid file and holds it across exec for its
//! whole life; the kernel drops it when the
//! process dies, and `fork` does not pass it to the Lisp's own children. A
//! held lock therefore means "running", and `F_GETLK` names the holder
//! without taking the lock. A pid file without a lock (the daemon died, or
//! the original Lisp tool wrote it) is trusted only if its pid is a live
//! Lisp that started before the file was written; nothing else is signalled.

use std::fs::{self, File};
use std::io::{Read as _, Write as _};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, Flock, FlockArg, OFlag, fcntl};
use nix::libc;
use nix::sys::stat::Mode;

use super::error::DaemonError;
use super::process;

/// What a pid file says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PidState {
    /// No pid file.
    Missing,
    /// A daemon runs: it holds the lock (`locked`), or it is the live Lisp
    /// of a lock-less pid file.
    Running { pid: i32, locked: bool },
    /// The pid file remains but no daemon runs; its pid, if readable.
    Stale { pid: Option<i32> },
}

fn whole_file_lock(kind: libc::c_short) -> libc::flock {
    libc::flock {
        l_type: kind,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    }
}

/// The pid of the process holding a lock on `fd`, if any.
fn lock_holder(fd: RawFd, path: &Path) -> Result<Option<i32>, DaemonError> {
    let mut lock = whole_file_lock(libc::F_WRLCK as libc::c_short);
    // SAFETY: the descriptor is open for the duration of the call.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    fcntl(fd, FcntlArg::F_GETLK(&mut lock)).map_err(|errno| DaemonError::QueryLock {
        path: path.to_path_buf(),
        errno,
    })?;
    Ok((lock.l_type != libc::F_UNLCK as libc::c_short).then_some(lock.l_pid))
}

/// Refuses a pid file that is a symlink or writable by group or others.
fn check_safe(path: &Path, meta: &fs::Metadata) -> Result<(), DaemonError> {
    if meta.file_type().is_symlink() {
        return Err(DaemonError::PidFileSymlink {
            path: path.to_path_buf(),
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(DaemonError::PidFileWritable {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// Reads the state of the pid file at `path`.
pub fn inspect(path: &Path) -> Result<PidState, DaemonError> {
    let read_err = |source| DaemonError::ReadPidFile {
        path: path.to_path_buf(),
        source,
    };
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(PidState::Missing),
        Err(e) => return Err(read_err(e)),
    };
    check_safe(path, &meta)?;
    let mut file = match File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(PidState::Missing),
        Err(e) => return Err(read_err(e)),
    };
    if let Some(pid) = lock_holder(file.as_raw_fd(), path)? {
        return Ok(PidState::Running { pid, locked: true });
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(read_err)?;
    let Some(pid) = text.trim().parse::<i32>().ok().filter(|p| *p > 0) else {
        return Ok(PidState::Stale { pid: None });
    };
    let written = meta.modified().map_err(read_err)?;
    if process::is_daemon_of_pid_file(pid, written) {
        Ok(PidState::Running { pid, locked: false })
    } else {
        Ok(PidState::Stale { pid: Some(pid) })
    }
}

/// Creates the pid file's directory (0755) if it is missing.
pub fn create_dir(path: &Path) -> Result<(), DaemonError> {
    let Some(dir) = path.parent() else {
        return Ok(());
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|source| DaemonError::CreatePidDir {
            path: dir.to_path_buf(),
            source,
        })
}

/// The result of trying to take a pid file for a new daemon.
pub enum Claim {
    /// The lock is ours and the file holds our pid.
    Locked,
    /// Another process holds the lock.
    Held(i32),
}

/// Serialises every change to the pid files of one directory (claims and
/// removals): an exclusive `flock` on the directory, held for microseconds.
struct DirLock(#[allow(dead_code)] Flock<OwnedFd>);

impl DirLock {
    fn take(pid_file: &Path) -> Result<DirLock, String> {
        let dir = pid_file.parent().unwrap_or(Path::new("/"));
        let fd = nix::fcntl::open(
            dir,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| format!("cannot open the pid file directory {}: {e}", dir.display()))?;
        // Well above the fixed descriptors `claim` places the pid file on,
        // which dup2 would otherwise silently close.
        let fd = fcntl(fd.as_fd(), FcntlArg::F_DUPFD_CLOEXEC(64))
            .map_err(|e| format!("cannot open the pid file directory {}: {e}", dir.display()))?;
        // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let lock = Flock::lock(fd, FlockArg::LockExclusive).map_err(|(_, e)| {
            format!("cannot lock the pid file directory {}: {e}", dir.display())
        })?;
        Ok(DirLock(lock))
    }
}

/// Called in the daemon process before exec: writes `pid` to the pid file
/// at `path` unless a daemon holds it, then takes a read lock on it through
/// a read-only descriptor placed on `target`, which the daemon keeps for its
/// whole life. The daemon (which may switch to another user) can therefore
/// not write its pid file. Files are opened without following symlinks.
pub fn claim(path: &Path, target: RawFd, pid: i32) -> Result<Claim, String> {
    let _dir = DirLock::take(path)?;
    let context = |what: &str, e: &dyn std::fmt::Display| {
        format!("cannot {what} the pid file {}: {e}", path.display())
    };
    {
        let mut file = File::options()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| context("open", &e))?;
        if let Some(holder) = lock_holder(file.as_raw_fd(), path).map_err(|e| e.to_string())? {
            return Ok(Claim::Held(holder));
        }
        file.set_len(0)
            .and_then(|()| file.write_all(format!("{pid}\n").as_bytes()))
            .map_err(|e| context("write", &e))?;
        // Closed here, before we hold any lock on the file: closing a
        // descriptor of a file drops all of a process's locks on it.
    }
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| context("open", &e))?;
    let fd = place(file.into(), target)?;
    let lock = whole_file_lock(libc::F_RDLCK as libc::c_short);
    fcntl(fd.as_fd(), FcntlArg::F_SETLK(&lock)).map_err(|e| context("lock", &e))?;
    // Keep the descriptor (and so the lock) open across exec.
    std::mem::forget(fd);
    Ok(Claim::Locked)
}

/// Moves `fd` to descriptor `target` (without close-on-exec).
fn place(fd: OwnedFd, target: RawFd) -> Result<OwnedFd, String> {
    if fd.as_raw_fd() == target {
        fcntl(fd.as_fd(), FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()))
            .map_err(|e| e.to_string())?;
        return Ok(fd);
    }
    // SAFETY: dup2 onto a descriptor number we own in this single-threaded
    // child; the returned descriptor is owned by the OwnedFd built from it.
    let rc = unsafe { libc::dup2(fd.as_raw_fd(), target) };
    if rc < 0 {
        return Err(format!("dup2: {}", Errno::last()));
    }
    drop(fd);
    // SAFETY: dup2 made `target` a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(target) })
}

/// Removes the pid file if no process holds its lock (under the directory
/// lock, so no daemon can be claiming it meanwhile). Returns the holder's
/// pid if it is locked (nothing removed).
pub fn remove(path: &Path) -> Result<Option<i32>, DaemonError> {
    let err = |source| DaemonError::RemovePidFile {
        path: path.to_path_buf(),
        source,
    };
    let _dir = match DirLock::take(path) {
        Ok(lock) => lock,
        Err(_) if !path.exists() => return Ok(None),
        Err(e) => return Err(err(std::io::Error::other(e))),
    };
    let file = match File::options()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err(e)),
    };
    let lock = whole_file_lock(libc::F_WRLCK as libc::c_short);
    if let Err(Errno::EAGAIN | Errno::EACCES) = fcntl(file.as_fd(), FcntlArg::F_SETLK(&lock)) {
        return lock_holder(file.as_raw_fd(), path);
    }
    fs::remove_file(path).map_err(err)?;
    Ok(None)
}

/// Removes the pid file whatever holds it (`zap --force`).
pub fn remove_forced(path: &Path) -> Result<(), DaemonError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(DaemonError::RemovePidFile {
            path: path.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}
