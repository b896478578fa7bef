//! sd_notify: tells a service manager (systemd) that the daemon is ready,
//! stopping, or why it failed, over the AF_UNIX datagram socket named by
//! `NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace).

use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};

pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// The notifier of `$NOTIFY_SOCKET`, if set and usable.
    pub fn from_env() -> Option<Notifier> {
        let name = std::env::var("NOTIFY_SOCKET")
            .ok()
            .filter(|n| !n.is_empty())?;
        let addr = match name.strip_prefix('@') {
            Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name.as_bytes()).ok()?,
            None => SocketAddr::from_pathname(&name).ok()?,
        };
        let socket = UnixDatagram::unbound().ok()?;
        Some(Notifier { socket, addr })
    }

    /// Sends one notification; a failure is not the daemon's failure.
    pub fn send(&self, message: &str) {
        if let Err(e) = self.socket.send_to_addr(message.as_bytes(), &self.addr) {
            eprintln!("WARNING: cannot notify the service manager: {e}");
        }
    }
}

/// A notification a daemon sent to the socket the tool gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// `READY=1`.
    Ready,
    /// `STATUS=TEXT`: one line, at most `MAX_NOTICE` bytes, as sent.
    Status(String),
}

/// The largest datagram read; a longer one is dropped.
pub const MAX_NOTICE: usize = 4096;

/// The socket a daemon with `:ready :notify` finds in its `NOTIFY_SOCKET`:
/// an AF_UNIX datagram socket of the tool's, `notify` in the daemon's
/// control directory (0700, the daemon user's), bound by the process that
/// waits for the Lisp. Only root and the daemon's user reach it: a socket
/// in the abstract namespace is open to every local user, who could fill
/// its queue and keep the daemon's READY=1 out. A datagram counts only if
/// the kernel says its sender runs as the daemon's user (or root).
pub struct Listener {
    fd: std::os::fd::OwnedFd,
    path: std::path::PathBuf,
    /// The uid whose datagrams count (the daemon's).
    uid: u32,
}

impl Listener {
    /// A new socket in `dir` for a daemon running as `uid`.
    pub fn bind(dir: &super::rundir::ControlDir, uid: u32) -> std::io::Result<Listener> {
        use nix::sys::socket::{
            AddressFamily, SockFlag, SockType, UnixAddr, bind, setsockopt, socket, sockopt,
        };
        use nix::sys::stat::{Mode, umask};
        use std::os::fd::AsRawFd as _;
        let name = crate::config::NOTIFY_SOCKET_NAME;
        let path = dir.path.join(name);
        if path.as_os_str().len() > crate::config::MAX_SOCKET_PATH {
            // The conf's check says so first, with where.
            return Err(std::io::Error::from(std::io::ErrorKind::InvalidFilename));
        }
        let fd = socket(
            AddressFamily::Unix,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )?;
        setsockopt(&fd, sockopt::PassCred, &true)?;
        // Bound in the directory the tool made and judged, through its
        // descriptor (no path walked again). Writable by all (a socket's
        // mode is what the umask leaves): its directory is the gate.
        let via = format!("/proc/self/fd/{}/{name}", dir.fd.as_raw_fd());
        let old = umask(Mode::empty());
        let bound = bind(fd.as_raw_fd(), &UnixAddr::new(via.as_str())?);
        umask(old);
        bound?;
        Ok(Listener { fd, path, uid })
    }

    /// The value of the daemon's `NOTIFY_SOCKET`.
    pub fn address(&self) -> String {
        self.path.display().to_string()
    }

    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.fd)
    }

    /// The notifications waiting (at most 64 datagrams a call, so a flood
    /// cannot hold the waiter), from senders that count.
    pub fn take(&self) -> Vec<Notice> {
        use nix::sys::socket::{ControlMessageOwned, MsgFlags, UnixCredentials, recvmsg};
        let mut notices = Vec::new();
        for _ in 0..64 {
            let mut buf = [0u8; MAX_NOTICE];
            let mut space = nix::cmsg_space!(UnixCredentials);
            let mut iov = [std::io::IoSliceMut::new(&mut buf)];
            let Ok(msg) = recvmsg::<()>(
                std::os::fd::AsRawFd::as_raw_fd(&self.fd),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_DONTWAIT,
            ) else {
                break;
            };
            let truncated = msg.flags.contains(MsgFlags::MSG_TRUNC);
            let sender = msg
                .cmsgs()
                .ok()
                .into_iter()
                .flatten()
                .find_map(|c| match c {
                    ControlMessageOwned::ScmCredentials(creds) => Some(creds.uid()),
                    _ => None,
                });
            let len = msg.bytes;
            let counts = matches!(sender, Some(uid) if uid == self.uid || uid == 0);
            if counts && !truncated {
                notices.extend(parse(&buf[..len]));
            }
        }
        notices
    }
}

/// The notices of one datagram: `NAME=value` lines; what is not known is
/// left out.
pub fn parse(datagram: &[u8]) -> Vec<Notice> {
    String::from_utf8_lossy(datagram)
        .lines()
        .filter_map(|line| match line.split_once('=') {
            Some(("READY", "1")) => Some(Notice::Ready),
            Some(("STATUS", text)) => Some(Notice::Status(text.to_string())),
            _ => None,
        })
        .collect()
}

/// The service manager's unit this process runs in (systemd's, from its
/// cgroup: `/system.slice/NAME.service`), else a description of it.
pub fn own_unit() -> String {
    std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("0::"))
                .and_then(|path| path.rsplit('/').find(|c| c.ends_with(".service")))
                .map(str::to_string)
        })
        .unwrap_or_else(|| "the service manager's unit".to_string())
}
