//! `log`: the daemon's captured `:output`, its last lines and, with `-f`,
//! what it writes next, across rotation (the file renamed to FILE.1 and a
//! new FILE made) and truncation, as `tail -F` follows a file.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::poll::PollFlags;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use super::events::ready_within;

/// How a file is opened to read: `reader(req)` as the daemon's user's
/// file, through `trust::open_read`.
pub type Opener<'a> = &'a dyn Fn(&Path) -> io::Result<File>;

/// The opener of `:output` files for `req`: never through a link, only a
/// regular file of root or the daemon's user.
pub fn reader<'a>(req: &'a super::Request<'a>) -> impl Fn(&Path) -> io::Result<File> + 'a {
    move |path: &Path| {
        crate::trust::open_read(
            path,
            &req.trust,
            "the :output file",
            super::daemon_user(req),
        )
        .map_err(|e| io::Error::other(e.to_string()))
    }
}

/// The most of a file's end read to find its last lines.
const MAX_SCAN: u64 = 1 << 20;

/// The last `n` lines of `file` (all of it when shorter), from at most its
/// last `MAX_SCAN` bytes; leaves the file positioned at its end.
fn last_lines(file: &mut File, n: usize) -> io::Result<Vec<u8>> {
    let end = file.seek(SeekFrom::End(0))?;
    let from = end.saturating_sub(MAX_SCAN);
    file.seek(SeekFrom::Start(from))?;
    let mut tail = Vec::new();
    Read::by_ref(file).take(end - from).read_to_end(&mut tail)?;
    file.seek(SeekFrom::Start(end))?;
    if from > 0 {
        // The first line read may be only the end of one.
        let cut = tail
            .iter()
            .position(|b| *b == b'\n')
            .map_or(tail.len(), |i| i + 1);
        tail.drain(..cut);
    }
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
pub fn last_lines_of(path: &Path, n: usize, open: Opener) -> io::Result<Vec<String>> {
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
pub fn tail(
    path: &Path,
    open: Opener,
    lines: usize,
    follow: bool,
    out: &mut impl Write,
) -> io::Result<()> {
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
        let tick = Instant::now() + Duration::from_secs(1);
        ready_within(&[(inotify.as_fd(), PollFlags::POLLIN)], Some(tick))
            .map_err(io::Error::from)?;
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
        let mut file = File::open(&path).unwrap();
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
        // At most the last MiB is read, from a line's start.
        let all = last(&long, 1_000_000);
        assert!(
            all.len() as u64 <= MAX_SCAN && all.starts_with("line "),
            "{}",
            all.len()
        );
        assert!(all.ends_with("line 99999\n"));
    }
}
