//! A terminal of its own for a Lisp of another user run at the caller's
//! terminal (`nodaemon` with `:user`, usually root's): the Lisp gets a new
//! pseudo-terminal as its controlling terminal and standard streams, and
//! the tool relays between it and the caller's terminal (as `su --pty`
//! does). No process of the daemon's user ever holds the caller's
//! terminal, so none can read its keystrokes or type into it (TIOCSTI)
//! once the Lisp has ended; the pty is gone with the tool.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::os::fd::{AsFd as _, AsRawFd as _, OwnedFd, RawFd};
use std::sync::mpsc;
use std::time::Duration;

use nix::libc;
use nix::sys::termios::{self, SetArg, Termios};

use super::error::DaemonError;

/// A pseudo-terminal made like the caller's.
pub struct Pty {
    master: OwnedFd,
    slave: OwnedFd,
}

/// The caller's terminal: standard input, if it is one.
const TERMINAL: RawFd = 0;

fn window_size(fd: RawFd) -> Option<libc::winsize> {
    // SAFETY: winsize is four integers, for which all zero bytes are valid.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one winsize into the struct we pass.
    (unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut size) } == 0).then_some(size)
}

impl Pty {
    /// A pty with the caller's terminal settings and size, when standard
    /// input is a terminal; none otherwise (nothing of a terminal to keep
    /// from the Lisp then).
    pub fn for_caller() -> Result<Option<Pty>, DaemonError> {
        // SAFETY: fd 0 is borrowed only for the duration of the calls.
        let stdin = unsafe { std::os::fd::BorrowedFd::borrow_raw(TERMINAL) };
        if !nix::unistd::isatty(stdin).unwrap_or(false) {
            return Ok(None);
        }
        let settings = termios::tcgetattr(stdin).ok();
        let size = window_size(TERMINAL).map(|w| nix::pty::Winsize {
            ws_row: w.ws_row,
            ws_col: w.ws_col,
            ws_xpixel: w.ws_xpixel,
            ws_ypixel: w.ws_ypixel,
        });
        let pty = nix::pty::openpty(size.as_ref(), settings.as_ref()).map_err(DaemonError::Pty)?;
        Ok(Some(Pty {
            master: pty.master,
            slave: pty.slave,
        }))
    }

    /// In the child, before `arrange`: the pty's slave on 0, 1 and 2 (it
    /// becomes the controlling terminal once the child has its session,
    /// see `take_as_terminal`).
    pub fn place_slave(&self) -> Result<(), super::error::SetupError> {
        for target in [0, 1, 2] {
            super::exec::place(self.slave.as_raw_fd(), target)?;
        }
        Ok(())
    }

    /// In the parent: the caller's terminal raw, and the relay started.
    pub fn relay(self) -> Relay {
        let Pty { master, slave } = self;
        drop(slave);
        // SAFETY: fd 0 is borrowed only for the duration of the calls.
        let stdin = unsafe { std::os::fd::BorrowedFd::borrow_raw(TERMINAL) };
        let saved = termios::tcgetattr(stdin).ok();
        if let Some(saved) = &saved {
            let mut raw = saved.clone();
            termios::cfmakeraw(&mut raw);
            let _ = termios::tcsetattr(stdin, SetArg::TCSANOW, &raw);
        }
        let master = File::from(master);
        let (done, finished) = mpsc::channel();
        if let (Ok(mut to_lisp), Ok(mut keys)) =
            (master.try_clone(), nix::unistd::dup(stdin).map(File::from))
        {
            // Keystrokes to the Lisp's terminal; ends with the process.
            std::thread::spawn(move || {
                let _ = copy(&mut keys, &mut to_lisp);
            });
        }
        if let (Ok(mut from_lisp), Ok(mut screen)) = (
            master.try_clone(),
            nix::unistd::dup(std::io::stdout().as_fd()).map(File::from),
        ) {
            std::thread::spawn(move || {
                let _ = copy(&mut from_lisp, &mut screen);
                let _ = done.send(());
            });
        }
        Relay {
            master,
            saved,
            finished,
        }
    }
}

/// Copies until the end or an error (EIO: the last holder of the pty's
/// slave closed it).
fn copy(from: &mut File, to: &mut File) -> std::io::Result<()> {
    let mut buf = [0u8; 4096];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
    }
}

/// The relay between the caller's terminal and the Lisp's pty.
pub struct Relay {
    master: File,
    saved: Option<Termios>,
    finished: mpsc::Receiver<()>,
}

impl Relay {
    /// The caller's window size, given to the Lisp's terminal (SIGWINCH).
    pub fn resize(&self) {
        if let Some(size) = window_size(TERMINAL) {
            // SAFETY: TIOCSWINSZ reads one winsize from the struct we pass.
            unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
        }
    }

    /// Once the Lisp's session has ended: what it wrote last is shown
    /// (waited for a moment at most), and the caller's terminal restored.
    pub fn finish(self) {
        let _ = self.finished.recv_timeout(Duration::from_secs(1));
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            // SAFETY: fd 0 is borrowed only for the duration of the call.
            let stdin = unsafe { std::os::fd::BorrowedFd::borrow_raw(TERMINAL) };
            let _ = termios::tcsetattr(stdin, SetArg::TCSANOW, saved);
        }
    }
}

/// In the child, after `setsid`: standard input (the pty's slave) becomes
/// its controlling terminal.
pub fn take_as_terminal() -> Result<(), super::error::SetupError> {
    // SAFETY: TIOCSCTTY takes an int argument; fd 0 is the pty's slave.
    match unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } {
        0 => Ok(()),
        _ => Err(super::error::SetupError::Terminal(nix::errno::Errno::last())),
    }
}
