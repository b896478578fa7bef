//! Runners: the Lisps the tool can run, as data. A runner is its program,
//! its arguments (no banner, no debugger, the bootstrap read from a
//! descriptor), its prelude (the Lisp-specific part of the bootstrap), its
//! `*features*` for `#+`/`#-` in confs, and the signal it stops on.

use std::ffi::{OsStr, OsString};
use std::path::Path;

use nix::sys::signal::Signal;

use super::BOOTSTRAP_FD;
pub use crate::config::LispKind;
use crate::reader::Features;

impl LispKind {
    /// The runner named by a program's basename (`sbcl`, `/usr/bin/ecl`, ...).
    pub fn from_program(program: &OsStr) -> Option<LispKind> {
        let name = Path::new(program).file_name()?.to_str()?;
        match name {
            "sbcl" => Some(LispKind::Sbcl),
            "ecl" => Some(LispKind::Ecl),
            "clisp" => Some(LispKind::Clisp),
            "ccl" | "ccl64" | "lx86cl" | "lx86cl64" => Some(LispKind::Ccl),
            _ => None,
        }
    }

    /// The program run when nothing names another.
    pub fn default_program(self) -> &'static str {
        match self {
            LispKind::Sbcl => "sbcl",
            LispKind::Ecl => "ecl",
            LispKind::Clisp => "clisp",
            LispKind::Ccl => "ccl",
        }
    }

    /// How to install it on Debian, for the lisp-not-found message.
    pub fn package_hint(self) -> &'static str {
        match self {
            LispKind::Sbcl => "apt-get install sbcl",
            LispKind::Ecl => "apt-get install ecl",
            LispKind::Clisp => "apt-get install clisp",
            LispKind::Ccl => "install Clozure CL from ccl.clozure.com",
        }
    }

    /// The arguments that make the Lisp load the bootstrap from `path`,
    /// keeping the user's init file, without a banner.
    pub fn args(self, path: &str) -> Vec<OsString> {
        // The others resolve a loaded file's truename, which for a memfd is
        // a name that does not exist: they load from a stream instead.
        let from_stream = format!("(load (open \"{path}\" :external-format :utf-8) :verbose nil)");
        let args: Vec<String> = match self {
            LispKind::Sbcl => vec![
                "--noinform".into(),
                "--disable-debugger".into(),
                "--load".into(),
                path.into(),
            ],
            LispKind::Ecl => vec!["--eval".into(), from_stream],
            LispKind::Clisp => vec![
                "-q".into(),
                "-q".into(),
                "-x".into(),
                format!(
                    "(load (ext:make-stream {BOOTSTRAP_FD} :direction :input :external-format charset:utf-8) :verbose nil)"
                ),
            ],
            LispKind::Ccl => vec!["--quiet".into(), "--eval".into(), from_stream],
        };
        args.into_iter().map(OsString::from).collect()
    }

    /// The Lisp-specific part of the bootstrap.
    pub fn prelude(self) -> &'static str {
        match self {
            LispKind::Sbcl => include_str!("prelude-sbcl.lisp"),
            LispKind::Ecl => include_str!("prelude-ecl.lisp"),
            LispKind::Clisp => include_str!("prelude-clisp.lisp"),
            LispKind::Ccl => include_str!("prelude-ccl.lisp"),
        }
    }

    /// The signal `stop` sends first: SIGUSR1 (the original's) where the
    /// Lisp can catch it, else SIGTERM, on which it exits gracefully.
    pub fn stop_signal(self) -> Signal {
        match self {
            LispKind::Sbcl | LispKind::Ecl => Signal::SIGUSR1,
            LispKind::Clisp | LispKind::Ccl => Signal::SIGTERM,
        }
    }

    /// Whether the Lisp can catch SIGUSR1 (and so stop gracefully on it).
    pub fn catches_usr1(self) -> bool {
        self.stop_signal() == Signal::SIGUSR1
    }

    /// Whether the daemon can write its own lines (the stop, errors) to syslog.
    pub fn logs_to_syslog(self) -> bool {
        self == LispKind::Sbcl
    }

    pub fn name(self) -> &'static str {
        match self {
            LispKind::Sbcl => "SBCL",
            LispKind::Ecl => "ECL",
            LispKind::Clisp => "GNU CLISP",
            LispKind::Ccl => "CCL",
        }
    }

    /// The Lisp's own environment variables, kept when the daemon runs as
    /// another user (where it finds its core, contribs, libraries).
    pub fn env_vars(self) -> &'static [&'static str] {
        match self {
            LispKind::Sbcl => &["SBCL_HOME"],
            LispKind::Ecl => &["ECLDIR"],
            LispKind::Clisp => &["CLISP_LIBDIR"],
            LispKind::Ccl => &["CCL_DEFAULT_DIRECTORY"],
        }
    }

    /// Whether the daemon must hold the read end of its own readiness pipe.
    /// A daemon must survive its starter going away at any moment; GNU
    /// CLISP's SIGPIPE handler kills it when it reports readiness to a
    /// starter that gave up waiting (it ignores SIGPIPE only for its own
    /// subprocesses), so for CLISP the pipe is never left without a reader.
    pub fn keeps_ready_reader(self) -> bool {
        self == LispKind::Clisp
    }

    /// Whether the Lisp can load SBCL's contrib modules (sb-posix, ...).
    pub fn has_sbcl_contribs(self) -> bool {
        self == LispKind::Sbcl
    }

    /// The `*features*` of this Lisp on Linux x86-64 (Debian's builds).
    pub fn features(self) -> Features {
        match self {
            LispKind::Sbcl => Features::sbcl_linux_x86_64(),
            LispKind::Ecl => Features::new([
                "WALKER",
                "CDR-1",
                "CDR-5",
                "LINUX",
                "FORMATTER",
                "CDR-7",
                "ECL-WEAK-HASH",
                "LITTLE-ENDIAN",
                "ECL-READ-WRITE-LOCK",
                "LONG-LONG",
                "UINT64-T",
                "UINT32-T",
                "UINT16-T",
                "COMPLEX-FLOAT",
                "LONG-FLOAT",
                "UNICODE",
                "DFFI",
                "CLOS-STREAMS",
                "CMU-FORMAT",
                "UNIX",
                "ECL-PDE",
                "DLOPEN",
                "CLOS",
                "THREADS",
                "BOEHM-GC",
                "ANSI-CL",
                "COMMON-LISP",
                "FLOATING-POINT-EXCEPTIONS",
                "IEEE-FLOATING-POINT",
                "PACKAGE-LOCAL-NICKNAMES",
                "CDR-14",
                "PREFIXED-API",
                "FFI",
                "X86_64",
                "COMMON",
                "ECL",
            ]),
            LispKind::Clisp => Features::new([
                "READLINE",
                "REGEXP",
                "WILDCARD",
                "SYSCALLS",
                "I18N",
                "LOOP",
                "COMPILER",
                "CLOS",
                "MOP",
                "CLISP",
                "ANSI-CL",
                "COMMON-LISP",
                "LISP=CL",
                "INTERPRETER",
                "LOGICAL-PATHNAMES",
                "SOCKETS",
                "GENERIC-STREAMS",
                "SCREEN",
                "FFI",
                "GETTEXT",
                "UNICODE",
                "BASE-CHAR=CHARACTER",
                "WORD-SIZE=64",
                "PC386",
                "UNIX",
            ]),
            LispKind::Ccl => Features::new([
                "CCL",
                "CLOZURE",
                "CLOZURE-COMMON-LISP",
                "OPENMCL",
                "LINUX",
                "LINUX-TARGET",
                "X86-64",
                "X86_64",
                "X8664-TARGET",
                "64-BIT-TARGET",
                "64-BIT-HOST",
                "LITTLE-ENDIAN-TARGET",
                "UNIX",
                "COMMON-LISP",
                "ANSI-CL",
            ]),
        }
    }
}

