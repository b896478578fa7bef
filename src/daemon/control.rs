//! The tool's end of the control socket (`wire::control`): a connection to
//! the running daemon's image, made only to the daemon's own Lisp.
//!
//! The socket lives in `NAME.control/` beside the pid file, a directory of
//! the daemon's user (made by `RunDir::make_control_dir`). Root acts there
//! with care: the directory and the socket are opened without following a
//! link and judged by their descriptors (a directory, a socket, the
//! daemon's user's or root's), the connection goes through that descriptor
//! (`/proc/self/fd/N`), and the kernel's word on the peer (SO_PEERCRED) must
//! name the daemon's Lisp process: a socket another process put there is
//! never talked to. Each read has a deadline and a size bound.

use std::io::{Read as _, Write as _};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::poll::PollFlags;
use nix::sys::stat::{Mode, SFlag, fstat};

use super::events::ready_within;
use super::{DaemonError, PidState, Request, RunDir};
use crate::wire::control::{self, Broken, Reply};

/// Why the daemon cannot be reached on its control socket.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("the daemon is not running")]
    NotRunning,
    #[error(
        "{lisp} has no control socket (it cannot check who connects): use SBCL or ECL for eval, repl and SLIME"
    )]
    Unsupported { lisp: &'static str },
    #[error("the conf turns the control socket off (:control nil)")]
    Off,
    #[error(
        "the daemon (pid {pid}) has no control socket: it was started without one (before :control, or by an older version of the tool); restart it once"
    )]
    Missing { pid: i32 },
    #[error("refusing the control socket {path}: {reason}")]
    Refused { path: String, reason: String },
    #[error("the daemon (pid {pid}) is not answering on its control socket ({why})")]
    NotAnswering { pid: i32, why: String },
    #[error(transparent)]
    Broken(#[from] Broken),
    #[error("the daemon's answer is larger than {limit} bytes: not read")]
    TooLarge { limit: usize },
    #[error(transparent)]
    Daemon(#[from] DaemonError),
}

/// How long a request may take to be written (a daemon that does not
/// read it is not answering).
const WRITE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Why a wait ended at its deadline.
pub const NO_ANSWER: &str = "no answer in time";

/// A connection to the daemon's image.
pub struct Control {
    stream: UnixStream,
    buf: Vec<u8>,
    /// The daemon's Lisp (the peer the kernel names).
    pub pid: i32,
    /// The session's package now.
    pub package: String,
    /// Bytes of the answer under way.
    answered: usize,
    /// Reached by the ready daemon's name (`socket`), not by its pid's
    /// (a daemon still starting).
    pub ready: bool,
    /// Where the unread part of `buf` starts (lines are taken by moving
    /// it, not by shifting the buffer: a flood of short lines costs linear
    /// time).
    start: usize,
    /// The most bytes one answer may take (`control::MAX_ANSWER`, or less).
    pub limit: usize,
}

/// What a wait for the daemon brought.
pub enum Heard {
    Reply(Reply),
    /// The extra descriptor (the REPL's Ctrl-C) is readable.
    Extra,
}

/// Connects to the daemon of `req`, within `deadline` (the greeting too).
pub fn connect(req: &Request, deadline: Instant) -> Result<Control, ControlError> {
    let kind = req.runner.kind;
    if !kind.facts().adopts_descriptors {
        return Err(ControlError::Unsupported {
            lisp: kind.facts().name,
        });
    }
    if req.conf.spec.control_dir.is_none() {
        return Err(ControlError::Off);
    }
    let (Some(files), PidState::Running { pid, locked }) = req.inspect()? else {
        return Err(ControlError::NotRunning);
    };
    // The Lisp: a supervisor's child, or the daemon itself.
    let lisp = match locked
        .then(|| super::supervised_lisp(&files, pid))
        .flatten()
    {
        Some(fd) => fd.pid,
        None if super::supervise::read_state(&files, pid).is_some() => {
            return Err(ControlError::NotAnswering {
                pid,
                why: "its supervisor runs no Lisp now".into(),
            });
        }
        None => pid,
    };
    let mut control = open(&files, lisp, req.daemon_uid())?;
    // Blocking for the requests written, within a bound: a daemon that
    // never reads cannot hold the command.
    if let Err(e) = control
        .stream
        .set_nonblocking(false)
        .and_then(|()| control.stream.set_write_timeout(Some(WRITE_WAIT)))
    {
        return Err(control.gone(e.to_string()));
    }
    match control.next(Some(deadline))? {
        Reply::Hello { pid, package } if pid == lisp => {
            control.package = package;
            control.answered = 0;
            Ok(control)
        }
        other => Err(Broken(format!("{other:?}")).into()),
    }
}

/// A connection to the control socket of the Lisp `lisp` (of the user
/// `owner`) in `files`' control directory, not yet greeted: its greeting
/// is the first reply. Never blocks (a daemon whose backlog is full is not
/// answering).
pub fn open(files: &RunDir, lisp: i32, owner: u32) -> Result<Control, ControlError> {
    let pid = lisp;
    let dir = match files.open_control_dir() {
        Ok(dir) => dir,
        Err(Errno::ENOENT) => return Err(ControlError::Missing { pid }),
        Err(errno) => {
            return Err(ControlError::Refused {
                path: files.control_path().display().to_string(),
                reason: match errno {
                    Errno::ELOOP | Errno::ENOTDIR => "it is not a directory".into(),
                    e => e.desc().into(),
                },
            });
        }
    };
    judge(files, &dir, None, owner)?;
    // Its name once ready; its own name (its pid) before.
    let mut why = String::from("no socket");
    for name in ["socket".to_string(), lisp.to_string()] {
        match attempt(files, &dir, &name, owner, lisp) {
            Ok(stream) => {
                return Ok(Control {
                    stream,
                    buf: Vec::new(),
                    pid: lisp,
                    package: String::new(),
                    answered: 0,
                    ready: name == "socket",
                    start: 0,
                    limit: control::MAX_ANSWER,
                });
            }
            Err(Attempt::Refused(e)) => return Err(e),
            // The first reason that is not a missing name tells most.
            Err(Attempt::Failed(e)) if why == "no socket" => why = e,
            Err(Attempt::Failed(_)) => {}
        }
    }
    Err(ControlError::NotAnswering { pid: lisp, why })
}

enum Attempt {
    Refused(ControlError),
    Failed(String),
}

/// The control directory (`name` None) or a socket in it: not a link (it
/// was opened so), of the right type, the daemon's user's or root's.
fn judge(files: &RunDir, fd: &OwnedFd, name: Option<&str>, owner: u32) -> Result<(), ControlError> {
    let path = match name {
        Some(name) => files.control_path().join(name),
        None => files.control_path(),
    };
    let refuse = |reason: String| ControlError::Refused {
        path: path.display().to_string(),
        reason,
    };
    let st = fstat(fd.as_fd()).map_err(|e| refuse(e.desc().into()))?;
    let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
    let wanted = match name {
        Some(_) => SFlag::S_IFSOCK,
        None => SFlag::S_IFDIR,
    };
    if kind != wanted {
        return Err(refuse(format!(
            "it is not a {}",
            if name.is_some() {
                "socket"
            } else {
                "directory"
            }
        )));
    }
    if st.st_uid != owner && st.st_uid != 0 {
        return Err(refuse(format!(
            "it is owned by {}, not the daemon's user",
            crate::trust::user_name(st.st_uid)
        )));
    }
    Ok(())
}

/// Connects to `name` in the control directory, if it is the Lisp's.
fn attempt(
    files: &RunDir,
    dir: &OwnedFd,
    name: &str,
    owner: u32,
    lisp: i32,
) -> Result<UnixStream, Attempt> {
    let socket = match openat(
        dir.as_fd(),
        name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Err(Attempt::Failed("no socket".into())),
        Err(e) => return Err(Attempt::Failed(e.desc().into())),
    };
    judge(files, &socket, Some(name), owner).map_err(Attempt::Refused)?;
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, connect};
    let fd = nix::sys::socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| Attempt::Failed(e.desc().into()))?;
    let address = UnixAddr::new(format!("/proc/self/fd/{}", socket.as_raw_fd()).as_str())
        .map_err(|e| Attempt::Failed(e.desc().into()))?;
    connect(fd.as_raw_fd(), &address).map_err(|e| match e {
        Errno::EAGAIN => Attempt::Failed("its queue of connections is full".into()),
        e => Attempt::Failed(e.desc().into()),
    })?;
    let stream = UnixStream::from(fd);
    let peer = nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials)
        .map_err(|e| Attempt::Failed(e.desc().into()))?;
    if peer.pid() != lisp || (peer.uid() != owner && peer.uid() != 0) {
        return Err(Attempt::Failed(format!(
            "its socket is served by process {}, not the daemon's Lisp",
            peer.pid()
        )));
    }
    Ok(stream)
}

