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

use nix::sys::signal::Signal;

use crate::args::Args;
use crate::command::{COMMANDS, Command};
use crate::config::{self, ConfEnv, PidDirs, StopSchedule, keys::KEYS};
use crate::daemon::identity::{self, IdentityError};
use crate::daemon::{self, DaemonError, Ending, Fact, Request};
use crate::logging::{self, Logger};
use crate::plan::{Runner, RuntimeOptions};
use crate::report::{self, Outcome, PrintStyle, exit};
use crate::trust::Trust;

/// What the arguments ask for, once validated.
#[derive(Debug)]
pub enum Invocation {
    Usage,
    /// `completions SHELL`: the shell's completion script.
    Completions(String),
    /// `list`: the daemons the tool started.
    List(PrintStyle),
    /// `help keys`: the conf keys.
    Keys,
    /// `info`: what the tool knows, for the Lisp API.
    Info,
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
    pub verbose: bool,
    /// `log -n N`.
    pub lines: usize,
    /// `log -f`.
    pub follow: bool,
    /// `log --raw`.
    pub raw: bool,
}

impl Options {
    /// These options as arguments again, for a run of the tool per conf.
    pub fn arguments(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["--print".into(), self.print.name().into()];
        if let Some(timeout) = self.start_timeout {
            args.push("--timeout".into());
            args.push(timeout.as_secs_f64().to_string().into());
        }
        if self.force {
            args.push("--force".into());
        }
        if let Some(schedule) = &self.stop_schedule {
            args.push("--retry".into());
            args.push(schedule.to_string().into());
        }
        if self.verbose {
            args.push("--verbose".into());
        }
        args
    }
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
            verbose: self.verbose,
            lines: self.lines,
            follow: self.follow,
            raw: self.raw,
        };
        let conf = self.conf_file;
        match (conf, self.command) {
            (Some(c), None) if c.as_os_str() == "help" => Invocation::Usage,
            (Some(c), Some(topic)) if c.as_os_str() == "help" && topic == "keys" => {
                Invocation::Keys
            }
            (Some(c), None) if c.as_os_str() == "info" => Invocation::Info,
            (Some(c), None) if c.as_os_str() == "list" => match options.print {
                PrintStyle::Plist => {
                    Invocation::BadUsage("list prints a table, or JSON with --print json".into())
                }
                style => Invocation::List(style),
            },
            (Some(c), Some(_)) if c.as_os_str() == "list" => {
                Invocation::BadUsage("list takes no conf and no command".into())
            }
            (Some(c), None) if c.as_os_str() == "completions" => Invocation::BadUsage(
                "completions needs a shell: bash, zsh, fish, elvish or powershell".into(),
            ),
            (Some(c), Some(shell)) if c.as_os_str() == "completions" => {
                Invocation::Completions(shell)
            }
            (None, _) => Invocation::BadUsage("missing the conf file and the command".into()),
            (Some(_), None) => Invocation::BadUsage("missing the command".into()),
            (Some(conf), Some(name)) => match Command::parse(&name) {
                // `daemonization start site.conf`: said, not guessed.
                None if conf.to_str().and_then(Command::parse).is_some() => {
                    Invocation::BadUsage(format!(
                        "the conf file comes first, then the command: daemonization {} {}",
                        name,
                        conf.display()
                    ))
                }
                None => Invocation::BadUsage(match Command::nearest(&name) {
                    Some(near) => format!("unknown command \"{name}\"; did you mean {near}?"),
                    None => format!("unknown command \"{name}\""),
                }),
                Some(Command::Help) => Invocation::Usage,
                Some(Command::Info) => Invocation::Info,
                Some(command) => Invocation::Run {
                    conf,
                    command,
                    options,
                },
            },
        }
    }
}

