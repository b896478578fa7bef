//! `reload`: `:reload-function` called in the running daemon. The tool
//! sends SIGHUP to the Lisp (pinned by a pidfd, proved the daemon as for
//! `stop`) and reads the verdict from the daemon's own reload pipe, opened
//! anew through `/proc/PID/fd` (the Lisp holds both ends: `RELOAD_FD` and
//! `RELOAD_READER_FD`), so the daemon needs no socket and nothing but the
//! caller's power to reach it. The verdict is read through an open file
//! description of the tool's own, within the timeout, and bounded.

use std::fs::File;
use std::io::Read as _;
use std::os::fd::{AsFd as _, AsRawFd as _, FromRawFd as _};
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, OpenOptionsExt as _};

use std::time::{Duration, Instant};

use nix::poll::PollFlags;
use nix::sys::signal::Signal;

use super::events::{own_reader, ready_within};
use super::fact::Fact;
use super::process::{Aim, PidFd};
use super::{DaemonError, PidState, Request, supervised_lisp};
use crate::plan::{RELOAD_FD, RELOAD_MARK, RELOAD_READER_FD};
use crate::wire::reload::{self, Heard, Verdict};

/// `reload` (or `force-reload` of a conf with `:reload-function`).
pub fn reload(req: &Request) -> Result<Fact, DaemonError> {
    if req.conf.spec.reload_function.is_none() {
        return Ok(Fact::NoReloadFunction);
    }
    let (files, pid, locked) = match req.inspect()? {
        (Some(files), PidState::Running { pid, locked }) => (files, pid, locked),
        (_, PidState::Stale { pid }) => return Ok(Fact::Stale { pid }),
        _ => return Ok(Fact::NoPidFile),
    };
    let daemon = match PidFd::open(pid) {
        Ok(fd) if files.still_the_daemon(pid, locked, req.daemon_uid()) => fd,
        _ => return Ok(Fact::Stale { pid: Some(pid) }),
    };
    // A supervisor's Lisp is reloaded, taken hold of while it is provably
    // the supervisor's child.
    let lisp = locked.then(|| supervised_lisp(&files, pid)).flatten();
    let target = lisp.as_ref().unwrap_or(&daemon);
    // ECL's handler gets no siginfo: its verdicts carry 0, not the tag.
    let untagged = req.runner.kind != crate::config::LispKind::Sbcl;
    let timeout = req.start_timeout.unwrap_or(req.conf.spec.start_timeout());
    // Over the control socket of a ready daemon, the verdict comes back on
    // it; else (none, not ready yet: SIGHUP waits for readiness) by SIGHUP.
    // (A daemon started before its conf had :reload-function has none to
    // call: the SIGHUP path says so, and sends nothing.)
    if started_with_reload(target.pid)
        && let Some(verdict) = over_control(req, pid, timeout)
    {
        return verdict;
    }
    Ok(match call(target, timeout, untagged, req.aim())? {
        None => Fact::Reloaded { pid },
        Some(report) => Fact::ReloadError { pid, report },
    })
}

/// `reload` through the daemon's control socket, when it is ready and
/// answers; `None` to fall back to SIGHUP.
fn over_control(req: &Request, pid: i32, timeout: Duration) -> Option<Result<Fact, DaemonError>> {
    use super::control::ControlError;
    use crate::wire::control::{Reply, Request as Ask};
    let deadline = Instant::now() + timeout;
    let mut control = super::control::connect(req, Instant::now() + Duration::from_secs(5))
        .ok()
        .filter(|c| c.ready)?;
    let lisp = control.pid;
    if control.send(&Ask::Reload).is_err() {
        return None;
    }
    let mut report = None;
    loop {
        match control.next(Some(deadline)) {
            Ok(Reply::Error(text)) => report = Some(text),
            Ok(Reply::Done { .. }) => {
                return Some(Ok(match report {
                    None => Fact::Reloaded { pid },
                    Some(report) => Fact::ReloadError { pid, report },
                }));
            }
            Ok(_) => {}
            Err(ControlError::NotAnswering { why, .. }) if why.contains("in time") => {
                return Some(Err(DaemonError::ReloadTimeout {
                    pid: lisp,
                    secs: timeout.as_secs_f64(),
                }));
            }
            Err(ControlError::NotAnswering { .. }) => {
                return Some(Err(DaemonError::DiedReloading { pid: lisp }));
            }
            Err(e) => return Some(Err(DaemonError::Control(e.to_string()))),
        }
    }
}

