//! `stop`, `kill` and `zap`: the daemon and its whole tree ended, then its
//! pid files removed.

use std::time::Duration;

use nix::sys::signal::Signal;

use crate::config::{StopSchedule, StopStep};

use super::{DaemonError, Fact, PidState, Request, RunDir, contain, process, supervise};

/// How long to wait for a process to vanish after SIGKILL.
pub(crate) const KILL_WAIT: Duration = Duration::from_secs(10);

/// How `stop` ends a daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The stop schedule: by default SIGUSR1, then SIGKILL after the stop
    /// timeout (`stop`, and the stop of `restart`).
    Schedule,
    /// SIGKILL (`kill`).
    Kill,
}

/// `stop` and `kill`: the daemon and its whole tree ended as `ending` says.
pub fn stop(req: &Request, ending: Ending) -> Result<Fact, DaemonError> {
    let schedule = match ending {
        Ending::Kill => StopSchedule {
            steps: vec![StopStep {
                signal: Signal::SIGKILL,
                timeout: KILL_WAIT,
            }],
        },
        Ending::Schedule => req.stop_schedule.clone().unwrap_or_else(|| {
            req.conf
                .spec
                .stop_schedule(req.runner.kind.facts().stop_signal)
        }),
    };
    let (Some(files), state) = req.inspect()? else {
        return Ok(Fact::NoPidFile);
    };
    let (pid, locked) = match state {
        PidState::Missing => {
            // A supervisor's record of giving up goes with a stop.
            if super::status::gave_up(&files).is_some() {
                files.remove_state()?;
            }
            // The cgroup of a daemon that ended by itself, if empty.
            if let Some(cgroup) = contain::Cgroup::of_daemon(&req.conf.pid_file) {
                cgroup.remove();
            }
            return Ok(Fact::NoPidFile);
        }
        PidState::Stale { pid } => {
            end_leftovers(req)?;
            files.remove()?;
            return Ok(Fact::WasNotRunning { pid });
        }
        PidState::Running { pid, locked } => (pid, locked),
    };
    // A service manager's daemon is stopped through it (else it restarts
    // it, or marks the unit failed).
    if let Some(unit) = locked
        .then(|| super::start::managed_by(&files, pid))
        .flatten()
    {
        return Ok(Fact::Managed {
            pid,
            unit,
            instead: match ending {
                Ending::Schedule => "systemctl stop",
                Ending::Kill => "systemctl kill --signal=KILL",
            },
        });
    }
    // Its files must go once it ended: refused before any signal if they
    // cannot (the daemon keeps running, the pid file stays true).
    if files.read_only() {
        return Err(DaemonError::PidDirReadOnly {
            dir: files.dir_path().to_path_buf(),
        });
    }
    // Pinned by a pidfd, then checked again: a pid reused meanwhile is
    // never signalled.
    let daemon = match process::PidFd::open(pid) {
        Ok(fd) if files.still_the_daemon(pid, locked, req.daemon_uid()) => fd,
        Ok(_)
        | Err(DaemonError::PidFd {
            errno: nix::errno::Errno::ESRCH,
            ..
        }) => {
            files.remove()?;
            return Ok(Fact::WasNotRunning { pid: Some(pid) });
        }
        Err(e) => return Err(e),
    };
    // A supervisor's Lisp, taken hold of while it is provably the
    // supervisor's child.
    let lisp = locked.then(|| supervised_lisp(&files, pid)).flatten();
    let tree = Tree {
        cgroup: contain::Cgroup::of_daemon(&req.conf.pid_file).filter(|c| c.exists()),
        spare: [Some(pid), lisp.as_ref().map(|l| l.pid)],
    };
    if !end_process(&daemon, &schedule, req.aim(), &tree)? {
        return Ok(Fact::StillRunning {
            pid,
            schedule: schedule.to_string(),
        });
    }
    end_lisp(lisp)?;
    end_leftovers(req)?;
    files.remove()?;
    Ok(Fact::Stopped { pid })
}

