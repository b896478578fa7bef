//! The readiness protocol: what crosses the pipe from a starting daemon to
//! the process waiting for it (`start`, a supervisor, `nodaemon` under a
//! service manager). One word per line:
//!
//! | word | written by | meaning |
//! |---|---|---|
//! | `locked` | the daemon process | it holds the lock of its pid file |
//! | `running N` | the daemon process | daemon N holds the lock: it exits |
//! | `switched user NAME (uid U, gid G), capabilities: C` | the daemon process | it runs as the `:user` now |
//! | `exec PROGRAM` | the daemon process | it execs the Lisp |
//! | `setup-error MESSAGE` | the daemon process, a supervisor | the set-up failed (one line): it exits |
//! | `died HOW` | a supervisor | its first Lisp ended before it was ready, as HOW says: it exits |
//! | `status TEXT` | the bootstrap | the daemon's own status text, given to `(daemonization:ready TEXT)` (one line) |
//! | `ready` | the bootstrap (`bootstrap.lisp`) | `:main-function` returned, or the daemon called `(daemonization:ready)` |
//! | `error` | the bootstrap | a function of the conf signalled; the Lisp's report follows, to the end of the pipe |
//!
//! The daemon's pid is never a word: `start` learns it from its own fork.
//! Once the Lisp runs it is a stranger (it runs the daemon user's code), so
//! the reader is a state machine (`Stage`): after each word only the next
//! legal words are taken, a line is at most `MAX_WORD` bytes, the report at
//! most `MAX_REPORT`; anything else is a `Broken` protocol, and the start
//! fails.
use std::fmt;
use std::str::FromStr;

/// One line of the readiness pipe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Word {
    Locked,
    Running(i32),
    /// What follows `switched `: the user and the capabilities kept.
    Switched(String),
    Exec(String),
    SetupError(String),
    /// How a supervisor's first Lisp ended before it was ready.
    Died(String),
    /// The daemon's status text, before `Ready`.
    Status(String),
    Ready,
    Error,
}

impl fmt::Display for Word {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Word::Locked => f.write_str("locked"),
            Word::Running(pid) => write!(f, "running {pid}"),
            Word::Switched(how) => write!(f, "switched {how}"),
            Word::Exec(program) => write!(f, "exec {program}"),
            // One line, whatever the message.
            Word::SetupError(message) => write!(f, "setup-error {}", message.replace('\n', " ")),
            Word::Died(how) => write!(f, "died {}", how.replace('\n', " ")),
            Word::Status(text) => write!(f, "status {}", text.replace('\n', " ")),
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
            ("locked", true) => Word::Locked,
            ("running", false) => Word::Running(pid()?),
            ("switched", false) => Word::Switched(rest.to_string()),
            ("exec", false) => Word::Exec(rest.to_string()),
            ("setup-error", false) => Word::SetupError(rest.to_string()),
            ("died", false) => Word::Died(rest.to_string()),
            ("status", false) => Word::Status(rest.to_string()),
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
            Word::Locked => "locked the pid file".to_string(),
            Word::Switched(how) => format!("switched to {how}"),
            Word::Exec(program) => format!("exec {program}"),
            Word::Status(text) => format!("the daemon's status: {}", crate::visible::line(text)),
            Word::Ready => "the Lisp is ready".to_string(),
            _ => return None,
        })
    }
}

/// The longest line of the protocol (a set-up error's message).
pub const MAX_WORD: usize = 4096;

/// Where a start stands in the protocol: what may come next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The daemon process claims the pid file: `locked`, `running N` or
    /// `setup-error`; `supervised` if a supervisor will run the Lisp.
    Claiming { supervised: bool },
    /// It holds the lock. Unsupervised, its own `switched`, `exec` or
    /// `setup-error` follow; supervised, the supervisor's `ready`, `error`,
    /// `died` or `setup-error`.
    Locked { supervised: bool },
    /// It runs as the `:user`: `exec` or `setup-error`.
    Switched,
    /// The Lisp runs: `ready`, `error`, or `setup-error` (an exec that
    /// failed).
    Execed,
    /// After `error`: the Lisp's report, to the end of the pipe.
    Reporting,
    /// A verdict was heard: nothing more is taken.
    Done,
}

