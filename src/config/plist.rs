//! Property lists: a list form → its key/value pairs, with located errors
//! for a non-list, an odd length, a key that is not a keyword, an unknown
//! key and a repeated key.

use super::error::ConfErrorKind;
use super::error::Fail;
use crate::reader::{Datum, Form};
use crate::source::Source;

/// One key/value pair: the key's table name, the key form, the value form.
pub type Entry<'f> = (&'static str, &'f Form, &'f Form);

/// The pairs of the property list `form`, whose keys must be among `allowed`
/// (lower-case keyword names). `nested_in` names the enclosing key, if any.
pub fn entries<'f>(
    form: &'f Form,
    source: &Source,
    allowed: &'static [&'static str],
    nested_in: Option<&str>,
) -> Result<Vec<Entry<'f>>, Fail> {
    let items: &[Form] = match &form.datum {
        Datum::Nil => &[],
        Datum::List { items, tail: None } => items,
        _ => {
            let found = source.slice(form.span).to_string();
            let kind = ConfErrorKind::NotPlist {
                found,
                nested_in: nested_in.map(str::to_string),
            };
            return Err((kind, form.span));
        }
    };
    let mut pairs: Vec<Entry<'f>> = Vec::with_capacity(items.len() / 2);
    for chunk in items.chunks(2) {
        let key = &chunk[0];
        let written = source.slice(key.span).to_string();
        let Datum::Keyword(name) = &key.datum else {
            // A list where a key goes, after a value that is a list: the
            // value's parenthesis was most likely closed too early.
            let after_list = pairs
                .last()
                .is_some_and(|(_, _, value)| source.slice(value.span).ends_with(')'));
            let early_close = (after_list && matches!(key.datum, Datum::List { .. }))
                .then_some((form.span.start.line, form.span.start.column));
            let kind = ConfErrorKind::ExpectedKey {
                found: written,
                early_close,
            };
            return Err((kind, key.span));
        };
        let Some(&known) = allowed.iter().find(|a| a.eq_ignore_ascii_case(name)) else {
            let kind = ConfErrorKind::UnknownKey {
                key: written,
                known: allowed,
                nested_in: nested_in.map(str::to_string),
            };
            return Err((kind, key.span));
        };
        if let Some((_, first, _)) = pairs.iter().find(|(n, _, _)| *n == known) {
            let at = first.span.start;
            let kind = ConfErrorKind::RepeatedKey {
                key: written,
                first: (at.line, at.column),
            };
            return Err((kind, key.span));
        }
        let Some(value) = chunk.get(1) else {
            return Err((ConfErrorKind::MissingValue { key: written }, key.span));
        };
        pairs.push((known, key, value));
    }
    Ok(pairs)
}
