//! The commands, as one table: the name `daemon.sh` gives each, its line in
//! the usage, the past-tense word of its result line, whether it launches a
//! Lisp, and how its outcome becomes an exit code. Parsing, the usage,
//! `report` and the CLI all read it.
//!
//! Adding a command: a row here, its handler in `cli/run.rs` (a daemon
//! command: its function in `daemon`, returning a `Fact`), its test, and
//! its line in the README.

/// A command of the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Start,
    Stop,
    Zap,
    Kill,
    Restart,
    Nodaemon,
    Status,
    Help,
    Check,
    Migrate,
    Unit,
    Info,
    Log,
    TryRestart,
    Reload,
    ForceReload,
    BuildCore,
    Eval,
    Repl,
    Swank,
}

/// How a daemon command's outcome becomes an exit code (LSB).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exits {
    /// `reload`: 0 reloaded, 7 not running, 3 no `:reload-function`.
    Reloading,
    /// `status`: 0 running, 3 no pid file, 1 a stale one, 4 unknown.
    Status,
    /// `stop`, `kill`, `zap`: what is not running is the wanted state (0).
    Ending,
    /// `start`, `restart`: 0 when the daemon runs, else why not.
    Launching,
    /// Not a daemon command: it prints its own output.
    Own,
}

/// One row of the table.
pub struct Row {
    pub command: Command,
    pub name: &'static str,
    /// The word of its result line (`success started ...`).
    pub past: &'static str,
    pub doc: &'static str,
    /// Whether it starts a Lisp (so a `:user` switch is decided).
    pub launches: bool,
    /// Whether it runs for each conf of a directory.
    pub takes_directory: bool,
    pub exits: Exits,
}

/// Every command, in the usage's order.
pub const COMMANDS: &[Row] = &[
    Row {
        command: Command::Start,
        name: "start",
        past: "started",
        doc: "start the daemon; reports once :main-function has returned",
        launches: true,
        takes_directory: true,
        exits: Exits::Launching,
    },
    Row {
        command: Command::Stop,
        name: "stop",
        past: "stopped",
        doc: "stop the daemon (SIGUSR1, then SIGKILL after the stop timeout)",
        launches: false,
        takes_directory: true,
        exits: Exits::Ending,
    },
    Row {
        command: Command::Zap,
        name: "zap",
        past: "zapped",
        doc: "remove the pid file left by a daemon that died",
        launches: false,
        takes_directory: true,
        exits: Exits::Ending,
    },
    Row {
        command: Command::Kill,
        name: "kill",
        past: "killed",
        doc: "kill the daemon with SIGKILL",
        launches: false,
        takes_directory: true,
        exits: Exits::Ending,
    },
    Row {
        command: Command::Restart,
        name: "restart",
        past: "restarted",
        doc: "stop the daemon if it runs, then start it",
        launches: true,
        takes_directory: true,
        exits: Exits::Launching,
    },
    Row {
        command: Command::TryRestart,
        name: "try-restart",
        past: "restarted",
        doc: "restart the daemon if it runs; if it does not, do nothing (exit 0, as LSB says)",
        launches: true,
        takes_directory: true,
        exits: Exits::Launching,
    },
    Row {
        command: Command::Reload,
        name: "reload",
        past: "reloaded",
        doc: "call :reload-function in the running daemon; report once it returned, or its error",
        launches: false,
        takes_directory: false,
        exits: Exits::Reloading,
    },
    Row {
        command: Command::ForceReload,
        name: "force-reload",
        past: "reloaded",
        doc: "reload if the conf has :reload-function, else restart (LSB)",
        launches: true,
        takes_directory: false,
        exits: Exits::Reloading,
    },
    Row {
        command: Command::Nodaemon,
        name: "nodaemon",
        past: "ran",
        doc: "run :main-function in the foreground, for debugging",
        launches: true,
        takes_directory: false,
        exits: Exits::Own,
    },
    Row {
        command: Command::Status,
        name: "status",
        past: "status",
        doc: "tell whether the daemon runs",
        launches: false,
        takes_directory: true,
        exits: Exits::Status,
    },
    Row {
        command: Command::Help,
        name: "help",
        past: "helped",
        doc: "print this usage",
        launches: false,
        takes_directory: false,
        exits: Exits::Own,
    },
    Row {
        command: Command::Check,
        name: "check",
        past: "checked",
        doc: "print the merged conf as one property list, or the first error in it",
        launches: false,
        takes_directory: true,
        exits: Exits::Own,
    },
    Row {
        command: Command::Migrate,
        name: "migrate",
        past: "migrated",
        doc: "print the plist conf equivalent to a restas-daemon conf",
        launches: false,
        takes_directory: false,
        exits: Exits::Own,
    },
    Row {
        command: Command::Unit,
        name: "unit",
        past: "printed",
        doc: "print a systemd service unit that runs the conf with nodaemon",
        launches: false,
        takes_directory: false,
        exits: Exits::Own,
    },
    Row {
        command: Command::Log,
        name: "log",
        past: "printed",
        doc: "print the last lines of the daemon's captured :output (-n N, default 10); -f follows it",
        launches: false,
        takes_directory: false,
        exits: Exits::Own,
    },
    Row {
        command: Command::BuildCore,
        name: "build-core",
        past: "built",
        doc: "load :preload into a fresh Lisp and save its image as the conf's core (:core, or :auto's)",
        launches: true,
        takes_directory: false,
        exits: Exits::Own,
    },
    Row {
        command: Command::Eval,
        name: "eval",
        past: "evaluated",
        doc: "evaluate FORM... (or, with -, the forms on stdin) in the running daemon, over its control socket; print what they wrote and their values",
        launches: false,
        takes_directory: false,
        exits: Exits::Own,
    },
    Row {
        command: Command::Repl,
        name: "repl",
        past: "detached",
        doc: "a REPL in the running daemon, over its control socket (Ctrl-C interrupts a form, Ctrl-D detaches)",
        launches: false,
        takes_directory: false,
        exits: Exits::Own,
    },
    Row {
        command: Command::Swank,
        name: "swank",
        past: "relayed",
        doc: "relay SLIME's protocol between stdin/stdout and the daemon's swank, over its control socket (what M-x daemonization-slime runs)",
        launches: false,
        takes_directory: false,
        exits: Exits::Own,
    },
    Row {
        command: Command::Info,
        name: "info",
        past: "told",
        doc: "print what the tool knows, as a property list: its conf keys, its pid directory (no conf needed)",
        launches: false,
        takes_directory: false,
        exits: Exits::Own,
    },
];

