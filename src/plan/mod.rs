//! The launch plan: a `DaemonSpec` → the exact program, arguments,
//! environment and bootstrap Lisp program for one Lisp implementation.
//!
//! Pure and tested by equality; `crate::daemon` turns a plan into a process
//! in exactly one place. The user's code travels in the bootstrap, which the
//! Lisp reads from an inherited descriptor: it never appears in argv, which
//! any user can read.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use crate::config::{DaemonSpec, LispCode, Preload, RestartPolicy};
use crate::logging::{Destination, Destinations};
use crate::reader::lisp_string;

/// Where the Lisp finds the bootstrap program.
pub const BOOTSTRAP_FD: i32 = 3;
/// The readiness pipe: the bootstrap writes `ready`, or `error` and the text.
pub const READY_FD: i32 = 4;
/// The lock file, locked by the daemon process for its whole life.
pub const LOCK_FD: i32 = 5;
/// For a Lisp that `keeps_ready_reader`: the read end of its readiness pipe.
pub const READY_READER_FD: i32 = 7;
/// With `:reload-function`: where the daemon writes each reload's verdict
/// (a pipe of its own, which `reload` reads through `/proc/PID/fd`).
pub const RELOAD_FD: i32 = 8;
/// The read end of that pipe, held by the daemon so the pipe lives on.
pub const RELOAD_READER_FD: i32 = 9;
/// With `:listen`, the held sockets are on 3, 4, ... (systemd's
/// `SD_LISTEN_FDS_START`), so the bootstrap and the readiness pipe move
/// above the reload pipe.
pub const LISTEN_FDS_START: i32 = 3;
pub const LISTENING_BOOTSTRAP_FD: i32 = 10;
pub const LISTENING_READY_FD: i32 = 11;
/// A supervised Lisp's cause pipe (`wire::cause`): its last word.
pub const CAUSE_FD: i32 = 12;

/// Where a Lisp of `spec` finds the bootstrap and its readiness pipe.
pub fn lisp_fds(spec: &DaemonSpec, kind: LispKind) -> (i32, i32) {
    match holds_listeners(spec, kind) {
        true => (LISTENING_BOOTSTRAP_FD, LISTENING_READY_FD),
        false => (BOOTSTRAP_FD, READY_FD),
    }
}

/// Whether the Lisp gets `:listen`'s sockets: a Lisp that cannot adopt a
/// descriptor (GNU CLISP) binds its own port, and restarts stop, then start.
pub fn holds_listeners(spec: &DaemonSpec, kind: LispKind) -> bool {
    !spec.listen.is_empty() && kind.facts().adopts_descriptors
}

mod identity;
mod runner;

pub use identity::{Account, Policy, Switch};
pub use runner::{LispKind, Runner, RuntimeOptions, no_cores};

/// The bootstrap's body: a readable Lisp file in the source tree.
const BOOTSTRAP: &str = include_str!("bootstrap.lisp");
/// The preludes' shared defaults, read after the Lisp's own prelude.
const PRELUDE_COMMON: &str = include_str!("prelude-common.lisp");
/// The control socket's server, read once SB-BSD-SOCKETS is loaded.
pub const CONTROL: &str = include_str!("control.lisp");

/// How the Lisp runs the conf's code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `start`: report readiness on `READY_FD`, then stay alive until stopped.
    Daemon,
    /// `nodaemon`: in the foreground; after `:main-function`, a REPL on a
    /// terminal, else wait until stopped. With `report_ready`, readiness is
    /// reported on `READY_FD` (for sd_notify).
    Foreground { report_ready: bool },
    /// `nodaemon` under a service manager (systemd): the tool holds the pid
    /// file and supervises the Lisp in the foreground, as a daemon's
    /// supervisor does (restarts are the manager's), its standard streams
    /// the manager's (the journal) unless `:output` says otherwise.
    Service,
    /// `:before-parent-exit-fn`: call it with `(pid status)` and exit.
    ParentExit { pid: i32, status: i32 },
    /// `build-core`: load `:preload` and save the image to `file`,
    /// telling progress and sources on `READY_FD`.
    BuildCore { file: PathBuf },
}

