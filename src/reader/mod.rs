//! A Common Lisp reader subset for conf files.
//!
//! Reads what the standard readtable reads in practice in a conf file, as the
//! Lisp that will run the daemon would read it, and keeps the span of every
//! form so code can be passed on verbatim. Pure: text in, forms out; and
//! `print`, its inverse for the strings the tool writes for a Lisp.

mod error;
mod features;
mod form;
mod parser;
mod print;
mod span;
mod token;

pub use error::{Found, ReadError, ReadErrorKind, Unclosed};
pub use features::Features;
pub use form::{Datum, Form, Macro, Number};
pub use parser::{NEST_LIMIT, read_all};
pub use print::lisp_string;
pub use span::{Position, Span};

#[cfg(test)]
mod random_tests;
#[cfg(test)]
mod tests;
