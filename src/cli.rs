//! The command line: `daemonization [OPTIONS] <CONF-FILE> <COMMAND>`, the
//! same order as `daemon.sh`. Raw arguments are parsed by clap, then
//! validated into an `Invocation`.

use std::env;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::config::{self, ConfEnv, PidDirs, StopSchedule, keys::KEYS};
use crate::daemon::{self, Request, identity};
use crate::lisp::Runner;
use crate::logging::{self, Logger};
use crate::report::{self, PrintStyle, Verb, exit};
use crate::trust::Trust;

/// Run Common Lisp programs as Unix daemons, driven by daemonization's plist conf files.
#[derive(Debug, Parser)]
#[command(name = "daemonization", version, disable_help_flag = true)]
pub struct Args {
    /// Print the usage, the commands and every conf key.
    #[arg(short, long)]
    help: bool,
    /// How to print the result: the original's line, its result plist, JSON, or nothing.
    #[arg(long, value_enum, default_value_t = PrintStyle::Simple)]
    print: PrintStyle,
    /// Seconds start waits for :main-function to return (overrides :start-timeout).
    #[arg(long, value_name = "SECS")]
    timeout: Option<f64>,
    /// zap: remove the pid file even if its daemon seems alive.
    #[arg(long)]
    force: bool,
    /// stop: signals and seconds to wait after each, e.g. TERM/10/KILL/5 (overrides :stop-schedule).
    #[arg(long, value_name = "SCHEDULE")]
    retry: Option<String>,
    /// The conf file: one property list, as for daemon.sh.
    conf_file: Option<PathBuf>,
    /// What to do; see the list of commands.
    command: Option<String>,
}

/// A daemon command, as `daemon.sh` names them, plus `check`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Start,
    Stop,
    Zap,
    Kill,
    Restart,
    Status,
    Nodaemon,
    Check,
    Migrate,
    Unit,
}

impl Command {
    /// Every command with its one-line description, in the usage's order.
    pub const ALL: &[(&str, Option<Command>, &str)] = &[
        (
            "start",
            Some(Command::Start),
            "start the daemon; reports once :main-function has returned",
        ),
        (
            "stop",
            Some(Command::Stop),
            "stop the daemon (SIGUSR1, then SIGKILL after the stop timeout)",
        ),
        (
            "zap",
            Some(Command::Zap),
            "remove the pid file left by a daemon that died",
        ),
        ("kill", Some(Command::Kill), "kill the daemon with SIGKILL"),
        (
            "restart",
            Some(Command::Restart),
            "stop the daemon if it runs, then start it",
        ),
        (
            "nodaemon",
            Some(Command::Nodaemon),
            "run :main-function in the foreground, for debugging",
        ),
        (
            "status",
            Some(Command::Status),
            "tell whether the daemon runs",
        ),
        ("help", None, "print this usage"),
        (
            "check",
            Some(Command::Check),
            "print the merged conf as one property list, or the first error in it",
        ),
        (
            "migrate",
            Some(Command::Migrate),
            "print the plist conf equivalent to a restas-daemon conf",
        ),
        (
            "unit",
            Some(Command::Unit),
            "print a systemd service unit that runs the conf with nodaemon",
        ),
    ];

    pub fn name(self) -> &'static str {
        Command::ALL
            .iter()
            .find(|(_, c, _)| *c == Some(self))
            .map_or("?", |(n, _, _)| *n)
    }

    fn parse(name: &str) -> Option<Option<Command>> {
        Command::ALL
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, c, _)| *c)
    }
}

/// What the arguments ask for, once validated.
#[derive(Debug)]
pub enum Invocation {
    Usage,
    BadUsage(String),
    Run {
        conf: PathBuf,
        command: Command,
        options: Options,
    },
}

/// The options of a command, validated.
#[derive(Debug)]
pub struct Options {
    pub print: PrintStyle,
    pub start_timeout: Option<Duration>,
    pub force: bool,
    pub stop_schedule: Option<StopSchedule>,
}

