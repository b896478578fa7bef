//! The files the tool reads or appends to, opened once and judged on the
//! descriptor: conf files, the Lisp program, appended files (`:output`,
//! log files).

use std::ffi::OsStr;
use std::fs::File;
use std::io::Read as _;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::libc;
use nix::sys::stat::{FileStat, Mode, SFlag};

use super::walk::{Create, Dir, Policy, walk, walk_dir};
use super::{PathError, Refused, Trust, is_kind, kind_name, owner_problem};

/// The largest conf file the tool reads.
pub const CONF_MAX_BYTES: u64 = 1024 * 1024;

/// Reads a conf file (a conf, a parent, the default or logging conf).
///
/// For every caller: opened once without blocking, only a regular file of
/// at most `CONF_MAX_BYTES` is read, from that same descriptor. As root the
/// file and every directory on its path must be root's and writable by
/// nobody else: a conf runs code as root.
pub fn read_conf(path: &Path, trust: &Trust) -> Result<String, PathError> {
    const WHAT: &str = "the conf file";
    let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOCTTY;
    let fd: OwnedFd = match trust.root {
        true => walk(path, Policy::Strict, trust, WHAT)?.open(flags, WHAT)?,
        false => nix::fcntl::open(path, flags, nix::sys::stat::Mode::empty())
            .map_err(|e| PathError::io(WHAT, path, e))?,
    };
    let st = nix::sys::stat::fstat(fd.as_fd()).map_err(|e| PathError::io(WHAT, path, e))?;
    let refuse = |reason: String, fix: String| Refused {
        what: WHAT,
        path: path.to_path_buf(),
        reason,
        fix,
    };
    if !is_kind(&st, SFlag::S_IFREG) {
        return Err(refuse(
            format!("it is {}", kind_name(&st)),
            "name a regular file".into(),
        )
        .into());
    }
    if trust.root
        && let Some(reason) = owner_problem(&st, trust)
    {
        let shown = path.display();
        return Err(refuse(
            format!("{reason}, and its code would run as root"),
            format!("chown {} {shown}; chmod go-w {shown}", trust.chown_to()),
        )
        .into());
    }
    let too_big = || {
        refuse(
            format!("it is larger than {} MiB", CONF_MAX_BYTES >> 20),
            "a conf file is a property list: keep it small".into(),
        )
    };
    if st.st_size as u64 > CONF_MAX_BYTES {
        return Err(too_big().into());
    }
    let mut bytes = Vec::new();
    File::from(fd)
        .take(CONF_MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| {
            PathError::io(
                WHAT,
                path,
                Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
            )
        })?;
    if bytes.len() as u64 > CONF_MAX_BYTES {
        return Err(too_big().into());
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| refuse("it is not UTF-8 text".into(), "save it as UTF-8".into()))?;
    // A byte-order mark (Windows editors write one) is not part of the text.
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

/// Checks, as root, the Lisp program the tool will exec: root's, writable
/// by nobody else, in directories that pass. Other callers run what they
/// choose.
pub fn check_program(path: &Path, trust: &Trust) -> Result<(), PathError> {
    let shown = path.display();
    judge_code(
        path,
        trust,
        "the Lisp program",
        "root would run it",
        "name the Lisp's executable with LISP_RUNNER".into(),
        format!(
            "chown root:root {shown}; chmod go-w {shown}; or install the Lisp system-wide and name it with LISP_RUNNER"
        ),
    )
}

/// Checks, as root, a saved core the Lisp will run on: the rule of conf
/// files (a core is code), a regular file, root's, writable by nobody else,
/// in directories that pass. Other callers run what they choose.
pub fn check_core(path: &Path, trust: &Trust) -> Result<(), PathError> {
    let shown = path.display();
    let fix = format!(
        "chown root {shown}; chmod go-w {shown} (or build it as root: daemonization CONF build-core)"
    );
    judge_code(
        path,
        trust,
        "the core file",
        "its code would run",
        fix.clone(),
        fix,
    )
}

/// A file of code root will run (`what`), judged as root on the descriptor
/// of a strict walk: a regular file (else refused with `kind_fix`), of a
/// trusted owner and writable by nobody else (else `owner_fix`; `runs`
/// says what is at stake). Other callers run what they choose.
fn judge_code(
    path: &Path,
    trust: &Trust,
    what: &'static str,
    runs: &str,
    kind_fix: String,
    owner_fix: String,
) -> Result<(), PathError> {
    if !trust.root {
        return Ok(());
    }
    let fd =
        walk(path, Policy::Strict, trust, what)?.open(OFlag::O_PATH | OFlag::O_CLOEXEC, what)?;
    let st = nix::sys::stat::fstat(fd.as_fd()).map_err(|e| PathError::io(what, path, e))?;
    let (reason, fix) = if !is_kind(&st, SFlag::S_IFREG) {
        (format!("it is {}", kind_name(&st)), kind_fix)
    } else if let Some(reason) = owner_problem(&st, trust) {
        (format!("{reason}, and {runs}"), owner_fix)
    } else {
        return Ok(());
    };
    Err(Refused {
        what,
        path: path.to_path_buf(),
        reason,
        fix,
    }
    .into())
}

/// Opens a file of the daemon's user to read it (`:output`, for `log` and
/// `status -v`) as `open_append` opens it to write: through its
/// directory's descriptor (the walk of `Policy::Confined`), never through a
/// link, never blocking; only a regular file with one link, of a trusted
/// owner or the daemon's user. As root, nothing a user points elsewhere
/// (`/etc/shadow`) is read.
pub fn open_read(
    path: &Path,
    trust: &Trust,
    what: &'static str,
    user: Option<(u32, u32)>,
) -> Result<File, PathError> {
    let parent = path.parent().unwrap_or(Path::new("/"));
    let Some(name) = path.file_name() else {
        return Err(PathError::io(what, path, Errno::EISDIR));
    };
    let dir = walk_dir(parent, Policy::Confined { user }, trust, what, None)?;
    let fd = openat(
        dir.fd.as_fd(),
        name,
        OFlag::O_RDONLY
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_NOCTTY
            | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        no_follow(
            e,
            what,
            path,
            format!("remove the link (rm {})", path.display()),
        )
    })?;
    let st = nix::sys::stat::fstat(fd.as_fd()).map_err(|e| PathError::io(what, path, e))?;
    match users_file_problem(&st, trust, user, true) {
        Some(reason) => Err(Refused {
            what,
            path: path.to_path_buf(),
            reason,
            fix: format!(
                "remove it (rm {}); the daemon makes it anew",
                path.display()
            ),
        }
        .into()),
        None => Ok(File::from(fd)),
    }
}

