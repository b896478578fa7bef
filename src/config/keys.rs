//! The table of conf keys: name, type, meaning, and the field it sets.
//!
//! Adding a key is one line here plus its field in `DaemonSpec`. The table is
//! also the source of the usage text and of the "any keys from (...)" list.

use std::path::PathBuf;
use std::time::Duration;

use super::error::{ConfErrorKind, Fail};
use super::schedule::StopSchedule;
use super::spec::{
    CoreFile, DaemonSpec, Dir, FunctionShape, LispCode, LispKind, Listen, MAX_LISTEN, OsParams,
    Preload, Readiness, RestartPolicy,
};
use crate::reader::{Datum, Form, Macro, Number};
use crate::source::Source;

/// One conf key.
pub struct Key {
    /// The keyword's name, lower case, without the colon.
    pub name: &'static str,
    pub kind: Kind,
    /// The default shown in the usage text.
    pub default: &'static str,
    pub doc: &'static str,
}

/// The type of a key's value, with the typed setter of its field.
pub enum Kind {
    /// A string, or nil.
    Text(fn(&mut DaemonSpec, Option<String>)),
    /// A string or `#P"..."`, or nil when `nil_ok`.
    Path {
        nil_ok: bool,
        set: fn(&mut DaemonSpec, Option<PathBuf>),
    },
    /// A string, `#P"..."`, `:this-dir`, or nil.
    Dir(fn(&mut DaemonSpec, Option<Dir>)),
    /// `t` or `nil`.
    Flag(fn(&mut DaemonSpec, bool)),
    /// Lisp code naming a function, or nil.
    Function(fn(&mut DaemonSpec, Option<LispCode>)),
    /// A property list with `:linux-umask N`.
    OsParams(fn(&mut DaemonSpec, OsParams)),
    /// A non-negative number of seconds, or nil.
    Seconds(fn(&mut DaemonSpec, Option<Duration>)),
    /// A stop schedule string such as `"USR1/60/KILL/5"`, or nil.
    Schedule(fn(&mut DaemonSpec, Option<StopSchedule>)),
    /// `:never`, `:on-failure`, `:always`, or nil (never).
    Restart(fn(&mut DaemonSpec, RestartPolicy)),
    /// `:returned`, `:notify`, `(:port N)` or `(:port N :address "A")`, or nil.
    Ready(fn(&mut DaemonSpec, Readiness)),
    /// A list of `(:name N :port P :address A :backlog B)`, or nil.
    Listen(fn(&mut DaemonSpec, Vec<Listen>)),
    /// `(STARTS SECONDS)`, or nil.
    StartLimit(fn(&mut DaemonSpec, Option<(u32, Duration)>)),
    /// `(SECONDS MISSES)`, or nil.
    Watchdog(fn(&mut DaemonSpec, Option<(Duration, u32)>)),
    /// A size: bytes, or a string such as `"64K"`, `"10M"`, `"1G"`; or nil.
    Size(fn(&mut DaemonSpec, Option<u64>)),
    /// A count: an integer 0 or more, or nil.
    Count(fn(&mut DaemonSpec, Option<u32>)),
    /// `:sbcl`, `:ecl`, `:clisp`, `:ccl`, or nil.
    Lisp(fn(&mut DaemonSpec, Option<LispKind>)),
    /// A list of `"NAME=value"` strings, or nil.
    Environment(fn(&mut DaemonSpec, Vec<(String, String)>)),
    /// Megabytes: an integer, or a size string such as `"2G"`; or nil.
    Megabytes(fn(&mut DaemonSpec, Option<u64>)),
    /// A list of ASDF systems (keywords, symbols) and files (strings).
    Preload(fn(&mut DaemonSpec, Vec<Preload>)),
    /// A path, `:auto`, or nil.
    Core(fn(&mut DaemonSpec, Option<CoreFile>)),
    /// A list of strings, or nil.
    Strings(fn(&mut DaemonSpec, Vec<String>)),
}

