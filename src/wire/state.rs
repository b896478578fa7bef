//! The supervisor's state file (`PIDFILE.state`), which `status` reads:
//! one `key value` a line, written by the supervisor (root's own process)
//! whenever its Lisp starts or ends.
//!
//! | line | meaning |
//! |---|---|
//! | `supervisor PID` | the supervisor that wrote it (the pid file's process) |
//! | `restarts N` | how many times it restarted its Lisp |
//! | `lisp PID` | its Lisp now, if one runs |
//! | `last-exit HOW` | how the last Lisp ended (one line, shown: see `crate::visible`) |
//! | `ready yes` | its Lisp now said it is ready (by its pipe, its notify socket or its port) |
//! | `replacements N` | how many times `restart` asked it to replace its Lisp (`:listen`) |
//! | `unit NAME` | a service manager runs it: `nodaemon` of the unit NAME (systemd's) |
//! | `gave-up yes` | it gave up at `:start-limit` and exited: the record stays for `status` until `start`, `stop` or `zap` |
//! | `replacing PID` | a replacement is under way: its new Lisp, not yet ready |
//! | `replace-error HOW` | why the last replacement failed (the old Lisp kept serving), one line |

use std::fmt;
use std::str::FromStr;

use crate::visible::line_within;

/// The longest state file read (a few short lines); a longer one is not a
/// state file.
pub const MAX_STATE: usize = 4096;
/// The most bytes of a cause (`last-exit`, `replace-error`) stored.
const MAX_TEXT: usize = 1000;
/// The most bytes of a unit's name stored.
const MAX_UNIT: usize = 300;

/// What `status` shows of a supervised daemon.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    pub supervisor: i32,
    pub lisp: Option<i32>,
    pub restarts: u32,
    pub last_exit: Option<String>,
    /// The Lisp that runs said it is ready.
    pub ready: bool,
    /// Replacements asked for, done or failed.
    pub replacements: u32,
    /// Why the last one failed, if it did.
    pub replace_error: Option<String>,
    /// The new Lisp of the replacement under way, if one is.
    pub replacing: Option<i32>,
    /// It gave up at `:start-limit`.
    pub gave_up: bool,
    /// The service manager's unit that runs it, if one does.
    pub unit: Option<String>,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "supervisor {}\nrestarts {}",
            self.supervisor, self.restarts
        )?;
        if let Some(lisp) = self.lisp {
            writeln!(f, "lisp {lisp}")?;
        }
        // Lines are bounded in bytes, whatever the Lisp made them say (its
        // characters, escaped, are up to 10 bytes each): the file stays
        // within `MAX_STATE` (a test writes the longest).
        if let Some(exit) = &self.last_exit {
            writeln!(f, "last-exit {}", line_within(exit, MAX_TEXT))?;
        }
        if self.ready {
            writeln!(f, "ready yes")?;
        }
        if self.replacements > 0 {
            writeln!(f, "replacements {}", self.replacements)?;
        }
        if let Some(next) = self.replacing {
            writeln!(f, "replacing {next}")?;
        }
        if let Some(error) = &self.replace_error {
            writeln!(f, "replace-error {}", line_within(error, MAX_TEXT))?;
        }
        if self.gave_up {
            writeln!(f, "gave-up yes")?;
        }
        if let Some(unit) = &self.unit {
            writeln!(f, "unit {}", line_within(unit, MAX_UNIT))?;
        }
        Ok(())
    }
}

/// A state file that is not one.
#[derive(Debug, PartialEq, Eq)]
pub struct NotAState;

impl FromStr for State {
    type Err = NotAState;

    fn from_str(text: &str) -> Result<State, NotAState> {
        if text.len() > MAX_STATE {
            return Err(NotAState);
        }
        let mut state = State::default();
        let mut supervisor = None;
        for line in text.lines() {
            let (key, value) = line.split_once(' ').ok_or(NotAState)?;
            match key {
                "supervisor" => supervisor = Some(value.parse().map_err(|_| NotAState)?),
                "lisp" => state.lisp = Some(value.parse().map_err(|_| NotAState)?),
                "restarts" => state.restarts = value.parse().map_err(|_| NotAState)?,
                "last-exit" => state.last_exit = Some(value.to_string()),
                "ready" if value == "yes" => state.ready = true,
                "replacements" => state.replacements = value.parse().map_err(|_| NotAState)?,
                "replace-error" => state.replace_error = Some(value.to_string()),
                "replacing" => state.replacing = Some(value.parse().map_err(|_| NotAState)?),
                "gave-up" if value == "yes" => state.gave_up = true,
                "unit" => state.unit = Some(value.to_string()),
                _ => return Err(NotAState),
            }
        }
        state.supervisor = supervisor.ok_or(NotAState)?;
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever a Lisp makes its causes say, the file fits, and reads
    /// back whole (the lines after the causes too).
    #[test]
    fn the_longest_state_fits() {
        let worst = |c: char| std::iter::repeat_n(c, 2000).collect::<String>();
        for c in ['\u{e007f}', '\u{1f600}', '\x1b', 'a', '\n'] {
            let state = State {
                supervisor: i32::MAX,
                lisp: Some(i32::MAX),
                restarts: u32::MAX,
                last_exit: Some(worst(c)),
                ready: true,
                replacements: u32::MAX,
                replace_error: Some(worst(c)),
                replacing: Some(i32::MAX),
                gave_up: true,
                unit: Some(worst(c)),
            };
            let text = state.to_string();
            assert!(text.len() <= MAX_STATE, "{} bytes for {c:?}", text.len());
            let read: State = text.parse().unwrap();
            assert!(read.gave_up && read.unit.is_some(), "{c:?}");
            assert!(read.last_exit.unwrap().ends_with("..."));
        }
    }

    #[test]
    fn a_state_round_trips() {
        let state = State {
            supervisor: 42,
            lisp: Some(43),
            restarts: 2,
            last_exit: Some("killed by SIGKILL".into()),
            ready: true,
            replacements: 3,
            replace_error: Some("the new Lisp exited with status 1".into()),
            replacing: Some(44),
            gave_up: true,
            unit: Some("daemonization@site.service".into()),
        };
        assert_eq!(state.to_string().parse(), Ok(state.clone()));
        let idle = State {
            lisp: None,
            last_exit: None,
            ready: false,
            replacements: 0,
            replace_error: None,
            replacing: None,
            gave_up: false,
            unit: None,
            ..state
        };
        assert_eq!(idle.to_string().parse(), Ok(idle));
        for bad in [
            "",
            "supervisor x\n",
            "restarts 1\n",
            "supervisor 1\nowner root\n",
            "supervisor\n",
            "supervisor 1\nready no\n",
        ] {
            assert_eq!(bad.parse::<State>(), Err(NotAState), "{bad:?}");
        }
        // However long what the Lisp made it say, the file stays readable.
        let long = State {
            supervisor: 1,
            last_exit: Some("€".repeat(20_000)),
            replace_error: Some("x\n".repeat(10_000)),
            ..State::default()
        };
        let text = long.to_string();
        assert!(text.len() <= MAX_STATE, "{}", text.len());
        assert!(text.parse::<State>().is_ok());
        // A last exit is one line, whatever it said.
        let odd = State {
            supervisor: 1,
            last_exit: Some("said \"x\ny\x1b\"".into()),
            ..State::default()
        };
        assert_eq!(
            odd.to_string(),
            "supervisor 1\nrestarts 0\nlast-exit said \"x\\ny\\x1b\"\n"
        );
    }
}
