//! The run directory (`RunDir`): pid files, and the lock that says a
//! daemon is alive.
//!
//! Three files sit side by side in the pid directory: `NAME` (the pid,
//! 0644, for monitoring tools), `NAME.lock` (0600: only the caller, root in
//! production, can open it) and, under a supervisor, `NAME.state`.
//!
//! The daemon process takes a POSIX read lock on `NAME.lock`, a file made
//! new for it, through a read-only descriptor on `LOCK_FD`, and holds it
//! across exec for its whole life; the kernel drops it when the process
//! dies, and `fork` does not pass it on. A daemon runs when the process its
//! pid file names holds that lock, as `/proc/PID/fdinfo/LOCK_FD` shows (a
//! process's own locks only: no other process can pass for it, and no lock
//! of anyone else is ever counted). No other user can lock the file, since
//! no other user can open it.
//!
//! Claims and removals are serialised by an `flock` on `NAME.claim`, a
//! file only the caller can open, made for the claim or removal and
//! removed after it: no daemon ever holds a descriptor of it, so no one but
//! another command of the tool can hold it, and waits for it are bounded.
//!
//! A pid file without a lock (the daemon died, or the original Lisp tool
//! wrote it) is trusted only if its pid is a live Lisp of the expected user
//! that started shortly before the file was written; nothing else is
//! signalled.
//!
//! Every file is reached through the descriptor of the pid directory,
//! which the trust walk judged, and never through a symbolic link.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, FcntlArg, OFlag, fcntl, openat, renameat};
use nix::libc;
use nix::sys::stat::{FileStat, Mode, SFlag, fchmod, fstat, fstatat};
use nix::unistd::{UnlinkatFlags, unlinkat};

use super::error::DaemonError;
use super::{identity, process};
use crate::plan::LOCK_FD;
use crate::trust::{
    self, Create, Dir, DirKind, PathError, Policy, Refused, Trust, kind_name, owner_problem,
};

/// The longest wait for `NAME.claim` (held by another command of the tool
/// for microseconds).
const CLAIM_WAIT: Duration = Duration::from_secs(10);
/// At most this much of a pid file is read.
const MAX_PID_BYTES: usize = 64;
/// The longest the removal of what a daemon's user left in its control
/// directory may take.
const CONTROL_DIR_WAIT: Duration = Duration::from_secs(10);
/// A lock-less pid file names its daemon only if the process started at
/// most this long before the file was last written (the original tool
/// wrote it right after fork).
const STARTED_BEFORE: Duration = Duration::from_secs(5);

/// What a pid file says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PidState {
    /// No pid file.
    Missing,
    /// A daemon runs: it holds the lock (`locked`), or it is the live Lisp
    /// of a lock-less pid file.
    Running { pid: i32, locked: bool },
    /// The pid file remains but no daemon runs; its pid, if readable.
    Stale { pid: Option<i32> },
}

/// The result of trying to take a pid file for a new daemon.
pub enum Claim {
    /// The lock is ours and the file holds our pid.
    Locked,
    /// A daemon holds the lock.
    Held(i32),
}

/// `NAME.claim`, `flock`ed: held while a claim or removal changes the
/// files, removed when dropped.
struct ClaimLock<'a> {
    files: &'a RunDir,
    _fd: OwnedFd,
}

impl Drop for ClaimLock<'_> {
    fn drop(&mut self) {
        // Unlinked before the descriptor (and so the flock) goes: a waiter
        // then finds it unlinked and makes a new one.
        let name = self.files.sibling(".claim");
        let _ = unlinkat(
            self.files.fd(),
            name.as_os_str(),
            UnlinkatFlags::NoRemoveDir,
        );
    }
}

/// The daemon's run directory: the pid directory, judged once by the trust
/// walk and held as a descriptor, and the daemon's files in it (the pid,
/// lock, claim and state files), every one reached through that descriptor.
#[derive(Debug)]
pub struct RunDir {
    dir: Dir,
    name: OsString,
    path: PathBuf,
    trust: Trust,
}