/// Every key, in the original's order.
pub const KEYS: &[Key] = &[
    Key {
        name: "pid-file",
        kind: Kind::Path {
            nil_ok: false,
            set: |s, v| s.pid_file = v,
        },
        default: "\"default-pid\"",
        doc: "pid file name or path; a relative one is joined to :pid-file-dir",
    },
    Key {
        name: "pid-file-dir",
        kind: Kind::Dir(|s, v| s.pid_file_dir = v),
        default: "nil",
        doc: "directory of a relative :pid-file: a path, :this-dir (the conf file's directory), or nil (the tool's pid directory)",
    },
    Key {
        name: "main-function",
        kind: Kind::Function(|s, v| s.main_function = v),
        default: "nil",
        doc: "the daemon's work: #.(lambda () ...), #'(lambda () ...), #'name, (lambda () ...), a symbol, or nil",
    },
    Key {
        name: "before-init-fn",
        kind: Kind::Function(|s, v| s.before_init_fn = v),
        default: "nil",
        doc: "function called in the daemon before :main-function",
    },
    Key {
        name: "before-parent-exit-fn",
        kind: Kind::Function(|s, v| s.before_parent_exit_fn = v),
        default: "nil",
        doc: "function of (pid status) called once the outcome of start is known",
    },
    Key {
        name: "name",
        kind: Kind::Text(|s, v| s.name = v),
        default: "nil",
        doc: "daemon name, used in log messages (\"Stop NAME daemon\")",
    },
    Key {
        name: "user",
        kind: Kind::Text(|s, v| s.user = v),
        default: "nil",
        doc: "user to run the daemon as (only root may switch)",
    },
    Key {
        name: "group",
        kind: Kind::Text(|s, v| s.group = v),
        default: "nil",
        doc: "group to run the daemon as (only together with :user)",
    },
    Key {
        name: "exit",
        kind: Kind::Flag(|s, v| s.exit = v),
        default: "t",
        doc: "accepted for compatibility with the Lisp API; no effect on the command line",
    },
    Key {
        name: "listen-privileged-ports",
        kind: Kind::Flag(|s, v| s.listen_privileged_ports = v),
        default: "t",
        doc: "keep CAP_NET_BIND_SERVICE after the user switch, to bind ports below 1024",
    },
    Key {
        name: "os-params",
        kind: Kind::OsParams(|s, v| s.os_params = v),
        default: "(:linux-umask #o037)",
        doc: "operating system parameters: (:linux-umask N) is the daemon's umask",
    },
    Key {
        name: "parent-conf-file",
        kind: Kind::Path {
            nil_ok: true,
            set: |s, v| s.parent_conf_file = v,
        },
        default: "nil",
        doc: "conf file whose values this one overrides, key by key",
    },
    Key {
        name: "parent-conf-file-dir",
        kind: Kind::Dir(|s, v| s.parent_conf_file_dir = v),
        default: "nil",
        doc: "directory of a relative :parent-conf-file (default: the directory of the file naming it)",
    },
    Key {
        name: "conf-params-file",
        kind: Kind::Path {
            nil_ok: true,
            set: |s, v| s.conf_params_file = v,
        },
        default: "the conf file",
        doc: "set by the tool to the conf file given on the command line; a value in a file is replaced",
    },
    // Extension keys: not in the original, which simply never uses them.
    Key {
        name: "start-timeout",
        kind: Kind::Seconds(|s, v| s.start_timeout = v),
        default: "60",
        doc: "seconds start waits for :main-function to return before it reports \"still initializing\"",
    },
    Key {
        name: "stop-timeout",
        kind: Kind::Seconds(|s, v| s.stop_timeout = v),
        default: "60",
        doc: "seconds stop waits after SIGUSR1 before it sends SIGKILL",
    },
    Key {
        name: "output",
        kind: Kind::Path {
            nil_ok: true,
            set: |s, v| s.output = v,
        },
        default: "nil",
        doc: "file the daemon's stdout and stderr are appended to (relative: to the conf file's directory); nil is /dev/null",
    },
    Key {
        name: "fasl-dir",
        kind: Kind::Path {
            nil_ok: true,
            set: |s, v| s.fasl_dir = v,
        },
        default: "nil",
        doc: "ASDF's output cache for the daemon: created (and given to its user) before start, and set up before :main-function",
    },
    Key {
        name: "stop-schedule",
        kind: Kind::Schedule(|s, v| s.stop_schedule = v),
        default: "\"USR1/60/KILL/5\"",
        doc: "signals stop sends and seconds it waits after each, like start-stop-daemon --retry (60: :stop-timeout)",
    },
    Key {
        name: "restart",
        kind: Kind::Restart(|s, v| s.restart = v),
        default: ":never",
        doc: "when the Lisp is restarted: :never, :on-failure, :always (used by the systemd unit; see the README)",
    },
    Key {
        name: "ready",
        kind: Kind::Ready(|s, v| s.ready = v),
        default: ":returned",
        doc: "when a start is done: :returned (:main-function returned), :notify (the daemon calls (daemonization:ready) or sends READY=1 to $NOTIFY_SOCKET), (:port N) (a TCP connection to port N succeeds)",
    },
    Key {
        name: "listen",
        kind: Kind::Listen(|s, v| s.listen = v),
        default: "nil",
        doc: "listening sockets the tool binds (as root, before the user switch) and holds across restarts, passed to every Lisp as systemd does (LISTEN_FDS): ((:name \"http\" :port 8080 :address \"0.0.0.0\" :backlog 511)); restart then replaces the Lisp without refusing a connection",
    },
    Key {
        name: "stop-function",
        kind: Kind::Function(|s, v| s.stop_function = v),
        default: "nil",
        doc: "function called in the daemon when it is stopped, before it exits: stop accepting, finish what is in flight (a daemonization:acceptor drains by itself)",
    },
    Key {
        name: "control",
        kind: Kind::Flag(|s, v| s.control = Some(v)),
        default: "t",
        doc: "open the control socket (SBCL, ECL): eval, repl, SLIME, status -v's live facts, reload, the watchdog; only root and the daemon's user can connect, and no TCP port is opened",
    },
    Key {
        name: "watchdog",
        kind: Kind::Watchdog(|s, v| s.watchdog = v),
        default: "nil",
        doc: "(SECONDS MISSES): the supervisor asks the daemon over the control socket every SECONDS whether it is alive (:watchdog-check decides), and restarts it after MISSES unanswered",
    },
    Key {
        name: "watchdog-check",
        kind: Kind::Function(|s, v| s.watchdog_check = v),
        default: "nil",
        doc: "function the watchdog's question calls in the daemon: true means alive (say, the request pool answers); an error or false is a missed answer",
    },
    Key {
        name: "restart-delay",
        kind: Kind::Seconds(|s, v| s.restart_delay = v),
        default: "1",
        doc: "seconds before a restart",
    },
    Key {
        name: "restart-max-delay",
        kind: Kind::Seconds(|s, v| s.restart_max_delay = v),
        default: "60",
        doc: "the longest delay between restarts",
    },
    Key {
        name: "start-limit",
        kind: Kind::StartLimit(|s, v| s.start_limit = v),
        default: "nil",
        doc: "(STARTS SECONDS): at most STARTS starts within SECONDS, then give up",
    },
    Key {
        name: "output-max-size",
        kind: Kind::Size(|s, v| s.output_max_size = v),
        default: "nil",
        doc: "rotate :output when it would grow beyond this size (\"10M\"); the daemon then runs under a supervisor",
    },
    Key {
        name: "output-keep",
        kind: Kind::Count(|s, v| s.output_keep = v),
        default: "5",
        doc: "how many rotated :output files (FILE.1, FILE.2, ...) to keep",
    },
    Key {
        name: "lisp",
        kind: Kind::Lisp(|s, v| s.lisp = v),
        default: "nil",
        doc: "the Lisp that runs the daemon: :sbcl, :ecl, :clisp, :ccl (wins over LISP_RUNNER)",
    },
    Key {
        name: "environment",
        kind: Kind::Environment(|s, v| s.environment = v),
        default: "nil",
        doc: "variables for the daemon, (\"NAME=value\" ...), set on top of the environment it gets",
    },
    Key {
        name: "reload-function",
        kind: Kind::Function(|s, v| s.reload_function = v),
        default: "nil",
        doc: "function called in the running daemon by `reload` (SIGHUP), e.g. to load changed code; reload reports once it returned, or its error",
    },
    Key {
        name: "preload",
        kind: Kind::Preload(|s, v| s.preload = v),
        default: "nil",
        doc: "ASDF systems (:hunchentoot) and files (\"site.lisp\", relative to the conf) loaded before :main-function, and saved in the core (see build-core)",
    },
    Key {
        name: "core",
        kind: Kind::Core(|s, v| s.core = v),
        default: "nil",
        doc: "a saved core to run the Lisp on (made by build-core; relative to the conf), or :auto: kept, built and rebuilt when stale in the tool's cache",
    },
    Key {
        name: "dynamic-space-size",
        kind: Kind::Megabytes(|s, v| s.dynamic_space_size = v),
        default: "nil",
        doc: "the Lisp's heap, in megabytes (SBCL --dynamic-space-size; ECL --heap-size; CCL --heap-reserve); nil: the Lisp's default",
    },
    Key {
        name: "control-stack-size",
        kind: Kind::Megabytes(|s, v| s.control_stack_size = v),
        default: "nil",
        doc: "the Lisp's control stack, in megabytes (SBCL --control-stack-size; ECL --c-stack; CCL --stack-size); nil: the Lisp's default",
    },
    Key {
        name: "lisp-options",
        kind: Kind::Strings(|s, v| s.lisp_options = v),
        default: "nil",
        doc: "more arguments for the Lisp, (\"--option\" ...), passed after the runtime options above and before the tool's own",
    },
];

