//! Runners: the Lisps the tool can run, as data (one row each in
//! `RUNNERS`, as the conf keys are rows of `config::keys::KEYS`). A row is
//! the Lisp's program, its arguments (no banner, no debugger, the bootstrap
//! read from a descriptor), its prelude (the Lisp-specific part of the
//! bootstrap), its `*features*` for `#+`/`#-` in confs, the signal it stops
//! on, and what it can and cannot do.
//!
//! Adding a runner: a `LispKind`, a row here, its prelude file, and its
//! line in the README's table of Lisps.

use std::ffi::{OsStr, OsString};
use std::path::Path;

use nix::sys::signal::Signal;

use super::BOOTSTRAP_FD;
pub use crate::config::LispKind;
use crate::config::{DaemonSpec, StopSchedule};
use crate::reader::Features;

/// What the tool knows of one Lisp.
pub struct RunnerFacts {
    pub kind: LispKind,
    pub name: &'static str,
    /// The basenames of its programs (`LISP_RUNNER=/opt/x/bin/sbcl`).
    pub programs: &'static [&'static str],
    /// How to install it on Debian, for the lisp-not-found message.
    pub package_hint: &'static str,
    /// The runtime options the tool always gives, first (before the
    /// conf's runtime options and `:lisp-options`).
    pub leading: &'static [&'static str],
    /// The arguments that load the bootstrap from a path, last.
    pub args: fn(&str) -> Vec<String>,
    /// Its option naming the core (image) to run on, if it can save one.
    pub core: Option<&'static str>,
    /// Its option for the heap size (`:dynamic-space-size`), if it has one.
    pub heap: Option<SizeOption>,
    /// Its option for the control stack size (`:control-stack-size`).
    pub stack: Option<SizeOption>,
    /// The Lisp-specific part of the bootstrap.
    pub prelude: &'static str,
    /// The signal `stop` sends first: SIGUSR1 (the original's) where the
    /// Lisp can catch it, else SIGTERM, on which it exits gracefully.
    pub stop_signal: Signal,
    /// Whether signals must go to its main thread (see `Aim`): SBCL's
    /// runtime mishandles a signal that lands in a thread being born or
    /// dying ("CORRUPTION WARNING ... in non-lisp tid", then at times a
    /// fatal "gc signals blocked"), and a busy Hunchentoot site has many.
    /// Its handlers run in the main thread anyway.
    pub signals_main_thread: bool,
    /// Whether the daemon can write its own lines to syslog.
    pub logs_to_syslog: bool,
    /// Whether it can catch SIGHUP (for `reload` and `:reload-function`).
    pub catches_hup: bool,
    /// Whether it can load SBCL's contrib modules (sb-posix, ...).
    pub sbcl_contribs: bool,
    /// Its own environment variables, kept when the daemon runs as another
    /// user (where it finds its core, contribs, libraries).
    pub env_vars: &'static [&'static str],
    /// Whether the daemon must hold the read end of its own readiness pipe
    /// (GNU CLISP's SIGPIPE handler kills it when it reports readiness to a
    /// starter that gave up waiting; it ignores SIGPIPE only for its own
    /// subprocesses).
    pub keeps_ready_reader: bool,
    /// Whether the bootstrap can make a listening socket of an inherited
    /// descriptor (`:listen`): SBCL and ECL (sb-bsd-sockets); not GNU
    /// CLISP, nor CCL here.
    pub adopts_descriptors: bool,
    /// Whether its standard streams can write `:output` themselves in
    /// whole lines, dropping them on a full disk (SBCL's line keeper in its
    /// prelude); elsewhere a supervisor writes `:output`, since a write
    /// error in the Lisp's own stream ended the daemon.
    pub keeps_output_lines: bool,
    /// Its `*features*` (Debian's builds, Linux x86-64).
    pub features: fn() -> Features,
}

/// A runtime option that takes a size: the option, and how many bytes its
/// unit is (1 << 20 for an option in megabytes).
pub struct SizeOption {
    pub flag: &'static str,
    pub unit: u64,
}

const MB: u64 = 1 << 20;

/// Lisps that load a file by truename reopen `/dev/fd/3`, which for a memfd
/// names nothing: they load from a stream instead.
fn from_stream(path: &str) -> String {
    format!("(load (open \"{path}\" :external-format :utf-8) :verbose nil)")
}

