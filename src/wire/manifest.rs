//! A core's manifest (`CORE.manifest`): what the tool knows of how a core
//! was made, to tell whether it is still fresh. Written by the tool beside
//! the core, one `key value` a line:
//!
//! | line | meaning |
//! |---|---|
//! | `core ID` | the core it describes (device, inode, size, mtime) |
//! | `lisp ID` | the Lisp program that made it |
//! | `preload TEXT` | the conf's `:preload`, as text |
//! | `user UID` | the user it was built for (its daemon's) |
//! | `settings TEXT` | the conf's environment, `:fasl-dir`, runtime options |
//! | `source SEEN PATH` | a file that went into the core, and its mtime then |
//! | `searched SEEN DIR` | a directory where systems are searched, and what it held then |
//!
//! The header lines come first, in this order; then at most
//! `MAX_ENTRIES` entries.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// The longest manifest read.
pub const MAX_MANIFEST: usize = 16 << 20;
/// The most entries (sources and searched directories) a manifest holds.
pub const MAX_ENTRIES: usize = 100_000;

/// How a manifest follows a path its builder named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Named {
    /// A file that went into the core: its modification time.
    Source,
    /// A directory where systems are searched: what it holds.
    Searched,
}

impl Named {
    pub fn word(self) -> &'static str {
        match self {
            Named::Source => "source",
            Named::Searched => "searched",
        }
    }

    pub fn of(word: &str) -> Option<Named> {
        [Named::Source, Named::Searched]
            .into_iter()
            .find(|n| n.word() == word)
    }
}

/// One path the builder named, and what was seen of it at build time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub named: Named,
    pub seen: String,
    pub path: PathBuf,
}

/// A core's manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub core: String,
    pub lisp: String,
    pub preload: String,
    pub user: u32,
    pub settings: String,
    pub entries: Vec<Entry>,
}

impl fmt::Display for Manifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "core {}\nlisp {}\npreload {}\nuser {}\nsettings {}",
            self.core, self.lisp, self.preload, self.user, self.settings
        )?;
        for e in &self.entries {
            writeln!(f, "{} {} {}", e.named.word(), e.seen, e.path.display())?;
        }
        Ok(())
    }
}

/// A text that is not a manifest.
#[derive(Debug, PartialEq, Eq)]
pub struct NotAManifest;

impl FromStr for Manifest {
    type Err = NotAManifest;

    fn from_str(text: &str) -> Result<Manifest, NotAManifest> {
        if text.len() > MAX_MANIFEST {
            return Err(NotAManifest);
        }
        let mut lines = text.lines();
        let mut header = |key: &str| {
            let line = lines.next().ok_or(NotAManifest)?;
            let (k, value) = line.split_once(' ').unwrap_or((line, ""));
            (k == key).then(|| value.to_string()).ok_or(NotAManifest)
        };
        let core = header("core")?;
        let lisp = header("lisp")?;
        let preload = header("preload")?;
        let user = header("user")?.parse().map_err(|_| NotAManifest)?;
        let settings = header("settings")?;
        let mut entries = Vec::new();
        for line in lines {
            let (word, rest) = line.split_once(' ').ok_or(NotAManifest)?;
            let (seen, path) = rest.split_once(' ').ok_or(NotAManifest)?;
            let named = Named::of(word).ok_or(NotAManifest)?;
            if entries.len() == MAX_ENTRIES {
                return Err(NotAManifest);
            }
            entries.push(Entry {
                named,
                seen: seen.to_string(),
                path: PathBuf::from(path),
            });
        }
        Ok(Manifest {
            core,
            lisp,
            preload,
            user,
            settings,
            entries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_round_trips() {
        let manifest = Manifest {
            core: "2049:131 40000000 1765000000".into(),
            lisp: "/usr/bin/sbcl 2049:7 300000 1700000000".into(),
            preload: "(:hunchentoot \"site.lisp\")".into(),
            user: 1001,
            settings: "env () fasl nil options ()".into(),
            entries: vec![
                Entry {
                    named: Named::Source,
                    seen: "1765000000123".into(),
                    path: "/srv/site/site lisp.lisp".into(),
                },
                Entry {
                    named: Named::Searched,
                    seen: "00ff00ff00ff00ff".into(),
                    path: "/usr/share/common-lisp/systems/".into(),
                },
            ],
        };
        assert_eq!(manifest.to_string().parse(), Ok(manifest.clone()));
        let no_entries = Manifest {
            entries: Vec::new(),
            ..manifest.clone()
        };
        assert_eq!(no_entries.to_string().parse(), Ok(no_entries));
        // Out of order, unknown words, a missing field.
        let text = manifest.to_string();
        let swapped = text.replacen("core ", "user ", 1);
        for bad in [
            "",
            swapped.as_str(),
            &format!("{text}owner 1 /x\n"),
            &format!("{text}source 1\n"),
        ] {
            assert_eq!(bad.parse::<Manifest>(), Err(NotAManifest), "{bad:?}");
        }
    }
}
