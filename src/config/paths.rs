//! Path rules, in one place (documented in the README):
//!
//! - an absolute path is used as is;
//! - a relative `:pid-file` is joined to the pid directory;
//! - `:pid-file-dir`: absolute as is; `:this-dir` is the directory of the conf
//!   file given on the command line, and a relative one is relative to that
//!   same directory; nil is the tool's pid directory (see `PidDirs`);
//! - a relative `:parent-conf-file` is joined to its `:parent-conf-file-dir`
//!   if given, else to the directory of the file that names it;
//! - a path that starts with `~/` starts in the caller's home, `~NAME/` in
//!   the home of user NAME (as SBCL parsed them for the original).

use std::path::{Path, PathBuf};

use super::spec::{DaemonSpec, Dir};

/// Where the tool keeps pid files when a conf does not say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PidDirs {
    pub uid: u32,
    /// `$DAEMONIZATION_PID_DIR`.
    pub explicit: Option<PathBuf>,
    /// `$XDG_RUNTIME_DIR`.
    pub xdg_runtime_dir: Option<PathBuf>,
}

impl PidDirs {
    /// The tool's own per-user directory (not root's, not one the user
    /// named), which must be the caller's alone.
    pub fn private_dir(&self) -> Option<PathBuf> {
        (self.explicit.is_none() && self.uid != 0).then(|| self.tool_dir())
    }

    /// `$DAEMONIZATION_PID_DIR`, else `/run/daemonization` for root, else
    /// `$XDG_RUNTIME_DIR/daemonization`, else `/tmp/daemonization-<uid>`.
    pub fn tool_dir(&self) -> PathBuf {
        if let Some(dir) = &self.explicit {
            return dir.clone();
        }
        if self.uid == 0 {
            return PathBuf::from("/run/daemonization");
        }
        match &self.xdg_runtime_dir {
            Some(dir) => dir.join("daemonization"),
            None => PathBuf::from(format!("/tmp/daemonization-{}", self.uid)),
        }
    }
}

/// `path` with a leading `~/` (or a lone `~`) in `home`, and `~NAME/` in
/// the home of user NAME; as is when there is no such home.
pub fn expand_home(path: &Path, home: Option<&Path>) -> PathBuf {
    let mut parts = path.components();
    let Some(std::path::Component::Normal(first)) = parts.next() else {
        return path.to_path_buf();
    };
    let Some(user) = first.to_str().and_then(|f| f.strip_prefix('~')) else {
        return path.to_path_buf();
    };
    let home = match user {
        "" => home.map(Path::to_path_buf),
        name => nix::unistd::User::from_name(name)
            .ok()
            .flatten()
            .map(|u| u.dir),
    };
    match home {
        Some(home) => home.join(parts.as_path()),
        None => path.to_path_buf(),
    }
}

/// Every path of `spec` with `expand_home` applied.
pub fn expand_homes(spec: &mut DaemonSpec, home: Option<&Path>) {
    let files = [
        &mut spec.pid_file,
        &mut spec.parent_conf_file,
        &mut spec.output,
        &mut spec.fasl_dir,
    ];
    for path in files.into_iter().flatten() {
        *path = expand_home(path, home);
    }
    if let Some(super::spec::CoreFile::Path(core)) = &mut spec.core {
        *core = expand_home(core, home);
    }
    for dir in [&mut spec.pid_file_dir, &mut spec.parent_conf_file_dir] {
        if let Some(Dir::Path(path)) = dir {
            *path = expand_home(path, home);
        }
    }
}

/// A directory setting resolved against `base`; `None` for nil.
pub fn resolve_dir(dir: Option<&Dir>, base: &Path) -> Option<PathBuf> {
    match dir? {
        Dir::ThisDir => Some(base.to_path_buf()),
        Dir::Path(p) => Some(base.join(p)),
    }
}

/// The pid file of a conf given on the command line whose directory is `conf_dir`.
pub fn pid_file(file: &Path, dir: Option<&Dir>, conf_dir: &Path, dirs: &PidDirs) -> PathBuf {
    let dir = resolve_dir(dir, conf_dir).unwrap_or_else(|| dirs.tool_dir());
    dir.join(file)
}

/// A parent conf file named in the file whose directory is `naming_dir`.
pub fn parent_conf_file(file: &Path, dir: Option<&Dir>, naming_dir: &Path) -> PathBuf {
    resolve_dir(dir, naming_dir)
        .unwrap_or_else(|| naming_dir.to_path_buf())
        .join(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs(uid: u32, explicit: Option<&str>, xdg: Option<&str>) -> PidDirs {
        PidDirs {
            uid,
            explicit: explicit.map(PathBuf::from),
            xdg_runtime_dir: xdg.map(PathBuf::from),
        }
    }

    #[test]
    fn tool_pid_dir_follows_the_documented_order() {
        assert_eq!(dirs(0, Some("/x"), Some("/r")).tool_dir(), Path::new("/x"));
        assert_eq!(
            dirs(0, None, Some("/r")).tool_dir(),
            Path::new("/run/daemonization")
        );
        assert_eq!(
            dirs(7, None, Some("/r")).tool_dir(),
            Path::new("/r/daemonization")
        );
        assert_eq!(
            dirs(7, None, None).tool_dir(),
            Path::new("/tmp/daemonization-7")
        );
    }

    #[test]
    fn pid_file_rules() {
        let d = dirs(7, None, None);
        let conf = Path::new("/etc/app");
        let rel = Dir::Path("run".into());
        let abs = Dir::Path("/var/run/app".into());
        assert_eq!(
            pid_file(Path::new("/p/x.pid"), Some(&rel), conf, &d),
            Path::new("/p/x.pid")
        );
        assert_eq!(
            pid_file(Path::new("x.pid"), None, conf, &d),
            Path::new("/tmp/daemonization-7/x.pid")
        );
        assert_eq!(
            pid_file(Path::new("x.pid"), Some(&Dir::ThisDir), conf, &d),
            Path::new("/etc/app/x.pid")
        );
        assert_eq!(
            pid_file(Path::new("x.pid"), Some(&rel), conf, &d),
            Path::new("/etc/app/run/x.pid")
        );
        assert_eq!(
            pid_file(Path::new("x.pid"), Some(&abs), conf, &d),
            Path::new("/var/run/app/x.pid")
        );
    }

    #[test]
    fn a_tilde_starts_in_a_home() {
        let home = Some(Path::new("/home/me"));
        let expand = |p: &str| expand_home(Path::new(p), home);
        assert_eq!(expand("~/run/x.pid"), Path::new("/home/me/run/x.pid"));
        assert_eq!(expand("~"), Path::new("/home/me"));
        assert_eq!(expand("~root/x"), Path::new("/root/x"));
        assert_eq!(expand("a/~/x"), Path::new("a/~/x"));
        assert_eq!(expand("/~/x"), Path::new("/~/x"));
        assert_eq!(expand("~nosuchuser/x"), Path::new("~nosuchuser/x"));
        assert_eq!(expand_home(Path::new("~/x"), None), Path::new("~/x"));
    }

    #[test]
    fn parent_rules() {
        let here = Path::new("/etc/app");
        assert_eq!(
            parent_conf_file(Path::new("p.conf"), None, here),
            Path::new("/etc/app/p.conf")
        );
        let dir = Dir::Path("base".into());
        assert_eq!(
            parent_conf_file(Path::new("p.conf"), Some(&dir), here),
            Path::new("/etc/app/base/p.conf")
        );
        assert_eq!(
            parent_conf_file(Path::new("/q/p.conf"), Some(&dir), here),
            Path::new("/q/p.conf")
        );
    }
}
