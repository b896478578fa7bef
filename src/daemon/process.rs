//! Processes by pid: pidfds (signal and wait without pid-reuse races), and
//! what /proc says about a pid (is it a Lisp, when did it start).

use std::fs;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant, SystemTime};

use nix::errno::Errno;
use nix::libc;
use nix::poll::PollFlags;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::error::DaemonError;
use super::events::ready_within;

/// Sets this process's title, as `ps -f` shows it: its command line (the
/// memory of its arguments, overwritten, at most as long as they were).
/// Its name (`comm`) stays the program's, for `pgrep daemonization`.
pub fn set_title(title: &str) {
    // Fields 48 and 49 of /proc/self/stat (after the command name, which
    // may hold spaces): where the arguments lie.
    let Ok(stat) = fs::read_to_string("/proc/self/stat") else {
        return;
    };
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let (Some(Ok(start)), Some(Ok(end))) = (
        fields.get(45).map(|f| f.parse::<usize>()),
        fields.get(46).map(|f| f.parse::<usize>()),
    ) else {
        return;
    };
    let Some(len) = end.checked_sub(start).filter(|l| *l > 1) else {
        return;
    };
    let bytes = title.as_bytes();
    let n = bytes.len().min(len - 1);
    // SAFETY: [start, end) is this process's own argument strings, mapped
    // writable on its stack since exec, as the kernel reports them; exactly
    // that range is written (the title, then NUL bytes to its end). Nothing
    // in this process reads its arguments after this.
    unsafe {
        let area = start as *mut u8;
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), area, n);
        std::ptr::write_bytes(area.add(n), 0, len - n);
    }
}

/// Which of a process's threads a signal may land on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aim {
    /// Any thread that does not block it, as kill(2) sends.
    Process,
    /// The main thread (see `RunnerFacts::signals_main_thread`), where the
    /// kernel can (Linux 6.9); else, and for SIGKILL or a main thread that
    /// ended, as `Process` (see `Aim::toward`).
    MainThread,
}

impl Aim {
    pub fn of(main_thread: bool) -> Aim {
        if main_thread {
            Aim::MainThread
        } else {
            Aim::Process
        }
    }

    /// Where `signal` to process `pid` really goes: SIGKILL ends every
    /// thread wherever it lands, and only a process-wide signal reaches a
    /// process whose main thread ended (the others live on).
    fn toward(self, pid: i32, signal: Signal) -> Aim {
        match self {
            Aim::MainThread
                if signal != Signal::SIGKILL && stat_field::<char>(pid, 3) != Some('Z') =>
            {
                Aim::MainThread
            }
            _ => Aim::Process,
        }
    }

    /// Sends `signal` to `child`, a child of ours not yet reaped (so its
    /// pid cannot be reused meanwhile).
    pub fn signal_child(self, child: Pid, signal: Signal) {
        match self.toward(child.as_raw(), signal) {
            // SAFETY: tgkill takes two pids and a signal number; no memory.
            Aim::MainThread => unsafe {
                libc::syscall(
                    libc::SYS_tgkill,
                    child.as_raw(),
                    child.as_raw(),
                    signal as i32,
                );
            },
            Aim::Process => {
                let _ = kill(child, signal);
            }
        }
    }
}

/// pidfd_send_signal's flag (Linux 6.9): to the thread of the pidfd's pid,
/// the main thread for a process's pidfd.
const PIDFD_SIGNAL_THREAD: u32 = 1;

/// A pidfd: a handle on one process that survives its pid being reused.
pub struct PidFd {
    fd: OwnedFd,
    pub pid: i32,
}