/// The key of a table name.
pub fn lookup(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

/// `(:PID-FILE :PID-FILE-DIR ...)`, as the original printed its key list.
pub fn key_list() -> String {
    let names: Vec<String> = KEYS
        .iter()
        .map(|k| format!(":{}", k.name.to_uppercase()))
        .collect();
    format!("({})", names.join(" "))
}

/// The names of all keys, in table order.
pub fn names() -> &'static [&'static str] {
    static NAMES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| KEYS.iter().map(|k| k.name).collect())
}

/// Where a value came from, for its typed form and its error messages.
pub struct ValueAt<'a> {
    pub form: &'a Form,
    pub source: &'a Source,
    /// The key path for messages: `:user`, `:os-params :linux-umask`.
    pub key: String,
}

impl ValueAt<'_> {
    fn wrong(&self, expected: &'static str) -> Fail {
        let kind = if matches!(self.form.datum, Datum::Macro(Macro::ReadEval, _)) {
            ConfErrorKind::ReadEvalInData {
                key: self.key.clone(),
            }
        } else {
            ConfErrorKind::WrongType {
                key: self.key.clone(),
                expected,
                found: self.source.slice(self.form.span).to_string(),
            }
        };
        (kind, self.form.span)
    }
}

impl Kind {
    /// Checks the value's type and sets the field.
    pub fn apply(&self, value: &ValueAt, spec: &mut DaemonSpec) -> Result<(), Fail> {
        match self {
            Kind::Text(set) => set(spec, text(value)?),
            Kind::Path { nil_ok, set } => set(spec, path(value, *nil_ok)?),
            Kind::Dir(set) => set(spec, dir(value)?),
            Kind::Flag(set) => set(spec, flag(value)?),
            Kind::Function(set) => set(spec, function(value)?),
            Kind::OsParams(set) => set(spec, os_params(value)?),
            Kind::Seconds(set) => set(spec, seconds(value)?),
            Kind::Schedule(set) => set(spec, schedule(value)?),
            Kind::Restart(set) => set(spec, restart(value)?),
            Kind::Ready(set) => set(spec, ready(value)?),
            Kind::Listen(set) => set(spec, listen(value)?),
            Kind::StartLimit(set) => set(spec, start_limit(value)?),
            Kind::Watchdog(set) => set(spec, watchdog(value)?),
            Kind::Size(set) => set(spec, size(value)?),
            Kind::Count(set) => set(spec, count(value)?),
            Kind::Lisp(set) => set(spec, lisp(value)?),
            Kind::Environment(set) => set(spec, environment(value)?),
            Kind::Megabytes(set) => set(spec, megabytes(value)?),
            Kind::Strings(set) => set(spec, strings(value)?),
            Kind::Preload(set) => set(spec, preload(value)?),
            Kind::Core(set) => set(spec, core(value)?),
        }
        Ok(())
    }

