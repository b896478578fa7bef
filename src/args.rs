//! The command line as clap sees it: the options and the two words (the
//! conf, or a directory of confs, and the command). Self-contained (clap
//! and std only), so `build.rs` includes it to generate the man page and
//! the shell completions from these same definitions.

use std::path::PathBuf;

use clap::Parser;

/// Run Common Lisp programs as Unix daemons, driven by the plist conf files of the daemonization library.
#[derive(Debug, Parser)]
#[command(name = "daemonization", version, disable_help_flag = true)]
pub struct Args {
    /// Print the usage, the commands and every conf key.
    #[arg(short, long)]
    pub help: bool,
    /// How to print the result: the original's line, its result plist, JSON, or nothing.
    #[arg(long, value_enum, default_value_t = PrintStyle::Simple)]
    pub print: PrintStyle,
    /// Seconds start waits for :main-function to return (overrides :start-timeout).
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<f64>,
    /// zap: remove the pid file even if its daemon seems alive.
    #[arg(long)]
    pub force: bool,
    /// stop: signals and seconds to wait after each, e.g. TERM/10/KILL/5 (overrides :stop-schedule).
    #[arg(long, value_name = "SCHEDULE")]
    pub retry: Option<String>,
    /// Say more: a log that cannot be written (syslog included), and why.
    #[arg(short, long)]
    pub verbose: bool,
    /// log: how many of the last lines to print.
    #[arg(short = 'n', long = "lines", value_name = "N", default_value_t = 10)]
    pub lines: usize,
    /// log: then print what the daemon writes, as it writes it.
    #[arg(short, long)]
    pub follow: bool,
    /// log: print the output's bytes as they are, control characters too
    /// (by default they are shown escaped, \x1b).
    #[arg(long)]
    pub raw: bool,
    /// The conf file (a property list, as for daemon.sh, or a
    /// restas-daemon conf), or a directory of them; or `list`, `help`,
    /// `completions`.
    #[arg(value_hint = clap::ValueHint::AnyPath)]
    pub conf_file: Option<PathBuf>,
    /// What to do: start, stop, restart, try-restart, reload, force-reload,
    /// status, zap, kill, nodaemon, log, check, migrate, unit (see
    /// `daemonization help`); after `completions`, a shell: bash, zsh, fish.
    #[arg(value_parser = CommandWord)]
    pub command: Option<String>,
    /// eval: the forms to evaluate, each argument read as Lisp text; `-`
    /// reads them from stdin.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "FORM"
    )]
    pub forms: Vec<String>,
    /// eval, repl: the package the forms are read and evaluated in
    /// (CL-USER by default).
    #[arg(long, value_name = "NAME")]
    pub package: Option<String>,
}

/// The command words, for shell completion (the command table,
/// `command::COMMANDS`, is the one that decides; a test keeps them equal).
pub const COMMAND_WORDS: &[&str] = &[
    "start",
    "stop",
    "zap",
    "kill",
    "restart",
    "try-restart",
    "reload",
    "force-reload",
    "nodaemon",
    "status",
    "help",
    "check",
    "migrate",
    "unit",
    "log",
    "build-core",
    "eval",
    "repl",
    "info",
];

/// The command word: any string (the CLI says what is unknown, and what
/// was meant), offered from `COMMAND_WORDS` by the completions.
#[derive(Clone, Copy, Debug)]
pub struct CommandWord;

impl clap::builder::TypedValueParser for CommandWord {
    type Value = String;

    fn parse_ref(
        &self,
        _cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<String, clap::Error> {
        Ok(value.to_string_lossy().into_owned())
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(
            COMMAND_WORDS
                .iter()
                .map(|w| clap::builder::PossibleValue::new(*w)),
        ))
    }
}

/// How `--print` shows an outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum PrintStyle {
    /// The original's one line.
    #[default]
    Simple,
    /// The original's result property list.
    Plist,
    /// The same fields as JSON.
    Json,
    /// Nothing (errors still go to stderr).
    None,
}

impl PrintStyle {
    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            PrintStyle::Simple => "simple",
            PrintStyle::Plist => "plist",
            PrintStyle::Json => "json",
            PrintStyle::None => "none",
        }
    }
}
