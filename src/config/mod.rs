//! The conf model: a conf file's property list → a typed `DaemonSpec`.
//!
//! Reads the file named on the command line, follows its parent chain, merges
//! everything over the built-in default conf exactly as the original did
//! (farthest parent first, closer levels win key by key), and resolves paths.
//! Pure but for reading the conf files themselves.

mod defaults;
mod error;
pub mod keys;
mod paths;
pub(crate) mod plist;
mod restas;
mod schedule;
mod spec;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use error::{ConfError, ConfErrorKind};
pub use paths::PidDirs;
pub use schedule::{BadSchedule, StopSchedule, StopStep, parse_signal};
pub use spec::{
    CoreFile, DaemonSpec, Dir, FunctionShape, LispCode, LispKind, Listen, OsParams, Preload,
    Readiness, RestartPolicy,
};

use crate::reader::{self, Features, Form, Span, lisp_string};
use crate::source::Source;
use crate::trust::{self, Trust};
use keys::ValueAt;

/// The name the built-in default conf is shown under in messages.
pub const BUILT_IN_DEFAULT: &str = "<built-in default.conf>";

const DEFAULT_CONF: &str = include_str!("default.conf");

/// What a conf is read against: the target Lisp's features, the default
/// conf, and where pid files go by default.
#[derive(Clone, Debug)]
pub struct ConfEnv {
    pub features: Features,
    /// `$DAEMONIZATION_DEFAULT_CONF`: a file replacing the built-in default.
    pub default_conf: Option<PathBuf>,
    pub pid_dirs: PidDirs,
    /// Whose conf files are read (see `crate::trust::read_conf`).
    pub trust: Trust,
    /// The caller's home: what `~/` starts a path with.
    pub home: Option<PathBuf>,
}

/// A merged conf: its typed spec, its resolved pid file, and the value forms
/// it was made of (for `check`).
#[derive(Debug)]
pub struct Conf {
    /// The conf file given on the command line, absolute.
    pub path: PathBuf,
    pub spec: DaemonSpec,
    /// The absolute pid file path.
    pub pid_file: PathBuf,
    /// The tool's own per-user pid directory, when the pid file is in it.
    pub private_pid_dir: Option<PathBuf>,
    /// For a restas-daemon conf: the plist conf it was read as.
    pub migrated: Option<String>,
    /// Keys whose value a restas-daemon default derived, and how.
    pub derived: Vec<(&'static str, String)>,
    /// Every file this conf was read from: the file given, its parents, and
    /// the default-conf replacement, if any.
    pub files: Vec<PathBuf>,
    values: BTreeMap<&'static str, (Arc<Source>, Form)>,
}

/// One conf file, read and checked.
struct Layer {
    source: Arc<Source>,
    entries: Vec<(&'static str, Form)>,
    /// This file's own values (keys it does not give are unset).
    spec: DaemonSpec,
}

impl Layer {
    fn value_span(&self, name: &str) -> Option<Span> {
        self.entries
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, f)| f.span)
    }
}

