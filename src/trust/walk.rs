//! Resolving a path one component at a time under directory descriptors,
//! judging each directory on the descriptor the walk goes on from (as
//! systemd's `chase()` and OpenSSH's StrictModes do).
//!
//! A symbolic link is followed only where no untrusted user could have made
//! it: in a directory only trusted owners can change, or, in a root-owned
//! sticky directory such as /tmp, when the link itself is a trusted owner's.
//! The last component is never opened here: `Found::open` opens it with
//! `O_NOFOLLOW` under the directory reached, so nothing can be swapped in
//! between.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat, readlinkat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, mkdirat};

use super::{PathError, Refused, Trust, is_kind, user_name};

/// How strictly the directories on a path are judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Every directory must be trusted (or root's and sticky, with a
    /// trusted owner's entry in it): conf files, the Lisp program, the pid
    /// directory.
    Strict,
    /// Directories may also be those of `user` (the daemon's user: uid,
    /// gid), writable by it alone (or its own group): the walk follows no
    /// symbolic link it could have made, and whatever is done next is done
    /// through the descriptor of the directory reached (`:output`,
    /// `:fasl-dir`, log files). A third user's directory is refused.
    Confined { user: Option<(u32, u32)> },
}

/// Who can change a directory's entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirKind {
    /// A trusted owner's, writable by nobody else.
    Trusted,
    /// Root's and sticky but writable by others (/tmp): only entries owned
    /// by trusted owners are trusted.
    Sticky,
    /// Others can change it: its owner (or group, or everyone).
    Open,
}

impl DirKind {
    pub fn of(st: &FileStat, trust: &Trust) -> DirKind {
        let mode = st.st_mode & 0o7777;
        if trust.owns(st.st_uid) && mode & 0o022 == 0 {
            DirKind::Trusted
        } else if st.st_uid == 0 && mode & 0o1000 != 0 {
            DirKind::Sticky
        } else {
            DirKind::Open
        }
    }
}

/// A directory reached by a walk: an `O_PATH` descriptor, its path, and
/// who can change it.
#[derive(Debug)]
pub struct Dir {
    pub fd: OwnedFd,
    pub path: PathBuf,
    pub kind: DirKind,
    pub stat: FileStat,
}

impl Dir {
    /// The directory opened for reading (for `fchmod`, listing, locking).
    pub fn open_rdonly(&self) -> Result<OwnedFd, Errno> {
        openat(
            self.fd.as_fd(),
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
    }

    /// Whether an entry owned by `uid` in this directory is safe from
    /// everyone but trusted owners.
    pub fn holds_trusted(&self, uid: u32, trust: &Trust) -> bool {
        match self.kind {
            DirKind::Trusted => true,
            DirKind::Sticky => trust.owns(uid),
            DirKind::Open => false,
        }
    }
}

/// A walked path: the directory holding its last component, and that
/// component's name (`None` when the path names a directory that the walk
/// opened as `dir`).
#[derive(Debug)]
pub struct Found {
    pub dir: Dir,
    pub name: Option<OsString>,
    /// The path as given, for messages.
    pub path: PathBuf,
}

impl Found {
    /// Opens the last component under its directory, never following a
    /// symbolic link.
    pub fn open(&self, flags: OFlag, what: &'static str) -> Result<OwnedFd, PathError> {
        self.open_mode(flags, Mode::empty(), what)
    }

    pub fn open_mode(
        &self,
        flags: OFlag,
        mode: Mode,
        what: &'static str,
    ) -> Result<OwnedFd, PathError> {
        let name: &OsStr = self.name.as_deref().unwrap_or(OsStr::new("."));
        openat(
            self.dir.fd.as_fd(),
            name,
            flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            mode,
        )
        .map_err(|e| PathError::io(what, &self.path, e))
    }
}

/// What to create when a directory on the path is missing.
#[derive(Clone, Copy, Debug)]
pub struct Create {
    pub mode: u32,
    /// Give every directory created to this uid and gid (`fchown`).
    pub owner: Option<(u32, u32)>,
}

/// The most symbolic links one walk follows (as the kernel's ELOOP limit).
const MAX_LINKS: u32 = 40;

/// Walks `path` up to its last component (following that too if it is a
/// symbolic link the policy allows), judging every directory on the way.
pub fn walk(
    path: &Path,
    policy: Policy,
    trust: &Trust,
    what: &'static str,
) -> Result<Found, PathError> {
    Walk::new(path, policy, trust, what)?.run(false, None)
}

/// Walks `path` as a directory, creating what is missing with `create`.
pub fn walk_dir(
    path: &Path,
    policy: Policy,
    trust: &Trust,
    what: &'static str,
    create: Option<Create>,
) -> Result<Dir, PathError> {
    Ok(Walk::new(path, policy, trust, what)?.run(true, create)?.dir)
}

struct Walk<'a> {
    path: PathBuf,
    policy: Policy,
    trust: &'a Trust,
    what: &'static str,
    links: u32,
}

