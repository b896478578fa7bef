//! `:listen`: listening sockets bound once by the process that holds them
//! across restarts (a supervisor, or `nodaemon`), as the caller (root
//! binds port 80 before the Lisp's user switch), and passed to every Lisp
//! on descriptors 3, 4, ... with systemd's `LISTEN_FDS`, `LISTEN_FDNAMES`
//! and `LISTEN_PID`. A socket that systemd itself passes to `nodaemon`
//! (socket activation) is used the same way.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};

use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage, bind as bind_to, listen,
    setsockopt, socket, sockopt,
};

use super::error::SetupError;
use crate::config::Listen;

/// Each listener bound and listening, close-on-exec (the layout places a
/// copy for each Lisp).
pub fn bind(listeners: &[Listen]) -> Result<Vec<OwnedFd>, SetupError> {
    if let Some(inherited) = from_service_manager(listeners.len()) {
        return Ok(inherited);
    }
    listeners.iter().map(bind_one).collect()
}

fn bind_one(l: &Listen) -> Result<OwnedFd, SetupError> {
    let address = SocketAddr::new(l.address, l.port);
    let failed = |errno| SetupError::Listen {
        name: l.name.clone(),
        address,
        errno,
    };
    let family = match address {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).map_err(failed)?;
    setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(failed)?;
    bind_to(fd.as_raw_fd(), &SockaddrStorage::from(address)).map_err(failed)?;
    let backlog = Backlog::new(l.backlog.min(i32::MAX as u32) as i32).unwrap_or(Backlog::MAXCONN);
    listen(&fd, backlog).map_err(failed)?;
    Ok(fd)
}

/// The sockets a service manager passed (see `from_service_manager`),
/// moved to descriptors 20 and up, out of the way of the tool's own.
pub fn take_inherited(count: usize) -> Option<Vec<OwnedFd>> {
    let passed = from_service_manager(count)?;
    passed
        .into_iter()
        .map(|fd| {
            nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(20))
                // SAFETY: a new descriptor, owned by nothing else.
                .map(|high| unsafe { OwnedFd::from_raw_fd(high) })
                .ok()
        })
        .collect()
}

/// The sockets a service manager passed to this process, when it passed
/// exactly `count` (`LISTEN_PID` ours): taken over, close-on-exec.
fn from_service_manager(count: usize) -> Option<Vec<OwnedFd>> {
    let ours = std::env::var("LISTEN_PID").ok()?.parse::<u32>().ok()? == std::process::id();
    let passed = std::env::var("LISTEN_FDS").ok()?.parse::<usize>().ok()?;
    if !ours || passed != count || count == 0 {
        return None;
    }
    Some(
        (0..count as i32)
            .map(|i| {
                let fd = crate::plan::LISTEN_FDS_START + i;
                let _ = nix::fcntl::fcntl(
                    // SAFETY: the service manager passed it to us, open.
                    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
                    nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
                );
                // SAFETY: passed to this process, owned by nothing else.
                unsafe { OwnedFd::from_raw_fd(fd) }
            })
            .collect(),
    )
}
