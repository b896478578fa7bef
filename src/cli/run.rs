//! One handler per command: each calls the daemon layer and hands what
//! it found or did to `crate::report`, which words it.

use std::env;
use std::path::Path;
use std::process::ExitCode;

use crate::command::Command;
use crate::daemon::{self, DaemonError, Ending, Fact, Request};
use crate::logging::Logger;
use crate::report::{self, Outcome, exit};

use super::invocation::Options;
use super::session::{Session, Switching};

/// Runs `command` on the conf at `conf_path`.
pub fn command(conf_path: &Path, command: Command, options: &Options) -> anyhow::Result<ExitCode> {
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
        Command::Eval => super::talk::eval(&session, options),
        Command::Repl => super::talk::repl(&session, options),
        Command::Swank => super::talk::swank(&session, options),
        Command::Start
        | Command::Stop
        | Command::Kill
        | Command::Zap
        | Command::Restart
        | Command::TryRestart
        | Command::Reload
        | Command::ForceReload
        | Command::Status => daemon_command(&session, command, options),
        Command::Help | Command::Info => unreachable!("answered without a conf"),
    })
}

/// `check`: the merged conf, as one property list.
fn check(session: &Session, options: &Options) -> ExitCode {
    print!("{}", session.conf.to_plist_text());
    let stop = session.runner.kind.facts().stop_signal;
    print!("{}", session.conf.defaults_text(stop));
    // The core is described as its builder (the conf's `:user`) sees it.
    if session.conf.spec.core.is_some()
        && let Ok(req) = session.request(Switching::AsLaunched, options)
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
    let req = match session.request(Switching::of(Command::Log), options) {
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
    let mut req = match session.request(Switching::of(Command::Nodaemon), options) {
        Ok(req) => req,
        Err(code) => return code,
    };
    let ran = daemon::core::prepare(&mut req).and_then(|()| {
        session
            .logger
            .info("nodaemon: running :main-function in the foreground");
        // Under a service manager the daemon is `list`ed as a started one.
        if daemon::under_service_manager()
            && let Err(e) = daemon::records::update(&req, daemon::records::Change::Started)
        {
            eprintln!("WARNING: the record of this daemon for `daemonization list`: {e}");
        }
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
    let mut req = match session.request(Switching::of(command), options) {
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
        Command::Status => daemon::status(req),
        Command::Nodaemon
        | Command::Eval
        | Command::Repl
        | Command::Swank
        | Command::Help
        | Command::Check
        | Command::Migrate
        | Command::Unit
        | Command::Info
        | Command::Log
        | Command::BuildCore => unreachable!("{} has a handler of its own", command.name()),
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
    let req = match session.request(Switching::of(Command::BuildCore), options) {
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
pub fn fail(logger: &Logger, message: &str, code: u8) -> ExitCode {
    logger.error(message);
    eprintln!("ERROR: {message}");
    ExitCode::from(code)
}
