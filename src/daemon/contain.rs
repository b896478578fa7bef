//! The daemon's whole process tree. A daemon is every process that
//! descends from its Lisp, also those that `setsid`, double-fork or change
//! their process group: `stop`, `kill`, a failed start, `zap --force` and a
//! supervisor's restarts end them all (s6's process groups, systemd's
//! `KillMode=control-group`).
//!
//! Where the kernel offers it (cgroup v2 and the power to make a cgroup,
//! which root has), a daemon started as root gets a cgroup of its own,
//! `daemonization/NAME-HASH` under the hierarchy, made and owned by root:
//! its Lisp (or its supervisor, with the Lisp in the child cgroup `lisp`)
//! enters it before exec, and no process of the daemon's user can leave it
//! (moving a process needs write access to a cgroup both share, root's).
//! `cgroup.kill` ends it whole. Elsewhere a supervisor is the subreaper of
//! its Lisp's tree and ends what is left of it once the Lisp has ended;
//! an unsupervised daemon of a user without a cgroup is contained by its
//! session only (the README says so).

use std::fs::File;
use std::io::{Read as _, Seek as _, Write as _};
use std::os::fd::AsFd as _;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::PollFlags;
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::events::ready_within;
use super::process::{Aim, PidFd};

/// The directory under the hierarchy that holds the daemons' cgroups.
const TOP: &str = "daemonization";
/// The child cgroup of a supervisor's Lisp.
const LISP: &str = "lisp";

/// A cgroup (v2) of the tool's: a directory of the cgroup file system.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cgroup {
    pub path: PathBuf,
}

/// Where the cgroup v2 hierarchy is mounted, from /proc/self/mountinfo.
fn hierarchy() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let point = left.split_whitespace().nth(4)?;
        (right.split_whitespace().next()? == "cgroup2").then(|| PathBuf::from(point))
    })
}

impl Cgroup {
    /// The cgroup of the daemon whose pid file is `pid_file`, when this
    /// process may make one (root, cgroup v2 mounted, `cgroup.kill` known).
    pub fn of_daemon(pid_file: &Path) -> Option<Cgroup> {
        if !nix::unistd::geteuid().is_root() {
            return None;
        }
        let top = hierarchy()?.join(TOP);
        let stem: String = pid_file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
            .chars()
            .map(|c| match c.is_ascii_alphanumeric() || "._-".contains(c) {
                true => c,
                false => '_',
            })
            .take(40)
            .collect();
        let hash = super::stable_hash(pid_file.as_os_str().as_encoded_bytes());
        Some(Cgroup {
            path: top.join(format!("{stem}-{hash:016x}")),
        })
    }

    /// The child cgroup of a supervisor's Lisp of `generation` (a new one
    /// starts beside the old one when `restart` replaces it).
    pub fn lisp(&self, generation: u32) -> Cgroup {
        Cgroup {
            path: self.path.join(match generation {
                0 => LISP.to_string(),
                n => format!("{LISP}-{n}"),
            }),
        }
    }

