//! A Lisp as our child, in the foreground: `nodaemon` under a service
//! manager, as PID 1, or as another user (the tool stays as its parent to
//! notify, forward signals, reap and relay a pty), and a builder of cores.

use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};

use nix::fcntl::OFlag;
use nix::sys::signal::Signal;
use nix::sys::stat::Mode;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Pid, pipe2};

use super::error::DaemonError;
use super::events::{Event, EventLoop, ReadyBy, own_reader, read_what_is_there, take_signals};
use super::exec::{self, Become, exit_now};
use super::launch::Launch;
use super::notify::Notifier;
use super::pty::Pty;
use crate::plan::Slot;
use crate::wire::readiness::{Protocol, Stage, Word};

/// `nodaemon` under a service manager or as PID 1: the Lisp runs as our
/// child; we notify readiness, stopping and failure, forward SIGTERM,
/// SIGINT, SIGHUP and SIGUSR1 to it, reap every zombie, and return the
/// Lisp's exit status (128 + the signal if a signal ended it).
pub fn run(mut launch: Launch, notifier: Option<&Notifier>) -> Result<i32, DaemonError> {
    let signals = take_signals(&[
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGUSR1,
        Signal::SIGCHLD,
        Signal::SIGWINCH,
    ])?;
    let (read_end, write_end) = pipe2(OFlag::O_CLOEXEC).map_err(DaemonError::Pipe)?;
    // Another user's Lisp never holds the caller's terminal.
    let pty = match launch.switch {
        Some(_) => Pty::for_caller()?,
        None => None,
    };
    let mut ready_by = ReadyBy::of(&launch.ready, launch.uid(), launch.control_dir.as_ref())
        .map_err(DaemonError::NotifySocket)?;
    launch.notify_to(ready_by.as_ref());
    if let Some(by) = &mut ready_by {
        by.arm();
    }
    let child = fork_child(&launch, write_end, false, pty.as_ref())?;
    let relay = pty.map(Pty::relay);
    let mut events = EventLoop::new(Some(signals), None);
    events.pipe = Some(own_reader(read_end)?);
    events.ready_by = ready_by;
    let ready = |events: &mut EventLoop| {
        if let Some(n) = notifier {
            n.send(&format!("READY=1\nMAINPID={}", std::process::id()));
        }
        events.pipe = None;
        if let Some(by) = &mut events.ready_by {
            by.armed = false;
        }
    };
    let mut protocol = Protocol::new(Stage::Execed);
    // The failure is told once, whether the pipe's end or the exit is
    // seen first (both may come from one wait).
    let mut told = false;
    loop {
        match events.next()? {
            Event::Said => {
                for word in protocol.take(&events.text) {
                    match word {
                        Ok(Word::Ready) => ready(&mut events),
                        Ok(Word::Status(text)) => status(notifier, &text),
                        Ok(_) => {}
                        // A Lisp that breaks the protocol is ended.
                        Err(_) => launch.aim.signal_child(child, Signal::SIGKILL),
                    }
                }
            }
            Event::PipeClosed => notify_failure(notifier, protocol.report(&events.text), &mut told),
            Event::Signal(Signal::SIGCHLD) => {
                if let Some(code) = reap_all(child) {
                    // Its report may still be in the pipe (the exit can
                    // be seen first): read what is there, without waiting.
                    if let Some(mut pipe) = events.pipe.take() {
                        read_what_is_there(&mut pipe, &mut events.text);
                        let _ = protocol.take(&events.text);
                    }
                    notify_failure(notifier, protocol.report(&events.text), &mut told);
                    end_tree(&launch, child);
                    if let Some(relay) = relay {
                        relay.finish();
                    }
                    return Ok(code);
                }
            }
            Event::Signal(Signal::SIGWINCH) => {
                if let Some(relay) = &relay {
                    relay.resize();
                }
            }
            Event::Signal(signal) => {
                if let (Some(n), Signal::SIGTERM | Signal::SIGINT) = (notifier, signal) {
                    n.send("STOPPING=1");
                }
                launch.aim.signal_child(child, signal);
            }
            Event::Readied => {
                for text in std::mem::take(&mut events.statuses) {
                    status(notifier, &text);
                }
                ready(&mut events);
            }
            Event::ChildExited | Event::Deadline | Event::OtherExited(_) | Event::Watched => {}
        }
    }
}

/// Once the Lisp that `nodaemon` runs has ended: its cgroup, or the
/// session of another user's Lisp, ends with it.
fn end_tree(launch: &Launch, child: Pid) {
    match &launch.cgroup {
        Some(cgroup) => {
            cgroup.kill_all(super::KILL_WAIT);
            cgroup.remove();
        }
        None if launch.switch.is_some() => {
            super::contain::end_session(child.as_raw(), super::KILL_WAIT)
        }
        None => {}
    }
}

/// The Lisp as our child, the readiness pipe's write end `ready` on
/// `READY_FD`, the plan's other slots filled (`/dev/null`); in a session
/// of its own (`own_session`: a builder of cores; or when it runs as
/// another user), killed if we die.
pub(super) fn fork_child(
    launch: &Launch,
    ready: OwnedFd,
    own_session: bool,
    pty: Option<&Pty>,
) -> Result<Pid, DaemonError> {
    let parent = std::process::id() as i32;
    super::fork::child(|| {
        let null = nix::fcntl::open("/dev/null", OFlag::O_RDWR, Mode::empty())
            .map(IntoRawFd::into_raw_fd)
            .ok();
        let contained = launch.cgroup.as_ref().map_or(Ok(()), |c| c.enter());
        let placed = pty
            .map_or(Ok(()), Pty::place_slave)
            .and_then(|()| exec::fresh_bootstrap(launch.bootstrap.as_raw_fd()))
            .and_then(|bootstrap| {
                exec::arrange(&launch.layout(|slot| match slot {
                    Slot::Bootstrap => Some(bootstrap),
                    Slot::Ready => Some(ready.as_raw_fd()),
                    Slot::Null => null,
                    _ => None,
                }))
            });
        if placed.is_ok() && contained.is_ok() {
            // Another user's Lisp gets no controlling terminal of
            // ours: at most a pty of its own.
            let how = Become {
                new_session: own_session || launch.switch.is_some(),
                // The Lisp is this tool's child for its whole life: if
                // the tool is killed (SIGKILL), it goes too, never left
                // running with no one to stop it.
                die_with_parent: Some(parent),
                terminal: pty.map(Pty::controlling),
                ..Become::default()
            };
            exec::exec_lisp(launch, how, &mut |_| {});
        }
        exit_now(127)
    })
    .map_err(DaemonError::Fork)
}

/// Reaps every zombie (as PID 1 we inherit orphans); the exit code of
/// `child` (128 + the signal if one ended it) once it is among them.
fn reap_all(child: Pid) -> Option<i32> {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == child => return Some(code),
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid == child => {
                return Some(128 + signal as i32);
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// `STATUS=` with the daemon's own status text, shown (see `visible`).
fn status(notifier: Option<&Notifier>, text: &str) {
    if let Some(n) = notifier {
        n.send(&format!("STATUS={}", crate::visible::line(text)));
    }
}

/// `STATUS=` with the first line of the Lisp's error report, if it made
/// one and it was not told yet.
fn notify_failure(notifier: Option<&Notifier>, report: Option<&str>, told: &mut bool) {
    if let (false, Some(n), Some(report)) = (*told, notifier, report) {
        let first = report.lines().next().unwrap_or("the main function failed");
        n.send(&format!("STATUS={}", crate::visible::line(first)));
        *told = true;
    }
}
