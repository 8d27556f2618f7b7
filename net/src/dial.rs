//! Dialling a server: resolve its name at connect time, connect
//! within `connect_timeout`, set the socket options, and move on to the
//! next server when one fails.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use crate::addr::ServerAddr;

/// Why one server could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// No answer within `connect_timeout`.
    #[error("{server}: no connection within {}", humantime::format_duration(*.timeout))]
    Timeout {
        /// The server as configured.
        server: ServerAddr,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// The name did not resolve.
    #[error("{server}: name resolution failed: {source}")]
    Resolve {
        /// The server as configured.
        server: ServerAddr,
        /// The resolver's error.
        source: io::Error,
    },
    /// The connection was refused or failed.
    #[error("{server} ({addr}): {source}")]
    Connect {
        /// The server as configured.
        server: ServerAddr,
        /// The address tried last.
        addr: SocketAddr,
        /// The socket error.
        source: io::Error,
    },
}

/// Connect to one server within `connect_timeout` (resolution included),
/// trying each resolved address in turn. Sets `TCP_NODELAY` and keepalive.
pub async fn dial(
    server: &ServerAddr,
    connect_timeout: Duration,
    keepalive: Option<Duration>,
) -> Result<TcpStream, DialError> {
    dial_until(
        server,
        Instant::now() + connect_timeout,
        connect_timeout,
        keepalive,
    )
    .await
}

/// Like [`dial`], with an absolute deadline (`connect_timeout` is only
/// named in the error).
pub async fn dial_until(
    server: &ServerAddr,
    deadline: Instant,
    connect_timeout: Duration,
    keepalive: Option<Duration>,
) -> Result<TcpStream, DialError> {
    let expired = || DialError::Timeout {
        server: server.clone(),
        timeout: connect_timeout,
    };
    let addrs: Vec<SocketAddr> = match server.host.parse() {
        Ok(ip) => vec![SocketAddr::new(ip, server.port)],
        Err(_) => timeout_at(
            deadline,
            tokio::net::lookup_host((server.host.as_str(), server.port)),
        )
        .await
        .map_err(|_| expired())?
        .map_err(|source| DialError::Resolve {
            server: server.clone(),
            source,
        })?
        .take(MAX_ADDRESSES)
        .collect(),
    };
    let mut last = None;
    for addr in addrs {
        match timeout_at(deadline, TcpStream::connect(addr)).await {
            Err(_) => return Err(expired()),
            Ok(Ok(stream)) => {
                set_options(&stream, keepalive);
                return Ok(stream);
            }
            Ok(Err(source)) => last = Some((addr, source)),
        }
    }
    Err(match last {
        Some((addr, source)) => DialError::Connect {
            server: server.clone(),
            addr,
            source,
        },
        None => DialError::Resolve {
            server: server.clone(),
            source: io::Error::new(io::ErrorKind::NotFound, "no addresses"),
        },
    })
}

/// `TCP_NODELAY` (a relay must not add Nagle delays to the handshake) and
/// keepalive probes after `keepalive` idle. Failures are harmless and ignored.
pub fn set_options(stream: &TcpStream, keepalive: Option<Duration>) {
    let _ = stream.set_nodelay(true);
    if let Some(idle) = keepalive {
        let sock = SockRef::from(stream);
        let ka = TcpKeepalive::new()
            .with_time(idle)
            .with_interval(KEEPALIVE_INTERVAL.min(idle))
            .with_retries(KEEPALIVE_RETRIES);
        let _ = sock.set_tcp_keepalive(&ka);
    }
}

const MAX_ADDRESSES: usize = 16;
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
const KEEPALIVE_RETRIES: u32 = 4;
