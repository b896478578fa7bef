//! The man pages, daemonization(1) and daemonization.conf(5), made from the
//! tables the tool itself uses: the command table (`command::COMMANDS`),
//! the options (clap's `Args`), the conf keys (`config::keys::KEYS`) and
//! the exit codes (`report::exit`). `daemonization help man` and `help
//! man-conf` print them; `doc/` holds them for the package, and a test
//! keeps those copies equal to what the tool prints.

use std::fmt::Write as _;

use crate::command::COMMANDS;
use crate::config::keys::KEYS;
use crate::report::exit;

/// Text for roff: backslashes and leading dots and quotes escaped.
fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    match escaped.starts_with(['.', '\'']) {
        true => format!("\\&{escaped}"),
        false => escaped,
    }
}

/// What each exit code means, for EXIT STATUS (the codes are the tool's).
const EXIT_STATUS: &[(u8, &str)] = &[
    (
        exit::OK,
        "Success, or the state asked for: start of a daemon that runs, stop of one that does not.",
    ),
    (
        exit::FAILED,
        "The command failed: a start whose :main-function, :preload or :before-init-fn signalled, \
         or whose Lisp died; a stop whose schedule ran out; a form of eval that signalled.",
    ),
    (
        exit::USAGE,
        "A usage error: an unknown command, a missing argument.",
    ),
    (
        exit::NOT_RUNNING,
        "status: no pid file (not running); reload: the conf has no :reload-function.",
    ),
    (
        exit::PRIVILEGE,
        "status: cannot tell (the pid file is refused); a caller who is not root asks for \
         another :user; eval, repl: the daemon's control socket cannot be reached.",
    ),
    (exit::NOT_INSTALLED, "The Lisp program was not found."),
    (
        exit::CONF_ERROR,
        "A conf error, named FILE:LINE:COLUMN, or a conf file refused as root's.",
    ),
    (
        exit::PROGRAM_NOT_RUNNING,
        "reload, eval, repl: the daemon is not running.",
    ),
];

const FILES: &[(&str, &str)] = &[
    (
        "/etc/daemonization/",
        "Conf files (NAME.conf), one per daemon of the template unit; hello.conf.example.",
    ),
    (
        "/run/daemonization/",
        "Root's pid directory: NAME.pid, NAME.pid.lock, NAME.pid.state (a supervisor's record), \
         NAME.pid.control/ (the control socket), record\\-* (for list). Others: \
         $XDG_RUNTIME_DIR/daemonization/.",
    ),
    (
        "/var/cache/daemonization/",
        "Saved cores (:core :auto) and fasl/NAME/, the fasl cache of a :user without a usable home.",
    ),
    (
        "/lib/systemd/system/daemonization@.service",
        "The template unit: systemctl enable \\-\\-now daemonization@NAME runs /etc/daemonization/NAME.conf.",
    ),
    (
        "/usr/share/emacs/site-lisp/daemonization.el",
        "M\\-x daemonization\\-slime: SLIME through the control socket.",
    ),
];

const EXAMPLES: &[(&str, &str)] = &[
    (
        "daemonization /etc/daemonization/site.conf start",
        "Start the daemon; the line says its pid once it is ready.",
    ),
    (
        "daemonization /etc/daemonization/site.conf status \\-v",
        "Its state, memory, last output lines and what its image says of itself.",
    ),
    (
        "daemonization /etc/daemonization/site.conf eval '(lisp\\-implementation\\-version)'",
        "Evaluate a form in the running daemon.",
    ),
    (
        "daemonization /etc/daemonization/site.conf unit > /etc/systemd/system/site.service",
        "A systemd unit for it.",
    ),
    (
        "daemonization /etc/daemonization status",
        "Every conf of the directory.",
    ),
    ("daemonization list", "Every daemon the tool started."),
];

