//! `log`: the daemon's captured `:output`, its last lines and, with `-f`,
//! what it writes next, across rotation (the file renamed to FILE.1 and a
//! new FILE made) and truncation, as `tail -F` follows a file.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::Path;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

/// Opens the output file to read: never blocking (a FIFO), only a regular
/// file.
fn open(path: &Path) -> io::Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::other(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    Ok(file)
}

/// The last `n` lines of `file` (all of it when shorter), read backwards
/// in blocks from its end; leaves the file positioned at its end.
fn last_lines(file: &mut File, n: usize) -> io::Result<Vec<u8>> {
    const BLOCK: u64 = 64 * 1024;
    let end = file.seek(SeekFrom::End(0))?;
    let mut start = end;
    let mut tail: Vec<u8> = Vec::new();
    loop {
        // A last line without its newline counts as a line.
        let newlines =
            tail.iter().filter(|&&b| b == b'\n').count() - usize::from(tail.last() == Some(&b'\n'));
        if newlines >= n || start == 0 {
            break;
        }
        let from = start.saturating_sub(BLOCK);
        let mut block = vec![0; (start - from) as usize];
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(&mut block)?;
        block.extend_from_slice(&tail);
        tail = block;
        start = from;
    }
    file.seek(SeekFrom::Start(end))?;
    let body = tail.strip_suffix(b"\n").unwrap_or(&tail);
    let cut = match n {
        0 => tail.len(),
        _ => body
            .iter()
            .enumerate()
            .rev()
            .filter(|(_, b)| **b == b'\n')
            .nth(n - 1)
            .map_or(0, |(i, _)| i + 1),
    };
    Ok(tail[cut..].to_vec())
}

/// The last `n` lines of the file at `path`, without their newlines.
pub fn last_lines_of(path: &Path, n: usize) -> io::Result<Vec<String>> {
    let mut file = open(path)?;
    let text = last_lines(&mut file, n)?;
    Ok(String::from_utf8_lossy(&text)
        .lines()
        .map(str::to_string)
        .collect())
}

/// Copies what `file` has beyond its position to `out`.
fn drain(file: &mut File, out: &mut impl Write) -> io::Result<()> {
    let mut buffer = [0u8; 64 * 1024];
    loop {
        match file.read(&mut buffer) {
            Ok(0) => return out.flush(),
            Ok(n) => out.write_all(&buffer[..n])?,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return out.flush(),
            Err(e) => return Err(e),
        }
    }
}

/// Prints the last `lines` lines of `path`; with `follow`, then what is
/// written to it, until the process is interrupted (a new file at `path`,
/// after rotation, is followed from its start).
pub fn tail(path: &Path, lines: usize, follow: bool, out: &mut impl Write) -> io::Result<()> {
    let mut file = open(path)?;
    out.write_all(&last_lines(&mut file, lines)?)?;
    out.flush()?;
    if !follow {
        return Ok(());
    }
    // Changes in the directory wake us (writes, a new file, a rename); a
    // slow poll covers file systems without inotify.
    let inotify =
        Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK).map_err(io::Error::from)?;
    let dir = path.parent().unwrap_or(Path::new("/"));
    inotify
        .add_watch(
            dir,
            AddWatchFlags::IN_MODIFY
                | AddWatchFlags::IN_CREATE
                | AddWatchFlags::IN_MOVED_TO
                | AddWatchFlags::IN_MOVED_FROM
                | AddWatchFlags::IN_DELETE,
        )
        .map_err(io::Error::from)?;
    loop {
        drain(&mut file, out)?;
        let position = file.stream_position()?;
        let here = file.metadata()?;
        match std::fs::metadata(path) {
            // Rotated: finish the old file, then read the new one.
            Ok(now) if now.ino() != here.ino() || now.dev() != here.dev() => {
                if let Ok(new) = open(path) {
                    drain(&mut file, out)?;
                    file = new;
                    continue;
                }
            }
            // Truncated: read it again from its start.
            Ok(now) if now.len() < position => {
                file.seek(SeekFrom::Start(0))?;
                continue;
            }
            _ => {}
        }
        let mut fds = [PollFd::new(inotify.as_fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::from(1000u16)).map_err(io::Error::from)?;
        while let Ok(events) = inotify.read_events() {
            if events.is_empty() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last(text: &str, n: usize) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        std::fs::write(&path, text).unwrap();
        let mut file = open(&path).unwrap();
        String::from_utf8(last_lines(&mut file, n).unwrap()).unwrap()
    }

    #[test]
    fn last_lines_counts_from_the_end() {
        assert_eq!(last("a\nb\nc\n", 2), "b\nc\n");
        assert_eq!(last("a\nb\nc", 2), "b\nc");
        assert_eq!(last("a\nb\nc\n", 10), "a\nb\nc\n");
        assert_eq!(last("a\nb\nc\n", 0), "");
        assert_eq!(last("", 3), "");
        let long: String = (0..100_000).map(|i| format!("line {i}\n")).collect();
        assert_eq!(last(&long, 2), "line 99998\nline 99999\n");
    }
}
