//! Reaching a server of the chosen backend: in balanced order, each server
//! once, directly or through the backend's `via` CONNECT hop, and replaying
//! the buffered bytes. A server that fails before any byte reached the
//! client is skipped for the next one. A server at its limit is skipped
//! like a down one; when every usable server is full, the connection
//! waits in the backend's queue (see `slots.rs`) for the first slot that
//! frees.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use passthru_net::ServerAddr;
use passthru_net::dial::{DialError, dial_sending};
use passthru_net::io::write_all_vectored;
use passthru_net::tunnel::{HopError, tunnel_with_keepalive};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use tracing::warn;

use crate::backend::Backend;
use crate::logging;
use crate::refusal::Refusal;
use crate::slots::{QueueExit, Slot};

/// A server connection, ready to forward.
#[derive(Debug)]
pub(crate) struct Upstream {
    /// The socket (to the server, or the tunnel through the hop).
    pub(crate) stream: TcpStream,
    /// Bytes the hop sent after its answer: the server's first bytes, for the client.
    pub(crate) leftover: Bytes,
    /// The server, as configured and as the access log shows it.
    pub(crate) server: Arc<str>,
    /// The connection's place on the server (its open-connection count,
    /// for limits and `least_conn`), released when the connection drops.
    pub(crate) _slot: Slot,
}

/// Why no server took the connection.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Refused (`upstream_unavailable`, `queue_full`, `queue_timeout`),
    /// with the error for the log.
    Refused(Refusal, UpstreamError),
    /// The client went away while its connection waited in the queue.
    ClientGone,
}

/// Why no server of a backend took the connection: the last server's
/// error, or why the queue gave up.
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
    /// Every usable server was full and the queue was too.
    #[error(
        "every server is at max_connections_per_server and max_queue = {max_queue} connections already wait"
    )]
    QueueFull {
        /// `max_queue` of the backend.
        max_queue: usize,
    },
    /// No slot freed in time.
    #[error("no server slot freed within queue_timeout")]
    QueueTimeout,
}

/// Try the servers of `backend` for a client at `client_ip`, writing
/// `initial` (PROXY header, ClientHello) to the first that accepts it.
/// When every server it may use is at its limit, wait in the queue,
/// watching `client` for EOF without reading from it.
pub(crate) async fn connect(
    backend: &Arc<Backend>,
    client: &TcpStream,
    client_ip: std::net::IpAddr,
    initial: &[&[u8]],
) -> Result<(Upstream, std::time::Duration), Failure> {
    let cfg = &backend.config;
    let mut last = UpstreamError::NoServers;
    let mut full = false;
    for index in backend.order(client_ip) {
        let Some(server) = cfg.servers.get(index) else {
            continue;
        };
        let Some(slot) = backend.slots.try_acquire(index) else {
            full = true;
            continue;
        };
        let name = backend
            .server_name(index)
            .unwrap_or_else(|| Arc::from(server.to_string()));
        match dial_and_replay(backend, server, name, slot, initial).await {
            Ok(done) => return Ok(done),
            Err(error) => last = error,
        }
    }
    // Every server it could use was full: queue, first in first out, and
    // try the server whose slot freed (a failed one sends it back in line).
    let mut rounds = 0;
    while full && rounds <= cfg.servers.len() {
        rounds += 1;
        let slot = backend
            .slots
            .wait(client)
            .await
            .map_err(|exit| match exit {
                QueueExit::Full => Failure::Refused(
                    Refusal::QueueFull,
                    UpstreamError::QueueFull {
                        max_queue: backend.slots.limits().max_queue,
                    },
                ),
                QueueExit::Timeout => {
                    Failure::Refused(Refusal::QueueTimeout, UpstreamError::QueueTimeout)
                }
                QueueExit::ClientGone => Failure::ClientGone,
            })?;
        let server = slot.server();
        let name = Arc::from(server.to_string());
        match dial_and_replay(backend, &server, name, slot, initial).await {
            Ok(done) => return Ok(done),
            Err(error) => last = error,
        }
    }
    if let Some(suppressed) = logging::allow(&cfg.name) {
        warn!(backend = %cfg.name, error = %last, suppressed, "no server of the backend could be reached");
    }
    Err(Failure::Refused(Refusal::UpstreamUnavailable, last))
}

