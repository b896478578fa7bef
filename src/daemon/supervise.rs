//! Supervise mode: with a restart policy, the daemon process is a small Rust
//! supervisor that holds the pid file, runs the Lisp as its child, reaps it
//! and restarts it per the policy (delays doubling on quick failures, a
//! start limit). The first start still reports only once the Lisp is ready,
//! or why not: the supervisor relays the Lisp's readiness to `start`.
//!
//! The supervisor's state (the Lisp's pid, restarts, last exit) is kept in
//! `PIDFILE.state` for `status`. `stop` signals the supervisor, which
//! forwards the signal and exits once the Lisp has; if the supervisor is
//! killed, the kernel kills the Lisp (parent-death signal).

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write as _;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{Pid, pipe2};

use super::contain::OomCount;
use super::error::DaemonError;
use super::events::read_what_is_there;
use super::events::{Event, EventLoop, ReadyBy, take_signals};
use super::exec::{self, Become, exit_now};
use super::launch::Launch;
use super::notify::Notifier;
use super::output::Output;
use super::process::PidFd;
use super::rundir::RunDir;
use crate::config::RestartPolicy;
use crate::logging::Logger;
use crate::plan::Policy;
use crate::plan::{LOCK_FD, Slot};
use crate::wire::cause::Cause;
use crate::wire::readiness::{Protocol, Stage, Word};
use crate::wire::state::State;

/// The state of the supervisor `pid`, if it is one (`PIDFILE.state`,
/// read as `RunDir` reads its files).
pub fn read_state(files: &RunDir, pid: i32) -> Option<State> {
    let state: State = files.read_state()?.parse().ok()?;
    (state.supervisor == pid).then_some(state)
}

/// How a Lisp ended, for logs and `status`.
pub(crate) fn how_it_ended(status: WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, code) => format!("exited with status {code}"),
        WaitStatus::Signaled(_, signal, _) => format!("killed by {}", signal.as_str()),
        other => format!("{other:?}"),
    }
}

/// An OOM kill counted while a Lisp ran, by a memory cgroup of the
/// daemon's own, or by one it shares with other processes (named).
pub enum Oom {
    Own,
    Shared(String),
}

/// Why a Lisp died, in words a user acts on: its last word on the cause
/// pipe (shown: see `visible`), else the kernel's OOM killer when its
/// memory cgroup counted a kill (said to be likely when that cgroup holds
/// others too), else its exit.
pub fn why_it_died(
    status: WaitStatus,
    cause: Option<Cause>,
    oom: Option<Oom>,
    policy: &Policy,
) -> String {
    let now = |mb: Option<u64>| mb.map_or(String::new(), |mb| format!(", now {mb} MB"));
    match (cause, status) {
        (Some(Cause::HeapExhausted), _) => format!(
            "ran out of heap (raise :dynamic-space-size{})",
            now(policy.heap_mb)
        ),
        (Some(Cause::StackExhausted), _) => format!(
            "ran out of control stack (raise :control-stack-size{})",
            now(policy.stack_mb)
        ),
        (Some(Cause::Error(text)), _) => format!("failed: {}", crate::visible::line(&text)),
        (Some(Cause::ThreadError(text)), _) => format!(
            "died of an unhandled error in a thread: {}",
            crate::visible::line(&text)
        ),
        (None, WaitStatus::Signaled(_, Signal::SIGKILL, _)) => match oom {
            Some(Oom::Own) => "was killed by the kernel's OOM killer (out of memory)".to_string(),
            Some(Oom::Shared(cgroup)) => format!(
                "was killed by SIGKILL, most likely by the kernel's OOM killer (out of memory): \
                 its memory cgroup {cgroup}, which it shares with other processes, counted an OOM kill"
            ),
            None => how_it_ended(status),
        },
        (None, status) => how_it_ended(status),
    }
}

/// The Lisp, as the supervisor's child. Never returns.
fn lisp_child(
    launch: &Launch,
    (ready, cause): (&OwnedFd, &OwnedFd),
    output: Option<&Output>,
    supervisor: i32,
    generation: u32,
) -> ! {
    let placed = exec::fresh_bootstrap(launch.bootstrap.as_raw_fd()).and_then(|bootstrap| {
        // The plan's layout, with the supervisor's pipes; its /dev/null on
        // 0 (and 1, 2 without :output) stays.
        exec::arrange(&launch.layout(|slot| match slot {
            Slot::Bootstrap => Some(bootstrap),
            Slot::Ready => Some(ready.as_raw_fd()),
            Slot::Cause => Some(cause.as_raw_fd()),
            Slot::Output => output.map(|o| o.write.as_raw_fd()),
            _ => None,
        }))
    });
    let contained = launch
        .cgroup
        .as_ref()
        .is_none_or(|c| c.lisp(generation).enter().is_ok());
    if placed.is_ok() && contained {
        let how = Become {
            die_with_parent: Some(supervisor),
            ..Become::default()
        };
        exec::exec_lisp(launch, how, &mut |_| {});
    }
    exit_now(127)
}

/// Where the supervisor is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// A Lisp runs and has not reported readiness; `first`: the start that
    /// `start` waits for.
    Starting { first: bool },
    /// The Lisp is ready.
    Running,
    /// The Lisp is ready, and a new one (`restart` with `:listen`) starts
    /// beside it on the same sockets.
    Replacing,
    /// A stop was asked for and forwarded to the Lisp.
    Stopping,
    /// No Lisp: waiting for the restart delay to pass.
    Waiting,
    /// The supervisor exits.
    Done,
}

/// What happened to the supervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Happened {
    /// The Lisp reported readiness.
    Ready,
    /// The Lisp ended; `failed` unless it exited with status 0.
    Exited { failed: bool },
    /// SIGTERM, SIGINT or SIGUSR1: stop.
    Stop(Signal),
    /// SIGHUP.
    Hangup,
    /// SIGUSR2: `restart` asks for a new Lisp on the held sockets;
    /// `possible` when the daemon holds sockets and a Lisp serves.
    Replace { possible: bool },
    /// The new Lisp of a replacement ended before it was ready; `alone`
    /// when the old one had ended meanwhile.
    NextFailed { alone: bool },
    /// The restart delay passed; `limit_reached` if a start now would
    /// exceed `:start-limit`.
    DelayOver { limit_reached: bool },
}

