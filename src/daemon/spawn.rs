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

use nix::sys::stat::{Mode, umask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Pid, chdir, pipe2, setsid};

use super::contain::Cgroup;
use super::error::{DaemonError, SetupError};
use super::events::{Event, EventLoop, ReadyBy, own_reader, read_what_is_there};
use super::exec::{self, Become, exit_now};
use super::fact::Fact;
use super::identity::Switch;
use super::launch::Launch;
use super::process::PidFd;
use super::rundir::Claim;
use super::supervise;
use crate::logging::Logger;
use crate::plan::{LOCK_FD, READY_FD, Slot};
use crate::wire::readiness::{Protocol, Stage, Word};

/// Starts the daemon and waits up to `timeout` for its readiness.
///
/// The daemon's pid comes from our own fork: the intermediate process
/// (ours, before any exec) writes the pid its fork returned on a pipe only
/// it holds, and exits; the daemon, reparented to us (the subreaper), is
/// our child from then on, so its pid cannot be reused while we wait.
pub fn start(mut launch: Launch, timeout: Duration, logger: &Logger) -> Result<Fact, DaemonError> {
    let deadline = Instant::now() + timeout;
    // A supervisor hears its Lisp's readiness itself, and relays it.
    let ready_by = match launch.supervise {
        Some(_) => None,
        None => ReadyBy::of(&launch.ready, launch.uid(), launch.control_dir.as_ref())
            .map_err(DaemonError::NotifySocket)?,
    };
    launch.notify_to(ready_by.as_ref());
    let awaiting = launch.ready.clone();
    let (read_end, write_end) = pipe2(OFlag::O_CLOEXEC).map_err(DaemonError::Pipe)?;
    let (pid_read, pid_write) =
        pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).map_err(DaemonError::Pipe)?;
    nix::sys::prctl::set_child_subreaper(true).map_err(DaemonError::Subreaper)?;
    let supervised = launch.supervise.is_some();
    let cgroup = launch.cgroup.clone();
    // What the closure takes is dropped here in the parent, which keeps
    // only the read ends (close-on-exec, so no Lisp inherits them).
    let ready_reader = &read_end;
    let child = super::fork::child(move || {
        let reader = launch
            .keep_ready_reader
            .then(|| ready_reader.try_clone().ok())
            .flatten();
        let _ = setsid();
        // The intermediate process exits at once, so the daemon is never a
        // session leader and cannot regain a terminal; it tells us the
        // daemon's pid on a pipe of its own (the Lisp never writes there).
        match super::fork::child(move || daemon_process(launch, write_end, reader, logger)) {
            Ok(daemon) => {
                let _ = nix::unistd::write(&pid_write, &daemon.as_raw().to_ne_bytes());
                exit_now(0)
            }
            Err(_) => exit_now(1),
        }
    })
    .map_err(DaemonError::Fork)?;
    // Our own intermediate process, which exits at once.
    waitpid(child, None).map_err(|errno| DaemonError::Wait {
        pid: child.as_raw(),
        errno,
    })?;
    let daemon = forked_daemon(pid_read);
    if let Some(daemon) = &daemon {
        logger.trace(&format!("forked the daemon process {}", daemon.pid));
    }
    let start = Waiting {
        daemon,
        cgroup,
        session: child.as_raw(),
        deadline,
        timeout,
        awaiting,
    };
    start.wait(read_end, supervised, ready_by, logger)
}

/// The daemon process, as the intermediate process's fork returned it and
/// we adopted it: pinned by a pidfd while it is provably our child.
fn forked_daemon(pipe: OwnedFd) -> Option<PidFd> {
    let mut bytes = [0u8; 4];
    let n = nix::unistd::read(&pipe, &mut bytes).ok()?;
    let pid = (n == 4).then(|| i32::from_ne_bytes(bytes))?;
    let fd = PidFd::open(pid).ok()?;
    let ours = super::process::parent(pid) == Some(std::process::id() as i32);
    ours.then_some(fd)
}

