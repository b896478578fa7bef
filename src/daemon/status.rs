//! `status`: what the pid files, the lock and a supervisor's state say.

use super::{DaemonError, Fact, PidState, Request, RunDir, Supervision, supervise};

/// `status`: running, stale, or no pid file.
pub fn status(req: &Request) -> Result<Fact, DaemonError> {
    Ok(match req.inspect()? {
        (files, PidState::Running { pid, locked }) => Fact::Runs {
            pid,
            supervision: files.filter(|_| locked).and_then(|f| supervision(&f, pid)),
        },
        (_, PidState::Stale { pid }) => Fact::Stale { pid },
        (_, PidState::Missing) => Fact::NoPidFile,
    })
}

/// Whether the conf's daemon runs now (a check before work that matters
/// only when it does, or does not: building a core).
pub fn is_running(req: &Request) -> bool {
    matches!(req.inspect(), Ok((_, PidState::Running { .. })))
}

/// What the supervisor `pid` of this conf's daemon says, if it is one.
fn supervision(files: &RunDir, pid: i32) -> Option<Supervision> {
    supervise::read_state(files, pid).map(|s| Supervision {
        lisp_pid: s.lisp,
        restarts: s.restarts,
        last_exit: s.last_exit,
    })
}
