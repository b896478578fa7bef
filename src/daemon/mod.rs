//! The daemon lifecycle: every command of `daemon.sh`, done the way
//! start-stop-daemon, systemd and s6 do it. The only place with fork,
//! setsid, exec, signals and pid-file locks.

mod error;
pub mod identity;
mod notify;
mod output;
mod pidfile;
mod process;
mod spawn;
mod supervise;

use std::ffi::OsStr;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, fork};

pub use error::DaemonError;
pub use pidfile::PidState;

use crate::config::{Conf, RestartPolicy, StopSchedule, StopStep};
use crate::lisp::{self, Mode, Runner};
use crate::logging::Logger;
use crate::report::{Outcome, Reason, Supervision, Verb, exit};
use spawn::{Launch, Started};
use supervise::Policy;

/// How long to wait for a process to vanish after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// One command's inputs.
pub struct Request<'a> {
    pub conf: &'a Conf,
    pub runner: Runner,
    /// `--timeout`: overrides `:start-timeout`.
    pub start_timeout: Option<Duration>,
    /// `zap --force`.
    pub force: bool,
    /// `--retry`: overrides the conf's stop schedule.
    pub stop_schedule: Option<StopSchedule>,
    /// Who the daemon runs as, if not the caller (see `identity::decide`).
    pub switch: Option<identity::Switch>,
    pub logger: &'a Logger,
}

impl Request<'_> {
    fn login(&self) -> Option<lisp::Login<'_>> {
        self.switch.as_ref().map(|s| lisp::Login {
            name: &s.account.name,
            home: &s.account.home,
        })
    }

    fn pid_file(&self) -> PathBuf {
        self.conf.pid_file.clone()
    }

    fn outcome(&self, verb: Verb, ok: bool, reason: Option<Reason>, pid: Option<i32>) -> Outcome {
        Outcome::new(verb, ok, reason, pid, self.pid_file())
    }

    /// A failure of the tool itself (a syscall, a refused pid file).
    fn internal(&self, verb: Verb, error: DaemonError) -> Outcome {
        let outcome = self
            .outcome(verb, false, Some(Reason::InternalError), None)
            .with_error(error.to_string());
        match verb {
            Verb::Status => outcome.with_exit(exit::STATUS_UNKNOWN),
            _ => outcome,
        }
    }
}

/// `status`: running, stale, or no pid file.
pub fn status(req: &Request) -> Outcome {
    match pidfile::inspect(&req.conf.pid_file) {
        Ok(PidState::Running { pid, .. }) => req
            .outcome(Verb::Status, true, None, Some(pid))
            .with_supervision(supervision(req, pid)),
        Ok(PidState::Stale { pid }) => {
            req.outcome(Verb::Status, false, Some(Reason::ServiceUnavailable), pid)
        }
        Ok(PidState::Missing) => req.outcome(Verb::Status, false, Some(Reason::NoPidFile), None),
        Err(e) => req.internal(Verb::Status, e),
    }
}

/// What the supervisor `pid` of this conf's daemon says, if it is one.
fn supervision(req: &Request, pid: i32) -> Option<Supervision> {
    supervise::read_state(&req.conf.pid_file, pid).map(|s| Supervision {
        lisp_pid: s.lisp,
        restarts: s.restarts,
        last_exit: s.last_exit,
    })
}

/// `start`: reports only once `:main-function` has returned, or why not.
pub fn start(req: &Request) -> Outcome {
    start_as(req, Verb::Start)
}