impl Args {
    pub fn validate(self) -> Invocation {
        if self.help {
            return Invocation::Usage;
        }
        let start_timeout = match self.timeout.map(Duration::try_from_secs_f64) {
            Some(Err(_)) => {
                return Invocation::BadUsage(
                    "--timeout must be a number of seconds, 0 or more".into(),
                );
            }
            Some(Ok(t)) => Some(t),
            None => None,
        };
        let stop_schedule = match self.retry.as_deref().map(str::parse::<StopSchedule>) {
            Some(Err(e)) => return Invocation::BadUsage(format!("--retry: {e}")),
            Some(Ok(s)) => Some(s),
            None => None,
        };
        let options = Options {
            print: self.print,
            start_timeout,
            force: self.force,
            stop_schedule,
        };
        let conf = self.conf_file;
        match (conf, self.command) {
            (Some(c), None) if c.as_os_str() == "help" => Invocation::Usage,
            (None, _) => Invocation::BadUsage("missing the conf file and the command".into()),
            (Some(_), None) => Invocation::BadUsage("missing the command".into()),
            (Some(conf), Some(name)) => match Command::parse(&name) {
                None => Invocation::BadUsage(format!("unknown command \"{name}\"")),
                Some(None) => Invocation::Usage,
                Some(Some(command)) => Invocation::Run {
                    conf,
                    command,
                    options,
                },
            },
        }
    }
}

/// The usage: the original's three lines, then the commands and conf keys.
pub fn usage() -> String {
    let names: Vec<&str> = Command::ALL.iter().map(|(n, _, _)| *n).collect();
    let mut out = format!(
        "Usage: daemonization <config-file> <command>\n\
         Options:\n\
         <config-file> - file with a property list that can contain these keys: {}\n\
         <command> - one of the commands: {}\n\nCommands:\n",
        config::keys::key_list(),
        names.join(" | ")
    );
    for (name, _, doc) in Command::ALL {
        let _ = writeln!(out, "  {name:<9} {doc}");
    }
    out.push_str("\nConf keys:\n");
    for key in KEYS {
        let _ = writeln!(
            out,
            "  :{}  {} (default {})\n      {}",
            key.name,
            key.kind.describe(),
            key.default,
            key.doc
        );
    }
    out.push_str(
        "\nEnvironment:\n  \
         DAEMONIZATION_DEFAULT_CONF  a conf file replacing the built-in default conf\n  \
         DAEMONIZATION_PID_DIR       the directory of pid files when :pid-file-dir is nil\n  \
         LISP_RUNNER                 the Lisp program to run (default sbcl)\n  \
         LOGGING_CONF                a logging conf replacing the built-in one (all to syslog)\n\n\
         Options:\n  \
         --print simple|plist|json|none  how to print the result (default simple)\n  \
         --timeout SECS                  seconds start waits for readiness (default :start-timeout, 60)\n  \
         --force                         zap: remove the pid file even if its daemon seems alive\n  \
         --retry SCHEDULE                stop: e.g. TERM/10/KILL/5 (default :stop-schedule, USR1/60/KILL/5)\n",
    );
    out
}

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
    }
}

/// Runs the tool on the process's arguments.
pub fn run(args: impl IntoIterator<Item = OsString>) -> anyhow::Result<ExitCode> {
    let args = match Args::try_parse_from(args) {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            return Ok(ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            }));
        }
    };
    match args.validate() {
        Invocation::Usage => {
            print!("{}", usage());
            Ok(ExitCode::from(exit::OK))
        }
        Invocation::BadUsage(why) => {
            eprint!("ERROR: {why}\n{}", usage());
            Ok(ExitCode::from(exit::USAGE))
        }
        Invocation::Run {
            conf,
            command,
            options,
        } => run_command(&conf, command, &options),
    }
}

