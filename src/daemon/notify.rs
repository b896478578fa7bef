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
