//! Starting a daemon: fork, setsid, fork again, set the process up, exec the
//! Lisp; then wait for its word on the readiness pipe.
//!
//! All process set-up is done here, in Rust, before exec: the Lisp never
//! forks. The starting process makes itself the subreaper of the daemon, so
//! it can reap it and read its exit status if it dies before it is ready.
//!
//! The readiness pipe carries the words of `readiness`: first from the
//! daemon process before exec, then from the bootstrap.

use std::fs::File;
use std::io::Write as _;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;

use nix::sys::signal::Signal;
use nix::sys::stat::{Mode, umask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, chdir, fork, pipe2, setsid};

use super::error::{DaemonError, SetupError};
use super::events::{Event, EventLoop, take_signals};
use super::exec::{self, Become, exit_now};
use super::identity::Switch;
use super::launch::Launch;
use super::notify::Notifier;
use super::pidfile::Claim;
use super::process::PidFd;
use super::readiness::{self, Word, read_what_is_there};
use super::supervise;
use crate::logging::Logger;
use crate::plan::{LOCK_FD, READY_FD, Slot};
use crate::report::Fact;

impl Launch {
    /// `nodaemon` under a service manager or as PID 1: the Lisp runs as our
    /// child; we notify readiness, stopping and failure, forward SIGTERM,
    /// SIGINT, SIGHUP and SIGUSR1 to it, reap every zombie, and return the
    /// Lisp's exit status (128 + the signal if a signal ended it).
    pub fn run_as_parent(self, notifier: Option<&Notifier>) -> Result<i32, DaemonError> {
        let signals = take_signals(&[
            Signal::SIGTERM,
            Signal::SIGINT,
            Signal::SIGHUP,
            Signal::SIGUSR1,
            Signal::SIGCHLD,
        ])?;
        let (read_end, write_end) = pipe2(OFlag::O_CLOEXEC).map_err(DaemonError::Pipe)?;
        let child = self.fork_child(write_end, false)?;
        let mut events = EventLoop::new(Some(signals), None);
        events.pipe = Some(File::from(read_end));
        // The failure is told once, whether the pipe's end or the exit is
        // seen first (both may come from one wait).
        let mut told = false;
        loop {
            match events.next()? {
                Event::Said if readiness::is_ready(&events.text) => {
                    if let Some(n) = notifier {
                        n.send(&format!("READY=1\nMAINPID={}", std::process::id()));
                    }
                    events.text.clear();
                    events.pipe = None;
                }
                Event::PipeClosed => notify_failure(notifier, &events.text, &mut told),
                Event::Signal(Signal::SIGCHLD) => {
                    if let Some(code) = reap_all(child) {
                        // Its report may still be in the pipe (the exit can
                        // be seen first): read what is there, without waiting.
                        if let Some(mut pipe) = events.pipe.take() {
                            read_what_is_there(&mut pipe, &mut events.text);
                        }
                        notify_failure(notifier, &events.text, &mut told);
                        return Ok(code);
                    }
                }
                Event::Signal(signal) => {
                    if let (Some(n), Signal::SIGTERM | Signal::SIGINT) = (notifier, signal) {
                        n.send("STOPPING=1");
                    }
                    self.aim.signal_child(child, signal);
                }
                Event::Said | Event::ChildExited | Event::Deadline => {}
            }
        }
    }