fn start_as(req: &Request, verb: Verb) -> Outcome {
    let pid_file = &req.conf.pid_file;
    match pidfile::inspect(pid_file) {
        Ok(PidState::Running { pid, .. }) => {
            return req.outcome(verb, true, Some(Reason::AlreadyRunning), Some(pid));
        }
        Ok(_) => {}
        Err(e) => return req.internal(verb, e),
    }
    let Some(program) = find_program(&req.runner.program) else {
        return lisp_not_found(req, verb);
    };
    let spec = &req.conf.spec;
    let plan = lisp::plan(
        spec,
        &req.runner,
        &Mode::Daemon,
        req.login(),
        req.logger.destinations(),
    );
    let started = pidfile::create_dir(pid_file)
        .and_then(|()| create_fasl_dir(spec.fasl_dir.as_deref(), req.switch.as_ref()))
        .and_then(|()| {
            let output = spec.output.as_deref();
            let launch = Launch::new(
                &plan,
                &program,
                pid_file,
                spec.umask(),
                req.switch.clone(),
                output,
            )?;
            // A restart policy, or rotation of :output, needs a supervisor.
            let rotation = spec
                .output_max_size
                .map(|max| (Some(max), spec.output_keep()));
            Ok(match (spec.restart, rotation) {
                (RestartPolicy::Never, None) => launch,
                (restart, rotation) => launch.supervised(Policy {
                    restart,
                    delay: spec.restart_delay(),
                    max_delay: spec.restart_max_delay(),
                    start_limit: spec.start_limit,
                    rotation: rotation.or(spec.output.as_ref().map(|_| (None, spec.output_keep()))),
                }),
            })
        })
        .and_then(|launch| {
            spawn::start(
                launch,
                req.start_timeout.unwrap_or(spec.start_timeout()),
                req.logger,
            )
        });
    let started = match started {
        Ok(started) => started,
        Err(e) => return req.internal(verb, e),
    };
    let outcome = match started {
        Started::Ready { pid } => req.outcome(verb, true, None, Some(pid)),
        Started::AlreadyRunning { pid } => {
            req.outcome(verb, true, Some(Reason::AlreadyRunning), Some(pid))
        }
        Started::StillInitializing { pid } => {
            req.outcome(verb, true, Some(Reason::StillInitializing), Some(pid))
        }
        Started::FunctionError { report } => req
            .outcome(verb, false, Some(Reason::MainFunctionError), None)
            .with_error(report),
        Started::Died { how } => req
            .outcome(verb, false, Some(Reason::Died), None)
            .with_error(how),
        Started::SetupError { message } => req
            .outcome(verb, false, Some(Reason::InternalError), None)
            .with_error(message),
    };
    if !outcome.ok {
        // A failed start leaves no pid file behind (the daemon is gone, so
        // its lock is too; a locked file is someone else's and stays).
        if let Err(e) = pidfile::remove(pid_file) {
            eprintln!("ERROR: {e}");
        }
    }
    if outcome.reason != Some(Reason::AlreadyRunning) {
        before_parent_exit(req, &program, &outcome);
    }
    outcome
}

/// `:fasl-dir`: created (0755) if missing and given to the daemon's user,
/// as restas-daemon did with its fasl directory.
fn create_fasl_dir(
    dir: Option<&Path>,
    switch: Option<&identity::Switch>,
) -> Result<(), DaemonError> {
    let Some(dir) = dir else { return Ok(()) };
    let err = |source| DaemonError::FaslDir {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(err)?;
    if let Some(switch) = switch {
        let (uid, gid) = (switch.account.uid, switch.account.gid);
        std::os::unix::fs::chown(dir, Some(uid), Some(gid)).map_err(err)?;
    }
    Ok(())
}

fn lisp_not_found(req: &Request, verb: Verb) -> Outcome {
    let program = req.runner.program.to_string_lossy();
    req.outcome(verb, false, Some(Reason::LispNotFound), None)
        .with_error(format!(
            "the Lisp program \"{program}\" was not found{}; install it (on Debian: {}) \
         or choose another with the LISP_RUNNER environment variable",
            if program.contains('/') {
                ""
            } else {
                " on PATH"
            },
            req.runner.kind.package_hint()
        ))
}

/// `:before-parent-exit-fn`: called as `(funcall FN PID STATUS)` in a
/// short-lived Lisp once the outcome of start is known; STATUS is 10
/// (SIGUSR1) when the daemon is up, 17 (SIGCHLD) when it is not.
fn before_parent_exit(req: &Request, program: &Path, outcome: &Outcome) {
    if req.conf.spec.before_parent_exit_fn.is_none() {
        return;
    }
    let status = if outcome.ok {
        Signal::SIGUSR1
    } else {
        Signal::SIGCHLD
    } as i32;
    let mode = Mode::ParentExit {
        pid: outcome.pid.unwrap_or(0),
        status,
    };
    let plan = lisp::plan(
        &req.conf.spec,
        &req.runner,
        &mode,
        None,
        req.logger.destinations(),
    );
    let launch = match Launch::new(
        &plan,
        program,
        &req.conf.pid_file,
        req.conf.spec.umask(),
        None,
        None,
    ) {
        Ok(launch) => launch,
        Err(e) => return eprintln!("ERROR: :before-parent-exit-fn: {e}"),
    };
    // SAFETY: single-threaded; the child only execs or exits.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            let e = launch.exec_in_foreground();
            eprintln!("ERROR: :before-parent-exit-fn: {e}");
            std::process::exit(1);
        }
        Ok(ForkResult::Parent { child }) => match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, 0)) => {}
            Ok(status) => eprintln!("ERROR: :before-parent-exit-fn failed: {status:?}"),
            Err(e) => eprintln!("ERROR: :before-parent-exit-fn: {e}"),
        },
        Err(e) => eprintln!("ERROR: :before-parent-exit-fn: cannot fork: {e}"),
    }
}