/// Open a connection to `server` (directly or through the hop) holding
/// `slot`, and write `initial` to it. The slot is released on failure.
async fn dial_and_replay(
    backend: &Backend,
    server: &ServerAddr,
    name: Arc<str>,
    slot: Slot,
    initial: &[&[u8]],
) -> Result<(Upstream, std::time::Duration), UpstreamError> {
    let cfg = &backend.config;
    let started = Instant::now();
    // Directly, `initial` leaves with the connect (what the server did not
    // take at once is written below); through the hop, after its answer.
    let opened = match &cfg.via {
        None => dial_sending(server, cfg.connect_timeout, initial)
            .await
            .map(|(s, sent)| (s, Bytes::new(), sent))
            .map_err(UpstreamError::from),
        Some(via) => tunnel_with_keepalive(
            via,
            &server.to_string(),
            cfg.connect_timeout,
            cfg.tcp_keepalive,
        )
        .await
        // The hop's socket got TCP_NODELAY and keepalive when dialled.
        .map(|t| (t.stream, t.leftover, 0))
        .map_err(UpstreamError::from),
    };
    let connect_time = started.elapsed();
    let (stream, leftover, sent) = match opened {
        Ok(opened) => opened,
        Err(error) => {
            if let Some(suppressed) = logging::allow(&format!("{}/{server}", cfg.name)) {
                warn!(backend = %cfg.name, %server, %error, suppressed, "server unreachable; trying the next server");
            }
            return Err(error);
        }
    };
    // A server that accepts but does not read gets `connect_timeout` to
    // take the buffered bytes (at most `max_client_hello` and a PROXY header).
    // Usually the connect's own write took everything: no timer, no call.
    let rest = unsent(initial, sent);
    let written = if rest.is_empty() {
        Ok(())
    } else {
        timeout(cfg.connect_timeout, write_all_vectored(&stream, &rest))
            .await
            .unwrap_or_else(|_| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the server did not take the ClientHello within connect_timeout",
                ))
            })
    };
    if let Err(error) = written {
        if let Some(suppressed) = logging::allow(&format!("{}/{server}", cfg.name)) {
            warn!(backend = %cfg.name, %server, %error, suppressed, "server closed before the ClientHello was delivered; trying the next server");
        }
        return Err(UpstreamError::Replay {
            server: server.clone(),
            source: error,
        });
    }
    Ok((
        Upstream {
            stream,
            leftover,
            server: name,
            _slot: slot,
        },
        connect_time,
    ))
}

/// What is left of `parts` once the first `sent` bytes are gone.
fn unsent<'a>(parts: &[&'a [u8]], mut sent: usize) -> Vec<&'a [u8]> {
    let mut rest = Vec::new();
    for part in parts {
        let skip = sent.min(part.len());
        sent -= skip;
        if skip < part.len() {
            rest.push(&part[skip..]);
        }
    }
    rest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsent_skips_what_left_across_parts() {
        let parts: [&[u8]; 3] = [b"PROXY", b"", b"hello"];
        assert_eq!(unsent(&parts, 0), vec![&b"PROXY"[..], &b"hello"[..]]);
        assert_eq!(unsent(&parts, 3), vec![&b"XY"[..], &b"hello"[..]]);
        assert_eq!(unsent(&parts, 5), vec![&b"hello"[..]]);
        assert_eq!(unsent(&parts, 7), vec![&b"llo"[..]]);
        assert!(unsent(&parts, 10).is_empty());
    }
}
