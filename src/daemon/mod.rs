//! The daemon lifecycle: every command of `daemon.sh`, done the way
//! start-stop-daemon, systemd and s6 do it. The only place with fork,
//! setsid, exec, signals and pid-file locks.

mod contain;
pub mod control;
pub mod core;
mod details;
mod error;
mod events;
mod exec;
mod fact;
mod foreground;
mod fork;
pub mod identity;
mod launch;
mod listen;
mod notify;
mod output;
mod process;
mod program;
mod pty;
pub mod records;
pub mod reload;
mod replace;
mod request;
mod rundir;
mod spawn;
mod start;
mod status;
mod stop;
mod supervise;
pub mod tail;

pub use details::details;

/// Waits until one of `fds` is ready, or `deadline` (see `events`).
pub fn ready_within(
    fds: &[(std::os::fd::BorrowedFd<'_>, nix::poll::PollFlags)],
    deadline: Option<std::time::Instant>,
) -> std::io::Result<Option<Vec<nix::poll::PollFlags>>> {
    events::ready_within(fds, deadline).map_err(std::io::Error::from)
}
pub use error::DaemonError;
pub use fact::{Details, Fact, Image, ImageFacts, Supervision};
pub use program::system_user_fasl_dir;
pub(crate) use program::{create_fasl_dir, find_program, program, stable_hash};
pub use request::{Request, caller_home};
pub(crate) use request::{caller, daemon_user};
pub use rundir::{PidState, RunDir};
pub use start::{nodaemon, restart, start, try_restart, under_service_manager};
pub use status::{is_running, status};
pub use stop::{Ending, stop, zap};
pub(crate) use stop::{KILL_WAIT, supervised_lisp};
