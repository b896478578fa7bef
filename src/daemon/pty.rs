//! A terminal of its own for a Lisp of another user run at the caller's
//! terminal (`nodaemon` with `:user`, usually root's): the Lisp gets a new
//! pseudo-terminal as its controlling terminal and standard streams, and
//! the tool relays between it and the caller's terminal (as `su --pty`
//! does). No process of the daemon's user ever holds the caller's
//! terminal, so none can read its keystrokes or type into it (TIOCSTI)
//! once the Lisp has ended; the pty is gone with the tool.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::os::fd::{AsRawFd as _, BorrowedFd, OwnedFd, RawFd};
use std::sync::mpsc;
use std::time::Duration;

use nix::libc;
use nix::sys::termios::{self, SetArg, Termios};

use super::error::DaemonError;

/// The caller's keyboard: standard input, when it is a terminal.
const KEYBOARD: RawFd = 0;

/// A pseudo-terminal made like the caller's.
pub struct Pty {
    master: OwnedFd,
    slave: OwnedFd,
    /// Which of the caller's standard streams (0, 1, 2) are terminals:
    /// each of them is the pty's slave in the Lisp.
    terminals: [bool; 3],
}

/// The first of `order` that is a terminal of the caller's.
fn first_terminal(terminals: [bool; 3], order: [RawFd; 3]) -> Option<RawFd> {
    order.into_iter().find(|&fd| terminals[fd as usize])
}

fn is_terminal(fd: RawFd) -> bool {
    // SAFETY: a standard stream is borrowed only for the duration of the call.
    nix::unistd::isatty(unsafe { BorrowedFd::borrow_raw(fd) }).unwrap_or(false)
}

/// A descriptor of our own for standard stream `fd`.
fn dup_standard(fd: RawFd) -> nix::Result<File> {
    // SAFETY: a standard stream is borrowed only for the duration of the dup.
    nix::unistd::dup(unsafe { BorrowedFd::borrow_raw(fd) }).map(File::from)
}

fn window_size(fd: RawFd) -> Option<libc::winsize> {
    // SAFETY: winsize is four integers, for which all zero bytes are valid.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one winsize into the struct we pass.
    (unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut size) } == 0).then_some(size)
}

impl Pty {
    /// A pty with the settings and size of the caller's terminal, when any
    /// of its standard streams is one (`nodaemon </dev/null` at root's
    /// terminal still has it on 1 and 2); none when none is (nothing of a
    /// terminal to keep from the Lisp then: pipes and files pass as they
    /// are).
    pub fn for_caller() -> Result<Option<Pty>, DaemonError> {
        let terminals = [0, 1, 2].map(is_terminal);
        let Some(terminal) = first_terminal(terminals, [0, 1, 2]) else {
            return Ok(None);
        };
        // SAFETY: a standard stream is borrowed only for the duration of the call.
        let settings = termios::tcgetattr(unsafe { BorrowedFd::borrow_raw(terminal) }).ok();
        let size = window_size(terminal).map(|w| nix::pty::Winsize {
            ws_row: w.ws_row,
            ws_col: w.ws_col,
            ws_xpixel: w.ws_xpixel,
            ws_ypixel: w.ws_ypixel,
        });
        let pty = nix::pty::openpty(size.as_ref(), settings.as_ref()).map_err(DaemonError::Pty)?;
        Ok(Some(Pty {
            master: pty.master,
            slave: pty.slave,
            terminals,
        }))
    }

    /// The standard stream of the Lisp that is its controlling terminal
    /// (the first that was a terminal of the caller's).
    pub fn controlling(&self) -> RawFd {
        first_terminal(self.terminals, [0, 1, 2]).unwrap_or(0)
    }

    /// In the child, before `arrange`: the pty's slave on each standard
    /// stream that was a terminal of the caller's (it becomes the
    /// controlling terminal once the child has its session, see
    /// `take_as_terminal`).
    pub fn place_slave(&self) -> Result<(), super::error::SetupError> {
        for target in (0..3).filter(|&fd| self.terminals[fd as usize]) {
            super::exec::place(self.slave.as_raw_fd(), target)?;
        }
        Ok(())
    }

    /// In the parent: the relay started. Keystrokes are relayed (and the
    /// caller's terminal made raw) only when standard input is the
    /// terminal; otherwise the caller's terminal keeps its settings and a
    /// Ctrl-C there reaches the Lisp as the SIGINT the tool forwards. What
    /// the Lisp writes to its terminal goes to the caller's: standard
    /// output if it is one, else standard error, else standard input.
    pub fn relay(self) -> Relay {
        let Pty {
            master,
            slave,
            terminals,
        } = self;
        drop(slave);
        let keyboard = terminals[0].then_some(KEYBOARD);
        let saved = keyboard.and_then(|fd| {
            // SAFETY: fd 0 is borrowed only for the duration of the calls.
            let stdin = unsafe { BorrowedFd::borrow_raw(fd) };
            let saved = termios::tcgetattr(stdin).ok()?;
            let mut raw = saved.clone();
            termios::cfmakeraw(&mut raw);
            let _ = termios::tcsetattr(stdin, SetArg::TCSANOW, &raw);
            Some(saved)
        });
        let master = File::from(master);
        let (done, finished) = mpsc::channel();
        if let Some(fd) = keyboard
            && let (Ok(mut to_lisp), Ok(mut keys)) = (master.try_clone(), dup_standard(fd))
        {
            // Keystrokes to the Lisp's terminal; ends with the process.
            std::thread::spawn(move || {
                let _ = copy(&mut keys, &mut to_lisp);
            });
        }
        let screen_fd = first_terminal(terminals, [1, 2, 0]).unwrap_or(1);
        if let (Ok(mut from_lisp), Ok(mut screen)) = (master.try_clone(), dup_standard(screen_fd)) {
            std::thread::spawn(move || {
                let _ = copy(&mut from_lisp, &mut screen);
                let _ = done.send(());
            });
        }
        Relay {
            master,
            screen: screen_fd,
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
    /// The caller's terminal the Lisp's is shown on (its size is followed).
    screen: RawFd,
    saved: Option<Termios>,
    finished: mpsc::Receiver<()>,
}

impl Relay {
    /// The caller's window size, given to the Lisp's terminal (SIGWINCH).
    pub fn resize(&self) {
        if let Some(size) = window_size(self.screen) {
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
            let stdin = unsafe { BorrowedFd::borrow_raw(KEYBOARD) };
            let _ = termios::tcsetattr(stdin, SetArg::TCSANOW, saved);
        }
    }
}

/// In the child, after `setsid`: the pty's slave on `fd` becomes its
/// controlling terminal.
pub fn take_as_terminal(fd: RawFd) -> Result<(), super::error::SetupError> {
    // SAFETY: TIOCSCTTY takes an int argument; `fd` is the pty's slave.
    match unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) } {
        0 => Ok(()),
        _ => Err(super::error::SetupError::Terminal(nix::errno::Errno::last())),
    }
}
