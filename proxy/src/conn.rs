//! One connection, start to end: read the ClientHello (keeping every byte),
//! route it, connect to a server, replay the buffered bytes, forward, and
//! write the access record. The only module that sequences the pure parts
//! on a socket; every wait on a peer is under a named deadline.

use std::io;
use std::net::Shutdown;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use socket2::SockRef;
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::access_log::{AccessLog, AccessRecord};
use crate::alert::{alert_record, find_offload_headers, plaintext_http_reply};
use crate::clienthello::{self, ClientHello};
use crate::connect::dial;
use crate::forward::{Counters, End, forward, write_all};
use crate::refusal::{Refusal, Reply};
use crate::route::MatchKind;
use crate::server::{ListenerState, Routing};
use crate::sniff::{Sniff, sniff};

/// How a connection ended, for the access log and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Routed and forwarded; how the forwarding ended.
    Forwarded(End),
    /// Refused before forwarding.
    Refused(Refusal),
    /// The client closed before sending a whole ClientHello (a TCP health
    /// check, a port scan). Not a refusal: nothing was refused.
    ClientClosed,
    /// passthru stopped before the connection was routed.
    Stopped,
}

impl Outcome {
    /// The access log's `outcome`: `ok`, a refusal reason, `client_closed` or `stopped`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Forwarded(_) => "ok",
            Outcome::Refused(r) => r.as_str(),
            Outcome::ClientClosed => "client_closed",
            Outcome::Stopped => "stopped",
        }
    }
}

/// Serve one accepted connection and log it.
pub async fn serve(
    stream: TcpStream,
    listener: Arc<ListenerState>,
    routing: Arc<Routing>,
    mut record: AccessRecord,
    log: AccessLog,
    stop: CancellationToken,
) {
    let started = Instant::now();
    let outcome = tokio::select! {
        outcome = pipeline(&stream, &listener, &routing, &mut record, &stop) => outcome,
        () = stop.cancelled() => Outcome::Stopped,
    };
    record.outcome = outcome.as_str();
    if let Outcome::Forwarded(end) = outcome {
        record.end = Some(end.as_str());
    }
    record.duration = started.elapsed();
    debug!(outcome = record.outcome, "connection finished");
    log.write(record);
}

async fn pipeline(
    client: &TcpStream,
    listener: &ListenerState,
    routing: &Routing,
    record: &mut AccessRecord,
    stop: &CancellationToken,
) -> Outcome {
    let cfg = &listener.config;
    let deadline = Instant::now() + cfg.client_hello_timeout;
    let mut buf = BytesMut::with_capacity(INITIAL_BUFFER);
    let hello = match read_client_hello(client, &mut buf, deadline, cfg.max_client_hello).await {
        Ok(hello) => hello,
        Err(HelloError::Closed) => return Outcome::ClientClosed,
        Err(HelloError::Refused(refusal)) => {
            if refusal == Refusal::PlaintextHttp {
                answer_plaintext(client, &mut buf, deadline, cfg.max_client_hello, record).await;
            }
            debug!(
                reason = refusal.as_str(),
                bytes = buf.len(),
                "refused before routing"
            );
            return Outcome::Refused(refusal);
        }
    };
    record.sni.clone_from(&hello.server_name);
    record.alpn.clone_from(&hello.alpn);
    record.tls_version = Some(hello.offered_version_name());

    let Some(routed) = routing
        .table
        .lookup(hello.server_name.as_deref(), &hello.alpn)
    else {
        return refuse(client, &hello, Refusal::NoRoute).await;
    };
    record.route = Some(match (routed.route, routed.kind) {
        (Some(i), _) => format!("route[{i}]"),
        (None, MatchKind::Default) | (None, _) => "default".to_string(),
    });
    let Some(backend) = routing.backends.get(routed.backend) else {
        return refuse(client, &hello, Refusal::NoRoute).await;
    };
    record.backend = Some(backend.config.name.clone());

    // Try the servers in balanced order; a server that fails before any
    // byte reached it is skipped for the next one.
    let mut connected = None;
    for index in backend.order(record.client.ip()) {
        let Some(addr) = backend.config.servers.get(index) else {
            continue;
        };
        match dial(
            addr,
            backend.config.connect_timeout,
            backend.config.tcp_keepalive,
        )
        .await
        {
            Ok(server) => match write_all(&server, &buf).await {
                Ok(()) => {
                    record.server = Some(addr.to_string());
                    connected = Some((server, backend.open(index)));
                    break;
                }
                Err(error) => {
                    warn!(backend = %backend.config.name, server = %addr, %error, "server closed before the ClientHello was delivered; trying the next server")
                }
            },
            Err(error) => {
                warn!(backend = %backend.config.name, %error, "server unreachable; trying the next server")
            }
        }
    }
    let Some((server, _active)) = connected else {
        warn!(backend = %backend.config.name, "no server of the backend could be reached");
        return refuse(client, &hello, Refusal::UpstreamUnavailable).await;
    };
    debug!(sni = ?hello.server_name, route = ?record.route, server = ?record.server, "routed");

    let counters = Counters::default();
    let end = forward(
        client,
        &server,
        backend.config.idle_timeout,
        &counters,
        stop,
    )
    .await;
    record.bytes_up = buf.len() as u64 + counters.upstream.load(Ordering::Relaxed);
    record.bytes_down = counters.downstream.load(Ordering::Relaxed);
    Outcome::Forwarded(end)
}