    /// The Lisp as our child, the readiness pipe's write end `ready` on
    /// `READY_FD`, the plan's other slots filled (`/dev/null`); in a session
    /// of its own (`own_session`, or when it runs as another user), killed
    /// if we die (`own_session`: a builder of cores).
    pub(super) fn fork_child(&self, ready: OwnedFd, own_session: bool) -> Result<Pid, DaemonError> {
        let parent = std::process::id() as i32;
        // SAFETY: single-threaded; the child only sets itself up and execs.
        match unsafe { fork() }.map_err(DaemonError::Fork)? {
            ForkResult::Child => {
                let null = nix::fcntl::open("/dev/null", OFlag::O_RDWR, Mode::empty())
                    .map(IntoRawFd::into_raw_fd)
                    .ok();
                let placed =
                    exec::fresh_bootstrap(self.bootstrap.as_raw_fd()).and_then(|bootstrap| {
                        exec::arrange(&self.layout(|slot| match slot {
                            Slot::Bootstrap => Some(bootstrap),
                            Slot::Ready => Some(ready.as_raw_fd()),
                            Slot::Null => null,
                            _ => None,
                        }))
                    });
                if placed.is_ok() {
                    // Another user's Lisp gets no controlling terminal of ours.
                    let how = Become {
                        new_session: own_session || self.switch.is_some(),
                        die_with_parent: own_session.then_some(parent),
                        ..Become::default()
                    };
                    exec::exec_lisp(self, how, &mut |_| {});
                }
                exit_now(127)
            }
            ForkResult::Parent { child } => Ok(child),
        }
    }
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

/// `STATUS=` with the first line of the Lisp's error report, if it made
/// one and it was not told yet.
fn notify_failure(notifier: Option<&Notifier>, text: &str, told: &mut bool) {
    if let (false, Some(n), Some(report)) = (*told, notifier, readiness::error_report(text)) {
        let first = report.lines().next().unwrap_or("the main function failed");
        n.send(&format!("STATUS={first}"));
        *told = true;
    }
}

/// Starts the daemon and waits up to `timeout` for its readiness.
pub fn start(launch: Launch, timeout: Duration, logger: &Logger) -> Result<Fact, DaemonError> {
    let (read_end, write_end) = pipe2(OFlag::O_CLOEXEC).map_err(DaemonError::Pipe)?;
    nix::sys::prctl::set_child_subreaper(true).map_err(DaemonError::Subreaper)?;
    // SAFETY: this program is single-threaded, so the child may do anything
    // the parent could; it only sets itself up and execs or exits.
    match unsafe { fork() }.map_err(DaemonError::Fork)? {
        ForkResult::Child => {
            let reader = launch.keep_ready_reader.then_some(read_end);
            let _ = setsid();
            // SAFETY: as above; the intermediate child exits at once, so the
            // daemon is never a session leader and cannot regain a terminal.
            match unsafe { fork() } {
                Ok(ForkResult::Child) => daemon_process(launch, write_end, reader, logger),
                _ => exit_now(0),
            }
        }
        ForkResult::Parent { child } => {
            drop(write_end);
            drop(launch);
            waitpid(child, None).map_err(|errno| DaemonError::Wait {
                pid: child.as_raw(),
                errno,
            })?;
            wait_ready(read_end, timeout, logger)
        }
    }
}

/// The descriptor of the pid directory in the daemon process (close-on-exec).
const DIR_FD: RawFd = LOCK_FD + 1;

/// The daemon process, between fork and exec. Never returns.
fn daemon_process(
    mut launch: Launch,
    pipe: OwnedFd,
    reader: Option<OwnedFd>,
    logger: &Logger,
) -> ! {
    let pid = std::process::id() as i32;
    let pipe = pipe.into_raw_fd();
    // SAFETY: `pipe` is the open write end of the readiness pipe; the File is
    // never dropped (this process execs or exits), so nothing closes it twice.
    let mut early = ManuallyDrop::new(unsafe { File::from_raw_fd(pipe) });
    let _ = early.write_all(Word::Pid(pid).line().as_bytes());
    if let Err(message) = set_up(&mut launch, pipe, reader) {
        setup_error(&mut early, &message);
    }
    // From here on the pipe is READY_FD, which the Lisp inherits.
    // SAFETY: set_up placed the pipe on READY_FD; never dropped, as above.
    let mut pipe = ManuallyDrop::new(unsafe { File::from_raw_fd(READY_FD) });
    let Some(files) = launch.pid_files.take() else {
        setup_error(&mut pipe, &"no pid file to claim")
    };
    match files.claim(LOCK_FD, pid) {
        Ok(Claim::Locked) => {}
        Ok(Claim::Held(holder)) => {
            let _ = pipe.write_all(Word::Running(holder).line().as_bytes());
            exit_now(0);
        }
        Err(e) => setup_error(&mut pipe, &e),
    }
    let _ = pipe.write_all(Word::Locked.line().as_bytes());
    if let Some(policy) = launch.supervise.clone() {
        let _ = chdir("/");
        umask(Mode::from_bits_truncate(launch.umask));
        let starter = ManuallyDrop::into_inner(pipe);
        supervise::run(launch, files, &policy, starter, logger);
    }
    if let Some(output) = &launch.output
        && let Err(e) = capture_output(output, launch.switch.as_ref())
    {
        files.remove_own();
        setup_error(&mut pipe, &e);
    }
    let how = Become {
        daemon: true,
        ..Become::default()
    };
    let e = exec::exec_lisp(&launch, how, &mut |word| {
        let _ = pipe.write_all(word.line().as_bytes());
    });
    files.remove_own();
    setup_error(&mut pipe, &e)
}

/// `:output`: stdout and stderr appended to the file, created 0640 and
/// owned by the daemon's user; opened as `crate::trust::open_append` does
/// (no symbolic link the user could have made, no FIFO, no hard link).
fn capture_output(path: &Path, switch: Option<&Switch>) -> Result<(), SetupError> {
    let file = super::output::open(path, switch.map(Switch::ids)).map_err(SetupError::Output)?;
    for target in [1, 2] {
        exec::place(file.as_raw_fd(), target)?;
    }
    Ok(())
}

fn setup_error(pipe: &mut File, error: &dyn std::fmt::Display) -> ! {
    let _ = pipe.write_all(Word::SetupError(error.to_string()).line().as_bytes());
    exit_now(1)
}

/// Standard streams on /dev/null, the bootstrap on `BOOTSTRAP_FD`, the
/// readiness pipe on `READY_FD`, the pid directory on `DIR_FD`
/// (close-on-exec), the pipe's read end on `READY_READER_FD` if the Lisp
/// keeps it, and every other inherited descriptor closed.
fn set_up(launch: &mut Launch, pipe: RawFd, reader: Option<OwnedFd>) -> Result<(), SetupError> {
    // Raw from here on: `arrange` closes or replaces it.
    let null = nix::fcntl::open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(SetupError::DevNull)?
        .into_raw_fd();
    let bootstrap = exec::fresh_bootstrap(launch.bootstrap.as_raw_fd())?;
    let reader_fd = reader.as_ref().map(|r| r.as_raw_fd());
    // The daemon process's own part of the plan's layout: the lock's slot
    // held by /dev/null until the claim places the lock there, stdout and
    // stderr on /dev/null until :output is opened.
    let mut layout = launch.layout(|slot| match slot {
        Slot::Null | Slot::Lock | Slot::Output => Some(null),
        Slot::Bootstrap => Some(bootstrap),
        Slot::Ready => Some(pipe),
        Slot::ReadyReader => reader_fd,
        Slot::Reload | Slot::ReloadReader => None,
    });
    if let Some(files) = &launch.pid_files {
        layout.push((files.dir_fd(), DIR_FD));
    }
    exec::arrange(&layout)?;
    if let Some(files) = &mut launch.pid_files {
        files.adopt_dir_fd(DIR_FD);
    }
    // Closed by `arrange`: never dropped again.
    std::mem::forget(reader);
    Ok(())
}

/// What `start` has heard from the daemon so far.
#[derive(Default)]
struct Heard {
    daemon: Option<i32>,
    locked: bool,
    /// Lines already looked at.
    seen: usize,
    /// Where the Lisp's error report starts in the text, once it said `error`.
    report: Option<usize>,
}

/// Reads the readiness pipe until a verdict or the timeout.
fn wait_ready(pipe: OwnedFd, timeout: Duration, logger: &Logger) -> Result<Fact, DaemonError> {
    let mut events = EventLoop::new(None, None);
    events.pipe = Some(File::from(pipe));
    let deadline = Instant::now() + timeout;
    let mut progress = Progress::on_terminal(timeout);
    events.deadline = Some(progress.next.min(deadline));
    let mut heard = Heard::default();
    let verdict = loop {
        let event = events.next()?;
        // A tick of the progress line, not the timeout.
        if matches!(event, Event::Deadline) && Instant::now() < deadline {
            progress.tick();
            events.deadline = Some(progress.next.min(deadline));
            continue;
        }
        if let Some(fact) = verdict_of(event, &mut events, &mut heard, timeout, logger) {
            break fact;
        }
    };
    progress.clear();
    Ok(verdict)
}

/// A line on a terminal's stderr while start waits: after a second,
/// `waiting for :main-function (3 s, timeout 60 s)`, updated in place and
/// gone when the wait ends. Nothing when stderr is not a terminal.
struct Progress {
    enabled: bool,
    started: Instant,
    timeout: Duration,
    /// When the line next changes (far away when it is off).
    next: Instant,
    shown: bool,
}

impl Progress {
    fn on_terminal(timeout: Duration) -> Progress {
        let enabled = nix::unistd::isatty(std::io::stderr()).unwrap_or(false);
        let started = Instant::now();
        let first = if enabled { 1 } else { u64::from(u32::MAX) };
        Progress {
            enabled,
            started,
            timeout,
            next: started + Duration::from_secs(first),
            shown: false,
        }
    }

