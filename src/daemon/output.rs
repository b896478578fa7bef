//! The daemon's captured output, written by its supervisor: the Lisp's
//! stdout and stderr go to a pipe; the supervisor writes whole lines to the
//! `:output` file, rotates it by size (`:output-max-size`, keeping
//! `:output-keep` old files as FILE.1, FILE.2, ...), and reopens it on
//! SIGHUP (after an outside rotation). Lines are never split across files.
//! A rotation that fails (whatever the cause) stops the writing until one
//! works: the root supervisor never grows the file past `:output-max-size`,
//! which is 1 GiB unless the conf says otherwise (`DEFAULT_OUTPUT_MAX`).

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{ErrorKind, Read as _, Write as _};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use nix::fcntl::{AtFlags, OFlag, renameat};
use nix::sys::stat::fstatat;
use nix::unistd::{UnlinkatFlags, pipe2, unlinkat};

use super::error::SetupError;
use crate::trust::{self, Dir, DirKind, PathError, Policy, Trust};

/// A partial line longer than this is written out anyway.
const LONGEST_LINE: usize = 64 * 1024;
/// The most one `drain` reads before the supervisor looks at its signals.
const MAX_DRAIN: usize = 1024 * 1024;

pub struct Output {
    path: PathBuf,
    /// The directory of `:output`, reached once: rotation renames and
    /// removes only entries of this directory, through its descriptor.
    dir: Dir,
    name: OsString,
    file: File,
    size: u64,
    max_size: Option<u64>,
    keep: u32,
    owner: Option<(u32, u32)>,
    trust: Trust,
    pending: Vec<u8>,
    /// Bytes not written since a rotation failed, and why it did.
    dropped: u64,
    why: &'static str,
    /// Lines not written since a write failed (a full disk), and why.
    lost: u64,
    lost_why: Option<String>,
    /// SBCL's runtime said "fatal error" (the Lisp's last line but one):
    /// the line after it, its reason, for the record of why it died.
    pub fatal: Option<String>,
    fatal_next: bool,
    /// The files this writer filled and rotated, held while they are
    /// linked anywhere: more of them than `keep` means someone moved them
    /// out of the rotation's way (their bytes are still on the disk).
    rotated: Vec<File>,
    read: File,
    /// The pipe's write end, for the Lisp's stdout and stderr.
    pub write: OwnedFd,
}

const WHAT: &str = "the :output file";

/// Opens the `:output` file for appending, creating it 0640 and giving it
/// to `owner` (the daemon's user) when it is new, as
/// `crate::trust::open_append` does.
pub(super) fn open(path: &Path, owner: Option<(u32, u32)>) -> Result<File, PathError> {
    Ok(trust::open_append(path, &Trust::of_caller(), WHAT, None, 0o640, owner)?.file)
}

