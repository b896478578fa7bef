//! The daemon lifecycle: every command of `daemon.sh`, done the way
//! start-stop-daemon, systemd and s6 do it. The only place with fork,
//! setsid, exec, signals and pid-file locks.

mod contain;
pub mod core;
mod details;
mod error;
mod events;
mod exec;
mod fact;
mod fork;
pub mod identity;
mod launch;
mod notify;
mod output;
mod pidfile;
mod process;
mod pty;
pub mod records;
pub mod reload;
mod spawn;
mod supervise;
pub mod tail;

use std::ffi::OsStr;
use std::os::fd::AsFd as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::sys::wait::{WaitStatus, waitpid};

pub use details::details;
pub use error::DaemonError;
pub use fact::{Details, Fact, Supervision};
pub use pidfile::{PidFiles, PidState};

use crate::config::{Conf, StopSchedule, StopStep};
use crate::logging::{Destination, Destinations, Logger};
use crate::plan::{self, Mode, Runner};
use crate::trust::{self, Trust};
use launch::Launch;

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
    /// Whose files and processes this command trusts.
    pub trust: Trust,
    /// The tool's pid directory, where `start` leaves its record for `list`.
    pub pid_dirs: crate::config::PidDirs,
}

impl Request<'_> {
    /// Where the Lisp writes its own log lines. A Lisp that runs as the
    /// caller (root, in production) opens a log file by name, following
    /// links, so it gets a file only where nobody but trusted owners can
    /// change the directories on its path; elsewhere its lines go nowhere
    /// (the tool's own lines still go there, through `trust::open_append`).
    /// A Lisp of another user writes with that user's power.
    pub(crate) fn lisp_log(&self, as_caller: bool) -> Destinations {
        let safe = |d: &Destination| match d {
            Destination::File(path) if as_caller => {
                let dir = path.parent().unwrap_or(Path::new("/"));
                match trust::walk_dir(
                    dir,
                    trust::Policy::Strict,
                    &self.trust,
                    "the log file",
                    None,
                ) {
                    Ok(_) => d.clone(),
                    Err(_) => Destination::Nowhere,
                }
            }
            _ => d.clone(),
        };
        let all = self.logger.destinations();
        Destinations {
            info: safe(&all.info),
            error: safe(&all.error),
            trace: safe(&all.trace),
        }
    }

    /// The pid directory's files; with `create`, its directory is made.
    fn pid_files(&self, create: bool) -> Result<Option<PidFiles>, DaemonError> {
        PidFiles::open(
            &self.conf.pid_file,
            self.conf.private_pid_dir.as_deref(),
            &self.trust,
            create,
        )
    }

    /// Where in the daemon the signals of stop and reload go.
    fn aim(&self) -> process::Aim {
        process::Aim::of(self.runner.kind.facts().signals_main_thread)
    }

    /// The uid the daemon runs as: the conf's `:user`, else the caller.
    fn daemon_uid(&self) -> u32 {
        match (daemon_user(self), &self.conf.spec.user) {
            (Some((uid, _)), _) => uid,
            // An unknown `:user`: no process is its daemon.
            (None, Some(_)) => u32::MAX,
            (None, None) => nix::unistd::getuid().as_raw(),
        }
    }

    /// The pid files (if their directory exists) and what they say.
    fn inspect(&self) -> Result<(Option<PidFiles>, PidState), DaemonError> {
        match self.pid_files(false)? {
            Some(files) => {
                let state = files.inspect(self.daemon_uid())?;
                Ok((Some(files), state))
            }
            None => Ok((None, PidState::Missing)),
        }
    }
}

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

/// A hash of `bytes` that is the same in every version of the tool (64-bit
/// FNV-1a), for names of files the tool finds again: records, cores.
pub(crate) fn stable_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Whether the conf's daemon runs now (a check before work that matters
/// only when it does, or does not: building a core).
pub fn is_running(req: &Request) -> bool {
    matches!(req.inspect(), Ok((_, PidState::Running { .. })))
}

/// What the supervisor `pid` of this conf's daemon says, if it is one.
fn supervision(files: &PidFiles, pid: i32) -> Option<Supervision> {
    supervise::read_state(files, pid).map(|s| Supervision {
        lisp_pid: s.lisp,
        restarts: s.restarts,
        last_exit: s.last_exit,
    })
}