/// Unlinks every entry of `dir` that is not a directory.
fn empty_dir(dir: &OwnedFd) {
    let Ok(listing) = nix::dir::Dir::openat(
        dir.as_fd(),
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) else {
        return;
    };
    let names: Vec<std::ffi::CString> = listing
        .into_iter()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_owned())
        .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
        .collect();
    for name in names {
        let _ = unlinkat(dir.as_fd(), name.as_c_str(), UnlinkatFlags::NoRemoveDir);
    }
}

fn whole_file_lock(kind: libc::c_int) -> libc::flock {
    libc::flock {
        l_type: kind as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    }
}

impl RunDir {
    /// Opens the directory of the pid file `path`. With `create`, missing
    /// directories are made (0755); without, a missing directory is `None`.
    /// `private` is the tool's own per-user directory when the pid file is
    /// in it: it must be the caller's, and is made 0700.
    pub fn open(
        path: &Path,
        private: Option<&Path>,
        trust: &Trust,
        create: bool,
    ) -> Result<Option<RunDir>, DaemonError> {
        const WHAT: &str = "the pid file directory";
        let parent = path.parent().unwrap_or(Path::new("/"));
        let Some(name) = path.file_name() else {
            return Err(PathError::io("the pid file", path, Errno::EISDIR).into());
        };
        let mkdir = create.then_some(Create {
            mode: 0o755,
            owner: None,
        });
        if let Some(private) = private {
            match private_dir(private, trust, create) {
                Err(e) if !create && e.is_missing() => return Ok(None),
                other => other?,
            }
        }
        let dir = match trust::walk_dir(parent, Policy::Strict, trust, WHAT, mkdir) {
            Ok(dir) => dir,
            Err(e) if !create && e.is_missing() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok(Some(RunDir {
            dir,
            name: name.to_owned(),
            path: path.to_path_buf(),
            trust: trust.clone(),
        }))
    }

    /// The same files through a second descriptor of the directory.
    pub fn try_clone(&self) -> Result<RunDir, DaemonError> {
        let fd = self.dir.fd.try_clone().map_err(|e| {
            PathError::io(
                "the pid file directory",
                &self.dir.path,
                Errno::from_raw(e.raw_os_error().unwrap_or(libc::EBADF)),
            )
        })?;
        Ok(RunDir {
            dir: Dir {
                fd,
                path: self.dir.path.clone(),
                kind: self.dir.kind,
                stat: self.dir.stat,
            },
            name: self.name.clone(),
            path: self.path.clone(),
            trust: self.trust.clone(),
        })
    }

    /// The directory's path, for messages.
    pub fn dir_path(&self) -> &Path {
        &self.dir.path
    }

    /// Whether the directory is on a read-only file system (its files
    /// cannot be removed).
    pub fn read_only(&self) -> bool {
        nix::sys::statvfs::fstatvfs(&self.dir.fd)
            .is_ok_and(|v| v.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
    }

    /// The directory's descriptor, for the daemon process's layout.
    pub fn dir_fd(&self) -> RawFd {
        self.dir.fd.as_raw_fd()
    }

    /// After `exec::arrange` placed the directory on `slot` (and closed its
    /// old descriptor): uses `slot`, close-on-exec.
    pub fn adopt_dir_fd(&mut self, slot: RawFd) {
        // SAFETY: `arrange` made `slot` a descriptor of the directory that
        // nothing else owns; the old one is closed, so it is forgotten.
        let old = std::mem::replace(&mut self.dir.fd, unsafe { OwnedFd::from_raw_fd(slot) });
        std::mem::forget(old);
        let _ = fcntl(
            self.dir.fd.as_fd(),
            FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        );
    }

    fn sibling(&self, suffix: &str) -> OsString {
        let mut name = self.name.clone();
        name.push(suffix);
        name
    }

    fn sibling_path(&self, name: &OsStr) -> PathBuf {
        self.dir.path.join(name)
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.dir.fd.as_fd()
    }

    fn refuse(&self, name: &OsStr, what: &'static str, reason: String) -> DaemonError {
        let path = self.sibling_path(name);
        DaemonError::from(PathError::from(Refused {
            what,
            fix: format!("remove it (rm {}); the tool writes its own", path.display()),
            path,
            reason,
        }))
    }

    /// Opens a file of the pid directory for reading, never blocking and
    /// never through a symbolic link, and checks it is a trusted owner's
    /// regular file with one link, writable by nobody else; `None` if
    /// missing.
    fn open_checked(
        &self,
        name: &OsStr,
        what: &'static str,
        flags: OFlag,
    ) -> Result<Option<(OwnedFd, FileStat)>, DaemonError> {
        let flags = flags | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        let fd = match openat(self.fd(), name, flags, Mode::from_bits_truncate(0o600)) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(Errno::ELOOP) => {
                return Err(self.refuse(name, what, "it is a symbolic link".into()));
            }
            Err(e) => return Err(PathError::io(what, &self.sibling_path(name), e).into()),
        };
        let st = fstat(fd.as_fd()).map_err(|e| PathError::io(what, &self.sibling_path(name), e))?;
        self.check(name, &st, what, false)?;
        Ok(Some((fd, st)))
    }

    /// Checks a file of the pid directory: a trusted owner's regular file
    /// with one link, writable by nobody else; with `private` (the lock and
    /// claim files), one nobody else may even open.
    fn check(
        &self,
        name: &OsStr,
        st: &FileStat,
        what: &'static str,
        private: bool,
    ) -> Result<(), DaemonError> {
        if !trust::is_kind(st, SFlag::S_IFREG) {
            return Err(self.refuse(name, what, format!("it is {}", kind_name(st))));
        }
        if st.st_nlink > 1 {
            let reason = format!(
                "it has {} hard links, so it may be another file too",
                st.st_nlink
            );
            return Err(self.refuse(name, what, reason));
        }
        if let Some(reason) = owner_problem(st, &self.trust) {
            return Err(self.refuse(name, what, reason));
        }
        if private && st.st_mode & 0o077 != 0 {
            let reason = format!("others may open it (mode {:04o})", st.st_mode & 0o7777);
            return Err(self.refuse(name, what, reason));
        }
        Ok(())
    }

    /// Takes `NAME.claim` (made 0600 if missing), waiting at most
    /// `CLAIM_WAIT` for another command of the tool.
    fn claim_lock(&self) -> Result<ClaimLock<'_>, DaemonError> {
        const WHAT: &str = "the claim file";
        let name = self.sibling(".claim");
        let path = self.sibling_path(&name);
        let deadline = Instant::now() + CLAIM_WAIT;
        loop {
            let flags = OFlag::O_RDONLY
                | OFlag::O_CREAT
                | OFlag::O_NOFOLLOW
                | OFlag::O_NONBLOCK
                | OFlag::O_CLOEXEC;
            let fd = openat(
                self.fd(),
                name.as_os_str(),
                flags,
                Mode::from_bits_truncate(0o600),
            )
            .map_err(|e| PathError::io(WHAT, &path, e))?;
            // Out of the way of the descriptors a daemon process places.
            let fd = fcntl(fd.as_fd(), FcntlArg::F_DUPFD_CLOEXEC(10))
                // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor nothing else owns.
                .map(|high| unsafe { OwnedFd::from_raw_fd(high) })
                .map_err(|e| PathError::io(WHAT, &path, e))?;
            let st = fstat(fd.as_fd()).map_err(|e| PathError::io(WHAT, &path, e))?;
            self.check(&name, &st, WHAT, true)?;
            // SAFETY: flock on a descriptor we own, with constant flags.
            if unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                match Errno::last() {
                    Errno::EWOULDBLOCK | Errno::EINTR if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(2));
                        continue;
                    }
                    Errno::EWOULDBLOCK => return Err(DaemonError::ClaimBusy { path }),
                    errno => return Err(DaemonError::Lock { path, errno }),
                }
            }
            // The previous holder may have removed it meanwhile.
            match fstatat(self.fd(), name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(now) if now.st_ino == st.st_ino && now.st_dev == st.st_dev => {
                    return Ok(ClaimLock {
                        files: self,
                        _fd: fd,
                    });
                }
                _ => continue,
            }
        }
    }

    /// The lock file, checked, if it is there.
    fn lock_stat(&self) -> Result<Option<FileStat>, DaemonError> {
        let name = self.sibling(".lock");
        match fstatat(self.fd(), name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => {
                self.check(&name, &st, "the lock file", true)?;
                Ok(Some(st))
            }
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(PathError::io("the lock file", &self.sibling_path(&name), e).into()),
        }
    }

    /// Whether the process `pid` (the pid file's) holds the lock.
    pub fn holds(&self, pid: i32) -> Result<bool, DaemonError> {
        Ok(match self.lock_stat()? {
            Some(st) => holds_lock(pid, &st),
            None => false,
        })
    }

    /// The pid in the pid file, and when the file was last written.
    fn read_pid(&self) -> Result<Option<(Option<i32>, SystemTime)>, DaemonError> {
        let Some((fd, st)) = self.open_checked(&self.name, "the pid file", OFlag::O_RDONLY)? else {
            return Ok(None);
        };
        let mut buf = [0u8; MAX_PID_BYTES];
        let n = nix::unistd::read(fd.as_fd(), &mut buf)
            .map_err(|e| PathError::io("the pid file", &self.path, e))?;
        let pid = std::str::from_utf8(&buf[..n])
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok())
            .filter(|p| *p > 0);
        let written = SystemTime::UNIX_EPOCH
            + Duration::new(
                st.st_mtime.max(0) as u64,
                st.st_mtime_nsec.clamp(0, 999_999_999) as u32,
            );
        Ok(Some((pid, written)))
    }

    /// Reads the state: the daemon runs when the process the pid file names
    /// holds the lock; a lock-less pid file names a running daemon only if
    /// its process is a Lisp running as `uid` that started at most
    /// `STARTED_BEFORE` before the file was written.
    pub fn inspect(&self, uid: u32) -> Result<PidState, DaemonError> {
        Ok(match self.read_pid()? {
            None => PidState::Missing,
            Some((None, _)) => PidState::Stale { pid: None },
            Some((Some(pid), _)) if self.holds(pid)? => PidState::Running { pid, locked: true },
            Some((Some(pid), written)) => match lockless_daemon(pid, written, uid) {
                true => PidState::Running { pid, locked: false },
                false => PidState::Stale { pid: Some(pid) },
            },
        })
    }

    /// Whether `pid` still is the daemon `inspect` found (after a pidfd
    /// pinned it, so a reused pid is never taken for it).
    pub fn still_the_daemon(&self, pid: i32, locked: bool, uid: u32) -> bool {
        match locked {
            true => self.holds(pid).unwrap_or(false),
            false => self
                .read_pid()
                .ok()
                .flatten()
                .is_some_and(|(named, written)| {
                    named == Some(pid) && lockless_daemon(pid, written, uid)
                }),
        }
    }

    /// In the daemon process, before exec: unless the daemon the pid file
    /// names holds the lock, takes it on a new lock file, through a
    /// read-only descriptor placed on `target` (kept across exec for the
    /// daemon's whole life), then writes `pid` to the pid file.
    pub fn claim(&self, target: RawFd, pid: i32) -> Result<Claim, DaemonError> {
        const WHAT: &str = "the lock file";
        let name = self.sibling(".lock");
        let path = self.sibling_path(&name);
        let _claim = self.claim_lock()?;
        if let Some(named) = self.read_pid()?.and_then(|(pid, _)| pid)
            && self.holds(named)?
        {
            return Ok(Claim::Held(named));
        }
        // A new file: no lock anyone took on an old one counts.
        self.unlink(&name)?;
        // Made here (O_EXCL, 0600): ours, and no one else may open it.
        let flags = OFlag::O_RDONLY | OFlag::O_CREAT | OFlag::O_EXCL;
        let Some((fd, _)) = self.open_checked(&name, WHAT, flags)? else {
            return Err(PathError::io(WHAT, &path, Errno::ENOENT).into());
        };
        // On its slot before the lock is taken: closing any other descriptor
        // of the file would drop the process's lock.
        let fd = move_to_slot(fd, target).map_err(|e| PathError::io(WHAT, &path, e))?;
        fcntl(
            fd.as_fd(),
            FcntlArg::F_SETLK(&whole_file_lock(libc::F_RDLCK)),
        )
        .map_err(|errno| DaemonError::Lock { path, errno })?;
        self.write_new(&self.name, &format!("{pid}\n"), 0o644)?;
        // Kept open across exec: the lock lives as long as the daemon.
        std::mem::forget(fd);
        Ok(Claim::Locked)
    }

    /// Writes `text` to the file `name` of the pid directory: a new file
    /// (`O_EXCL|O_NOFOLLOW`) renamed into place, so no reader ever sees it
    /// half written and nothing another user prepared is ever written to.
    pub fn write_new(&self, name: &OsStr, text: &str, mode: u32) -> Result<(), DaemonError> {
        let path = self.sibling_path(name);
        let err = |e: Errno| DaemonError::from(PathError::io("the pid file", &path, e));
        let stamp = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let mut temporary = OsString::from(".");
        temporary.push(name);
        temporary.push(format!(".{}.{stamp}", std::process::id()));
        let fd = openat(
            self.fd(),
            temporary.as_os_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(mode),
        )
        .map_err(err)?;
        let written = fchmod(fd.as_fd(), Mode::from_bits_truncate(mode))
            .and_then(|()| write_all(fd.as_fd(), text.as_bytes()))
            .and_then(|()| renameat(self.fd(), temporary.as_os_str(), self.fd(), name));
        if let Err(e) = written {
            let _ = unlinkat(self.fd(), temporary.as_os_str(), UnlinkatFlags::NoRemoveDir);
            return Err(err(e));
        }
        Ok(())
    }

    /// Removes the pid file unless the daemon it names holds the lock
    /// (whose pid is returned, nothing removed); the lock and state files
    /// go with it.
    pub fn remove(&self) -> Result<Option<i32>, DaemonError> {
        let _claim = self.claim_lock()?;
        if let Some(named) = self.read_pid()?.and_then(|(pid, _)| pid)
            && self.holds(named)?
        {
            return Ok(Some(named));
        }
        self.unlink(&self.name)?;
        self.unlink(&self.sibling(".state"))?;
        self.unlink(&self.sibling(".lock"))?;
        self.remove_control_dir();
        Ok(None)
    }

    /// Removes the pid file whatever holds the lock (`zap --force`); the
    /// lock stays, so a daemon still running can still be stopped.
    pub fn remove_pid_file(&self) -> Result<(), DaemonError> {
        let _claim = self.claim_lock()?;
        self.unlink(&self.name)?;
        self.unlink(&self.sibling(".state"))
    }

    /// In the daemon process that holds the lock: its files go as it fails.
    /// The pid and lock files, unlinked: the state file stays (a supervisor
    /// that gave up leaves its record).
    pub fn remove_pid_and_lock(&self) {
        for name in [self.name.clone(), self.sibling(".lock")] {
            let _ = unlinkat(self.fd(), name.as_os_str(), UnlinkatFlags::NoRemoveDir);
        }
    }

    /// The state file, unlinked (a record of a supervisor that gave up).
    pub fn remove_state(&self) -> Result<(), DaemonError> {
        self.unlink(self.sibling(".state").as_os_str())
    }

    pub fn remove_own(&self) {
        for name in [
            self.name.clone(),
            self.sibling(".state"),
            self.sibling(".lock"),
        ] {
            let _ = unlinkat(self.fd(), name.as_os_str(), UnlinkatFlags::NoRemoveDir);
        }
        self.remove_control_dir();
    }

    /// Makes the control socket's directory (`NAME.control`, see
    /// `config::control_dir`) for a daemon of `owner` (the caller's when
    /// `None`): 0700, the owner's, emptied of what an earlier daemon left.
    /// One that exists must be a directory (never followed if a link) of
    /// the owner or root. Returns it, opened.
    pub fn make_control_dir(&self, owner: Option<(u32, u32)>) -> Result<ControlDir, DaemonError> {
        let name = self.sibling(".control");
        let (uid, gid) = owner.unwrap_or((
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        ));
        let path = self.sibling_path(&name);
        let io = |errno| DaemonError::from(PathError::io("the control directory", &path, errno));
        match nix::sys::stat::mkdirat(self.fd(), name.as_os_str(), Mode::S_IRWXU) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(errno) => return Err(io(errno)),
        }
        let dir = match self.open_control_dir() {
            Ok(dir) => dir,
            Err(Errno::ELOOP | Errno::ENOTDIR) => {
                let reason = "it is not a directory".to_string();
                return Err(self.refuse(&name, "the control directory", reason));
            }
            Err(errno) => return Err(io(errno)),
        };
        let mut st = fstat(dir.as_fd()).map_err(io)?;
        let mut dir = dir;
        if st.st_uid != uid && st.st_uid != 0 {
            // Left by a daemon of another user that ended without a stop
            // (this pid file is claimed: none runs): made anew.
            self.remove_control_dir();
            match nix::sys::stat::mkdirat(self.fd(), name.as_os_str(), Mode::S_IRWXU) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(errno) => return Err(io(errno)),
            }
            dir = self.open_control_dir().map_err(io)?;
            st = fstat(dir.as_fd()).map_err(io)?;
        }
        if st.st_uid != uid && st.st_uid != 0 {
            let reason = format!("it is owned by {}", trust::user_name(st.st_uid));
            return Err(self.refuse(&name, "the control directory", reason));
        }
        empty_dir(&dir);
        nix::unistd::fchown(dir.as_fd(), Some(uid.into()), Some(gid.into())).map_err(io)?;
        fchmod(dir.as_fd(), Mode::S_IRWXU).map_err(io)?;
        // Out of the way of the descriptors a daemon process places.
        let fd = fcntl(dir.as_fd(), FcntlArg::F_DUPFD_CLOEXEC(10))
            // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor nothing else owns.
            .map(|high| unsafe { OwnedFd::from_raw_fd(high) })
            .map_err(io)?;
        Ok(ControlDir { fd, path })
    }

    /// The control directory, opened (never through a link); `ENOENT` if
    /// there is none.
    pub fn open_control_dir(&self) -> Result<OwnedFd, Errno> {
        openat(
            self.fd(),
            self.sibling(".control").as_os_str(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
    }

    /// The control directory's path, for messages and for SLIME.
    pub fn control_path(&self) -> PathBuf {
        self.sibling_path(&self.sibling(".control"))
    }

    /// Removes the control directory and what is in it: its files (the
    /// socket; unlinkat never follows a link), and what its owner, the
    /// daemon's user, made in it, removed as that user.
    fn remove_control_dir(&self) {
        let Ok(dir) = self.open_control_dir() else {
            return;
        };
        empty_dir(&dir);
        let name = self.sibling(".control");
        let remove = || unlinkat(self.fd(), name.as_os_str(), UnlinkatFlags::RemoveDir);
        if remove() == Err(Errno::ENOTEMPTY)
            && let Ok(st) = fstat(dir.as_fd())
            && identity::empty_as(dir.as_fd(), (st.st_uid, st.st_gid), CONTROL_DIR_WAIT).is_ok()
        {
            let _ = remove();
        }
    }

    /// Unlinks a file of the pid directory; in a shared sticky directory,
    /// only a trusted owner's.
    fn unlink(&self, name: &OsStr) -> Result<(), DaemonError> {
        let path = self.sibling_path(name);
        if self.dir.kind == DirKind::Sticky {
            match fstatat(self.fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) if !self.trust.owns(st.st_uid) => {
                    let reason = format!("it is owned by {}", trust::user_name(st.st_uid));
                    return Err(self.refuse(name, "the file", reason));
                }
                Ok(_) => {}
                Err(Errno::ENOENT) => return Ok(()),
                Err(errno) => return Err(DaemonError::RemovePidFile { path, errno }),
            }
        }
        match unlinkat(self.fd(), name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(errno) => Err(DaemonError::RemovePidFile { path, errno }),
        }
    }

    /// The file itself, when it is a trusted one (a record of `list`), at
    /// most `MAX_RECORD` bytes.
    pub fn read_own(&self) -> Option<String> {
        self.read_small(&self.name, "the record", crate::wire::record::MAX_RECORD)
    }

    /// Removes the file itself (a record), if it is there.
    pub fn remove_own_file(&self) -> Result<(), DaemonError> {
        self.unlink(&self.name)
    }

    /// Writes the file itself (a record): a new file renamed into place.
    pub fn write_own(&self, text: &str) -> Result<(), DaemonError> {
        self.write_new(&self.name, text, 0o644)
    }

    /// The supervisor's state file, if there is a trusted one.
    pub fn read_state(&self) -> Option<String> {
        let state = self.sibling(".state");
        self.read_small(&state, "the state file", crate::wire::state::MAX_STATE)
    }

    /// The text of the file `name` of the pid directory, if it is a
    /// trusted one, of at most `max` bytes.
    fn read_small(&self, name: &OsStr, what: &'static str, max: usize) -> Option<String> {
        let (fd, _) = self.open_checked(name, what, OFlag::O_RDONLY).ok()??;
        // One byte more than the most: a longer file is not one of ours,
        // never read as its first part.
        let mut buf = Vec::with_capacity(max + 1);
        std::io::Read::read_to_end(
            &mut std::io::Read::take(std::fs::File::from(fd), max as u64 + 1),
            &mut buf,
        )
        .ok()?;
        if buf.len() > max {
            return None;
        }
        String::from_utf8(buf).ok()
    }

    /// Replaces the supervisor's state file.
    pub fn write_state(&self, text: &str) -> Result<(), DaemonError> {
        self.write_new(&self.sibling(".state"), text, 0o644)
    }
}