/// Why the supervisor exits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Stopped,
    /// The first start failed (`start` reports why).
    FirstStartFailed,
    NotRestarting,
    StartLimit,
}

/// What the supervisor does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Tell `start` the Lisp is ready.
    RelayReady,
    /// Tell `start` the Lisp's error report, if it made one.
    RelayReport,
    Forward(Signal),
    ReopenOutput,
    /// Wait for the restart delay.
    WaitToRestart,
    /// Start a new Lisp.
    Start,
    /// Start the next Lisp beside the one that serves.
    StartNext,
    /// The next Lisp is ready: it serves, the old one is stopped.
    PromoteNext,
    /// End the next Lisp (a stop came while it started).
    AbandonNext,
    /// Record that a replacement failed (with why, already noted).
    ReplaceFailed,
    Exit(Exit),
}

impl Exit {
    pub fn code(self) -> i32 {
        match self {
            Exit::Stopped | Exit::NotRestarting => 0,
            Exit::FirstStartFailed | Exit::StartLimit => 1,
        }
    }
}

/// The supervisor as a state × event table (as s6-supervise's): pure, so
/// it is tested without processes. `captured`: the supervisor writes
/// `:output` (then SIGHUP reopens it rather than reaching the Lisp).
pub fn on(
    phase: Phase,
    event: Happened,
    restart: RestartPolicy,
    captured: bool,
) -> (Phase, Vec<Action>) {
    use Action::*;
    use Happened::*;
    use Phase::*;
    let lisp = matches!(phase, Starting { .. } | Running | Replacing | Stopping);
    let hangup = match captured {
        true => vec![ReopenOutput],
        false if lisp => vec![Forward(Signal::SIGHUP)],
        false => vec![],
    };
    match (phase, event) {
        (Starting { .. }, Ready) => (Running, vec![RelayReady]),
        (Running, Replace { possible: true }) => (Replacing, vec![StartNext]),
        // Asked again while replacing (the command refuses that; two asking
        // at once): one replacement answers both.
        (Replacing, Replace { .. }) => (Replacing, vec![]),
        (Replacing, Ready) => (Running, vec![PromoteNext]),
        (Replacing, NextFailed { alone: false }) => (Running, vec![ReplaceFailed]),
        // Neither Lisp serves: as when the Lisp that serves fails.
        (Replacing, NextFailed { alone: true }) => {
            let (next, mut actions) = on(Running, Exited { failed: true }, restart, captured);
            actions.insert(0, ReplaceFailed);
            (next, actions)
        }
        (Replacing, Stop(signal)) => (Stopping, vec![AbandonNext, Forward(signal)]),
        // The Lisp that serves ended meanwhile: the next one takes over
        // once ready (it is ended if it is not).
        (Replacing, Exited { .. }) => (Replacing, vec![]),
        (_, Replace { .. } | NextFailed { .. }) => (phase, vec![ReplaceFailed]),
        (Starting { first: true }, Exited { .. }) => {
            (Done, vec![RelayReport, Exit(self::Exit::FirstStartFailed)])
        }
        (Starting { first: false } | Running, Exited { failed }) => {
            let again = match restart {
                RestartPolicy::Never => false,
                RestartPolicy::OnFailure => failed,
                RestartPolicy::Always => true,
            };
            match again {
                true => (Waiting, vec![WaitToRestart]),
                false => (Done, vec![Exit(self::Exit::NotRestarting)]),
            }
        }
        (Stopping, Exited { .. }) => (Done, vec![Exit(self::Exit::Stopped)]),
        (Starting { .. } | Running | Stopping, Stop(signal)) => (Stopping, vec![Forward(signal)]),
        (Waiting, Stop(_)) => (Done, vec![Exit(self::Exit::Stopped)]),
        (_, Hangup) => (phase, hangup),
        (
            Waiting,
            DelayOver {
                limit_reached: true,
            },
        ) => (Done, vec![Exit(self::Exit::StartLimit)]),
        (
            Waiting,
            DelayOver {
                limit_reached: false,
            },
        ) => (Starting { first: false }, vec![Start]),
        _ => (phase, vec![]),
    }
}

/// The supervisor's running state around the table: the Lisp, the
/// starter, the record for `status`, delays and starts.
struct Supervisor<'a> {
    launch: &'a Launch,
    files: &'a RunDir,
    policy: &'a Policy,
    logger: &'a Logger,
    events: EventLoop,
    starter: Option<File>,
    record: State,
    lisp: Option<Pid>,
    /// The pid of the Lisp that ended last, for the log.
    last_lisp: i32,
    started: Instant,
    delay: Duration,
    starts: VecDeque<Instant>,
    /// The readiness protocol of the Lisp that runs.
    protocol: Protocol,
    /// How the Lisp broke that protocol, if it did (it was killed).
    broken: Option<String>,
    /// The generation of the Lisp that serves (its cgroup's number).
    generation: u32,
    /// When the restart delay is over (`Phase::Waiting`).
    restart_at: Option<Instant>,
    /// The new Lisp of a replacement, while it starts.
    next: Option<Next>,
    /// Old Lisps told to stop after a replacement, until they have.
    retiring: Vec<Retiring>,
    /// The Lisp whose readiness pipe is heard (the next one, replacing).
    pipe_owner: Option<Pid>,
    /// What happened without an event (a next Lisp that could not start).
    pending: Option<Happened>,
    /// What each running Lisp leaves to tell why it died.
    last_words: Vec<LastWords>,
    /// The last write of the state failed (and was logged).
    state_failed: bool,
    /// The service manager, for `nodaemon` under one (the supervisor is
    /// its main process): told readiness, status and stopping.
    manager: Option<Notifier>,
    /// The exit code of the last Lisp (128 + a signal), the supervisor's own
    /// under a service manager.
    last_code: i32,
    /// `:watchdog`: when it asks next, and how many answers it missed.
    watchdog: Option<Watchdog>,
}

