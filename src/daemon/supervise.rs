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
use std::io::{Read as _, Write as _};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, pipe2};

use super::exec::{self, Become, exit_now};
use super::output::Output;
use super::pidfile::PidFiles;
use super::readiness::{self, Word};
use super::spawn::{Launch, append_capped, read_what_is_there};
use crate::config::RestartPolicy;
use crate::lisp::{BOOTSTRAP_FD, LOCK_FD, READY_FD};
use crate::logging::Logger;

/// When and how often to restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub restart: RestartPolicy,
    pub delay: Duration,
    pub max_delay: Duration,
    pub start_limit: Option<(u32, Duration)>,
    /// `:output-max-size` and `:output-keep`: the supervisor writes `:output`.
    pub rotation: Option<(Option<u64>, u32)>,
}

/// What `status` shows of a supervised daemon.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    pub supervisor: i32,
    pub lisp: Option<i32>,
    pub restarts: u32,
    pub last_exit: Option<String>,
}

/// The state of the supervisor `pid`, if it is one (`PIDFILE.state`,
/// read as `PidFiles` reads its files).
pub fn read_state(files: &PidFiles, pid: i32) -> Option<State> {
    parse_state(&files.read_state()?, pid)
}

fn parse_state(text: &str, pid: i32) -> Option<State> {
    let mut state = State::default();
    for line in text.lines() {
        let (key, value) = line.split_once(' ')?;
        match key {
            "supervisor" => state.supervisor = value.parse().ok()?,
            "lisp" => state.lisp = value.parse().ok(),
            "restarts" => state.restarts = value.parse().ok()?,
            "last-exit" => state.last_exit = Some(value.to_string()),
            _ => {}
        }
    }
    (state.supervisor == pid).then_some(state)
}

fn state_text(state: &State) -> String {
    let mut text = format!(
        "supervisor {}\nrestarts {}\n",
        state.supervisor, state.restarts
    );
    if let Some(lisp) = state.lisp {
        text.push_str(&format!("lisp {lisp}\n"));
    }
    if let Some(exit) = &state.last_exit {
        text.push_str(&format!("last-exit {exit}\n"));
    }
    text
}

fn describe(status: WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, code) => format!("exited with status {code}"),
        WaitStatus::Signaled(_, signal, _) => format!("killed by {}", signal.as_str()),
        other => format!("{other:?}"),
    }
}

fn failed(status: WaitStatus) -> bool {
    !matches!(status, WaitStatus::Exited(_, 0))
}

/// The Lisp, as the supervisor's child. Never returns.
fn lisp_child(launch: &Launch, ready: &OwnedFd, output: Option<&Output>) -> ! {
    let placed = exec::fresh_bootstrap(BOOTSTRAP_FD).and_then(|bootstrap| {
        let mut layout = vec![(bootstrap, BOOTSTRAP_FD), (ready.as_raw_fd(), READY_FD)];
        if let Some(o) = output {
            layout.extend([(o.write.as_raw_fd(), 1), (o.write.as_raw_fd(), 2)]);
        }
        exec::arrange(&layout)
    });
    if placed.is_ok() {
        let how = Become {
            die_with_parent: true,
            ..Become::default()
        };
        exec::exec_lisp(launch, how, &mut |_| {});
    }
    exit_now(127)
}