/// The tool's own per-user pid directory: created 0700, or, when it is
/// there, the caller's (its mode set to 0700); another user's is refused.
fn private_dir(path: &Path, trust: &Trust, create: bool) -> Result<(), PathError> {
    const WHAT: &str = "the pid file directory";
    let parent = path.parent().unwrap_or(Path::new("/"));
    let name = path.file_name().unwrap_or(OsStr::new("."));
    let dir = trust::walk_dir(parent, Policy::Strict, trust, WHAT, None)?;
    if create {
        match nix::sys::stat::mkdirat(dir.fd.as_fd(), name, Mode::from_bits_truncate(0o700)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(PathError::io(WHAT, path, e)),
        }
    }
    let fd = openat(
        dir.fd.as_fd(),
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| match e {
        Errno::ELOOP | Errno::ENOTDIR => PathError::from(Refused {
            what: WHAT,
            path: path.to_path_buf(),
            reason: "it is not a directory".into(),
            fix: format!("remove it (rm {})", path.display()),
        }),
        e => PathError::io(WHAT, path, e),
    })?;
    let st = fstat(fd.as_fd()).map_err(|e| PathError::io(WHAT, path, e))?;
    if st.st_uid != trust.uid {
        return Err(Refused {
            what: WHAT,
            path: path.to_path_buf(),
            reason: format!(
                "it is owned by {}, and it must be {}'s alone",
                trust::user_name(st.st_uid),
                trust::user_name(trust.uid)
            ),
            fix: "have it removed, or set DAEMONIZATION_PID_DIR to a directory of yours".into(),
        }
        .into());
    }
    if st.st_mode & 0o7777 != 0o700 {
        fchmod(fd.as_fd(), Mode::from_bits_truncate(0o700))
            .map_err(|e| PathError::io(WHAT, path, e))?;
    }
    Ok(())
}

