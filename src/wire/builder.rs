//! The builder's protocol: what a Lisp that builds a core says on its pipe
//! (`say` in `bootstrap.lisp`, `build-core` mode), one word a line:
//!
//! | words | meaning |
//! |---|---|
//! | `loading NAME` | it loads the preload's item NAME (the progress line shows it) |
//! | `notes`, lines, `end-of-notes` | the compiler's last notes, before an error |
//! | `source PATH` | the image is made of this file (the manifest tracks it) |
//! | `searched DIR` | ASDF or Quicklisp look for systems in DIR |
//! | `saving` | it saves the image now; then only `error` may come |
//! | `error`, the report | the preload (or the save) failed: its report, to the end |
//!
//! The builder runs the daemon user's code, so a word out of place, a line
//! over `MAX_LINE`, more than `MAX_LINES` lines or `MAX_SAID` bytes is a
//! broken protocol, and the build fails.

use std::path::PathBuf;

use super::readiness::Broken;

/// The most the builder may say (progress, sources, a report).
pub const MAX_SAID: usize = 4 << 20;
/// The longest line (a path, a note).
pub const MAX_LINE: usize = 64 * 1024;
/// The most lines.
pub const MAX_LINES: usize = 200_000;

/// Where the builder stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Loading,
    Notes,
    Saving,
    Report,
    Broken,
}

/// What the builder said so far, read line by line.
#[derive(Debug, Default)]
pub struct Said {
    stage: Option<Stage>,
    lines: usize,
    bytes: usize,
    /// The item it loads now (its last `loading`).
    pub loading: Option<String>,
    pub sources: Vec<PathBuf>,
    pub searched: Vec<PathBuf>,
    pub notes: Vec<String>,
    pub saving: bool,
    /// Its error report, once it said `error`.
    pub report: Option<Vec<String>>,
    /// How it broke the protocol, if it did.
    pub broken: Option<Broken>,
}

impl Said {
    /// Takes one line (without its newline); false once the protocol is
    /// broken (nothing more is taken then).
    pub fn take(&mut self, line: &str) -> bool {
        let stage = self.stage.unwrap_or(Stage::Loading);
        self.lines += 1;
        self.bytes += line.len() + 1;
        if stage == Stage::Broken {
            return false;
        }
        if line.len() > MAX_LINE || self.lines > MAX_LINES || self.bytes > MAX_SAID {
            return self.broke(stage, "(too much)");
        }
        let (head, rest) = line.split_once(' ').unwrap_or((line, ""));
        let next = match (stage, head, rest.is_empty()) {
            (Stage::Report, ..) => {
                self.report.get_or_insert_default().push(line.to_string());
                Stage::Report
            }
            (Stage::Notes, "end-of-notes", true) => Stage::Loading,
            (Stage::Notes, ..) => {
                self.notes.push(line.to_string());
                Stage::Notes
            }
            (Stage::Loading | Stage::Saving, "error", true) => {
                self.report = Some(Vec::new());
                Stage::Report
            }
            (Stage::Loading, "loading", false) => {
                self.loading = Some(rest.to_string());
                Stage::Loading
            }
            (Stage::Loading, "notes", true) => Stage::Notes,
            (Stage::Loading, "source", false) => {
                self.sources.push(PathBuf::from(rest));
                Stage::Loading
            }
            (Stage::Loading, "searched", false) => {
                self.searched.push(PathBuf::from(rest));
                Stage::Loading
            }
            (Stage::Loading, "saving", true) => {
                self.saving = true;
                Stage::Saving
            }
            _ => return self.broke(stage, line),
        };
        self.stage = Some(next);
        true
    }

    fn broke(&mut self, stage: Stage, said: &str) -> bool {
        let expected = match stage {
            Stage::Saving => "error",
            _ => "loading, notes, source, searched, saving or error",
        };
        self.broken = Some(Broken {
            expected,
            said: crate::visible::line(&said.chars().take(80).collect::<String>()),
        });
        self.stage = Some(Stage::Broken);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(text: &str) -> Said {
        let mut said = Said::default();
        for line in text.lines() {
            said.take(line);
        }
        said
    }

    #[test]
    fn a_build_is_heard_word_by_word() {
        let s = said("loading :swank\nloading site.lisp\nsource /a.lisp\nsearched /srv/\nsaving\n");
        assert_eq!(s.loading.as_deref(), Some("site.lisp"));
        assert_eq!(
            (s.sources, s.searched),
            (vec!["/a.lisp".into()], vec!["/srv/".into()])
        );
        assert!(s.saving && s.report.is_none() && s.broken.is_none());
        let s =
            said("loading x\nnotes\n; caught WARNING\nsaving\nend-of-notes\nerror\nboom\nsaving\n");
        assert_eq!(s.notes, ["; caught WARNING", "saving"]);
        assert_eq!(s.report.unwrap(), ["boom", "saving"]);
        assert!(!s.saving && s.broken.is_none());
    }

    /// What a user's builder may write that is not the protocol.
    #[test]
    fn a_word_out_of_place_breaks_it() {
        for (text, expected) in [
            (
                "hello\n",
                "loading, notes, source, searched, saving or error",
            ),
            ("saving\nsource /x\n", "error"),
            (
                "loading\n",
                "loading, notes, source, searched, saving or error",
            ),
        ] {
            let s = said(text);
            assert_eq!(s.broken.map(|b| b.expected), Some(expected), "{text:?}");
        }
        let long = format!("loading {}\n", "x".repeat(MAX_LINE));
        assert!(said(&long).broken.is_some());
        let many = "loading x\n".repeat(MAX_LINES + 1);
        assert!(said(&many).broken.is_some());
    }

    /// The bootstrap says the words this reads, and no others.
    #[test]
    fn the_bootstrap_speaks_the_protocol() {
        let bootstrap = include_str!("../plan/bootstrap.lisp");
        let mut words = Vec::new();
        for (at, _) in bootstrap.match_indices("(say ") {
            let rest = &bootstrap[at + 5..];
            let word = rest
                .strip_prefix("(format nil \"")
                .or_else(|| rest.strip_prefix('"'))
                .and_then(|r| r.split(['"', ' ', '~']).next());
            if let Some(word) = word {
                words.push(word.to_string());
            }
        }
        // `status` is the readiness protocol's (see wire::readiness).
        words.retain(|w| w != "status");
        words.sort();
        words.dedup();
        assert_eq!(
            words,
            [
                "end-of-notes",
                "loading",
                "notes",
                "saving",
                "searched",
                "source"
            ]
        );
        assert!(bootstrap.contains("(report \"error\""));
    }
}
