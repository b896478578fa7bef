//! The arguments, validated: what clap parsed (`crate::args::Args`)
//! becomes an `Invocation`, with its `Options`. Pure, and tested as a
//! table.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::args::Args;
use crate::command::Command;
use crate::config::StopSchedule;
use crate::report::PrintStyle;

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
    /// `help man`, `help man-conf`: the man page of section 1 or 5.
    Man(u8),
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
    /// `eval`'s forms, as given.
    pub forms: Vec<String>,
    /// `eval`, `repl`: `--package`.
    pub package: Option<String>,
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
            forms: self.forms,
            package: self.package,
        };
        let conf = self.conf_file;
        match (conf, self.command) {
            (Some(c), None) if c.as_os_str() == "help" => Invocation::Usage,
            (Some(c), Some(topic)) if c.as_os_str() == "help" && topic == "keys" => {
                Invocation::Keys
            }
            (Some(c), Some(topic)) if c.as_os_str() == "help" && topic == "man" => {
                Invocation::Man(1)
            }
            (Some(c), Some(topic)) if c.as_os_str() == "help" && topic == "man-conf" => {
                Invocation::Man(5)
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
                Some(Command::Eval) if options.forms.is_empty() => Invocation::BadUsage(
                    "eval needs the forms to evaluate, or - to read them from stdin".into(),
                ),
                Some(command) if command != Command::Eval && !options.forms.is_empty() => {
                    Invocation::BadUsage(format!(
                        "{} takes no arguments after the command (only eval does)",
                        command.name()
                    ))
                }
                Some(command) => Invocation::Run {
                    conf,
                    command,
                    options,
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    /// What `daemonization ARGS` asks for, in a few words.
    fn asked(args: &[&str]) -> String {
        let argv = std::iter::once("daemonization").chain(args.iter().copied());
        match Args::try_parse_from(argv)
            .expect("clap parses it")
            .validate()
        {
            Invocation::Usage => "usage".into(),
            Invocation::Completions(shell) => format!("completions {shell}"),
            Invocation::List(style) => format!("list {}", style.name()),
            Invocation::Keys => "keys".into(),
            Invocation::Man(section) => format!("man {section}"),
            Invocation::Info => "info".into(),
            Invocation::BadUsage(why) => format!("usage error: {why}"),
            Invocation::Run {
                conf,
                command,
                options,
            } => format!(
                "{} {} timeout {:?} retry {:?} force {} lines {} follow {} raw {}",
                conf.display(),
                command.name(),
                options.start_timeout.map(|t| t.as_secs_f64()),
                options.stop_schedule.map(|s| s.to_string()),
                options.force,
                options.lines,
                options.follow,
                options.raw
            ),
        }
    }

    #[test]
    fn arguments_become_an_invocation() {
        let table: &[(&[&str], &str)] = &[
            (&["--help"], "usage"),
            (&["help"], "usage"),
            (&["help", "keys"], "keys"),
            (&["info"], "info"),
            (&["x.conf", "info"], "info"),
            (&["x.conf", "help"], "usage"),
            (&["list"], "list simple"),
            (&["--print", "json", "list"], "list json"),
            (
                &["--print", "plist", "list"],
                "usage error: list prints a table, or JSON with --print json",
            ),
            (
                &["list", "x"],
                "usage error: list takes no conf and no command",
            ),
            (&["completions", "bash"], "completions bash"),
            (
                &["completions"],
                "usage error: completions needs a shell: bash, zsh, fish, elvish or powershell",
            ),
            (&[], "usage error: missing the conf file and the command"),
            (&["x.conf"], "usage error: missing the command"),
            (
                &["x.conf", "stauts"],
                "usage error: unknown command \"stauts\"; did you mean status?",
            ),
            (
                &["x.conf", "frobnicate"],
                "usage error: unknown command \"frobnicate\"",
            ),
            (
                &["start", "x.conf"],
                "usage error: the conf file comes first, then the command: daemonization x.conf start",
            ),
            (
                &["x.conf", "start"],
                "x.conf start timeout None retry None force false lines 10 follow false raw false",
            ),
            (
                &[
                    "--timeout",
                    "2.5",
                    "--retry",
                    "TERM/1/KILL/2",
                    "--force",
                    "x.conf",
                    "stop",
                ],
                "x.conf stop timeout Some(2.5) retry Some(\"TERM/1/KILL/2\") force true lines 10 follow false raw false",
            ),
            (
                &["-n", "3", "-f", "--raw", "x.conf", "log"],
                "x.conf log timeout None retry None force false lines 3 follow true raw true",
            ),
            (
                &["--timeout=-1", "x.conf", "start"],
                "usage error: --timeout must be a number of seconds, 0 or more",
            ),
        ];
        for (args, expected) in table {
            assert_eq!(asked(args), *expected, "{args:?}");
        }
        let retry = asked(&["--retry", "later", "x.conf", "stop"]);
        assert!(retry.starts_with("usage error: --retry: "), "{retry}");
    }
}