/// Whether the process `pid` holds a POSIX lock on the file `st` through
/// its descriptor `LOCK_FD`, as `/proc/PID/fdinfo/LOCK_FD` shows it (only
/// that process's own locks on that descriptor's file: `lock: ID: POSIX
/// ADVISORY MODE PID MAJ:MIN:INODE ...`). A caller that may not read it (a
/// user asking about root's daemon) looks for the same line in
/// `/proc/locks`, which only it then waits on.
fn holds_lock(pid: i32, st: &FileStat) -> bool {
    let (major, minor) = (libc::major(st.st_dev), libc::minor(st.st_dev));
    let file = format!("{major:02x}:{minor:02x}:{}", st.st_ino);
    let is_ours = |line: &str| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        matches!(fields.as_slice(), [_, "POSIX", _, _, p, f, ..] if *p == pid.to_string() && *f == file)
    };
    match std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{LOCK_FD}")) {
        Ok(info) => info
            .lines()
            .filter_map(|l| l.strip_prefix("lock:"))
            .any(is_ours),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            std::fs::read_to_string("/proc/locks").is_ok_and(|locks| locks.lines().any(is_ours))
        }
        Err(_) => false,
    }
}

/// Moves `fd` to descriptor `target` (without close-on-exec).
fn move_to_slot(fd: OwnedFd, target: RawFd) -> Result<OwnedFd, Errno> {
    if fd.as_raw_fd() == target {
        fcntl(fd.as_fd(), FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()))?;
        return Ok(fd);
    }
    // SAFETY: dup2 onto a descriptor number we own in this single-threaded
    // child; the returned descriptor is owned by the OwnedFd built from it.
    if unsafe { libc::dup2(fd.as_raw_fd(), target) } < 0 {
        return Err(Errno::last());
    }
    drop(fd);
    // SAFETY: dup2 made `target` a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(target) })
}