impl Output {
    pub fn open(
        path: &Path,
        max_size: Option<u64>,
        keep: u32,
        owner: Option<(u32, u32)>,
    ) -> Result<Output, SetupError> {
        let trust = Trust::of_caller();
        let parent = path.parent().unwrap_or(Path::new("/"));
        let name = path.file_name().unwrap_or(OsStr::new(".")).to_owned();
        let dir = trust::walk_dir(parent, Policy::Confined { user: owner }, &trust, WHAT, None)
            .map_err(SetupError::Output)?;
        let file = trust::append_in(&dir, &name, path, WHAT, 0o640, &trust, owner)
            .map_err(SetupError::Output)?
            .file;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let (read, write) =
            pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).map_err(SetupError::OutputPipe)?;
        // Only the read end is ours to be non-blocking; the Lisp blocks.
        nix::fcntl::fcntl(write.as_fd(), nix::fcntl::FcntlArg::F_SETFL(OFlag::empty()))
            .map_err(SetupError::OutputPipe)?;
        Ok(Output {
            path: path.to_path_buf(),
            dir,
            name,
            file,
            size,
            max_size,
            keep,
            owner,
            trust,
            pending: Vec::new(),
            dropped: 0,
            why: "",
            lost: 0,
            lost_why: None,
            fatal: None,
            fatal_next: false,
            rotated: Vec::new(),
            read: File::from(read),
            write,
        })
    }

    pub fn read_fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    /// Reads what the pipe holds now (at most `MAX_DRAIN`, so the event
    /// loop goes on under a flood) and writes the whole lines; a partial
    /// line longer than `LONGEST_LINE` is written as it is, so memory stays
    /// bounded whatever the Lisp writes.
    pub fn drain(&mut self) {
        let mut buf = [0u8; 65536];
        let mut read = 0;
        while read < MAX_DRAIN {
            match self.read.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    read += n;
                    self.pending.extend_from_slice(&buf[..n]);
                    self.write_lines();
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
    }

    fn write_lines(&mut self) {
        let mut start = 0;
        while let Some(end) = self.pending[start..].iter().position(|b| *b == b'\n') {
            let line = self.pending[start..start + end + 1].to_vec();
            self.write_line(&line);
            start += end + 1;
        }
        self.pending.drain(..start);
        if self.pending.len() > LONGEST_LINE {
            let line = std::mem::take(&mut self.pending);
            self.write_line(&line);
        }
    }

    /// Writes what is left of a last, unfinished line.
    pub fn flush(&mut self) {
        self.drain();
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.write_line(&line);
        }
    }

    fn write_line(&mut self, line: &[u8]) {
        let full = |o: &Output| {
            o.max_size
                .is_some_and(|max| o.size > 0 && o.size + line.len() as u64 > max)
        };
        if full(self) {
            if self.rotated_in_place() {
                self.rotate();
                self.why = "could not be rotated";
            } else {
                self.why =
                    "could not be rotated: its old files were moved out of the rotation's way";
            }
        }
        if full(self) {
            // The rotation failed (whatever the cause: the file is still
            // the full one): nothing is written until one works.
            self.dropped += line.len() as u64;
            return;
        }
        if self.dropped > 0 {
            let note = format!(
                "[daemonization: {} bytes of output dropped: {} {}]\n",
                self.dropped,
                self.path.display(),
                self.why
            );
            self.dropped = 0;
            self.write_line(note.as_bytes());
        }
        self.note_fatal(line);
        if self.lost > 0 {
            let note = format!(
                "[daemonization: {} lines of output dropped: {}: {}]\n",
                self.lost,
                self.path.display(),
                self.lost_why.as_deref().unwrap_or_default()
            );
            if !self.write_whole(note.as_bytes()) {
                self.lost += 1;
                return;
            }
            self.lost = 0;
            self.lost_why = None;
        }
        if !self.write_whole(line) {
            self.lost += 1;
        }
    }

    /// Writes `line` whole, or nothing: a write cut short (a full disk) is
    /// undone, so the file never holds half a line.
    fn write_whole(&mut self, line: &[u8]) -> bool {
        match self.file.write_all(line) {
            Ok(()) => {
                self.size += line.len() as u64;
                true
            }
            Err(e) => {
                let _ = self.file.set_len(self.size);
                // The system's words, without Rust's "(os error N)".
                self.lost_why.get_or_insert_with(|| match e.raw_os_error() {
                    Some(n) => nix::errno::Errno::from_raw(n).desc().to_string(),
                    None => e.to_string(),
                });
                false
            }
        }
    }

    /// Remembers SBCL's fatal runtime error: the line after the one that
    /// says "fatal error encountered in SBCL".
    fn note_fatal(&mut self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        if self.fatal_next {
            self.fatal_next = false;
            self.fatal = Some(text.trim().chars().take(200).collect());
        } else if text.starts_with("fatal error encountered in SBCL") {
            self.fatal_next = true;
        }
    }

    fn numbered(&self, n: u32) -> OsString {
        let mut name = self.name.clone();
        name.push(format!(".{n}"));
        name
    }

    /// Whether the entry `name` may be renamed or removed: in a shared
    /// sticky directory, only the daemon user's or a trusted owner's.
    fn ours(&self, name: &OsStr) -> bool {
        if self.dir.kind != DirKind::Sticky {
            return true;
        }
        match fstatat(self.dir.fd.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => {
                self.trust.owns(st.st_uid) || self.owner.is_some_and(|(uid, _)| uid == st.st_uid)
            }
            Err(_) => false,
        }
    }

    fn rename(&self, from: &OsStr, to: &OsStr) {
        if self.ours(from) && self.ours(to) || self.ours(from) && !self.exists(to) {
            let _ = renameat(self.dir.fd.as_fd(), from, self.dir.fd.as_fd(), to);
        }
    }

    fn remove(&self, name: &OsStr) {
        if self.ours(name) {
            let _ = unlinkat(self.dir.fd.as_fd(), name, UnlinkatFlags::NoRemoveDir);
        }
    }

    fn exists(&self, name: &OsStr) -> bool {
        fstatat(self.dir.fd.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW).is_ok()
    }

    /// Whether the files this writer rotated are where rotation removes
    /// them: at most `keep` of them still linked anywhere. A user who
    /// renames or links FILE.1 away after each rotation would otherwise
    /// have root write without bound; then nothing is written until they
    /// are gone (at most `keep` + 2 files' worth is ever on the disk).
    fn rotated_in_place(&mut self) -> bool {
        self.rotated
            .retain(|file| file.metadata().is_ok_and(|m| m.nlink() > 0));
        self.rotated.len() <= self.keep as usize
    }

    /// FILE.N-1 → FILE.N, ..., FILE → FILE.1; the oldest beyond `keep` goes.
    /// Only entries of the directory reached at start are touched, never
    /// through a symbolic link.
    fn rotate(&mut self) {
        if self.keep == 0 {
            self.remove(&self.name.clone());
        } else {
            self.remove(&self.numbered(self.keep));
            for n in (1..self.keep).rev() {
                self.rename(&self.numbered(n), &self.numbered(n + 1));
            }
            self.rename(&self.name.clone(), &self.numbered(1));
        }
        let identity = |file: &File| file.metadata().ok().map(|m| (m.dev(), m.ino()));
        // A rotation that failed leaves the same file in place.
        if let Some(filled) = self.reopen_file()
            && identity(&filled) != identity(&self.file)
        {
            self.rotated.push(filled);
        }
    }

    /// Opens the file anew (SIGHUP, after someone else renamed it): the
    /// files rotated before are theirs to keep or remove now.
    pub fn reopen(&mut self) {
        self.rotated.clear();
        let _ = self.reopen_file();
    }

    /// Opens FILE anew; returns the file written before.
    fn reopen_file(&mut self) -> Option<File> {
        let file = trust::append_in(
            &self.dir,
            &self.name,
            &self.path,
            WHAT,
            0o640,
            &self.trust,
            self.owner,
        )
        .ok()?
        .file;
        self.size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Some(std::mem::replace(&mut self.file, file))
    }
}
