//! The Lisp program a command runs (found on PATH, and as root trusted),
//! the `:fasl-dir` it compiles into, and the stable names of the files the
//! tool finds again.

use std::ffi::OsStr;
use std::os::fd::AsFd as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use crate::trust;

use super::{DaemonError, Request, identity};

/// A hash of `bytes` that is the same in every version of the tool (64-bit
/// FNV-1a), for names of files the tool finds again: records, cores.
pub(crate) fn stable_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The Lisp program to run, found and (as root) trusted.
pub(crate) fn program(req: &Request) -> Result<PathBuf, DaemonError> {
    let Some(program) = find_program(&req.runner.program) else {
        return Err(lisp_not_found(req));
    };
    trust::check_program(&program, &req.trust)?;
    Ok(program)
}

/// Whether a Lisp started in `mode` has a control directory: it opens a
/// control socket, or is given a notify socket (`:ready :notify`, where
/// the tool waits for its readiness).
pub(crate) fn uses_control_dir(req: &Request, mode: &crate::plan::Mode) -> bool {
    use crate::plan::Mode;
    let control = crate::plan::control_dir(&req.conf.spec, mode, req.runner.kind).is_some();
    let notify = matches!(req.conf.spec.ready, crate::config::Readiness::Notify)
        && matches!(
            mode,
            Mode::Daemon | Mode::Foreground { report_ready: true } | Mode::Service
        );
    control || notify
}

/// The control directory of a Lisp started in `mode`, made for the
/// daemon's user when that Lisp opens a control socket or is given a notify
/// socket (`:ready :notify`).
pub(crate) fn make_control_dir(
    req: &Request,
    files: &super::RunDir,
    mode: &crate::plan::Mode,
) -> Result<Option<super::rundir::ControlDir>, DaemonError> {
    if !uses_control_dir(req, mode) {
        return Ok(None);
    }
    let owner = req.switch.as_ref().map(identity::Switch::ids);
    files.make_control_dir(owner).map(Some)
}

/// Where root keeps the fasl caches of `:user`s without a usable home.
pub const FASL_CACHES: &str = "/var/cache/daemonization/fasl";

/// The fasl cache of a `:user` (`user`) whose home is missing or not
/// theirs to write (a system user made with `useradd --system`, home
/// `/nonexistent`): `FASL_CACHES/NAME/`, made for them at start. `None`
/// when the user's home serves (ASDF's own cache, `~/.cache`), or when
/// not root (no user switch).
pub fn system_user_fasl_dir(user: Option<&str>) -> Option<std::path::PathBuf> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let account = nix::unistd::User::from_name(user?).ok()??;
    if account.uid.is_root() {
        return None;
    }
    let usable = nix::sys::stat::stat(&account.dir).is_ok_and(|st| {
        st.st_mode & nix::libc::S_IFMT == nix::libc::S_IFDIR
            && st.st_uid == account.uid.as_raw()
            && st.st_mode & 0o200 != 0
    });
    (!usable).then(|| Path::new(FASL_CACHES).join(format!("{}/", account.name)))
}

/// `:fasl-dir`: created if missing and given to the daemon's user, as
/// restas-daemon did with its fasl directory (0700 for a `:user`, 0755
/// without). Reached without following a symbolic link the user could have
/// made, and changed through its descriptor; a directory of a third user
/// is refused.
pub(crate) fn create_fasl_dir(dir: Option<&Path>, req: &Request) -> Result<(), DaemonError> {
    const WHAT: &str = "the :fasl-dir";
    let Some(dir) = dir else { return Ok(()) };
    // The tool's own directory of caches is root's; only the user's own
    // cache in it is the user's.
    if dir.starts_with(FASL_CACHES) {
        let create = trust::Create {
            mode: 0o755,
            owner: None,
        };
        trust::walk_dir(
            Path::new(FASL_CACHES),
            trust::Policy::Strict,
            &req.trust,
            WHAT,
            Some(create),
        )?;
    }
    let owner = req.switch.as_ref().map(identity::Switch::ids);
    // A user's compiled code is theirs to read (as ~/.cache is, 0700).
    let mode = match owner {
        Some(_) => 0o700,
        None => 0o755,
    };
    let create = trust::Create { mode, owner };
    let policy = trust::Policy::Confined { user: owner };
    let found = trust::walk_dir(dir, policy, &req.trust, WHAT, Some(create))?;
    let Some((uid, gid)) = owner else {
        return Ok(());
    };
    // The cache the tool keeps for a user is that user's alone, also one
    // an earlier version made 0755.
    if dir.starts_with(FASL_CACHES) && found.stat.st_mode & 0o077 != 0 {
        // Through its descriptor (an O_PATH one: by its /proc link).
        let judged = format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&found.fd)
        );
        nix::sys::stat::fchmodat(
            nix::fcntl::AT_FDCWD,
            judged.as_str(),
            nix::sys::stat::Mode::S_IRWXU,
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .map_err(|e| trust::PathError::io(WHAT, dir, e))?;
    }
    match found.stat.st_uid {
        owner if owner == uid => Ok(()),
        owner if req.trust.owns(owner) => {
            nix::unistd::fchownat(
                found.fd.as_fd(),
                "",
                Some(uid.into()),
                Some(gid.into()),
                nix::fcntl::AtFlags::AT_EMPTY_PATH,
            )
            .map_err(|e| trust::PathError::io(WHAT, dir, e))?;
            Ok(())
        }
        owner => Err(trust::PathError::from(trust::Refused {
            what: WHAT,
            path: dir.to_path_buf(),
            reason: format!(
                "it is owned by {}, neither root nor the :user",
                trust::user_name(owner)
            ),
            fix: "name a directory of the :user, or one root may create".into(),
        })
        .into()),
    }
}

pub(super) fn lisp_not_found(req: &Request) -> DaemonError {
    let program = req.runner.program.to_string_lossy();
    DaemonError::LispNotFound {
        program: program.to_string(),
        on_path: !program.contains('/'),
        package: req.runner.kind.facts().package_hint,
    }
}

/// The program to run: a path as is (made absolute: the daemon runs from
/// `/`), a name looked up on PATH.
pub(crate) fn find_program(program: &OsStr) -> Option<PathBuf> {
    let executable = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let path = Path::new(program);
    if program.as_encoded_bytes().contains(&b'/') {
        let path = std::path::absolute(path).ok()?;
        return executable(&path).then_some(path);
    }
    let dirs = std::env::var_os("PATH")?;
    std::env::split_paths(&dirs)
        .filter_map(|d| std::path::absolute(d.join(program)).ok())
        .find(|p| executable(p))
}