/// The descriptor of the pid directory in the daemon process (close-on-exec).
const DIR_FD: RawFd = LOCK_FD + 1;
/// The control directory's in a supervisor, where it binds the notify
/// socket (close-on-exec): above every slot of a Lisp's layout.
const CONTROL_DIR_FD: RawFd = crate::plan::CAUSE_FD + 1;

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
    if let Err(message) = set_up(&mut launch, pipe, reader) {
        setup_error(&mut early, &message);
    }
    // From here on the pipe is the plan's, which the Lisp inherits.
    let ready = launch.target(Slot::Ready).unwrap_or(READY_FD);
    // SAFETY: set_up placed the pipe there; never dropped, as above.
    let mut pipe = ManuallyDrop::new(unsafe { File::from_raw_fd(ready) });
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
    // The lock is ours, so no daemon of this pid file runs: whatever is
    // still in its cgroup was left by an earlier one, and goes; then this
    // process enters it, before the Lisp (or the supervisor) runs.
    if let Some(cgroup) = &launch.cgroup {
        cgroup.kill_all(super::KILL_WAIT);
        if let Err(e) = cgroup.enter() {
            files.remove_own();
            setup_error(&mut pipe, &SetupError::Cgroup(e.to_string()));
        }
    }
    let _ = pipe.write_all(Word::Locked.line().as_bytes());
    if let Some(policy) = launch.supervise.clone() {
        let _ = chdir("/");
        umask(Mode::from_bits_truncate(launch.umask));
        let starter = ManuallyDrop::into_inner(pipe);
        supervise::run(
            launch,
            files,
            &policy,
            supervise::Starter::Pipe(starter),
            logger,
        );
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
        Slot::Reload | Slot::ReloadReader | Slot::Listener(_) | Slot::Cause => None,
    });
    if let Some(files) = &launch.pid_files {
        layout.push((files.dir_fd(), DIR_FD));
    }
    if let Some(dir) = &launch.control_dir {
        layout.push((dir.fd.as_raw_fd(), CONTROL_DIR_FD));
    }
    exec::arrange(&layout)?;
    if let Some(files) = &mut launch.pid_files {
        files.adopt_dir_fd(DIR_FD);
    }
    if let Some(dir) = &mut launch.control_dir {
        dir.adopt_fd(CONTROL_DIR_FD);
    }
    // The bootstrap is on its slot now (a supervisor reads its copies
    // there); its old descriptor was closed by `arrange`, never again.
    if let Some(target) = launch.target(Slot::Bootstrap) {
        // SAFETY: `arrange` placed a copy of the bootstrap on `target`.
        let placed = unsafe { OwnedFd::from_raw_fd(target) };
        std::mem::forget(std::mem::replace(&mut launch.bootstrap, placed));
    }
    // Closed by `arrange`: never dropped again.
    std::mem::forget(reader);
    Ok(())
}

/// The longest wait for the Lisp to close its readiness pipe once ready.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// A start waiting for its daemon's word.
struct Waiting {
    /// The daemon process (our child), if the fork gave one.
    daemon: Option<PidFd>,
    /// Its cgroup, if it has one.
    cgroup: Option<Cgroup>,
    /// The session the daemon process is in (the intermediate's).
    session: i32,
    deadline: Instant,
    timeout: Duration,
    /// What makes the daemon ready (`:ready`).
    awaiting: crate::config::Readiness,
}

/// What the words heard so far say.
enum Verdict {
    /// The start's outcome.
    Fact(Fact),
    /// The daemon ended (the pipe closed) without a verdict.
    Ended,
}

impl Waiting {
    /// Reads the readiness pipe (through a description of our own: the
    /// Lisp may hold the read end too, and change its flags) until a
    /// verdict or the deadline; a daemon that failed is ended, with its
    /// whole tree.
    fn wait(
        self,
        pipe: OwnedFd,
        supervised: bool,
        mut ready_by: Option<ReadyBy>,
        logger: &Logger,
    ) -> Result<Fact, DaemonError> {
        let mut events = EventLoop::new(None, None);
        events.pipe = Some(own_reader(pipe)?);
        // The daemon process's end is seen even while a process it started
        // keeps the pipe open.
        events.child = self.daemon.as_ref().and_then(|d| PidFd::open(d.pid).ok());
        let mut progress = Progress::on_terminal(self.timeout);
        events.deadline = Some(progress.next.min(self.deadline));
        let mut protocol = Protocol::new(Stage::Claiming { supervised });
        let verdict = loop {
            let event = match events.next()? {
                // What it said before it ended, then its end, as if its
                // pipe had closed.
                Event::ChildExited => {
                    if let Some(mut pipe) = events.pipe.take() {
                        read_what_is_there(&mut pipe, &mut events.text);
                    }
                    let said = Event::Said;
                    if let Some(verdict) =
                        self.verdict_of(said, &events.text, &mut protocol, logger)
                    {
                        break verdict;
                    }
                    Event::PipeClosed
                }
                event => event,
            };
            // A tick of the progress line, not the timeout.
            if matches!(event, Event::Deadline) && Instant::now() < self.deadline {
                progress.tick();
                events.deadline = Some(progress.next.min(self.deadline));
                continue;
            }
            if let Some(verdict) = self.verdict_of(event, &events.text, &mut protocol, logger) {
                break verdict;
            }
            // Its notify socket and its port count once the Lisp runs (a
            // port that answers before is someone else's).
            if protocol.stage == Stage::Execed
                && let Some(mut by) = ready_by.take()
            {
                by.arm();
                events.ready_by = Some(by);
            }
        };
        progress.clear();
        if matches!(verdict, Verdict::Fact(Fact::Started { .. })) && !supervised {
            self.await_close(&mut events)?;
        }
        let claimed = !matches!(protocol.stage, Stage::Claiming { .. })
            && !matches!(verdict, Verdict::Fact(Fact::AlreadyRunning { .. }));
        Ok(match verdict {
            Verdict::Fact(fact @ (Fact::Started { .. } | Fact::StillInitializing { .. })) => fact,
            Verdict::Fact(fact) => {
                self.end(claimed);
                fact
            }
            Verdict::Ended => Fact::Died {
                how: self.end(claimed),
            },
        })
    }