    /// What a value of this kind looks like, for the usage text.
    pub fn expected(&self) -> &'static str {
        match self {
            Kind::Text(_) => TEXT,
            Kind::Path { nil_ok: true, .. } => PATH_OR_NIL,
            Kind::Path { nil_ok: false, .. } => PATH,
            Kind::Dir(_) => DIR,
            Kind::Flag(_) => FLAG,
            Kind::Function(_) => FUNCTION,
            Kind::OsParams(_) => OS_PARAMS,
            Kind::Seconds(_) => SECONDS,
            Kind::Schedule(_) => SCHEDULE,
            Kind::Restart(_) => RESTART,
            Kind::Ready(_) => READY,
            Kind::Listen(_) => LISTEN,
            Kind::StartLimit(_) => START_LIMIT,
            Kind::Watchdog(_) => WATCHDOG,
            Kind::Size(_) => SIZE,
            Kind::Count(_) => COUNT,
            Kind::Lisp(_) => LISP,
            Kind::Environment(_) => ENVIRONMENT,
            Kind::Megabytes(_) => MEGABYTES,
            Kind::Strings(_) => STRINGS,
            Kind::Preload(_) => PRELOAD,
            Kind::Core(_) => CORE,
        }
    }
}

const TEXT: &str = "a string or nil";
const PATH: &str = "a non-empty string or #P\"...\"";
const PATH_OR_NIL: &str = "a non-empty string, #P\"...\" or nil";
const DIR: &str = "a non-empty string, #P\"...\", :this-dir or nil";
const FLAG: &str = "t or nil";
const FUNCTION: &str =
    "a function: #.(lambda ...), #'(lambda ...), #'name, (lambda ...), a symbol, or nil";