/// The most bytes of the watchdog's answer read.
const WATCHDOG_ANSWER: usize = 64 * 1024;

/// The watchdog: every `every`, a question on the Lisp's control socket
/// (`ping`); one not answered by the next is a miss, and `misses` in a row
/// end the Lisp (the restart policy then restarts it).
struct Watchdog {
    every: Duration,
    misses: u32,
    next: Instant,
    missed: u32,
    /// The answer under way was an error (the check said no).
    failed: Option<String>,
}

/// Who hears that the first Lisp is ready, or why not.
pub enum Starter {
    /// `start`, on the readiness pipe.
    Pipe(File),
    /// A service manager (`nodaemon` under systemd), by sd_notify.
    Manager(Notifier),
}

/// The new Lisp of a replacement.
struct Next {
    pid: Pid,
    generation: u32,
    /// When it must be ready by.
    deadline: Instant,
    /// Why it failed, once known (it is ended then).
    failure: Option<String>,
}

/// What a running Lisp leaves to tell why it died: the read end of its
/// cause pipe, and the count of its memory cgroup's OOM kills.
struct LastWords {
    pid: Pid,
    cause: File,
    oom: Option<OomCount>,
}

/// An old Lisp going through the stop schedule.
struct Retiring {
    pid: Pid,
    generation: u32,
    /// The schedule's steps still to come, and when the next is due.
    steps: VecDeque<crate::config::StopStep>,
    due: Instant,
}

