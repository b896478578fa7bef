//! Who the daemon runs as: the `:user`/`:group` switch, decided in the
//! starting process (names resolved, permission checked) and applied in the
//! daemon process before exec, with `CAP_NET_BIND_SERVICE` kept through the
//! switch and the exec when privileged ports are asked for.

use std::ffi::CString;

use caps::{CapSet, Capability, CapsHashSet};
use nix::errno::Errno;
use nix::unistd::{Gid, Group, Uid, User, getgid, getuid, initgroups, setresgid, setresuid};
use thiserror::Error;

use super::error::SetupError;

pub use crate::plan::{Account, Switch};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum IdentityError {
    #[error(
        "unknown user \"{0}\" (the :user of the conf): create it (useradd --system {0}) or correct :user"
    )]
    UnknownUser(String),
    #[error(
        "unknown group \"{0}\" (the :group of the conf): create it (groupadd --system {0}) or correct :group"
    )]
    UnknownGroup(String),
    #[error(
        "Can't change the group, but not modify user. Current group: {current}. New group: {new}"
    )]
    GroupWithoutUser { current: String, new: String },
    #[error(
        "Denied changing user when current user is not administrator. Current user: {current}. New user: {new}"
    )]
    DeniedUser { current: String, new: String },
    #[error(
        "Denied changing group when current user is not administrator. Current group: {current}. New group: {new}"
    )]
    DeniedGroup { current: String, new: String },
    #[error("cannot look up {what}: {errno}")]
    Lookup {
        what: String,
        errno: nix::errno::Errno,
    },
}

fn user_named(name: &str) -> Result<User, IdentityError> {
    User::from_name(name)
        .map_err(|errno| IdentityError::Lookup {
            what: format!("user \"{name}\""),
            errno,
        })?
        .ok_or_else(|| IdentityError::UnknownUser(name.to_string()))
}

fn group_named(name: &str) -> Result<Group, IdentityError> {
    Group::from_name(name)
        .map_err(|errno| IdentityError::Lookup {
            what: format!("group \"{name}\""),
            errno,
        })?
        .ok_or_else(|| IdentityError::UnknownGroup(name.to_string()))
}

fn user_name(uid: Uid) -> String {
    User::from_uid(uid)
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name)
}

fn group_name(gid: Gid) -> String {
    Group::from_gid(gid)
        .ok()
        .flatten()
        .map_or_else(|| gid.to_string(), |g| g.name)
}

/// Decides the switch for `:user`/`:group`, as the calling process: `None`
/// when the daemon runs as the caller.
pub fn decide(
    user: Option<&str>,
    group: Option<&str>,
    keep_bind: bool,
) -> Result<Option<Switch>, IdentityError> {
    let (uid, gid) = (getuid(), getgid());
    let group = group.map(group_named).transpose()?;
    let Some(user) = user else {
        return match group {
            Some(g) if g.gid != gid => Err(IdentityError::GroupWithoutUser {
                current: group_name(gid),
                new: g.name,
            }),
            _ => Ok(None),
        };
    };
    let target = user_named(user)?;
    let target_gid = group.as_ref().map_or(target.gid, |g| g.gid);
    if target.uid == uid && target_gid == gid {
        return Ok(None);
    }
    if !uid.is_root() {
        if target.uid != uid {
            return Err(IdentityError::DeniedUser {
                current: user_name(uid),
                new: user.to_string(),
            });
        }
        return Err(IdentityError::DeniedGroup {
            current: group_name(gid),
            new: group_name(target_gid),
        });
    }
    Ok(Some(Switch {
        account: Account {
            name: target.name,
            uid: target.uid.as_raw(),
            gid: target_gid.as_raw(),
            home: target.dir,
            shell: target.shell,
        },
        keep_bind: keep_bind && !target.uid.is_root(),
    }))
}

/// Applies a switch in the daemon process, before exec: supplementary
/// groups of the target (nothing of root's), gid, uid, then the kept
/// capability in the ambient set so it survives exec.
pub fn apply(switch: &Switch) -> Result<(), SetupError> {
    let account = &switch.account;
    let (uid, gid) = (Uid::from_raw(account.uid), Gid::from_raw(account.gid));
    if switch.keep_bind {
        nix::sys::prctl::set_keepcaps(true).map_err(SetupError::KeepCaps)?;
    }
    let initgroups_failed = |errno| SetupError::InitGroups {
        user: account.name.clone(),
        errno,
    };
    // A passwd name holds no NUL byte.
    let name = CString::new(account.name.as_str()).map_err(|_| initgroups_failed(Errno::EINVAL))?;
    initgroups(&name, gid).map_err(initgroups_failed)?;
    setresgid(gid, gid, gid).map_err(|errno| SetupError::SetGid {
        gid: account.gid,
        errno,
    })?;
    setresuid(uid, uid, uid).map_err(|errno| SetupError::SetUid {
        uid: account.uid,
        errno,
    })?;
    if switch.keep_bind {
        let bind: CapsHashSet = [Capability::CAP_NET_BIND_SERVICE].into_iter().collect();
        for set in [CapSet::Permitted, CapSet::Effective, CapSet::Inheritable] {
            caps::set(None, set, &bind).map_err(SetupError::Capabilities)?;
        }
        caps::raise(None, CapSet::Ambient, Capability::CAP_NET_BIND_SERVICE)
            .map_err(SetupError::Capabilities)?;
    }
    Ok(())
}

/// No exec'd program may gain privileges (setuid bits, file capabilities).
pub fn no_new_privs() -> Result<(), SetupError> {
    nix::sys::prctl::set_no_new_privs().map_err(SetupError::NoNewPrivs)
}

/// Removes what the directory `dir` holds (not `dir`), never through a
/// link, in a child that became `owner` (uid, gid) first: a user's files
/// are acted on with that user's power, whatever they planted there. The
/// child is killed if it takes longer than `within`.
pub fn empty_as(
    dir: std::os::fd::BorrowedFd,
    owner: (u32, u32),
    within: std::time::Duration,
) -> Result<(), String> {
    use super::process::{Aim, PidFd};
    use nix::sys::signal::Signal;
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    // The child only drops its privileges, removes files and exits.
    let child = super::fork::child(|| {
        let (uid, gid) = (Uid::from_raw(owner.0), Gid::from_raw(owner.1));
        let became = nix::unistd::setgroups(&[])
            .and_then(|()| setresgid(gid, gid, gid))
            .and_then(|()| setresuid(uid, uid, uid))
            .and_then(|()| nix::unistd::fchdir(dir));
        let code = match became.is_ok() && empty_here().is_ok() {
            true => 0,
            false => 1,
        };
        super::exec::exit_now(code)
    })
    .map_err(|e| format!("cannot fork: {e}"))?;
    let pidfd = PidFd::open(child.as_raw()).map_err(|e| e.to_string())?;
    if !pidfd.wait_exit(within) {
        let _ = pidfd.signal(Signal::SIGKILL, Aim::Process);
        pidfd.wait_exit(within);
    }
    match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::Exited(_, 0)) => Ok(()),
        _ => Err("its owner could not remove what it holds".into()),
    }
}

/// Removes what the working directory holds (std's `remove_dir_all` never
/// follows a link).
fn empty_here() -> std::io::Result<()> {
    for entry in std::fs::read_dir(".")? {
        let entry = entry?;
        match entry.file_type()?.is_dir() {
            true => std::fs::remove_dir_all(entry.file_name())?,
            false => std::fs::remove_file(entry.file_name())?,
        }
    }
    Ok(())
}