/// The usage: how to call the tool, the commands, then (below) the
/// environment and the options; the conf keys are `help keys`.
pub fn usage() -> String {
    let mut out = String::from(
        "Usage: daemonization [OPTIONS] <CONF-FILE|DIR> <COMMAND>\n       \
         daemonization [OPTIONS] list\n       \
         daemonization completions SHELL\n       \
         daemonization help [keys]\n\n\
         CONF-FILE is a property list conf (as for daemon.sh) or a restas-daemon conf;\n\
         DIR runs the command for each of its *.conf files.\n\n\
         Commands:\n",
    );
    for row in COMMANDS {
        let _ = writeln!(out, "  {:<9} {}", row.name, row.doc);
    }
    out.push_str(
        "\nEnvironment:\n  \
         DAEMONIZATION_DEFAULT_CONF  a conf file replacing the built-in default conf\n  \
         DAEMONIZATION_PID_DIR       the directory of pid files when :pid-file-dir is nil\n  \
         LISP_RUNNER                 the Lisp program to run (default sbcl)\n  \
         LOGGING_CONF                a logging conf replacing the built-in one (all to syslog)\n  \
         DAEMONIZATION_LOG=none      no logging at all\n\n\
         Options:\n  \
         --print simple|plist|json|none  how to print the result (default simple)\n  \
         --timeout SECS                  seconds start waits for readiness (default :start-timeout, 60)\n  \
         --force                         zap: remove the pid file even if its daemon seems alive\n  \
         --retry SCHEDULE                stop: e.g. TERM/10/KILL/5 (default :stop-schedule, USR1/60/KILL/5)\n  \
         -v, --verbose                   say more: a log that cannot be written (syslog too) and why\n  \
         -n, --lines N                   log: how many of the last lines (default 10)\n  \
         -f, --follow                    log: then follow the output as it grows (across rotation)\n  \
         --raw                           log: the output's bytes as they are (control characters are shown escaped otherwise)\n\n\
         The conf keys: daemonization help keys\n",
    );
    out
}

/// `help keys`: every conf key, its values, default and meaning (the
/// original's key list first).
pub fn keys_usage() -> String {
    let mut out = format!(
        "A conf file is a property list with any of these keys:\n{}\n\n",
        config::keys::key_list()
    );
    for key in KEYS {
        let _ = writeln!(
            out,
            "  :{}  {} (default {})\n      {}",
            key.name,
            key.kind.expected(),
            key.default,
            key.doc
        );
    }
    out
}

/// `info`: what the tool knows that the Lisp API needs, as one property
/// list its `read` takes: the conf keys (the key table's order) and the
/// tool's pid directory for this caller.
pub fn info() -> String {
    let env = conf_env(&Runner::sbcl("sbcl"));
    let keys: Vec<String> = KEYS.iter().map(|k| format!(":{}", k.name)).collect();
    let dir = env.pid_dirs.tool_dir();
    format!(
        "(:keys ({}) :pid-dir {})\n",
        keys.join(" "),
        crate::reader::lisp_string(&format!("{}/", dir.display()))
    )
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
        home: daemon::caller_home(),
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
        Invocation::List(style) => {
            let runner = Runner::from_env_value(env::var_os("LISP_RUNNER"));
            let env = conf_env(&runner);
            let dirs = &env.pid_dirs;
            let records =
                daemon::records::all(&dirs.tool_dir(), dirs.private_dir().as_deref(), &env.trust);
            let confs = records.into_iter().map(|r| r.conf).collect();
            crate::many::list(confs, style == PrintStyle::Json)
        }
        Invocation::Completions(shell) => {
            use clap::CommandFactory as _;
            let Ok(shell) = shell.parse::<clap_complete::Shell>() else {
                eprintln!(
                    "ERROR: no completions for the shell \"{shell}\": bash, zsh, fish, elvish or powershell\n\
                     see 'daemonization --help'"
                );
                return Ok(ExitCode::from(exit::USAGE));
            };
            let mut command = Args::command();
            clap_complete::generate(shell, &mut command, "daemonization", &mut std::io::stdout());
            Ok(ExitCode::from(exit::OK))
        }
        Invocation::Keys => {
            print!("{}", keys_usage());
            Ok(ExitCode::from(exit::OK))
        }
        Invocation::BadUsage(why) => {
            eprintln!("ERROR: {why}\nsee 'daemonization --help'");
            Ok(ExitCode::from(exit::USAGE))
        }
        Invocation::Info => {
            print!("{}", info());
            Ok(ExitCode::from(exit::OK))
        }
        Invocation::Run {
            conf,
            command,
            options,
        } if conf.is_dir() => {
            if !crate::many::takes_directory(command) {
                eprintln!(
                    "ERROR: {} is a directory: a directory of confs takes start, stop, restart, \
                     try-restart, status, zap, kill or check\nsee 'daemonization --help'",
                    conf.display()
                );
                return Ok(ExitCode::from(exit::USAGE));
            }
            crate::many::run(&conf, command, &options.arguments())
        }
        Invocation::Run {
            conf,
            command,
            options,
        } => run_command(&conf, command, &options),
    }
}

