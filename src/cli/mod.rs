//! The face of the tool: the command line (`daemonization [OPTIONS]
//! <CONF-FILE> <COMMAND>`, the same order as `daemon.sh`) in, words and
//! exit codes out. Raw arguments are parsed by clap (`crate::args`), then
//! validated into an `Invocation` (`invocation`); `session` is the one
//! reader of the environment; `run` has one handler per command, which
//! calls the daemon layer and hands its fact to `crate::report`.

mod help;
mod invocation;
mod manual;
mod run;
mod session;
mod talk;

use std::env;
use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

use crate::args::Args;
use crate::daemon;
use crate::plan::Runner;
use crate::report::{PrintStyle, exit};

pub use help::{info, keys_usage, usage};
pub use invocation::{Invocation, Options};
pub use session::conf_env;

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
            let private = dirs.private_dir();
            let records = daemon::records::all(&dirs.tool_dir(), private.as_deref(), &env.trust);
            let records = daemon::records::prune(records, private.as_deref(), &env.trust);
            crate::many::list(records, style == PrintStyle::Json)
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
            match shell {
                clap_complete::Shell::Bash => print!("{}", crate::args::bash_completion()),
                clap_complete::Shell::Zsh => print!("{}", crate::args::zsh_completion()),
                clap_complete::Shell::Fish => print!("{}", crate::args::fish_completion()),
                shell => clap_complete::generate(
                    shell,
                    &mut command,
                    "daemonization",
                    &mut std::io::stdout(),
                ),
            }
            Ok(ExitCode::from(exit::OK))
        }
        Invocation::Keys => {
            print!("{}", keys_usage());
            Ok(ExitCode::from(exit::OK))
        }
        Invocation::Man(section) => {
            print!(
                "{}",
                match section {
                    1 => manual::page_1(),
                    _ => manual::page_5(),
                }
            );
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
            if !command.row().takes_directory {
                let takes: Vec<&str> = crate::command::COMMANDS
                    .iter()
                    .filter(|row| row.takes_directory)
                    .map(|row| row.name)
                    .collect();
                eprintln!(
                    "ERROR: {} is a directory: a directory of confs takes {}\nsee 'daemonization --help'",
                    conf.display(),
                    words_or(&takes)
                );
                return Ok(ExitCode::from(exit::USAGE));
            }
            crate::many::run(&conf, command, &options.arguments())
        }
        Invocation::Run {
            conf,
            command,
            options,
        } => run::command(&conf, command, &options),
    }
}

/// `a, b or c`.
fn words_or(words: &[&str]) -> String {
    match words {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}
