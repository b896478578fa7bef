//! One event loop for every process that waits on a Lisp: `start` waiting
//! for readiness, `nodaemon` as the parent of its Lisp, and the supervisor.
//! It waits at once on what each of them may have: signals (a signalfd),
//! the readiness pipe, the child's exit (a pidfd), the captured output, and
//! a deadline; and hands them out one event at a time.

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use std::collections::VecDeque;
use std::fs::File;
use std::io::Read as _;
use std::os::fd::{AsFd, AsRawFd as _, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt as _;
use std::time::Instant;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use super::error::DaemonError;
use super::output::Output;
use super::process::PidFd;
use crate::wire::readiness::MAX_REPORT;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The readiness pipe said more (see `EventLoop::text`).
    Said,
    /// The readiness pipe closed.
    PipeClosed,
    Signal(Signal),
    /// The child ended (it is not reaped yet).
    ChildExited,
    /// The deadline passed.
    Deadline,
    /// The daemon said it is ready on its notify socket, or its port
    /// answered (see `EventLoop::ready_by`).
    Readied,
    /// One of `EventLoop::others` ended (it is not reaped yet): its pid.
    OtherExited(i32),
    /// The watchdog's connection has something (see `EventLoop::watch`).
    Watched,
}

/// How a daemon that does not only report on its readiness pipe says it is
/// ready (`:ready :notify`, `:ready (:port N)`). Heard only while `armed`
/// (a Lisp starts and is not ready yet); the notify socket is drained
/// always, so one socket serves every Lisp a supervisor starts.
pub struct ReadyBy {
    pub armed: bool,
    how: How,
}

enum How {
    /// Datagrams on the notify socket given to the Lisp.
    Notify(super::notify::Listener),
    /// A TCP connection to its port, tried every `PROBE_EVERY` from `next`,
    /// which counts when a listener of the daemon's `uid` is there.
    Port {
        address: std::net::SocketAddr,
        uid: u32,
        next: Instant,
    },
}

/// How often a port is tried while a daemon starts.
pub const PROBE_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

impl ReadyBy {
    /// For a daemon of `uid` that is ready as `ready` says: its notify
    /// socket (in its control directory `dir`), or its port, or nothing
    /// beyond the pipe. Not armed yet.
    pub fn of(
        ready: &crate::config::Readiness,
        uid: u32,
        dir: Option<&super::rundir::ControlDir>,
    ) -> std::io::Result<Option<ReadyBy>> {
        use crate::config::Readiness;
        let how = match ready {
            Readiness::Returned => return Ok(None),
            Readiness::Notify => {
                let dir = dir.ok_or_else(|| std::io::Error::other("no control directory"))?;
                How::Notify(super::notify::Listener::bind(dir, uid)?)
            }
            Readiness::Port { port, address } => How::Port {
                address: std::net::SocketAddr::new(*address, *port),
                uid,
                next: Instant::now(),
            },
        };
        Ok(Some(ReadyBy { armed: false, how }))
    }

    /// Listens from now on (a Lisp runs and is not ready).
    pub fn arm(&mut self) {
        self.armed = true;
        if let How::Port { next, .. } = &mut self.how {
            *next = Instant::now();
        }
    }

    /// The value of the Lisp's `NOTIFY_SOCKET`, if it has a socket.
    pub fn notify_address(&self) -> Option<String> {
        match &self.how {
            How::Notify(listener) => Some(listener.address()),
            How::Port { .. } => None,
        }
    }

    /// Whether the daemon's port answers now: a connection opened and
    /// closed, and a socket of the daemon's `uid` listens on the port (the
    /// kernel's word, in /proc/net: any user can listen on a free port
    /// before the daemon does).
    pub fn port_answers(address: &std::net::SocketAddr, uid: u32) -> bool {
        std::net::TcpStream::connect_timeout(address, PROBE_EVERY).is_ok()
            && listens_as(address.port(), uid)
    }
}

/// Whether a TCP socket of `uid` listens on `port` (IPv4 or IPv6), by
/// /proc/net/tcp{,6}: `sl local rem st queues timer retransmits uid ...`,
/// the local address `HEXADDR:HEXPORT`, LISTEN being state `0A`.
fn listens_as(port: u16, uid: u32) -> bool {
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|table| {
        std::fs::read_to_string(table).is_ok_and(|text| {
            text.lines().skip(1).any(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let local_port = fields
                    .get(1)
                    .and_then(|a| a.rsplit_once(':'))
                    .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
                local_port == Some(port)
                    && fields.get(3) == Some(&"0A")
                    && fields.get(7).and_then(|u| u.parse::<u32>().ok()) == Some(uid)
            })
        })
    })
}

