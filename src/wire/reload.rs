//! The reload protocol: what the bootstrap writes on the daemon's reload
//! pipe for each SIGHUP (`tell-reload` in `bootstrap.lisp`), read by
//! `reload`:
//!
//! | words | meaning |
//! |---|---|
//! | `reloaded TAG` | `:reload-function` returned |
//! | `error TAG`, the report, `end-of-report` | it signalled: its report (a condition's text and backtrace) |
//!
//! TAG is the number the SIGHUP carried (0 from a Lisp that cannot read
//! it, or from a plain `kill -HUP`): a verdict with another tag is an
//! earlier reload's, skipped. Anything else where a verdict may start, a
//! line over `MAX_LINE`, or more than `MAX_VERDICT` in all is garbled.

use std::fmt;

/// The most a reload reads (an error report with its backtrace).
pub const MAX_VERDICT: usize = 256 * 1024;
/// The longest line of a verdict's words (a report's lines may be longer,
/// within `MAX_VERDICT`).
pub const MAX_LINE: usize = 64;
const END: &str = "end-of-report";

/// A reload's verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Reloaded,
    /// The report of the condition `:reload-function` signalled.
    Failed(String),
}

/// What the pipe's text says of this reload so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Heard {
    Verdict(Verdict),
    /// Not yet complete.
    NotYet,
    /// Not the protocol: a word out of place, too long or too much.
    Garbled,
}

/// One verdict as the bootstrap writes it, for `tag`.
pub struct Tagged<'a>(pub &'a Verdict, pub i32);

impl fmt::Display for Tagged<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Verdict::Reloaded => writeln!(f, "reloaded {}", self.1),
            Verdict::Failed(report) => writeln!(f, "error {}\n{report}\n{END}", self.1),
        }
    }
}

/// This reload's verdict in `text` (what the pipe said so far): the first
/// `reloaded TAG` or `error TAG` with its report that carries `tag` (or 0,
/// when `untagged`).
pub fn hear(text: &[u8], tag: i32, untagged: bool) -> Heard {
    if text.len() > MAX_VERDICT {
        return Heard::Garbled;
    }
    let text = String::from_utf8_lossy(text);
    let mut rest: &str = &text;
    loop {
        let Some((head, after)) = rest.split_once('\n') else {
            return match rest.len() > MAX_LINE && !rest.starts_with("error ") {
                true => Heard::Garbled,
                false => Heard::NotYet,
            };
        };
        if head.len() > MAX_LINE {
            return Heard::Garbled;
        }
        let (word, number) = head.split_once(' ').unwrap_or((head, ""));
        let Ok(number) = number.parse::<i32>() else {
            return Heard::Garbled;
        };
        let ours = number == tag || (untagged && number == 0);
        match word {
            "reloaded" if ours => return Heard::Verdict(Verdict::Reloaded),
            "reloaded" => rest = after,
            "error" => {
                let Some(end) = after.find(&format!("{END}\n")) else {
                    return Heard::NotYet;
                };
                if ours {
                    let report = after[..end].trim_end().to_string();
                    return Heard::Verdict(Verdict::Failed(report));
                }
                rest = &after[end + END.len() + 1..];
            }
            _ => return Heard::Garbled,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_round_trip_and_are_this_reloads() {
        for verdict in [
            Verdict::Reloaded,
            Verdict::Failed("boom\nBacktrace:\n  x".into()),
        ] {
            let text = Tagged(&verdict, 7).to_string();
            assert_eq!(
                hear(text.as_bytes(), 7, false),
                Heard::Verdict(verdict.clone())
            );
            // Complete only with its last line.
            let cut = &text.as_bytes()[..text.len() - 1];
            assert_eq!(hear(cut, 7, false), Heard::NotYet, "{text:?}");
        }
        let failed = |r: &str| Heard::Verdict(Verdict::Failed(r.into()));
        // An earlier reload's verdict (a kill -HUP's: 0) is not this one's.
        assert_eq!(hear(b"reloaded 0\n", 7, false), Heard::NotYet);
        assert_eq!(
            hear(b"reloaded 3\nerror 7\nbad\nend-of-report\n", 7, false),
            failed("bad")
        );
        assert_eq!(
            hear(b"error 3\nold\nend-of-report\nreloaded 7\n", 7, false),
            Heard::Verdict(Verdict::Reloaded)
        );
        // A Lisp that cannot carry the number says 0.
        assert_eq!(
            hear(b"reloaded 0\n", 7, true),
            Heard::Verdict(Verdict::Reloaded)
        );
    }

    /// What a Lisp may write that is not the protocol.
    #[test]
    fn anything_else_is_garbled() {
        for bad in [
            &b"hello\n"[..],
            b"reloaded\n",
            b"reloaded seven\n",
            b"success reloaded 7\n",
            &[b'x'; MAX_LINE + 1],
        ] {
            assert_eq!(
                hear(bad, 7, false),
                Heard::Garbled,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let flood = format!("error 7\n{}", "x".repeat(MAX_VERDICT));
        assert_eq!(hear(flood.as_bytes(), 7, false), Heard::Garbled);
    }

    /// The bootstrap writes the words this reads.
    #[test]
    fn the_bootstrap_speaks_the_protocol() {
        let bootstrap = include_str!("../plan/bootstrap.lisp");
        for said in [
            "(tell-reload \"reloaded\"",
            "(tell-reload \"error\"",
            "(format stream \"~a ~d~%\" word tag)",
            "(write-line \"end-of-report\" stream)",
        ] {
            assert!(bootstrap.contains(said), "{said}");
        }
    }
}