const OS_PARAMS: &str = "a property list such as (:linux-umask #o037)";
const SECONDS: &str = "a number of seconds (0 or more) or nil";
const SCHEDULE: &str = "a stop schedule such as \"USR1/60/KILL/5\" (signal/seconds/...) or nil";
const RESTART: &str = ":never, :on-failure, :always or nil";
const READY: &str = ":returned, :notify, (:port N), (:port N :address \"127.0.0.1\") or nil";
const LISTEN: &str = "a list of listeners such as ((:name \"http\" :port 8080 :address \"0.0.0.0\" :backlog 511)), at most 5, or nil";
const LISTEN_PORT: &str = "a port number from 1 to 65535";
const LISTEN_NAME: &str = "a name of letters, digits, - and _ (at most 64), not used twice";
const LISTEN_ADDRESS: &str = "an IP address such as \"0.0.0.0\", \"127.0.0.1\" or \"::\"";
const LISTEN_BACKLOG: &str = "an integer from 1 to 65535";
const START_LIMIT: &str = "a list (STARTS SECONDS) such as (5 60), or nil";
const WATCHDOG: &str = "a list (SECONDS MISSES) such as (10 3): ask every SECONDS, restart after MISSES unanswered; or nil";
const SIZE: &str = "a size: bytes, or a string such as \"64K\", \"10M\" or \"1G\"; or nil";
const COUNT: &str = "an integer (0 or more) or nil";
const LISP: &str = ":sbcl, :ecl, :clisp, :ccl or nil";
const ENVIRONMENT: &str = "a list of \"NAME=value\" strings, or nil";
const MEGABYTES: &str = "a number of megabytes (an integer from 1 to 16777216, 16 TiB), \
     a size string such as \"512M\" or \"2G\", or nil";
const STRINGS: &str = "a list of strings, or nil";
const PRELOAD: &str = "a list of ASDF systems (:hunchentoot, swank), files (\"site.lisp\") \
     and functions (#.(lambda () ...)), or nil";
const CORE: &str = "a core file (a non-empty string or #P\"...\"), :auto or nil";
const UMASK: &str = "an integer from 0 to #o777";

/// A proper list (nil: empty) each of whose items `item` reads; anything
/// else is not `expected`.
fn list_of<T>(
    v: &ValueAt,
    expected: &'static str,
    item: impl Fn(&ValueAt) -> Result<T, Fail>,
) -> Result<Vec<T>, Fail> {
    let items = match &v.form.datum {
        Datum::Nil => return Ok(Vec::new()),
        Datum::List { items, tail: None } => items,
        _ => return Err(v.wrong(expected)),
    };
    items
        .iter()
        .map(|form| {
            item(&ValueAt {
                form,
                source: v.source,
                key: v.key.clone(),
            })
        })
        .collect()
}

fn environment(v: &ValueAt) -> Result<Vec<(String, String)>, Fail> {
    list_of(v, ENVIRONMENT, |at| match &at.form.datum {
        Datum::String(s) if !s.contains('\0') => match s.split_once('=') {
            Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
            _ => Err(at.wrong(ENVIRONMENT)),
        },
        _ => Err(at.wrong(ENVIRONMENT)),
    })
}

fn megabytes(v: &ValueAt) -> Result<Option<u64>, Fail> {
    const MB: u64 = 1 << 20;
    let megabytes = match &v.form.datum {
        Datum::Nil => return Ok(None),
        Datum::Number(Number::Integer(n)) if *n > 0 => Some(*n as u64),
        Datum::String(_) => size(v)
            .ok()
            .flatten()
            .filter(|bytes| bytes % MB == 0)
            .map(|bytes| bytes / MB),
        _ => None,
    };
    megabytes
        .filter(|mb| *mb <= 1 << 24)
        .map(Some)
        .ok_or_else(|| v.wrong(MEGABYTES))
}

fn strings(v: &ValueAt) -> Result<Vec<String>, Fail> {
    list_of(v, STRINGS, |at| match &at.form.datum {
        Datum::String(s) if !s.contains('\0') => Ok(s.clone()),
        _ => Err(at.wrong(STRINGS)),
    })
}

