//! Source positions and spans.
//!
//! Every form the reader produces carries the span of its source text, so Lisp
//! code can later be handed to the Lisp verbatim and errors can point at the
//! exact place. Offsets are byte offsets into the text; lines and columns are
//! 1-based, columns count characters, as a user counts them in an editor.

use std::fmt;

/// One place in a source text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// Byte offset from the start of the text.
    pub offset: usize,
    /// 1-based line number.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

impl Position {
    /// The start of a text.
    pub const START: Position = Position {
        offset: 0,
        line: 1,
        column: 1,
    };
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// The half-open range `[start, end)` of a piece of source text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub start: Position,
    pub end: Position,
}

impl Span {
    pub fn new(start: Position, end: Position) -> Span {
        Span { start, end }
    }

    /// The text this span covers.
    pub fn text<'a>(&self, source: &'a str) -> &'a str {
        &source[self.start.offset..self.end.offset]
    }
}