/// Every Lisp the tool runs.
pub const RUNNERS: &[RunnerFacts] = &[
    RunnerFacts {
        kind: LispKind::Sbcl,
        name: "SBCL",
        programs: &["sbcl"],
        package_hint: "apt-get install sbcl",
        // A corrupted or exhausted runtime exits (status 1, its "fatal
        // error" on stderr) instead of waiting in its low-level debugger.
        leading: &["--noinform", "--disable-ldb", "--lose-on-corruption"],
        args: |path| {
            ["--disable-debugger", "--load", path]
                .map(String::from)
                .to_vec()
        },
        core: Some("--core"),
        heap: Some(SizeOption {
            flag: "--dynamic-space-size",
            unit: MB,
        }),
        stack: Some(SizeOption {
            flag: "--control-stack-size",
            unit: MB,
        }),
        prelude: include_str!("prelude-sbcl.lisp"),
        stop_signal: Signal::SIGUSR1,
        signals_main_thread: true,
        logs_to_syslog: true,
        catches_hup: true,
        sbcl_contribs: true,
        env_vars: &["SBCL_HOME"],
        keeps_ready_reader: false,
        adopts_descriptors: true,
        keeps_output_lines: true,
        features: Features::sbcl_linux_x86_64,
    },
    RunnerFacts {
        kind: LispKind::Ecl,
        name: "ECL",
        programs: &["ecl"],
        package_hint: "apt-get install ecl",
        leading: &[],
        args: |path| vec!["--eval".into(), from_stream(path)],
        core: None,
        heap: Some(SizeOption {
            flag: "--heap-size",
            unit: 1,
        }),
        stack: Some(SizeOption {
            flag: "--c-stack",
            unit: 1,
        }),
        prelude: include_str!("prelude-ecl.lisp"),
        stop_signal: Signal::SIGUSR1,
        signals_main_thread: false,
        logs_to_syslog: false,
        catches_hup: true,
        sbcl_contribs: false,
        env_vars: &["ECLDIR"],
        keeps_ready_reader: false,
        adopts_descriptors: true,
        keeps_output_lines: false,
        features: || Features::new(ECL_FEATURES),
    },
    RunnerFacts {
        kind: LispKind::Clisp,
        name: "GNU CLISP",
        programs: &["clisp"],
        package_hint: "apt-get install clisp",
        leading: &[],
        // GNU CLISP grows its heap as needed and has no option for either.
        core: Some("-M"),
        heap: None,
        stack: None,
        args: |_| {
            vec![
                "-q".into(),
                "-q".into(),
                "-x".into(),
                format!(
                    "(load (ext:make-stream {BOOTSTRAP_FD} :direction :input :external-format charset:utf-8) :verbose nil)"
                ),
            ]
        },
        prelude: include_str!("prelude-clisp.lisp"),
        stop_signal: Signal::SIGTERM,
        signals_main_thread: false,
        logs_to_syslog: false,
        catches_hup: false,
        sbcl_contribs: false,
        env_vars: &["CLISP_LIBDIR"],
        keeps_ready_reader: true,
        adopts_descriptors: false,
        keeps_output_lines: false,
        features: || Features::new(CLISP_FEATURES),
    },
    RunnerFacts {
        kind: LispKind::Ccl,
        name: "CCL",
        programs: &["ccl", "ccl64", "lx86cl", "lx86cl64"],
        package_hint: "install Clozure CL from ccl.clozure.com",
        leading: &[],
        args: |path| vec!["--quiet".into(), "--eval".into(), from_stream(path)],
        core: Some("--image-name"),
        heap: Some(SizeOption {
            flag: "--heap-reserve",
            unit: 1,
        }),
        stack: Some(SizeOption {
            flag: "--stack-size",
            unit: 1,
        }),
        prelude: include_str!("prelude-ccl.lisp"),
        stop_signal: Signal::SIGTERM,
        signals_main_thread: false,
        logs_to_syslog: false,
        catches_hup: false,
        sbcl_contribs: false,
        env_vars: &["CCL_DEFAULT_DIRECTORY"],
        keeps_ready_reader: false,
        adopts_descriptors: false,
        keeps_output_lines: false,
        features: || Features::new(CCL_FEATURES),
    },
];

const ECL_FEATURES: &[&str] = &[
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
];

const CLISP_FEATURES: &[&str] = &[
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
];

const CCL_FEATURES: &[&str] = &[
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
];

