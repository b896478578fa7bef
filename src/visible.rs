//! The one escaping rule for text that came from a Lisp or from a file a
//! user owns (a condition's text, a reload or build report, the daemon's
//! output in `log` and `status -v`, names of confs): whatever a daemon's
//! code writes must not move root's cursor, rewrite a line already
//! printed, ring, retitle the terminal or fake one of the tool's own lines.
//!
//! Every control character but newline and tab, and the Unicode
//! characters that reorder, break or hide text (bidirectional marks,
//! overrides and isolates, the line and paragraph separators, zero-width
//! space, word joiner and byte-order mark), is shown as a Rust escape: `\x1b` for ESC, `\r`, `\x07`, `\u{9b}`, `\u{202e}`. In a
//! block of several lines, each line after the first is indented by two
//! spaces, so none of them begins like `success started`, `ERROR:` or any
//! other line of the tool's.

use std::fmt::Write as _;

/// Whether `c` is shown escaped.
fn hidden(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(
            c,
            // Unicode's format characters (Cf), the line and paragraph
            // separators and the invisible fillers; the joiners of emoji
            // and scripts (U+200C, U+200D) are left alone.
            '\u{ad}'
                | '\u{600}'..='\u{605}'
                | '\u{61c}'
                | '\u{6dd}'
                | '\u{70f}'
                | '\u{115f}'
                | '\u{1160}'
                | '\u{180e}'
                | '\u{200b}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206f}'
                | '\u{3164}'
                | '\u{feff}'
                | '\u{ffa0}'
                | '\u{fff9}'..='\u{fffb}'
                | '\u{e0001}'
                | '\u{e0020}'..='\u{e007f}'
        )
}

fn escape_into(out: &mut String, c: char) {
    match c {
        '\r' => out.push_str("\\r"),
        c if (c as u32) < 0x80 => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
}

/// `text` as a block: controls escaped, lines after the first indented.
pub fn block(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\n  "),
            c if hidden(c) => escape_into(&mut out, c),
            c => out.push(c),
        }
    }
    out
}

/// `text` as (part of) one line: controls escaped, newlines too (`\n`).
pub fn line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            c if hidden(c) => escape_into(&mut out, c),
            c => out.push(c),
        }
    }
    out
}

/// `text` as `line` shows it, at most `max` characters of it (and `...`
/// when cut).
pub fn short_line(text: &str, max: usize) -> String {
    let shown: String = text.chars().take(max).collect();
    let cut = shown.len() < text.len();
    let mut out = line(&shown);
    if cut {
        out.push_str("...");
    }
    out
}

/// `text` as `line` shows it, in at most `max` bytes (`...` included
/// when cut): a bound on what is stored, whatever the characters (an
/// escape is up to 10 bytes for one character).
pub fn line_within(text: &str, max: usize) -> String {
    let whole = line(text);
    if whole.len() <= max {
        return whole;
    }
    let mut out = String::with_capacity(max);
    let mut one = String::new();
    for c in text.chars() {
        one.clear();
        match c {
            '\n' => one.push_str("\\n"),
            c if hidden(c) => escape_into(&mut one, c),
            c => one.push(c),
        }
        if out.len() + one.len() + 3 > max {
            break;
        }
        out.push_str(&one);
    }
    out.push_str("...");
    out
}

/// `text` as the daemon wrote it, but its controls shown: newlines and
/// tabs kept, no indentation (`log`).
pub fn output(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            c if hidden(c) => escape_into(&mut out, c),
            c => out.push(c),
        }
    }
    out
}

/// A writer that shows what passes through it as `output` does; a
/// character split between two writes is held until it is whole, and
/// bytes that are not UTF-8 are shown as U+FFFD.
pub struct Shown<W: std::io::Write> {
    inner: W,
    held: Vec<u8>,
}

impl<W: std::io::Write> Shown<W> {
    pub fn new(inner: W) -> Shown<W> {
        Shown {
            inner,
            held: Vec::new(),
        }
    }
}

impl<W: std::io::Write> std::io::Write for Shown<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.held.extend_from_slice(bytes);
        let whole = match std::str::from_utf8(&self.held) {
            Ok(_) => self.held.len(),
            // An incomplete character at the end waits for its rest.
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => self.held.len(),
        };
        let text = String::from_utf8_lossy(&self.held[..whole]).into_owned();
        self.held.drain(..whole);
        self.inner.write_all(output(&text).as_bytes())?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_shown_and_no_line_begins_like_ours() {
        assert_eq!(line("plain text\twith a tab"), "plain text\twith a tab");
        assert_eq!(
            line("\x1b[2K\rsuccess started\x07\u{9b}\u{202e}"),
            "\\x1b[2K\\rsuccess started\\x07\\u{9b}\\u{202e}"
        );
        assert_eq!(line("two\nlines"), "two\\nlines");
        assert_eq!(line("\x7f\0"), "\\x7f\\x00");
        assert_eq!(
            block("boom\nsuccess started (pid = 1)\n\x1b]0;title\x07"),
            "boom\n  success started (pid = 1)\n  \\x1b]0;title\\x07"
        );
        // Shown text is shown again unchanged: the rule is applied once,
        // wherever the text passes.
        let once = line("\x1b[31mred");
        assert_eq!(line(&once), once);
        assert_eq!(block("ünïcødé ok"), "ünïcødé ok");
        assert_eq!(output("a\tb\n\x1b[1mc\n"), "a\tb\n\\x1b[1mc\n");
        // What reorders, breaks or hides text is shown too; an emoji's
        // joiner is left alone.
        assert_eq!(
            line("a\u{2028}b\u{200b}c\u{feff}\u{61c}d\u{2060}\u{ad}\u{e0041}"),
            "a\\u{2028}b\\u{200b}c\\u{feff}\\u{61c}d\\u{2060}\\u{ad}\\u{e0041}"
        );
        assert_eq!(line("👩\u{200d}💻"), "👩\u{200d}💻");
    }

    /// A C1 control split between two writes is still shown escaped.
    #[test]
    fn the_writer_shows_characters_split_across_writes() {
        use std::io::Write as _;
        let mut out = Shown::new(Vec::new());
        let csi = "\u{9b}".as_bytes();
        out.write_all(&[b'x', csi[0]]).unwrap();
        out.write_all(&[csi[1], b'\x07', b'\n']).unwrap();
        assert_eq!(String::from_utf8(out.inner).unwrap(), "x\\u{9b}\\x07\n");
    }
}