/// `e` of an open with `O_NOFOLLOW`: a symbolic link (`ELOOP`) is refused
/// with `fix`.
fn no_follow(e: Errno, what: &'static str, path: &Path, fix: String) -> PathError {
    match e {
        Errno::ELOOP => PathError::from(Refused {
            what,
            path: path.to_path_buf(),
            reason: "it is a symbolic link, which is never followed here".into(),
            fix,
        }),
        e => PathError::io(what, path, e),
    }
}

/// What is wrong with a file of the daemon's `user` opened for the tool,
/// if anything: it must be a regular file with one link and, when
/// `owner_matters`, of a trusted owner or `user`.
fn users_file_problem(
    st: &FileStat,
    trust: &Trust,
    user: Option<(u32, u32)>,
    owner_matters: bool,
) -> Option<String> {
    let users = user.is_some_and(|(uid, _)| uid == st.st_uid);
    if !is_kind(st, SFlag::S_IFREG) {
        Some(format!("it is {}", kind_name(st)))
    } else if st.st_nlink != 1 {
        Some(format!(
            "it has {} hard links, so it may be another file too",
            st.st_nlink
        ))
    } else if owner_matters && !trust.owns(st.st_uid) && !users {
        Some(format!(
            "it is owned by {}, neither {} nor the daemon's user",
            super::user_name(st.st_uid),
            trust.owners()
        ))
    } else {
        None
    }
}

/// A file opened for appending by `open_append`.
#[derive(Debug)]
pub struct AppendFile {
    pub file: File,
    /// Whether this open created it.
    pub created: bool,
}

/// Opens `path` for appending, creating it (and missing directories, with
/// `create`) when needed, as the caller with `trust`, for `user` (the
/// daemon's user, whose directories and files are accepted too; `None` for
/// the tool's own files): the walk follows no symbolic link an untrusted
/// user could have made, the file is opened under the directory reached
/// with `O_NOFOLLOW` (a FIFO never blocks the open), and only a regular
/// file with one link, of a trusted owner or `user`, is kept. A new file
/// is created `O_EXCL` with `mode` and given to `user` through its
/// descriptor.
pub fn open_append(
    path: &Path,
    trust: &Trust,
    what: &'static str,
    dirs: Option<Create>,
    mode: u32,
    user: Option<(u32, u32)>,
) -> Result<AppendFile, PathError> {
    let parent = path.parent().unwrap_or(Path::new("/"));
    let Some(name) = path.file_name() else {
        return Err(PathError::io(what, path, Errno::EISDIR));
    };
    let dir = walk_dir(parent, Policy::Confined { user }, trust, what, dirs)?;
    append_in(&dir, name, path, what, mode, trust, user)
}

/// `open_append` of the file `name` in a directory already walked.
pub fn append_in(
    dir: &Dir,
    name: &OsStr,
    path: &Path,
    what: &'static str,
    mode: u32,
    trust: &Trust,
    user: Option<(u32, u32)>,
) -> Result<AppendFile, PathError> {
    let open = |flags: OFlag, mode: u32| {
        openat(
            dir.fd.as_fd(),
            name,
            flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(mode),
        )
        .map_err(|e| {
            let fix = format!(
                "name the file itself, or remove the link (rm {})",
                path.display()
            );
            no_follow(e, what, path, fix)
        })
    };
    let flags = OFlag::O_WRONLY | OFlag::O_APPEND | OFlag::O_NONBLOCK | OFlag::O_NOCTTY;
    let (fd, created) = match open(flags | OFlag::O_CREAT | OFlag::O_EXCL, mode) {
        Ok(fd) => (fd, true),
        Err(PathError::Io {
            errno: Errno::EEXIST,
            ..
        }) => (open(flags, 0)?, false),
        Err(e) => return Err(e),
    };
    let st = nix::sys::stat::fstat(fd.as_fd()).map_err(|e| PathError::io(what, path, e))?;
    if let Some(reason) = users_file_problem(&st, trust, user, !created) {
        return Err(Refused {
            what,
            path: path.to_path_buf(),
            reason,
            fix: format!("remove it, or name another file for {what}"),
        }
        .into());
    }
    if created && let Some((uid, gid)) = user {
        nix::unistd::fchown(fd.as_fd(), Some(uid.into()), Some(gid.into()))
            .map_err(|e| PathError::io(what, path, e))?;
    }
    // Writes block as usual; only the open had to be non-blocking.
    nix::fcntl::fcntl(fd.as_fd(), nix::fcntl::FcntlArg::F_SETFL(OFlag::O_APPEND))
        .map_err(|e| PathError::io(what, path, e))?;
    Ok(AppendFile {
        file: File::from(fd),
        created,
    })
}