/// What a descriptor of the Lisp holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// `/dev/null`.
    Null,
    /// Its own read-only copy of the bootstrap.
    Bootstrap,
    /// The readiness pipe's write end.
    Ready,
    /// The lock of its pid file (taken by the claim, placed there).
    Lock,
    /// The readiness pipe's read end (`RunnerFacts::keeps_ready_reader`).
    ReadyReader,
    /// The captured output (`:output`; under a supervisor, its pipe).
    Output,
    /// The reload pipe's write end and read end (a new pipe per Lisp).
    Reload,
    ReloadReader,
    /// The `n`th socket of `:listen`.
    Listener(usize),
    /// A supervised Lisp's cause pipe (its write end).
    Cause,
}

/// The login of the user a daemon runs as, when it is not the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Login<'a> {
    pub name: &'a str,
    pub home: &'a Path,
    pub shell: &'a Path,
}

/// An environment: variables in order, each name once.
pub type Env = Vec<(OsString, OsString)>;

/// Everything needed to start the Lisp, as data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaunchPlan {
    pub program: OsString,
    pub args: Vec<OsString>,
    /// The Lisp's whole environment.
    pub env: Env,
    /// The Lisp program read from `BOOTSTRAP_FD`.
    pub bootstrap: String,
    /// The daemon also holds the read end of its readiness pipe, on
    /// `READY_READER_FD` (see `RunnerFacts::keeps_ready_reader`).
    pub keep_ready_reader: bool,
    /// Signals go to the Lisp's main thread
    /// (`RunnerFacts::signals_main_thread`).
    pub signal_main_thread: bool,
    /// The umask of the daemon (`:os-params :linux-umask`).
    pub umask: u32,
    /// Who it runs as, if not the caller.
    pub identity: Option<Switch>,
    /// Where its stdout and stderr go (`:output`), for a daemon.
    pub output: Option<PathBuf>,
    /// Its supervisor's policy, when it has one.
    pub supervision: Option<Policy>,
    /// Its working directory (`/` for a daemon), if it changes.
    pub cwd: Option<PathBuf>,
    /// Its descriptors: what each holds, and its number; every other one
    /// is closed (the standard ones not listed stay as they are).
    pub fds: Vec<(Slot, i32)>,
    /// When it is ready (`:ready`).
    pub ready: crate::config::Readiness,
    /// The sockets it gets on `Slot::Listener` (`:listen`), if it can.
    pub listen: Vec<crate::config::Listen>,
}

/// `PATH` of a daemon that runs as another user than the caller.
pub const SAFE_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The caller's environment.
pub fn caller_env() -> Env {
    std::env::vars_os().collect()
}

/// The process that asks for the Lisp, an input of `plan`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Caller {
    pub env: Env,
    /// The directory the command was run from: the daemon's
    /// `*default-pathname-defaults*`, as it was the original's (whose
    /// daemon was a fork of the caller's Lisp), though its working
    /// directory is `/`.
    pub dir: Option<PathBuf>,
}