/// What every command of one run works with: the conf (read once; once
/// more only when `:lisp` names another Lisp than `LISP_RUNNER`, whose
/// `#+`/`#-` it is read for), the runner, the logger, the trust.
struct Session {
    conf: config::Conf,
    runner: Runner,
    logger: Logger,
    trust: Trust,
    pid_dirs: PidDirs,
}

impl Session {
    /// Prepares a run of `command`; the exit code if it cannot be.
    fn prepare(conf_path: &Path, command: Command, options: &Options) -> Result<Session, ExitCode> {
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
            verbose: options.verbose,
        };
        let (pid_dirs, trust) = (env.pid_dirs.clone(), env.trust.clone());
        let (conf, runner) = match load_conf(conf_path, runner, env) {
            Ok(loaded) => loaded,
            Err(e) => {
                let logger = Logger::new(destinations, context);
                return Err(fail(&logger, &e.to_string(), exit::CONF_ERROR));
            }
        };
        context.name = conf.spec.name.clone();
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
        if schedule.is_some_and(|s| s.uses(Signal::SIGUSR1)) && !kind.catches_usr1() {
            let message = format!(
                "{} cannot catch SIGUSR1, so a stop schedule with USR1 would kill it without cleanup; \
                 use TERM (for example \"TERM/60/KILL/5\")",
                kind.facts().name
            );
            return Err(fail(&self.logger, &message, exit::CONF_ERROR));
        }
        if self.conf.spec.core.is_some() && kind.facts().core.is_none() {
            let e = daemon::DaemonError::NoCores {
                lisp: kind.facts().name,
            };
            return Err(fail(&self.logger, &e.to_string(), exit::CONF_ERROR));
        }
        if self.conf.spec.reload_function.is_some() && !kind.facts().catches_hup {
            let message = format!(
                "{} cannot catch SIGHUP, so :reload-function could never be called: \
                 remove it from the conf, or run the daemon on SBCL or ECL (:lisp :sbcl)",
                kind.facts().name
            );
            return Err(fail(&self.logger, &message, exit::CONF_ERROR));
        }
        if let Some(message) = kind.unsupported(&RuntimeOptions::of(&self.conf.spec)) {
            return Err(fail(&self.logger, &message, exit::CONF_ERROR));
        }
        let syslog = [
            &self.logger.destinations().info,
            &self.logger.destinations().error,
        ];
        if command == Command::Start
            && !kind.facts().logs_to_syslog
            && syslog.contains(&&logging::Destination::Syslog)
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

