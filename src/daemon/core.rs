//! Saved cores: `build-core` loads a conf's `:preload` into a fresh Lisp of
//! its runner (as its `:user`, with its environment, `:fasl-dir` and
//! runtime options) and saves the image; `start`, `restart` and `nodaemon`
//! then run the Lisp on it (`:core`), building an `:auto` core that is
//! missing or stale first.
//!
//! Beside each core, `CORE.manifest` says what it is made of: the Lisp
//! program (path, size, modification time), the preload list, the user,
//! and every source file with its modification time; a few `stat`s tell
//! whether it is fresh. As root a core is code like a conf: built as the
//! `:user` in a directory of its own, then copied into a new root-owned
//! file (0644) renamed into place, so the user can read but never write
//! it; and it is used only if it passes `trust::check_core`.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::pipe2;

use super::launch::Launch;
use super::{DaemonError, Request, caller, program};
use crate::command::Command;
use crate::config::CoreFile;
use crate::plan::{self, Mode};
use crate::report::Outcome;
use crate::trust;

/// A core made by `build`.
pub struct Built {
    pub path: PathBuf,
    pub bytes: u64,
    pub took: Duration,
}

/// The core of the conf: its `:core` file, else (`:auto`, or `build-core`
/// of a conf without `:core`) one per conf and Lisp in the tool's cache:
/// `/var/cache/daemonization/` for root, `$XDG_CACHE_HOME/daemonization/`
/// (or `~/.cache/daemonization/`) for others.
pub fn core_path(req: &Request) -> PathBuf {
    if let Some(CoreFile::Path(path)) = &req.conf.spec.core {
        return path.clone();
    }
    let dir = match req.trust.root {
        true => PathBuf::from("/var/cache/daemonization"),
        false => std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .filter(|d| d.is_absolute())
            .or_else(|| super::caller_home().map(|h| h.join(".cache")))
            .unwrap_or_else(|| PathBuf::from("/tmp"))
            .join("daemonization"),
    };
    let key = format!(
        "{}\0{}",
        req.conf.path.display(),
        req.runner.kind.facts().name
    );
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    dir.join(format!(
        "{}-{hash:016x}.core",
        crate::unit::unit_name(req.conf)
    ))
}

fn manifest_path(core: &Path) -> PathBuf {
    let mut name = core.as_os_str().to_owned();
    name.push(".manifest");
    PathBuf::from(name)
}

/// The Lisp program as a manifest names it: a new version is a new file.
fn lisp_identity(program: &Path) -> String {
    match std::fs::metadata(program) {
        Ok(m) => format!("{} {} {}", program.display(), m.len(), m.mtime()),
        Err(_) => program.display().to_string(),
    }
}

fn preload_text(req: &Request) -> String {
    format!("{:?}", req.conf.spec.preload)
}

fn daemon_uid(req: &Request) -> u32 {
    req.switch
        .as_ref()
        .map_or_else(|| nix::unistd::getuid().as_raw(), |s| s.account.uid)
}

fn mtime_ns(path: &Path) -> Option<i128> {
    let m = std::fs::metadata(path).ok()?;
    Some(i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()))
}

/// The manifest of a core built by `program` from `sources`.
fn manifest_text(req: &Request, program: &Path, sources: &[PathBuf]) -> String {
    let mut text = format!(
        "lisp {}\npreload {}\nuser {}\n",
        lisp_identity(program),
        preload_text(req),
        daemon_uid(req)
    );
    for source in sources {
        let shown = source.display().to_string();
        if let (Some(mtime), false) = (mtime_ns(source), shown.contains('\n')) {
            text.push_str(&format!("source {mtime} {shown}\n"));
        }
    }
    text
}

/// A manifest's text: a regular file (never a link, never blocking), at
/// most 1 MiB.
fn read_manifest(path: &Path) -> Option<String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    file.take(1 << 20).read_to_string(&mut text).ok()?;
    Some(text)
}

/// Whether a core can be used as it is.
#[derive(Debug, PartialEq, Eq)]
pub enum Freshness {
    Fresh,
    Missing,
    /// Why not: the newest changed source, or what else changed.
    Stale(String),
}

