//! Logging: where lines go (the logging conf of the original, or the file
//! named by `LOGGING_CONF`) and the lines themselves, in the original's
//! plist shape, one per line, so `grep -o '(:DAEMONIZATION.*'` on the syslog
//! file still finds them. A logging failure never fails a command: one
//! warning on stderr, and the command goes on.

use std::cell::{Cell, OnceCell, RefCell};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::plist;
use crate::config::{ConfError, ConfErrorKind, read_single_form};
use crate::reader::lisp_string;
use crate::reader::{Datum, Features, Form, Macro};
use crate::source::Source;
use crate::trust::{self, Create, Trust};

/// The name the built-in logging conf is shown under in messages.
pub const BUILT_IN_LOGGING: &str = "<built-in default-logging.conf>";

const DEFAULT_LOGGING_CONF: &str = include_str!("default-logging.conf");

const KEYS: &[&str] = &[
    "files-dir",
    "admin-files-dir",
    "info-destination",
    "error-destination",
    "trace-destination",
    "admin-info-destination",
    "admin-error-destination",
    "admin-trace-destination",
];

/// Where one level of log lines goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// syslog, facility daemon, ident `daemonization`.
    Syslog,
    File(PathBuf),
    Nowhere,
}

/// The destinations of the three levels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destinations {
    pub info: Destination,
    pub error: Destination,
    pub trace: Destination,
}

impl Destinations {
    /// No logging at all (`DAEMONIZATION_LOG=none`).
    pub fn nowhere() -> Destinations {
        Destinations {
            info: Destination::Nowhere,
            error: Destination::Nowhere,
            trace: Destination::Nowhere,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Info,
    Error,
    Trace,
}

impl Level {
    fn keyword(self) -> &'static str {
        match self {
            Level::Info => ":INFO",
            Level::Error => ":ERROR",
            Level::Trace => ":TRACE",
        }
    }
}

/// Reads the logging conf (`file`, else the built-in one) and picks the
/// destinations of the caller: the `:admin-` keys when it is root.
pub fn load(
    file: Option<&Path>,
    trust: &Trust,
    features: &Features,
) -> Result<Destinations, ConfError> {
    let admin = trust.root;
    let source = match file {
        Some(path) => {
            let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
            let text =
                trust::read_conf(&path, trust).map_err(|e| ConfError::from_read(e, &path))?;
            Source::new(path, text)
        }
        None => Source::new(BUILT_IN_LOGGING, DEFAULT_LOGGING_CONF),
    };
    let source = Arc::new(source);
    let form = read_single_form(&source, features)?;
    let pairs = plist::entries(&form, &source, KEYS, None)
        .map_err(|(kind, span)| ConfError::at(kind, span, &source))?;
    let this_dir = match file {
        Some(_) => source
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
        None => PathBuf::from("/var/log/daemonization"),
    };
    let prefix = if admin { "admin-" } else { "" };
    let get = |key: &str| pairs.iter().find(|(n, _, _)| *n == key).map(|(_, _, v)| *v);
    let wrong = |key: &str, form: &Form, expected: &'static str| {
        let kind = ConfErrorKind::WrongType {
            key: format!(":{key}"),
            expected,
            found: source.slice(form.span).to_string(),
        };
        ConfError::at(kind, form.span, &source)
    };
    // Check every key, also those of the other role, so a typo is found.
    let mut dirs = [this_dir.clone(), this_dir.clone()];
    for (i, key) in ["files-dir", "admin-files-dir"].iter().enumerate() {
        if let Some(form) = get(key) {
            dirs[i] = match dir_value(form) {
                Some(dir) => this_dir.join(dir.unwrap_or_default()),
                None => return Err(wrong(key, form, "a directory: a string, :this-dir or nil")),
            };
        }
    }
    let files_dir = &dirs[usize::from(admin)];
    let mut destinations = Vec::new();
    for level in ["info", "error", "trace"] {
        let mut chosen = Destination::Syslog;
        for role in ["", "admin-"] {
            let key = format!("{role}{level}-destination");
            let Some(form) = get(&key) else { continue };
            let destination = match &form.datum {
                Datum::Nil => Destination::Nowhere,
                Datum::Keyword(k) if k == "SYSTEM" => Destination::Syslog,
                Datum::String(s) if !s.is_empty() => Destination::File(files_dir.join(s)),
                _ => return Err(wrong(&key, form, ":system, a file name, or nil")),
            };
            if role == prefix {
                chosen = destination;
            }
        }
        destinations.push(chosen);
    }
    let [info, error, trace]: [Destination; 3] = destinations.try_into().expect("three levels");
    Ok(Destinations { info, error, trace })
}

/// A directory value: `Some(None)` for nil and `:this-dir`, `Some(Some(dir))`
/// for a non-empty string or `#P"..."`, `None` for anything else.
fn dir_value(form: &Form) -> Option<Option<&str>> {
    let text = match &form.datum {
        Datum::Nil => return Some(None),
        Datum::Keyword(k) if k == "THIS-DIR" => return Some(None),
        Datum::String(s) => s,
        Datum::Macro(Macro::Pathname, inner) => match &inner.datum {
            Datum::String(s) => s,
            _ => return None,
        },
        _ => return None,
    };
    (!text.is_empty()).then_some(Some(text.as_str()))
}

/// Who is logging: the fields after the message.
#[derive(Clone, Debug, Default)]
pub struct Context {
    pub name: Option<String>,
    pub command: String,
    /// The caller's user name; `None`: looked up when a line is written
    /// (a passwd lookup is not free, and most commands may log nothing).
    pub user: Option<String>,
    /// `-v`: say when syslog cannot be written, and why.
    pub verbose: bool,
}

