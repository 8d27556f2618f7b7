//! Reaching a server of the chosen backend: in balanced order, each server
//! once, directly or through the backend's `via` CONNECT hop, and replaying
//! the buffered bytes. A server that fails before any byte reached the
//! client is skipped for the next one.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use passthru_net::ServerAddr;
use passthru_net::dial::{DialError, dial};
use passthru_net::io::write_all;
use passthru_net::tunnel::{HopError, tunnel_with_keepalive};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::warn;

use crate::backend::{ActiveGuard, Backend};

/// A server connection, ready to forward.
#[derive(Debug)]
pub(crate) struct Upstream {
    /// The socket (to the server, or the tunnel through the hop).
    pub(crate) stream: TcpStream,
    /// Bytes the hop sent after its answer: the server's first bytes, for the client.
    pub(crate) leftover: Bytes,
    /// The server, as configured.
    pub(crate) server: ServerAddr,
    /// Keeps the server's open-connection count for `least_conn`.
    pub(crate) _active: ActiveGuard,
}

/// Why no server of a backend took the connection: the last server's error.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    /// The backend has no server to try.
    #[error("the backend has no servers")]
    NoServers,
    /// The server could not be reached directly.
    #[error(transparent)]
    Dial(#[from] DialError),
    /// The `via` hop did not open a tunnel to the server.
    #[error(transparent)]
    Hop(#[from] HopError),
    /// The server closed before the buffered bytes were delivered.
    #[error("{server}: {source}")]
    Replay {
        /// The server, as configured.
        server: ServerAddr,
        /// The socket error.
        source: io::Error,
    },
}

/// Try the servers of `backend` for a client at `client_ip`, writing
/// `initial` (PROXY header, ClientHello) to the first that accepts it: the
/// replay of wire step 6 happens here, because a server that fails before
/// it has them is skipped for the next one. On failure returns the last
/// server's error.
pub(crate) async fn connect(
    backend: &Arc<Backend>,
    client_ip: std::net::IpAddr,
    initial: &[&[u8]],
) -> Result<(Upstream, std::time::Duration), UpstreamError> {
    let cfg = &backend.config;
    let mut last = UpstreamError::NoServers;
    for index in backend.order(client_ip) {
        let Some(server) = cfg.servers.get(index) else {
            continue;
        };
        let started = Instant::now();
        let opened = match &cfg.via {
            None => dial(server, cfg.connect_timeout, cfg.tcp_keepalive)
                .await
                .map(|s| (s, Bytes::new()))
                .map_err(UpstreamError::from),
            Some(via) => tunnel_with_keepalive(
                via,
                &server.to_string(),
                cfg.connect_timeout,
                cfg.tcp_keepalive,
            )
            .await
            .map(|t| {
                passthru_net::dial::set_options(&t.stream, cfg.tcp_keepalive);
                (t.stream, t.leftover)
            })
            .map_err(UpstreamError::from),
        };
        let connect_time = started.elapsed();
        let (stream, leftover) = match opened {
            Ok(pair) => pair,
            Err(error) => {
                warn!(backend = %cfg.name, %server, %error, "server unreachable; trying the next server");
                last = error;
                continue;
            }
        };
        let mut written = Ok(());
        for part in initial {
            written = write_all(&stream, part).await;
            if written.is_err() {
                break;
            }
        }
        if let Err(error) = written {
            warn!(backend = %cfg.name, %server, %error, "server closed before the ClientHello was delivered; trying the next server");
            last = UpstreamError::Replay {
                server: server.clone(),
                source: error,
            };
            continue;
        }
        return Ok((
            Upstream {
                stream,
                leftover,
                server: server.clone(),
                _active: backend.open(index),
            },
            connect_time,
        ));
    }
    warn!(backend = %cfg.name, error = %last, "no server of the backend could be reached");
    Err(last)
}
