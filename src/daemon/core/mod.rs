//! Saved cores: `build-core` loads a conf's `:preload` into a fresh Lisp of
//! its runner (as its `:user`, with its environment, `:fasl-dir` and
//! runtime options) and saves the image (see `build`); `start`, `restart`
//! and `nodaemon` then run the Lisp on it (`:core`), building an `:auto`
//! core that is missing or stale first.
//!
//! Beside each core, `CORE.manifest` (only the caller may read it) says
//! what it is made of: the core itself (inode, size, time), the Lisp
//! program (path, size, time), the preload list, the user, the settings a
//! build depends on, and every source file with its modification time
//! (and every directory where ASDF or Quicklisp look for systems: a copy
//! added there may shadow one the core holds); a few `stat`s tell whether
//! it is fresh. As root a core is code like a
//! conf: built as the `:user` in a directory of its own, copied into a new
//! root-owned file (0640, the user's group: the daemon reads it and cannot
//! write it), and used only if it passes `trust::check_core`; a core built
//! for another user is never used.

mod build;

use std::io::Read;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

pub use build::Built;

use super::{DaemonError, Request, program};
use crate::config::CoreFile;
use crate::trust;
use crate::wire::manifest::{self, Entry, Manifest, Named};

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
    let hash = super::stable_hash(key.as_bytes());
    dir.join(format!("{}-{hash:016x}.core", req.conf.service_name()))
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

fn mtime_ns(path: &Path) -> Option<i128> {
    std::fs::metadata(path).ok().map(|m| mtime_of(&m))
}

/// What a build depends on besides sources: the environment the conf
/// sets, ASDF's, the fasl directory, the runtime options.
fn settings_text(req: &Request) -> String {
    let spec = &req.conf.spec;
    let asdf: Vec<String> = [
        "CL_SOURCE_REGISTRY",
        "ASDF_OUTPUT_TRANSLATIONS",
        "XDG_CONFIG_DIRS",
        "XDG_DATA_DIRS",
    ]
    .iter()
    .filter_map(|name| std::env::var(name).ok().map(|v| format!("{name}={v}")))
    .collect();
    format!(
        "{:?} {:?} {:?} {:?} {:?} {:?}",
        spec.environment,
        if req.switch.is_none() {
            asdf
        } else {
            Vec::new()
        },
        spec.fasl_dir,
        spec.lisp_options,
        spec.dynamic_space_size,
        spec.control_stack_size
    )
}

/// A file as a manifest names a version of it: inode, size, time.
fn file_identity(path: &Path) -> String {
    match std::fs::metadata(path) {
        Ok(m) => format!("{} {} {}", m.ino(), m.len(), mtime_of(&m)),
        Err(_) => "missing".into(),
    }
}

fn mtime_of(m: &std::fs::Metadata) -> i128 {
    i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec())
}

/// What in a directory where ASDF or Quicklisp look for systems decides
/// which copy of a system they find: the names of its subdirectories,
/// links and `.asd` files (not its other files: a log written there
/// changes nothing), as a hash; at most the first `MAX_ENTRIES` entries.
fn systems_in(dir: &Path) -> Option<u64> {
    let mut names: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .ok()?
        .take(MAX_ENTRIES)
        .filter_map(Result::ok)
        .filter(|entry| {
            let name = entry.file_name();
            name.as_bytes().ends_with(b".asd")
                || entry
                    .file_type()
                    .is_ok_and(|t| t.is_dir() || t.is_symlink())
        })
        .map(|entry| entry.file_name().as_bytes().to_vec())
        .collect();
    names.sort();
    Some(super::stable_hash(&names.join(&0u8)))
}

/// The most entries of one searched directory read, and the most searched
/// directories a manifest keeps.
const MAX_ENTRIES: usize = 10_000;
const MAX_SEARCHED: usize = 2_000;

/// How long the directories of a `:user`'s core may take to read.
const LISTING_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// What the manifest records of `path`, followed as `named`.
fn look(named: Named, path: &Path) -> Option<String> {
    match named {
        Named::Source => mtime_ns(path).map(|n| n.to_string()),
        Named::Searched => systems_in(path).map(|h| format!("{h:016x}")),
    }
}

