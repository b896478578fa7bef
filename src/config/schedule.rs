//! Stop schedules, like start-stop-daemon's `--retry`: `USR1/60/KILL/5`
//! sends SIGUSR1, waits up to 60 s, then SIGKILL and waits up to 5 s.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use nix::sys::signal::Signal;

/// One step: send `signal`, then wait up to `timeout` for the process to end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StopStep {
    pub signal: Signal,
    pub timeout: Duration,
}

/// The steps `stop` goes through until the process is gone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StopSchedule {
    pub steps: Vec<StopStep>,
}

impl StopSchedule {
    /// Whether a step sends `signal`.
    pub fn uses(&self, signal: Signal) -> bool {
        self.steps.iter().any(|step| step.signal == signal)
    }
}

impl StopSchedule {
    /// The original's behaviour: SIGUSR1, `timeout`, then SIGKILL and 5 s.
    pub fn usr1_then_kill(timeout: Duration) -> StopSchedule {
        StopSchedule {
            steps: vec![
                StopStep {
                    signal: Signal::SIGUSR1,
                    timeout,
                },
                StopStep {
                    signal: Signal::SIGKILL,
                    timeout: Duration::from_secs(5),
                },
            ],
        }
    }

    /// The first step's signal (what systemd's `KillSignal=` should be).
    pub fn first(&self) -> StopStep {
        self.steps[0]
    }
}

/// A signal by name (`TERM`, `SIGTERM`, `term`) or number (`15`).
pub fn parse_signal(text: &str) -> Option<Signal> {
    if let Ok(n) = text.parse::<i32>() {
        return Signal::try_from(n).ok();
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    Signal::from_str(&format!("SIG{name}")).ok()
}

fn parse_seconds(text: &str) -> Option<Duration> {
    text.parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
}

/// Why a schedule does not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadSchedule(pub String);

impl fmt::Display for BadSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for StopSchedule {
    type Err = BadSchedule;

    /// `SIGNAL/SECONDS/SIGNAL/SECONDS...`, or a bare number N for
    /// `USR1/N/KILL/N` (as start-stop-daemon's `--retry N` is TERM/N/KILL/N).
    fn from_str(text: &str) -> Result<StopSchedule, BadSchedule> {
        if let Some(timeout) = parse_seconds(text) {
            let mut schedule = StopSchedule::usr1_then_kill(timeout);
            schedule.steps[1].timeout = timeout;
            return Ok(schedule);
        }
        let parts: Vec<&str> = text.split('/').collect();
        if !parts.len().is_multiple_of(2) {
            return Err(BadSchedule(format!(
                "\"{text}\" must alternate signals and seconds, ending with seconds"
            )));
        }
        let steps = parts
            .chunks(2)
            .map(|pair| {
                let signal = parse_signal(pair[0])
                    .ok_or_else(|| BadSchedule(format!("unknown signal \"{}\"", pair[0])))?;
                let timeout = parse_seconds(pair[1]).ok_or_else(|| {
                    BadSchedule(format!("\"{}\" is not a number of seconds", pair[1]))
                })?;
                Ok(StopStep { signal, timeout })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(StopSchedule { steps })
    }
}

impl fmt::Display for StopSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .steps
            .iter()
            .map(|s| format!("{}/{}", &s.signal.as_str()[3..], s.timeout.as_secs_f64()))
            .collect();
        f.write_str(&parts.join("/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(signal: Signal, secs: u64) -> StopStep {
        StopStep {
            signal,
            timeout: Duration::from_secs(secs),
        }
    }

    #[test]
    fn schedules_parse_names_numbers_and_bare_timeouts() {
        let s: StopSchedule = "TERM/10/INT/5/KILL/5".parse().unwrap();
        assert_eq!(
            s.steps,
            [
                step(Signal::SIGTERM, 10),
                step(Signal::SIGINT, 5),
                step(Signal::SIGKILL, 5)
            ]
        );
        let s: StopSchedule = "sigusr1/60/9/5".parse().unwrap();
        assert_eq!(
            s.steps,
            [step(Signal::SIGUSR1, 60), step(Signal::SIGKILL, 5)]
        );
        let s: StopSchedule = "7".parse().unwrap();
        assert_eq!(
            s.steps,
            [step(Signal::SIGUSR1, 7), step(Signal::SIGKILL, 7)]
        );
        assert_eq!(s.to_string(), "USR1/7/KILL/7");
    }

    #[test]
    fn bad_schedules_say_why() {
        let err = |t: &str| t.parse::<StopSchedule>().unwrap_err().0;
        assert_eq!(
            err("TERM/10/KILL"),
            "\"TERM/10/KILL\" must alternate signals and seconds, ending with seconds"
        );
        assert_eq!(err("FOO/10"), "unknown signal \"FOO\"");
        assert_eq!(err("TERM/soon"), "\"soon\" is not a number of seconds");
        assert_eq!(err("99/1"), "unknown signal \"99\"");
    }
}
