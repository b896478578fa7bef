//! `start`, `restart` and `nodaemon`: a Lisp planned, launched and waited
//! for.

use std::path::Path;

use nix::sys::signal::Signal;
use nix::sys::wait::{WaitStatus, waitpid};

use crate::plan::{self, Mode};

use super::launch::Launch;
use super::request::{caller_dir, caller_env};
use super::stop::{Ending, stop};
use super::{
    DaemonError, Fact, PidState, Request, RunDir, caller, contain, create_fasl_dir, exec,
    foreground, fork, notify, program, spawn,
};

/// `start`: reports only once `:main-function` has returned, or why not.
pub fn start(req: &Request) -> Result<Fact, DaemonError> {
    let Some(files) = req.pid_files(true)? else {
        unreachable!("the directory is created")
    };
    if let PidState::Running { pid, .. } = files.inspect(req.daemon_uid())? {
        return Ok(Fact::AlreadyRunning {
            pid,
            unit: managed_by(&files, pid),
        });
    }
    if super::status::gave_up(&files).is_some() {
        files.remove_state()?;
    }
    let program = program(req)?;
    create_fasl_dir(req.conf.spec.fasl_dir.as_deref(), req)?;
    let control_dir = super::program::make_control_dir(req, &files, &Mode::Daemon)?;
    let mut launch = daemon_launch(req, &program, files.try_clone()?)?;
    launch.control_dir = control_dir;
    let timeout = req.start_timeout.unwrap_or(req.conf.spec.start_timeout());
    let started = spawn::start(launch, timeout, req.logger)?;
    let up = match &started {
        Fact::Started { pid } | Fact::StillInitializing { pid, .. } => Some(*pid),
        _ => None,
    };
    if up.is_none() && !matches!(started, Fact::AlreadyRunning { .. }) {
        // A failed start leaves no pid file behind (the daemon is gone, so
        // its lock is too; a locked file is someone else's and stays).
        if let Err(e) = files.remove() {
            eprintln!("ERROR: {e}");
        }
    }
    if !matches!(started, Fact::AlreadyRunning { .. }) {
        before_parent_exit(req, &program, up);
    }
    Ok(started)
}

/// The daemon of `start`: the plan for the conf, with its pid files.
fn daemon_launch(req: &Request, program: &Path, files: RunDir) -> Result<Launch, DaemonError> {
    let plan = plan::plan(
        &req.conf.spec,
        &req.runner,
        &Mode::Daemon,
        req.switch.as_ref(),
        &req.lisp_log(req.switch.is_none()),
        &caller(req),
    );
    let mut launch = Launch::new(&plan, program, Some(files))?;
    // A cgroup of its own where the kernel offers one; else a supervisor
    // subreaps (see `contain`).
    launch.cgroup = contain::Cgroup::of_daemon(&req.conf.pid_file).filter(|c| c.create().is_ok());
    Ok(launch)
}

/// `:before-parent-exit-fn`: called as `(funcall FN PID STATUS)` in a
/// short-lived Lisp once the outcome of start is known (not when another
/// daemon already ran); STATUS is 10 (SIGUSR1) when the daemon is `up`
/// (its pid), 17 (SIGCHLD) when it is not.
fn before_parent_exit(req: &Request, program: &Path, up: Option<i32>) {
    if req.conf.spec.before_parent_exit_fn.is_none() {
        return;
    }
    let status = match up {
        Some(_) => Signal::SIGUSR1,
        None => Signal::SIGCHLD,
    } as i32;
    let mode = Mode::ParentExit {
        pid: up.unwrap_or(0),
        status,
    };
    // A Lisp of the caller's (root's, in production): its directory one
    // only the caller's trusted owners can change, whoever the `:user` is.
    let caller = plan::Caller {
        env: caller_env(),
        dir: caller_dir(req, None),
    };
    let plan = plan::plan(
        &req.conf.spec,
        &req.runner,
        &mode,
        None,
        &req.lisp_log(true),
        &caller,
    );
    let launch = match Launch::new(&plan, program, None) {
        Ok(launch) => launch,
        Err(e) => return eprintln!("ERROR: :before-parent-exit-fn: {e}"),
    };
    let child = fork::child(|| {
        let e = exec::exec_in_foreground(launch);
        eprintln!("ERROR: :before-parent-exit-fn: {e}");
        exec::exit_now(1)
    });
    match child {
        Ok(child) => match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, 0)) => {}
            Ok(status) => eprintln!("ERROR: :before-parent-exit-fn failed: {status:?}"),
            Err(e) => eprintln!("ERROR: :before-parent-exit-fn: {e}"),
        },
        Err(e) => eprintln!("ERROR: :before-parent-exit-fn: cannot fork: {e}"),
    }
}

