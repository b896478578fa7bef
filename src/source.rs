//! Source files and located diagnostics.
//!
//! Every error about a conf file is shown the same way: `file:line:col:`,
//! the message, the source line and a caret under the span.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::reader::Span;

/// A text and the path it was read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub path: PathBuf,
    pub text: Arc<str>,
}

impl Source {
    pub fn new(path: impl Into<PathBuf>, text: impl Into<Arc<str>>) -> Source {
        Source {
            path: path.into(),
            text: text.into(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The text a span covers.
    pub fn slice(&self, span: Span) -> &str {
        span.text(&self.text)
    }

    /// Renders `message` at `span`: the location line, the source line and a
    /// caret (one per character of the span on that line, at least one).
    pub fn render(&self, span: Span, message: &str) -> String {
        let start = span.start;
        let mut out = format!(
            "{}:{}:{}: {message}",
            self.path.display(),
            start.line,
            start.column
        );
        let line_start = self.text[..start.offset].rfind('\n').map_or(0, |i| i + 1);
        let line_end = self.text[start.offset..]
            .find('\n')
            .map_or(self.text.len(), |i| start.offset + i);
        let line = self.text[line_start..line_end].trim_end_matches('\r');
        let gutter = start.line.to_string();
        let pad = " ".repeat(gutter.len());
        // Tabs are kept in the caret line so the caret lines up in a terminal.
        let indent: String = self.text[line_start..start.offset]
            .chars()
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        let width = self.text[start.offset..span.end.offset.min(line_end).max(start.offset)]
            .chars()
            .count()
            .max(1);
        let _ = write!(
            out,
            "\n{pad} |\n{gutter} | {line}\n{pad} | {indent}{}",
            "^".repeat(width)
        );
        out
    }
}
