//! `reload`: `:reload-function` called in the running daemon. The tool
//! sends SIGHUP to the Lisp (pinned by a pidfd, proved the daemon as for
//! `stop`) and reads the verdict from the daemon's own reload pipe, opened
//! anew through `/proc/PID/fd` (the Lisp holds both ends: `RELOAD_FD` and
//! `RELOAD_READER_FD`), so the daemon needs no socket and nothing but the
//! caller's power to reach it.

use std::fs::File;
use std::io::Read as _;
use std::os::fd::AsFd as _;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;

use super::process::PidFd;
use super::{DaemonError, PidState, Request, supervised_lisp};
use crate::command::Command;
use crate::plan::{RELOAD_FD, RELOAD_READER_FD};
use crate::report::{Fact, Outcome};

/// The most of a verdict read (an error report with its backtrace).
const MAX_VERDICT: usize = 256 * 1024;

/// `reload` (or `force-reload` of a conf with `:reload-function`).
pub fn reload(req: &Request, command: Command) -> Outcome {
    if req.conf.spec.reload_function.is_none() {
        return req.outcome(command, Fact::NoReloadFunction);
    }
    let (files, state) = match req.inspect() {
        Ok(found) => found,
        Err(e) => return req.internal(command, e),
    };
    let (files, pid, locked) = match (files, state) {
        (Some(files), PidState::Running { pid, locked }) => (files, pid, locked),
        (_, PidState::Stale { pid }) => return req.outcome(command, Fact::Stale { pid }),
        _ => return req.outcome(command, Fact::NoPidFile),
    };
    let daemon = match PidFd::open(pid) {
        Ok(fd) if files.still_the_daemon(pid, locked, req.daemon_uid()) => fd,
        _ => return req.outcome(command, Fact::Stale { pid: Some(pid) }),
    };
    // A supervisor's Lisp is reloaded, taken hold of while it is provably
    // the supervisor's child.
    let lisp = locked.then(|| supervised_lisp(&files, pid)).flatten();
    let target = lisp.as_ref().unwrap_or(&daemon);
    match call(
        target,
        req.start_timeout.unwrap_or(req.conf.spec.start_timeout()),
    ) {
        Ok(None) => req.outcome(command, Fact::Reloaded { pid }),
        Ok(Some(report)) => req.outcome(command, Fact::ReloadError { pid, report }),
        Err(e) => req.internal(command, e),
    }
}

/// Opens the read end of the Lisp's reload pipe: a pipe, the same one as
/// its write end.
fn reload_pipe(pid: i32) -> Result<File, DaemonError> {
    let missing = || DaemonError::NoReloadPipe { pid };
    let fd_path = |fd: i32| format!("/proc/{pid}/fd/{fd}");
    let reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(fd_path(RELOAD_READER_FD))
        .map_err(|_| missing())?;
    let (read, write) = (reader.metadata(), std::fs::metadata(fd_path(RELOAD_FD)));
    match (read, write) {
        (Ok(r), Ok(w)) if r.file_type().is_fifo() && r.ino() == w.ino() && r.dev() == w.dev() => {
            Ok(reader)
        }
        _ => Err(missing()),
    }
}

/// SIGHUP to the Lisp of `target`, then its verdict: `None` when
/// `:reload-function` returned, its report when it signalled.
fn call(target: &PidFd, timeout: Duration) -> Result<Option<String>, DaemonError> {
    let mut pipe = reload_pipe(target.pid)?;
    // What an earlier reload left unread is not this reload's verdict.
    let mut stale = [0u8; 4096];
    while matches!(pipe.read(&mut stale), Ok(n) if n > 0) {}
    target.signal(Signal::SIGHUP)?;
    let deadline = Instant::now() + timeout;
    let mut text = Vec::new();
    loop {
        if let Some(verdict) = verdict(&text) {
            return Ok(verdict);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || text.len() > MAX_VERDICT {
            return Err(DaemonError::ReloadTimeout {
                pid: target.pid,
                secs: timeout.as_secs(),
            });
        }
        let mut fds = [
            PollFd::new(pipe.as_fd(), PollFlags::POLLIN),
            PollFd::new(target.as_fd(), PollFlags::POLLIN),
        ];
        let ms =
            PollTimeout::try_from(left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32)
                .unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, ms) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(errno) => return Err(DaemonError::Poll(errno)),
        }
        let ended = fds[1]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLIN));
        let mut chunk = [0u8; 8192];
        if let Ok(n) = pipe.read(&mut chunk) {
            text.extend_from_slice(&chunk[..n]);
        }
        if ended && verdict(&text).is_none() {
            return Err(DaemonError::DiedReloading { pid: target.pid });
        }
    }
}

/// The verdict in what the pipe said so far, if complete.
fn verdict(text: &[u8]) -> Option<Option<String>> {
    let text = String::from_utf8_lossy(text);
    if text.starts_with("reloaded\n") {
        return Some(None);
    }
    let report = text.strip_prefix("error\n")?;
    let end = report.find("end-of-report\n")?;
    Some(Some(report[..end].trim_end().to_string()))
}

#[cfg(test)]
mod tests {
    use super::verdict;

    #[test]
    fn verdicts_are_complete_or_not_yet() {
        assert_eq!(verdict(b"reloaded\n"), Some(None));
        assert_eq!(verdict(b"reload"), None);
        assert_eq!(verdict(b"error\nboom\n(a condition"), None);
        assert_eq!(
            verdict(b"error\nboom\nBacktrace:\n  x\nend-of-report\n"),
            Some(Some("boom\nBacktrace:\n  x".to_string()))
        );
    }
}