/// Checks the core at `path` against its manifest, with a few `stat`s.
pub fn freshness(req: &Request, path: &Path, program: &Path) -> Freshness {
    if !path.exists() {
        return Freshness::Missing;
    }
    let Some(text) = read_manifest(&manifest_path(path)) else {
        return Freshness::Stale("it has no manifest".into());
    };
    let mut changed: Option<(i128, String)> = None;
    for line in text.lines() {
        let (field, value) = line.split_once(' ').unwrap_or((line, ""));
        let stale = match field {
            "lisp" if value != lisp_identity(program) => Some("the Lisp was changed".to_string()),
            "preload" if value != preload_text(req) => Some(":preload was changed".to_string()),
            "user" if value != daemon_uid(req).to_string() => Some(":user was changed".to_string()),
            _ => None,
        };
        if let Some(why) = stale {
            return Freshness::Stale(why);
        }
        if field == "source"
            && let Some((recorded, file)) = value.split_once(' ')
        {
            let now = mtime_ns(Path::new(file));
            if now.map(|n| n.to_string()).as_deref() != Some(recorded) {
                let when = now.unwrap_or(i128::MAX);
                if changed.as_ref().is_none_or(|(t, _)| when > *t) {
                    changed = Some((when, file.to_string()));
                }
            }
        }
    }
    match changed {
        Some((_, file)) => Freshness::Stale(format!("{file} was changed")),
        None => Freshness::Fresh,
    }
}

/// The conf's core and whether it is fresh, for `check` and `status -v`:
/// `/var/cache/daemonization/web-....core (fresh)`.
pub fn describe(req: &Request) -> String {
    let path = core_path(req);
    let state = match super::find_program(&req.runner.program) {
        None => "the Lisp program is not found".to_string(),
        Some(program) => match freshness(req, &path, &program) {
            Freshness::Fresh => "fresh".into(),
            Freshness::Missing => "not built yet".into(),
            Freshness::Stale(why) => format!("stale: {why}"),
        },
    };
    format!("{} ({state})", path.display())
}

/// Before `start`, `restart` or `nodaemon` of a conf with `:core`: the core
/// checked (an `:auto` one built when missing or stale; an explicit stale
/// one used, with a warning) and set as the runner's.
pub fn prepare(req: &mut Request, command: Command) -> Result<(), Box<Outcome>> {
    let Some(core) = req.conf.spec.core.clone() else {
        return Ok(());
    };
    let facts = req.runner.kind.facts();
    if facts.core.is_none() {
        let e = DaemonError::NoCores { lisp: facts.name };
        return Err(Box::new(req.internal(command, e)));
    }
    let program = program(req, command)?;
    let path = core_path(req);
    // A core there is judged before anything of it is read.
    if path.exists() {
        trust::check_core(&path, &req.trust)
            .map_err(|e| Box::new(req.internal(command, e.into())))?;
    }
    match (freshness(req, &path, &program), core) {
        (Freshness::Fresh, _) => {}
        (_, CoreFile::Auto) => {
            build(req, &program).map_err(|e| Box::new(req.internal(command, e)))?;
        }
        (Freshness::Missing, CoreFile::Path(_)) => {
            let e = DaemonError::CoreMissing { path };
            return Err(Box::new(req.internal(command, e)));
        }
        (Freshness::Stale(why), CoreFile::Path(_)) => eprintln!(
            "WARNING: the core {} is stale ({why}): the daemon runs what it was built with; \
             rebuild it with build-core",
            path.display()
        ),
    }
    trust::check_core(&path, &req.trust).map_err(|e| Box::new(req.internal(command, e.into())))?;
    req.runner.core = Some(path);
    Ok(())
}

/// `build-core`: builds the conf's core and replaces the old one only when
/// the new one is complete.
pub fn build_core(req: &Request) -> Result<Built, Box<Outcome>> {
    let facts = req.runner.kind.facts();
    if facts.core.is_none() {
        let e = DaemonError::NoCores { lisp: facts.name };
        return Err(Box::new(req.internal(Command::BuildCore, e)));
    }
    let program = program(req, Command::BuildCore)?;
    build(req, &program).map_err(|e| Box::new(req.internal(Command::BuildCore, e)))
}

