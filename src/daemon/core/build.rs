//! Building a core: a fresh Lisp of the conf's runner, as its `:user`, in
//! a session of its own with nothing of the caller's terminal, loads the
//! preload and saves its image into a directory of its own; the tool reads
//! its word (progress, sources, or its error and the compiler's notes) on
//! a pipe, bounded in size and time, and installs a complete image only.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::poll::PollFlags;
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::pipe2;

use super::super::contain::Cgroup;
use super::super::events::{ready_within, take_signals};
use super::super::identity;
use super::super::launch::Launch;
use super::super::process::{Aim, PidFd};
use super::super::{DaemonError, Request, caller};
use super::{core_path, manifest_path, manifest_text};
use crate::plan::{self, Mode};
use crate::trust;
use crate::wire::builder;

/// A core made by `build`.
pub struct Built {
    pub path: PathBuf,
    pub bytes: u64,
    pub took: Duration,
}

/// The longest a build may take (a first build compiles for minutes).
const BUILD_TIMEOUT: Duration = Duration::from_secs(3600);
/// The largest image installed (a core is some hundred MiB).
const MAX_IMAGE: u64 = 16 << 30;

/// Builds the core of `req` with the Lisp `program`.
pub fn build(req: &Request, program: &Path) -> Result<Built, DaemonError> {
    let started = Instant::now();
    let target = core_path(req);
    let dir = target.parent().unwrap_or(Path::new("/")).to_path_buf();
    let create = trust::Create {
        mode: 0o755,
        owner: None,
    };
    trust::walk_dir(
        &dir,
        trust::Policy::Strict,
        &req.trust,
        "the core directory",
        Some(create),
    )?;
    let staging = Staging::new(&dir, req)?;
    let built = build_in(req, program, &staging.path, &target, started);
    // Whatever happened, the staging directory goes; the build's own error
    // is told first, then one of the removal.
    let removed = staging.remove();
    let built = built?;
    removed?;
    Ok(built)
}

/// The build itself, saving into `staging`.
fn build_in(
    req: &Request,
    program: &Path,
    staging: &Path,
    target: &Path,
    started: Instant,
) -> Result<Built, DaemonError> {
    super::super::create_fasl_dir(req.conf.spec.fasl_dir.as_deref(), req)?;
    let staged = staging.join("image.core");
    let said = run_builder(req, program, &staged, started)?;
    let saved = said.exited_ok
        && said.words.saving
        && said.words.report.is_none()
        && said.words.broken.is_none();
    if !saved {
        return Err(DaemonError::CoreBuild {
            report: said.report(),
        });
    }
    let (sources, searched) = (&said.words.sources, &said.words.searched);
    let mode = core_mode(req);
    let bytes = install(&staged, target, req, mode)?;
    let manifest = manifest_text(req, program, target, sources, searched);
    write_new_from(
        &manifest_path(target),
        &mut manifest.as_bytes(),
        0o600,
        None,
        |_| Ok(()),
    )?;
    Ok(Built {
        path: target.to_path_buf(),
        bytes,
        took: started.elapsed(),
    })
}

/// A core's mode and group: as root, 0640 and the `:user`'s group (the
/// daemon reads it, nobody else: an image holds what its preload read), or
/// 0600; a user's own, 0600.
fn core_mode(req: &Request) -> (u32, Option<u32>) {
    match (&req.switch, req.trust.root) {
        (Some(switch), true) => (0o640, Some(switch.account.gid)),
        _ => (0o600, None),
    }
}

/// The directory the Lisp saves into: the builder's user's, 0700, in the
/// core's directory (which only the caller can change). Its contents are
/// the builder's, so they are removed with the builder's user's power (a
/// tree a user made is never walked by root); root then removes the empty
/// directory, and a removal that fails is reported.
struct Staging {
    path: PathBuf,
    /// The builder's user, when it is not the caller.
    owner: Option<(u32, u32)>,
}