/// A Lisp to run: which one, and the program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Runner {
    pub kind: LispKind,
    /// A name looked up on PATH, or a path.
    pub program: OsString,
    pub features: Features,
}

impl Runner {
    pub fn new(kind: LispKind, program: impl Into<OsString>) -> Runner {
        Runner {
            kind,
            program: program.into(),
            features: kind.features(),
        }
    }

    /// SBCL, run as `program`.
    pub fn sbcl(program: impl Into<OsString>) -> Runner {
        Runner::new(LispKind::Sbcl, program)
    }

    /// The runner chosen by `LISP_RUNNER` (as in daemon.sh; its basename
    /// decides which Lisp it is, SBCL when unknown), default `sbcl`.
    pub fn from_env_value(value: Option<OsString>) -> Runner {
        let program = value
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "sbcl".into());
        Runner::new(
            LispKind::from_program(&program).unwrap_or(LispKind::Sbcl),
            program,
        )
    }

    /// The runner for the conf's `:lisp`: `LISP_RUNNER` if it names that
    /// Lisp, else its usual program.
    pub fn for_kind(kind: LispKind, env_value: Option<OsString>) -> Runner {
        match env_value.filter(|v| LispKind::from_program(v) == Some(kind)) {
            Some(program) => Runner::new(kind, program),
            None => Runner::new(kind, kind.default_program()),
        }
    }
}
