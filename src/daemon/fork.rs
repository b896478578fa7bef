//! The one place this program forks. Every process the tool makes (the
//! Lisp, a daemon's intermediate process and supervisor, the child that
//! removes a build's files or looks at paths as the daemon's user) is a
//! `child` of this function: the closure runs in the new process and
//! never returns (it execs or exits), the parent gets the pid.

use std::convert::Infallible;

use nix::unistd::{ForkResult, Pid, fork};

/// Forks; the new process runs `body` (which execs or `exit_now`s: a
/// diverging body is an `Infallible` one), this one gets its pid.
pub fn child(body: impl FnOnce() -> Infallible) -> nix::Result<Pid> {
    // SAFETY: this program is single-threaded whenever it forks (the only
    // threads, a pty's relay, start after nodaemon's one fork), so the
    // child may do anything the parent could; it only sets itself up and
    // execs or exits, never returning into the parent's code.
    match unsafe { fork() }? {
        // The body never returns: it execs or exits.
        #[allow(unreachable_code)]
        ForkResult::Child => match body() {},
        ForkResult::Parent { child } => Ok(child),
    }
}