    /// The request of a daemon command, with the user switch decided for a
    /// command that launches a Lisp.
    fn request(&self, command: Command, options: &Options) -> Result<Request<'_>, ExitCode> {
        let spec = &self.conf.spec;
        let switch = match command.row().launches {
            true => identity::decide(
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
            false => None,
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

fn run_command(conf_path: &Path, command: Command, options: &Options) -> anyhow::Result<ExitCode> {
    let session = match Session::prepare(conf_path, command, options) {
        Ok(session) => session,
        Err(code) => return Ok(code),
    };
    Ok(match command {
        Command::Check => check(&session, options),
        Command::Migrate => migrate(&session),
        Command::Unit => unit(&session)?,
        Command::Log => log(&session, options),
        Command::BuildCore => build_core(&session, options),
        Command::Nodaemon => nodaemon(&session, options),
        Command::Help | Command::Info => unreachable!("answered without a conf"),
        _ => daemon_command(&session, command, options),
    })
}

/// `check`: the merged conf, as one property list.
fn check(session: &Session, options: &Options) -> ExitCode {
    print!("{}", session.conf.to_plist_text());
    let stop = session.runner.kind.facts().stop_signal;
    print!("{}", session.conf.defaults_text(stop));
    if session.conf.spec.core.is_some()
        && let Ok(req) = session.request(Command::BuildCore, options)
    {
        println!(";; core: {}", daemon::core::describe(&req));
    }
    session.logger.info("check: the conf is valid");
    ExitCode::from(exit::OK)
}

/// `log`: the last lines of `:output`, and with `-f` what follows; without
/// `:output`, where the output goes and how to capture it.
fn log(session: &Session, options: &Options) -> ExitCode {
    let Some(output) = &session.conf.spec.output else {
        println!(
            "the daemon's output is not captured (it goes to /dev/null): set :output in {} \
             to capture it; under systemd (daemonization CONF unit), journalctl -u {} shows it",
            session.conf.path.display(),
            crate::unit::unit_name(&session.conf)
        );
        return ExitCode::from(exit::OK);
    };
    let req = match session.request(Command::Log, options) {
        Ok(req) => req,
        Err(code) => return code,
    };
    let read = daemon::tail::reader(&req);
    let stdout = std::io::stdout().lock();
    let mut out: Box<dyn std::io::Write> = match options.raw {
        true => Box::new(stdout),
        false => Box::new(crate::visible::Shown::new(stdout)),
    };
    match daemon::tail::tail(output, &read, options.lines, options.follow, &mut out) {
        Ok(()) => ExitCode::from(exit::OK),
        // The reader went away (`log -f | head`): done.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::from(exit::OK),
        Err(e) => {
            eprintln!(
                "ERROR: cannot read the :output file {}: {e}",
                output.display()
            );
            ExitCode::from(exit::FAILED)
        }
    }
}

/// `migrate`: the plist conf of a restas-daemon conf.
fn migrate(session: &Session) -> ExitCode {
    let Some(text) = &session.conf.migrated else {
        let message = format!(
            "{} is not a restas-daemon conf: it has nothing to migrate",
            session.conf.path.display()
        );
        return fail(&session.logger, &message, exit::USAGE);
    };
    print!("{text}");
    session.logger.info("migrate: printed the plist conf");
    ExitCode::from(exit::OK)
}

/// `unit`: a systemd unit that runs the conf with `nodaemon`.
fn unit(session: &Session) -> anyhow::Result<ExitCode> {
    let tool = env::current_exe()?;
    let stop = session.runner.kind.facts().stop_signal;
    print!("{}", crate::unit::unit(&session.conf, &tool, stop));
    eprint!("{}", crate::unit::next_steps(&session.conf));
    if let Some(place) = crate::unit::misplaced_tool(&tool, daemon::caller_home().as_deref()) {
        eprintln!(
            "WARNING: ExecStart runs the tool at {}, in {place}: install it \
             (apt install ./daemonization_*.deb, or cargo install --path . --root /usr/local) \
             and make the unit with the installed one",
            tool.display()
        );
    }
    session.logger.info("unit: printed the systemd unit");
    Ok(ExitCode::from(exit::OK))
}

/// `nodaemon`: prints nothing on success; the exit code is the Lisp's.
fn nodaemon(session: &Session, options: &Options) -> ExitCode {
    let mut req = match session.request(Command::Nodaemon, options) {
        Ok(req) => req,
        Err(code) => return code,
    };
    let ran = daemon::core::prepare(&mut req).and_then(|()| {
        session
            .logger
            .info("nodaemon: running :main-function in the foreground");
        daemon::nodaemon(&req)
    });
    match ran {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(exit::FAILED)),
        Err(e) => {
            let outcome = Outcome::of(Command::Nodaemon, e.into(), req.conf.pid_file.clone());
            fail_outcome(&session.logger, &outcome, outcome.exit)
        }
    }
}

/// `start`, `stop`, `kill`, `zap`, `restart`, `status`, ...: one outcome,
/// logged and printed as `--print` says.
fn daemon_command(session: &Session, command: Command, options: &Options) -> ExitCode {
    let mut req = match session.request(command, options) {
        Ok(req) => req,
        Err(code) => return code,
    };
    // A conf with :core: the core checked (or built) before anything stops,
    // when a Lisp will start.
    let starts = match command {
        Command::Start => !daemon::is_running(&req),
        Command::TryRestart => daemon::is_running(&req),
        Command::Restart => true,
        Command::ForceReload => req.conf.spec.reload_function.is_none(),
        _ => false,
    };
    let prepared = match starts {
        true => daemon::core::prepare(&mut req),
        false => Ok(()),
    };
    let fact = prepared
        .and_then(|()| run_daemon_command(&req, command))
        .unwrap_or_else(Fact::from);
    let details =
        (command == Command::Status && options.verbose).then(|| daemon::details(&req, &fact));
    // A force-reload without :reload-function is a restart, and says so.
    let done = match command {
        Command::ForceReload if req.conf.spec.reload_function.is_none() => Command::Restart,
        command => command,
    };
    let mut outcome = Outcome::of(done, fact, req.conf.pid_file.clone());
    outcome.details = details;
    keep_record(&req, &outcome);
    session.logger.info(&outcome.line());
    if let Some(error) = &outcome.error {
        session.logger.error(error);
    }
    report::print(&outcome, options.print);
    ExitCode::from(outcome.exit)
}

fn run_daemon_command(req: &Request, command: Command) -> Result<Fact, DaemonError> {
    match command {
        Command::Start => daemon::start(req),
        Command::Stop => daemon::stop(req, Ending::Schedule),
        Command::Kill => daemon::stop(req, Ending::Kill),
        Command::Zap => daemon::zap(req),
        Command::Restart => daemon::restart(req),
        Command::TryRestart => daemon::try_restart(req),
        Command::Reload => daemon::reload::reload(req),
        Command::ForceReload if req.conf.spec.reload_function.is_some() => {
            daemon::reload::reload(req)
        }
        Command::ForceReload => daemon::restart(req),
        _ => daemon::status(req),
    }
}

/// The record `list` reads, after `outcome`: a daemon started has one,
/// one stopped (or found not running) has none. A record that cannot be
/// written is a warning: the command itself is done.
fn keep_record(req: &Request, outcome: &Outcome) {
    use daemon::records::Change;
    let change = match outcome.command {
        Command::Start | Command::Restart | Command::TryRestart
            if outcome.ok && outcome.pid.is_some() =>
        {
            Change::Started
        }
        Command::Stop | Command::Kill | Command::Zap if outcome.exit == 0 => Change::Ended,
        _ => return,
    };
    if let Err(e) = daemon::records::update(req, change) {
        eprintln!("WARNING: the record of this daemon for `daemonization list`: {e}");
    }
}

/// `build-core`: where the core is, and its size.
fn build_core(session: &Session, options: &Options) -> ExitCode {
    let req = match session.request(Command::BuildCore, options) {
        Ok(req) => req,
        Err(code) => return code,
    };
    match daemon::core::build_core(&req) {
        Ok(built) => {
            let line = format!(
                "core built: {} ({:.1} MiB, {:.1} s)",
                built.path.display(),
                built.bytes as f64 / (1 << 20) as f64,
                built.took.as_secs_f64()
            );
            session.logger.info(&line);
            println!("{line}");
            if session.conf.spec.core.is_none() {
                eprintln!("The conf has no :core: add :core :auto for start to run on this core.");
            }
            ExitCode::from(exit::OK)
        }
        Err(e) => {
            let outcome = Outcome::of(Command::BuildCore, e.into(), req.conf.pid_file.clone());
            fail_outcome(&session.logger, &outcome, exit::FAILED)
        }
    }
}

/// Reports the error of an outcome that ends the command.
fn fail_outcome(logger: &Logger, outcome: &Outcome, code: u8) -> ExitCode {
    fail(logger, outcome.error.as_deref().unwrap_or("failed"), code)
}

/// Reports an error that ends the command: logged, and on stderr.
fn fail(logger: &Logger, message: &str, code: u8) -> ExitCode {
    logger.error(message);
    eprintln!("ERROR: {message}");
    ExitCode::from(code)
}