/// Builds the core of `req` with the Lisp `program`.
fn build(req: &Request, program: &Path) -> Result<Built, DaemonError> {
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
    // The Lisp saves into a directory of its own (its user's, 0700).
    let staging = dir.join(format!(".build-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir(&staging).map_err(|e| io_error(&staging, e))?;
    let cleanup = Cleanup(staging.clone());
    std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| io_error(&staging, e))?;
    if let Some(switch) = &req.switch {
        std::os::unix::fs::chown(&staging, Some(switch.account.uid), Some(switch.account.gid))
            .map_err(|e| io_error(&staging, e))?;
    }
    super::create_fasl_dir(req.conf.spec.fasl_dir.as_deref(), req)?;
    let staged = staging.join("image.core");
    let mut runner = req.runner.clone();
    runner.core = None;
    let plan = plan::plan(
        &req.conf.spec,
        &runner,
        &Mode::BuildCore {
            file: staged.clone(),
        },
        req.switch.as_ref(),
        &req.lisp_log(req.switch.is_none()),
        &caller(req),
    );
    let launch = Launch::new(&plan, program, None)?;
    let (read_end, write_end) = pipe2(OFlag::O_CLOEXEC).map_err(DaemonError::Pipe)?;
    let child = launch.fork_foreground(write_end)?;
    let said = listen(File::from(read_end), started);
    let status = waitpid(child, None).map_err(|errno| DaemonError::Wait {
        pid: child.as_raw(),
        errno,
    })?;
    let saved = matches!(status, WaitStatus::Exited(_, 0)) && said.iter().any(|l| l == "saving");
    if !saved {
        let report = said
            .iter()
            .position(|l| l == "error")
            .map(|i| said[i + 1..].join("\n"))
            .unwrap_or_else(|| format!("the Lisp ended: {status:?}"));
        return Err(DaemonError::CoreBuild { report });
    }
    let sources: Vec<PathBuf> = said
        .iter()
        .filter_map(|l| l.strip_prefix("source "))
        .map(PathBuf::from)
        .collect();
    let bytes = install(&staged, &target, req.switch.as_ref().map(|s| s.account.uid))?;
    write_new(
        &manifest_path(&target),
        manifest_text(req, program, &sources).as_bytes(),
    )?;
    drop(cleanup);
    Ok(Built {
        path: target,
        bytes,
        took: started.elapsed(),
    })
}

/// The largest image copied (a core is some hundred MiB).
const MAX_IMAGE: u64 = 16 << 30;

/// Puts the saved image at `target`: renamed, or (saved by another user,
/// `copy_from` its uid) copied into a new file of the caller's, 0644: only
/// a regular file of that user with one link (never a hard link to a file
/// the user could not read), streamed, at most `MAX_IMAGE`. Returns its
/// size.
fn install(staged: &Path, target: &Path, copy_from: Option<u32>) -> Result<u64, DaemonError> {
    let mut image = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(staged)
        .map_err(|e| io_error(staged, e))?;
    let meta = image.metadata().map_err(|e| io_error(staged, e))?;
    let foreign = copy_from.is_some_and(|uid| meta.uid() != uid || meta.nlink() != 1);
    if !meta.is_file() || foreign || meta.len() > MAX_IMAGE {
        return Err(DaemonError::CoreBuild {
            report: format!(
                "{} is not the image the Lisp saved (a regular file of its user, one link, \
                 at most 16 GiB)",
                staged.display()
            ),
        });
    }
    if copy_from.is_none() {
        std::fs::set_permissions(staged, std::fs::Permissions::from_mode(0o644))
            .map_err(|e| io_error(staged, e))?;
        std::fs::rename(staged, target).map_err(|e| io_error(target, e))?;
        return Ok(meta.len());
    }
    write_new_from(target, &mut Read::by_ref(&mut image).take(MAX_IMAGE))
}

/// Writes `bytes` to a new file (0644, `O_EXCL`) renamed to `path`.
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), DaemonError> {
    write_new_from(path, &mut &bytes[..]).map(drop)
}

/// Copies `source` into a new file (0644, `O_EXCL`) renamed to `path`;
/// returns the bytes copied.
fn write_new_from(path: &Path, source: &mut impl Read) -> Result<u64, DaemonError> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".new-{}", std::process::id()));
    let temporary = PathBuf::from(temporary);
    let _ = std::fs::remove_file(&temporary);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&temporary)
        .map_err(|e| io_error(&temporary, e))?;
    let written = std::io::copy(source, &mut file).and_then(|n| {
        file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
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

/// Removes the build's own directory, whatever happens.
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Reads the builder's lines until its end; on a terminal, shows what is
/// loading and for how long, in place.
fn listen(mut pipe: File, started: Instant) -> Vec<String> {
    let terminal = nix::unistd::isatty(std::io::stderr()).unwrap_or(false);
    let mut text = Vec::new();
    let mut loading = String::from("starting the Lisp");
    let mut shown = false;
    loop {
        let mut fds = [PollFd::new(pipe.as_fd(), PollFlags::POLLIN)];
        let _ = poll(&mut fds, PollTimeout::from(1000u16));
        let mut chunk = [0u8; 8192];
        match pipe.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => text.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
        if let Some(last) = String::from_utf8_lossy(&text)
            .lines()
            .filter_map(|l| l.strip_prefix("loading "))
            .next_back()
        {
            loading = format!("loading {last}");
        }
        if terminal {
            eprint!("\r\x1b[K{loading} ({} s)", started.elapsed().as_secs());
            shown = true;
        }
    }
    if shown {
        eprint!("\r\x1b[K");
    }
    String::from_utf8_lossy(&text)
        .lines()
        .map(str::to_string)
        .collect()
}
