//! restas-daemon confs: files of `(defparameter *var* value)` forms, as
//! `restas-daemon.lisp` ran them, translated to the equivalent plist conf
//! (what `migrate` prints). The tool reads only what it needs before any
//! Lisp runs (name, user, group, pid file, fasl dir: literal strings); every
//! value is also bound, verbatim and in order, in the generated main
//! function (`restas-main.lisp`), where the Lisp evaluates it.

use std::fmt::Write as _;

use std::path::PathBuf;
use std::sync::Arc;

use super::error::{ConfError, ConfErrorKind};
use super::keys::{self, ValueAt};
use super::spec::{CoreFile, DaemonSpec};
use crate::reader::lisp_string;
use crate::reader::{Datum, Form, Macro, Span};
use crate::source::Source;

const MAIN: &str = include_str!("restas-main.lisp");
const PRELOAD: &str = include_str!("restas-preload.lisp");

/// The variables restas-daemon knew; others may be set and used by them.
const KNOWN: &[&str] = &[
    "*NAME*",
    "*USER*",
    "*GROUP*",
    "*FASLDIR*",
    "*PIDFILE*",
    "*SWANKPORT*",
    "*ASDF-CENTRAL-REGISTRY*",
    "*QUICKLISP-HOME*",
    "*ASDF-LOAD-SYSTEMS*",
    "*SITES*",
    "*DEFAULT-HOST-REDIRECT*",
    "*ACCEPTOR-CLASS*",
];

fn definer(form: &Form) -> Option<&str> {
    let Datum::List { items, tail: None } = &form.datum else {
        return None;
    };
    match &items.first()?.datum {
        Datum::Symbol(s) if s == "DEFPARAMETER" || s == "DEFVAR" => Some(s),
        _ => None,
    }
}

/// Whether the forms of a conf file are a restas-daemon conf.
pub fn is_restas(forms: &[Form]) -> bool {
    forms.first().is_some_and(|f| definer(f).is_some())
}

/// One `(defparameter *var* value)`: the variable's name and the value form.
struct Setting<'f> {
    var: String,
    var_form: &'f Form,
    value: Option<&'f Form>,
}

fn setting<'f>(form: &'f Form, source: &Source) -> Result<Setting<'f>, ConfErrorKind> {
    let bad = || ConfErrorKind::RestasForm {
        found: source.slice(form.span).to_string(),
    };
    definer(form).ok_or_else(bad)?;
    let Datum::List { items, .. } = &form.datum else {
        return Err(bad());
    };
    let (Some(var_form), 2..=4) = (items.get(1), items.len()) else {
        return Err(bad());
    };
    let Datum::Symbol(var) = &var_form.datum else {
        return Err(bad());
    };
    Ok(Setting {
        var: var.clone(),
        var_form,
        value: items.get(2),
    })
}

/// The comment that heads a migrated conf.
fn header(source: &Source, unknown: &[&str]) -> String {
    let mut text = format!(
        ";;; A plist conf equivalent to the restas-daemon conf\n\
         ;;; {path}\n\
         ;;; (made by `daemonization {path} migrate`; check it with `daemonization FILE check`).\n",
        path = source.path.display()
    );
    if !unknown.is_empty() {
        let _ = writeln!(
            text,
            ";;; Variables restas-daemon did not know, bound for the others: {}",
            unknown.join(" ")
        );
    }
    text
}

/// The variables the tool itself needs, before any Lisp runs, and the plist
/// key each one is read as (the same values, `#P"..."` included).
const READ_BY_TOOL: &[(&str, &str)] = &[
    ("*NAME*", "name"),
    ("*USER*", "user"),
    ("*GROUP*", "group"),
    ("*PIDFILE*", "pid-file"),
    ("*FASLDIR*", "fasl-dir"),
    ("*DYNAMIC-SPACE-SIZE*", "dynamic-space-size"),
    ("*CONTROL-STACK-SIZE*", "control-stack-size"),
    ("*LISP-OPTIONS*", "lisp-options"),
    ("*CORE*", "core"),
];