/// The plan for running `spec` in `mode` on `runner` for `caller`, as
/// `switch` says if given (but for
/// `:before-parent-exit-fn`, which runs as the caller; see `environment`).
pub fn plan(
    spec: &DaemonSpec,
    runner: &Runner,
    mode: &Mode,
    switch: Option<&Switch>,
    log: &Destinations,
    caller: &Caller,
) -> LaunchPlan {
    // A builder and :before-parent-exit-fn's Lisp get no listeners, so
    // their bootstrap is where a Lisp without them has it.
    let bootstrap_fd = match mode {
        Mode::BuildCore { .. } | Mode::ParentExit { .. } => BOOTSTRAP_FD,
        _ => lisp_fds(spec, runner.kind).0,
    };
    let bootstrap_path = format!("/dev/fd/{bootstrap_fd}");
    let switch = switch.filter(|_| !matches!(mode, Mode::ParentExit { .. }));
    let login = switch.map(|s| Login {
        name: &s.account.name,
        home: &s.account.home,
        shell: &s.account.shell,
    });
    let daemon = matches!(mode, Mode::Daemon | Mode::Service);
    let supervision = match mode {
        Mode::Daemon => supervision(spec, runner.kind),
        Mode::Service => Some(service_supervision(spec, runner.kind)),
        _ => None,
    };
    let keeps_reader = runner.kind.facts().keeps_ready_reader;
    LaunchPlan {
        program: runner.program.clone(),
        // Init files (~/.sbclrc, which loads Quicklisp for most users) are
        // kept, as daemon.sh kept them; no banner; no interactive debugger.
        args: runner.kind.args(
            &RuntimeOptions::of(spec),
            runner.core.as_deref(),
            &bootstrap_path,
        ),
        env: with_listeners(
            with_reload_mark(
                environment(&caller.env, login, runner.kind, &spec.environment),
                daemon && spec.reload_function.is_some(),
            ),
            spec,
            runner.kind,
            mode,
        ),
        bootstrap: bootstrap(spec, mode, log, runner, lisp_dir(mode, caller).as_deref()),
        keep_ready_reader: keeps_reader,
        signal_main_thread: runner.kind.facts().signals_main_thread,
        umask: spec.umask(),
        identity: switch.cloned(),
        output: spec.output.clone().filter(|_| daemon),
        fds: descriptors(spec, mode, runner.kind, supervision.is_some()),
        ready: spec.ready.clone(),
        listen: match holds_listeners(spec, runner.kind) {
            true => spec.listen.clone(),
            false => Vec::new(),
        },
        supervision,
        cwd: match mode {
            Mode::Daemon => Some(PathBuf::from("/")),
            // A root Lisp runs in the caller's directory only where that
            // one is trusted (`Caller::dir`), else in `/`: a relative
            // `(load ...)` there never finds a user's file.
            Mode::ParentExit { .. } => lisp_dir(mode, caller),
            _ => None,
        },
    }
}

/// The Lisp's `*default-pathname-defaults*`: the caller's directory; for
/// the caller's own Lisp (`:before-parent-exit-fn`) also its working
/// directory, `/` when the caller's is not one to trust (`Caller::dir`).
fn lisp_dir(mode: &Mode, caller: &Caller) -> Option<PathBuf> {
    match mode {
        Mode::ParentExit { .. } => Some(caller.dir.clone().unwrap_or_else(|| "/".into())),
        _ => caller.dir.clone(),
    }
}