impl AsFd for PidFd {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl PidFd {
    pub fn open(pid: i32) -> Result<PidFd, DaemonError> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1;
        // no memory is passed.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(DaemonError::PidFd {
                pid,
                errno: Errno::last(),
            });
        }
        // SAFETY: the syscall returned a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        Ok(PidFd { fd, pid })
    }

    /// Sends `signal` to the process's threads as `aim` says; a process
    /// that already exited is not an error.
    pub fn signal(&self, signal: Signal, aim: Aim) -> Result<(), DaemonError> {
        // A null siginfo is allowed: the kernel fills in a default.
        self.send(signal, std::ptr::null(), aim)
    }

    /// pidfd_send_signal with `info`, a siginfo_t's 128 bytes or null.
    fn send(&self, signal: Signal, info: *const u8, aim: Aim) -> Result<(), DaemonError> {
        let send = |flags: u32| {
            // SAFETY: pidfd_send_signal with a valid pidfd, a signal number,
            // `info` null or pointing to 128 initialised bytes laid out as
            // a siginfo_t (which the kernel copies in), and flags.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    self.fd.as_raw_fd(),
                    signal as i32,
                    info,
                    flags,
                )
            };
            if rc == 0 { Ok(()) } else { Err(Errno::last()) }
        };
        let sent = match aim.toward(self.pid, signal) {
            // Before Linux 6.9 the flag is unknown (EINVAL): any thread.
            Aim::MainThread => match send(PIDFD_SIGNAL_THREAD) {
                Err(Errno::EINVAL) => send(0),
                sent => sent,
            },
            Aim::Process => send(0),
        };
        match sent {
            Ok(()) | Err(Errno::ESRCH) => Ok(()),
            Err(errno) => Err(DaemonError::Signal {
                pid: self.pid,
                signal: signal.as_str(),
                errno,
            }),
        }
    }

    /// Sends `signal` carrying the number `value` (`SI_QUEUE`, as
    /// `sigqueue` would), which the process's handler can read.
    pub fn signal_with_value(
        &self,
        signal: Signal,
        value: i32,
        aim: Aim,
    ) -> Result<(), DaemonError> {
        // siginfo_t on Linux: si_signo, si_errno, si_code at 0, 4, 8; for
        // SI_QUEUE, si_pid, si_uid, si_value at 16, 20, 24; 128 bytes.
        let mut info = [0u8; 128];
        let mut put = |at: usize, v: i32| info[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        put(0, signal as i32);
        put(8, libc::SI_QUEUE);
        put(16, std::process::id() as i32);
        put(20, nix::unistd::getuid().as_raw() as i32);
        put(24, value);
        self.send(signal, info.as_ptr(), aim)
    }

    /// Waits until the process exits or `timeout` passes; true if it exited.
    pub fn wait_exit(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            match ready_within(&[(self.fd.as_fd(), PollFlags::POLLIN)], Some(deadline)) {
                Ok(Some(seen)) if !seen[0].is_empty() => return true,
                Ok(Some(_)) => continue,
                Ok(None) => return false,
                Err(_) => return !alive(self.pid),
            }
        }
    }

    /// Gives the process `wait` to exit, then kills it and waits as long
    /// again.
    pub fn end_within(&self, wait: Duration) -> Result<(), DaemonError> {
        if !self.wait_exit(wait) {
            self.signal(Signal::SIGKILL, Aim::Process)?;
            self.wait_exit(wait);
        }
        Ok(())
    }
}

/// Whether a process with this pid exists (zombies included).
pub fn alive(pid: i32) -> bool {
    pid > 0 && !matches!(kill(Pid::from_raw(pid), None), Err(Errno::ESRCH))
}

/// The program name a process was started as (argv[0]), from /proc.
pub fn argv0(pid: i32) -> Option<String> {
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let first = cmdline.split(|b| *b == 0).next()?;
    Some(String::from_utf8_lossy(first).into_owned())
}

/// When a process started, from /proc/PID/stat (field 22, in clock ticks
/// since boot) and the boot time in /proc/stat.
pub fn start_time(pid: i32) -> Option<SystemTime> {
    let ticks: u64 = stat_field(pid, 22)?;
    let boot: u64 = fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
    let since_boot = Duration::from_secs_f64(ticks as f64 / hz as f64);
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(boot) + since_boot)
}

/// The real uid of a process, if its effective uid is the same.
pub fn uid(pid: i32) -> Option<u32> {
    let ids: Vec<u32> = status_line(pid, "Uid:")?
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    match ids.as_slice() {
        [real, effective, ..] if real == effective => Some(*real),
        _ => None,
    }
}

/// The parent of a process, from /proc.
pub fn parent(pid: i32) -> Option<i32> {
    stat_field(pid, 4)
}

/// Whether the process `pid` has a pipe open on descriptor `fd` (false
/// when that cannot be seen).
pub fn holds_pipe(pid: i32, fd: i32) -> bool {
    std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
        .is_ok_and(|target| target.as_os_str().as_encoded_bytes().starts_with(b"pipe:"))
}

/// Whether the process is stopped by a signal (SIGSTOP, SIGTSTP): state T.
pub fn stopped(pid: i32) -> bool {
    stat_field::<String>(pid, 3).is_some_and(|state| state == "T")
}

/// The session of a process, from /proc.
pub fn session(pid: i32) -> Option<i32> {
    stat_field(pid, 6)
}

/// A process's resident memory (`VmRSS`), in KiB.
pub fn resident_kib(pid: i32) -> Option<u64> {
    status_line(pid, "VmRSS:")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Field `number` (from 1, as proc(5) counts them) of /proc/PID/stat,
/// counted after the command name (which may hold spaces and parentheses).
fn stat_field<T: std::str::FromStr>(pid: i32, number: usize) -> Option<T> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(number - 3)?
        .parse()
        .ok()
}

/// The rest of the line of /proc/PID/status that starts with `key`.
fn status_line(pid: i32, key: &str) -> Option<String> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(str::to_string)
}