/// Reads a conf file, its parents and the default conf, and merges them.
pub fn load(path: &Path, env: &ConfEnv) -> Result<Conf, ConfError> {
    let path = std::path::absolute(path).map_err(|error| ConfError::Unreadable {
        path: path.to_path_buf(),
        error,
    })?;
    let text = trust::read_conf(&path, &env.trust).map_err(|e| ConfError::from_read(e, &path))?;
    // A restas-daemon conf is read as the plist conf it translates to.
    let given = Arc::new(Source::new(&path, text));
    let forms = reader::read_all(&given.text, &env.features)
        .map_err(|e| ConfError::at(ConfErrorKind::Read(e.kind), e.span, &given))?;
    let (migrated, derived) = match restas::is_restas(&forms) {
        true => {
            let restas::Migrated { text, derived } = restas::translate(&given, &forms)?;
            (Some(text), derived)
        }
        false => (None, Vec::new()),
    };
    let text = migrated.clone().unwrap_or_else(|| given.text.to_string());
    let chain = read_chain(Source::new(&path, text), env)?;
    let default = match &env.default_conf {
        Some(file) => {
            let text =
                trust::read_conf(file, &env.trust).map_err(|e| ConfError::from_read(e, file))?;
            read_layer(Source::new(file, text), env)?
        }
        None => read_layer(Source::new(BUILT_IN_DEFAULT, DEFAULT_CONF), env)?,
    };

    let mut values = BTreeMap::new();
    for layer in std::iter::once(&default).chain(chain.iter().rev()) {
        for (name, form) in &layer.entries {
            values.insert(*name, (Arc::clone(&layer.source), form.clone()));
        }
    }
    let mut spec = DaemonSpec::default();
    for (name, (source, form)) in &values {
        apply(name, form, source, &mut spec)?;
    }
    // A probe of a held port is answered by the kernel's queue (and by
    // the old Lisp while a new one starts), not by the daemon: no probe.
    if let (Readiness::Port { port, .. }, Some((source, form))) = (&spec.ready, values.get("ready"))
        && let Some(held) = spec.listen.iter().find(|l| l.port == *port)
    {
        let kind = ConfErrorKind::ReadyPortHeld {
            port: *port,
            name: held.name.clone(),
        };
        return Err(ConfError::at(kind, form.span, source));
    }
    spec.conf_params_file = Some(path.clone());
    paths::expand_homes(&mut spec, env.home.as_deref());

    let conf_dir = path.parent().unwrap_or(Path::new("/"));
    let Some(pid_file) = &spec.pid_file else {
        return Err(ConfError::Missing { key: "pid-file" });
    };
    let private_pid_dir = match (&spec.pid_file_dir, pid_file.is_relative()) {
        (None, true) => env.pid_dirs.private_dir(),
        _ => None,
    };
    let pid_file = paths::pid_file(
        pid_file,
        spec.pid_file_dir.as_ref(),
        conf_dir,
        &env.pid_dirs,
    );
    spec.control_dir = spec.control.unwrap_or(true).then(|| control_dir(&pid_file));
    if let (Readiness::Notify, Some((source, form))) = (&spec.ready, values.get("ready")) {
        let path = notify_socket(&pid_file);
        if path.as_os_str().len() > MAX_SOCKET_PATH {
            let kind = ConfErrorKind::NotifyPathTooLong { path };
            return Err(ConfError::at(kind, form.span, source));
        }
    }
    // Relative extension paths are relative to the conf file's directory.
    for path in [&mut spec.output, &mut spec.fasl_dir].into_iter().flatten() {
        *path = conf_dir.join(&*path);
    }
    if let Some(CoreFile::Path(core)) = &mut spec.core {
        *core = conf_dir.join(&*core);
    }
    for item in &mut spec.preload {
        if let Preload::File(file) = item {
            *file = conf_dir.join(paths::expand_home(file, env.home.as_deref()));
        }
    }
    let mut files: Vec<PathBuf> = chain.iter().map(|l| l.source.path.clone()).collect();
    files.extend(env.default_conf.iter().cloned());
    Ok(Conf {
        path,
        spec,
        pid_file,
        private_pid_dir,
        migrated,
        derived,
        files,
        values,
    })
}

/// The file given and its parents, child first.
fn read_chain(given: Source, env: &ConfEnv) -> Result<Vec<Layer>, ConfError> {
    let mut layers = vec![read_layer(given, env)?];
    let mut seen = vec![canonical(&layers[0].source.path)];
    loop {
        let layer = layers.last().expect("the chain starts with the given file");
        let Some(parent) = &layer.spec.parent_conf_file else {
            return Ok(layers);
        };
        let naming_dir = layer.source.path.parent().unwrap_or(Path::new("/"));
        let parent =
            paths::parent_conf_file(parent, layer.spec.parent_conf_file_dir.as_ref(), naming_dir);
        let span = layer
            .value_span("parent-conf-file")
            .expect("a parent comes from an entry");
        let fail = |kind| ConfError::at(kind, span, &layer.source);
        let text = trust::read_conf(&parent, &env.trust).map_err(|error| {
            fail(match error {
                trust::PathError::Refused(r) => ConfErrorKind::ParentRefused {
                    refusal: r.to_string(),
                },
                trust::PathError::Io { errno, .. } => ConfErrorKind::ParentUnreadable {
                    path: parent.clone(),
                    error: std::io::Error::from_raw_os_error(errno as i32).to_string(),
                },
            })
        })?;
        let id = canonical(&parent);
        if seen.contains(&id) {
            let mut chain: Vec<PathBuf> = layers.iter().map(|l| l.source.path.clone()).collect();
            chain.push(parent);
            return Err(fail(ConfErrorKind::Cycle { chain }));
        }
        seen.push(id);
        let next = read_layer(Source::new(parent, text), env)?;
        layers.push(next);
    }
}

/// The control socket's directory of the daemon whose pid file is
/// `pid_file`: `NAME.control` beside it (as `NAME.state` and `NAME.lock`).
pub fn control_dir(pid_file: &Path) -> PathBuf {
    let mut name = pid_file.as_os_str().to_owned();
    name.push(".control");
    PathBuf::from(name)
}

/// The notify socket of a daemon with `:ready :notify` whose pid file is
/// `pid_file`: `notify` in its control directory, where only root and the
/// daemon's user reach it.
pub fn notify_socket(pid_file: &Path) -> PathBuf {
    control_dir(pid_file).join(NOTIFY_SOCKET_NAME)
}

/// The notify socket's name in the control directory.
pub const NOTIFY_SOCKET_NAME: &str = "notify";

/// The longest path an AF_UNIX socket address holds (sun_path, less the
/// NUL that C readers of `NOTIFY_SOCKET` expect).
pub const MAX_SOCKET_PATH: usize = 107;