/// The Lisp's descriptor layout in `mode` (see `LaunchPlan::fds`), for a
/// daemon `supervised` or not.
fn descriptors(
    spec: &DaemonSpec,
    mode: &Mode,
    kind: LispKind,
    supervised: bool,
) -> Vec<(Slot, i32)> {
    let keeps_reader = kind.facts().keeps_ready_reader;
    let stdout = match spec.output.is_some() {
        true => Slot::Output,
        false => Slot::Null,
    };
    let (bootstrap_fd, ready_fd) = lisp_fds(spec, kind);
    let listeners = (0..spec.listen.len())
        .map(|i| (Slot::Listener(i), LISTEN_FDS_START + i as i32))
        .filter(|_| holds_listeners(spec, kind));
    let mut fds = Vec::new();
    match mode {
        Mode::Daemon => {
            fds.extend([(Slot::Null, 0), (stdout, 1), (stdout, 2)]);
            fds.extend([(Slot::Bootstrap, bootstrap_fd), (Slot::Ready, ready_fd)]);
            fds.extend(listeners);
            if supervised {
                fds.push((Slot::Cause, CAUSE_FD));
            }
            // Under a supervisor, the supervisor holds the lock and reads
            // the pipe; a daemon that is the Lisp holds them itself.
            if !supervised {
                fds.push((Slot::Lock, LOCK_FD));
                if keeps_reader {
                    fds.push((Slot::ReadyReader, READY_READER_FD));
                }
            }
            if spec.reload_function.is_some() {
                fds.extend([
                    (Slot::Reload, RELOAD_FD),
                    (Slot::ReloadReader, RELOAD_READER_FD),
                ]);
            }
        }
        Mode::Foreground { report_ready } => {
            fds.push((Slot::Bootstrap, bootstrap_fd));
            if *report_ready {
                fds.push((Slot::Ready, ready_fd));
            }
            fds.extend(listeners);
        }
        // The standard streams are the service manager's (or `:output`).
        Mode::Service => {
            if spec.output.is_some() {
                fds.extend([(Slot::Null, 0), (Slot::Output, 1), (Slot::Output, 2)]);
            }
            fds.extend([(Slot::Bootstrap, bootstrap_fd), (Slot::Ready, ready_fd)]);
            fds.extend(listeners);
            fds.push((Slot::Cause, CAUSE_FD));
            if spec.reload_function.is_some() {
                fds.extend([
                    (Slot::Reload, RELOAD_FD),
                    (Slot::ReloadReader, RELOAD_READER_FD),
                ]);
            }
        }
        Mode::ParentExit { .. } => fds.push((Slot::Bootstrap, BOOTSTRAP_FD)),
        // Nothing of the caller's terminal (the builder runs the user's
        // code): its compiler's notes come in its report (see build-core
        // in bootstrap.lisp).
        Mode::BuildCore { .. } => {
            fds.extend([
                (Slot::Null, 0),
                (Slot::Null, 1),
                (Slot::Null, 2),
                (Slot::Bootstrap, BOOTSTRAP_FD),
                (Slot::Ready, READY_FD),
            ]);
        }
    }
    fds
}

/// The `:output-max-size` of a supervisor's `:output` when the conf gives
/// none: a daemon cannot fill root's disk by default.
pub const DEFAULT_OUTPUT_MAX: u64 = 1 << 30;

/// A daemon's supervisor, when a restart policy, rotation of `:output`, or
/// `:ready :notify` needs one (the supervisor hears the notify socket for
/// the daemon's whole life, so `status` knows when it is ready).
fn supervision(spec: &DaemonSpec, kind: LispKind) -> Option<Policy> {
    let rotation = spec
        .output_max_size
        .map(|max| (Some(max), spec.output_keep()));
    // A holder of `:listen`'s sockets across restarts, too.
    let notify = spec.ready == crate::config::Readiness::Notify || !spec.listen.is_empty();
    // And the writer of :output for a Lisp whose streams would die of a
    // full disk.
    let writer = spec.output.is_some() && !kind.facts().keeps_output_lines;
    // The watchdog asks over the control socket; what it kills is restarted.
    let watchdog = spec
        .watchdog
        .filter(|_| control_dir(spec, &Mode::Daemon, kind).is_some());
    match (spec.restart, rotation) {
        (RestartPolicy::Never, None) if !notify && !writer && watchdog.is_none() => None,
        (restart, rotation) => Some(Policy {
            restart: match (restart, watchdog) {
                (RestartPolicy::Never, Some(_)) => RestartPolicy::OnFailure,
                (restart, _) => restart,
            },
            watchdog,
            delay: spec.restart_delay(),
            max_delay: spec.restart_max_delay(),
            start_limit: spec.start_limit,
            // Written by a root supervisor: never without a cap.
            rotation: rotation.or(spec
                .output
                .as_ref()
                .map(|_| (Some(DEFAULT_OUTPUT_MAX), spec.output_keep()))),
            name: spec.name.clone().unwrap_or_else(|| {
                spec.conf_params_file
                    .as_deref()
                    .and_then(Path::file_stem)
                    .map_or("daemon".into(), |s| s.to_string_lossy().into_owned())
            }),
            stop_schedule: spec.stop_schedule(kind.facts().stop_signal),
            start_timeout: spec.start_timeout(),
            heap_mb: spec.dynamic_space_size,
            stack_mb: spec.control_stack_size,
        }),
    }
}