/// Runs the supervisor in the daemon process (pid file claimed, descriptors
/// set up, `starter` the readiness pipe of `start`). Never returns.
pub fn run(
    mut launch: Launch,
    files: RunDir,
    policy: &Policy,
    starter: Starter,
    logger: &Logger,
) -> ! {
    let (starter, manager) = match starter {
        Starter::Pipe(pipe) => (Some(pipe), None),
        Starter::Manager(notifier) => (None, Some(notifier)),
    };
    super::process::set_title(&format!("daemonization: supervisor of {}", policy.name));
    // The Lisp must not inherit the lock's descriptor.
    let _ = nix::fcntl::fcntl(
        // SAFETY: LOCK_FD is open (the claim placed the lock file there).
        unsafe { std::os::fd::BorrowedFd::borrow_raw(LOCK_FD) },
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    let mut starter = starter;
    let fail_setup = |starter: &mut Option<File>, e: &DaemonError| match starter {
        Some(pipe) => {
            let _ = pipe.write_all(Word::SetupError(e.to_string()).line().as_bytes());
        }
        None => eprintln!("ERROR: {e}"),
    };
    // Whatever the Lisp's descendants leave comes to us, to be ended.
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let events = match set_up(&mut launch, policy) {
        Ok(events) => events,
        Err(e) => {
            fail_setup(&mut starter, &e);
            files.remove_own();
            exit_now(1)
        }
    };
    let unit = manager.as_ref().map(|_| super::notify::own_unit());
    let mut supervisor = Supervisor {
        launch: &launch,
        files: &files,
        policy,
        logger,
        events,
        starter,
        manager,
        last_code: 0,
        record: State {
            supervisor: std::process::id() as i32,
            unit,
            ..State::default()
        },
        lisp: None,
        last_lisp: 0,
        started: Instant::now(),
        delay: policy.delay,
        starts: VecDeque::new(),
        protocol: Protocol::new(Stage::Execed),
        broken: None,
        generation: 0,
        restart_at: None,
        next: None,
        retiring: Vec::new(),
        pipe_owner: None,
        pending: None,
        last_words: Vec::new(),
        state_failed: false,
        watchdog: policy.watchdog.map(|(every, misses)| Watchdog {
            every,
            misses,
            next: Instant::now() + every,
            missed: 0,
            failed: None,
        }),
    };
    let mut phase = Phase::Starting { first: true };
    let mut actions = vec![Action::Start];
    loop {
        for action in actions {
            supervisor.act(action);
        }
        let happened = supervisor.next_event(phase);
        let captured = supervisor.events.output.is_some();
        (phase, actions) = on(phase, happened, policy.restart, captured);
    }
}

/// The signals the supervisor takes (as events), and `:output` if it
/// writes it.
fn set_up(launch: &mut Launch, policy: &Policy) -> Result<EventLoop, DaemonError> {
    let signals = take_signals(&[
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGUSR1,
        Signal::SIGHUP,
        Signal::SIGUSR2,
        Signal::SIGCHLD,
    ])?;
    if let Some(cgroup) = &launch.cgroup {
        cgroup
            .lisp(0)
            .create()
            .map_err(|e| DaemonError::Setup(super::error::SetupError::Cgroup(e.to_string())))?;
    }
    let owner = launch.switch.as_ref().map(crate::plan::Switch::ids);
    let output = match (&launch.output, policy.rotation) {
        (Some(path), Some((max_size, keep))) => {
            Some(Output::open(path, max_size, keep, owner).map_err(DaemonError::Setup)?)
        }
        _ => None,
    };
    // Bound once, as the caller (root, before the Lisp's user switch), and
    // held for the daemon's whole life.
    if launch.listeners.is_empty() {
        launch.listeners = super::listen::bind(&launch.listen).map_err(DaemonError::Setup)?;
    }
    let mut events = EventLoop::new(Some(signals), output);
    // One notify socket for every Lisp it starts; a port, tried per start.
    events.ready_by = ReadyBy::of(&launch.ready, launch.uid(), launch.control_dir.as_ref())
        .map_err(DaemonError::NotifySocket)?;
    launch.notify_to(events.ready_by.as_ref());
    Ok(events)
}

impl Supervisor<'_> {
    /// Waits for what the table takes next.
    fn next_event(&mut self, phase: Phase) -> Happened {
        if let Some(happened) = self.pending.take() {
            return happened;
        }
        loop {
            self.events.deadline = self.next_timer();
            let event = match self.events.next() {
                Ok(event) => event,
                Err(_) => self.exit(Exit::Stopped),
            };
            match event {
                Event::Said => {
                    if let Some(happened) = self.hear() {
                        return happened;
                    }
                }
                Event::PipeClosed => {}
                Event::Watched => self.hear_watchdog(),
                Event::Readied => return Happened::Ready,
                Event::OtherExited(pid) => {
                    if let Some(happened) = self.other_ended(pid) {
                        return happened;
                    }
                }
                Event::Signal(Signal::SIGUSR2) => {
                    return Happened::Replace {
                        possible: !self.launch.listeners.is_empty() && self.lisp.is_some(),
                    };
                }
                Event::ChildExited => {
                    return Happened::Exited {
                        failed: self.reap(),
                    };
                }
                // A process the Lisp's tree left (reparented to us, the
                // subreaper) ended: reaped, so no zombie piles up.
                Event::Signal(Signal::SIGCHLD) => self.reap_strays(),
                Event::Signal(Signal::SIGHUP) => return Happened::Hangup,
                Event::Signal(signal) => return Happened::Stop(signal),
                Event::Deadline => {
                    if let Some(happened) = self.timers_due(phase) {
                        return happened;
                    }
                }
            }
        }
    }

    /// The earliest of the supervisor's timers: the restart delay, the next
    /// Lisp's start timeout, the retiring Lisps' stop steps.
    fn next_timer(&self) -> Option<Instant> {
        let next = self.next.as_ref().map(|n| n.deadline);
        let retiring = self.retiring.iter().map(|r| r.due);
        let watchdog = self.watchdog.as_ref().map(|w| w.next);
        self.restart_at
            .into_iter()
            .chain(next)
            .chain(retiring)
            .chain(watchdog)
            .min()
    }

    /// What the timers that are due make happen.
    fn timers_due(&mut self, phase: Phase) -> Option<Happened> {
        let now = Instant::now();
        for retiring in &mut self.retiring {
            if retiring.due <= now {
                let step = retiring.steps.pop_front();
                let signal = step.as_ref().map_or(Signal::SIGKILL, |s| s.signal);
                retiring.due = now + step.map_or(super::KILL_WAIT, |s| s.timeout);
                self.launch.aim.signal_child(retiring.pid, signal);
            }
        }
        if let Some(next) = &mut self.next
            && next.deadline <= now
        {
            if next.failure.is_none() {
                next.failure = Some(format!(
                    "was not ready within {} s",
                    self.policy.start_timeout.as_secs_f64()
                ));
            }
            // Killed again each KILL_WAIT until its exit is seen (a Lisp
            // in uninterruptible sleep): the timer moves on, never spins.
            next.deadline = now + super::KILL_WAIT;
            let _ = nix::sys::signal::kill(next.pid, Signal::SIGKILL);
        }
        if self.watchdog.as_ref().is_some_and(|w| w.next <= now) {
            self.watchdog_tick(phase, now);
        }
        if phase == Phase::Waiting && self.restart_at.is_some_and(|at| at <= now) {
            self.restart_at = None;
            return Some(Happened::DelayOver {
                limit_reached: self.limit_reached(),
            });
        }
        None
    }

    /// A child other than the Lisp that serves ended: the next Lisp (before
    /// it was ready), or an old one retired.
    fn other_ended(&mut self, pid: i32) -> Option<Happened> {
        let status = waitpid(Pid::from_raw(pid), None).unwrap_or(WaitStatus::StillAlive);
        if let Some(at) = self.retiring.iter().position(|r| r.pid.as_raw() == pid) {
            let retired = self.retiring.remove(at);
            let _ = self.why(retired.pid, status);
            self.end_generation(retired.generation);
            return None;
        }
        let next = self.next.take().filter(|n| n.pid.as_raw() == pid)?;
        if let Some(pipe) = &mut self.events.pipe {
            read_what_is_there(pipe, &mut self.events.text);
            let _ = self.protocol.take(&self.events.text);
        }
        self.events.pipe = None;
        self.pipe_owner = None;
        let died = self.why(next.pid, status);
        self.end_generation(next.generation);
        let why = match (next.failure, self.protocol.report(&self.events.text)) {
            (Some(failure), _) => failure,
            (None, Some(report)) => format!("failed: {}", report.lines().next().unwrap_or("")),
            (None, None) => died,
        };
        self.record.replace_error = Some(format!("the new Lisp (pid {pid}) {why}"));
        self.record.replacing = None;
        Some(Happened::NextFailed {
            alone: self.lisp.is_none(),
        })
    }

    /// Why the Lisp `pid`, which ended with `status`, died: its last word,
    /// the OOM kills of its memory cgroup since it started, its exit.
    fn why(&mut self, pid: Pid, status: WaitStatus) -> String {
        let words = self
            .last_words
            .iter()
            .position(|w| w.pid == pid)
            .map(|at| self.last_words.remove(at));
        let oom = words
            .as_ref()
            .and_then(|w| w.oom.as_ref())
            .filter(|count| count.grew())
            .map(|count| match count.shared {
                false => Oom::Own,
                true => Oom::Shared(count.cgroup().display().to_string()),
            });
        let cause = words.and_then(|mut words| {
            let mut text = String::new();
            read_what_is_there(&mut words.cause, &mut text);
            text.parse::<Cause>().ok()
        });
        // Its runtime's fatal error, in its output (SBCL's, with
        // --lose-on-corruption: a control stack exhausted ends it so).
        let fatal = self.events.output.as_mut().and_then(|o| {
            o.drain();
            o.fatal.take()
        });
        let cause = cause.or_else(|| match fatal.as_deref() {
            Some(f) if f.starts_with("Control stack exhausted") => Some(Cause::StackExhausted),
            Some(f) if f.starts_with("Heap exhausted") => Some(Cause::HeapExhausted),
            _ => None,
        });
        match (&cause, fatal, status) {
            (None, Some(fatal), WaitStatus::Exited(_, 1)) => {
                format!(
                    "died of a fatal error of its runtime: {}",
                    crate::visible::line(&fatal)
                )
            }
            _ => why_it_died(status, cause, oom, self.policy),
        }
    }

    /// The watchdog's time: the question before unanswered is a miss (the
    /// Lisp is killed after `misses` of them, with the cause), and a new
    /// one is asked of the Lisp that serves, once it is ready.
    fn watchdog_tick(&mut self, phase: Phase, now: Instant) {
        let Some(dog) = &mut self.watchdog else {
            return;
        };
        dog.next = now + dog.every;
        let serving = phase == Phase::Running && self.record.ready;
        let lisp = self.lisp.filter(|_| serving);
        let Some(lisp) = lisp else {
            self.events.watch = None;
            dog.missed = 0;
            return;
        };
        if self.events.watch.take().is_some() || dog.failed.is_some() {
            dog.missed += 1;
            if dog.missed >= dog.misses {
                let silent = dog.every * dog.missed;
                let why = match dog.failed.take() {
                    Some(failed) => format!("watchdog: {failed}"),
                    None => format!("watchdog: no answer for {} s", silent.as_secs_f64()),
                };
                self.logger
                    .error(&format!("the Lisp (pid {lisp}): {why}; ending it"));
                dog.missed = 0;
                self.broken = Some(why);
                self.launch.aim.signal_child(lisp, Signal::SIGKILL);
                return;
            }
        }
        dog.failed = None;
        let owner = self.launch.uid();
        match super::control::open(self.files, lisp.as_raw(), owner) {
            Ok(mut control) => {
                // An answer is a few lines: more is not read.
                control.limit = WATCHDOG_ANSWER;
                if control.send(&crate::wire::control::Request::Ping).is_ok() {
                    self.events.watch = Some(control);
                }
            }
            // Not reachable is not answering: the next tick counts it.
            Err(_) => dog.failed = Some("its control socket does not answer".into()),
        }
    }

    /// The watchdog's connection said something: the answer is whole once
    /// `done` comes (after the greeting and, if the check said no, an
    /// error); anything else ends the question unanswered.
    fn hear_watchdog(&mut self) {
        let Some(control) = &mut self.events.watch else {
            return;
        };
        loop {
            match control.try_next() {
                Ok(None) => return,
                Ok(Some(crate::wire::control::Reply::Hello { .. })) => {}
                Ok(Some(crate::wire::control::Reply::Error(text))) => {
                    if let Some(dog) = &mut self.watchdog {
                        dog.failed = Some(crate::visible::short_line(&text, 200));
                    }
                }
                Ok(Some(crate::wire::control::Reply::Done { .. })) => {
                    self.events.watch = None;
                    if let Some(dog) = &mut self.watchdog
                        && dog.failed.is_none()
                    {
                        dog.missed = 0;
                        self.tell_manager("WATCHDOG=1");
                    }
                    return;
                }
                Ok(Some(_)) | Err(_) => {
                    self.events.watch = None;
                    return;
                }
            }
        }
    }

    /// Reaps the children that ended and are no Lisp of ours (those are
    /// reaped where their exit is news).
    fn reap_strays(&self) {
        let ours: Vec<i32> = self
            .lisp
            .into_iter()
            .chain(self.next.as_ref().map(|n| n.pid))
            .chain(self.retiring.iter().map(|r| r.pid))
            .map(Pid::as_raw)
            .collect();
        for pid in super::contain::children_of(std::process::id() as i32) {
            if !ours.contains(&pid) {
                let _ = waitpid(
                    Pid::from_raw(pid),
                    Some(nix::sys::wait::WaitPidFlag::WNOHANG),
                );
            }
        }
    }

    /// Ends what is left of a Lisp generation's tree.
    fn end_generation(&self, generation: u32) {
        if let Some(cgroup) = &self.launch.cgroup {
            let group = cgroup.lisp(generation);
            group.kill_all(super::KILL_WAIT);
            let _ = std::fs::remove_dir(&group.path);
        }
    }

    /// Takes the Lisp's new words: `ready` is news; a word that breaks the
    /// protocol gets the Lisp killed (its exit is the news then).
    fn hear(&mut self) -> Option<Happened> {
        for word in self.protocol.take(&self.events.text) {
            match word {
                Ok(Word::Ready) => {
                    // Nothing more to hear from this Lisp.
                    self.events.pipe = None;
                    if let Some(by) = &mut self.events.ready_by {
                        by.armed = false;
                    }
                    return Some(Happened::Ready);
                }
                Ok(Word::Status(text)) if self.events.statuses.len() < 16 => {
                    self.events.statuses.push(text)
                }
                Ok(_) => {}
                Err(broken) => {
                    self.events.pipe = None;
                    if let Some(owner) = self.pipe_owner {
                        if Some(owner) == self.lisp {
                            self.broken = Some(broken.to_string());
                        } else if let Some(next) = &mut self.next {
                            next.failure = Some(broken.to_string());
                        }
                        self.launch.aim.signal_child(owner, Signal::SIGKILL);
                    }
                }
            }
        }
        None
    }

    /// Ends what the Lisp that ended left: its cgroup's processes, or
    /// (without one) every child of ours, reparented to us.
    fn end_tree(&self) {
        match &self.launch.cgroup {
            Some(cgroup) => {
                cgroup.lisp(self.generation).kill_all(super::KILL_WAIT);
            }
            // Orphans are every child of ours but the Lisps of a
            // replacement (see `contain::end_orphans`).
            None if self.next.is_none() && self.retiring.is_empty() => {
                super::contain::end_orphans(super::KILL_WAIT)
            }
            None => {}
        }
    }

    /// Reaps the Lisp that ended, records how, and says whether it failed.
    fn reap(&mut self) -> bool {
        let Some(lisp) = self.lisp.take() else {
            return false;
        };
        let status = waitpid(lisp, None).unwrap_or(WaitStatus::StillAlive);
        self.last_lisp = lisp.as_raw();
        self.last_code = match status {
            WaitStatus::Exited(_, code) => code,
            WaitStatus::Signaled(_, signal, _) => 128 + signal as i32,
            _ => 1,
        };
        // Its report may still be in the pipe (the exit can be seen first),
        // unless the pipe is a next Lisp's.
        if let Some(pipe) = &mut self.events.pipe
            && self.pipe_owner == Some(lisp)
        {
            read_what_is_there(pipe, &mut self.events.text);
            let _ = self.protocol.take(&self.events.text);
        }
        // Its pipe is no longer heard: what another process says on it
        // never gets a reaped (and maybe reused) pid signalled.
        if self.pipe_owner == Some(lisp) {
            self.events.pipe = None;
            self.pipe_owner = None;
        }
        if let Some(o) = &mut self.events.output {
            o.drain();
        }
        let why = self.why(lisp, status);
        self.end_tree();
        self.record.last_exit = Some(match self.broken.take() {
            Some(broken) => format!("{broken}; killed"),
            None => why,
        });
        self.record.lisp = None;
        self.record.ready = false;
        self.write_state();
        !matches!(status, WaitStatus::Exited(_, 0))
    }

    /// Tells the service manager, if there is one.
    fn tell_manager(&self, message: &str) {
        if let Some(manager) = &self.manager {
            manager.send(message);
        }
    }

    /// The record for `status`, written; a failure is logged once until a
    /// write works again (a full or read-only pid directory).
    fn write_state(&mut self) {
        match self.files.write_state(&self.record.to_string()) {
            Ok(()) => self.state_failed = false,
            Err(e) if !self.state_failed => {
                self.state_failed = true;
                self.logger.error(&format!(
                    "cannot record the daemon's state for status ({e}); status may show an old state"
                ));
            }
            Err(_) => {}
        }
    }

    fn limit_reached(&mut self) -> bool {
        let Some((limit, within)) = self.policy.start_limit else {
            return false;
        };
        let now = Instant::now();
        while self
            .starts
            .front()
            .is_some_and(|t| now.duration_since(*t) > within)
        {
            self.starts.pop_front();
        }
        self.starts.len() >= limit as usize
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::RelayReady => {
                self.record.ready = true;
                self.write_state();
                for text in std::mem::take(&mut self.events.statuses) {
                    self.tell_manager(&format!("STATUS={}", crate::visible::line(&text)));
                }
                self.tell_manager(&format!("READY=1\nMAINPID={}", std::process::id()));
                if let Some(mut s) = self.starter.take() {
                    let _ = s.write_all(Word::Ready.line().as_bytes());
                }
            }
            Action::RelayReport => {
                if let Some(mut s) = self.starter.take() {
                    // The Lisp's report, or how it ended without one.
                    let text = match self.protocol.report(&self.events.text) {
                        Some(report) => format!("{}{report}\n", Word::Error.line()),
                        None => Word::Died(format!(
                            "the Lisp (pid {}) {} before it was ready",
                            self.last_lisp,
                            self.record.last_exit.as_deref().unwrap_or("ended")
                        ))
                        .line(),
                    };
                    let _ = s.write_all(text.as_bytes());
                }
            }
            Action::Forward(signal) => {
                if matches!(signal, Signal::SIGTERM | Signal::SIGINT | Signal::SIGUSR1) {
                    self.tell_manager("STOPPING=1");
                }
                if let Some(lisp) = self.lisp {
                    self.launch.aim.signal_child(lisp, signal);
                }
            }
            Action::ReopenOutput => {
                if let Some(o) = &mut self.events.output {
                    o.drain();
                    o.reopen();
                }
            }
            Action::WaitToRestart => self.wait_to_restart(),
            Action::Start => self.start(),
            Action::StartNext => self.start_next(),
            Action::PromoteNext => self.promote_next(),
            Action::AbandonNext => {
                if let Some(next) = &mut self.next {
                    next.failure = Some("was ended: the daemon was stopped".into());
                    let _ = nix::sys::signal::kill(next.pid, Signal::SIGKILL);
                }
            }
            Action::ReplaceFailed => {
                self.record.replacements += 1;
                if self.record.replace_error.is_none() {
                    self.record.replace_error = Some(match (self.record.lisp, self.record.ready) {
                        (Some(lisp), false) => format!(
                            "its Lisp (pid {lisp}) is not ready yet, so nothing was replaced: \
                             restart once status says running"
                        ),
                        (None, _) => "no Lisp runs now (the supervisor starts one after its \
                                      restart delay), so nothing was replaced: restart once \
                                      status says running"
                            .into(),
                        (Some(_), true) => "no Lisp serves to be replaced: restart the daemon \
                                            with stop and start"
                            .into(),
                    });
                }
                self.logger.error(&format!(
                    "restart: {}; the old Lisp keeps serving",
                    self.record.replace_error.as_deref().unwrap_or("failed")
                ));
                self.write_state();
            }
            Action::Exit(why) => self.exit(why),
        }
    }

    fn wait_to_restart(&mut self) {
        // A Lisp that ran long enough resets the delay; quick failures double it.
        if self.started.elapsed() >= self.policy.max_delay {
            self.delay = self.policy.delay;
        }
        self.logger.error(&format!(
            "the Lisp (pid {}) {}; restarting in {} s",
            self.last_lisp,
            self.record.last_exit.as_deref().unwrap_or("ended"),
            self.delay.as_secs_f64()
        ));
        self.restart_at = Some(Instant::now() + self.delay);
        self.delay = (self.delay * 2).min(self.policy.max_delay);
        self.record.restarts += 1;
        self.write_state();
    }

    /// Forks a Lisp of `generation` and listens to its readiness pipe.
    fn fork_lisp(&mut self, generation: u32) -> Option<Pid> {
        let (ready_read, ready_write) = pipe2(OFlag::O_CLOEXEC).ok()?;
        let (cause_read, cause_write) = pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).ok()?;
        let cgroup = self.launch.cgroup.as_ref().map(|c| c.lisp(generation));
        if let Some(cgroup) = &cgroup {
            cgroup.create().ok()?;
        }
        // A service's cgroups are its unit's: this daemon's alone.
        let oom = OomCount::for_lisp(
            self.launch.cgroup.as_ref(),
            cgroup.as_ref(),
            self.manager.is_some(),
        );
        let (launch, output, supervisor) = (
            self.launch,
            self.events.output.as_ref(),
            self.record.supervisor,
        );
        let fds = (&ready_write, &cause_write);
        let child =
            super::fork::child(|| lisp_child(launch, fds, output, supervisor, generation)).ok()?;
        drop((ready_write, cause_write));
        self.last_words.push(LastWords {
            pid: child,
            cause: File::from(cause_read),
            oom,
        });
        self.pipe_owner = Some(child);
        self.events.pipe = Some(File::from(ready_read));
        self.events.text.clear();
        self.protocol = Protocol::new(Stage::Execed);
        self.broken = None;
        if let Some(by) = &mut self.events.ready_by {
            by.arm();
        }
        Some(child)
    }

    /// A replacement: the next Lisp starts beside the one that serves.
    fn start_next(&mut self) {
        let generation = self.generation + 1;
        let Some(pid) = self.fork_lisp(generation) else {
            self.record.replace_error = Some("the new Lisp could not be started".into());
            self.pending = Some(Happened::NextFailed {
                alone: self.lisp.is_none(),
            });
            return;
        };
        // Its exit is heard by its pidfd; a Lisp whose exit cannot be
        // heard is not started.
        let Ok(fd) = PidFd::open(pid.as_raw()) else {
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
            self.last_words.retain(|w| w.pid != pid);
            self.events.pipe = None;
            self.pipe_owner = None;
            self.end_generation(generation);
            self.record.replace_error = Some("the new Lisp could not be watched".into());
            self.pending = Some(Happened::NextFailed {
                alone: self.lisp.is_none(),
            });
            return;
        };
        self.events.others.push(fd);
        self.record.replace_error = None;
        self.record.replacing = Some(pid.as_raw());
        self.write_state();
        self.next = Some(Next {
            pid,
            generation,
            deadline: Instant::now() + self.policy.start_timeout,
            failure: None,
        });
        self.logger
            .info(&format!("restart: started the new Lisp (pid {pid})"));
    }

    /// The next Lisp is ready: it serves, and the old one goes through the
    /// stop schedule (it stops accepting and finishes what is in flight).
    fn promote_next(&mut self) {
        let Some(next) = self.next.take() else { return };
        self.events.others.retain(|o| o.pid != next.pid.as_raw());
        if let Some(old) = self.lisp.replace(next.pid) {
            if let Some(fd) = self.events.child.take() {
                self.events.others.push(fd);
            }
            let mut steps: VecDeque<_> = self.policy.stop_schedule.steps.iter().cloned().collect();
            let first = steps.pop_front();
            self.launch
                .aim
                .signal_child(old, first.as_ref().map_or(Signal::SIGTERM, |s| s.signal));
            self.retiring.push(Retiring {
                pid: old,
                generation: self.generation,
                due: Instant::now() + first.map_or(super::KILL_WAIT, |s| s.timeout),
                steps,
            });
        }
        self.events.child = PidFd::open(next.pid.as_raw()).ok();
        self.events.pipe = None;
        self.generation = next.generation;
        self.started = Instant::now();
        self.record.lisp = Some(next.pid.as_raw());
        self.record.ready = true;
        self.record.replacements += 1;
        self.record.replace_error = None;
        self.record.replacing = None;
        self.write_state();
        self.logger.info(&format!(
            "restart: the new Lisp (pid {}) serves; the old one stops",
            next.pid
        ));
    }

    fn start(&mut self) {
        self.starts.push_back(Instant::now());
        let Some(child) = self.fork_lisp(self.generation) else {
            self.exit(Exit::StartLimit)
        };
        self.lisp = Some(child);
        self.started = Instant::now();
        self.events.child = PidFd::open(child.as_raw()).ok();
        self.record.lisp = Some(child.as_raw());
        self.record.ready = false;
        self.write_state();
        if self.starter.is_none() {
            self.logger.info(&format!(
                "restarted the Lisp (pid {child}), restart {}",
                self.record.restarts
            ));
        }
    }

    fn exit(&mut self, why: Exit) -> ! {
        match why {
            Exit::NotRestarting => self.logger.info(&format!(
                "the Lisp {}; not restarting",
                self.record.last_exit.as_deref().unwrap_or("ended")
            )),
            Exit::StartLimit => {
                if let Some((limit, within)) = self.policy.start_limit {
                    self.logger.error(&format!(
                        "giving up: {limit} starts within {} s; the Lisp {}",
                        within.as_secs(),
                        self.record.last_exit.as_deref().unwrap_or("failed")
                    ));
                }
            }
            Exit::Stopped | Exit::FirstStartFailed => {}
        }
        // The starter sees the pipe close if nothing was relayed.
        drop(self.starter.take());
        if let Some(o) = &mut self.events.output {
            o.flush();
        }
        // Giving up leaves the record, for `status`: failed - start-limit.
        let gave_up = why == Exit::StartLimit && {
            self.record.gave_up = true;
            self.record.lisp = None;
            self.files.write_state(&self.record.to_string()).is_ok()
        };
        match gave_up {
            true => self.files.remove_pid_and_lock(),
            false => self.files.remove_own(),
        }
        // Under a service manager the exit is the Lisp's, for its Restart=.
        match (&self.manager, why) {
            (Some(_), Exit::FirstStartFailed) => {
                if let Some(report) = self.protocol.report(&self.events.text) {
                    let first = report.lines().next().unwrap_or("the main function failed");
                    self.tell_manager(&format!("STATUS={}", crate::visible::line(first)));
                }
                exit_now(self.last_code.max(1))
            }
            (Some(_), _) => exit_now(self.last_code),
            (None, _) => exit_now(why.code()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The supervisor's table, row by row.
    #[test]
    fn the_table() {
        use Action::*;
        use Happened::*;
        use Phase::*;
        use RestartPolicy::*;
        let first = Starting { first: true };
        let later = Starting { first: false };
        let term = Signal::SIGTERM;
        let exit = |why| vec![Exit(why)];
        #[rustfmt::skip]
        let rows: Vec<(Phase, Happened, RestartPolicy, bool, Phase, Vec<Action>)> = vec![
            (first, Ready, OnFailure, false, Running, vec![RelayReady]),
            (later, Ready, OnFailure, false, Running, vec![RelayReady]),
            (first, Exited { failed: true }, Always, false, Done, vec![RelayReport, Exit(self::Exit::FirstStartFailed)]),
            (first, Exited { failed: false }, Always, false, Done, vec![RelayReport, Exit(self::Exit::FirstStartFailed)]),
            (Running, Exited { failed: true }, OnFailure, false, Waiting, vec![WaitToRestart]),
            (Running, Exited { failed: false }, OnFailure, false, Done, exit(self::Exit::NotRestarting)),
            (Running, Exited { failed: false }, Always, false, Waiting, vec![WaitToRestart]),
            (Running, Exited { failed: true }, Never, false, Done, exit(self::Exit::NotRestarting)),
            (later, Exited { failed: true }, OnFailure, false, Waiting, vec![WaitToRestart]),
            (first, Stop(term), OnFailure, false, Stopping, vec![Forward(term)]),
            (Running, Stop(Signal::SIGUSR1), OnFailure, false, Stopping, vec![Forward(Signal::SIGUSR1)]),
            (Stopping, Stop(term), OnFailure, false, Stopping, vec![Forward(term)]),
            (Stopping, Exited { failed: true }, Always, false, Done, exit(self::Exit::Stopped)),
            (Waiting, Stop(term), Always, false, Done, exit(self::Exit::Stopped)),
            (Running, Hangup, Always, true, Running, vec![ReopenOutput]),
            (Running, Hangup, Always, false, Running, vec![Forward(Signal::SIGHUP)]),
            (Waiting, Hangup, Always, true, Waiting, vec![ReopenOutput]),
            (Waiting, Hangup, Always, false, Waiting, vec![]),
            (Waiting, DelayOver { limit_reached: false }, Always, false, later, vec![Start]),
            (Waiting, DelayOver { limit_reached: true }, Always, false, Done, exit(self::Exit::StartLimit)),
            (Running, Ready, Always, false, Running, vec![]),
            (Running, DelayOver { limit_reached: false }, Always, false, Running, vec![]),
            // Replacements (restart with :listen).
            (Running, Replace { possible: true }, Never, false, Replacing, vec![StartNext]),
            (Running, Replace { possible: false }, Never, false, Running, vec![ReplaceFailed]),
            (first, Replace { possible: true }, Never, false, first, vec![ReplaceFailed]),
            (Replacing, Ready, Never, false, Running, vec![PromoteNext]),
            (Replacing, NextFailed { alone: false }, Never, false, Running, vec![ReplaceFailed]),
            (Replacing, NextFailed { alone: true }, OnFailure, false, Waiting, vec![ReplaceFailed, WaitToRestart]),
            (Replacing, NextFailed { alone: true }, Never, false, Done, vec![ReplaceFailed, Exit(self::Exit::NotRestarting)]),
            (Replacing, Exited { failed: true }, Always, false, Replacing, vec![]),
            (Replacing, Stop(term), Always, false, Stopping, vec![AbandonNext, Forward(term)]),
            // Asked again while one is under way: the one answers both.
            (Replacing, Replace { possible: true }, Always, false, Replacing, vec![]),
        ];
        for (phase, event, restart, captured, next, actions) in rows {
            assert_eq!(
                on(phase, event, restart, captured),
                (next, actions),
                "{phase:?} + {event:?} ({restart:?}, captured {captured})"
            );
        }
        assert_eq!(
            (self::Exit::Stopped.code(), self::Exit::StartLimit.code()),
            (0, 1)
        );
    }

    /// The OOM killer, named: for certain when the cgroup that counted is
    /// the daemon's alone, as likely (with the cgroup) when it is shared;
    /// only for a SIGKILL the Lisp did not explain.
    #[test]
    fn the_oom_killer_in_words() {
        use crate::logging::{Destination, Destinations};
        let spec = crate::config::DaemonSpec {
            restart: RestartPolicy::OnFailure,
            ..Default::default()
        };
        let log = Destinations {
            info: Destination::Nowhere,
            error: Destination::Nowhere,
            trace: Destination::Nowhere,
        };
        let plan = crate::plan::plan(
            &spec,
            &crate::plan::Runner::sbcl("sbcl"),
            &crate::plan::Mode::Daemon,
            None,
            &log,
            &crate::plan::Caller::default(),
        );
        let policy = plan.supervision.expect("supervised");
        let killed = WaitStatus::Signaled(Pid::from_raw(7), Signal::SIGKILL, false);
        assert_eq!(
            why_it_died(killed, None, Some(Oom::Own), &policy),
            "was killed by the kernel's OOM killer (out of memory)"
        );
        assert_eq!(
            why_it_died(
                killed,
                None,
                Some(Oom::Shared("/sys/fs/cgroup/x".into())),
                &policy
            ),
            "was killed by SIGKILL, most likely by the kernel's OOM killer (out of memory): its \
             memory cgroup /sys/fs/cgroup/x, which it shares with other processes, counted an OOM kill"
        );
        assert_eq!(
            why_it_died(killed, None, None, &policy),
            "killed by SIGKILL"
        );
        let exited = WaitStatus::Exited(Pid::from_raw(7), 1);
        assert_eq!(
            why_it_died(exited, None, Some(Oom::Own), &policy),
            "exited with status 1"
        );
    }
}