    /// The verdict an event gives, if any.
    fn verdict_of(
        &self,
        event: Event,
        text: &str,
        protocol: &mut Protocol,
        logger: &Logger,
    ) -> Option<Verdict> {
        let verdict = |fact| Some(Verdict::Fact(fact));
        match event {
            Event::Said => {
                for word in protocol.take(text) {
                    if let Some(step) = word.as_ref().ok().and_then(Word::trace) {
                        logger.trace(&step);
                    }
                    match word {
                        Err(broken) => {
                            return verdict(Fact::ProtocolBroken {
                                message: broken.to_string(),
                            });
                        }
                        Ok(Word::Running(holder)) => {
                            return verdict(Fact::AlreadyRunning {
                                pid: holder,
                                unit: None,
                            });
                        }
                        Ok(Word::SetupError(message)) => {
                            return verdict(Fact::SetupFailed { message });
                        }
                        Ok(Word::Died(how)) => return verdict(Fact::Died { how }),
                        Ok(Word::Ready) => return verdict(self.started()),
                        Ok(_) => {}
                    }
                }
                None
            }
            Event::PipeClosed => Some(match protocol.report(text) {
                Some(report) => Verdict::Fact(Fact::FunctionError {
                    report: report.to_string(),
                }),
                None => Verdict::Ended,
            }),
            Event::Deadline => Some(Verdict::Fact(match (protocol.report(text), &self.daemon) {
                (Some(report), _) => Fact::FunctionError {
                    report: report.to_string(),
                },
                (None, Some(daemon)) if !matches!(protocol.stage, Stage::Claiming { .. }) => {
                    Fact::StillInitializing {
                        pid: daemon.pid,
                        waited: self.timeout,
                        awaiting: self.awaiting.clone(),
                    }
                }
                (None, _) => Fact::SetupFailed {
                    message: format!(
                        "no word from the daemon process within {} s",
                        self.timeout.as_secs()
                    ),
                },
            })),
            Event::Readied if protocol.stage == Stage::Execed => verdict(self.started()),
            Event::Signal(_)
            | Event::ChildExited
            | Event::Readied
            | Event::OtherExited(_)
            | Event::Watched => None,
        }
    }

    /// After `ready`, the Lisp closes its end of the pipe, which `status`
    /// takes as its sign of readiness: waits for that (a moment at most,
    /// within the start's deadline), so a `status` right after the start
    /// says `running`.
    fn await_close(&self, events: &mut EventLoop) -> Result<(), DaemonError> {
        events.deadline = Some((Instant::now() + CLOSE_WAIT).min(self.deadline));
        events.ready_by = None;
        while events.pipe.is_some() {
            if matches!(events.next()?, Event::Deadline) {
                break;
            }
        }
        Ok(())
    }

    /// The daemon is ready.
    fn started(&self) -> Fact {
        match &self.daemon {
            Some(daemon) => Fact::Started { pid: daemon.pid },
            None => Fact::SetupFailed {
                message: "the daemon process could not be adopted".into(),
            },
        }
    }

    /// Ends a daemon that failed: the daemon process is given until the
    /// deadline (at least a moment) to exit, then killed; once it `claimed`
    /// the pid file, whatever is left in its cgroup (or its session) is
    /// killed too. Reaps it, and says how it ended.
    fn end(&self, claimed: bool) -> String {
        let Some(daemon) = &self.daemon else {
            return "the daemon process ended before it started the Lisp".to_string();
        };
        let pid = daemon.pid;
        let grace = self
            .deadline
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(200), super::KILL_WAIT);
        let _ = daemon.end_within(grace);
        if claimed {
            match &self.cgroup {
                Some(cgroup) => {
                    cgroup.kill_all(super::KILL_WAIT);
                    cgroup.remove();
                }
                None => super::contain::end_session(self.session, super::KILL_WAIT),
            }
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