/// `stop` (the stop schedule: by default SIGUSR1, then SIGKILL after the
/// stop timeout) and `kill` (SIGKILL).
pub fn stop(req: &Request, verb: Verb) -> Outcome {
    let pid_file = &req.conf.pid_file;
    let schedule = match verb {
        Verb::Kill => StopSchedule {
            steps: vec![StopStep {
                signal: Signal::SIGKILL,
                timeout: KILL_WAIT,
            }],
        },
        _ => req
            .stop_schedule
            .clone()
            .unwrap_or_else(|| req.conf.spec.stop_schedule(req.runner.kind.stop_signal())),
    };
    match pidfile::inspect(pid_file) {
        Ok(PidState::Missing) => req.outcome(verb, false, Some(Reason::NoPidFile), None),
        Ok(PidState::Stale { pid }) => match pidfile::remove(pid_file) {
            Ok(_) => req.outcome(verb, false, Some(Reason::NotRunning), pid),
            Err(e) => req.internal(verb, e),
        },
        Ok(PidState::Running { pid, .. }) => match end_process(pid, &schedule) {
            Ok(true) => {
                match end_supervised_lisp(req, pid).and_then(|()| pidfile::remove(pid_file)) {
                    Ok(_) => req.outcome(verb, true, None, Some(pid)),
                    Err(e) => req.internal(verb, e),
                }
            }
            Ok(false) => req
                .outcome(verb, false, Some(Reason::Running), Some(pid))
                .with_error(format!(
                    "process {pid} is still running at the end of the stop schedule {schedule}"
                )),
            Err(e) => req.internal(verb, e),
        },
        Err(e) => req.internal(verb, e),
    }
}

/// A supervisor forwards the stop to its Lisp, and the kernel kills the Lisp
/// if the supervisor was killed; wait until that Lisp is gone too, so
/// nothing is left behind.
fn end_supervised_lisp(req: &Request, supervisor: i32) -> Result<(), DaemonError> {
    let state = supervise::read_state(&req.conf.pid_file, supervisor);
    let _ = std::fs::remove_file(supervise::state_file(&req.conf.pid_file));
    if let Some(lisp) = state.and_then(|s| s.lisp) {
        let schedule = StopSchedule {
            steps: vec![StopStep {
                signal: Signal::SIGKILL,
                timeout: KILL_WAIT,
            }],
        };
        // Only a Lisp whose parent was the supervisor (now gone) is ours.
        if process::alive(lisp)
            && process::argv0(lisp).is_some_and(|a| lisp::is_lisp_program(Path::new(&a)))
        {
            end_process(lisp, &schedule)?;
        }
    }
    Ok(())
}