/// The sources one waiting process has.
#[derive(Default)]
pub struct EventLoop {
    pub signals: Option<SignalFd>,
    /// The readiness pipe; `None` once closed or no longer watched.
    pub pipe: Option<File>,
    /// What the readiness pipe has said so far (at most `MAX_REPORT`).
    pub text: String,
    pub child: Option<PidFd>,
    /// Other children watched (a supervisor's next Lisp, and the ones it
    /// retires).
    pub others: Vec<PidFd>,
    /// The captured output, drained whenever it has data.
    pub output: Option<Output>,
    pub deadline: Option<Instant>,
    /// The notify socket or port of a starting daemon; `None` once ready.
    pub ready_by: Option<ReadyBy>,
    /// What the notify socket said besides readiness (`STATUS=`).
    pub statuses: Vec<String>,
    /// The watchdog's question under way, on the Lisp's control socket.
    pub watch: Option<super::control::Control>,
    pending: VecDeque<Event>,
}

impl EventLoop {
    /// A loop over these sources; the pipe, the child and the deadline are
    /// set as they come.
    pub fn new(signals: Option<SignalFd>, output: Option<Output>) -> EventLoop {
        EventLoop {
            signals,
            output,
            ..EventLoop::default()
        }
    }

    /// The next event, waiting as long as it takes (or until the deadline).
    pub fn next(&mut self) -> Result<Event, DaemonError> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(event);
            }
            if let Some(o) = &mut self.output {
                o.drain();
            }
            self.wait()?;
        }
    }

    fn wait(&mut self) -> Result<(), DaemonError> {
        const SIGNALS: usize = 0;
        const PIPE: usize = 1;
        const CHILD: usize = 2;
        const OUTPUT: usize = 3;
        const NOTIFY: usize = 4;
        const WATCH: usize = 5;
        const OTHERS: usize = 6;
        let mut fds = Vec::with_capacity(5 + self.others.len());
        let mut which = Vec::with_capacity(5 + self.others.len());
        let (notify, probe) = match self.ready_by.as_ref().map(|r| (r.armed, &r.how)) {
            Some((_, How::Notify(listener))) => (Some(listener.fd()), None),
            Some((true, How::Port { next, .. })) => (None, Some(*next)),
            _ => (None, None),
        };
        let sources = [
            (SIGNALS, self.signals.as_ref().map(|s| s.as_fd())),
            (PIPE, self.pipe.as_ref().map(|p| p.as_fd())),
            (CHILD, self.child.as_ref().map(|c| c.as_fd())),
            (OUTPUT, self.output.as_ref().map(|o| o.read_fd())),
            (NOTIFY, notify),
            (WATCH, self.watch.as_ref().map(|w| w.fd())),
        ];
        for (source, fd) in sources {
            if let Some(fd) = fd {
                fds.push((fd, PollFlags::POLLIN));
                which.push(source);
            }
        }
        for (i, other) in self.others.iter().enumerate() {
            fds.push((other.as_fd(), PollFlags::POLLIN));
            which.push(OTHERS + i);
        }
        let until = match (self.deadline, probe) {
            (Some(d), Some(p)) => Some(d.min(p)),
            (d, p) => d.or(p),
        };
        let seen = match ready_within(&fds, until) {
            Ok(None) => vec![PollFlags::empty(); fds.len()],
            Ok(Some(seen)) => seen,
            Err(e) => return Err(DaemonError::Poll(e)),
        };
        drop(fds);
        self.probe_port();
        let ready: Vec<usize> = seen
            .iter()
            .zip(&which)
            .filter(|(r, _)| !r.is_empty())
            .map(|(_, source)| *source)
            .collect();
        let mut ended = Vec::new();
        for source in ready {
            match source {
                other if other >= OTHERS => ended.push(other - OTHERS),
                SIGNALS => self.read_signal(),
                PIPE => self.read_pipe(),
                CHILD => {
                    self.child = None;
                    self.pending.push_back(Event::ChildExited);
                }
                NOTIFY => self.read_notices(),
                WATCH => self.pending.push_back(Event::Watched),
                _ => {} // OUTPUT: drained by `next`.
            }
        }
        for i in ended.into_iter().rev() {
            let other = self.others.remove(i);
            self.pending.push_back(Event::OtherExited(other.pid));
        }
        // A deadline that has passed fires even when something was ready:
        // a flood on a pipe the Lisp shares cannot stretch it.
        if self
            .deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
        {
            self.deadline = None;
            self.pending.push_back(Event::Deadline);
        }
        Ok(())
    }

    /// Tries the port once its time has come.
    fn probe_port(&mut self) {
        if let Some(ReadyBy {
            armed: armed @ true,
            how: How::Port { address, uid, next },
        }) = &mut self.ready_by
            && Instant::now() >= *next
        {
            if ReadyBy::port_answers(address, *uid) {
                *armed = false;
                self.pending.push_back(Event::Readied);
            } else {
                *next = Instant::now() + PROBE_EVERY;
            }
        }
    }

    fn read_notices(&mut self) {
        let Some(ReadyBy {
            armed,
            how: How::Notify(listener),
        }) = &mut self.ready_by
        else {
            return;
        };
        let mut ready = false;
        for notice in listener.take() {
            match notice {
                super::notify::Notice::Ready => ready = true,
                super::notify::Notice::Status(text) if *armed && self.statuses.len() < 16 => {
                    self.statuses.push(text)
                }
                super::notify::Notice::Status(_) => {}
            }
        }
        if ready && *armed {
            *armed = false;
            self.pending.push_back(Event::Readied);
        }
    }

    fn read_signal(&mut self) {
        if let Some(Ok(Some(info))) = self.signals.as_ref().map(SignalFd::read_signal)
            && let Ok(signal) = Signal::try_from(info.ssi_signo as i32)
        {
            self.pending.push_back(Event::Signal(signal));
        }
    }

    fn read_pipe(&mut self) {
        let Some(pipe) = &mut self.pipe else { return };
        let mut buf = [0u8; 4096];
        match pipe.read(&mut buf) {
            // Nothing after all (another reader took it).
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Ok(0) | Err(_) => {
                self.pipe = None;
                self.pending.push_back(Event::PipeClosed);
            }
            Ok(n) => {
                append_capped(&mut self.text, &buf[..n]);
                self.pending.push_back(Event::Said);
            }
        }
    }
}

