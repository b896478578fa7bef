//! Conf errors. A located error renders as `file:line:col: message` with the
//! source line and a caret; the kind holds no location.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use thiserror::Error;

use crate::reader::{ReadErrorKind, Span};
use crate::source::Source;

/// An error in a conf file, or a conf file that cannot be read.
#[derive(Debug, Error)]
pub enum ConfError {
    #[error("{}", unreadable(path, error))]
    Unreadable { path: PathBuf, error: io::Error },
    /// A conf file the tool will not read (see `crate::trust`).
    #[error(transparent)]
    Refused(#[from] crate::trust::Refused),
    #[error("no value for :{key}: the default conf must give one")]
    Missing { key: &'static str },
    #[error("{}", file.render(*span, &kind.to_string()))]
    Located {
        kind: Box<ConfErrorKind>,
        span: Span,
        file: Arc<Source>,
    },
}

impl ConfError {
    /// A conf file that could not be read: refused, or the system said no.
    pub fn from_read(error: crate::trust::PathError, path: &std::path::Path) -> ConfError {
        match error {
            crate::trust::PathError::Refused(r) => ConfError::Refused(r),
            crate::trust::PathError::Io { errno, .. } => ConfError::Unreadable {
                path: path.to_path_buf(),
                error: io::Error::from_raw_os_error(errno as i32),
            },
        }
    }

    pub fn at(kind: ConfErrorKind, span: Span, source: &Arc<Source>) -> ConfError {
        ConfError::Located {
            kind: Box::new(kind),
            span,
            file: Arc::clone(source),
        }
    }

    /// The kind of a located error.
    pub fn kind(&self) -> Option<&ConfErrorKind> {
        match self {
            ConfError::Located { kind, .. } => Some(kind.as_ref()),
            ConfError::Unreadable { .. } | ConfError::Missing { .. } | ConfError::Refused(_) => {
                None
            }
        }
    }
}

/// A value error and the span it is about.
pub type Fail = (ConfErrorKind, Span);

/// What is wrong, without where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfErrorKind {
    Read(ReadErrorKind),
    /// The file holds no form at all.
    Empty,
    /// More than one top-level form.
    TrailingForm {
        found: String,
    },
    NotPlist {
        found: String,
        nested_in: Option<String>,
    },
    ExpectedKey {
        found: String,
        /// Where the property list opened, when the form came right after
        /// a list (a parenthesis closed too early, most likely).
        early_close: Option<(usize, usize)>,
    },
    MissingValue {
        key: String,
    },
    UnknownKey {
        key: String,
        /// The keys allowed there (table names).
        known: &'static [&'static str],
        nested_in: Option<String>,
    },
    RepeatedKey {
        key: String,
        first: (usize, usize),
    },
    WrongType {
        key: String,
        expected: &'static str,
        found: String,
    },
    /// `#.` where data is needed: we do not evaluate Lisp.
    ReadEvalInData {
        key: String,
    },
    /// A parent conf file that cannot be read.
    ParentUnreadable {
        path: PathBuf,
        error: String,
    },
    /// A parent conf file the tool will not read: the refusal.
    ParentRefused {
        refusal: String,
    },
    /// The parent chain comes back to a file already in it.
    Cycle {
        chain: Vec<PathBuf>,
    },
    /// A restas-daemon conf form that is not `(defparameter *var* value)`.
    RestasForm {
        found: String,
    },
    /// A restas-daemon conf without `*name*`.
    RestasNoName,
    /// `:ready (:port N)` of a port `:listen` holds.
    ReadyPortHeld {
        port: u16,
        name: String,
    },
    /// `:ready :notify` where the notify socket's path would not fit an
    /// AF_UNIX address.
    NotifyPathTooLong {
        path: std::path::PathBuf,
    },
}

/// A conf file the system would not give: missing, or why not.
fn unreadable(path: &std::path::Path, error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::NotFound => format!("no conf file at {}", path.display()),
        io::ErrorKind::PermissionDenied => format!(
            "cannot read the conf file {}: permission denied (run as its owner, or root)",
            path.display()
        ),
        _ => {
            let text = error.to_string();
            let text = text.split(" (os error").next().unwrap_or(&text).to_string();
            format!("cannot read the conf file {}: {text}", path.display())
        }
    }
}