fn canonical(path: &Path) -> PathBuf {
    fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

fn read_layer(source: Source, env: &ConfEnv) -> Result<Layer, ConfError> {
    let source = Arc::new(source);
    let plist = read_single_form(&source, &env.features)?;
    let pairs = plist::entries(&plist, &source, keys::names(), None)
        .map_err(|(kind, span)| ConfError::at(kind, span, &source))?;
    let mut spec = DaemonSpec::default();
    let mut entries = Vec::with_capacity(pairs.len());
    for (name, _, value) in pairs {
        apply(name, value, &source, &mut spec)?;
        entries.push((name, value.clone()));
    }
    paths::expand_homes(&mut spec, env.home.as_deref());
    Ok(Layer {
        source,
        entries,
        spec,
    })
}

/// The one form of a conf-like file (a property list is checked by the caller).
pub(crate) fn read_single_form(
    source: &Arc<Source>,
    features: &Features,
) -> Result<Form, ConfError> {
    let forms = reader::read_all(&source.text, features)
        .map_err(|e| ConfError::at(ConfErrorKind::Read(e.kind), e.span, source))?;
    let mut forms = forms.into_iter();
    let Some(plist) = forms.next() else {
        let at = end_position(&source.text);
        return Err(ConfError::at(
            ConfErrorKind::Empty,
            Span::new(at, at),
            source,
        ));
    };
    if let Some(extra) = forms.next() {
        let kind = ConfErrorKind::TrailingForm {
            found: source.slice(extra.span).to_string(),
        };
        return Err(ConfError::at(kind, extra.span, source));
    }
    Ok(plist)
}

fn apply(
    name: &'static str,
    form: &Form,
    source: &Arc<Source>,
    spec: &mut DaemonSpec,
) -> Result<(), ConfError> {
    let key = keys::lookup(name).expect("entries hold table names only");
    let at = ValueAt {
        form,
        source,
        key: format!(":{name}"),
    };
    key.kind
        .apply(&at, spec)
        .map_err(|(kind, span)| ConfError::at(kind, span, source))
}

fn end_position(text: &str) -> reader::Position {
    let line = 1 + text.matches('\n').count();
    let last = text.rsplit('\n').next().unwrap_or("");
    reader::Position {
        offset: text.len(),
        line,
        column: 1 + last.chars().count(),
    }
}

impl Conf {
    /// The daemon's name for files and units: the conf's `:name`, else
    /// its file's stem, with what a unit or file name cannot hold made `-`.
    pub fn service_name(&self) -> String {
        let name = self.spec.name.clone().unwrap_or_else(|| {
            self.path
                .file_stem()
                .map_or("daemon".into(), |s| s.to_string_lossy().into_owned())
        });
        name.chars()
            .map(|c| match c.is_ascii_alphanumeric() || ":_.-".contains(c) {
                true => c,
                false => '-',
            })
            .collect()
    }

    /// The keys the conf does not give, with the values the tool uses for
    /// them, as comment lines (so the property list above them reads the
    /// same): `stop_signal` is the runner's first stop signal.
    pub fn defaults_text(&self, stop_signal: nix::sys::signal::Signal) -> String {
        let mut out = String::new();
        for key in keys::KEYS {
            if self.values.contains_key(key.name) || key.name == "conf-params-file" {
                continue;
            }
            if out.is_empty() {
                out.push_str(";; not in the conf, so the defaults:\n");
            }
            let value = match key.name {
                "stop-schedule" => lisp_string(&self.spec.stop_schedule(stop_signal).to_string()),
                "stop-timeout" => self.spec.stop_timeout().as_secs_f64().to_string(),
                _ => key.default.to_string(),
            };
            let _ = writeln!(out, ";;  :{} {value}", key.name);
        }
        out
    }

    /// The merged conf as one property list that the Lisp's `read` accepts:
    /// sorted by key, each value as written, `:conf-params-file` the conf's
    /// absolute path.
    pub fn to_plist_text(&self) -> String {
        let mut out = format!(
            ";; conf: {}\n;; pid file: {}\n",
            self.path.display(),
            self.pid_file.display()
        );
        // The other paths as the tool will use them (~ expanded, relative
        // ones made absolute), when the conf gives them.
        for parent in self.files.iter().skip(1) {
            let _ = writeln!(out, ";; read from: {}", parent.display());
        }
        let used = [
            ("output", &self.spec.output),
            ("fasl dir", &self.spec.fasl_dir),
        ];
        for (what, path) in used {
            if let Some(path) = path {
                let _ = writeln!(out, ";; {what}: {}", path.display());
            }
        }
        out.push('(');
        let conf_path = lisp_string(&self.path.display().to_string());
        let mut values: BTreeMap<&str, &str> = self
            .values
            .iter()
            .map(|(k, (s, f))| (*k, s.slice(f.span)))
            .collect();
        values.insert("conf-params-file", &conf_path);
        for (i, (key, text)) in values.iter().enumerate() {
            let sep = if i == 0 { "" } else { "\n " };
            let _ = write!(out, "{sep}:{key} {text}");
        }
        out.push_str(")\n");
        out
    }
}

#[cfg(test)]
mod tests;