/// Runs the supervisor in the daemon process (pid file claimed, descriptors
/// set up, `starter` the readiness pipe of `start`). Never returns.
pub fn run(launch: Launch, files: PidFiles, policy: &Policy, starter: File, logger: &Logger) -> ! {
    let mut state = State {
        supervisor: std::process::id() as i32,
        ..State::default()
    };
    let finish = |code: i32| -> ! {
        files.remove_own();
        exit_now(code)
    };
    // The Lisp must not inherit the pid file's descriptor.
    let _ = nix::fcntl::fcntl(
        // SAFETY: LOCK_FD is open (the claim placed the pid file there).
        unsafe { std::os::fd::BorrowedFd::borrow_raw(LOCK_FD) },
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    let mut mask = SigSet::empty();
    for signal in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGUSR1,
        Signal::SIGHUP,
        Signal::SIGCHLD,
    ] {
        mask.add(signal);
    }
    let Ok(signals) = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)
        .and_then(|()| SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC))
    else {
        finish(1)
    };
    let owner = launch
        .switch
        .as_ref()
        .map(|s| (s.account.uid, s.account.gid));
    let mut output = match (&launch.output, policy.rotation) {
        (Some(path), Some((max_size, keep))) => match Output::open(path, max_size, keep, owner) {
            Ok(output) => Some(output),
            Err(e) => {
                let mut starter = starter;
                let _ = starter.write_all(Word::SetupError(e.to_string()).line().as_bytes());
                finish(1)
            }
        },
        _ => None,
    };
    let finish = |code: i32, output: &mut Option<Output>| -> ! {
        if let Some(output) = output {
            output.flush();
        }
        finish(code)
    };
    let mut starter = Some(starter);
    let mut first = true;
    let mut delay = policy.delay;
    let mut starts: VecDeque<Instant> = VecDeque::new();
    loop {
        let now = Instant::now();
        if let Some((limit, within)) = policy.start_limit {
            while starts
                .front()
                .is_some_and(|t| now.duration_since(*t) > within)
            {
                starts.pop_front();
            }
            if starts.len() >= limit as usize {
                logger.error(&format!(
                    "giving up: {limit} starts within {} s; the Lisp {}",
                    within.as_secs(),
                    state.last_exit.as_deref().unwrap_or("failed")
                ));
                finish(1, &mut output);
            }
        }
        starts.push_back(now);
        let Ok((ready_read, ready_write)) = pipe2(OFlag::O_CLOEXEC) else {
            finish(1, &mut output)
        };
        // SAFETY: single-threaded; the child only sets itself up and execs.
        let child = match unsafe { fork() } {
            Ok(ForkResult::Child) => lisp_child(&launch, &ready_write, output.as_ref()),
            Ok(ForkResult::Parent { child }) => child,
            Err(_) => finish(1, &mut output),
        };
        drop(ready_write);
        state.lisp = Some(child.as_raw());
        let _ = files.write_state(&state_text(&state));
        if starter.is_none() {
            logger.info(&format!(
                "restarted the Lisp (pid {child}), restart {}",
                state.restarts
            ));
        }
        let started = Instant::now();
        let (status, stopping, ready) = watch(
            child,
            File::from(ready_read),
            &signals,
            &mut starter,
            output.as_mut(),
        );
        state.last_exit = Some(describe(status));
        state.lisp = None;
        let _ = files.write_state(&state_text(&state));
        if stopping {
            finish(0, &mut output);
        }
        if first && !ready {
            // It ended before it was ready: the first start fails (the
            // starter has the Lisp's report, or sees the pipe close).
            drop(starter.take());
            finish(1, &mut output);
        }
        first = false;
        let restart = match policy.restart {
            RestartPolicy::Never => false,
            RestartPolicy::OnFailure => failed(status),
            RestartPolicy::Always => true,
        };
        if !restart {
            logger.info(&format!("the Lisp {}; not restarting", describe(status)));
            finish(0, &mut output);
        }
        // A Lisp that ran long enough resets the delay; quick failures double it.
        if started.elapsed() >= policy.max_delay {
            delay = policy.delay;
        }
        logger.error(&format!(
            "the Lisp (pid {child}) {}; restarting in {} s",
            describe(status),
            delay.as_secs_f64()
        ));
        if wait_or_stop(&signals, delay, output.as_mut()) {
            finish(0, &mut output);
        }
        delay = (delay * 2).min(policy.max_delay);
        state.restarts += 1;
    }
}