/// A restas-daemon conf read as a plist conf: the text (what `migrate`
/// prints), and what its values were derived from where restas-daemon's
/// defaults gave them.
pub struct Migrated {
    pub text: String,
    /// Plist keys whose value restas-daemon derived, and how (for messages).
    pub derived: Vec<(&'static str, String)>,
}

/// The values the tool reads of `settings`, as a spec: each variable's last
/// setting, read as its plist key reads a value. Of several wrong values,
/// the first in the file is reported.
fn read_by_tool(settings: &[Setting], source: &Arc<Source>) -> Result<DaemonSpec, ConfError> {
    let mut spec = DaemonSpec::default();
    let mut wrong: Option<(ConfErrorKind, Span)> = None;
    for (var, key) in READ_BY_TOOL {
        let Some(setting) = settings.iter().rev().find(|s| s.var == *var) else {
            continue;
        };
        let Some(value) = setting.value else { continue };
        // The value is evaluated by restas-daemon: a quoted list is data.
        let form = match &value.datum {
            Datum::Macro(Macro::Quote, inner) => inner,
            Datum::List { items, tail: None }
                if items.len() == 2
                    && matches!(&items[0].datum, Datum::Symbol(s) if s == "QUOTE") =>
            {
                &items[1]
            }
            _ => value,
        };
        let at = ValueAt {
            form,
            source,
            key: format!(
                "{} (the tool needs it before any Lisp runs)",
                var.to_lowercase()
            ),
        };
        let table = keys::lookup(key).expect("a key of the table");
        if let Err((kind, span)) = table.kind.apply(&at, &mut spec)
            && wrong
                .as_ref()
                .is_none_or(|(_, w)| span.start.offset < w.start.offset)
        {
            wrong = Some((kind, span));
        }
    }
    match wrong {
        Some((kind, span)) => Err(ConfError::at(kind, span, source)),
        None => Ok(spec),
    }
}

/// The extension keys a restas-daemon conf set (its runtime options and
/// core), one per line.
fn extension_keys(spec: &DaemonSpec) -> String {
    let mut text = String::new();
    let sizes = [
        ("dynamic-space-size", spec.dynamic_space_size),
        ("control-stack-size", spec.control_stack_size),
    ];
    for (key, megabytes) in sizes {
        if let Some(megabytes) = megabytes {
            let _ = writeln!(text, " :{key} {megabytes}");
        }
    }
    if !spec.lisp_options.is_empty() {
        let options: Vec<String> = spec.lisp_options.iter().map(|o| lisp_string(o)).collect();
        let _ = writeln!(text, " :lisp-options ({})", options.join(" "));
    }
    match &spec.core {
        Some(CoreFile::Auto) => text.push_str(" :core :auto\n"),
        Some(CoreFile::Path(path)) => {
            let _ = writeln!(text, " :core {}", lisp_string(&path.display().to_string()));
        }
        None => {}
    }
    text
}

pub fn translate(source: &Arc<Source>, forms: &[Form]) -> Result<Migrated, ConfError> {
    let fail = |kind, span| ConfError::at(kind, span, source);
    let mut settings = Vec::with_capacity(forms.len());
    for form in forms {
        settings.push(setting(form, source).map_err(|kind| fail(kind, form.span))?);
    }
    let spec = read_by_tool(&settings, source)?;
    let Some(name) = spec.name.clone() else {
        return Err(fail(ConfErrorKind::RestasNoName, forms[0].span));
    };
    let mut derived = Vec::new();
    let user = spec.user.clone().unwrap_or_else(|| {
        derived.push((
            "user",
            format!(
                "*user* defaults to *name* {} in a restas-daemon conf",
                lisp_string(&name)
            ),
        ));
        name.clone()
    });
    let path = |p: &Option<PathBuf>, default: String| {
        p.as_ref().map_or(default, |p| p.display().to_string())
    };
    let pid_file = path(&spec.pid_file, format!("/var/run/{name}/{name}.pid"));
    let fasl_dir = path(&spec.fasl_dir, format!("/var/cache/{name}/fasl/"));

    let mut bindings = String::new();
    for s in &settings {
        let value = s.value.map_or("nil", |v| source.slice(v.span));
        let _ = write!(
            bindings,
            "\n         ({} {value})",
            source.slice(s.var_form.span)
        );
    }
    let unknown: Vec<&str> = settings
        .iter()
        .map(|s| s.var.as_str())
        .filter(|v| !KNOWN.contains(v) && !READ_BY_TOOL.iter().any(|(r, _)| r == v))
        .collect();
    let main = MAIN.trim_end().replace("\n         @BINDINGS@", &bindings);
    let preload = PRELOAD
        .trim_end()
        .replace("\n         @BINDINGS@", &bindings);
    let mut text = header(source, &unknown);
    let _ = write!(
        text,
        "(:name {name}\n \
         ;; restas-daemon's defaults: *user* = *name*, the pid file in /var/run/NAME/,\n \
         ;; the ASDF fasl cache in /var/cache/NAME/fasl/ (created and given to the user).\n \
         :user {user}\n \
         :group {group}\n \
         :pid-file {pid_file}\n \
         :fasl-dir {fasl_dir}\n \
         :listen-privileged-ports t\n",
        name = lisp_string(&name),
        user = lisp_string(&user),
        group = spec.group.as_deref().map_or("nil".to_string(), lisp_string),
        pid_file = lisp_string(&pid_file),
        fasl_dir = lisp_string(&fasl_dir),
    );
    text.push_str(&extension_keys(&spec));
    let _ = writeln!(text, " :preload (#.{preload})");
    let _ = writeln!(text, " :main-function #.{main})");
    Ok(Migrated { text, derived })
}