impl Control {
    /// Sends `request`.
    pub fn send(&mut self, request: &control::Request) -> Result<(), ControlError> {
        self.answered = self.buf.len() - self.start;
        self.stream
            .write_all(request.line().as_bytes())
            .map_err(|e| self.gone(e.to_string()))
    }

    /// The next reply, by `deadline`.
    pub fn next(&mut self, deadline: Option<Instant>) -> Result<Reply, ControlError> {
        match self.wait(deadline, None)? {
            Heard::Reply(reply) => Ok(reply),
            Heard::Extra => unreachable!("no extra descriptor"),
        }
    }

    /// The next reply, or `extra` readable first.
    pub fn wait(
        &mut self,
        deadline: Option<Instant>,
        extra: Option<BorrowedFd<'_>>,
    ) -> Result<Heard, ControlError> {
        let mut first = true;
        loop {
            if let Some(at) = self.buf[self.start..].iter().position(|b| *b == b'\n') {
                let end = self.start + at;
                let text = String::from_utf8_lossy(&self.buf[self.start..end]).into_owned();
                self.start = end + 1;
                let reply = Reply::parse(&text)?;
                if let Reply::Done { package } = &reply {
                    self.package = package.clone();
                }
                return Ok(Heard::Reply(reply));
            }
            // What was taken goes once no line is left in the buffer.
            self.buf.drain(..self.start);
            self.start = 0;
            if self.buf.len() > control::MAX_LINE {
                return Err(Broken("a line longer than 1 MB".into()).into());
            }
            // Past the deadline nothing more is read, however much is
            // there (after one look, for a caller that asks without waiting).
            if !first && deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(ControlError::NotAnswering {
                    pid: self.pid,
                    why: NO_ANSWER.into(),
                });
            }
            first = false;
            let mut fds = vec![(self.stream.as_fd(), PollFlags::POLLIN)];
            if let Some(extra) = extra {
                fds.push((extra, PollFlags::POLLIN));
            }
            let ready = ready_within(&fds, deadline)
                .map_err(|e| self.gone(e.desc().into()))?
                .ok_or_else(|| ControlError::NotAnswering {
                    pid: self.pid,
                    why: NO_ANSWER.into(),
                })?;
            if ready.get(1).is_some_and(|f| !f.is_empty()) {
                return Ok(Heard::Extra);
            }
            if ready[0].is_empty() {
                continue;
            }
            let mut chunk = [0u8; 65536];
            let n = match self.stream.read(&mut chunk) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(self.gone(e.to_string())),
            };
            if n == 0 {
                return Err(self.gone("it closed the connection".into()));
            }
            self.answered += n;
            if self.answered > self.limit {
                return Err(ControlError::TooLarge { limit: self.limit });
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The connection itself, and what was read of it but not taken (for
    /// a relay once the protocol is handed on, to swank).
    pub fn into_parts(mut self) -> (UnixStream, Vec<u8>) {
        let rest = self.buf.split_off(self.start);
        (self.stream, rest)
    }

    /// Its descriptor, for an event loop.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }

    /// The next reply if a whole one has come, without waiting.
    pub fn try_next(&mut self) -> Result<Option<Reply>, ControlError> {
        match self.wait(Some(Instant::now()), None) {
            Ok(Heard::Reply(reply)) => Ok(Some(reply)),
            Ok(Heard::Extra) => Ok(None),
            Err(ControlError::NotAnswering { why, .. }) if why == NO_ANSWER => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn gone(&self, why: String) -> ControlError {
        ControlError::NotAnswering { pid: self.pid, why }
    }
}