/// The supervision of `nodaemon` under a service manager: the manager
/// restarts (its unit's `Restart=`), the tool never does; `:output` is
/// written by it, rotated, when the conf names one.
fn service_supervision(spec: &DaemonSpec, kind: LispKind) -> Policy {
    let mut policy = supervision(spec, kind).unwrap_or_else(|| {
        let mut with_notify = spec.clone();
        with_notify.ready = crate::config::Readiness::Notify;
        supervision(&with_notify, kind).expect(":notify is supervised")
    });
    policy.restart = RestartPolicy::Never;
    policy.start_limit = None;
    policy
}

/// Whether a variable of the caller reaches a daemon that runs as another
/// user: the locale, the time zone, the terminal, and the Lisp's own.
fn kept_across_users(name: &OsStr, kind: LispKind) -> bool {
    let name = name.to_string_lossy();
    matches!(name.as_ref(), "LANG" | "TZ" | "TERM")
        || name.starts_with("LC_")
        || kind.facts().env_vars.contains(&name.as_ref())
}

/// The daemon's environment. Without a user switch, the caller's. With
/// one, built, not inherited (root's secrets stay root's): `HOME`, `USER`,
/// `LOGNAME` and `SHELL` of the target user, `SAFE_PATH`, and only the
/// caller's variables `kept_across_users`. The conf's `:environment` is set
/// on top in both cases.
pub fn environment(
    caller: &[(OsString, OsString)],
    login: Option<Login>,
    kind: LispKind,
    extra: &[(String, String)],
) -> Env {
    let mut env: Env = match login {
        None => caller.to_vec(),
        Some(login) => {
            let mut env: Env = vec![
                ("HOME".into(), login.home.as_os_str().to_owned()),
                ("USER".into(), login.name.into()),
                ("LOGNAME".into(), login.name.into()),
                ("SHELL".into(), login.shell.as_os_str().to_owned()),
                ("PATH".into(), SAFE_PATH.into()),
            ];
            env.extend(
                caller
                    .iter()
                    .filter(|(k, _)| kept_across_users(k, kind))
                    .cloned(),
            );
            env
        }
    };
    for (name, value) in extra {
        env.retain(|(k, _)| k != name.as_str());
        env.push((name.into(), value.into()));
    }
    env
}

/// systemd's socket-activation variables for a Lisp that gets `:listen`'s
/// sockets (`LISTEN_PID`, which must be the Lisp's own pid, is set by the
/// process that execs it); never the caller's.
fn with_listeners(mut env: Env, spec: &DaemonSpec, kind: LispKind, mode: &Mode) -> Env {
    env.retain(|(k, _)| {
        !matches!(
            k.to_str(),
            Some("LISTEN_FDS" | "LISTEN_FDNAMES" | "LISTEN_PID")
        )
    });
    if holds_listeners(spec, kind)
        && matches!(mode, Mode::Daemon | Mode::Foreground { .. } | Mode::Service)
    {
        let names: Vec<&str> = spec.listen.iter().map(|l| l.name.as_str()).collect();
        env.push(("LISTEN_FDS".into(), spec.listen.len().to_string().into()));
        env.push(("LISTEN_FDNAMES".into(), names.join(":").into()));
    }
    env
}

/// The variable that marks a daemon started with a reload pipe, which
/// `reload` reads in `/proc/PID/environ` before it sends SIGHUP.
pub const RELOAD_MARK: &str = "DAEMONIZATION_RELOAD_FD";

/// The service manager's socket is the tool's: a Lisp gets a socket of its
/// own (`:ready :notify`), never the manager's.
fn with_reload_mark(mut env: Env, reloads: bool) -> Env {
    env.retain(|(k, _)| k != RELOAD_MARK && k != "NOTIFY_SOCKET");
    if reloads {
        env.push((RELOAD_MARK.into(), RELOAD_FD.to_string().into()));
    }
    env
}

