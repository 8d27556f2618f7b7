//! The client side of an HTTP CONNECT hop: open a tunnel to a target
//! through an HTTP proxy. Nothing but the request is written until the proxy
//! has answered; any 2xx opens the tunnel; bytes the proxy sent after its
//! header block belong to the tunnel and are returned, never dropped. The
//! whole exchange (TCP connect included) sits under one deadline, and the
//! answer is bounded to 16 KiB.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use crate::connect_head::{HeadEnd, MAX_HEADER, parse_response, request};
use crate::dial::{DialError, dial_until};
use crate::io::{read_some, write_all};
use crate::via::ViaUrl;

/// An open tunnel.
#[derive(Debug)]
pub struct Tunnel {
    /// The connection to the proxy, now a tunnel to the target.
    pub stream: TcpStream,
    /// Bytes the proxy sent after its header block: the target's first bytes.
    pub leftover: Bytes,
    /// The proxy's status line, e.g. `HTTP/1.1 200 Connection established`.
    pub status_line: String,
}

/// Why a tunnel could not be opened. Each message names the hop.
#[derive(Debug, thiserror::Error)]
pub enum HopError {
    /// The proxy itself could not be reached.
    #[error("CONNECT via {via}: {source}")]
    Dial {
        /// The hop (password masked).
        via: String,
        /// Why.
        source: DialError,
    },
    /// No complete answer within the timeout.
    #[error("CONNECT via {via} to {target}: no answer within {}", humantime::format_duration(*.timeout))]
    Timeout {
        /// The hop.
        via: String,
        /// host:port asked for.
        target: String,
        /// The timeout (TCP connect plus CONNECT exchange).
        timeout: Duration,
    },
    /// The proxy answered something other than 2xx.
    #[error("CONNECT via {via} to {target} refused: {status_line}")]
    Refused {
        /// The hop.
        via: String,
        /// host:port asked for.
        target: String,
        /// The status code.
        status: u16,
        /// The status line as sent (bounded, control characters replaced).
        status_line: String,
    },
    /// The answer is not HTTP.
    #[error("CONNECT via {via} to {target}: the proxy's answer is not HTTP ({detail})")]
    Garbage {
        /// The hop.
        via: String,
        /// host:port asked for.
        target: String,
        /// What was wrong.
        detail: String,
    },
    /// The header block exceeded 16 KiB.
    #[error("CONNECT via {via} to {target}: the proxy's header block is larger than 16 KiB")]
    HeaderTooLarge {
        /// The hop.
        via: String,
        /// host:port asked for.
        target: String,
    },
    /// The proxy closed or broke the connection before answering.
    #[error("CONNECT via {via} to {target}: the proxy closed the connection before answering")]
    Closed {
        /// The hop.
        via: String,
        /// host:port asked for.
        target: String,
    },
}

/// Open a tunnel to `target` (`host:port`) through `via`, all within `timeout`.
pub async fn tunnel(via: &ViaUrl, target: &str, timeout: Duration) -> Result<Tunnel, HopError> {
    tunnel_with_keepalive(via, target, timeout, None).await
}

/// Like [`tunnel`], with TCP keepalive on the connection to the proxy.
pub async fn tunnel_with_keepalive(
    via: &ViaUrl,
    target: &str,
    timeout: Duration,
    keepalive: Option<Duration>,
) -> Result<Tunnel, HopError> {
    let deadline = Instant::now() + timeout;
    let name = via.to_string();
    let stream = dial_until(&via.proxy, deadline, timeout, keepalive)
        .await
        .map_err(|source| HopError::Dial {
            via: name.clone(),
            source,
        })?;
    let expired = || HopError::Timeout {
        via: name.clone(),
        target: target.to_string(),
        timeout,
    };
    let closed = || HopError::Closed {
        via: name.clone(),
        target: target.to_string(),
    };
    timeout_at(
        deadline,
        write_all(&stream, &request(target, via.authorization().as_deref())),
    )
    .await
    .map_err(|_| expired())?
    .map_err(|_| closed())?;
    let mut buf = BytesMut::with_capacity(1024);
    let mut end = HeadEnd::default();
    let mut status_line_checked = false;
    let mut seen = 0;
    loop {
        // Parse only when there is something new to decide: the status line
        // just completed (garbage is refused early) or the whole head is in.
        // A trickled head thus costs linear time, not one parse per read.
        let complete = end.find(&buf).is_some();
        let check_status = !status_line_checked && buf[seen..].contains(&b'\n');
        seen = buf.len();
        status_line_checked |= check_status;
        let parsed = if complete || check_status {
            parse_response(&buf)
        } else {
            Ok(None)
        };
        match parsed {
            Ok(Some(head)) => {
                let leftover = buf.split_off(head.len).freeze();
                if (200..300).contains(&head.status) {
                    return Ok(Tunnel {
                        stream,
                        leftover,
                        status_line: head.status_line,
                    });
                }
                return Err(HopError::Refused {
                    via: name,
                    target: target.to_string(),
                    status: head.status,
                    status_line: head.status_line,
                });
            }
            Ok(None) if buf.len() >= MAX_HEADER => {
                return Err(HopError::HeaderTooLarge {
                    via: name,
                    target: target.to_string(),
                });
            }
            Ok(None) => {}
            Err(detail) => {
                return Err(HopError::Garbage {
                    via: name,
                    target: target.to_string(),
                    detail,
                });
            }
        }
        match timeout_at(deadline, read_some(&stream, &mut buf, MAX_HEADER)).await {
            Err(_) => return Err(expired()),
            Ok(Ok(0) | Err(_)) => return Err(closed()),
            Ok(Ok(_)) => {}
        }
    }
}
