//! Reader errors: what was expected, what was found, and where.
//!
//! The kind holds no location; `ReadError` pairs it with a span, and the
//! caller adds the file name when it renders the error (see `crate::source`).

use std::fmt;

use thiserror::Error;

use super::span::Span;

/// A reader error at a span of the text.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{kind}")]
pub struct ReadError {
    pub kind: ReadErrorKind,
    pub span: Span,
}

/// What went wrong while reading. Each variant renders to one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadErrorKind {
    /// A form was needed (after `'`, `#'`, `#.`, `#+x`, at top level...).
    ExpectedForm {
        after: Option<&'static str>,
        found: Found,
    },
    /// A list, vector, string, `|...|` or `#|...|#` was not closed.
    Unclosed {
        what: Unclosed,
        opened_at: (usize, usize),
    },
    /// `(a . b c)` or `(. a)`.
    BadDot,
    /// A token made only of dots, such as `..`.
    TooManyDots,
    /// A `.` outside a list.
    DotOutsideList,
    /// `a:b:c`, `foo:::bar`, `foo:`.
    BadPackageMarker(String),
    /// `#:foo:bar`.
    QualifiedUninterned(String),
    /// `#\foo` with an unknown name.
    UnknownCharName(String),
    /// `#Z`: no such dispatch character.
    UnknownDispatch(char),
    /// A dispatch macro we deliberately do not read (`#1=`, `#A`, `#S`, ...).
    UnsupportedDispatch(char),
    /// `#` at the end of the text, or followed by whitespace.
    DispatchWithoutChar,
    /// `#x12g`, `#b2`, `#36r`-style with bad digits, or `#5r` without a token.
    BadRational { base: u32, text: String },
    /// `#40r`, `#1r`, `#r`.
    BadRadix(Option<u64>),
    /// `1/0`.
    DivisionByZero(String),
    /// `1e999`.
    FloatOutOfRange(String),
    /// `#P` not followed by a string.
    PathnameNotString,
    /// `#*012`.
    BadBitVector(String),
    /// `#+` or `#-` with something other than a keyword or `and`/`or`/`not` list.
    BadFeatureExpression,
    /// `\` at the very end of the text.
    EscapeAtEnd,
    /// An invalid constituent character (Backspace, Rubout) in a token.
    InvalidCharacter(char),
    /// Lists nested deeper than the reader allows.
    TooDeep(usize),
}

/// What the reader found where it expected something else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    EndOfFile,
    Char(char),
    Dot,
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Found::EndOfFile => f.write_str("end of file"),
            Found::Char(c) => write!(f, "\"{c}\""),
            Found::Dot => f.write_str("\".\""),
        }
    }
}

/// The things that must be closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unclosed {
    List,
    Vector,
    String,
    Escape,
    Comment,
}

impl fmt::Display for ReadErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ReadErrorKind::*;
        match self {
            ExpectedForm { after: None, found } => write!(f, "expected a form but found {found}"),
            ExpectedForm {
                after: Some(after),
                found,
            } => write!(f, "expected a form after \"{after}\" but found {found}"),
            Unclosed { what, opened_at } => {
                let (closer, name) = match what {
                    self::Unclosed::List => ("\")\"", "the list"),
                    self::Unclosed::Vector => ("\")\"", "the vector"),
                    self::Unclosed::String => ("\"\\\"\"", "the string"),
                    self::Unclosed::Escape => ("\"|\"", "the escaped symbol name"),
                    self::Unclosed::Comment => ("\"|#\"", "the comment"),
                };
                write!(
                    f,
                    "expected {closer} to close {name} opened at {}:{} but found end of file",
                    opened_at.0, opened_at.1
                )
            }
            BadDot => f.write_str("expected a form before \".\" and exactly one form after it"),
            TooManyDots => f.write_str("a token made only of dots is not allowed"),
            DotOutsideList => f.write_str("\".\" is only allowed inside a list"),
            BadPackageMarker(t) => write!(f, "bad package marker in symbol \"{t}\""),
            QualifiedUninterned(t) => {
                write!(f, "an uninterned symbol cannot have a package: \"#:{t}\"")
            }
            UnknownCharName(n) => write!(f, "unknown character name \"{n}\""),
            UnknownDispatch(c) => write!(f, "unknown reader macro \"#{c}\""),
            UnsupportedDispatch(c) => {
                write!(
                    f,
                    "the reader macro \"#{c}\" is not supported in conf files"
                )
            }
            DispatchWithoutChar => f.write_str("expected a character after \"#\""),
            BadRational { base, text } => {
                write!(
                    f,
                    "expected a rational number in base {base} but found \"{text}\""
                )
            }
            BadRadix(Some(r)) => write!(f, "expected a radix from 2 to 36 in \"#r\" but found {r}"),
            BadRadix(None) => f.write_str("expected a radix from 2 to 36 before \"r\" in \"#r\""),
            DivisionByZero(t) => write!(f, "division by zero in the ratio \"{t}\""),
            FloatOutOfRange(t) => write!(f, "the float \"{t}\" is out of range"),
            PathnameNotString => f.write_str("expected a string after \"#P\""),
            BadBitVector(t) => write!(f, "expected only 0 and 1 in the bit vector \"#*{t}\""),
            BadFeatureExpression => f.write_str(
                "expected a feature expression (a keyword, or a list starting with and, or, not)",
            ),
            InvalidCharacter(c) => {
                write!(
                    f,
                    "invalid character {} in a symbol or number",
                    c.escape_unicode()
                )
            }
            EscapeAtEnd => f.write_str("expected a character after \"\\\" but found end of file"),
            TooDeep(limit) => write!(f, "forms are nested deeper than {limit} levels"),
        }
    }
}
