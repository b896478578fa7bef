//! restas-daemon confs: files of `(defparameter *var* value)` forms, as
//! `restas-daemon.lisp` ran them, translated to the equivalent plist conf
//! (what `migrate` prints). The tool reads only what it needs before any
//! Lisp runs (name, user, group, pid file, fasl dir: literal strings); every
//! value is also bound, verbatim and in order, in the generated main
//! function (`restas-main.lisp`), where the Lisp evaluates it.

use std::fmt::Write as _;

use super::error::{ConfError, ConfErrorKind};
use crate::reader::lisp_string;
use crate::reader::{Datum, Form};
use crate::source::Source;
use std::sync::Arc;

const MAIN: &str = include_str!("restas-main.lisp");

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

/// The plist conf equivalent to the restas-daemon conf `forms` of `source`.
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

pub fn translate(source: &Arc<Source>, forms: &[Form]) -> Result<String, ConfError> {
    let fail = |kind, span| ConfError::at(kind, span, source);
    let mut settings = Vec::with_capacity(forms.len());
    for form in forms {
        settings.push(setting(form, source).map_err(|kind| fail(kind, form.span))?);
    }
    // What the tool itself needs: literal strings (or nil), read here.
    let literal = |var: &str| -> Result<Option<(String, &Form)>, ConfError> {
        let Some(s) = settings.iter().rev().find(|s| s.var == var) else {
            return Ok(None);
        };
        match s.value.map(|v| &v.datum) {
            None | Some(Datum::Nil) => Ok(None),
            Some(Datum::String(text)) => Ok(Some((text.clone(), s.var_form))),
            Some(_) => {
                let value = s.value.expect("matched Some");
                let kind = ConfErrorKind::RestasLiteral {
                    var: var.to_lowercase(),
                    found: source.slice(value.span).to_string(),
                };
                Err(fail(kind, value.span))
            }
        }
    };
    let Some((name, _)) = literal("*NAME*")? else {
        return Err(fail(ConfErrorKind::RestasNoName, forms[0].span));
    };
    let user = literal("*USER*")?.map_or_else(|| name.clone(), |(u, _)| u);
    let group = literal("*GROUP*")?.map(|(g, _)| g);
    let pid_file =
        literal("*PIDFILE*")?.map_or_else(|| format!("/var/run/{name}/{name}.pid"), |(p, _)| p);
    let fasl_dir =
        literal("*FASLDIR*")?.map_or_else(|| format!("/var/cache/{name}/fasl/"), |(f, _)| f);

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
        .filter(|v| !KNOWN.contains(v))
        .collect();
    let main = MAIN.trim_end().replace("\n         @BINDINGS@", &bindings);
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
         :listen-privileged-ports t\n \
         :main-function #.{main})\n",
        name = lisp_string(&name),
        user = lisp_string(&user),
        group = group.as_deref().map_or("nil".to_string(), lisp_string),
        pid_file = lisp_string(&pid_file),
        fasl_dir = lisp_string(&fasl_dir),
    );
    Ok(text)
}
