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
    let g = grammar();
    let per_command = command_cases(|command, options| {
        format!("            {command}) opts=\"$opts {options}\";;\n")
    });
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
            COMPREPLY=($(compgen -W $'{first}' -- "$cur")
                       $(compgen -d -- "$cur")
                       $(compgen -f -X '!*.conf' -- "$cur"));;
        1)
            case "${{pos[0]}}" in
                help) COMPREPLY=($(compgen -W keys -- "$cur"));;
                completions) COMPREPLY=($(compgen -W $'{shells}' -- "$cur"));;
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
        first = FIRST_WORDS.join("\n"),
        shells = g.shells.join("\n"),
        dir_words = DIRECTORY_WORDS.join("\n"),
        conf_words = g.conf_words.join("\n"),
    )
}

/// The words after the command a shell offers for each first word: the
/// conf's commands, a directory's, and those of `help`, `completions`.
struct Grammar {
    conf_words: Vec<&'static str>,
    shells: &'static [&'static str],
}

fn grammar() -> Grammar {
    Grammar {
        conf_words: COMMAND_WORDS
            .iter()
            .copied()
            .filter(|w| !matches!(*w, "help" | "info"))
            .collect(),
        shells: &["bash", "zsh", "fish", "elvish", "powershell"],
    }
}

/// A shell's case arm for each command's options (`COMMAND_OPTIONS`),
/// given the command and its options joined by spaces.
fn command_cases(arm: impl Fn(&str, &str) -> String) -> String {
    COMMAND_OPTIONS
        .iter()
        .map(|(command, options)| arm(command, &options.join(" ")))
        .collect()
}

/// The first words that are not a conf: `list`, `help`, `info`,
/// `completions`.
const FIRST_WORDS: &[&str] = &["list", "help", "info", "completions"];

/// The zsh completion, by the same grammar as bash's (`bash_completion`):
/// conf files and directories (zsh's own `_files`) or the first words; the
/// commands for a conf or a directory; the command's options.
pub fn zsh_completion() -> String {
    let g = grammar();
    let per_command =
        command_cases(|command, options| format!("            ({command}) opts+=({options});;\n"));
    format!(
        r#"#compdef daemonization
# zsh completion for daemonization, generated from its command table.
_daemonization() {{
    local -a pos opts
    local i w skip=0
    # The positional words before this one (options and their values skipped).
    for ((i = 2; i < CURRENT; i++)); do
        w=${{words[i]}}
        if (( skip )); then skip=0; continue; fi
        case $w in
            ({values}) skip=1;;
            (-*) ;;
            (*) pos+=("$w");;
        esac
    done
    case ${{words[CURRENT-1]}} in
        (--print) compadd -- simple plist json none; return;;
        ({values}) return;;
    esac
    if [[ $PREFIX == -* ]]; then
        opts=(--print --verbose -v --help -h)
        case ${{pos[2]}} in
{per_command}        esac
        compadd -- $opts
        return
    fi
    case ${{#pos}} in
        (0)
            compadd -- {first}
            _files -g '*.conf(-.)'
            _files -/;;
        (1)
            case ${{pos[1]}} in
                (help) compadd -- keys;;
                (completions) compadd -- {shells};;
                (list|info) ;;
                (*)
                    if [[ -d ${{pos[1]}} ]]; then
                        compadd -- {dir_words}
                    else
                        compadd -- {conf_words}
                    fi;;
            esac;;
    esac
}}
if [ "$funcstack[1]" = "_daemonization" ]; then
    _daemonization "$@"
else
    compdef _daemonization daemonization
fi
"#,
        values = VALUE_OPTIONS.join("|"),
        first = FIRST_WORDS.join(" "),
        shells = g.shells.join(" "),
        dir_words = DIRECTORY_WORDS.join(" "),
        conf_words = g.conf_words.join(" "),
    )
}

/// The fish completion, by the same grammar as bash's: `complete` rules
/// whose conditions are the positional words before the cursor.
pub fn fish_completion() -> String {
    let g = grammar();
    let option = |o: &str| match o.strip_prefix("--") {
        Some(long) => format!("-l {long}"),
        None => format!("-s {}", o.trim_start_matches('-')),
    };
    let takes_value = |o: &str| VALUE_OPTIONS.contains(&o);
    let mut rules = String::new();
    for (command, options) in COMMAND_OPTIONS {
        for o in *options {
            rules.push_str(&format!(
                "complete -c daemonization -n '__daemonization_command_is {command}' {}{}\n",
                option(o),
                if takes_value(o) { " -x" } else { "" }
            ));
        }
    }
    format!(
        r#"# fish completion for daemonization, generated from its command table.
# The positional words before the cursor (options and their values skipped).
function __daemonization_positional
    set -l skip 0
    for w in (commandline -opc)[2..-1]
        if test $skip = 1
            set skip 0
            continue
        end
        switch $w
            case {values}
                set skip 1
            case '-*'
            case '*'
                echo $w
        end
    end
end
# Conf files and directories, for the word being completed.
function __daemonization_confs
    set -l token (commandline -ct)
    for file in $token*.conf
        test -f $file; and echo $file
    end
    __fish_complete_directories $token
end
function __daemonization_at
    test (count (__daemonization_positional)) -eq $argv[1]
end
function __daemonization_first_is
    set -l pos (__daemonization_positional)
    contains -- "$pos[1]" $argv
end
function __daemonization_conf_first
    set -l pos (__daemonization_positional)
    test (count $pos) -eq 1; and not contains -- "$pos[1]" {first}
end
function __daemonization_command_is
    set -l pos (__daemonization_positional)
    test (count $pos) -ge 2; and test "$pos[2]" = $argv[1]
end
complete -c daemonization -f
complete -c daemonization -n '__daemonization_at 0' -a '{first}'
complete -c daemonization -n '__daemonization_at 0' -a '(__daemonization_confs)'
complete -c daemonization -n '__daemonization_at 1; and __daemonization_first_is help' -a keys
complete -c daemonization -n '__daemonization_at 1; and __daemonization_first_is completions' -a '{shells}'
complete -c daemonization -n '__daemonization_conf_first; and test -d (__daemonization_positional)[1]' -a '{dir_words}'
complete -c daemonization -n '__daemonization_conf_first; and not test -d (__daemonization_positional)[1]' -a '{conf_words}'
complete -c daemonization -l print -x -a 'simple plist json none'
complete -c daemonization -s v -l verbose
complete -c daemonization -s h -l help
{rules}"#,
        values = VALUE_OPTIONS.join(" "),
        first = FIRST_WORDS.join(" "),
        shells = g.shells.join(" "),
        dir_words = DIRECTORY_WORDS.join(" "),
        conf_words = g.conf_words.join(" "),
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