/// daemonization(1).
pub fn page_1() -> String {
    let mut out = String::new();
    let version = env!("CARGO_PKG_VERSION");
    let _ = writeln!(
        out,
        ".TH DAEMONIZATION 1 \"\" \"daemonization {version}\" \"User Commands\"\n\
         .SH NAME\n\
         daemonization \\- run Common Lisp programs as Unix daemons\n\
         .SH SYNOPSIS\n\
         .B daemonization\n\
         [\\fIOPTIONS\\fR] \\fICONF\\fR|\\fIDIRECTORY\\fR \\fICOMMAND\\fR\n\
         .br\n\
         .B daemonization\n\
         [\\fIOPTIONS\\fR] \\fICONF\\fR \\fBeval\\fR \\fIFORM\\fR...|\\fB\\-\\fR\n\
         .br\n\
         .B daemonization\n\
         \\fBlist\\fR | \\fBhelp\\fR [\\fBkeys\\fR] | \\fBinfo\\fR | \\fBcompletions\\fR \\fISHELL\\fR\n\
         .SH DESCRIPTION\n\
         daemonization runs a Common Lisp program (SBCL, ECL, GNU CLISP) as a Unix daemon, \
         driven by the property-list conf files of the Lisp library of the same name \
         (see \\fBdaemonization.conf\\fR(5)), as a drop\\-in for its daemon.sh. The conf file \
         comes first, then the command; a directory runs the command for each of its *.conf files."
    );
    out.push_str(".SH COMMANDS\n");
    for row in COMMANDS {
        let _ = writeln!(out, ".TP\n.B {}\n{}", row.name, roff(row.doc));
    }
    out.push_str(".SH OPTIONS\n");
    for option in super::help::options() {
        let mut names = Vec::new();
        if let Some(short) = option.short {
            names.push(format!("\\fB\\-{short}\\fR"));
        }
        if let Some(long) = &option.long {
            names.push(format!("\\fB\\-\\-{}\\fR", roff(long)));
        }
        let value = option.value.map(|v| format!(" \\fI{v}\\fR"));
        let _ = writeln!(
            out,
            ".TP\n{}{}\n{}",
            names.join(", "),
            value.unwrap_or_default(),
            roff(&option.help)
        );
    }
    out.push_str(".SH EXIT STATUS\n");
    for (code, meaning) in EXIT_STATUS {
        let _ = writeln!(out, ".TP\n.B {code}\n{}", roff(meaning));
    }
    out.push_str(".SH ENVIRONMENT\n");
    for (name, meaning) in super::help::ENVIRONMENT {
        let _ = writeln!(out, ".TP\n.B {name}\n{}", roff(meaning));
    }
    out.push_str(".SH FILES\n");
    for (path, meaning) in FILES {
        let _ = writeln!(out, ".TP\n.I {}\n{meaning}", path.replace('-', "\\-"));
    }
    out.push_str(".SH EXAMPLES\n");
    for (command, meaning) in EXAMPLES {
        let _ = writeln!(out, ".TP\n.B {command}\n{}", roff(meaning));
    }
    out.push_str(
        ".SH SEE ALSO\n\
         \\fBdaemonization.conf\\fR(5), \\fBsystemctl\\fR(1), \\fBsystemd.service\\fR(5), \
         \\fBjournalctl\\fR(1), \\fBsbcl\\fR(1); the manual, /usr/share/doc/daemonization/manual.md\n",
    );
    out
}

/// daemonization.conf(5).
pub fn page_5() -> String {
    let mut out = String::new();
    let version = env!("CARGO_PKG_VERSION");
    let _ = writeln!(
        out,
        ".TH DAEMONIZATION.CONF 5 \"\" \"daemonization {version}\" \"File Formats\"\n\
         .SH NAME\n\
         daemonization.conf \\- the conf file of a Lisp daemon\n\
         .SH SYNOPSIS\n\
         /etc/daemonization/\\fINAME\\fR.conf\n\
         .SH DESCRIPTION\n\
         A conf file is one Common Lisp property list: keywords and their values, read by the \
         tool's own reader (no Lisp runs to read it). Function values (:main\\-function and the \
         other function keys) are Lisp code, read and run by the daemon's Lisp: \
         #.(lambda () ...), #'name, or a symbol. A key given twice, an unknown key and a value \
         of the wrong type are errors named FILE:LINE:COLUMN. :parent\\-conf\\-file names a conf \
         whose keys this one overrides. As root, a conf file must be root's and writable by \
         nobody else. restas\\-daemon confs (defparameter forms) are read too."
    );
    out.push_str(".SH KEYS\n");
    for key in KEYS {
        let _ = writeln!(
            out,
            ".TP\n.BI :{} \" {}\"\n{} (default: {})",
            roff(key.name),
            roff(key.kind.expected()).replace('"', "\\(dq"),
            roff(key.doc),
            roff(key.default)
        );
    }
    out.push_str(
        ".SH EXAMPLE\n\
         .nf\n\
         (:name \"site\" :user \"www\\-data\"\n \
         :pid\\-file \"site.pid\"\n \
         :listen ((:name \"http\" :port 80 :address \"0.0.0.0\"))\n \
         :preload (:hunchentoot)\n \
         :main\\-function #.(lambda ()\n                    (hunchentoot:start\n                     \
         (daemonization:make\\-acceptor :listener \"http\"))))\n\
         .fi\n\
         .SH SEE ALSO\n\
         \\fBdaemonization\\fR(1)\n",
    );
    out
}
