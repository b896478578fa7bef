//! The one place a Lisp is exec'd, and the descriptor plumbing before it.
//!
//! Every way a Lisp is started (the daemon process of `start`, a
//! supervisor's child, `nodaemon` in the foreground or as the child of a
//! service manager's process) places its descriptors with `arrange`, then
//! becomes the Lisp with `exec_lisp`: session, user switch, working
//! directory, umask, signals, `execve`. Each step's failure is a typed
//! `SetupError`.

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::libc;
use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::stat::{Mode, umask};
use nix::unistd::{chdir, execve, setsid};

use super::error::{DaemonError, SetupError};
use super::identity::{self, Switch};
use super::launch::Launch;
use crate::plan::Slot;
use crate::wire::readiness::Word;

/// How the process becomes the Lisp, beyond what its `Launch` says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Become {
    /// A session of its own: no controlling terminal of the caller's.
    pub new_session: bool,
    /// Killed when its parent, this process (a supervisor), dies.
    pub die_with_parent: Option<i32>,
    /// A daemon: the conf's umask.
    pub daemon: bool,
    /// This standard stream (a pty of its own) becomes its controlling
    /// terminal, once it has its session.
    pub terminal: Option<RawFd>,
}

/// Becomes the Lisp of `launch`: its descriptors already placed, it takes
/// its session, switches to the `:user` (telling `announce` so), sets up
/// its directory, umask and signals, and execs. Returns only on failure.
pub fn exec_lisp(launch: &Launch, how: Become, announce: &mut dyn FnMut(Word)) -> SetupError {
    if how.new_session
        && let Err(errno) = setsid()
    {
        return SetupError::Setsid(errno);
    }
    if let Some(fd) = how.terminal
        && let Err(e) = super::pty::take_as_terminal(fd)
    {
        return e;
    }
    if let Err(e) = switch_user(launch.switch.as_ref()) {
        return e;
    }
    if let Some(switch) = &launch.switch {
        announce(Word::Switched(switch.summary()));
    }
    if let Some(parent) = how.die_with_parent {
        // After the user switch, which clears it; a parent that died before
        // it was set is seen as a new parent: then go at once.
        let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
        if nix::unistd::getppid().as_raw() != parent {
            exit_now(1);
        }
    }
    if let Some(dir) = &launch.cwd
        && let Err(errno) = chdir(dir.as_path())
    {
        return SetupError::Chdir {
            dir: dir.clone(),
            errno,
        };
    }
    if how.daemon {
        umask(Mode::from_bits_truncate(launch.umask));
    }
    announce(Word::Exec(launch.program_name.clone()));
    reset_signals();
    let errno = execve(&launch.program, &launch.argv, &launch.exec_env()).unwrap_err();
    SetupError::Exec {
        program: launch.program_name.clone(),
        errno,
    }
}

/// Execs the Lisp of `launch` in this process, with the bootstrap on
/// `BOOTSTRAP_FD` (the `nodaemon` path: no fork, no pid file). Returns only
/// on failure.
pub fn exec_in_foreground(launch: Launch) -> DaemonError {
    let bootstrap = match fresh_bootstrap(launch.bootstrap.as_raw_fd()) {
        Ok(fd) => fd,
        Err(e) => return e.into(),
    };
    let layout = launch.layout(|slot| (slot == Slot::Bootstrap).then_some(bootstrap));
    if let Err(e) = arrange(&layout) {
        return e.into();
    }
    exec_lisp(&launch, Become::default(), &mut |_| {}).into()
}

/// The user switch, if any, then `no_new_privs`.
pub fn switch_user(switch: Option<&Switch>) -> Result<(), SetupError> {
    if let Some(switch) = switch {
        identity::apply(switch)?;
    }
    identity::no_new_privs()
}

/// Places each `(source, target)` pair (all sources first copied above
/// every target, so no placement clobbers another) and closes every other descriptor
/// from 3 up. Targets are left inheritable.
pub fn arrange(pairs: &[(RawFd, RawFd)]) -> Result<(), SetupError> {
    // Above every target, so no copy sits where a placement goes.
    let above = pairs.iter().map(|&(_, t)| t + 1).max().unwrap_or(0).max(10);
    let mut high = Vec::with_capacity(pairs.len());
    for &(source, target) in pairs {
        high.push((dup_above(source, above)?, target));
    }
    for &(source, target) in &high {
        place(source, target)?;
    }
    let mut targets: Vec<RawFd> = high.iter().map(|&(_, t)| t).filter(|t| *t >= 3).collect();
    targets.sort_unstable();
    let mut from = 3;
    for target in targets {
        if target > from {
            close_range(from, target - 1);
        }
        from = from.max(target + 1);
    }
    close_range(from, RawFd::MAX);
    Ok(())
}

/// The bootstrap for one Lisp: opened anew, read-only, so each Lisp reads
/// its own copy from the start (GNU CLISP reads the descriptor itself);
/// numbered 10 or more and close-on-exec until placed.
pub fn fresh_bootstrap(bootstrap: RawFd) -> Result<RawFd, SetupError> {
    let path = format!("/proc/self/fd/{bootstrap}");
    let fd = nix::fcntl::open(
        path.as_str(),
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(SetupError::Bootstrap)?;
    dup_high(fd.as_raw_fd())
}

/// A close-on-exec copy of `fd` numbered 10 or more, out of the way of the
/// fixed descriptors the Lisp gets.
pub fn dup_high(fd: RawFd) -> Result<RawFd, SetupError> {
    dup_above(fd, 10)
}

/// A close-on-exec copy of `fd` numbered `floor` or more.
fn dup_above(fd: RawFd, floor: RawFd) -> Result<RawFd, SetupError> {
    // SAFETY: the borrowed descriptor is open for the duration of the call.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    fcntl(fd, FcntlArg::F_DUPFD_CLOEXEC(floor)).map_err(SetupError::Dup)
}

/// `dup2(fd, target)`, leaving `target` without close-on-exec (also when
/// `fd` already is `target`, where dup2 would change nothing).
pub fn place(fd: RawFd, target: RawFd) -> Result<(), SetupError> {
    let failed = |errno| SetupError::Place { target, errno };
    if fd == target {
        // SAFETY: the descriptor is open for the duration of the call.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        return fcntl(fd, FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()))
            .map(drop)
            .map_err(failed);
    }
    // SAFETY: dup2 only manipulates the descriptor table; `target` is a fixed
    // slot this process reserves for the Lisp.
    if unsafe { libc::dup2(fd, target) } < 0 {
        return Err(failed(Errno::last()));
    }
    Ok(())
}

/// Closes the descriptors from `first` to `last`.
fn close_range(first: RawFd, last: RawFd) {
    // SAFETY: close_range only closes descriptors; no Rust object in this
    // process (which execs or exits next) will use the ones closed.
    unsafe { libc::syscall(libc::SYS_close_range, first as u32, last as u32, 0) };
}

/// Default dispositions for every signal and an empty mask: a Lisp must
/// not inherit our ignored SIGPIPE or a blocked signal.
pub fn reset_signals() {
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    for signal in Signal::iterator() {
        if !matches!(signal, Signal::SIGKILL | Signal::SIGSTOP) {
            // SAFETY: installing SIG_DFL involves no handler code.
            let _ = unsafe { nix::sys::signal::signal(signal, SigHandler::SigDfl) };
        }
    }
}

/// Ends the process at once (a child that failed before exec).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit ends the process without running the parent's atexit
    // handlers or flushing its stdio buffers, which the child must not do.
    unsafe { libc::_exit(code) }
}