    /// Makes the cgroup (and its parents under the hierarchy) if missing;
    /// an existing one must be root's directory (only root can make
    /// directories there, but a loosened hierarchy is refused all the same).
    pub fn create(&self) -> std::io::Result<()> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&self.path)?;
        let meta = std::fs::symlink_metadata(&self.path)?;
        if !meta.is_dir() || meta.uid() != 0 {
            return Err(std::io::Error::other(format!(
                "{} is not a cgroup directory of root's",
                self.path.display()
            )));
        }
        if !self.path.join("cgroup.kill").exists() {
            return Err(std::io::Error::other("the kernel has no cgroup.kill"));
        }
        Ok(())
    }

    /// Whether the cgroup exists.
    pub fn exists(&self) -> bool {
        self.path.join("cgroup.procs").exists()
    }

    /// Moves this process into the cgroup (between fork and exec), made
    /// again if it is gone: a `stop` that found no daemon removes an empty
    /// one, maybe between a `start`'s making and entering it.
    pub fn enter(&self) -> std::io::Result<()> {
        let mut tries = 3;
        loop {
            let entered = std::fs::OpenOptions::new()
                .write(true)
                .open(self.path.join("cgroup.procs"))
                .and_then(|mut procs| procs.write_all(b"0"));
            match entered {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && tries > 0 => {
                    tries -= 1;
                    self.create()?;
                }
                entered => return entered,
            }
        }
    }

    /// The processes in the cgroup and every cgroup below it.
    pub fn members(&self) -> Vec<i32> {
        let mut found = Vec::new();
        let mut dirs = vec![self.path.clone()];
        while let Some(dir) = dirs.pop() {
            if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
                found.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
            }
            if let Ok(entries) = std::fs::read_dir(&dir) {
                dirs.extend(
                    entries
                        .flatten()
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                        .map(|e| e.path()),
                );
            }
        }
        found
    }

    /// Sends `signal` to every process in the cgroup but `spare`. Each is
    /// pinned by a pidfd, then the cgroup read again: a pid still listed is
    /// the pinned process (or a new member that got the pid of one that
    /// exited, whose pidfd then signals nothing), never a process outside
    /// that took the pid of one that exited between the read and the kill.
    pub fn signal_all(&self, signal: Signal, spare: &[i32]) {
        let pinned: Vec<PidFd> = self
            .members()
            .into_iter()
            .filter(|pid| !spare.contains(pid))
            .filter_map(|pid| PidFd::open(pid).ok())
            .collect();
        let members = self.members();
        for process in pinned.iter().filter(|p| members.contains(&p.pid)) {
            let _ = process.signal(signal, Aim::Process);
        }
    }

    /// Whether a process is left in the cgroup or below it (a cgroup that
    /// is gone holds none).
    pub fn populated(&self) -> bool {
        std::fs::read_to_string(self.path.join("cgroup.events"))
            .is_ok_and(|events| events.lines().any(|l| l == "populated 1"))
    }

    /// Waits until the cgroup is empty or `deadline` passes: the kernel
    /// marks `cgroup.events` changed (POLLPRI) whenever `populated` does.
    pub fn wait_empty(&self, deadline: Instant) -> bool {
        let Ok(mut events) = File::open(self.path.join("cgroup.events")) else {
            return true;
        };
        loop {
            let mut text = String::new();
            if events.rewind().is_err() || events.read_to_string(&mut text).is_err() {
                return !self.populated();
            }
            if !text.lines().any(|l| l == "populated 1") {
                return true;
            }
            if deadline <= Instant::now() {
                return false;
            }
            // A second at most: a change seen before the read is seen
            // at the next one.
            let soon = deadline.min(Instant::now() + Duration::from_secs(1));
            let _ = ready_within(&[(events.as_fd(), PollFlags::POLLPRI)], Some(soon));
        }
    }

    /// Kills every process in the cgroup and below it (`cgroup.kill`:
    /// forks racing the kill are caught too) and waits, within `wait`,
    /// until they are gone; true if they are.
    pub fn kill_all(&self, wait: Duration) -> bool {
        if !self.exists() {
            return true;
        }
        let deadline = Instant::now() + wait;
        let killed = std::fs::OpenOptions::new()
            .write(true)
            .open(self.path.join("cgroup.kill"))
            .and_then(|mut f| f.write_all(b"1"));
        if killed.is_err() {
            self.signal_all(Signal::SIGKILL, &[]);
        }
        self.wait_empty(deadline)
    }

    /// Removes the cgroup (and its child cgroups) once empty.
    pub fn remove(&self) {
        if let Ok(entries) = std::fs::read_dir(&self.path) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                if name.to_string_lossy().starts_with(LISP) && entry.path().is_dir() {
                    let _ = std::fs::remove_dir(entry.path());
                }
            }
        }
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// Where the kernel counts the OOM kills of a Lisp's memory cgroup, and
/// the count when the Lisp started: a Lisp killed by SIGKILL after the
/// count grew was killed by the OOM killer. Cgroup v2's `memory.events`
/// (hierarchical: the nearest cgroup up the Lisp's that has the memory
/// controller) or v1's `memory.oom_control` (the memory cgroup a Lisp
/// inherits from whoever started the tool, e.g. a unit's `MemoryLimit=`
/// on a hybrid hierarchy). The files are the kernel's; a process cannot
/// write them.
#[derive(Debug)]
pub struct OomCount {
    file: PathBuf,
    before: u64,
    /// The cgroup that counts holds other processes than this daemon's
    /// (a kill it counted may have been another's).
    pub shared: bool,
}