fn preload(v: &ValueAt) -> Result<Vec<Preload>, Fail> {
    list_of(v, PRELOAD, |at| match &at.form.datum {
        Datum::Keyword(name) | Datum::Symbol(name) if !name.contains(':') => Ok(Preload::System(
            name.trim_start_matches("#:").to_lowercase(),
        )),
        Datum::String(path) if !path.is_empty() => Ok(Preload::File(PathBuf::from(path))),
        Datum::Macro(Macro::ReadEval, _) => match function(at) {
            Ok(Some(code)) => Ok(Preload::Code(code)),
            _ => Err(at.wrong(PRELOAD)),
        },
        _ => Err(at.wrong(PRELOAD)),
    })
}

fn core(v: &ValueAt) -> Result<Option<CoreFile>, Fail> {
    if matches!(&v.form.datum, Datum::Keyword(k) if k == "AUTO") {
        return Ok(Some(CoreFile::Auto));
    }
    match path_string(v) {
        Some(p) => Ok(p.map(CoreFile::Path)),
        None => Err(v.wrong(CORE)),
    }
}

fn text(v: &ValueAt) -> Result<Option<String>, Fail> {
    match &v.form.datum {
        Datum::Nil => Ok(None),
        Datum::String(s) => Ok(Some(s.clone())),
        _ => Err(v.wrong(TEXT)),
    }
}

/// A string or `#P"..."`, as a path; `None` for nil.
fn path_string(v: &ValueAt) -> Option<Option<PathBuf>> {
    let s = match &v.form.datum {
        Datum::Nil => return Some(None),
        Datum::String(s) => s,
        Datum::Macro(Macro::Pathname, inner) => match &inner.datum {
            Datum::String(s) => s,
            _ => return None,
        },
        _ => return None,
    };
    (!s.is_empty()).then(|| Some(PathBuf::from(s)))
}

fn path(v: &ValueAt, nil_ok: bool) -> Result<Option<PathBuf>, Fail> {
    match path_string(v) {
        Some(None) if !nil_ok => Err(v.wrong(PATH)),
        Some(p) => Ok(p),
        None => Err(v.wrong(if nil_ok { PATH_OR_NIL } else { PATH })),
    }
}

fn dir(v: &ValueAt) -> Result<Option<Dir>, Fail> {
    if matches!(&v.form.datum, Datum::Keyword(k) if k == "THIS-DIR") {
        return Ok(Some(Dir::ThisDir));
    }
    match path_string(v) {
        Some(p) => Ok(p.map(Dir::Path)),
        None => Err(v.wrong(DIR)),
    }
}

fn flag(v: &ValueAt) -> Result<bool, Fail> {
    match &v.form.datum {
        Datum::Nil => Ok(false),
        Datum::Symbol(s) if s == "T" => Ok(true),
        _ => Err(v.wrong(FLAG)),
    }
}

fn is_lambda(form: &Form) -> bool {
    matches!(&form.datum, Datum::List { items, tail: None }
        if matches!(&items[0].datum, Datum::Symbol(s) if s == "LAMBDA" || s == "CL:LAMBDA" || s == "COMMON-LISP:LAMBDA"))
}

fn function_name(form: &Form) -> bool {
    matches!(&form.datum, Datum::Symbol(s) if s != "T" && !s.starts_with("#:"))
}

fn function(v: &ValueAt) -> Result<Option<LispCode>, Fail> {
    let shape = match &v.form.datum {
        Datum::Nil => return Ok(None),
        Datum::Macro(Macro::ReadEval, _) => FunctionShape::ReadEval,
        Datum::Macro(Macro::Function, inner) if is_lambda(inner) || function_name(inner) => {
            FunctionShape::Function
        }
        _ if is_lambda(v.form) => FunctionShape::Lambda,
        _ if function_name(v.form) => FunctionShape::Symbol,
        _ => return Err(v.wrong(FUNCTION)),
    };
    let start = v.form.span.start;
    Ok(Some(LispCode {
        text: v.source.slice(v.form.span).to_string(),
        shape,
        origin: (v.source.path.clone(), start.line, start.column),
    }))
}

fn os_params(v: &ValueAt) -> Result<OsParams, Fail> {
    let mut params = OsParams::default();
    let entries = super::plist::entries(v.form, v.source, OS_PARAM_KEYS, Some(&v.key))?;
    for (name, _, value) in entries {
        let at = ValueAt {
            form: value,
            source: v.source,
            key: format!("{} :{name}", v.key),
        };
        params.linux_umask = match &value.datum {
            Datum::Nil => None,
            Datum::Number(Number::Integer(n)) if (0..=0o777).contains(n) => Some(*n as u32),
            _ => return Err(at.wrong(UMASK)),
        };
    }
    Ok(params)
}

