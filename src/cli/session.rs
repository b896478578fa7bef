//! One run's session: the only reader of the environment (`LISP_RUNNER`,
//! `LOGGING_CONF`, `DAEMONIZATION_*`), which reads the conf once, checks
//! the runner against it, makes the logger, and gives each command its
//! `daemon::Request`.

use std::env;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::command::Command;
use crate::config::{self, ConfEnv, PidDirs, StopSchedule};
use crate::daemon::identity::{self, IdentityError};
use crate::daemon::{self, Request};
use crate::logging::{self, Logger};
use crate::plan::Runner;
use crate::report::{self, exit};
use crate::trust::Trust;

use super::invocation::Options;
use super::run::fail;

/// The conf environment of this process, reading confs for `runner`.
pub fn conf_env(runner: &Runner) -> ConfEnv {
    let var = |name: &str| {
        env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    ConfEnv {
        features: runner.features.clone(),
        default_conf: var("DAEMONIZATION_DEFAULT_CONF"),
        pid_dirs: PidDirs {
            uid: nix::unistd::getuid().as_raw(),
            explicit: var("DAEMONIZATION_PID_DIR"),
            xdg_runtime_dir: var("XDG_RUNTIME_DIR"),
        },
        trust: Trust::of_caller(),
        home: daemon::caller_home(),
    }
}

/// Whether a request decides the `:user` switch: for a command that
/// launches a Lisp, or works as the Lisp it launches would (`check`
/// describing a core).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Switching {
    AsLaunched,
    None,
}

impl Switching {
    pub fn of(command: Command) -> Switching {
        match command.row().launches {
            true => Switching::AsLaunched,
            false => Switching::None,
        }
    }
}

/// What every command of one run works with: the conf (read once; once
/// more only when `:lisp` names another Lisp than `LISP_RUNNER`, whose
/// `#+`/`#-` it is read for), the runner, the logger, the trust.
pub(super) struct Session {
    pub conf: config::Conf,
    pub runner: Runner,
    pub logger: Logger,
    trust: Trust,
    pid_dirs: PidDirs,
}

impl Session {
    /// Prepares a run of `command`; the exit code if it cannot be.
    pub fn prepare(
        conf_path: &Path,
        command: Command,
        options: &Options,
    ) -> Result<Session, ExitCode> {
        let runner = Runner::from_env_value(env::var_os("LISP_RUNNER"));
        let env = conf_env(&runner);
        let logging_conf = env::var_os("LOGGING_CONF")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        // DAEMONIZATION_LOG=none: the tool's own logging (and the daemon's
        // lines) off, whatever the logging conf says.
        let destinations = match env::var_os("DAEMONIZATION_LOG").is_some_and(|v| v == "none") {
            true => logging::Destinations::nowhere(),
            false => {
                logging::load(logging_conf.as_deref(), &env.trust, &env.features).map_err(|e| {
                    eprintln!("ERROR: {e}");
                    ExitCode::from(exit::CONF_ERROR)
                })?
            }
        };
        let mut context = logging::Context {
            name: None,
            command: command.name().to_string(),
            user: None,
            // `status -v` is the detailed status, not talk about logging.
            verbose: options.verbose && command != Command::Status,
        };
        let (pid_dirs, trust) = (env.pid_dirs.clone(), env.trust.clone());
        let (mut conf, runner) = match load_conf(conf_path, runner, env) {
            Ok(loaded) => loaded,
            Err(e) => {
                let logger = Logger::new(destinations, context);
                return Err(fail(&logger, &e.to_string(), exit::CONF_ERROR));
            }
        };
        context.name = conf.spec.name.clone();
        if conf.spec.fasl_dir.is_none() {
            conf.spec.fasl_dir = daemon::system_user_fasl_dir(conf.spec.user.as_deref());
        }
        let session = Session {
            conf,
            runner,
            logger: Logger::new(destinations, context),
            trust,
            pid_dirs,
        };
        session.check_runner(command, options)?;
        Ok(session)
    }

    /// What this Lisp cannot do is said, not silently skipped.
    fn check_runner(&self, command: Command, options: &Options) -> Result<(), ExitCode> {
        let kind = self.runner.kind;
        let schedule = self.stop_schedule(options.stop_schedule.as_ref());
        if let Some(message) = kind.cannot_run(&self.conf.spec, schedule.as_ref()) {
            return Err(fail(&self.logger, &message, exit::CONF_ERROR));
        }
        let syslog = [
            &self.logger.destinations().info,
            &self.logger.destinations().error,
        ];
        // Said when a syslog runs to miss the lines (or with -v), not on
        // every start of a machine without one.
        if command == Command::Start
            && !kind.facts().logs_to_syslog
            && syslog.contains(&&logging::Destination::Syslog)
            && (options.verbose || Path::new("/dev/log").exists())
        {
            eprintln!(
                "WARNING: {} cannot write to syslog from the daemon: its own lines (its stop, its errors) \
                 are not logged; the tool's are",
                kind.facts().name
            );
        }
        Ok(())
    }

    /// The stop schedule: `--retry`, else the conf's.
    fn stop_schedule(&self, retry: Option<&StopSchedule>) -> Option<StopSchedule> {
        retry
            .cloned()
            .or_else(|| self.conf.spec.stop_schedule.clone())
    }

    /// An identity error, saying where a derived name came from.
    fn identity_message(&self, e: &IdentityError) -> String {
        let derived = |key| {
            self.conf
                .derived
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, how)| how)
        };
        match (e, derived("user")) {
            (IdentityError::UnknownUser(name), Some(how)) => {
                format!(
                    "unknown user \"{name}\" ({how}): create it (useradd --system {name}) or set *user*"
                )
            }
            _ => e.to_string(),
        }
    }

    /// The request of a command, with the user switch decided as
    /// `switching` says.
    pub fn request(
        &self,
        switching: Switching,
        options: &Options,
    ) -> Result<Request<'_>, ExitCode> {
        let spec = &self.conf.spec;
        let switch = match switching {
            Switching::AsLaunched => identity::decide(
                spec.user.as_deref(),
                spec.group.as_deref(),
                spec.listen_privileged_ports,
            )
            .map_err(|e| {
                fail(
                    &self.logger,
                    &self.identity_message(&e),
                    report::identity_exit(&e),
                )
            })?,
            Switching::None => None,
        };
        Ok(Request {
            conf: &self.conf,
            runner: self.runner.clone(),
            start_timeout: options.start_timeout,
            force: options.force,
            stop_schedule: options.stop_schedule.clone(),
            switch,
            logger: &self.logger,
            trust: self.trust.clone(),
            pid_dirs: self.pid_dirs.clone(),
        })
    }
}

/// Reads the conf for `runner`; again for the Lisp its `:lisp` names, if
/// another (`:lisp` wins over `LISP_RUNNER`).
fn load_conf(
    path: &Path,
    runner: Runner,
    mut env: ConfEnv,
) -> Result<(config::Conf, Runner), config::ConfError> {
    let conf = config::load(path, &env)?;
    match conf.spec.lisp {
        Some(kind) if kind != runner.kind => {
            let runner = Runner::for_kind(kind, env::var_os("LISP_RUNNER"));
            env.features = runner.features.clone();
            Ok((config::load(path, &env)?, runner))
        }
        _ => Ok((conf, runner)),
    }
}