impl OomCount {
    /// For a Lisp about to be forked into `cgroup` (v2, the daemon's own
    /// cgroup's child, when the tool made one), else into this process's
    /// cgroups, which are the daemon's alone when `ours` (a service's:
    /// the unit's cgroup); None where no memory controller counts.
    pub fn for_lisp(
        daemon: Option<&Cgroup>,
        cgroup: Option<&Cgroup>,
        ours: bool,
    ) -> Option<OomCount> {
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let (file, shared) = match v2_memory_events(cgroup, &own) {
            Some((file, walked_up)) => {
                let dir = file.parent().unwrap_or(Path::new("/"));
                let within = daemon.is_some_and(|d| dir.starts_with(&d.path));
                (file, !(within || ours && !walked_up))
            }
            None => {
                // The unit's memory cgroup, not one it shares (a slice's).
                let (file, path) = v1_oom_control(&own)?;
                let unit = own.lines().find_map(|l| {
                    l.strip_prefix("0::")
                        .or_else(|| l.split_once(":name=systemd:").map(|(_, p)| p))
                });
                (file, !(ours && unit == Some(path.as_str())))
            }
        };
        let before = oom_kills_in(&file)?;
        Some(OomCount {
            file,
            before,
            shared,
        })
    }

    /// Whether the OOM killer killed in the Lisp's memory cgroup since it
    /// started.
    pub fn grew(&self) -> bool {
        oom_kills_in(&self.file).is_some_and(|now| now > self.before)
    }

    /// The cgroup that counted.
    pub fn cgroup(&self) -> &Path {
        self.file.parent().unwrap_or(Path::new("/"))
    }
}

/// The `oom_kill N` line of a memory cgroup's events or OOM control file.
fn oom_kills_in(file: &Path) -> Option<u64> {
    std::fs::read_to_string(file)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))?
        .trim()
        .parse()
        .ok()
}

/// `memory.events` of `cgroup` (else of this process's v2 cgroup, the
/// `0::PATH` line of /proc/self/cgroup) or of the nearest cgroup above it,
/// and whether it is above.
fn v2_memory_events(cgroup: Option<&Cgroup>, own: &str) -> Option<(PathBuf, bool)> {
    let top = hierarchy()?;
    let mut dir = match cgroup {
        Some(c) => c.path.clone(),
        None => {
            let path = own.lines().find_map(|l| l.strip_prefix("0::"))?;
            top.join(path.trim_start_matches('/'))
        }
    };
    let mut above = false;
    while dir.starts_with(&top) && dir != top {
        let events = dir.join("memory.events");
        if events.exists() {
            return Some((events, above));
        }
        dir.pop();
        above = true;
    }
    None
}

/// `memory.oom_control` of this process's v1 memory cgroup, and its path
/// in the hierarchy: the line
/// `N:…memory…:PATH` of /proc/self/cgroup, under the mount of a `cgroup`
/// file system with the `memory` option.
fn v1_oom_control(own: &str) -> Option<(PathBuf, String)> {
    let path = own.lines().find_map(|l| {
        let mut fields = l.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        controllers
            .split(',')
            .any(|c| c == "memory")
            .then_some(path)
    })?;
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    // A mount of the hierarchy's root, or of the part of it above PATH
    // (a container's).
    let (root, mount) = info.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mut right = right.split_whitespace();
        let (kind, options) = (right.next()?, right.nth(1)?);
        let mut left = left.split_whitespace();
        let (root, point) = (left.nth(3)?, left.next()?);
        (kind == "cgroup"
            && options.split(',').any(|o| o == "memory")
            && Path::new(path).starts_with(root))
        .then(|| (PathBuf::from(root), PathBuf::from(point)))
    })?;
    let below = Path::new(path).strip_prefix(&root).ok()?;
    Some((
        mount.join(below).join("memory.oom_control"),
        path.to_string(),
    ))
}