/// The bootstrap parameters of a mode: its name, the readiness descriptor,
/// the descriptors to mark close-on-exec, the function to call and its
/// arguments.
fn mode_parameters<'s>(
    spec: &'s DaemonSpec,
    mode: &Mode,
    kind: LispKind,
) -> (&'static str, String, String, &'s Option<LispCode>, String) {
    let (bootstrap_fd, ready_fd) = lisp_fds(spec, kind);
    match mode {
        Mode::Daemon => (
            ":daemon",
            ready_fd.to_string(),
            match spec.reload_function.is_some() {
                true => format!("({bootstrap_fd} {LOCK_FD} {RELOAD_FD} {RELOAD_READER_FD})"),
                false => format!("({bootstrap_fd} {LOCK_FD})"),
            },
            &spec.main_function,
            "nil".to_string(),
        ),
        Mode::Service => (
            ":foreground",
            ready_fd.to_string(),
            match spec.reload_function.is_some() {
                true => format!("({bootstrap_fd} {RELOAD_FD} {RELOAD_READER_FD})"),
                false => format!("({bootstrap_fd})"),
            },
            &spec.main_function,
            "nil".to_string(),
        ),
        Mode::Foreground { report_ready } => (
            ":foreground",
            if *report_ready {
                ready_fd.to_string()
            } else {
                "nil".to_string()
            },
            format!("({bootstrap_fd})"),
            &spec.main_function,
            "nil".to_string(),
        ),
        Mode::ParentExit { pid, status } => (
            ":call",
            "nil".to_string(),
            "nil".to_string(),
            &spec.before_parent_exit_fn,
            format!("({pid} {status})"),
        ),
        Mode::BuildCore { .. } => (
            ":build-core",
            READY_FD.to_string(),
            format!("({BOOTSTRAP_FD})"),
            &None,
            "nil".to_string(),
        ),
    }
}

/// The bootstrap program: parameters, then the body from `bootstrap.lisp`.
pub fn bootstrap(
    spec: &DaemonSpec,
    mode: &Mode,
    log: &Destinations,
    runner: &Runner,
    dir: Option<&Path>,
) -> String {
    let kind = runner.kind;
    let target = |d: &Destination| match d {
        Destination::Syslog => ":syslog".to_string(),
        Destination::File(path) => lisp_string(&path.display().to_string()),
        Destination::Nowhere => "nil".to_string(),
    };
    let (mode_name, ready_fd, close_fds, main, args) = mode_parameters(spec, mode, kind);
    let before_init = match mode {
        Mode::ParentExit { .. } | Mode::BuildCore { .. } => &None,
        _ => &spec.before_init_fn,
    };
    let texts = [before_init, main]
        .into_iter()
        .flatten()
        .map(|c| c.text.as_str());
    let mut modules = modules_named(texts);
    modules.retain(|m| *m == "ASDF" || kind.facts().sbcl_contribs);
    let fasl_dir = match (&spec.fasl_dir, mode) {
        (
            Some(dir),
            Mode::Daemon | Mode::Foreground { .. } | Mode::Service | Mode::BuildCore { .. },
        ) => {
            if !modules.contains(&"ASDF") {
                modules.push("ASDF");
            }
            lisp_string(&dir.display().to_string())
        }
        _ => "nil".to_string(),
    };
    let modules: Vec<String> = modules.iter().map(|m| lisp_string(m)).collect();
    let name = spec.name.as_deref().map_or("nil".to_string(), lisp_string);
    let dir = dir.map_or("nil".to_string(), |d| {
        let d = d.display().to_string();
        lisp_string(&format!("{}/", d.trim_end_matches('/')))
    });
    format!(
        "(defpackage \"DAEMONIZATION-BOOTSTRAP\" (:use \"COMMON-LISP\"))\n\
         (in-package \"DAEMONIZATION-BOOTSTRAP\")\n\
         (defparameter *name* {name})\n\
         (defparameter *mode* {mode_name})\n\
         (defparameter *ready-fd* {ready_fd})\n\
         (defparameter *close-fds* '{close_fds})\n\
         (defparameter *required-modules* '({modules}))\n\
         (defparameter *before-init-fn* {before})\n\
         (defparameter *main-function* {main})\n\
         (defparameter *args* '{args})\n\
         (defparameter *log-info* {log_info})\n\
         (defparameter *log-error* {log_error})\n\
         (defparameter *fasl-dir* {fasl_dir})\n\
         (defparameter *directory* {dir})\n\
         {extensions}\
         {prelude}\
         {PRELUDE_COMMON}\
         {control}\
         {BOOTSTRAP}",
        extensions = extension_parameters(spec, mode, runner, log),
        prelude = kind.facts().prelude,
        control = match control_dir(spec, mode, kind) {
            // SO_PEERCRED's level and number as this machine's libc has them.
            Some(_) => format!(
                "(%require \"SB-BSD-SOCKETS\")\n\
                 (defparameter *peercred-option* '({} {}))\n{CONTROL}",
                nix::libc::SOL_SOCKET,
                nix::libc::SO_PEERCRED
            ),
            None => String::new(),
        },
        modules = modules.join(" "),
        before = code_text(before_init),
        main = code_text(main),
        log_info = target(&log.info),
        log_error = target(&log.error),
    )
}