/// `Named::look` of each of `named`, in order. The builder named them, so
/// as root for a `:user`'s daemon they are looked at with that user's
/// power (in a child of ours that became the user: root tells the user
/// nothing of a file or directory the user could not see) and within
/// `LISTING_TIME`; `None` when that failed or took longer.
fn look_all(req: &Request, named: &[(Named, &Path)]) -> Option<Vec<Option<String>>> {
    let Some(switch) = &req.switch else {
        return Some(named.iter().map(|(n, p)| look(*n, p)).collect());
    };
    let as_user = crate::plan::Switch {
        keep_bind: false,
        ..switch.clone()
    };
    let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ok()?;
    // The child only changes its ids, looks at the paths, writes to the
    // pipe and exits; the write end it takes is closed here with it.
    let child = super::fork::child(move || {
        if super::identity::apply(&as_user).is_err() {
            super::exec::exit_now(1);
        }
        let mut pipe = std::io::BufWriter::new(std::fs::File::from(write_end));
        for (n, path) in named {
            let line = look(*n, path).unwrap_or_else(|| "-".into()) + "\n";
            if std::io::Write::write_all(&mut pipe, line.as_bytes()).is_err() {
                super::exec::exit_now(1);
            }
        }
        match std::io::Write::flush(&mut pipe) {
            Ok(()) => super::exec::exit_now(0),
            Err(_) => super::exec::exit_now(1),
        }
    })
    .ok()?;
    let text = read_within(std::fs::File::from(read_end), LISTING_TIME);
    // Ours, not yet reaped: its pid is still its own.
    let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(child, None);
    let text = text?;
    let lines: Vec<&str> = text.lines().collect();
    (lines.len() == named.len()).then(|| {
        lines
            .iter()
            .map(|l| (*l != "-").then(|| l.to_string()))
            .collect()
    })
}

/// All that `pipe` gives until its writer closes it, if that is within
/// `time`.
fn read_within(mut pipe: std::fs::File, time: std::time::Duration) -> Option<String> {
    use std::os::fd::AsFd as _;
    let deadline = std::time::Instant::now() + time;
    let mut text = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        // Past the deadline nothing more is read, however much is there.
        if std::time::Instant::now() >= deadline {
            return None;
        }
        let watched = [(pipe.as_fd(), nix::poll::PollFlags::POLLIN)];
        match super::events::ready_within(&watched, Some(deadline)) {
            Ok(None) | Err(_) => return None,
            Ok(Some(seen)) if seen[0].is_empty() => continue,
            Ok(Some(_)) => match pipe.read(&mut buffer) {
                Ok(0) => return String::from_utf8(text).ok(),
                Ok(n) => text.extend_from_slice(&buffer[..n]),
                Err(_) => return None,
            },
        }
    }
}

/// The manifest of the core at `core`, built by `program` from `sources`,
/// ASDF and Quicklisp having looked for systems in `searched`.
fn manifest_text(
    req: &Request,
    program: &Path,
    core: &Path,
    sources: &[PathBuf],
    searched: &[PathBuf],
) -> String {
    let named: Vec<(Named, &Path)> = sources
        .iter()
        .map(|p| (Named::Source, p.as_path()))
        .chain(
            searched
                .iter()
                .take(MAX_SEARCHED)
                .map(|p| (Named::Searched, p.as_path())),
        )
        .filter(|(_, p)| !p.as_os_str().as_bytes().contains(&b'\n'))
        .collect();
    let entries = named
        .iter()
        .zip(look_all(req, &named).unwrap_or_default())
        .filter_map(|(&(named, path), seen)| {
            Some(Entry {
                named,
                seen: seen?,
                path: path.to_path_buf(),
            })
        })
        .take(manifest::MAX_ENTRIES)
        .collect();
    Manifest {
        core: file_identity(core),
        lisp: lisp_identity(program),
        preload: preload_text(req),
        user: req.daemon_uid(),
        settings: settings_text(req),
        entries,
    }
    .to_string()
}

/// A manifest's text: a regular file (never a link, never blocking), at
/// most 16 MiB.
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
    file.take(manifest::MAX_MANIFEST as u64)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

/// Whether a core can be used as it is.
#[derive(Debug, PartialEq, Eq)]
pub enum Freshness {
    Fresh,
    Missing,
    /// Why not: the newest changed source, or what else changed.
    Stale(String),
    /// Not this conf's to run: built for another user, or its manifest is
    /// gone or does not name this core.
    Foreign(String),
}