fn write_all(fd: BorrowedFd, mut bytes: &[u8]) -> Result<(), Errno> {
    while !bytes.is_empty() {
        match nix::unistd::write(fd, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether `pid` may be the daemon a lock-less pid file written at
/// `written` names: alive, running as `uid`, a Lisp (by argv[0]), and
/// started at most `STARTED_BEFORE` before the file was written (a second
/// of slack after, for clock granularity).
fn lockless_daemon(pid: i32, written: SystemTime, uid: u32) -> bool {
    let lisp = process::argv0(pid).is_some_and(|a| crate::plan::is_lisp_program(Path::new(&a)));
    let started = process::start_time(pid)
        .is_some_and(|t| t + STARTED_BEFORE >= written && t <= written + Duration::from_secs(1));
    process::alive(pid) && lisp && started && process::uid(pid) == Some(uid)
}

/// A daemon's control directory (`NAME.control`, see `config::control_dir`)
/// as the tool made it: 0700, the daemon user's (or the caller's), opened
/// without following a link. It holds the Lisp's control socket and its
/// notify socket, which only root and that user reach.
pub struct ControlDir {
    pub fd: OwnedFd,
    pub path: PathBuf,
}

impl ControlDir {
    /// Takes the copy `arrange` placed on `slot` (see `RunDir::adopt_dir_fd`).
    pub fn adopt_fd(&mut self, slot: RawFd) {
        // SAFETY: `arrange` made `slot` a descriptor of the directory that
        // nothing else owns; the old one is closed, so it is forgotten.
        let old = std::mem::replace(&mut self.fd, unsafe { OwnedFd::from_raw_fd(slot) });
        std::mem::forget(old);
        let _ = fcntl(
            self.fd.as_fd(),
            FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        );
    }
}