/// Goes through the stop schedule on `pid` through a pidfd; true when the
/// process has ended.
fn end_process(pid: i32, schedule: &StopSchedule) -> Result<bool, DaemonError> {
    let fd = match process::PidFd::open(pid) {
        Ok(fd) => fd,
        // It ended between the check and now.
        Err(DaemonError::PidFd {
            errno: nix::errno::Errno::ESRCH,
            ..
        }) => return Ok(true),
        Err(e) => return Err(e),
    };
    for step in &schedule.steps {
        fd.signal(step.signal)?;
        if fd.wait_exit(step.timeout) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `zap`: remove the pid file of a daemon that is gone.
pub fn zap(req: &Request) -> Outcome {
    let pid_file = &req.conf.pid_file;
    let removed = |r: Result<(), DaemonError>| match r {
        Ok(()) => req.outcome(Verb::Zap, true, None, None),
        Err(e) => req.internal(Verb::Zap, e),
    };
    match pidfile::inspect(pid_file) {
        Ok(PidState::Missing) => req.outcome(Verb::Zap, false, Some(Reason::NoPidFile), None),
        Ok(PidState::Running { .. }) if req.force => removed(pidfile::remove_forced(pid_file)),
        Ok(PidState::Running { pid, .. }) => {
            req.outcome(Verb::Zap, false, Some(Reason::Running), Some(pid))
        }
        Ok(PidState::Stale { .. }) => match pidfile::remove(pid_file) {
            Ok(None) => removed(Ok(())),
            Ok(Some(pid)) => req.outcome(Verb::Zap, false, Some(Reason::Running), Some(pid)),
            Err(e) => req.internal(Verb::Zap, e),
        },
        Err(DaemonError::PidFileWritable { .. }) if req.force => {
            removed(pidfile::remove_forced(pid_file))
        }
        Err(e) => req.internal(Verb::Zap, e),
    }
}

/// `restart`: stop the daemon if it runs, then start it.
pub fn restart(req: &Request) -> Outcome {
    if let Ok(PidState::Running { .. }) = pidfile::inspect(&req.conf.pid_file) {
        let stopped = stop(req, Verb::Restart);
        if !stopped.ok {
            return stopped;
        }
    }
    start_as(req, Verb::Restart)
}

/// `nodaemon`: the Lisp in the foreground, no pid file. Normally the tool
/// execs it (no fork: the REPL gets the terminal). Under a service manager
/// (`NOTIFY_SOCKET` set) or as PID 1 (a container), the tool stays as its
/// parent instead: it notifies, forwards signals, reaps zombies. Returns the
/// outcome of a failure, or the exit code to leave with.
pub fn nodaemon(req: &Request) -> Result<i32, Outcome> {
    let Some(program) = find_program(&req.runner.program) else {
        return Err(lisp_not_found(req, Verb::Start));
    };
    let notifier = notify::Notifier::from_env();
    let as_parent = notifier.is_some() || std::process::id() == 1;
    let mode = Mode::Foreground {
        report_ready: as_parent,
    };
    let spec = &req.conf.spec;
    let plan = lisp::plan(
        spec,
        &req.runner,
        &mode,
        req.login(),
        req.logger.destinations(),
    );
    let launch = Launch::new(
        &plan,
        &program,
        &req.conf.pid_file,
        spec.umask(),
        req.switch.clone(),
        None,
    )
    .map_err(|e| req.internal(Verb::Start, e))?;
    if as_parent {
        return launch
            .run_as_parent(notifier.as_ref())
            .map_err(|e| req.internal(Verb::Start, e));
    }
    Err(req.internal(Verb::Start, launch.exec_in_foreground()))
}

/// The program to run: a path as is, a name looked up on PATH.
fn find_program(program: &OsStr) -> Option<PathBuf> {
    let executable = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let path = Path::new(program);
    if program.as_encoded_bytes().contains(&b'/') {
        return executable(path).then(|| path.to_path_buf());
    }
    let dirs = std::env::var_os("PATH")?;
    std::env::split_paths(&dirs)
        .map(|d| d.join(program))
        .find(|p| executable(p))
}