impl Stage {
    /// The stage after `word`, if `word` may come now.
    pub fn after(self, word: &Word) -> Option<Stage> {
        use Word::*;
        Some(match (self, word) {
            (Stage::Claiming { supervised }, Locked) => Stage::Locked { supervised },
            (Stage::Claiming { .. }, Running(_) | SetupError(_)) => Stage::Done,
            (Stage::Locked { supervised: false }, Switched(_)) => Stage::Switched,
            (Stage::Locked { supervised: false } | Stage::Switched, Exec(_)) => Stage::Execed,
            (Stage::Locked { supervised: true }, Ready | Died(_)) => Stage::Done,
            (Stage::Locked { supervised: true } | Stage::Execed, Error) => Stage::Reporting,
            (Stage::Execed, Ready) => Stage::Done,
            (Stage::Execed, Status(_)) => Stage::Execed,
            (Stage::Locked { .. } | Stage::Switched | Stage::Execed, SetupError(_)) => Stage::Done,
            _ => return None,
        })
    }

    /// The words that may come now, for a message.
    pub fn expected(self) -> &'static str {
        match self {
            Stage::Claiming { .. } => "locked, running or setup-error",
            Stage::Locked { supervised: false } => "switched, exec or setup-error",
            Stage::Locked { supervised: true } => "ready, error, died or setup-error",
            Stage::Switched => "exec or setup-error",
            Stage::Execed => "status, ready or error",
            Stage::Reporting | Stage::Done => "nothing more",
        }
    }
}

/// The protocol broken: what came where only `expected` may.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broken {
    pub expected: &'static str,
    /// What came instead, at most 80 characters of it, shown (see
    /// `crate::visible`): it goes into logs and the supervisor's state.
    pub said: String,
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "broke the readiness protocol: it said \"{}\" where only {} may come",
            self.said, self.expected
        )
    }
}

/// A reader of the protocol: the words of a pipe's text, one stage at a
/// time (the daemon's, from the start; a supervisor's Lisp's, from
/// `Stage::Execed`).
pub struct Protocol {
    pub stage: Stage,
    /// Bytes of the text already taken.
    seen: usize,
    /// Where the report starts in the text, once `error` was said.
    report: Option<usize>,
}

impl Protocol {
    pub fn new(stage: Stage) -> Protocol {
        Protocol {
            stage,
            seen: 0,
            report: None,
        }
    }

    /// Takes the complete lines of `text` not yet taken: the words they
    /// say, in order, up to the first that breaks the protocol.
    pub fn take(&mut self, text: &str) -> Vec<Result<Word, Broken>> {
        let mut heard = Vec::new();
        while !matches!(self.stage, Stage::Reporting | Stage::Done) {
            let rest = &text[self.seen..];
            let Some(end) = rest.find('\n') else {
                if rest.len() > MAX_WORD {
                    heard.push(Err(self.broken(rest)));
                }
                break;
            };
            let line = &rest[..end];
            self.seen += end + 1;
            let next = match line.len() <= MAX_WORD {
                true => line.parse::<Word>().ok().and_then(|word| {
                    let stage = self.stage.after(&word)?;
                    Some((word, stage))
                }),
                false => None,
            };
            let Some((word, stage)) = next else {
                heard.push(Err(self.broken(line)));
                break;
            };
            self.stage = stage;
            if stage == Stage::Reporting {
                self.report = Some(self.seen);
            }
            heard.push(Ok(word));
        }
        heard
    }

    fn broken(&mut self, said: &str) -> Broken {
        let broken = Broken {
            expected: self.stage.expected(),
            said: crate::visible::line(&said.chars().take(80).collect::<String>()),
        };
        self.stage = Stage::Done;
        broken
    }

    /// The Lisp's report so far, once it said `error`.
    pub fn report<'t>(&self, text: &'t str) -> Option<&'t str> {
        self.report.map(|at| text[at.min(text.len())..].trim_end())
    }
}

