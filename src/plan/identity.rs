//! Who a Lisp runs as, and how it is supervised: data the plan carries,
//! decided by `daemon::identity` and applied by `daemon::exec`.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::RestartPolicy;

/// A user account the daemon runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
    pub shell: PathBuf,
}

/// A user switch: decided before fork, applied in the daemon process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Switch {
    pub account: Account,
    /// Keep exactly `CAP_NET_BIND_SERVICE` (`:listen-privileged-ports`).
    pub keep_bind: bool,
}

impl Switch {
    /// The daemon's user and group ids, as its files are given to it.
    pub fn ids(&self) -> (u32, u32) {
        (self.account.uid, self.account.gid)
    }

    /// Who the daemon runs as, for the `switched` word of a start.
    pub fn summary(&self) -> String {
        let a = &self.account;
        let caps = match self.keep_bind {
            true => "CAP_NET_BIND_SERVICE",
            false => "none",
        };
        format!(
            "user {} (uid {}, gid {}), capabilities: {caps}",
            a.name, a.uid, a.gid
        )
    }
}

/// When and how often a supervisor restarts the Lisp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub restart: RestartPolicy,
    pub delay: Duration,
    pub max_delay: Duration,
    pub start_limit: Option<(u32, Duration)>,
    /// `:output-max-size` and `:output-keep`: the supervisor writes `:output`.
    pub rotation: Option<(Option<u64>, u32)>,
    /// The daemon's name (`:name`, else the conf file's stem): the
    /// supervisor's process title is `daemonization: supervisor of NAME`.
    pub name: String,
    /// How an old Lisp is stopped once a new one replaced it (`restart`
    /// with `:listen`): the conf's stop schedule.
    pub stop_schedule: crate::config::StopSchedule,
    /// How long a new Lisp may take to be ready (`:start-timeout`).
    pub start_timeout: Duration,
    /// `:dynamic-space-size` and `:control-stack-size` (MB), for the words
    /// of a Lisp that ran out of either.
    pub heap_mb: Option<u64>,
    pub stack_mb: Option<u64>,
    /// `:watchdog`: ask the Lisp every `.0` over its control socket, and
    /// kill it after `.1` unanswered (only with a control socket).
    pub watchdog: Option<(Duration, u32)>,
}