impl Staging {
    fn new(dir: &Path, req: &Request) -> Result<Staging, DaemonError> {
        let staging = Staging {
            path: dir.join(format!(".build-{}", std::process::id())),
            owner: req.switch.as_ref().map(crate::plan::Switch::ids),
        };
        // One an earlier build of the same pid left.
        if std::fs::symlink_metadata(&staging.path).is_ok() {
            staging.remove()?;
        }
        std::fs::create_dir(&staging.path).map_err(|e| io_error(&staging.path, e))?;
        std::fs::set_permissions(&staging.path, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| io_error(&staging.path, e))?;
        if let Some((uid, gid)) = staging.owner {
            std::os::unix::fs::chown(&staging.path, Some(uid), Some(gid))
                .map_err(|e| io_error(&staging.path, e))?;
        }
        Ok(staging)
    }

    /// Empties the directory as its owner, then removes it.
    fn remove(&self) -> Result<(), DaemonError> {
        let failed = |error: String| DaemonError::Staging {
            path: self.path.clone(),
            error,
        };
        match self.owner {
            Some(owner) => {
                let dir = nix::fcntl::open(
                    &self.path,
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    nix::sys::stat::Mode::empty(),
                );
                match dir {
                    Ok(dir) => {
                        identity::empty_as(dir.as_fd(), owner, STAGING_WAIT).map_err(failed)?
                    }
                    Err(nix::errno::Errno::ENOENT) => return Ok(()),
                    Err(errno) => return Err(failed(errno.desc().to_string())),
                }
            }
            None => empty(&self.path).map_err(|e| failed(e.to_string()))?,
        }
        match std::fs::remove_dir(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(failed(e.to_string())),
            _ => Ok(()),
        }
    }
}

/// Removes what `dir` holds (not `dir`), never through a symbolic link.
fn empty(dir: &Path) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        entries => entries?,
    };
    for entry in entries {
        let entry = entry?;
        match entry.file_type()?.is_dir() {
            true => std::fs::remove_dir_all(entry.path())?,
            false => std::fs::remove_file(entry.path())?,
        }
    }
    Ok(())
}

/// The longest the removal of a build's files may take.
const STAGING_WAIT: Duration = Duration::from_secs(60);

/// What the builder said, and how it ended.
struct Said {
    words: builder::Said,
    exited_ok: bool,
    ended: String,
}

impl Said {
    /// Its error report, with the compiler's notes before it.
    fn report(&self) -> String {
        // Shown, not raw, where it is printed (`crate::visible`).
        let words = &self.words;
        if let Some(broken) = &words.broken {
            return format!("the builder {broken}; it was ended");
        }
        let notes = (!words.notes.is_empty()).then(|| words.notes.join("\n"));
        match (&words.report, notes) {
            (Some(error), Some(notes)) => {
                format!("{}\nThe compiler's last notes:\n{notes}", error.join("\n"))
            }
            (Some(error), None) => error.join("\n"),
            (None, _) => format!("the Lisp {} without saving", self.ended),
        }
    }
}