impl LispKind {
    /// Its row of `RUNNERS`.
    pub fn facts(self) -> &'static RunnerFacts {
        RUNNERS
            .iter()
            .find(|r| r.kind == self)
            .expect("every Lisp has a row")
    }

    /// The runner named by a program's basename (`sbcl`, `/usr/bin/ecl`, ...).
    pub fn from_program(program: &OsStr) -> Option<LispKind> {
        let name = Path::new(program).file_name()?.to_str()?;
        RUNNERS
            .iter()
            .find(|r| r.programs.contains(&name))
            .map(|r| r.kind)
    }

    /// The arguments that make the Lisp load the bootstrap from `path`,
    /// keeping the user's init file, without a banner: the Lisp's leading
    /// options, the conf's runtime options, its `:lisp-options`, then the
    /// tool's own. A size the Lisp has no option for is left out (see
    /// `unsupported`).
    pub fn args(self, options: &RuntimeOptions, core: Option<&Path>, path: &str) -> Vec<OsString> {
        let facts = self.facts();
        let mut args: Vec<OsString> = Vec::new();
        if let (Some(flag), Some(core)) = (facts.core, core) {
            args.push(flag.into());
            args.push(core.as_os_str().to_owned());
        }
        let mut rest: Vec<String> = facts.leading.iter().map(|a| a.to_string()).collect();
        let sizes = [
            (&facts.heap, options.dynamic_space_size),
            (&facts.stack, options.control_stack_size),
        ];
        for (option, megabytes) in sizes {
            if let (Some(option), Some(megabytes)) = (option, megabytes) {
                rest.push(option.flag.to_string());
                rest.push(megabytes.saturating_mul(MB / option.unit).to_string());
            }
        }
        rest.extend(options.lisp_options.iter().cloned());
        rest.extend((facts.args)(path));
        args.extend(rest.into_iter().map(OsString::from));
        args
    }

    /// What the Lisp cannot do of `options`: the conf key and why, to
    /// refuse the conf with.
    pub fn unsupported(self, options: &RuntimeOptions) -> Option<String> {
        let facts = self.facts();
        let missing = [
            (
                "dynamic-space-size",
                &facts.heap,
                options.dynamic_space_size,
            ),
            (
                "control-stack-size",
                &facts.stack,
                options.control_stack_size,
            ),
        ];
        missing
            .into_iter()
            .find(|(_, option, size)| option.is_none() && size.is_some())
            .map(|(key, _, _)| {
                format!(
                    "{} has no runtime option for :{key} (it grows its memory as needed): \
                     remove :{key} from the conf, or run the daemon on another Lisp (:lisp :sbcl)",
                    facts.name
                )
            })
    }

    /// Why this Lisp cannot run `spec` (stopped by `schedule`), if it
    /// cannot: what it cannot catch, save or size, said rather than
    /// silently skipped.
    pub fn cannot_run(self, spec: &DaemonSpec, schedule: Option<&StopSchedule>) -> Option<String> {
        let facts = self.facts();
        if schedule.is_some_and(|s| s.uses(Signal::SIGUSR1)) && !self.catches_usr1() {
            return Some(format!(
                "{} cannot catch SIGUSR1, so a stop schedule with USR1 would kill it without cleanup; \
                 use TERM (for example \"TERM/60/KILL/5\")",
                facts.name
            ));
        }
        if spec.core.is_some() && facts.core.is_none() {
            return Some(no_cores(facts.name));
        }
        if spec.reload_function.is_some() && !facts.catches_hup {
            return Some(format!(
                "{} cannot catch SIGHUP, so :reload-function could never be called: \
                 remove it from the conf, or run the daemon on SBCL or ECL (:lisp :sbcl)",
                facts.name
            ));
        }
        self.unsupported(&RuntimeOptions::of(spec))
    }

    /// Whether the Lisp can catch SIGUSR1 (and so stop gracefully on it).
    pub fn catches_usr1(self) -> bool {
        self.facts().stop_signal == Signal::SIGUSR1
    }
}

/// Why a Lisp named `lisp` runs no `:core`.
pub fn no_cores(lisp: &str) -> String {
    format!(
        "{lisp} cannot save its image: it has no saved cores; run it without :core \
         (or on SBCL or GNU CLISP)"
    )
}

/// The conf's options for the Lisp's command line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuntimeOptions {
    /// `:dynamic-space-size`, in megabytes.
    pub dynamic_space_size: Option<u64>,
    /// `:control-stack-size`, in megabytes.
    pub control_stack_size: Option<u64>,
    /// `:lisp-options`.
    pub lisp_options: Vec<String>,
}

impl RuntimeOptions {
    /// A conf's.
    pub fn of(spec: &crate::config::DaemonSpec) -> RuntimeOptions {
        RuntimeOptions {
            dynamic_space_size: spec.dynamic_space_size,
            control_stack_size: spec.control_stack_size,
            lisp_options: spec.lisp_options.clone(),
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
    /// The saved core it runs on (`:core`), once checked.
    pub core: Option<std::path::PathBuf>,
}

impl Runner {
    pub fn new(kind: LispKind, program: impl Into<OsString>) -> Runner {
        Runner {
            kind,
            program: program.into(),
            features: (kind.facts().features)(),
            core: None,
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
            None => Runner::new(kind, kind.facts().programs[0]),
        }
    }
}