/// A pidfd on the Lisp of the supervisor `supervisor`, if its state file
/// names one whose parent is that supervisor (checked again once the pidfd
/// pins the process, so a reused pid is never taken).
pub(crate) fn supervised_lisp(files: &RunDir, supervisor: i32) -> Option<process::PidFd> {
    let lisp = supervise::read_state(files, supervisor)?.lisp?;
    if process::parent(lisp) != Some(supervisor) {
        return None;
    }
    let fd = process::PidFd::open(lisp).ok()?;
    (process::parent(lisp) == Some(supervisor)).then_some(fd)
}

/// A supervisor forwards the stop to its Lisp, and the kernel kills the Lisp
/// if the supervisor was killed; wait until that Lisp is gone too, so
/// nothing is left behind.
fn end_lisp(lisp: Option<process::PidFd>) -> Result<(), DaemonError> {
    lisp.map_or(Ok(()), |fd| fd.end_within(KILL_WAIT))
}

/// A daemon's process tree, for its stop: its cgroup, and the processes
/// in it that are signalled on their own (the daemon, a supervisor's Lisp).
struct Tree {
    cgroup: Option<contain::Cgroup>,
    spare: [Option<i32>; 2],
}

/// Goes through the stop schedule on the process of `fd` and the rest of
/// its tree: each step's signal to the daemon (as `aim` says) and to every
/// other process of its cgroup, until all are gone or the step's time is
/// up. True when the daemon has ended (what is left of its tree is then
/// killed by `end_leftovers`).
fn end_process(
    fd: &process::PidFd,
    schedule: &StopSchedule,
    aim: process::Aim,
    tree: &Tree,
) -> Result<bool, DaemonError> {
    let spare: Vec<i32> = tree.spare.iter().flatten().copied().collect();
    let mut ended = false;
    for step in &schedule.steps {
        let deadline = std::time::Instant::now() + step.timeout;
        if !ended {
            fd.signal(step.signal, aim)?;
        }
        if let Some(cgroup) = &tree.cgroup {
            cgroup.signal_all(step.signal, &spare);
        }
        ended = ended || fd.wait_exit(step.timeout);
        if ended && tree.cgroup.as_ref().is_none_or(|c| c.wait_empty(deadline)) {
            return Ok(true);
        }
    }
    Ok(ended)
}

/// Kills whatever is left in the cgroup of a daemon that has ended (the
/// processes its Lisp started, `setsid`ed or not), and removes the cgroup.
pub(super) fn end_leftovers(req: &Request) -> Result<(), DaemonError> {
    let Some(cgroup) = contain::Cgroup::of_daemon(&req.conf.pid_file).filter(|c| c.exists()) else {
        return Ok(());
    };
    if !cgroup.kill_all(KILL_WAIT) {
        return Err(DaemonError::Leftovers {
            cgroup: cgroup.path.clone(),
            count: cgroup.members().len(),
        });
    }
    cgroup.remove();
    Ok(())
}

/// `zap`: remove the pid file of a daemon that is gone. With `--force`
/// also the pid file of one that runs (ended first, with its whole tree,
/// as `kill` ends it), or one refused as untrustworthy, if its directory
/// is sound.
pub fn zap(req: &Request) -> Result<Fact, DaemonError> {
    let Some(files) = req.pid_files(false)? else {
        return Ok(Fact::NoPidFile);
    };
    match files.inspect(req.daemon_uid()) {
        Ok(PidState::Missing) if super::status::gave_up(&files).is_some() => {
            files.remove_state()?;
            Ok(Fact::Zapped)
        }
        Ok(PidState::Missing) => Ok(Fact::NoPidFile),
        // A daemon proven alive is ended with its whole tree first (as
        // `kill` ends it): no process of it outlives its pid file.
        Ok(PidState::Running { .. }) if req.force => {
            drop(files);
            match stop(req, Ending::Kill)? {
                Fact::Stopped { .. } => Ok(Fact::Zapped),
                not_ended => Ok(not_ended),
            }
        }
        Ok(PidState::Running { pid, .. }) => Ok(Fact::ZapRefused { pid }),
        Ok(PidState::Stale { .. }) => {
            end_leftovers(req)?;
            Ok(match files.remove()? {
                None => Fact::Zapped,
                Some(pid) => Fact::ZapRefused { pid },
            })
        }
        Err(DaemonError::PidPath(_)) if req.force => {
            end_leftovers(req)?;
            files.remove_pid_file()?;
            Ok(Fact::Zapped)
        }
        Err(e) => Err(e),
    }
}