fn seconds(v: &ValueAt) -> Result<Option<Duration>, Fail> {
    let secs = match &v.form.datum {
        Datum::Nil => return Ok(None),
        Datum::Number(Number::Integer(n)) => *n as f64,
        Datum::Number(Number::Float(f) | Number::Ratio(f)) => *f,
        _ => return Err(v.wrong(SECONDS)),
    };
    Duration::try_from_secs_f64(secs)
        .map(Some)
        .map_err(|_| v.wrong(SECONDS))
}

fn schedule(v: &ValueAt) -> Result<Option<StopSchedule>, Fail> {
    match &v.form.datum {
        Datum::Nil => Ok(None),
        Datum::String(s) => s.parse().map(Some).map_err(|_| v.wrong(SCHEDULE)),
        _ => Err(v.wrong(SCHEDULE)),
    }
}

fn restart(v: &ValueAt) -> Result<RestartPolicy, Fail> {
    match &v.form.datum {
        Datum::Nil => Ok(RestartPolicy::Never),
        Datum::Keyword(k) if k == "NEVER" => Ok(RestartPolicy::Never),
        Datum::Keyword(k) if k == "ON-FAILURE" => Ok(RestartPolicy::OnFailure),
        Datum::Keyword(k) if k == "ALWAYS" => Ok(RestartPolicy::Always),
        _ => Err(v.wrong(RESTART)),
    }
}

fn ready(v: &ValueAt) -> Result<Readiness, Fail> {
    let items = match &v.form.datum {
        Datum::Nil => return Ok(Readiness::Returned),
        Datum::Keyword(k) if k == "RETURNED" => return Ok(Readiness::Returned),
        Datum::Keyword(k) if k == "NOTIFY" => return Ok(Readiness::Notify),
        Datum::List { items, tail: None } => items,
        _ => return Err(v.wrong(READY)),
    };
    let mut port = None;
    let mut address = std::net::IpAddr::from([127, 0, 0, 1]);
    for pair in items.chunks(2) {
        match (&pair[0].datum, pair.get(1).map(|f| &f.datum)) {
            (Datum::Keyword(k), Some(Datum::Number(Number::Integer(n))))
                if k == "PORT" && (1..=65535).contains(n) =>
            {
                port = Some(*n as u16)
            }
            (Datum::Keyword(k), Some(Datum::String(a))) if k == "ADDRESS" => {
                address = a.parse().map_err(|_| v.wrong(READY))?
            }
            _ => return Err(v.wrong(READY)),
        }
    }
    match port {
        Some(port) => Ok(Readiness::Port { port, address }),
        None => Err(v.wrong(READY)),
    }
}

fn listen(v: &ValueAt) -> Result<Vec<Listen>, Fail> {
    let items = match &v.form.datum {
        Datum::Nil => return Ok(Vec::new()),
        // One listener's plist, or a list of them.
        Datum::List { items, tail: None } if matches!(items[0].datum, Datum::Keyword(_)) => {
            std::slice::from_ref(v.form)
        }
        Datum::List { items, tail: None } if items.len() <= MAX_LISTEN => items.as_slice(),
        _ => return Err(v.wrong(LISTEN)),
    };
    let mut listeners: Vec<Listen> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let entries = super::plist::entries(item, v.source, LISTEN_KEYS, Some(&v.key))?;
        let mut listener = Listen {
            name: String::new(),
            port: 0,
            address: std::net::IpAddr::from([0, 0, 0, 0]),
            backlog: 511,
        };
        for (name, _, value) in entries {
            let at = ValueAt {
                form: value,
                source: v.source,
                key: format!("{} :{name}", v.key),
            };
            match (name, &value.datum) {
                ("port", Datum::Number(Number::Integer(n))) if (1..=65535).contains(n) => {
                    listener.port = *n as u16
                }
                ("port", _) => return Err(at.wrong(LISTEN_PORT)),
                ("name", Datum::String(n))
                    if !n.is_empty()
                        && n.len() <= 64
                        && n.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
                        && !listeners.iter().any(|l| &l.name == n) =>
                {
                    listener.name = n.clone()
                }
                ("name", _) => return Err(at.wrong(LISTEN_NAME)),
                ("address", Datum::String(a)) => {
                    listener.address = a.parse().map_err(|_| at.wrong(LISTEN_ADDRESS))?
                }
                ("address", _) => return Err(at.wrong(LISTEN_ADDRESS)),
                ("backlog", Datum::Number(Number::Integer(n))) if (1..=65535).contains(n) => {
                    listener.backlog = *n as u32
                }
                _ => return Err(at.wrong(LISTEN_BACKLOG)),
            }
        }
        if listener.port == 0 {
            return Err(ValueAt {
                form: item,
                source: v.source,
                key: format!("{} :port", v.key),
            }
            .wrong(LISTEN_PORT));
        }
        if listener.name.is_empty() {
            listener.name = match i {
                0 => "http".to_string(),
                _ => format!("listen-{}", i + 1),
            };
        }
        listeners.push(listener);
    }
    Ok(listeners)
}

