//! Listening sockets a process starts with instead of binding: those passed
//! by the passthru it takes over from (`--takeover`), or by systemd (socket
//! activation, `LISTEN_PID`/`LISTEN_FDS`). `Server::bind_inheriting` takes
//! the one for each listener and binds the rest afresh.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::OwnedFd;

use socket2::{Socket, Type};

/// What an inherited socket serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A `[[listener]]`.
    Listener,
    /// The `[admin]` endpoint.
    Admin,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Listener => "listener",
            Kind::Admin => "admin",
        }
    }
}

/// Inherited listening sockets, not yet claimed by a listener.
#[derive(Debug, Default)]
pub struct Inherited {
    /// What each served (from a handoff) or `None` (systemd: any), the
    /// address it is matched by, the socket.
    sockets: Vec<(Option<Kind>, SocketAddr, TcpListener)>,
}

impl Inherited {
    /// No inherited sockets: bind everything.
    pub fn none() -> Inherited {
        Inherited::default()
    }

    /// The sockets systemd passed, when `LISTEN_PID` names this process
    /// (`LISTEN_FDS` descriptors from 3 on), matched by their local address.
    /// The variables are removed so children do not see them.
    pub fn from_systemd() -> Result<Inherited, String> {
        let for_us = std::env::var("LISTEN_PID")
            .ok()
            .and_then(|pid| pid.trim().parse::<u32>().ok())
            == Some(std::process::id());
        if !for_us {
            return Ok(Inherited::none());
        }
        let mut fds = listenfd::ListenFd::from_env();
        let mut sockets = Vec::with_capacity(fds.len());
        for i in 0..fds.len() {
            let fd = 3 + i;
            let taken = match fds.take_tcp_listener(i) {
                Ok(l) => l,
                Err(_) => fds
                    .take_custom::<TcpListener>(i, AF_INET6, SOCK_STREAM, "TCP socket")
                    .map_err(|e| format!("LISTEN_FDS: descriptor {fd} is not a TCP socket: {e}"))?,
            };
            let Some(listener) = taken else { continue };
            let socket = checked(OwnedFd::from(listener))
                .map_err(|e| format!("LISTEN_FDS: descriptor {fd}: {e}"))?;
            let addr = socket
                .local_addr()
                .map_err(|e| format!("LISTEN_FDS: descriptor {fd} has no local address: {e}"))?;
            sockets.push((None, addr, socket));
        }
        Ok(Inherited { sockets })
    }

    /// Sockets received from a running passthru, each with what it served
    /// and the `bind` it served.
    pub(crate) fn from_handoff(
        received: Vec<((Kind, SocketAddr), OwnedFd)>,
    ) -> io::Result<Inherited> {
        let mut sockets = Vec::with_capacity(received.len());
        for ((kind, addr), fd) in received {
            sockets.push((Some(kind), addr, checked(fd)?));
        }
        Ok(Inherited { sockets })
    }

    /// How many sockets are left unclaimed.
    pub fn len(&self) -> usize {
        self.sockets.len()
    }

    /// Whether every socket was claimed (or none was inherited).
    pub fn is_empty(&self) -> bool {
        self.sockets.is_empty()
    }

    /// The addresses still unclaimed.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.sockets.iter().map(|(_, addr, _)| *addr).collect()
    }

    /// Claim the socket for a `kind` whose `bind` is `addr`, if inherited.
    pub(crate) fn take(&mut self, kind: Kind, addr: SocketAddr) -> Option<TcpListener> {
        let i = self
            .sockets
            .iter()
            .position(|(k, a, _)| k.is_none_or(|k| k == kind) && *a == addr)?;
        Some(self.sockets.remove(i).2)
    }
}

/// A descriptor as a listener, once it is checked to be a listening TCP
/// socket, and non-blocking.
fn checked(fd: OwnedFd) -> io::Result<TcpListener> {
    let socket = Socket::from(fd);
    if socket.r#type()? != Type::STREAM || !socket.is_listener()? {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a listening stream socket",
        ));
    }
    // Also rejects Unix sockets: they have no IP address.
    let addr = socket.local_addr()?;
    if addr.as_socket().is_none() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a TCP socket",
        ));
    }
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// `AF_INET6` and `SOCK_STREAM` as listenfd expects them.
const AF_INET6: i32 = rustix::net::AddressFamily::INET6.as_raw() as i32;
const SOCK_STREAM: i32 = rustix::net::SocketType::STREAM.as_raw() as i32;