/// Runs the builder: its lines until it ends (or the timeout, or SIGINT or
/// SIGTERM of the tool, which end it); on a terminal, what is loading and
/// for how long, in place.
fn run_builder(
    req: &Request,
    program: &Path,
    staged: &Path,
    started: Instant,
) -> Result<Said, DaemonError> {
    let mut runner = req.runner.clone();
    runner.core = None;
    let plan = plan::plan(
        &req.conf.spec,
        &runner,
        &Mode::BuildCore {
            file: staged.to_path_buf(),
        },
        req.switch.as_ref(),
        &req.lisp_log(req.switch.is_none()),
        &caller(req),
    );
    let mut launch = Launch::new(&plan, program, None)?;
    // The builder's whole tree (what its preload starts, setsid or not)
    // is contained as a daemon's is, and ends with it.
    launch.cgroup = Cgroup::of_daemon(staged).filter(|cgroup| cgroup.create().is_ok());
    let signals = take_signals(&[Signal::SIGINT, Signal::SIGTERM])?;
    let (read_end, write_end) =
        pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).map_err(DaemonError::Pipe)?;
    let child = super::super::foreground::fork_child(&launch, write_end, true, None)?;
    let pidfd = PidFd::open(child.as_raw())?;
    let (lines, interrupted) = hear(File::from(read_end), child, &pidfd, &signals, started);
    let status = waitpid(child, None).map_err(|errno| DaemonError::Wait {
        pid: child.as_raw(),
        errno,
    })?;
    // What its preload started and left running goes too.
    match &launch.cgroup {
        Some(cgroup) => {
            cgroup.kill_all(super::super::KILL_WAIT);
            cgroup.remove();
        }
        None => super::super::contain::end_session(child.as_raw(), super::super::KILL_WAIT),
    }
    drop(signals);
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_UNBLOCK,
        Some(&[Signal::SIGINT, Signal::SIGTERM].into_iter().collect()),
        None,
    );
    if let Some(signo) = interrupted {
        return Err(DaemonError::CoreBuild {
            report: format!(
                "the build was interrupted (signal {signo}); the previous core is kept"
            ),
        });
    }
    Ok(Said {
        words: lines.said,
        exited_ok: matches!(status, WaitStatus::Exited(_, 0)),
        ended: crate::daemon::supervise::how_it_ended(status),
    })
}

/// Reads the builder's lines until it exits; ends it (and its session) on
/// SIGINT or SIGTERM of the tool, after `BUILD_TIMEOUT`, or when it says
/// too much. Returns its lines and the signal that interrupted, if any.
fn hear(
    mut pipe: File,
    child: nix::unistd::Pid,
    pidfd: &PidFd,
    signals: &nix::sys::signalfd::SignalFd,
    started: Instant,
) -> (Lines, Option<u32>) {
    let terminal = nix::unistd::isatty(std::io::stderr()).unwrap_or(false);
    let mut reader = Lines::default();
    let mut loading = String::from("starting the Lisp");
    let mut interrupted = None;
    let deadline = started + BUILD_TIMEOUT;
    loop {
        // A pipe that hung up is no longer watched: a builder that closed
        // it and lives on is waited for without a spin.
        let mut fds = vec![
            (pidfd.as_fd(), PollFlags::POLLIN),
            (signals.as_fd(), PollFlags::POLLIN),
        ];
        if !reader.closed {
            fds.push((pipe.as_fd(), PollFlags::POLLIN));
        }
        let tick = Instant::now() + Duration::from_secs(1);
        let woke = ready_within(&fds, Some(tick))
            .ok()
            .flatten()
            .unwrap_or_default();
        let ready = |i: usize| woke.get(i).is_some_and(|r| !r.is_empty());
        let (exited, signalled, said) = (ready(0), ready(1), ready(2));
        if said || exited {
            reader.read_from(&mut pipe);
            if let Some(name) = &reader.said.loading {
                loading = format!("loading {}", crate::visible::line(name));
            }
        }
        if terminal {
            eprint!("\r\x1b[K{loading} ({} s)", started.elapsed().as_secs());
        }
        if signalled {
            interrupted = signals.read_signal().ok().flatten().map(|s| s.ssi_signo);
        }
        if exited {
            break;
        }
        if interrupted.is_some() || Instant::now() > deadline || reader.said.broken.is_some() {
            // Its whole session: what its preload started too.
            let _ = nix::sys::signal::killpg(child, Signal::SIGKILL);
            let _ = pidfd.signal(Signal::SIGKILL, Aim::Process);
        }
    }
    if terminal {
        eprint!("\r\x1b[K");
    }
    (reader, interrupted)
}

/// The builder's lines, read as they come, into its protocol's reader.
#[derive(Default)]
struct Lines {
    said: builder::Said,
    partial: Vec<u8>,
    /// The pipe hung up.
    closed: bool,
}

