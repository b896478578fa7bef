//! A Lisp to start, prepared before fork: the plan turned into what
//! `execve` takes (C strings, the bootstrap in a sealed memfd), the pid
//! files, the identity, `:output`, and supervision. `exec` turns it into a
//! process; `spawn` and `supervise` decide when.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::Write as _;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use nix::fcntl::{FcntlArg, SealFlag, fcntl};
use nix::sys::memfd::{MFdFlags, memfd_create};

use super::contain::Cgroup;
use super::error::DaemonError;
use super::identity::Switch;
use super::process::Aim;
use super::rundir::RunDir;
use crate::plan::{LaunchPlan, Policy, Slot};

/// What the daemon process needs, prepared before fork.
pub struct Launch {
    pub(super) program: CString,
    pub(super) program_name: String,
    pub(super) argv: Vec<CString>,
    pub(super) envp: Vec<CString>,
    pub(super) bootstrap: OwnedFd,
    /// See `LaunchPlan::keep_ready_reader`.
    pub(super) keep_ready_reader: bool,
    /// Where in the Lisp the signals it is sent go.
    pub(super) aim: Aim,
    /// The daemon's pid files (`start`); none in the foreground.
    pub(super) pid_files: Option<RunDir>,
    pub(super) umask: u32,
    pub(super) switch: Option<Switch>,
    pub(super) output: Option<PathBuf>,
    /// With a restart policy, the daemon process is a supervisor of the Lisp.
    pub(super) supervise: Option<Policy>,
    pub(super) cwd: Option<PathBuf>,
    /// The daemon's cgroup (see `contain`), made by the caller; none in
    /// the foreground or where the kernel offers none.
    pub(super) cgroup: Option<Cgroup>,
    pub(super) fds: Vec<(Slot, i32)>,
    /// When the Lisp is ready (`:ready`).
    pub(super) ready: crate::config::Readiness,
    /// `:listen`'s sockets, once bound (by the process that holds them
    /// across restarts: a supervisor, or nodaemon).
    pub(super) listen: Vec<crate::config::Listen>,
    pub(super) listeners: Vec<OwnedFd>,
    /// The control directory, where the notify socket is bound (made by
    /// the caller: see `program::make_control_dir`).
    pub(super) control_dir: Option<super::rundir::ControlDir>,
}

fn cstring(s: &OsStr) -> CString {
    // Arguments and environment come from the OS or from our own text,
    // neither of which can hold a NUL byte; replace defensively.
    CString::new(
        s.as_bytes()
            .iter()
            .map(|b| if *b == 0 { b'?' } else { *b })
            .collect::<Vec<u8>>(),
    )
    .expect("NUL bytes were replaced")
}

/// A private, unlinked file holding the bootstrap (never on disk, never in
/// argv), sealed: nobody, the daemon's user included, can change it for
/// the Lisps started from it later (a supervisor's restarts).
pub fn bootstrap_file(text: &str) -> Result<OwnedFd, DaemonError> {
    let flags = MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING;
    let fd = memfd_create(c"daemonization-bootstrap", flags).map_err(DaemonError::Memfd)?;
    let mut file = File::from(fd);
    file.write_all(text.as_bytes())
        .map_err(DaemonError::WriteBootstrap)?;
    let seals = SealFlag::F_SEAL_SEAL
        | SealFlag::F_SEAL_SHRINK
        | SealFlag::F_SEAL_GROW
        | SealFlag::F_SEAL_WRITE;
    fcntl(file.as_fd(), FcntlArg::F_ADD_SEALS(seals)).map_err(DaemonError::Memfd)?;
    Ok(file.into())
}

impl Launch {
    /// Makes `plan` ready for exec, as the program found at `program`,
    /// claiming `pid_files` if given.
    pub fn new(
        plan: &LaunchPlan,
        program: &Path,
        pid_files: Option<RunDir>,
    ) -> Result<Launch, DaemonError> {
        let envp = plan
            .env
            .iter()
            .map(|(k, v)| {
                let mut kv = k.clone();
                kv.push("=");
                kv.push(v);
                cstring(&kv)
            })
            .collect();
        let mut argv = vec![cstring(&plan.program)];
        argv.extend(plan.args.iter().map(|a| cstring(a)));
        Ok(Launch {
            program: cstring(program.as_os_str()),
            program_name: program.display().to_string(),
            argv,
            envp,
            bootstrap: bootstrap_file(&plan.bootstrap)?,
            keep_ready_reader: plan.keep_ready_reader,
            aim: Aim::of(plan.signal_main_thread),
            pid_files,
            umask: plan.umask,
            switch: plan.identity.clone(),
            output: plan.output.clone(),
            supervise: plan.supervision.clone(),
            cwd: plan.cwd.clone(),
            cgroup: None,
            fds: plan.fds.clone(),
            ready: plan.ready.clone(),
            listen: plan.listen.clone(),
            listeners: Vec::new(),
            control_dir: None,
        })
    }

    /// The descriptor the plan gives `slot` in the Lisp.
    pub(super) fn target(&self, slot: Slot) -> Option<i32> {
        self.fds.iter().find(|(s, _)| *s == slot).map(|(_, t)| *t)
    }

    /// The Lisp's environment at exec: with its own pid as `LISTEN_PID`
    /// when it gets held sockets (systemd's protocol: the receiver checks
    /// it is the process meant).
    pub(super) fn exec_env(&self) -> Vec<CString> {
        let mut envp = self.envp.clone();
        if self.fds.iter().any(|(s, _)| matches!(s, Slot::Listener(_))) {
            envp.push(cstring(
                format!("LISTEN_PID={}", std::process::id()).as_ref(),
            ));
        }
        envp
    }

    /// Gives the Lisp the notify socket of `ready_by`, if it has one.
    pub(super) fn notify_to(&mut self, ready_by: Option<&super::events::ReadyBy>) {
        if let Some(address) = ready_by.and_then(super::events::ReadyBy::notify_address) {
            self.envp
                .retain(|kv| !kv.as_bytes().starts_with(b"NOTIFY_SOCKET="));
            self.envp
                .push(cstring(format!("NOTIFY_SOCKET={address}").as_ref()));
        }
    }

    /// The uid the Lisp runs as.
    pub(super) fn uid(&self) -> u32 {
        self.switch
            .as_ref()
            .map_or_else(|| nix::unistd::getuid().as_raw(), |s| s.ids().0)
    }

    /// The plan's descriptor layout with the descriptors that fill its
    /// slots here (`source` gives one per slot, or none to leave it out).
    /// The reload pipe's slots are filled here, with a new pipe for this
    /// Lisp (left out if none can be made: `reload` then says so).
    pub(super) fn layout(
        &self,
        mut source: impl FnMut(Slot) -> Option<std::os::fd::RawFd>,
    ) -> Vec<(std::os::fd::RawFd, i32)> {
        use std::os::fd::IntoRawFd as _;
        let reload = self
            .fds
            .iter()
            .any(|(slot, _)| *slot == Slot::Reload)
            .then(|| nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ok())
            .flatten()
            // Raw from here on: `arrange` places or closes them.
            .map(|(read, write)| (read.into_raw_fd(), write.into_raw_fd()));
        self.fds
            .iter()
            .filter_map(|&(slot, target)| {
                let fd = match slot {
                    Slot::Reload => reload.map(|(_, write)| write),
                    Slot::ReloadReader => reload.map(|(read, _)| read),
                    Slot::Listener(i) => self.listeners.get(i).map(AsRawFd::as_raw_fd),
                    _ => source(slot),
                };
                fd.map(|fd| (fd, target))
            })
            .collect()
    }
}
