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
    "swank",
    "info",
];

/// The commands that take a directory of confs (`command::COMMANDS`'
/// `takes_directory`; a test keeps them equal).
pub const DIRECTORY_WORDS: &[&str] = &[
    "start",
    "stop",
    "zap",
    "kill",
    "restart",
    "try-restart",
    "status",
    "check",
];

/// The options that belong to a command (beyond the ones every command
/// takes: `--print`, `--verbose`, `--help`).
pub const COMMAND_OPTIONS: &[(&str, &[&str])] = &[
    ("start", &["--timeout"]),
    ("restart", &["--timeout", "--retry"]),
    ("try-restart", &["--timeout", "--retry"]),
    ("force-reload", &["--timeout"]),
    ("reload", &["--timeout"]),
    ("nodaemon", &["--timeout"]),
    ("stop", &["--retry"]),
    ("zap", &["--force"]),
    ("log", &["--lines", "-n", "--follow", "-f", "--raw"]),
    ("eval", &["--package", "--timeout"]),
    ("repl", &["--package"]),
];

/// The options that take a value (the next word is not a positional one).
pub const VALUE_OPTIONS: &[&str] = &[
    "--print",
    "--timeout",
    "--retry",
    "-n",
    "--lines",
    "--package",
];

/// The bash completion, by the tool's grammar: a conf file (`*.conf`) or a
/// directory (or `list`, `help`, `info`, `completions`) first; then the
/// commands valid for it (a directory takes fewer); then the command's
/// options; `--print`'s styles, `help keys`, `completions`' shells.
pub fn bash_completion() -> String {
    let conf_words: Vec<&str> = COMMAND_WORDS
        .iter()
        .copied()
        .filter(|w| !matches!(*w, "help" | "info"))
        .collect();
    let mut per_command = String::new();
    for (command, options) in COMMAND_OPTIONS {
        per_command.push_str(&format!(
            "            {command}) opts=\"$opts {}\";;\n",
            options.join(" ")
        ));
    }
    format!(
        r#"# bash completion for daemonization, generated from its command table.
_daemonization() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    local IFS=$'
'
    case "$prev" in
        --print) COMPREPLY=($(compgen -W $'simple
plist
json
none' -- "$cur")); return;;
        {values}) COMPREPLY=(); return;;
    esac
    # The positional words before this one (options and their values skipped).
    local -a pos=()
    local i w
    for ((i = 1; i < COMP_CWORD; i++)); do
        w="${{COMP_WORDS[i]}}"
        case "$w" in
            {values}) ((i++));;
            -*) ;;
            *) pos+=("$w");;
        esac
    done
    if [[ "$cur" == -* ]]; then
        local opts="--print --verbose -v --help -h"
        case "${{pos[1]}}" in
{per_command}        esac
        IFS=' ' COMPREPLY=($(IFS=' ' compgen -W "$opts" -- "$cur"))
        return
    fi
    case ${{#pos[@]}} in
        0)
            compopt -o filenames 2>/dev/null
            COMPREPLY=($(compgen -W $'list
help
info
completions' -- "$cur")
                       $(compgen -d -- "$cur")
                       $(compgen -f -X '!*.conf' -- "$cur"));;
        1)
            case "${{pos[0]}}" in
                help) COMPREPLY=($(compgen -W keys -- "$cur"));;
                completions) COMPREPLY=($(compgen -W $'bash
zsh
fish
elvish
powershell' -- "$cur"));;
                list|info) COMPREPLY=();;
                *)
                    if [[ -d "${{pos[0]}}" ]]; then
                        COMPREPLY=($(compgen -W $'{dir_words}' -- "$cur"))
                    else
                        COMPREPLY=($(compgen -W $'{conf_words}' -- "$cur"))
                    fi;;
            esac;;
        *) COMPREPLY=();;
    esac
}}
complete -F _daemonization daemonization
"#,
        values = VALUE_OPTIONS.join("|"),
        dir_words = DIRECTORY_WORDS.join("\n"),
        conf_words = conf_words.join("\n"),
    )
}

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
