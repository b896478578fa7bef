//! `restart` of a daemon that holds `:listen` sockets: its supervisor starts
//! a new Lisp on the same sockets while the old one serves, and stops the
//! old one once the new one is ready (see `supervise`). The command asks
//! with SIGUSR2 and reads the verdict in the supervisor's state file, waking
//! on the pid directory's changes (inotify), within the start timeout and
//! the stop schedule's first step.

use std::time::{Duration, Instant};

use nix::poll::PollFlags;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use nix::sys::signal::Signal;

use super::events::ready_within;
use super::process::{Aim, PidFd};
use super::{DaemonError, Fact, Request, RunDir, supervise};

/// Whether the conf's daemon is replaced rather than stopped and started.
pub fn replaces(req: &Request) -> bool {
    crate::plan::holds_listeners(&req.conf.spec, req.runner.kind)
}

/// Asks the supervisor `pid` (of `files`, proved the daemon) for a new
/// Lisp, and waits for its verdict. `None` when `pid` is no supervisor of
/// this conf (a daemon started before the conf had `:listen`): then the
/// daemon is stopped and started.
pub fn replace(req: &Request, files: &RunDir, pid: i32) -> Result<Option<Fact>, DaemonError> {
    let Some(before) = supervise::read_state(files, pid) else {
        return Ok(None);
    };
    if let Some(next) = before.replacing {
        return Ok(Some(Fact::ReplaceFailed {
            pid,
            serving: before.lisp.filter(|_| before.ready),
            error: format!(
                "a restart is already under way (its new Lisp, pid {next}, is starting); \
                 wait for it, then see status"
            ),
        }));
    }
    let supervisor = PidFd::open(pid)?;
    let watch = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
        .map_err(DaemonError::Watch)?;
    watch
        .add_watch(
            format!("/proc/self/fd/{}", files.dir_fd()).as_str(),
            AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_CLOSE_WRITE,
        )
        .map_err(DaemonError::Watch)?;
    supervisor.signal(Signal::SIGUSR2, Aim::Process)?;
    let schedule = req
        .conf
        .spec
        .stop_schedule(req.runner.kind.facts().stop_signal);
    let first_step = schedule.steps.first().map_or(Duration::ZERO, |s| s.timeout);
    let deadline = Instant::now() + req.conf.spec.start_timeout() + first_step + super::KILL_WAIT;
    loop {
        match supervise::read_state(files, pid) {
            Some(now) if now.replacements > before.replacements => {
                return Ok(Some(match now.replace_error {
                    None => Fact::Started { pid },
                    Some(error) => Fact::ReplaceFailed {
                        pid,
                        serving: now.lisp.filter(|_| now.ready),
                        error,
                    },
                }));
            }
            // The supervisor is gone (its state file with it).
            None => {
                return Ok(Some(Fact::Died {
                    how: format!("the supervisor (pid {pid}) ended while it replaced its Lisp"),
                }));
            }
            Some(_) => {}
        }
        let fds = [(std::os::fd::AsFd::as_fd(&watch), PollFlags::POLLIN)];
        match ready_within(&fds, Some(deadline)).map_err(DaemonError::Poll)? {
            None => {
                return Ok(Some(Fact::ReplaceFailed {
                    pid,
                    serving: before.lisp.filter(|_| before.ready),
                    error: "the supervisor gave no verdict in time".into(),
                }));
            }
            Some(_) => while watch.read_events().is_ok_and(|e| !e.is_empty()) {},
        }
    }
}