/// The most of the Lisp's words on the readiness pipe that is kept.
pub const MAX_REPORT: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_round_trips() {
        let words = [
            Word::Locked,
            Word::Running(7),
            Word::Switched("user www (uid 33, gid 33), capabilities: none".into()),
            Word::Exec("/usr/bin/sbcl".into()),
            Word::SetupError("cannot open: Permission denied".into()),
            Word::Died("the Lisp (pid 9) exited with status 3 before it was ready".into()),
            Word::Status("listening on 8080".into()),
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
        for bad in ["", "pid 1", "running x", "ready now", "locked up", "hello"] {
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
        // The status text of (daemonization:ready TEXT), written by SAY.
        assert!(bootstrap.contains("(say (format nil \"status ~a\""));
        assert!(matches!("status up".parse(), Ok(Word::Status(_))));
    }

    /// After each word only the next legal words are taken; the pid is
    /// never one, whatever the Lisp says, and a line is bounded.
    #[test]
    fn the_protocol_takes_only_the_next_legal_word() {
        let heard = |stage, text: &str| {
            let mut p = Protocol::new(stage);
            let words: Vec<String> = p
                .take(text)
                .into_iter()
                .map(|w| w.map_or_else(|b| format!("broken: {b}"), |w| w.to_string()))
                .collect();
            (words, p.stage, p.report(text).map(str::to_string))
        };
        let daemon = Stage::Claiming { supervised: false };
        assert_eq!(
            heard(daemon, "locked\nexec sbcl\nready\n").0,
            ["locked", "exec sbcl", "ready"]
        );
        assert_eq!(
            heard(
                daemon,
                "locked\nswitched user x\nexec sbcl\nerror\nboom\nready\n"
            ),
            (
                vec![
                    "locked".into(),
                    "switched user x".into(),
                    "exec sbcl".into(),
                    "error".into()
                ],
                Stage::Reporting,
                Some("boom\nready".into())
            )
        );
        // What a Lisp may write after exec, where only ready or error may come.
        for forged in [
            "pid 1",
            "running 1",
            "locked",
            "exec x",
            "died x",
            "switched y",
            "hello",
        ] {
            let (words, stage, _) = heard(daemon, &format!("locked\nexec sbcl\n{forged}\nready\n"));
            assert_eq!(
                words.last().unwrap(),
                &format!(
                    "broken: broke the readiness protocol: it said \"{forged}\" where only status, ready or error may come"
                ),
            );
            assert_eq!((words.len(), stage), (3, Stage::Done), "{forged}");
        }
        // The daemon's status text may come before ready, any number of times.
        assert_eq!(
            heard(
                daemon,
                "locked\nexec sbcl\nstatus up\nstatus on 80\nready\n"
            )
            .0,
            ["locked", "exec sbcl", "status up", "status on 80", "ready"]
        );
        // Ready before exec is not the Lisp's: no Lisp ran yet.
        assert!(heard(daemon, "locked\nready\n").0[1].starts_with("broken:"));
        // A supervisor relays ready, error, died or setup-error after locked.
        let supervised = Stage::Claiming { supervised: true };
        assert_eq!(heard(supervised, "locked\nready\n").0, ["locked", "ready"]);
        assert_eq!(heard(supervised, "locked\ndied x\n").1, Stage::Done);
        assert!(heard(supervised, "locked\nexec x\n").0[1].starts_with("broken:"));
        // Too long, with or without its newline.
        let long = "x".repeat(MAX_WORD + 1);
        assert!(heard(Stage::Execed, &long).0[0].starts_with("broken:"));
        assert!(heard(Stage::Execed, &format!("{long}\n")).0[0].starts_with("broken:"));
        assert_eq!(heard(Stage::Execed, "rea").0, Vec::<String>::new());
        // Nothing is taken after a verdict.
        assert_eq!(heard(Stage::Execed, "ready\nerror\n").0, ["ready"]);
    }
}
