//! The readiness protocol: what crosses the pipe from a starting daemon to
//! the process waiting for it (`start`, a supervisor, `nodaemon` under a
//! service manager). One word per line:
//!
//! | word | written by | meaning |
//! |---|---|---|
//! | `pid N` | the daemon process, before exec | it runs, as process N |
//! | `locked` | the daemon process | it holds the lock of its pid file |
//! | `running N` | the daemon process | daemon N holds the lock: it exits |
//! | `switched user NAME (uid U, gid G), capabilities: C` | the daemon process | it runs as the `:user` now |
//! | `exec PROGRAM` | the daemon process | it execs the Lisp |
//! | `setup-error MESSAGE` | the daemon process, a supervisor | the set-up failed (one line): it exits |
//! | `died HOW` | a supervisor | its first Lisp ended before it was ready, as HOW says: it exits |
//! | `ready` | the bootstrap (`bootstrap.lisp`) | `:main-function` returned |
//! | `error` | the bootstrap | a function of the conf signalled; the Lisp's report follows, to the end of the pipe |

use std::fmt;
use std::fs::File;
use std::io::Read as _;
use std::os::fd::AsFd;
use std::str::FromStr;

use nix::fcntl::{FcntlArg, OFlag, fcntl};

/// One line of the readiness pipe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Word {
    Pid(i32),
    Locked,
    Running(i32),
    /// What follows `switched `: the user and the capabilities kept.
    Switched(String),
    Exec(String),
    SetupError(String),
    /// How a supervisor's first Lisp ended before it was ready.
    Died(String),
    Ready,
    Error,
}

impl fmt::Display for Word {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Word::Pid(pid) => write!(f, "pid {pid}"),
            Word::Locked => f.write_str("locked"),
            Word::Running(pid) => write!(f, "running {pid}"),
            Word::Switched(how) => write!(f, "switched {how}"),
            Word::Exec(program) => write!(f, "exec {program}"),
            // One line, whatever the message.
            Word::SetupError(message) => write!(f, "setup-error {}", message.replace('\n', " ")),
            Word::Died(how) => write!(f, "died {}", how.replace('\n', " ")),
            Word::Ready => f.write_str("ready"),
            Word::Error => f.write_str("error"),
        }
    }
}

/// A line that is not a word of the protocol.
#[derive(Debug, PartialEq, Eq)]
pub struct NotAWord;

impl FromStr for Word {
    type Err = NotAWord;

    fn from_str(line: &str) -> Result<Word, NotAWord> {
        let (head, rest) = line.split_once(' ').unwrap_or((line, ""));
        let pid = || rest.parse::<i32>().map_err(|_| NotAWord);
        Ok(match (head, rest.is_empty()) {
            ("pid", false) => Word::Pid(pid()?),
            ("locked", true) => Word::Locked,
            ("running", false) => Word::Running(pid()?),
            ("switched", false) => Word::Switched(rest.to_string()),
            ("exec", false) => Word::Exec(rest.to_string()),
            ("setup-error", false) => Word::SetupError(rest.to_string()),
            ("died", false) => Word::Died(rest.to_string()),
            ("ready", true) => Word::Ready,
            ("error", true) => Word::Error,
            _ => return Err(NotAWord),
        })
    }
}

impl Word {
    /// The line written on the pipe.
    pub fn line(&self) -> String {
        format!("{self}\n")
    }

    /// What a start's trace log says of this step, if anything.
    pub fn trace(&self) -> Option<String> {
        Some(match self {
            Word::Pid(pid) => format!("forked the daemon process {pid}"),
            Word::Locked => "locked the pid file".to_string(),
            Word::Switched(how) => format!("switched to {how}"),
            Word::Exec(program) => format!("exec {program}"),
            Word::Ready => ":main-function returned: ready".to_string(),
            _ => return None,
        })
    }
}

/// The most of the Lisp's words on the readiness pipe that is kept.
pub const MAX_REPORT: usize = 64 * 1024;

/// Appends to `text` what `pipe` holds now, without waiting for more (a
/// child of the exited Lisp may still hold the write end).
pub fn read_what_is_there(pipe: &mut File, text: &mut String) {
    let _ = fcntl(pipe.as_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
    let mut rest = Vec::new();
    let _ = pipe.take(MAX_REPORT as u64).read_to_end(&mut rest);
    append_capped(text, &rest);
}

/// Appends the Lisp's words to `text`, keeping at most `MAX_REPORT` bytes:
/// the Lisp runs the daemon user's code, which may flood the pipe.
pub fn append_capped(text: &mut String, bytes: &[u8]) {
    if text.len() < MAX_REPORT {
        text.push_str(&String::from_utf8_lossy(bytes));
    }
}

/// The Lisp's error report, if `text` (what the pipe held) is one.
pub fn error_report(text: &str) -> Option<&str> {
    text.strip_prefix("error\n")
}

/// Whether `text` (what the pipe held) starts with readiness.
pub fn is_ready(text: &str) -> bool {
    text.starts_with("ready\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_round_trips() {
        let words = [
            Word::Pid(42),
            Word::Locked,
            Word::Running(7),
            Word::Switched("user www (uid 33, gid 33), capabilities: none".into()),
            Word::Exec("/usr/bin/sbcl".into()),
            Word::SetupError("cannot open: Permission denied".into()),
            Word::Died("the Lisp (pid 9) exited with status 3 before it was ready".into()),
            Word::Ready,
            Word::Error,
        ];
        for word in words {
            assert_eq!(word.to_string().parse::<Word>(), Ok(word.clone()), "{word}");
            assert_eq!(word.line(), format!("{word}\n"));
        }
        assert_eq!(
            Word::SetupError("two\nlines".into()).to_string(),
            "setup-error two lines"
        );
        for bad in ["", "pid", "pid x", "ready now", "locked up", "hello"] {
            assert_eq!(bad.parse::<Word>(), Err(NotAWord), "{bad:?}");
        }
    }

    /// The words the bootstrap writes are words of this protocol.
    #[test]
    fn the_bootstrap_speaks_the_protocol() {
        let bootstrap = include_str!("../plan/bootstrap.lisp");
        let mut written = Vec::new();
        let mut rest = bootstrap;
        while let Some(at) = rest.find("(report \"") {
            rest = &rest[at + "(report \"".len()..];
            let end = rest.find('"').expect("a closed string");
            written.push(&rest[..end]);
        }
        assert!(
            written.contains(&"ready") && written.contains(&"error"),
            "{written:?}"
        );
        for word in written {
            let parsed: Word = word.parse().unwrap_or_else(|_| panic!("{word:?}"));
            assert!(matches!(parsed, Word::Ready | Word::Error), "{word}");
        }
        assert_eq!(error_report("error\nboom\n"), Some("boom\n"));
        assert!(is_ready("ready\n") && !is_ready("readyx"));
    }
}
