//! The help texts: the usage, the conf keys, and `info` for the Lisp API.

use std::fmt::Write as _;

use crate::command::COMMANDS;
use crate::config::{self, keys::KEYS};
use crate::plan::Runner;

use super::session::conf_env;

/// The environment the tool reads: the usage's and the man page's.
pub(super) const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "LISP_RUNNER",
        "The Lisp program, a name on PATH or a path (default sbcl); its basename says which Lisp.",
    ),
    (
        "DAEMONIZATION_PID_DIR",
        "The tool's pid directory, for pid files named without a directory.",
    ),
    (
        "DAEMONIZATION_DEFAULT_CONF",
        "A conf file that replaces the built-in default conf.",
    ),
    (
        "LOGGING_CONF",
        "A logging conf that replaces the built-in one (everything to syslog).",
    ),
    ("DAEMONIZATION_LOG", "none: no logging at all."),
    (
        "NOTIFY_SOCKET, INVOCATION_ID",
        "Set by systemd: nodaemon then runs as the unit's service (it holds the pid file, \
         notifies readiness).",
    ),
];

/// An option, as the argument parser (`crate::args::Args`) defines it: the
/// usage's and the man page's.
pub(super) struct OptionDoc {
    pub short: Option<char>,
    pub long: Option<String>,
    pub value: Option<String>,
    pub help: String,
}

/// Every option of the argument parser, in its order.
pub(super) fn options() -> Vec<OptionDoc> {
    use clap::CommandFactory as _;
    let mut command = crate::args::Args::command();
    command.build();
    command
        .get_arguments()
        .filter(|arg| !arg.is_positional())
        .map(|arg| {
            // Its values by name where they are few (`simple|plist|...`).
            let values: Vec<String> = arg
                .get_possible_values()
                .iter()
                .map(|v| v.get_name().to_string())
                .collect();
            let value = match values.is_empty() {
                false => Some(values.join("|")),
                true => arg
                    .get_value_names()
                    .and_then(|v| v.first())
                    .map(|v| v.to_string()),
            };
            OptionDoc {
                short: arg.get_short(),
                long: arg.get_long().map(str::to_string),
                value: value.filter(|_| arg.get_num_args().is_some_and(|n| n.takes_values())),
                help: arg.get_help().map(|h| h.to_string()).unwrap_or_default(),
            }
        })
        .collect()
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
    out.push_str("\nEnvironment:\n");
    let width = ENVIRONMENT.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    for (name, meaning) in ENVIRONMENT {
        let _ = writeln!(out, "  {name:<width$}  {meaning}");
    }
    out.push_str("\nOptions:\n");
    let named: Vec<(String, String)> = options()
        .into_iter()
        .map(|o| {
            let mut names: Vec<String> = o.short.map(|c| format!("-{c}")).into_iter().collect();
            names.extend(o.long.map(|l| format!("--{l}")));
            let value = o.value.map(|v| format!(" {v}")).unwrap_or_default();
            (format!("{}{value}", names.join(", ")), o.help)
        })
        .collect();
    let width = named.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    for (names, help) in named {
        let _ = writeln!(out, "  {names:<width$}  {help}");
    }
    out.push_str("\nThe conf keys: daemonization help keys\n");
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
