//! Printing Lisp data: the inverse of the reader, for what the tool writes
//! for a Lisp to read (the bootstrap's parameters, log lines, result
//! property lists, migrated confs).

/// A Lisp string literal for `s`.
pub fn lisp_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}
