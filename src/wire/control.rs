//! The control socket's protocol, between the tool (`daemon::control`) and
//! the daemon's image (`src/plan/control.lisp`, checked against this file
//! by a test).
//!
//! One message a line: `WORD` or `WORD TEXT`, the text escaped (`\\`, `\n`,
//! `\r`). The daemon greets; every request then gets zero or more `out`,
//! `value`, `fact` and `error` replies and one `done`.
//!
//! | from | line | meaning |
//! |---|---|---|
//! | daemon | `hello PID PACKAGE` | the greeting: its pid, the session's package |
//! | tool | `eval TEXT` | read and evaluate the forms of TEXT, one by one |
//! | tool | `interrupt` | interrupt the form being evaluated (heard during an `eval`) |
//! | tool | `package NAME` | the session's package, for the next `eval`s |
//! | tool | `status` | what only the image knows, as `fact`s |
//! | tool | `ping` | the watchdog's question (`:watchdog-check` decides) |
//! | tool | `reload` | call `:reload-function` |
//! | tool | `swank` | the connection becomes a swank connection (SLIME) |
//! | daemon | `out TEXT` | what a form wrote to `*standard-output*` |
//! | daemon | `value TEXT` | a value, as the Lisp prints it |
//! | daemon | `fact KEY TEXT` | a fact of `status` |
//! | daemon | `error TEXT` | the condition a form (or the request) signalled |
//! | daemon | `done PACKAGE` | the request is answered; the session's package now |
//!
//! Everything the daemon sends is untrusted (its code may be an
//! attacker's): a line is at most `MAX_LINE` bytes, an answer at most
//! `MAX_ANSWER`, and a word out of place breaks the connection.

use std::fmt;

/// The longest reply line read.
pub const MAX_LINE: usize = 1 << 20;

/// The most bytes one request's answer may take.
pub const MAX_ANSWER: usize = 16 << 20;

/// Every word of the protocol (for the test against control.lisp).
pub const WORDS: &[&str] = &[
    "hello",
    "eval",
    "interrupt",
    "package",
    "status",
    "ping",
    "reload",
    "swank",
    "out",
    "value",
    "fact",
    "error",
    "done",
];

/// A request of the tool's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    Eval(&'a str),
    Interrupt,
    Package(&'a str),
    Status,
    Ping,
    Reload,
    Swank,
}

impl Request<'_> {
    /// Its line, newline included.
    pub fn line(&self) -> String {
        match self {
            Request::Eval(text) => format!("eval {}\n", escape(text)),
            Request::Interrupt => "interrupt\n".into(),
            Request::Package(name) => format!("package {}\n", escape(name)),
            Request::Status => "status\n".into(),
            Request::Ping => "ping\n".into(),
            Request::Reload => "reload\n".into(),
            Request::Swank => "swank\n".into(),
        }
    }
}

/// A line of the daemon's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Hello { pid: i32, package: String },
    Out(String),
    Value(String),
    Fact { key: String, value: String },
    Error(String),
    Done { package: String },
}

/// A line that is not one of the protocol's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broken(pub String);

impl std::error::Error for Broken {}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the daemon broke the control protocol: {}",
            crate::visible::line(&self.0)
        )
    }
}

impl Reply {
    /// The reply of one line (without its newline).
    pub fn parse(line: &str) -> Result<Reply, Broken> {
        let broken = || {
            let shown: String = line.chars().take(60).collect();
            Broken(shown)
        };
        let (word, rest) = match line.split_once(' ') {
            Some((word, rest)) => (word, Some(rest)),
            None => (line, None),
        };
        let text = rest.map(unescape);
        Ok(match (word, text) {
            ("hello", Some(text)) => {
                let (pid, package) = text.split_once(' ').ok_or_else(broken)?;
                Reply::Hello {
                    pid: pid.parse().map_err(|_| broken())?,
                    package: package.to_string(),
                }
            }
            ("out", Some(text)) => Reply::Out(text),
            ("value", Some(text)) => Reply::Value(text),
            ("fact", Some(text)) => {
                let (key, value) = text.split_once(' ').ok_or_else(broken)?;
                if key.is_empty()
                    || key.len() > 40
                    || !key.chars().all(|c| c.is_ascii_lowercase() || c == '-')
                {
                    return Err(broken());
                }
                Reply::Fact {
                    key: key.to_string(),
                    value: value.to_string(),
                }
            }
            ("error", Some(text)) => Reply::Error(text),
            ("done", Some(package)) => Reply::Done { package },
            _ => return Err(broken()),
        })
    }
}

/// `text` on one line: `\` and line breaks escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// What `escape` made, as it was.
pub fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (c, c == '\\') {
            (_, true) => match chars.next() {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            },
            (c, false) => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips() {
        for text in ["", "a b", "x\ny\\n\r", "\\", "λ \"q\""] {
            assert_eq!(unescape(&escape(text)), text);
            assert!(!escape(text).contains('\n'));
        }
    }

    #[test]
    fn replies_parse_and_bad_ones_break() {
        assert_eq!(
            Reply::parse("hello 42 COMMON-LISP-USER"),
            Ok(Reply::Hello {
                pid: 42,
                package: "COMMON-LISP-USER".into()
            })
        );
        assert_eq!(Reply::parse("out a\\nb"), Ok(Reply::Out("a\nb".into())));
        assert_eq!(
            Reply::parse("fact heap-used 12"),
            Ok(Reply::Fact {
                key: "heap-used".into(),
                value: "12".into()
            })
        );
        for bad in [
            "",
            "done",
            "hello x P",
            "hello 1",
            "fact X 1",
            "value",
            "ready",
            "out",
        ] {
            assert!(Reply::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Request::Eval("(+ 1\n2)").line(), "eval (+ 1\\n2)\n");
    }

    /// The daemon's side speaks these words and no others.
    #[test]
    fn the_lisp_side_knows_the_words() {
        let lisp = crate::plan::CONTROL;
        for word in WORDS {
            assert!(
                lisp.contains(&format!("\"{word}\"")),
                "control.lisp lacks {word:?}"
            );
        }
    }
}
