//! One command's inputs (`Request`), and the caller it runs for: its
//! environment, its directory, its home, the daemon's user.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{Conf, StopSchedule};
use crate::logging::{Destination, Destinations, Logger};
use crate::plan::{self, Runner};
use crate::trust::{self, Trust};

use super::{DaemonError, PidState, RunDir, identity, process};

/// One command's inputs.
pub struct Request<'a> {
    pub conf: &'a Conf,
    pub runner: Runner,
    /// `--timeout`: overrides `:start-timeout`.
    pub start_timeout: Option<Duration>,
    /// `zap --force`.
    pub force: bool,
    /// `--retry`: overrides the conf's stop schedule.
    pub stop_schedule: Option<StopSchedule>,
    /// Who the daemon runs as, if not the caller (see `identity::decide`).
    pub switch: Option<identity::Switch>,
    pub logger: &'a Logger,
    /// Whose files and processes this command trusts.
    pub trust: Trust,
    /// The tool's pid directory, where `start` leaves its record for `list`.
    pub pid_dirs: crate::config::PidDirs,
}

impl Request<'_> {
    /// Where the Lisp writes its own log lines. A Lisp that runs as the
    /// caller (root, in production) opens a log file by name, following
    /// links, so it gets a file only where nobody but trusted owners can
    /// change the directories on its path; elsewhere its lines go nowhere
    /// (the tool's own lines still go there, through `trust::open_append`).
    /// A Lisp of another user writes with that user's power.
    pub(crate) fn lisp_log(&self, as_caller: bool) -> Destinations {
        let safe = |d: &Destination| match d {
            Destination::File(path) if as_caller => {
                let dir = path.parent().unwrap_or(Path::new("/"));
                match trust::walk_dir(
                    dir,
                    trust::Policy::Strict,
                    &self.trust,
                    "the log file",
                    None,
                ) {
                    Ok(_) => d.clone(),
                    Err(_) => Destination::Nowhere,
                }
            }
            _ => d.clone(),
        };
        let all = self.logger.destinations();
        Destinations {
            info: safe(&all.info),
            error: safe(&all.error),
            trace: safe(&all.trace),
        }
    }

    /// The pid directory's files; with `create`, its directory is made.
    pub(super) fn pid_files(&self, create: bool) -> Result<Option<RunDir>, DaemonError> {
        RunDir::open(
            &self.conf.pid_file,
            self.conf.private_pid_dir.as_deref(),
            &self.trust,
            create,
        )
    }

    /// Where in the daemon the signals of stop and reload go.
    pub(super) fn aim(&self) -> process::Aim {
        process::Aim::of(self.runner.kind.facts().signals_main_thread)
    }

    /// The uid the daemon runs as: the conf's `:user`, else the caller.
    pub(super) fn daemon_uid(&self) -> u32 {
        match (daemon_user(self), &self.conf.spec.user) {
            (Some((uid, _)), _) => uid,
            // An unknown `:user`: no process is its daemon.
            (None, Some(_)) => u32::MAX,
            (None, None) => nix::unistd::getuid().as_raw(),
        }
    }

    /// The pid files (if their directory exists) and what they say.
    pub(super) fn inspect(&self) -> Result<(Option<RunDir>, PidState), DaemonError> {
        match self.pid_files(false)? {
            Some(files) => {
                let state = files.inspect(self.daemon_uid())?;
                Ok((Some(files), state))
            }
            None => Ok((None, PidState::Missing)),
        }
    }
}

/// The daemon's user (uid, gid) when it is not the caller: the switch, or
/// the conf's `:user` looked up (for commands that switch no user).
pub(crate) fn daemon_user(req: &Request) -> Option<(u32, u32)> {
    if let Some(switch) = &req.switch {
        return Some(switch.ids());
    }
    let name = req.conf.spec.user.as_deref()?;
    let user = nix::unistd::User::from_name(name).ok().flatten()?;
    Some((user.uid.as_raw(), user.gid.as_raw()))
}

/// The caller of a Lisp: its environment, and its directory.
pub(crate) fn caller(req: &Request) -> plan::Caller {
    plan::Caller {
        env: caller_env(),
        dir: caller_dir(req, req.switch.as_ref()),
    }
}

/// The directory the command was run from, for the daemon's
/// `*default-pathname-defaults*`. As root, only one that root (or the
/// daemon's `:user`) alone can change: else a relative path in the conf's
/// code (`(load "init.lisp")`) would run another user's file with the
/// daemon's power. Otherwise none, and the daemon's is `/` (the README
/// says so). `switch`: the user the Lisp runs as, if not the caller.
pub(super) fn caller_dir(req: &Request, switch: Option<&identity::Switch>) -> Option<PathBuf> {
    let dir = std::env::current_dir().ok()?;
    if !req.trust.root {
        return Some(dir);
    }
    let policy = match switch {
        None => trust::Policy::Strict,
        Some(s) => trust::Policy::Confined {
            user: Some(s.ids()),
        },
    };
    let found = trust::walk_dir(&dir, policy, &req.trust, "the current directory", None).ok()?;
    // The directory itself writable by its owner alone (not /tmp).
    (found.stat.st_mode & 0o022 == 0).then_some(dir)
}

/// The caller's environment for a Lisp; as root, `HOME` is root's own
/// (from the passwd entry): a `HOME` kept through sudo would have root's
/// Lisp load the invoking user's `~/.sbclrc` and ASDF configuration.
pub(super) fn caller_env() -> plan::Env {
    let mut env = plan::caller_env();
    if nix::unistd::geteuid().is_root()
        && let Some(home) = caller_home()
    {
        env.retain(|(k, _)| k != "HOME");
        env.push(("HOME".into(), home.into_os_string()));
    }
    env
}

/// The caller's home directory: for root, its passwd entry's (not a `HOME`
/// kept through sudo); for others `HOME`, else their passwd entry's.
pub fn caller_home() -> Option<PathBuf> {
    let from_passwd = || {
        nix::unistd::User::from_uid(nix::unistd::getuid())
            .ok()
            .flatten()
            .map(|u| u.dir)
    };
    if nix::unistd::geteuid().is_root() {
        return from_passwd();
    }
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|h| h.is_absolute())
        .or_else(from_passwd)
}
