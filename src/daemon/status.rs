//! `status`: what the pid files, the lock and a supervisor's state say.

use crate::config::Readiness;

use super::events::ReadyBy;
use super::{DaemonError, Fact, PidState, Request, RunDir, Supervision, process, supervise};

/// `status`: running, stale, or no pid file.
pub fn status(req: &Request) -> Result<Fact, DaemonError> {
    Ok(match req.inspect()? {
        (files, PidState::Running { pid, locked }) => {
            let supervision = files.filter(|_| locked).and_then(|f| supervision(&f, pid));
            let lisp = supervision.as_ref().map_or(Some(pid), |s| s.lisp_pid);
            Fact::Runs {
                pid,
                activating: locked && activating(req, pid, supervision.as_ref()),
                stopped: lisp.is_some_and(process::stopped),
                supervision,
            }
        }
        (_, PidState::Stale { pid }) => Fact::Stale { pid },
        (files, PidState::Missing) => match files.as_ref().and_then(gave_up) {
            Some(state) => Fact::GaveUp {
                restarts: state.restarts,
                last_exit: state.last_exit,
            },
            None => Fact::NoPidFile,
        },
    })
}

/// Whether the conf's daemon runs now (a check before work that matters
/// only when it does, or does not: building a core).
pub fn is_running(req: &Request) -> bool {
    matches!(req.inspect(), Ok((_, PidState::Running { .. })))
}

/// The record a supervisor left when it gave up at `:start-limit`.
pub(super) fn gave_up(files: &RunDir) -> Option<crate::wire::state::State> {
    let state: crate::wire::state::State = files.read_state()?.parse().ok()?;
    state.gave_up.then_some(state)
}

/// What the supervisor `pid` of this conf's daemon says, if it is one.
fn supervision(files: &RunDir, pid: i32) -> Option<Supervision> {
    // A Lisp the state names is shown only while it is the supervisor's
    // child: a state the supervisor could not rewrite (a full pid
    // directory) never shows a dead Lisp as running.
    supervise::read_state(files, pid).map(|s| Supervision {
        lisp_pid: s.lisp.filter(|lisp| process::parent(*lisp) == Some(pid)),
        restarts: s.restarts,
        last_exit: s.last_exit,
        ready: s.ready,
    })
}

/// Whether the daemon `pid` (a supervisor's Lisp, if `supervision` says
/// one runs) has not said it is ready yet: its port does not answer (`:ready
/// (:port N)`), or its Lisp still holds the readiness pipe, which the
/// bootstrap closes once it said `ready`. What cannot be seen (another
/// user's process) counts as ready.
fn activating(req: &Request, pid: i32, supervision: Option<&Supervision>) -> bool {
    let lisp = match supervision {
        Some(Supervision { ready: true, .. }) => return false,
        Some(s) => match s.lisp_pid {
            Some(lisp) => lisp,
            None => return false,
        },
        None => pid,
    };
    match &req.conf.spec.ready {
        Readiness::Port { port, address } => {
            let address = std::net::SocketAddr::new(*address, *port);
            !ReadyBy::port_answers(&address, req.daemon_uid())
        }
        Readiness::Returned | Readiness::Notify => {
            let (_, ready_fd) = crate::plan::lisp_fds(&req.conf.spec, req.runner.kind);
            process::holds_pipe(lisp, ready_fd)
        }
    }
}