impl Command {
    pub fn row(self) -> &'static Row {
        COMMANDS
            .iter()
            .find(|r| r.command == self)
            .expect("every command has a row")
    }

    pub fn name(self) -> &'static str {
        self.row().name
    }

    pub fn past(self) -> &'static str {
        self.row().past
    }

    pub fn parse(name: &str) -> Option<Command> {
        COMMANDS.iter().find(|r| r.name == name).map(|r| r.command)
    }

    /// The command a mistyped name most likely meant.
    pub fn nearest(name: &str) -> Option<&'static str> {
        crate::suggest::nearest(name, COMMANDS.iter().map(|r| r.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_has_one_row_and_round_trips() {
        for row in COMMANDS {
            assert_eq!(Command::parse(row.name), Some(row.command));
            assert_eq!(row.command.name(), row.name);
            let rows = COMMANDS.iter().filter(|r| r.command == row.command).count();
            assert_eq!(rows, 1, "{}", row.name);
        }
        assert_eq!(Command::parse("reboot"), None);
    }

    /// The completions offer exactly the commands of the table.
    #[test]
    fn the_completion_words_are_the_commands() {
        let mut table: Vec<&str> = COMMANDS.iter().map(|r| r.name).collect();
        let mut words = crate::args::COMMAND_WORDS.to_vec();
        table.sort_unstable();
        words.sort_unstable();
        assert_eq!(table, words);
        let mut dirs: Vec<&str> = COMMANDS
            .iter()
            .filter(|r| r.takes_directory)
            .map(|r| r.name)
            .collect();
        let mut dir_words = crate::args::DIRECTORY_WORDS.to_vec();
        dirs.sort_unstable();
        dir_words.sort_unstable();
        assert_eq!(dirs, dir_words);
        for (command, _) in crate::args::COMMAND_OPTIONS {
            assert!(Command::parse(command).is_some(), "{command}");
        }
    }
}
