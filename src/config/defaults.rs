//! Defaults, once: each key's default is written in the key table alone
//! (`keys::KEYS`) and read from there as a value, the way a conf value is
//! read; `DaemonSpec`'s accessors fall back to it.

use std::time::Duration;

use super::keys::{KEYS, Key, ValueAt};
use super::schedule::StopSchedule;
use super::spec::DaemonSpec;
use crate::source::Source;

/// The typed defaults of the table: each key's `default` read and applied
/// as a conf value would be (read once). The key table is the one place a
/// default is written; the built-in default conf agrees with it (a test
/// says so).
pub fn defaults() -> &'static DaemonSpec {
    static DEFAULTS: std::sync::OnceLock<DaemonSpec> = std::sync::OnceLock::new();
    DEFAULTS.get_or_init(|| {
        let mut spec = DaemonSpec::default();
        for key in KEYS.iter().filter(|k| k.typed_default()) {
            let source = Source::new("<key table>", key.default);
            let forms = crate::reader::read_all(
                &source.text,
                &crate::reader::Features::sbcl_linux_x86_64(),
            )
            .expect("a key table default reads");
            let at = ValueAt {
                form: &forms[0],
                source: &source,
                key: format!(":{}", key.name),
            };
            key.kind
                .apply(&at, &mut spec)
                .unwrap_or_else(|_| panic!("the default of :{} is a value of its kind", key.name));
        }
        spec
    })
}

impl Key {
    /// Whether `default` is a value (not a description, such as "the conf
    /// file", or a schedule that depends on the Lisp).
    fn typed_default(&self) -> bool {
        !matches!(self.name, "conf-params-file" | "stop-schedule")
    }
}

/// A value the conf does not give: the key table's default.
macro_rules! or_default {
    ($value:expr, $field:ident) => {
        $value.unwrap_or_else(|| {
            defaults().$field.expect(concat!(
                "the key table gives ",
                stringify!($field),
                " a default"
            ))
        })
    };
}

impl DaemonSpec {
    /// The daemon's umask.
    pub fn umask(&self) -> u32 {
        self.os_params.linux_umask.unwrap_or_else(|| {
            defaults()
                .os_params
                .linux_umask
                .expect("the key table gives :os-params a default")
        })
    }

    pub fn start_timeout(&self) -> Duration {
        or_default!(self.start_timeout, start_timeout)
    }

    pub fn stop_timeout(&self) -> Duration {
        or_default!(self.stop_timeout, stop_timeout)
    }

    pub fn output_keep(&self) -> u32 {
        or_default!(self.output_keep, output_keep)
    }

    pub fn restart_delay(&self) -> Duration {
        or_default!(self.restart_delay, restart_delay)
    }

    pub fn restart_max_delay(&self) -> Duration {
        or_default!(self.restart_max_delay, restart_max_delay)
    }

    /// `:stop-schedule`, else `signal` (SIGUSR1 for Lisps that catch it),
    /// `:stop-timeout`, SIGKILL, 5 s.
    pub fn stop_schedule(&self, signal: nix::sys::signal::Signal) -> StopSchedule {
        self.stop_schedule.clone().unwrap_or_else(|| {
            let mut schedule = StopSchedule::usr1_then_kill(self.stop_timeout());
            schedule.steps[0].signal = signal;
            schedule
        })
    }
}
