//! The help texts: the usage, the conf keys, and `info` for the Lisp API.

use std::fmt::Write as _;

use crate::command::COMMANDS;
use crate::config::{self, keys::KEYS};
use crate::plan::Runner;

use super::session::conf_env;

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
