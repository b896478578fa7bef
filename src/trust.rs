//! Conf files are code: run as root, the tool refuses a conf file (or a
//! parent, the default-conf replacement, the logging conf) that someone
//! other than root or the daemon's user could have written.

use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("refusing {}: {reason}; it contains code that would run as root", path.display())]
pub struct Refused {
    pub path: PathBuf,
    pub reason: String,
}

/// Checks one file; `owners` are the uids allowed to own it.
pub fn check_file(path: &Path, owners: &[u32]) -> Result<(), Refused> {
    let refuse = |reason: String| Refused {
        path: path.to_path_buf(),
        reason,
    };
    // A file that cannot be read is reported by whoever reads it.
    let (Ok(link), Ok(meta)) = (fs::symlink_metadata(path), fs::metadata(path)) else {
        return Ok(());
    };
    if link.file_type().is_symlink() && link.uid() != meta.uid() {
        return Err(refuse(
            "a symbolic link to a file owned by someone else".into(),
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o002 != 0 {
        return Err(refuse(format!("writable by others (mode {mode:04o})")));
    }
    if mode & 0o020 != 0 {
        return Err(refuse(format!("writable by its group (mode {mode:04o})")));
    }
    if !owners.contains(&meta.uid()) {
        let owner = nix::unistd::User::from_uid(meta.uid().into())
            .ok()
            .flatten()
            .map_or_else(|| meta.uid().to_string(), |u| u.name);
        return Err(refuse(format!(
            "owned by {owner}, who is neither root nor the :user"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn refusals_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.conf");
        fs::write(&file, "()").unwrap();
        let me = nix::unistd::getuid().as_raw();
        assert_eq!(check_file(&file, &[me]), Ok(()));
        fs::set_permissions(&file, fs::Permissions::from_mode(0o666)).unwrap();
        let err = check_file(&file, &[me]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "refusing {}: writable by others (mode 0666); it contains code that would run as root",
                file.display()
            )
        );
        fs::set_permissions(&file, fs::Permissions::from_mode(0o664)).unwrap();
        assert_eq!(
            check_file(&file, &[me]).unwrap_err().reason,
            "writable by its group (mode 0664)"
        );
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        let other = me + 4242;
        assert!(
            check_file(&file, &[other])
                .unwrap_err()
                .reason
                .ends_with(", who is neither root nor the :user")
        );
    }
}
