//! Records of started daemons, for `list`: `start` leaves one per conf in
//! the tool's pid directory (`record-HASH`: the conf and its pid file, as
//! a property list), whatever directory the pid file itself is in; `stop`,
//! `kill` and `zap` remove it. A record is trusted as a pid file is (see
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

/// The record file of the (canonical) `conf` in `dir`: named by a hash of
/// the conf's path (64-bit FNV-1a: the same in every version of the tool).
fn record_path(dir: &Path, conf: &Path) -> PathBuf {
    let hash = super::stable_hash(conf.as_os_str().as_bytes());
    dir.join(format!("record-{hash:016x}"))
}

/// The record of `conf` in `dir`, opened as a pid file is (its directory
/// made, with `create`).
fn files(
    req: &Request,
    dir: &Path,
    private: Option<&Path>,
    conf: &Path,
    create: bool,
) -> Result<Option<RunDir>, DaemonError> {
    RunDir::open(&record_path(dir, conf), private, &req.trust, create)
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

/// Leaves the record of `req`'s conf (after a start).
fn leave(req: &Request, dir: &Path, private: Option<&Path>) -> Result<(), DaemonError> {
    let conf = canonical(&req.conf.path);
    let Some(files) = files(req, dir, private, &conf, true)? else {
        return Ok(());
    };
    let record = Record {
        conf,
        pid_file: req.conf.pid_file.clone(),
    };
    files.write_own(&record.to_string())
}

/// Removes the record of `req`'s conf (after a stop).
fn remove(req: &Request, dir: &Path, private: Option<&Path>) -> Result<(), DaemonError> {
    match files(req, dir, private, &canonical(&req.conf.path), false)? {
        Some(files) => files.remove_own_file(),
        None => Ok(()),
    }
}

/// Every trusted record of `dir`, in conf order.
pub fn all(dir: &Path, private: Option<&Path>, trust: &Trust) -> Vec<Record> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut records: Vec<Record> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .filter(|n| is_record(n))
        .filter_map(|name| {
            let files = RunDir::open(&dir.join(&name), private, trust, false).ok()??;
            files.read_own()?.parse().ok()
        })
        .collect();
    records.sort_by(|a, b| a.conf.cmp(&b.conf));
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