/// The one wait on descriptors (every wait of the tool on a Lisp, a pipe
/// or a process goes through it): until one of `fds` has what its flags
/// ask for (or hung up, or failed), or `deadline` passes. `None` when the
/// deadline passed first; else what each descriptor had (all empty when a
/// signal interrupted the wait: the caller looks again). The deadline is
/// rounded up, never reported early.
pub fn ready_within(
    fds: &[(BorrowedFd<'_>, PollFlags)],
    deadline: Option<Instant>,
) -> Result<Option<Vec<PollFlags>>, Errno> {
    let mut polled: Vec<PollFd> = fds
        .iter()
        .map(|(fd, flags)| PollFd::new(*fd, *flags))
        .collect();
    let timeout = match deadline {
        None => PollTimeout::NONE,
        Some(deadline) => {
            let left = deadline.saturating_duration_since(Instant::now());
            PollTimeout::try_from(left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32)
                .unwrap_or(PollTimeout::MAX)
        }
    };
    match poll(&mut polled, timeout) {
        Ok(0) if deadline.is_some() => Ok(None),
        Ok(_) => Ok(Some(
            polled
                .iter()
                .map(|fd| fd.revents().unwrap_or(PollFlags::empty()))
                .collect(),
        )),
        Err(Errno::EINTR) => Ok(Some(vec![PollFlags::empty(); fds.len()])),
        Err(e) => Err(e),
    }
}

/// Blocks `signals` and returns a signalfd that reads them.
pub fn take_signals(signals: &[Signal]) -> Result<SignalFd, DaemonError> {
    let mut mask = SigSet::empty();
    for signal in signals {
        mask.add(*signal);
    }
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None).map_err(DaemonError::Signals)?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC).map_err(DaemonError::Signals)
}

/// A read end of the pipe of `fd` through an open file description of our
/// own, non-blocking: the other holders of `fd`'s description (a Lisp that
/// keeps its pipe's read end) cannot change its flags under our reads.
pub fn own_reader(fd: OwnedFd) -> Result<File, DaemonError> {
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            DaemonError::Pipe(nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0)))
        })?;
    drop(fd);
    Ok(file)
}

/// Appends to `text` what `pipe` holds now, without waiting for more (a
/// child of the exited Lisp may still hold the write end).
pub fn read_what_is_there(pipe: &mut File, text: &mut String) {
    let _ = fcntl(pipe.as_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
    let mut rest = Vec::new();
    let _ = pipe.take(MAX_REPORT as u64).read_to_end(&mut rest);
    append_capped(text, &rest);
}

/// Appends the Lisp's words to `text`, keeping at most `MAX_REPORT` bytes:
/// the Lisp runs the daemon user's code, which may flood the pipe.
pub fn append_capped(text: &mut String, bytes: &[u8]) {
    if text.len() < MAX_REPORT {
        text.push_str(&String::from_utf8_lossy(bytes));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pipe that always has more to say cannot hold off a deadline
    /// that has passed.
    #[test]
    fn a_flood_does_not_stretch_the_deadline() {
        let (read, write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
                .unwrap();
        let mut events = EventLoop::new(None, None);
        events.pipe = Some(File::from(read));
        events.deadline = Some(Instant::now());
        let mut saw_deadline = false;
        for _ in 0..100 {
            nix::unistd::write(&write, b"a word\n").unwrap();
            if matches!(events.next().unwrap(), Event::Deadline) {
                saw_deadline = true;
                break;
            }
        }
        assert!(saw_deadline, "the deadline never fired under the flood");
    }
}