fn run_command(conf_path: &Path, command: Command, options: &Options) -> anyhow::Result<ExitCode> {
    let mut runner = Runner::from_env_value(env::var_os("LISP_RUNNER"));
    let mut env = conf_env(&runner);
    let logging_conf = env::var_os("LOGGING_CONF")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let destinations = match logging::load(logging_conf.as_deref(), &env.trust, &env.features) {
        Ok(destinations) => destinations,
        Err(e) => {
            eprintln!("ERROR: {e}");
            return Ok(ExitCode::from(exit::CONF_ERROR));
        }
    };
    let mut context = logging::Context {
        name: None,
        command: command.name().to_string(),
        user: None,
    };
    let mut conf = config::load(conf_path, &env);
    // `:lisp` wins over LISP_RUNNER; `#+`/`#-` are then read for that Lisp.
    if let Ok(Some(kind)) = conf.as_ref().map(|c| c.spec.lisp)
        && kind != runner.kind
    {
        runner = Runner::for_kind(kind, env::var_os("LISP_RUNNER"));
        env.features = runner.features.clone();
        conf = config::load(conf_path, &env);
    }
    let conf = match conf {
        Ok(conf) => conf,
        Err(e) => {
            let logger = Logger::new(destinations, context);
            return Ok(fail(&logger, &e.to_string(), exit::CONF_ERROR));
        }
    };
    context.name = conf.spec.name.clone();
    let logger = Logger::new(destinations, context);
    // What this Lisp cannot do is said, not silently skipped.
    let schedule = options
        .stop_schedule
        .clone()
        .or_else(|| conf.spec.stop_schedule.clone());
    let usr1 = schedule.is_some_and(|s| {
        s.steps
            .iter()
            .any(|step| step.signal == nix::sys::signal::Signal::SIGUSR1)
    });
    if usr1 && !runner.kind.catches_usr1() {
        let message = format!(
            "{} cannot catch SIGUSR1, so a stop schedule with USR1 would kill it without cleanup; \
             use TERM (for example \"TERM/60/KILL/5\")",
            runner.kind.name()
        );
        return Ok(fail(&logger, &message, exit::CONF_ERROR));
    }
    let syslog = [&logger.destinations().info, &logger.destinations().error];
    if command == Command::Start
        && !runner.kind.logs_to_syslog()
        && syslog.contains(&&logging::Destination::Syslog)
    {
        eprintln!(
            "WARNING: {} cannot write to syslog from the daemon: its own lines (its stop, its errors) \
             are not logged; the tool's are",
            runner.kind.name()
        );
    }
    let launches = matches!(
        command,
        Command::Start | Command::Restart | Command::Nodaemon
    );
    let spec = &conf.spec;
    let switch = match launches {
        true => identity::decide(
            spec.user.as_deref(),
            spec.group.as_deref(),
            spec.listen_privileged_ports,
        ),
        false => Ok(None),
    };
    let switch = match switch {
        Ok(switch) => switch,
        Err(e) => return Ok(fail(&logger, &e.to_string(), e.exit_code())),
    };
    let req = Request {
        conf: &conf,
        runner,
        start_timeout: options.start_timeout,
        force: options.force,
        stop_schedule: options.stop_schedule.clone(),
        switch,
        logger: &logger,
        trust: env.trust.clone(),
    };
    let outcome = match command {
        Command::Migrate => {
            let Some(text) = &conf.migrated else {
                let message = format!(
                    "{} is not a restas-daemon conf: it has nothing to migrate",
                    conf.path.display()
                );
                return Ok(fail(&logger, &message, exit::USAGE));
            };
            print!("{text}");
            logger.info("migrate: printed the plist conf");
            return Ok(ExitCode::from(exit::OK));
        }
        Command::Unit => {
            let tool = env::current_exe()?;
            print!(
                "{}",
                crate::unit::unit(&conf, &tool, req.runner.kind.stop_signal())
            );
            logger.info("unit: printed the systemd unit");
            return Ok(ExitCode::from(exit::OK));
        }
        Command::Check => {
            print!("{}", conf.to_plist_text());
            logger.info("check: the conf is valid");
            return Ok(ExitCode::from(exit::OK));
        }
        Command::Nodaemon => {
            logger.info("nodaemon: running :main-function in the foreground");
            // Prints nothing on success; the exit code is the Lisp's.
            return Ok(match daemon::nodaemon(&req) {
                Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(exit::FAILED)),
                Err(outcome) => {
                    let error = outcome
                        .error
                        .as_deref()
                        .unwrap_or("the Lisp could not be started");
                    fail(&logger, error, outcome.exit)
                }
            });
        }
        Command::Start => daemon::start(&req),
        Command::Stop => daemon::stop(&req, Verb::Stop),
        Command::Kill => daemon::stop(&req, Verb::Kill),
        Command::Zap => daemon::zap(&req),
        Command::Restart => daemon::restart(&req),
        Command::Status => daemon::status(&req),
    };
    logger.info(&outcome.line());
    if let Some(error) = &outcome.error {
        logger.error(error);
    }
    report::print(&outcome, options.print);
    Ok(ExitCode::from(outcome.exit))
}

/// Reports an error that ends the command: logged, and on stderr.
fn fail(logger: &Logger, message: &str, code: u8) -> ExitCode {
    logger.error(message);
    eprintln!("ERROR: {message}");
    ExitCode::from(code)
}