/// The keys of one listener of `:listen`.
pub const LISTEN_KEYS: &[&str] = &["name", "port", "address", "backlog"];

fn start_limit(v: &ValueAt) -> Result<Option<(u32, Duration)>, Fail> {
    let items = match &v.form.datum {
        Datum::Nil => return Ok(None),
        Datum::List { items, tail: None } if items.len() == 2 => items,
        _ => return Err(v.wrong(START_LIMIT)),
    };
    match (&items[0].datum, &items[1].datum) {
        (Datum::Number(Number::Integer(n)), Datum::Number(Number::Integer(s)))
            if *n > 0 && *s > 0 =>
        {
            Ok(Some((
                u32::try_from(*n).unwrap_or(u32::MAX),
                Duration::from_secs(*s as u64),
            )))
        }
        _ => Err(v.wrong(START_LIMIT)),
    }
}

fn watchdog(v: &ValueAt) -> Result<Option<(Duration, u32)>, Fail> {
    let items = match &v.form.datum {
        Datum::Nil => return Ok(None),
        Datum::List { items, tail: None } if items.len() == 2 => items,
        _ => return Err(v.wrong(WATCHDOG)),
    };
    let seconds = match &items[0].datum {
        Datum::Number(Number::Integer(n)) if (1..=86_400).contains(n) => {
            Duration::from_secs(*n as u64)
        }
        Datum::Number(Number::Float(f)) if (0.1..=86_400.0).contains(f) => {
            Duration::from_secs_f64(*f)
        }
        _ => return Err(v.wrong(WATCHDOG)),
    };
    match &items[1].datum {
        Datum::Number(Number::Integer(k)) if (1..=1000).contains(k) => {
            Ok(Some((seconds, *k as u32)))
        }
        _ => Err(v.wrong(WATCHDOG)),
    }
}

fn size(v: &ValueAt) -> Result<Option<u64>, Fail> {
    let bytes = match &v.form.datum {
        Datum::Nil => return Ok(None),
        Datum::Number(Number::Integer(n)) if *n > 0 => Some(*n as u64),
        Datum::String(s) => {
            let upper = s.trim().to_ascii_uppercase();
            let (digits, unit) = match upper.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
                Some((i, _)) => upper.split_at(i),
                None => (upper.as_str(), ""),
            };
            let unit = match unit.trim_end_matches(['B', 'I']) {
                "" => Some(1),
                "K" => Some(1 << 10),
                "M" => Some(1 << 20),
                "G" => Some(1 << 30),
                _ => None,
            };
            digits
                .parse::<u64>()
                .ok()
                .zip(unit)
                .and_then(|(n, u)| n.checked_mul(u))
                .filter(|b| *b > 0)
        }
        _ => None,
    };
    bytes.map(Some).ok_or_else(|| v.wrong(SIZE))
}

fn count(v: &ValueAt) -> Result<Option<u32>, Fail> {
    match &v.form.datum {
        Datum::Nil => Ok(None),
        Datum::Number(Number::Integer(n)) if (0..=i64::from(u32::MAX)).contains(n) => {
            Ok(Some(*n as u32))
        }
        _ => Err(v.wrong(COUNT)),
    }
}

fn lisp(v: &ValueAt) -> Result<Option<LispKind>, Fail> {
    match &v.form.datum {
        Datum::Nil => Ok(None),
        Datum::Keyword(k) => match k.as_str() {
            "SBCL" => Ok(Some(LispKind::Sbcl)),
            "ECL" => Ok(Some(LispKind::Ecl)),
            "CLISP" => Ok(Some(LispKind::Clisp)),
            "CCL" => Ok(Some(LispKind::Ccl)),
            _ => Err(v.wrong(LISP)),
        },
        _ => Err(v.wrong(LISP)),
    }
}

/// The keys `:os-params` accepts.
pub const OS_PARAM_KEYS: &[&str] = &["linux-umask"];