/// The control socket's directory, when this Lisp opens one: a daemon or
/// a `nodaemon` Lisp (not a builder, nor `:before-parent-exit-fn`'s), of a
/// runner with sb-bsd-sockets (SBCL, ECL), unless `:control nil`.
pub fn control_dir<'a>(spec: &'a DaemonSpec, mode: &Mode, kind: LispKind) -> Option<&'a Path> {
    let opens = matches!(mode, Mode::Daemon | Mode::Foreground { .. } | Mode::Service)
        && kind.facts().adopts_descriptors;
    spec.control_dir.as_deref().filter(|_| opens)
}

/// A function key's source text as a Lisp string, or `nil`.
fn code_text(code: &Option<LispCode>) -> String {
    code.as_ref()
        .map_or("nil".to_string(), |c| lisp_string(&c.text))
}

/// The bootstrap parameters of reloads and saved cores.
fn extension_parameters(
    spec: &DaemonSpec,
    mode: &Mode,
    runner: &Runner,
    log: &Destinations,
) -> String {
    // Reloads in a daemon (and a nodaemon Lisp, where nobody reads the
    // verdict); never in :before-parent-exit-fn's Lisp or a builder.
    let (reload, reload_fd) = match mode {
        Mode::ParentExit { .. } | Mode::BuildCore { .. } => ("nil".to_string(), "nil".to_string()),
        Mode::Daemon | Mode::Service if spec.reload_function.is_some() => {
            (code_text(&spec.reload_function), RELOAD_FD.to_string())
        }
        _ => (code_text(&spec.reload_function), "nil".to_string()),
    };
    let preload: Vec<String> = spec
        .preload
        .iter()
        .map(|item| match item {
            Preload::System(name) => format!("(:system {})", lisp_string(name)),
            Preload::File(file) => format!("(:file {})", lisp_string(&file.display().to_string())),
            Preload::Code(code) => format!("(:code {})", lisp_string(&code.text)),
        })
        .collect();
    let from_core = if runner.core.is_some() { "t" } else { "nil" };
    let core_file = match mode {
        Mode::BuildCore { file } => lisp_string(&file.display().to_string()),
        _ => "nil".to_string(),
    };
    format!(
        "(defparameter *reload-function* {reload})\n\
         (defparameter *reload-fd* {reload_fd})\n\
         (defparameter *preload* '({}))\n\
         (defparameter *from-core* {from_core})\n\
         (defparameter *core-file* {core_file})\n\
         (defparameter *ready-mode* {ready_mode})\n\
         (defparameter *listeners* '({listeners}))\n\
         (defparameter *conf-stop-function* {stop})\n\
         (defparameter *cause-fd* {cause_fd})\n\
         (defparameter *control-dir* {control_dir})\n\
         (defparameter *watchdog-check* {watchdog_check})\n\
         (defparameter *messages* {messages})\n\
         (defparameter *output-file* {output_file})\n",
        preload.join(" "),
        control_dir = control_dir(spec, mode, runner.kind).map_or("nil".to_string(), |d| {
            lisp_string(&format!(
                "{}/",
                d.display().to_string().trim_end_matches('/')
            ))
        }),
        watchdog_check = code_text(&spec.watchdog_check),
        messages = match (mode, log) {
            (
                Mode::Service,
                Destinations {
                    info: Destination::Syslog,
                    error: Destination::Syslog,
                    ..
                },
            ) if runner.kind.facts().logs_to_syslog => "nil",
            _ => "t",
        },
        // The Lisp writes :output itself when no supervisor captures it.
        output_file = match (mode, supervision(spec, runner.kind), &spec.output) {
            (Mode::Daemon, None, Some(path)) => lisp_string(&path.display().to_string()),
            _ => "nil".to_string(),
        },
        cause_fd = match (mode, supervision(spec, runner.kind)) {
            (Mode::Daemon, Some(_)) | (Mode::Service, _) => CAUSE_FD.to_string(),
            _ => "nil".to_string(),
        },
        listeners = match (holds_listeners(spec, runner.kind), mode) {
            (true, Mode::Daemon | Mode::Foreground { .. } | Mode::Service) => spec
                .listen
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    let family = if l.address.is_ipv6() {
                        ":inet6"
                    } else {
                        ":inet"
                    };
                    format!(
                        "({} {} {family})",
                        lisp_string(&l.name),
                        LISTEN_FDS_START + i as i32
                    )
                })
                .collect::<Vec<_>>()
                .join(" "),
            _ => String::new(),
        },
        stop = match mode {
            Mode::Daemon | Mode::Foreground { .. } | Mode::Service =>
                code_text(&spec.stop_function),
            _ => "nil".to_string(),
        },
        ready_mode = match spec.ready {
            crate::config::Readiness::Returned => ":returned",
            crate::config::Readiness::Notify => ":notify",
            crate::config::Readiness::Port { .. } => ":port",
        }
    )
}