/// Ends the rest of a tree whose Lisp has ended, in a supervisor (the
/// subreaper of its Lisp's descendants) without a cgroup: every child of
/// this process is a descendant of a Lisp of ours, and one reparented to
/// us once its parent is killed is killed in turn, until none is left or
/// `wait` has passed. Each is pinned by a pidfd before the kill, waited
/// for with the deadline, and reaped.
pub fn end_orphans(wait: Duration) {
    let me = std::process::id() as i32;
    let deadline = Instant::now() + wait;
    loop {
        reap_exited();
        let children: Vec<PidFd> = children_of(me)
            .into_iter()
            .filter_map(|pid| PidFd::open(pid).ok())
            .collect();
        if children.is_empty() || Instant::now() > deadline {
            return;
        }
        for child in &children {
            let _ = child.signal(Signal::SIGKILL, Aim::Process);
        }
        for child in &children {
            child.wait_exit(deadline.saturating_duration_since(Instant::now()));
        }
    }
}

/// Reaps every child of this process that has ended, without waiting.
fn reap_exited() {
    while let Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) =
        waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG))
    {}
}

/// Kills the processes of session `sid` (a daemon's without a cgroup: the
/// session its intermediate process made; its id stays taken, never
/// reused, while any process is in it) and waits up to `wait` for them.
pub fn end_session(sid: i32, wait: Duration) {
    let deadline = Instant::now() + wait;
    loop {
        // Pinned first, then judged: a pid reused meanwhile is not killed.
        let members: Vec<PidFd> = processes()
            .filter_map(|pid| PidFd::open(pid).ok())
            .filter(|process| super::process::session(process.pid) == Some(sid))
            .collect();
        if members.is_empty() || Instant::now() > deadline {
            return;
        }
        for member in &members {
            let _ = member.signal(Signal::SIGKILL, Aim::Process);
        }
        for member in &members {
            member.wait_exit(deadline.saturating_duration_since(Instant::now()));
        }
        reap_exited();
    }
}

/// Every pid in /proc.
fn processes() -> impl Iterator<Item = i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
}

/// `pid` and every process that descends from it (by their parents, as
/// /proc says now: what left the tree is not counted).
pub fn tree_of(pid: i32) -> Vec<i32> {
    let parents: Vec<(i32, i32)> = processes()
        .filter_map(|p| Some((p, super::process::parent(p)?)))
        .collect();
    let mut tree = vec![pid];
    let mut at = 0;
    while at < tree.len() {
        let parent = tree[at];
        tree.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        at += 1;
    }
    tree
}

/// The processes whose parent is `parent`, from /proc.
pub fn children_of(parent: i32) -> Vec<i32> {
    processes()
        .filter(|pid| super::process::parent(*pid) == Some(parent))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_daemons_cgroup_is_named_after_its_pid_file() {
        if !nix::unistd::geteuid().is_root() || hierarchy().is_none() {
            assert_eq!(Cgroup::of_daemon(Path::new("/run/x/web.pid")), None);
            return;
        }
        let a = Cgroup::of_daemon(Path::new("/run/x/we b;.pid")).unwrap();
        let b = Cgroup::of_daemon(Path::new("/run/y/we b;.pid")).unwrap();
        let name = a.path.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with("we_b_-") && name.len() == "we_b_-".len() + 16,
            "{name}"
        );
        assert_ne!(a, b);
        assert_eq!(a.path.parent().unwrap().file_name().unwrap(), TOP);
        assert_eq!(a.lisp(0).path, a.path.join("lisp"));
        assert_eq!(a.lisp(2).path, a.path.join("lisp-2"));
    }
}
