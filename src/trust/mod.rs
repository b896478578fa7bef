//! Whom the tool trusts, defined once.
//!
//! When the tool runs as root, every file, directory, lock and process it
//! acts on belongs to a *trusted owner* (root alone), or is acted on with no
//! more power than its owner has. As another user, the trusted owners are
//! that user and root. `SUDO_UID` is no proof of anything: a sudoers rule
//! may allow only this command.
//!
//! Trust is judged on open descriptors (`fstat`), never on a path checked
//! and then opened again: `walk` resolves a path one component at a time
//! under directory descriptors, following a symbolic link only where no
//! untrusted user could have made it (see the README's Security section).

mod files;
mod walk;

use std::fmt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::stat::{FileStat, SFlag};
use thiserror::Error;

pub use files::{
    AppendFile, CONF_MAX_BYTES, append_in, check_core, check_program, open_append, open_read,
    read_conf,
};
pub use walk::{Create, Dir, DirKind, Found, Policy, walk, walk_dir};

/// The owners whose files and processes the tool trusts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trust {
    /// Whether the tool runs as root: then only root is trusted, and conf
    /// files and the Lisp program are judged strictly.
    pub root: bool,
    /// The caller's uid (0 as root).
    pub uid: u32,
}

impl Trust {
    /// The trust of this process, from its effective uid (its power).
    pub fn of_caller() -> Trust {
        Trust::for_uid(nix::unistd::geteuid().as_raw())
    }

    pub fn for_uid(uid: u32) -> Trust {
        Trust {
            root: uid == 0,
            uid,
        }
    }

    /// Whether `uid` is a trusted owner: root, or the caller.
    pub fn owns(&self, uid: u32) -> bool {
        uid == 0 || uid == self.uid
    }

    /// What a trusted owner is, for messages.
    pub fn owners(&self) -> String {
        match self.root {
            true => "root".into(),
            false => format!("root or {}", user_name(self.uid)),
        }
    }

    /// The `chown` a fix suggests.
    pub fn chown_to(&self) -> String {
        match self.root {
            true => "root:root".into(),
            false => user_name(self.uid),
        }
    }
}

/// A user's name, or its uid when it has none.
pub fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(uid.into())
        .ok()
        .flatten()
        .map_or_else(|| format!("uid {uid}"), |u| u.name)
}

/// A refusal: what was refused, why, and what to do about it.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("refusing {what} {}: {reason}; {fix}", path.display())]
pub struct Refused {
    /// What the path is to the tool ("the conf file", "the pid file", ...).
    pub what: &'static str,
    pub path: PathBuf,
    pub reason: String,
    pub fix: String,
}

/// Why a path could not be used: refused, or the system said no.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PathError {
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error("cannot open {what} {}: {errno}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        errno: Errno,
    },
}

impl PathError {
    pub fn io(what: &'static str, path: &Path, errno: Errno) -> PathError {
        PathError::Io {
            what,
            path: path.to_path_buf(),
            errno,
        }
    }

    /// Whether the path simply does not exist.
    pub fn is_missing(&self) -> bool {
        matches!(
            self,
            PathError::Io {
                errno: Errno::ENOENT,
                ..
            }
        )
    }
}

/// The kind of file a stat describes, for messages.
pub fn kind_name(st: &FileStat) -> &'static str {
    match SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFREG => "a regular file",
        SFlag::S_IFDIR => "a directory",
        SFlag::S_IFIFO => "a FIFO",
        SFlag::S_IFCHR => "a character device",
        SFlag::S_IFBLK => "a block device",
        SFlag::S_IFSOCK => "a socket",
        SFlag::S_IFLNK => "a symbolic link",
        _ => "not a regular file",
    }
}

pub fn is_kind(st: &FileStat, kind: SFlag) -> bool {
    st.st_mode & SFlag::S_IFMT.bits() == kind.bits()
}

/// What is wrong with a file's owner or mode for `trust`, if anything:
/// it must be owned by a trusted owner and writable by nobody else.
pub fn owner_problem(st: &FileStat, trust: &Trust) -> Option<String> {
    let mode = st.st_mode & 0o7777;
    if !trust.owns(st.st_uid) {
        return Some(format!(
            "owned by {}, not {}",
            user_name(st.st_uid),
            trust.owners()
        ));
    }
    if mode & 0o002 != 0 {
        return Some(format!("writable by others (mode {mode:04o})"));
    }
    if mode & 0o020 != 0 {
        return Some(format!("writable by its group (mode {mode:04o})"));
    }
    None
}

impl fmt::Display for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.owners())
    }
}

#[cfg(test)]
mod tests;