/// The modules the original's image had loaded (ASDF, `sb-posix`,
/// `sb-introspect`) that this code names, so they are loaded before it runs.
/// Code that names them in symbols is covered by the bootstrap's on-demand
/// loading too; this also covers `(find-symbol "X" :asdf)` and the like.
pub fn modules_named<'a>(texts: impl IntoIterator<Item = &'a str>) -> Vec<&'static str> {
    const MODULES: &[(&str, &str)] = &[
        ("asdf", "ASDF"),
        ("uiop", "ASDF"),
        ("sb-posix", "SB-POSIX"),
        ("sb-introspect", "SB-INTROSPECT"),
    ];
    let mut found = Vec::new();
    for text in texts {
        let lower = text.to_lowercase();
        for (needle, module) in MODULES {
            if lower.contains(needle) && !found.contains(module) {
                found.push(*module);
            }
        }
    }
    found
}

/// The basename of a program, to recognise a Lisp in `/proc/PID/cmdline`.
pub fn is_lisp_program(argv0: &Path) -> bool {
    const LISPS: &[&str] = &[
        "sbcl", "ecl", "clisp", "lisp.run", "ccl", "ccl64", "lx86cl", "lx86cl64", "lisp", "alisp",
        "mlisp", "cmucl", "abcl",
    ];
    argv0
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| LISPS.contains(&n))
}

#[cfg(test)]
mod tests;