fn components(path: &Path) -> Vec<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_owned()),
            Component::ParentDir => Some("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

impl<'a> Walk<'a> {
    fn new(
        path: &Path,
        policy: Policy,
        trust: &'a Trust,
        what: &'static str,
    ) -> Result<Walk<'a>, PathError> {
        let path = std::path::absolute(path).map_err(|e| {
            PathError::io(
                what,
                path,
                Errno::from_raw(e.raw_os_error().unwrap_or(nix::libc::EINVAL)),
            )
        })?;
        // `..` is taken from the path as written, never from a directory
        // someone could have moved meanwhile.
        let mut normal = PathBuf::from("/");
        for component in path.components() {
            match component {
                Component::Normal(name) => normal.push(name),
                Component::ParentDir => {
                    normal.pop();
                }
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
        let path = normal;
        Ok(Walk {
            path,
            policy,
            trust,
            what,
            links: 0,
        })
    }

    fn io(&self, errno: Errno) -> PathError {
        PathError::io(self.what, &self.path, errno)
    }

    fn refuse(&self, reason: String, fix: String) -> PathError {
        Refused {
            what: self.what,
            path: self.path.clone(),
            reason,
            fix,
        }
        .into()
    }

    fn open_dir_fd(&self, at: Option<&OwnedFd>, name: &OsStr) -> Result<OwnedFd, Errno> {
        let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        match at {
            Some(fd) => openat(fd.as_fd(), name, flags, Mode::empty()),
            None => nix::fcntl::open(name, flags, Mode::empty()),
        }
    }

    fn dir(&self, fd: OwnedFd, path: PathBuf) -> Result<Dir, PathError> {
        let stat = fstat(fd.as_fd()).map_err(|e| self.io(e))?;
        let kind = DirKind::of(&stat, self.trust);
        let dir = Dir {
            fd,
            path,
            kind,
            stat,
        };
        let users = match self.policy {
            Policy::Confined {
                user: Some((uid, gid)),
            } => {
                let mode = dir.stat.st_mode;
                dir.stat.st_uid == uid
                    && mode & 0o002 == 0
                    && (mode & 0o020 == 0 || dir.stat.st_gid == gid)
            }
            _ => false,
        };
        if dir.kind == DirKind::Open && !users {
            return Err(self.untrusted_dir(&dir));
        }
        Ok(dir)
    }

    fn untrusted_dir(&self, dir: &Dir) -> PathError {
        let shown = dir.path.display();
        let mode = dir.stat.st_mode & 0o7777;
        // The path itself, or a directory on it.
        let it = match dir.path == self.path {
            true => "it".to_string(),
            false => format!("the directory {shown} on its path"),
        };
        let owners = match self.policy {
            Policy::Confined {
                user: Some((uid, _)),
            } => format!(
                "{} or the daemon's user {}",
                self.trust.owners(),
                user_name(uid)
            ),
            _ => self.trust.owners(),
        };
        let reason = match self.trust.owns(dir.stat.st_uid) {
            false => format!(
                "{it} is owned by {}, not {owners}",
                user_name(dir.stat.st_uid),
            ),
            true => format!(
                "{it} is writable by {} (mode {mode:04o})",
                if mode & 0o002 != 0 {
                    "others"
                } else {
                    "its group"
                }
            ),
        };
        self.refuse(
            reason,
            format!(
                "chown {} {shown}; chmod go-w {shown} (or use a directory only {owners} can change)",
                self.trust.chown_to(),
            ),
        )
    }

    fn run(mut self, want_dir: bool, create: Option<Create>) -> Result<Found, PathError> {
        let mut dir = self.dir(
            self.open_dir_fd(None, OsStr::new("/"))
                .map_err(|e| self.io(e))?,
            PathBuf::from("/"),
        )?;
        let mut todo: Vec<OsString> = components(&self.path);
        todo.reverse();
        while let Some(name) = todo.pop() {
            let last = todo.is_empty();
            if name == ".." {
                let fd = self
                    .open_dir_fd(Some(&dir.fd), &name)
                    .map_err(|e| self.io(e))?;
                let parent = dir.path.parent().unwrap_or(Path::new("/")).to_path_buf();
                dir = self.dir(fd, parent)?;
                continue;
            }
            let fd = match self.open_dir_fd(Some(&dir.fd), &name) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) if last && !want_dir => {
                    return Ok(self.found(dir, Some(name)));
                }
                Err(Errno::ENOENT) if create.is_some() => {
                    self.create(&dir, &name, create.expect("checked"))?;
                    todo.push(name);
                    continue;
                }
                Err(e) => return Err(self.io(e)),
            };
            let st = fstat(fd.as_fd()).map_err(|e| self.io(e))?;
            let path = dir.path.join(&name);
            if is_kind(&st, SFlag::S_IFLNK) {
                self.follow(&dir, &fd, &st, &path, &mut todo)?;
                if todo.last().is_some_and(|c| c.is_empty()) {
                    // An absolute target: start again from the root.
                    todo.pop();
                    dir = self.dir(
                        self.open_dir_fd(None, OsStr::new("/"))
                            .map_err(|e| self.io(e))?,
                        PathBuf::from("/"),
                    )?;
                }
                continue;
            }
            if last && !want_dir {
                return Ok(self.found(dir, Some(name)));
            }
            if !is_kind(&st, SFlag::S_IFDIR) {
                return Err(self.io(Errno::ENOTDIR));
            }
            if self.policy == Policy::Strict && !dir.holds_trusted(st.st_uid, self.trust) {
                return Err(self.refuse(
                    format!(
                        "{} is owned by {} in the shared directory {}",
                        path.display(),
                        user_name(st.st_uid),
                        dir.path.display()
                    ),
                    format!("use a directory owned by {}", self.trust.owners()),
                ));
            }
            dir = self.dir(fd, path)?;
        }
        Ok(self.found(dir, None))
    }

    fn found(&self, dir: Dir, name: Option<OsString>) -> Found {
        Found {
            dir,
            name,
            path: self.path.clone(),
        }
    }

    /// Follows the symbolic link `fd` (named `path`, in `dir`) if no
    /// untrusted user could have made it: its target's components go on
    /// `todo` (after an empty marker when the target is absolute).
    fn follow(
        &mut self,
        dir: &Dir,
        fd: &OwnedFd,
        st: &FileStat,
        path: &Path,
        todo: &mut Vec<OsString>,
    ) -> Result<(), PathError> {
        if !dir.holds_trusted(st.st_uid, self.trust) {
            let by = match dir.kind {
                DirKind::Sticky => format!("{}, its owner,", user_name(st.st_uid)),
                _ => format!(
                    "{}, who can change {},",
                    user_name(dir.stat.st_uid),
                    dir.path.display()
                ),
            };
            return Err(self.refuse(
                format!(
                    "{} is a symbolic link that {by} could point anywhere, and it is not followed as {}",
                    path.display(),
                    user_name(self.trust.uid)
                ),
                format!("name the file itself, not the link {}", path.display()),
            ));
        }
        self.links += 1;
        if self.links > MAX_LINKS {
            return Err(self.io(Errno::ELOOP));
        }
        let target = readlinkat(fd.as_fd(), Path::new("")).map_err(|e| self.io(e))?;
        let target = PathBuf::from(target);
        let mut parts = components(&target);
        parts.reverse();
        todo.extend(parts);
        if target.is_absolute() {
            todo.push(OsString::new());
        }
        Ok(())
    }

    fn create(&self, dir: &Dir, name: &OsStr, create: Create) -> Result<(), PathError> {
        match mkdirat(dir.fd.as_fd(), name, Mode::from_bits_truncate(create.mode)) {
            Ok(()) => {}
            Err(Errno::EEXIST) => return Ok(()),
            Err(e) => return Err(self.io(e)),
        }
        if let Some((uid, gid)) = create.owner {
            // Through a descriptor of what we just made, never by path.
            let fd = openat(
                dir.fd.as_fd(),
                name,
                OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| self.io(e))?;
            nix::unistd::fchownat(
                fd.as_fd(),
                "",
                Some(uid.into()),
                Some(gid.into()),
                AtFlags::AT_EMPTY_PATH,
            )
            .map_err(|e| self.io(e))?;
        }
        Ok(())
    }
}
