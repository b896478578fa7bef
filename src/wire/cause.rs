//! The cause pipe: the last word of a supervised Lisp, written by the
//! bootstrap just before it exits on an error (one line, at most
//! `MAX_CAUSE` bytes), read by its supervisor when it has ended, so the
//! record says why it died in words a user acts on.
//!
//! | line | meaning |
//! |---|---|
//! | `heap-exhausted` | it ran out of heap (a storage condition that is not the stack's) |
//! | `stack-exhausted` | it ran out of control stack |
//! | `error TEXT` | a function of the conf signalled: which, and the condition's first line |
//! | `thread-error TEXT` | an unhandled error in a thread of its own: the first line |

use std::fmt;
use std::str::FromStr;

/// The longest line taken.
pub const MAX_CAUSE: usize = 1024;

/// Why a Lisp exited, in its own words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cause {
    HeapExhausted,
    StackExhausted,
    Error(String),
    ThreadError(String),
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::HeapExhausted => f.write_str("heap-exhausted"),
            Cause::StackExhausted => f.write_str("stack-exhausted"),
            Cause::Error(text) => write!(f, "error {}", text.replace('\n', " ")),
            Cause::ThreadError(text) => write!(f, "thread-error {}", text.replace('\n', " ")),
        }
    }
}

/// A line that is no cause.
#[derive(Debug, PartialEq, Eq)]
pub struct NotACause;

impl FromStr for Cause {
    type Err = NotACause;

    fn from_str(text: &str) -> Result<Cause, NotACause> {
        let line = text.lines().next().ok_or(NotACause)?;
        if line.len() > MAX_CAUSE {
            return Err(NotACause);
        }
        let (head, rest) = line.split_once(' ').unwrap_or((line, ""));
        Ok(match (head, rest.is_empty()) {
            ("heap-exhausted", true) => Cause::HeapExhausted,
            ("stack-exhausted", true) => Cause::StackExhausted,
            ("error", false) => Cause::Error(rest.to_string()),
            ("thread-error", false) => Cause::ThreadError(rest.to_string()),
            _ => return Err(NotACause),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_round_trips() {
        for cause in [
            Cause::HeapExhausted,
            Cause::StackExhausted,
            Cause::Error(":main-function: no database at db:5432".into()),
            Cause::ThreadError("the value NIL is not of type NUMBER".into()),
        ] {
            assert_eq!(cause.to_string().parse(), Ok(cause.clone()), "{cause}");
        }
        for bad in [
            "",
            "heap-exhausted now",
            "error",
            "oops x",
            &"error x".repeat(400),
        ] {
            assert_eq!(bad.parse::<Cause>(), Err(NotACause), "{bad:?}");
        }
    }

    /// The words the bootstrap writes are causes.
    #[test]
    fn the_bootstrap_speaks_the_causes() {
        let bootstrap = include_str!("../plan/bootstrap.lisp");
        for word in ["heap-exhausted", "stack-exhausted", "error", "thread-error"] {
            assert!(bootstrap.contains(&format!("\"{word}\"")), "{word}");
        }
        assert!(bootstrap.contains("(defun tell-cause "));
    }
}