/// `start`: reports only once `:main-function` has returned, or why not.
pub fn start(req: &Request) -> Result<Fact, DaemonError> {
    let Some(files) = req.pid_files(true)? else {
        unreachable!("the directory is created")
    };
    if let PidState::Running { pid, .. } = files.inspect(req.daemon_uid())? {
        return Ok(Fact::AlreadyRunning { pid });
    }
    let program = program(req)?;
    create_fasl_dir(req.conf.spec.fasl_dir.as_deref(), req)?;
    let launch = daemon_launch(req, &program, files.try_clone()?)?;
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
fn daemon_launch(req: &Request, program: &Path, files: PidFiles) -> Result<Launch, DaemonError> {
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

/// The daemon's user (uid, gid) when it is not the caller: the switch, or
/// the conf's `:user` looked up (for commands that switch no user).
pub(crate) fn daemon_user(req: &Request) -> Option<(u32, u32)> {
    if let Some(switch) = &req.switch {
        return Some(switch.ids());
    }
    let name = req.conf.spec.user.as_deref()?;
    let user = nix::unistd::User::from_name(name).ok().flatten()?;
    Some((user.uid.as_raw(), user.gid.as_raw()))
}

/// The Lisp program to run, found and (as root) trusted.
pub(crate) fn program(req: &Request) -> Result<PathBuf, DaemonError> {
    let Some(program) = find_program(&req.runner.program) else {
        return Err(lisp_not_found(req));
    };
    trust::check_program(&program, &req.trust)?;
    Ok(program)
}

/// `:fasl-dir`: created (0755) if missing and given to the daemon's user,
/// as restas-daemon did with its fasl directory. Reached without following
/// a symbolic link the user could have made, and changed through its
/// descriptor; a directory of a third user is refused.
pub(crate) fn create_fasl_dir(dir: Option<&Path>, req: &Request) -> Result<(), DaemonError> {
    const WHAT: &str = "the :fasl-dir";
    let Some(dir) = dir else { return Ok(()) };
    let owner = req.switch.as_ref().map(identity::Switch::ids);
    let create = trust::Create { mode: 0o755, owner };
    let policy = trust::Policy::Confined { user: owner };
    let found = trust::walk_dir(dir, policy, &req.trust, WHAT, Some(create))?;
    let Some((uid, gid)) = owner else {
        return Ok(());
    };
    match found.stat.st_uid {
        owner if owner == uid => Ok(()),
        owner if req.trust.owns(owner) => {
            nix::unistd::fchownat(
                found.fd.as_fd(),
                "",
                Some(uid.into()),
                Some(gid.into()),
                nix::fcntl::AtFlags::AT_EMPTY_PATH,
            )
            .map_err(|e| trust::PathError::io(WHAT, dir, e))?;
            Ok(())
        }
        owner => Err(trust::PathError::from(trust::Refused {
            what: WHAT,
            path: dir.to_path_buf(),
            reason: format!(
                "it is owned by {}, neither root nor the :user",
                trust::user_name(owner)
            ),
            fix: "name a directory of the :user, or one root may create".into(),
        })
        .into()),
    }
}

fn lisp_not_found(req: &Request) -> DaemonError {
    let program = req.runner.program.to_string_lossy();
    DaemonError::LispNotFound {
        program: program.to_string(),
        on_path: !program.contains('/'),
        package: req.runner.kind.facts().package_hint,
    }
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
        PidState::Missing => return Ok(Fact::NoPidFile),
        PidState::Stale { pid } => {
            end_leftovers(req)?;
            files.remove()?;
            return Ok(Fact::WasNotRunning { pid });
        }
        PidState::Running { pid, locked } => (pid, locked),
    };
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
pub(crate) fn supervised_lisp(files: &PidFiles, supervisor: i32) -> Option<process::PidFd> {
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
fn end_leftovers(req: &Request) -> Result<(), DaemonError> {
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
    let mut launch = Launch::new(&plan, &program, None)?;
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
        return launch.run_as_parent(notifier.as_ref());
    }
    Err(exec::exec_in_foreground(launch))
}

/// The caller of a Lisp: its environment, and its directory.
pub(crate) fn caller(req: &Request) -> plan::Caller {
    plan::Caller {
        env: caller_env(),
        dir: caller_dir(req, req.switch.as_ref()),
    }
}

/// The directory the command was run from, for the daemon's
/// `*default-pathname-defaults*`. As root, only one that root (or the
/// daemon's `:user`) alone can change: else a relative path in the conf's
/// code (`(load "init.lisp")`) would run another user's file with the
/// daemon's power. Otherwise none, and the daemon's is `/` (the README
/// says so). `switch`: the user the Lisp runs as, if not the caller.
fn caller_dir(req: &Request, switch: Option<&identity::Switch>) -> Option<PathBuf> {
    let dir = std::env::current_dir().ok()?;
    if !req.trust.root {
        return Some(dir);
    }
    let policy = match switch {
        None => trust::Policy::Strict,
        Some(s) => trust::Policy::Confined {
            user: Some(s.ids()),
        },
    };
    let found = trust::walk_dir(&dir, policy, &req.trust, "the current directory", None).ok()?;
    // The directory itself writable by its owner alone (not /tmp).
    (found.stat.st_mode & 0o022 == 0).then_some(dir)
}

/// The caller's environment for a Lisp; as root, `HOME` is root's own
/// (from the passwd entry): a `HOME` kept through sudo would have root's
/// Lisp load the invoking user's `~/.sbclrc` and ASDF configuration.
fn caller_env() -> plan::Env {
    let mut env = plan::caller_env();
    if nix::unistd::geteuid().is_root()
        && let Some(home) = caller_home()
    {
        env.retain(|(k, _)| k != "HOME");
        env.push(("HOME".into(), home.into_os_string()));
    }
    env
}

/// The caller's home directory: for root, its passwd entry's (not a `HOME`
/// kept through sudo); for others `HOME`, else their passwd entry's.
pub fn caller_home() -> Option<PathBuf> {
    let from_passwd = || {
        nix::unistd::User::from_uid(nix::unistd::getuid())
            .ok()
            .flatten()
            .map(|u| u.dir)
    };
    if nix::unistd::geteuid().is_root() {
        return from_passwd();
    }
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|h| h.is_absolute())
        .or_else(from_passwd)
}

/// The program to run: a path as is (made absolute: the daemon runs from
/// `/`), a name looked up on PATH.
pub(crate) fn find_program(program: &OsStr) -> Option<PathBuf> {
    let executable = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let path = Path::new(program);
    if program.as_encoded_bytes().contains(&b'/') {
        let path = std::path::absolute(path).ok()?;
        return executable(&path).then_some(path);
    }
    let dirs = std::env::var_os("PATH")?;
    std::env::split_paths(&dirs)
        .filter_map(|d| std::path::absolute(d.join(program)).ok())
        .find(|p| executable(p))
}