/// `(:PID-FILE :NAME ...)`: keys as the original listed them.
pub fn key_list_text(names: &[&str]) -> String {
    let names: Vec<String> = names
        .iter()
        .map(|n| format!(":{}", n.to_uppercase()))
        .collect();
    format!("({})", names.join(" "))
}

/// The first line of a value's source text, shortened, for messages.
fn excerpt(text: &str) -> String {
    let line = text.lines().next().unwrap_or("");
    let mut short: String = line.chars().take(40).collect();
    if short.len() < text.len() {
        short.push_str(" ...");
    }
    short
}

impl fmt::Display for ConfErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ConfErrorKind::*;
        match self {
            Read(kind) => write!(f, "{kind}"),
            Empty => f.write_str("expected a property list but found end of file"),
            TrailingForm { found } => write!(
                f,
                "expected end of file after the property list but found {}",
                excerpt(found)
            ),
            NotPlist {
                found,
                nested_in: None,
            } => {
                write!(f, "expected a property list but found {}", excerpt(found))
            }
            NotPlist {
                found,
                nested_in: Some(key),
            } => write!(
                f,
                "expected a property list as the value of {key} but found {}",
                excerpt(found)
            ),
            ReadyPortHeld { port, name } => write!(
                f,
                "port {port} is held by :listen (\"{name}\"), so a probe of it succeeds before the daemon is ready: \
                 use :ready :notify and call (daemonization:ready) once the site serves"
            ),
            NotifyPathTooLong { path } => write!(
                f,
                "the notify socket would be {} ({} bytes), longer than a socket's path can be ({} bytes): \
                 give :pid-file a shorter path",
                path.display(),
                path.as_os_str().len(),
                crate::config::MAX_SOCKET_PATH
            ),
            ExpectedKey {
                found,
                early_close: None,
            } => write!(f, "expected a keyword but found {}", excerpt(found)),
            ExpectedKey {
                found,
                early_close: Some((line, column)),
            } => write!(
                f,
                "expected a keyword but found {}: is a parenthesis of the value before it closed \
                 too early? (this property list opened at {line}:{column})",
                excerpt(found)
            ),
            MissingValue { key } => {
                write!(
                    f,
                    "expected a value after {key} but found the end of the list"
                )
            }
            UnknownKey {
                key,
                known,
                nested_in,
            } => {
                write!(f, "unknown key {key}")?;
                if let Some(outer) = nested_in {
                    write!(f, " in {outer}")?;
                }
                let name = key.trim_start_matches(':');
                if let Some(near) = crate::suggest::nearest(name, known.iter().copied()) {
                    write!(f, " (did you mean :{near}?)")?;
                }
                // The conf's own keys are many: where to see them, not
                // all of them here.
                match (nested_in, std::ptr::eq(*known, super::keys::names())) {
                    (None, true) => f.write_str("; every key: daemonization help keys"),
                    (None, false) => write!(f, ": expected one of {}", key_list_text(known)),
                    (Some(_), _) => write!(f, ": expected one of {}", key_list_text(known)),
                }
            }
            RepeatedKey { key, first } => write!(
                f,
                "repeated key {key} (first given at {}:{}): give each key once",
                first.0, first.1,
            ),
            WrongType {
                key,
                expected,
                found,
            } => write!(
                f,
                "expected {expected} as the value of {key} but found {}",
                excerpt(found)
            ),
            ReadEvalInData { key } => write!(
                f,
                "cannot evaluate \"#.\" in the value of {key}: only the function keys \
                 (:main-function, :before-init-fn, :before-parent-exit-fn) are read by the Lisp; \
                 write the value itself"
            ),
            ParentRefused { refusal } => f.write_str(refusal),
            ParentUnreadable { path, error } => {
                write!(
                    f,
                    "cannot read parent conf file {}: {error}",
                    path.display()
                )
            }
            RestasForm { found } => write!(
                f,
                "expected (defparameter *var* value) or (defvar *var* value) in a restas-daemon conf \
                 but found {}; the tool does not evaluate other Lisp forms",
                excerpt(found)
            ),
            RestasNoName => f.write_str("a restas-daemon conf must set *name* to a string"),
            Cycle { chain } => {
                let names: Vec<String> = chain.iter().map(|p| p.display().to_string()).collect();
                write!(f, "parent conf files form a cycle: {}", names.join(" -> "))
            }
        }
    }
}