impl Lines {
    fn read_from(&mut self, pipe: &mut File) {
        let mut chunk = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut chunk) {
            self.closed = n == 0;
            if n == 0 || self.said.broken.is_some() {
                break;
            }
            self.partial.extend_from_slice(&chunk[..n]);
            while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.partial.drain(..=end).collect();
                self.said
                    .take(&String::from_utf8_lossy(&line[..line.len() - 1]));
            }
            if self.partial.len() > builder::MAX_LINE {
                let long = String::from_utf8_lossy(&self.partial).into_owned();
                self.partial.clear();
                self.said.take(&long);
            }
        }
    }
}

/// Puts the saved image at `target` with `mode` (and group): renamed, or
/// (saved by another user) copied into a new file of the caller's: only a
/// regular file of that user with one link (never a hard link to a file
/// the user could not read), not sparse, streamed, at most `MAX_IMAGE`.
/// Returns its size.
fn install(
    staged: &Path,
    target: &Path,
    req: &Request,
    mode: (u32, Option<u32>),
) -> Result<u64, DaemonError> {
    let copy_from = req.switch.as_ref().map(|s| s.account.uid);
    let mut image = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(staged)
        .map_err(|e| io_error(staged, e))?;
    let meta = image.metadata().map_err(|e| io_error(staged, e))?;
    let foreign = copy_from.is_some_and(|uid| meta.uid() != uid || meta.nlink() != 1);
    let sparse = meta.blocks() * 512 < meta.len() / 2;
    if !meta.is_file() || foreign || sparse || meta.len() > MAX_IMAGE {
        return Err(DaemonError::CoreBuild {
            report: format!(
                "{} is not the image the Lisp saved (a regular file of its user, one link, \
                 not sparse, at most 16 GiB)",
                staged.display()
            ),
        });
    }
    if copy_from.is_none() {
        std::fs::set_permissions(staged, std::fs::Permissions::from_mode(mode.0))
            .map_err(|e| io_error(staged, e))?;
        std::fs::rename(staged, target).map_err(|e| io_error(target, e))?;
        return Ok(meta.len());
    }
    // Exactly the length judged, and the image must still be the one
    // judged once copied: its user may go on writing it meanwhile.
    // The change time too: a user can set the mtime back, never the ctime.
    let judged = (
        meta.len(),
        meta.ino(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec(),
    );
    let again = image.try_clone().map_err(|e| io_error(staged, e))?;
    write_new_from(
        target,
        &mut Read::by_ref(&mut image).take(meta.len()),
        mode.0,
        mode.1,
        |copied| {
            let now = again.metadata()?;
            let seen = (
                now.len(),
                now.ino(),
                now.mtime_nsec(),
                now.ctime(),
                now.ctime_nsec(),
            );
            match copied == judged.0 && seen == judged {
                true => Ok(()),
                false => Err(std::io::Error::other(format!(
                    "the image {} changed while it was copied (its user wrote it); \
                     nothing was installed",
                    staged.display()
                ))),
            }
        },
    )
}

/// Copies `source` into a new file (`O_EXCL`, `mode`, root's and `group`'s
/// when given) renamed to `path` once `judge` accepts the bytes copied;
/// returns their number.
pub(super) fn write_new_from(
    path: &Path,
    source: &mut impl Read,
    mode: u32,
    group: Option<u32>,
    judge: impl FnOnce(u64) -> std::io::Result<()>,
) -> Result<u64, DaemonError> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".new-{}", std::process::id()));
    let temporary = PathBuf::from(temporary);
    let _ = std::fs::remove_file(&temporary);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&temporary)
        .map_err(|e| io_error(&temporary, e))?;
    let written = std::io::copy(source, &mut file).and_then(|n| {
        judge(n)?;
        if let Some(gid) = group {
            std::os::unix::fs::fchown(&file, None, Some(gid))?;
        }
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        Ok(n)
    });
    written.map_err(|e| {
        let _ = std::fs::remove_file(&temporary);
        io_error(path, e)
    })
}

fn io_error(path: &Path, e: std::io::Error) -> DaemonError {
    DaemonError::CoreFile {
        path: path.to_path_buf(),
        error: e.to_string(),
    }
}