/// Checks the core at `path` against its manifest, with a few `stat`s.
pub fn freshness(req: &Request, path: &Path, program: &Path) -> Freshness {
    if !path.exists() {
        return Freshness::Missing;
    }
    let Some(text) = read_manifest(&manifest_path(path)) else {
        return Freshness::Foreign("it has no manifest".into());
    };
    let Ok(manifest) = text.parse::<Manifest>() else {
        return Freshness::Foreign("its manifest is not one this tool wrote".into());
    };
    // A manifest names its core, and its user (this daemon's).
    if manifest.core != file_identity(path) {
        return Freshness::Foreign("its manifest is another core's".into());
    }
    if manifest.user != req.daemon_uid() {
        return Freshness::Foreign("it was built for another user".into());
    }
    let stale = [
        (
            manifest.lisp == lisp_identity(program),
            "the Lisp was changed",
        ),
        (
            manifest.preload == preload_text(req),
            ":preload was changed",
        ),
        (
            manifest.settings == settings_text(req),
            "the conf's environment, :fasl-dir or runtime options were changed",
        ),
    ];
    if let Some((_, why)) = stale.iter().find(|(same, _)| !same) {
        return Freshness::Stale(why.to_string());
    }
    // What the builder named, what was seen of it then; at most
    // MAX_SEARCHED directories.
    let mut searched = 0;
    let recorded: Vec<(Named, &str, &Path)> = manifest
        .entries
        .iter()
        .filter(|e| {
            let keep = e.named == Named::Source || searched < MAX_SEARCHED;
            searched += usize::from(keep && e.named == Named::Searched);
            keep
        })
        .map(|e| (e.named, e.seen.as_str(), e.path.as_path()))
        .collect();
    let mut changed: Option<(i128, String)> = None;
    // The newest change is told (a source by its new time, as seen for
    // the daemon's user; a searched directory, or a file gone, first).
    let mut change = |file: &str, when: Option<i128>| {
        let when = when.unwrap_or(i128::MAX);
        if changed.as_ref().is_none_or(|(t, _)| when > *t) {
            changed = Some((when, file.to_string()));
        }
    };
    let named: Vec<(Named, &Path)> = recorded.iter().map(|(n, _, p)| (*n, *p)).collect();
    let Some(now) = look_all(req, &named) else {
        return Freshness::Stale(format!(
            "its sources and the directories where systems are searched could not be \
             looked at within {} s",
            LISTING_TIME.as_secs()
        ));
    };
    for ((n, seen, path), now) in recorded.iter().zip(now) {
        if now.as_deref() != Some(*seen) {
            let when = now
                .filter(|_| *n == Named::Source)
                .and_then(|t| t.parse().ok());
            change(&path.to_string_lossy(), when);
        }
    }
    match changed {
        Some((_, file)) => Freshness::Stale(format!("{} was changed", crate::visible::line(&file))),
        None => Freshness::Fresh,
    }
}

/// The conf's core and whether it is fresh, for `check` and `status -v`:
/// `/var/cache/daemonization/web-....core (fresh)`.
pub fn describe(req: &Request) -> String {
    let path = core_path(req);
    // Judged before anything of it is read, as for a start.
    let judged = match path.exists() {
        true => trust::check_core(&path, &req.trust),
        false => Ok(()),
    };
    let state = match (super::find_program(&req.runner.program), judged) {
        (None, _) => "the Lisp program is not found".to_string(),
        (Some(_), Err(e)) => format!("not usable: {e}"),
        (Some(program), Ok(())) => match freshness(req, &path, &program) {
            Freshness::Fresh => "fresh".into(),
            Freshness::Missing => "not built yet".into(),
            Freshness::Stale(why) => format!("stale: {why}"),
            Freshness::Foreign(why) => format!("not usable: {why}"),
        },
    };
    format!("{} ({state})", path.display())
}

/// Before `start`, `restart` or `nodaemon` of a conf with `:core`: the core
/// checked (an `:auto` one built when missing or stale; an explicit stale
/// one used, with a warning) and set as the runner's.
pub fn prepare(req: &mut Request) -> Result<(), DaemonError> {
    let Some(core) = req.conf.spec.core.clone() else {
        return Ok(());
    };
    let program = core_program(req)?;
    let path = core_path(req);
    let judge = || trust::check_core(&path, &req.trust).map_err(DaemonError::from);
    // A core there is judged before anything of it is read.
    if path.exists() {
        judge()?;
    }
    match (freshness(req, &path, &program), core) {
        (Freshness::Fresh, _) => {}
        (_, CoreFile::Auto) => {
            build::build(req, &program)?;
            // The new core, judged as the old one was.
            judge()?;
        }
        (Freshness::Foreign(why), CoreFile::Path(_)) => {
            return Err(DaemonError::CoreForeign { path, why });
        }
        (Freshness::Missing, CoreFile::Path(_)) => {
            return Err(DaemonError::CoreMissing { path });
        }
        (Freshness::Stale(why), CoreFile::Path(_)) => eprintln!(
            "WARNING: the core {} is stale ({why}): the daemon runs what it was built with; \
             rebuild it with build-core",
            path.display()
        ),
    }
    req.runner.core = Some(path);
    Ok(())
}

/// `build-core`: builds the conf's core and replaces the old one only when
/// the new one is complete.
pub fn build_core(req: &Request) -> Result<Built, DaemonError> {
    let program = core_program(req)?;
    build::build(req, &program)
}

/// The Lisp program that builds and runs the conf's core, if its Lisp
/// saves cores at all.
fn core_program(req: &Request) -> Result<PathBuf, DaemonError> {
    let facts = req.runner.kind.facts();
    if facts.core.is_none() {
        return Err(DaemonError::NoCores { lisp: facts.name });
    }
    program(req)
}