#[derive(Debug)]
enum HelloError {
    Refused(Refusal),
    Closed,
}

/// Read until `buf` holds a whole ClientHello, within one deadline across
/// all reads and at most `max` bytes. Everything read stays in `buf`.
async fn read_client_hello(
    stream: &TcpStream,
    buf: &mut BytesMut,
    deadline: Instant,
    max: usize,
) -> Result<ClientHello, HelloError> {
    // Parse again only once at least `want` bytes are in: a peer sending one
    // byte at a time costs one parse per record, not one per byte.
    let mut want = 0;
    loop {
        if !buf.is_empty() && buf.len() >= want {
            match sniff(buf) {
                Sniff::PlaintextHttp => return Err(HelloError::Refused(Refusal::PlaintextHttp)),
                Sniff::NotTls => return Err(HelloError::Refused(Refusal::NotTls)),
                Sniff::NeedMore => {}
                Sniff::Tls | Sniff::Sslv2 => match clienthello::parse(buf) {
                    Ok(hello) => return Ok(hello),
                    Err(clienthello::Error::Incomplete { needed }) if needed > max => {
                        return Err(HelloError::Refused(Refusal::ClientHelloTooLarge));
                    }
                    Err(clienthello::Error::Incomplete { needed }) => want = needed,
                    Err(clienthello::Error::Invalid(error)) => {
                        debug!(%error, "invalid ClientHello");
                        return Err(HelloError::Refused(Refusal::NotTls));
                    }
                },
            }
        }
        if buf.len() >= max {
            return Err(HelloError::Refused(Refusal::ClientHelloTooLarge));
        }
        match timeout_at(deadline, read_some(stream, buf, max)).await {
            Err(_) => return Err(HelloError::Refused(Refusal::ClientHelloTimeout)),
            Ok(Ok(0) | Err(_)) => return Err(HelloError::Closed),
            Ok(Ok(_)) => {}
        }
    }
}

/// One read into `buf`, never growing it past `max`.
pub(crate) async fn read_some(stream: &TcpStream, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
    loop {
        stream.readable().await?;
        let room = max.saturating_sub(buf.len());
        buf.reserve(room.min(READ_CHUNK));
        match stream.try_read_buf(&mut (&mut *buf).limit(room)) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            result => return result,
        }
    }
}

/// Send the refusal's reply, then close.
async fn refuse(client: &TcpStream, hello: &ClientHello, refusal: Refusal) -> Outcome {
    if let Reply::Alert(alert) = refusal.reply() {
        // A server answers at or below the version the client offered.
        let record = alert_record(hello.legacy_version, alert);
        let _ = timeout(WRITE_TIMEOUT, write_all(client, &record)).await;
        lingering_close(client).await;
    }
    Outcome::Refused(refusal)
}

/// Plaintext HTTP: read the rest of the request head (bounded), answer
/// 400 with the explanation, and close.
async fn answer_plaintext(
    client: &TcpStream,
    buf: &mut BytesMut,
    deadline: Instant,
    max: usize,
    record: &mut AccessRecord,
) {
    let limit = max.min(MAX_HTTP_HEAD);
    let until = deadline.min(Instant::now() + HTTP_HEAD_WAIT);
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < limit {
        match timeout_at(until, read_some(client, buf, limit)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => break,
        }
    }
    let headers = find_offload_headers(buf);
    if !headers.is_empty() {
        record.detail = Some(format!("offload headers: {}", headers.join(",")));
    }
    let _ = timeout(
        WRITE_TIMEOUT,
        write_all(client, &plaintext_http_reply(&headers)),
    )
    .await;
    lingering_close(client).await;
}

/// Half-close, then read and discard what the client still sends (bounded
/// in time and bytes), so that our reply is not destroyed by a reset.
async fn lingering_close(client: &TcpStream) {
    let _ = SockRef::from(client).shutdown(Shutdown::Write);
    let mut scratch = BytesMut::with_capacity(READ_CHUNK);
    let mut total = 0;
    let _ = timeout(LINGER, async {
        while total < LINGER_BYTES {
            scratch.clear();
            match read_some(client, &mut scratch, READ_CHUNK).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    })
    .await;
}

const INITIAL_BUFFER: usize = 1024;
const READ_CHUNK: usize = 4096;
const MAX_HTTP_HEAD: usize = 16 * 1024;
const HTTP_HEAD_WAIT: Duration = Duration::from_secs(1);
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 64 * 1024;