/// Writes log lines; warns once on stderr if a destination fails.
pub struct Logger {
    destinations: Destinations,
    context: Context,
    warned: Cell<bool>,
    user: OnceCell<String>,
    syslog: RefCell<Option<syslog::Logger<syslog::LoggerBackend, syslog::Formatter3164>>>,
}

impl Logger {
    pub fn new(destinations: Destinations, context: Context) -> Logger {
        Logger {
            destinations,
            context,
            warned: Cell::new(false),
            user: OnceCell::new(),
            syslog: RefCell::new(None),
        }
    }

    fn user(&self) -> &str {
        self.user.get_or_init(|| {
            self.context.user.clone().unwrap_or_else(|| {
                let uid = nix::unistd::getuid();
                nix::unistd::User::from_uid(uid)
                    .ok()
                    .flatten()
                    .map_or_else(|| uid.to_string(), |u| u.name)
            })
        })
    }

    pub fn destinations(&self) -> &Destinations {
        &self.destinations
    }

    /// `(:DAEMONIZATION :INFO "message" :PID 40 :NAME "web" :COMMAND "start" :USER "root")`
    pub fn line(&self, level: Level, message: &str) -> String {
        let message = crate::visible::line(&message.replace('\n', " // "));
        format!(
            "(:DAEMONIZATION {} {} :PID {} :NAME {} :COMMAND {} :USER {})",
            level.keyword(),
            lisp_string(&message),
            std::process::id(),
            self.context
                .name
                .as_deref()
                .map_or("NIL".to_string(), lisp_string),
            lisp_string(&self.context.command),
            lisp_string(self.user()),
        )
    }

    pub fn info(&self, message: &str) {
        self.log(Level::Info, message);
    }

    pub fn error(&self, message: &str) {
        self.log(Level::Error, message);
    }

    pub fn trace(&self, message: &str) {
        self.log(Level::Trace, message);
    }

    pub fn log(&self, level: Level, message: &str) {
        let destination = match level {
            Level::Info => &self.destinations.info,
            Level::Error => &self.destinations.error,
            Level::Trace => &self.destinations.trace,
        };
        let line = self.line(level, message);
        let result = match destination {
            Destination::Nowhere => Ok(()),
            Destination::File(path) => append(path, &line),
            Destination::Syslog => self.syslog(level, &line),
        };
        let Err(e) = result else { return };
        // Like libc's syslog(), a machine without a syslog daemon is not
        // an error of the command: said only with -v, with its cause.
        let quiet = matches!(destination, Destination::Syslog) && !self.context.verbose;
        if !quiet && !self.warned.replace(true) {
            let cause = match destination {
                Destination::Syslog => syslog_cause(&e),
                _ => e.to_string(),
            };
            eprintln!(
                "WARNING: cannot write the log ({}): {cause}; the command goes on",
                destination_name(destination)
            );
        }
    }

    /// Closes the connection to syslog (it is made again for the next
    /// line): its descriptor is freed for a number the caller must own.
    pub fn release(&self) {
        self.syslog.borrow_mut().take();
    }

    fn syslog(&self, level: Level, line: &str) -> Result<(), LogError> {
        let mut logger = self.syslog.borrow_mut();
        if logger.is_none() {
            let formatter = syslog::Formatter3164 {
                facility: syslog::Facility::LOG_DAEMON,
                hostname: None,
                process: "daemonization".into(),
                pid: std::process::id(),
            };
            *logger = Some(syslog::unix(formatter).map_err(LogError::Syslog)?);
        }
        let logger = logger.as_mut().expect("set above");
        match level {
            Level::Info => logger.info(line),
            Level::Error => logger.err(line),
            Level::Trace => logger.debug(line),
        }
        .map_err(LogError::Syslog)
    }
}

/// Why syslog could not be written, told from `/dev/log` itself.
fn syslog_cause(error: &LogError) -> String {
    const DEV_LOG: &str = "/dev/log";
    if std::fs::symlink_metadata(DEV_LOG).is_err() {
        return format!("{DEV_LOG} does not exist: no syslog daemon runs here");
    }
    let probe = std::os::unix::net::UnixDatagram::unbound().and_then(|s| s.connect(DEV_LOG));
    match probe.map_err(|e| e.raw_os_error()) {
        Err(Some(nix::libc::ECONNREFUSED)) => {
            format!("{DEV_LOG} refuses connections: its syslog daemon is not running")
        }
        Err(Some(nix::libc::EACCES)) => format!("{DEV_LOG}: permission denied"),
        _ => error.to_string(),
    }
}

/// Why a log line could not be written.
#[derive(Debug, thiserror::Error)]
enum LogError {
    #[error("{0}")]
    Syslog(syslog::Error),
    #[error(transparent)]
    File(crate::trust::PathError),
    #[error("{0}")]
    Write(std::io::Error),
}

fn destination_name(destination: &Destination) -> String {
    match destination {
        Destination::Syslog => "syslog".into(),
        Destination::File(p) => p.display().to_string(),
        Destination::Nowhere => "nowhere".into(),
    }
}

/// Appends a line to a log file, as `crate::trust::open_append` opens it:
/// no symbolic link a user could have made, no FIFO, no hard-linked file.
fn append(path: &Path, line: &str) -> Result<(), LogError> {
    let dirs = Create {
        mode: 0o755,
        owner: None,
    };
    let mut file = trust::open_append(
        path,
        &Trust::of_caller(),
        "the log file",
        Some(dirs),
        0o640,
        None,
    )
    .map_err(LogError::File)?
    .file;
    file.write_all(format!("{line}\n").as_bytes())
        .map_err(LogError::Write)
}

#[cfg(test)]
mod tests;