/// `try-restart`: `restart` if the daemon runs, else nothing (LSB).
pub fn try_restart(req: &Request) -> Result<Fact, DaemonError> {
    match req.inspect()? {
        (_, PidState::Running { .. }) => restart_running(req),
        _ => Ok(Fact::NothingToRestart),
    }
}

/// `restart`: stop the daemon if it runs, then start it.
pub fn restart(req: &Request) -> Result<Fact, DaemonError> {
    match req.inspect() {
        Ok((_, PidState::Running { .. })) => restart_running(req),
        _ => start(req),
    }
}

/// The stop, then the start, of a daemon that runs; a stop that did not
/// end it is the fact.
fn restart_running(req: &Request) -> Result<Fact, DaemonError> {
    if super::replace::replaces(req)
        && let (Some(files), PidState::Running { pid, locked: true }) = req.inspect()?
        && let Some(fact) = super::replace::replace(req, &files, pid)?
    {
        return Ok(fact);
    }
    // Stopped and started here, a daemon of a service manager would run
    // beside it, outside it.
    if let (Some(files), PidState::Running { pid, locked: true }) = req.inspect()?
        && let Some(unit) = managed_by(&files, pid)
    {
        return Ok(Fact::Managed {
            pid,
            unit,
            instead: "systemctl restart",
        });
    }
    match stop(req, Ending::Schedule)? {
        Fact::Stopped { .. } => start(req),
        not_stopped => Ok(not_stopped),
    }
}

/// `nodaemon`: the Lisp in the foreground, no pid file. Normally the tool
/// execs it (no fork: the REPL gets the terminal). Under a service manager
/// (`NOTIFY_SOCKET` set) or as PID 1 (a container), or when it runs as
/// another user, the tool stays as its parent instead: it notifies,
/// forwards signals, reaps zombies, relays a pty. Returns the exit code to
/// leave with.
pub fn nodaemon(req: &Request) -> Result<i32, DaemonError> {
    let program = program(req)?;
    // As start does: the :user's fasl cache is made for it (the template
    // unit runs nodaemon; the user could not make /var/cache/... itself).
    create_fasl_dir(req.conf.spec.fasl_dir.as_deref(), req)?;
    if under_service_manager() {
        return service(req, &program);
    }
    let notifier = notify::Notifier::from_env();
    // A Lisp of another user never shares the caller's terminal session
    // (TIOCSTI would type into root's shell): it runs as our child in a new
    // session, with a pty of its own.
    let as_parent = notifier.is_some() || std::process::id() == 1 || req.switch.is_some();
    let mode = Mode::Foreground {
        report_ready: as_parent,
    };
    let spec = &req.conf.spec;
    let plan = plan::plan(
        spec,
        &req.runner,
        &mode,
        req.switch.as_ref(),
        &req.lisp_log(req.switch.is_none()),
        &caller(req),
    );
    let control_dir = match req.pid_files(true)? {
        Some(files) => {
            // The control directory is the running daemon's: a Lisp beside
            // it would take its control socket.
            if let PidState::Running { pid, .. } = files.inspect(req.daemon_uid())?
                && super::program::uses_control_dir(req, &mode)
            {
                return Err(DaemonError::Running { pid });
            }
            super::program::make_control_dir(req, &files, &mode)?
        }
        None => None,
    };
    let mut launch = Launch::new(&plan, &program, None)?;
    launch.control_dir = control_dir;
    // `:listen`'s sockets: bound here (or taken from the service manager
    // that passed them), as the caller, before any user switch.
    launch.listeners = super::listen::bind(&launch.listen).map_err(DaemonError::Setup)?;
    // Another user's Lisp at the caller's terminal: its whole tree ends
    // with it, in a cgroup of its own where the kernel offers one (not
    // under a service manager, whose own cgroup holds the unit).
    if req.switch.is_some() && notifier.is_none() && std::process::id() != 1 {
        let name = format!(
            "{}.nodaemon-{}",
            req.conf.pid_file.display(),
            std::process::id()
        );
        launch.cgroup = contain::Cgroup::of_daemon(Path::new(&name)).filter(|c| c.create().is_ok());
    }
    if as_parent {
        return foreground::run(launch, notifier.as_ref());
    }
    Err(exec::exec_in_foreground(launch))
}