/// A descriptor of the process of `target`: a duplicate of its open file
/// (`pidfd_getfd`, tied to the pidfd: never another process's, and an
/// `O_PATH` handle stays one); for a caller without the power to, the same
/// user's own process through `/proc/PID/fd`, which gives it no more than
/// its own power.
fn their_fd(target: &PidFd, fd: i32) -> Option<File> {
    // SAFETY: pidfd_getfd takes a pidfd, a descriptor number and flags, and
    // returns a new descriptor of this process or -1; no memory is passed.
    let got = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_pidfd_getfd,
            target.as_fd().as_raw_fd(),
            fd,
            0,
        )
    };
    if got >= 0 {
        // SAFETY: a fresh descriptor that nothing else owns.
        return Some(unsafe { File::from_raw_fd(got as i32) });
    }
    if nix::unistd::geteuid().is_root() {
        return None;
    }
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(format!("/proc/{}/fd/{fd}", target.pid))
        .ok()
}

/// Whether the daemon was started with a reload pipe: its environment
/// says so (`RELOAD_MARK`).
fn started_with_reload(pid: i32) -> bool {
    let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    let mark = format!("{RELOAD_MARK}={RELOAD_FD}");
    environ.split(|b| *b == 0).any(|v| v == mark.as_bytes())
}

/// The read end of the Lisp's reload pipe: a pipe's read end, whose write
/// end is its `RELOAD_FD`.
fn reload_pipe(target: &PidFd) -> Result<File, DaemonError> {
    let missing = || DaemonError::NoReloadPipe { pid: target.pid };
    if !started_with_reload(target.pid) {
        return Err(missing());
    }
    let (Some(reader), Some(writer)) = (
        their_fd(target, RELOAD_READER_FD),
        their_fd(target, RELOAD_FD),
    ) else {
        return Err(missing());
    };
    let access = |f: &File| {
        nix::fcntl::fcntl(f.as_fd(), nix::fcntl::FcntlArg::F_GETFL)
            .map(|flags| flags & nix::libc::O_ACCMODE)
            .ok()
    };
    let same_pipe = match (reader.metadata(), writer.metadata()) {
        (Ok(r), Ok(w)) => r.file_type().is_fifo() && r.ino() == w.ino() && r.dev() == w.dev(),
        _ => false,
    };
    if !same_pipe
        || access(&reader) != Some(nix::libc::O_RDONLY)
        || access(&writer) != Some(nix::libc::O_WRONLY)
    {
        return Err(missing());
    }
    // Read through a description of our own: the Lisp shares the one it
    // holds, and could make it blocking under our reads.
    own_reader(reader.into()).map_err(|_| missing())
}

/// SIGHUP to the Lisp of `target`, then its verdict: `None` when
/// `:reload-function` returned, its report when it signalled.
fn call(
    target: &PidFd,
    timeout: Duration,
    untagged: bool,
    aim: Aim,
) -> Result<Option<String>, DaemonError> {
    let mut pipe = reload_pipe(target)?;
    // What an earlier reload left unread is not this reload's verdict (at
    // most the pipe's capacity is there).
    let mut stale = [0u8; 4096];
    for _ in 0..256 {
        match pipe.read(&mut stale) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
    // A number of this reload's own: the verdict that carries it is this
    // reload's, whatever else is in the pipe.
    let tag = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
        ^ std::process::id())
        & 0x3fff_ffff
        | 1;
    target.signal_with_value(Signal::SIGHUP, tag as i32, aim)?;
    let tag = tag as i32;
    let deadline = Instant::now() + timeout;
    let mut text = Vec::new();
    loop {
        match reload::hear(&text, tag, untagged) {
            Heard::Verdict(Verdict::Reloaded) => return Ok(None),
            Heard::Verdict(Verdict::Failed(report)) => return Ok(Some(report)),
            Heard::Garbled => return Err(DaemonError::ReloadGarbled { pid: target.pid }),
            Heard::NotYet => {}
        }
        let watched = [
            (pipe.as_fd(), PollFlags::POLLIN),
            (target.as_fd(), PollFlags::POLLIN),
        ];
        // Past the deadline nothing more is read, however much is there.
        let seen = match Instant::now() < deadline {
            true => ready_within(&watched, Some(deadline)).map_err(DaemonError::Poll)?,
            false => None,
        };
        let Some(seen) = seen else {
            return Err(DaemonError::ReloadTimeout {
                pid: target.pid,
                secs: timeout.as_secs_f64(),
            });
        };
        let ended = seen[1].contains(PollFlags::POLLIN);
        let hung_up = seen[0].intersects(PollFlags::POLLHUP | PollFlags::POLLERR);
        let mut chunk = [0u8; 8192];
        let read = pipe.read(&mut chunk);
        if let Ok(n) = read {
            text.extend_from_slice(&chunk[..n]);
        }
        let nothing = !matches!(read, Ok(n) if n > 0);
        if (ended || (hung_up && nothing)) && reload::hear(&text, tag, untagged) == Heard::NotYet {
            return Err(DaemonError::DiedReloading { pid: target.pid });
        }
    }
}
