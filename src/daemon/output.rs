//! The daemon's captured output, written by its supervisor: the Lisp's
//! stdout and stderr go to a pipe; the supervisor writes whole lines to the
//! `:output` file, rotates it by size (`:output-max-size`, keeping
//! `:output-keep` old files as FILE.1, FILE.2, ...), and reopens it on
//! SIGHUP (after an outside rotation). Lines are never split across files.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read as _, Write as _};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::libc;
use nix::unistd::pipe2;

/// A partial line longer than this is written out anyway.
const LONGEST_LINE: usize = 64 * 1024;

pub struct Output {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: Option<u64>,
    keep: u32,
    owner: Option<(u32, u32)>,
    pending: Vec<u8>,
    read: File,
    /// The pipe's write end, for the Lisp's stdout and stderr.
    pub write: OwnedFd,
}

/// Opens the `:output` file for appending, creating it 0640 and giving it
/// to `owner` (the daemon's user) when it is new; never through a symlink.
pub(super) fn open(path: &Path, owner: Option<(u32, u32)>) -> Result<File, String> {
    let open = |create_new: bool| {
        OpenOptions::new()
            .append(true)
            .create_new(create_new)
            .mode(0o640)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
    };
    let failed =
        |e: std::io::Error| format!("cannot open the :output file {}: {e}", path.display());
    let (file, created) = match open(true) {
        Ok(file) => (file, true),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => (open(false).map_err(failed)?, false),
        Err(e) => return Err(failed(e)),
    };
    if let (true, Some((uid, gid))) = (created, owner) {
        std::os::unix::fs::fchown(&file, Some(uid), Some(gid)).map_err(|e| {
            format!(
                "cannot give the :output file {} to uid {uid}: {e}",
                path.display()
            )
        })?;
    }
    Ok(file)
}

impl Output {
    pub fn open(
        path: &Path,
        max_size: Option<u64>,
        keep: u32,
        owner: Option<(u32, u32)>,
    ) -> Result<Output, String> {
        let file = open(path, owner)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let (read, write) =
            pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).map_err(|e| format!("pipe: {e}"))?;
        // Only the read end is ours to be non-blocking; the Lisp blocks.
        nix::fcntl::fcntl(write.as_fd(), nix::fcntl::FcntlArg::F_SETFL(OFlag::empty()))
            .map_err(|e| e.to_string())?;
        Ok(Output {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
            keep,
            owner,
            pending: Vec::new(),
            read: File::from(read),
            write,
        })
    }

    pub fn read_fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    /// Reads everything the pipe holds now and writes the whole lines.
    pub fn drain(&mut self) {
        let mut buf = [0u8; 65536];
        loop {
            match self.read.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            self.write_line(&line);
        }
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
        if let Some(max) = self.max_size
            && self.size > 0
            && self.size + line.len() as u64 > max
        {
            self.rotate();
        }
        if self.file.write_all(line).is_ok() {
            self.size += line.len() as u64;
        }
    }

    fn numbered(&self, n: u32) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    /// FILE.N-1 → FILE.N, ..., FILE → FILE.1; the oldest beyond `keep` goes.
    fn rotate(&mut self) {
        if self.keep == 0 {
            let _ = fs::remove_file(&self.path);
        } else {
            let _ = fs::remove_file(self.numbered(self.keep));
            for n in (1..self.keep).rev() {
                let _ = fs::rename(self.numbered(n), self.numbered(n + 1));
            }
            let _ = fs::rename(&self.path, self.numbered(1));
        }
        self.reopen();
    }

    /// Opens the file anew (SIGHUP, after someone else renamed it).
    pub fn reopen(&mut self) {
        if let Ok(file) = open(&self.path, self.owner) {
            self.size = file.metadata().map(|m| m.len()).unwrap_or(0);
            self.file = file;
        }
    }
}
