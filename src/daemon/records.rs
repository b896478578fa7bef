//! Records of started daemons, for `list`: `start` leaves one per daemon
//! (per pid file) in the tool's pid directory (`record-HASH`: the conf, its
//! pid file and its name, as a property list), whatever directory the pid
//! file itself is in; `stop`, `kill` and `zap` remove it, and `list` prunes
//! a record whose conf is gone and whose pid file is too. A record is trusted as a pid file is (see
//! `RunDir`): a trusted owner's regular file, never a link.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use super::{DaemonError, Request, RunDir};
use crate::trust::Trust;
pub use crate::wire::record::Record;

/// The conf's path as a record names it: one record whichever way the
/// path is written.
fn canonical(conf: &Path) -> PathBuf {
    std::fs::canonicalize(conf).unwrap_or_else(|_| conf.to_path_buf())
}

/// The record file of the daemon of pid file `key` in `dir` (an older
/// version's: of the canonical conf): named by a hash of the path (64-bit
/// FNV-1a: the same in every version of the tool).
fn record_path(dir: &Path, key: &Path) -> PathBuf {
    let hash = super::stable_hash(key.as_os_str().as_bytes());
    dir.join(format!("record-{hash:016x}"))
}

/// The record of `conf` in `dir`, opened as a pid file is (its directory
/// made, with `create`).
fn files(
    req: &Request,
    dir: &Path,
    private: Option<&Path>,
    key: &Path,
    create: bool,
) -> Result<Option<RunDir>, DaemonError> {
    RunDir::open(&record_path(dir, key), private, &req.trust, create)
}

/// What a command did to the daemon, for its record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// It started: the daemon has a record.
    Started,
    /// It stopped (or was found not running): it has none.
    Ended,
}

/// Keeps the record of `req`'s daemon up to date after `change`.
pub fn update(req: &Request, change: Change) -> Result<(), DaemonError> {
    let dir = req.pid_dirs.tool_dir();
    let private = req.pid_dirs.private_dir();
    match change {
        Change::Started => leave(req, &dir, private.as_deref()),
        Change::Ended => remove(req, &dir, private.as_deref()),
    }
}

/// Leaves the record of `req`'s daemon (after a start), named by its pid
/// file: the Lisp API's property-list confs are a new file each call, so
/// its start and its stop share the record through the pid file.
fn leave(req: &Request, dir: &Path, private: Option<&Path>) -> Result<(), DaemonError> {
    let Some(files) = files(req, dir, private, &req.conf.pid_file, true)? else {
        return Ok(());
    };
    let record = Record {
        conf: canonical(&req.conf.path),
        pid_file: req.conf.pid_file.clone(),
        name: req.conf.spec.name.clone(),
    };
    files.write_own(&record.to_string())
}

/// Removes the record of `req`'s daemon (after a stop), and one an older
/// version named by the conf.
fn remove(req: &Request, dir: &Path, private: Option<&Path>) -> Result<(), DaemonError> {
    for key in [req.conf.pid_file.clone(), canonical(&req.conf.path)] {
        if let Some(files) = files(req, dir, private, &key, false)? {
            files.remove_own_file()?;
        }
    }
    Ok(())
}

/// Removes the records (`all`'s) whose conf is gone and whose pid file is
/// too: nothing is left to list (a property-list conf of the Lisp API, a
/// removed conf whose daemon ended). Returns the others.
pub fn prune(
    records: Vec<(PathBuf, Record)>,
    private: Option<&Path>,
    trust: &Trust,
) -> Vec<Record> {
    records
        .into_iter()
        .filter_map(|(file, record)| {
            let gone = !record.conf.exists() && !record.pid_file.exists();
            if gone
                && let Ok(Some(files)) = RunDir::open(&file, private, trust, false)
                && files.remove_own_file().is_ok()
            {
                return None;
            }
            Some(record)
        })
        .collect()
}

/// Every trusted record of `dir` and its file, in conf order.
pub fn all(dir: &Path, private: Option<&Path>, trust: &Trust) -> Vec<(PathBuf, Record)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut records: Vec<(PathBuf, Record)> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .filter(|n| is_record(n))
        .filter_map(|name| {
            let file = dir.join(&name);
            let files = RunDir::open(&file, private, trust, false).ok()??;
            Some((file, files.read_own()?.parse().ok()?))
        })
        .collect();
    records.sort_by(|a, b| a.1.conf.cmp(&b.1.conf));
    records
}

/// Whether `name` is a record's file name.
pub fn is_record(name: &OsStr) -> bool {
    name.to_str().is_some_and(|n| n.starts_with("record-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_and_are_named_by_their_conf() {
        let dir = Path::new("/run/daemonization");
        assert_eq!(
            record_path(dir, Path::new("/a.conf")),
            record_path(dir, Path::new("/a.conf"))
        );
        assert_ne!(
            record_path(dir, Path::new("/a.conf")),
            record_path(dir, Path::new("/b.conf"))
        );
        assert!(is_record(
            record_path(dir, Path::new("/a.conf")).file_name().unwrap()
        ));
    }
}