/// Waits for the Lisp `child` to end, relaying its readiness to the starter
/// and forwarding stop signals; returns how it ended, whether a stop was
/// asked for, and whether it had become ready.
fn watch(
    child: Pid,
    mut ready: File,
    signals: &SignalFd,
    starter: &mut Option<File>,
    mut output: Option<&mut Output>,
) -> (WaitStatus, bool, bool) {
    let mut text = String::new();
    let mut ready_open = true;
    let mut stopping = false;
    let mut was_ready = false;
    loop {
        if let Some(o) = output.as_deref_mut() {
            o.drain();
        }
        let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        if ready_open {
            fds.push(PollFd::new(ready.as_fd(), PollFlags::POLLIN));
        }
        if let Some(o) = output.as_deref() {
            fds.push(PollFd::new(o.read_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => exit_now(1),
        }
        let ready_event = ready_open
            && fds
                .get(1)
                .and_then(PollFd::revents)
                .is_some_and(|r| !r.is_empty());
        let signal_event = fds[0].revents().is_some_and(|r| !r.is_empty());
        if ready_event {
            let mut buf = [0u8; 4096];
            match ready.read(&mut buf) {
                Ok(0) | Err(_) => {
                    ready_open = false;
                    // The Lisp's error report, relayed whole.
                    if readiness::error_report(&text).is_some()
                        && let Some(mut s) = starter.take()
                    {
                        let _ = s.write_all(text.as_bytes());
                    }
                }
                Ok(n) => {
                    append_capped(&mut text, &buf[..n]);
                    if readiness::is_ready(&text) {
                        was_ready = true;
                        if let Some(mut s) = starter.take() {
                            let _ = s.write_all(Word::Ready.line().as_bytes());
                        }
                        ready_open = false;
                    }
                }
            }
        }
        if !signal_event {
            continue;
        }
        let Ok(Some(info)) = signals.read_signal() else {
            continue;
        };
        match Signal::try_from(info.ssi_signo as i32) {
            Ok(Signal::SIGCHLD) => match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => {}
                Ok(status) => {
                    if let Some(o) = output.as_deref_mut() {
                        o.drain();
                    }
                    // Its error report may still be in the pipe (the exit
                    // can be seen first): relay what is there, without waiting.
                    if ready_open {
                        read_what_is_there(&mut ready, &mut text);
                        if readiness::error_report(&text).is_some()
                            && let Some(mut s) = starter.take()
                        {
                            let _ = s.write_all(text.as_bytes());
                        }
                    }
                    return (status, stopping, was_ready);
                }
            },
            Ok(Signal::SIGHUP) if output.is_some() => {
                // After an outside rotation: write to a fresh file.
                if let Some(o) = output.as_deref_mut() {
                    o.drain();
                    o.reopen();
                }
            }
            Ok(signal) => {
                stopping |= signal != Signal::SIGHUP;
                let _ = nix::sys::signal::kill(child, signal);
            }
            Err(_) => {}
        }
    }
}

/// Sleeps `delay`, unless asked to stop meanwhile (then true).
fn wait_or_stop(signals: &SignalFd, delay: Duration, mut output: Option<&mut Output>) -> bool {
    let deadline = Instant::now() + delay;
    loop {
        if let Some(o) = output.as_deref_mut() {
            o.drain();
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        if let Some(o) = output.as_deref() {
            fds.push(PollFd::new(o.read_fd(), PollFlags::POLLIN));
        }
        let ms = PollTimeout::try_from(left.as_millis().min(i32::MAX as u128) as i32)
            .unwrap_or(PollTimeout::MAX);
        let signalled =
            poll(&mut fds, ms).is_ok() && fds[0].revents().is_some_and(|r| !r.is_empty());
        if signalled
            && let Ok(Some(info)) = signals.read_signal()
            && matches!(
                Signal::try_from(info.ssi_signo as i32),
                Ok(Signal::SIGTERM | Signal::SIGINT | Signal::SIGUSR1)
            )
        {
            return true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_names_its_supervisor() {
        let state = State {
            supervisor: 42,
            lisp: Some(43),
            restarts: 2,
            last_exit: Some("killed by SIGKILL".into()),
        };
        assert_eq!(parse_state(&state_text(&state), 42), Some(state.clone()));
        assert_eq!(parse_state(&state_text(&state), 41), None);
        assert_eq!(parse_state("supervisor x\n", 42), None);
    }
}