    /// Shows the line once its time has come, and sets the next.
    fn tick(&mut self) {
        if !self.enabled || Instant::now() < self.next {
            return;
        }
        let waited = self.next.duration_since(self.started).as_secs();
        eprint!(
            "\r\x1b[Kwaiting for :main-function ({waited} s, timeout {} s)",
            self.timeout.as_secs()
        );
        self.shown = true;
        self.next += Duration::from_secs(1);
    }

    fn clear(&self) {
        if self.shown {
            eprint!("\r\x1b[K");
        }
    }
}

/// The verdict an event gives, if any.
fn verdict_of(
    event: Event,
    events: &mut EventLoop,
    heard: &mut Heard,
    timeout: Duration,
    logger: &Logger,
) -> Option<Fact> {
    if let Some(report) = heard.report {
        // The rest of the report, until the pipe closes: bounded in time
        // (a child of the Lisp may keep the pipe open) and size.
        if matches!(event, Event::PipeClosed | Event::Deadline) {
            let _ = end(heard.daemon);
            let report = events.text[report..].trim_end().to_string();
            return Some(Fact::FunctionError { report });
        }
        return None;
    }
    match event {
        Event::Said => hear(&events.text, heard, logger),
        Event::PipeClosed => Some(Fact::Died {
            how: end(heard.daemon),
        }),
        Event::Deadline => Some(match (heard.daemon, heard.locked) {
            (Some(pid), true) => Fact::StillInitializing {
                pid,
                waited: timeout,
            },
            _ => Fact::SetupFailed {
                message: format!(
                    "no word from the daemon process within {} s",
                    timeout.as_secs()
                ),
            },
        }),
        Event::Signal(_) | Event::ChildExited => None,
    }
}

/// Takes in the new complete lines of `text`; the verdict, if they give one.
fn hear(text: &str, heard: &mut Heard, logger: &Logger) -> Option<Fact> {
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        offset += line.len();
        let Some(line) = line.strip_suffix('\n') else {
            break;
        };
        if i < heard.seen {
            continue;
        }
        heard.seen = i + 1;
        let word = line.parse::<Word>();
        if let Some(step) = word.as_ref().ok().and_then(Word::trace) {
            logger.trace(&step);
        }
        match word {
            Ok(Word::Pid(pid)) => heard.daemon = Some(pid),
            Ok(Word::Locked) => heard.locked = true,
            Ok(Word::Running(holder)) => {
                reap(heard.daemon);
                return Some(Fact::AlreadyRunning { pid: holder });
            }
            Ok(Word::SetupError(message)) => {
                reap(heard.daemon);
                return Some(Fact::SetupFailed { message });
            }
            Ok(Word::Died(how)) => {
                reap(heard.daemon);
                return Some(Fact::Died { how });
            }
            Ok(Word::Ready) => {
                if let Some(pid) = heard.daemon {
                    return Some(Fact::Started { pid });
                }
            }
            Ok(Word::Error) => {
                heard.report = Some(offset);
                return None;
            }
            _ => {}
        }
    }
    None
}

/// Reaps a daemon process that has exited or is about to.
fn reap(daemon: Option<i32>) {
    if let Some(pid) = daemon {
        let _ = waitpid(Pid::from_raw(pid), None);
    }
}

/// Waits (bounded) for a failed daemon to exit, kills it if it does not,
/// reaps it, and says how it ended.
fn end(daemon: Option<i32>) -> String {
    let Some(pid) = daemon else {
        return "the daemon process ended before it started the Lisp".to_string();
    };
    if let Ok(fd) = PidFd::open(pid) {
        let _ = fd.end_within(super::KILL_WAIT);
    }
    match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::Exited(_, code)) => {
            format!("the Lisp (pid {pid}) exited with status {code} before it was ready")
        }
        Ok(WaitStatus::Signaled(_, signal, _)) => {
            format!(
                "the Lisp (pid {pid}) was killed by {} before it was ready",
                signal.as_str()
            )
        }
        _ => format!("the Lisp (pid {pid}) closed its readiness pipe before it was ready"),
    }
}