/// Whether `nodaemon` runs as a service of systemd: `NOTIFY_SOCKET` and
/// `INVOCATION_ID` both set (systemd sets both for every service; a
/// `NOTIFY_SOCKET` that leaked into a shell's environment alone never makes
/// the tool claim the pid file as a unit's), and not as PID 1 (a
/// container's init, which reaps and forwards instead).
pub fn under_service_manager() -> bool {
    notify::Notifier::from_env().is_some()
        && std::env::var_os("INVOCATION_ID").is_some_and(|id| !id.is_empty())
        && std::process::id() != 1
}

/// The unit of the service manager that runs the daemon `pid`, if one
/// does (its supervisor's record says so).
pub(super) fn managed_by(files: &RunDir, pid: i32) -> Option<String> {
    super::supervise::read_state(files, pid).and_then(|s| s.unit)
}

/// `nodaemon` under a service manager: the tool claims the pid file as
/// `start`'s daemon process does (so every command sees the daemon: status,
/// reload, list, restart; a second start finds it running) and supervises
/// the Lisp in the foreground, telling the manager readiness, status and
/// stopping; the manager restarts it (the tool never does), and the exit
/// code is the Lisp's. Returns only with an error.
fn service(req: &Request, program: &Path) -> Result<i32, DaemonError> {
    // The manager's sockets, and syslog's connection, out of the way of
    // the lock's descriptor; whatever else holds it was inherited by mistake.
    let inherited = super::listen::take_inherited(req.conf.spec.listen.len());
    req.logger.release();
    // Whatever else the manager passed on 3 to the lock's descriptor (its
    // sockets the conf does not take) is closed before any descriptor of
    // ours is opened: the pid directory never lands where the lock goes.
    for fd in 3..=crate::plan::LOCK_FD {
        let _ = nix::unistd::close(fd);
    }
    let Some(files) = req.pid_files(true)? else {
        unreachable!("the directory is created")
    };
    let pid = std::process::id() as i32;
    if let super::rundir::Claim::Held(holder) = files.claim(crate::plan::LOCK_FD, pid)? {
        return Err(DaemonError::Running { pid: holder });
    }
    let Some(notifier) = notify::Notifier::from_env() else {
        unreachable!("checked by the caller")
    };
    let control_dir = match super::program::make_control_dir(req, &files, &Mode::Service) {
        Ok(dir) => dir,
        Err(e) => {
            files.remove_own();
            return Err(e);
        }
    };
    let plan = plan::plan(
        &req.conf.spec,
        &req.runner,
        &Mode::Service,
        req.switch.as_ref(),
        &req.lisp_log(req.switch.is_none()),
        &caller(req),
    );
    let mut launch = Launch::new(&plan, program, None)?;
    launch.listeners = inherited.unwrap_or_default();
    launch.control_dir = control_dir;
    let policy = plan.supervision.clone().expect("a service is supervised");
    super::supervise::run(
        launch,
        files,
        &policy,
        super::supervise::Starter::Manager(notifier),
        req.logger,
    )
}
