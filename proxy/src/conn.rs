//! One connection, start to end: read the ClientHello (keeping every byte),
//! route it, reach a server, replay the buffered bytes, forward, and write
//! the access record. The only module that sequences the parts on a
//! socket; every wait on a peer is under a named deadline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::BytesMut;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::access_log::{AccessLog, AccessRecord, Observed};
use crate::clienthello::{self, ClientHello};
use crate::config::{ExpectProxy, SendProxy};
use crate::forward::{Counters, End, Tap, forward_with, write_all};
use crate::front::{
    ConnectRequest, HelloError, answer_connect_error, answer_connect_ok, answer_plaintext,
    read_client_hello, read_connect, read_proxy_header, refuse,
};
use crate::metrics::Metrics;
use crate::observe::{Direction, Handshake, ObserverTap};
use crate::proxy_protocol::{encode_v1, encode_v2};
use crate::refusal::Refusal;
use crate::route::{MatchKind, ServerNamePattern};
use crate::server::{ListenerState, Routing};
use crate::upstream;

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

/// What a connection needs from its listener and server.
#[derive(Debug)]
pub struct ConnContext {
    /// The listener it arrived on.
    pub listener: Arc<ListenerState>,
    /// Routes and backends, as of its accept.
    pub routing: Arc<Routing>,
    /// Where its access record goes.
    pub log: AccessLog,
    /// Counters it moves.
    pub metrics: Arc<Metrics>,
    /// Cancelled when open connections must end (drain timeout).
    pub stop: CancellationToken,
}

/// Serve one accepted connection and log it. `pending` is the listener's
/// `max_pending` slot, returned once the connection is routed.
pub async fn serve(
    stream: TcpStream,
    mut record: AccessRecord,
    pending: OwnedSemaphorePermit,
    ctx: ConnContext,
) {
    let ConnContext {
        listener,
        routing,
        log,
        metrics,
        stop,
    } = ctx;
    let started = Instant::now();
    let name = &listener.config.name;
    metrics.connection_opened(name);
    let outcome = tokio::select! {
        outcome = pipeline(&stream, &listener, &routing, &mut record, &metrics, pending, &stop) => outcome,
        () = stop.cancelled() => Outcome::Stopped,
    };
    record.outcome = outcome.as_str();
    match outcome {
        Outcome::Forwarded(end) => record.end = Some(end.as_str()),
        Outcome::Refused(refusal) => metrics.refused(name, refusal.as_str()),
        Outcome::ClientClosed | Outcome::Stopped => {}
    }
    record.duration = started.elapsed();
    metrics.connection_finished(
        name,
        record.route.as_deref().unwrap_or(""),
        record.backend.as_deref().unwrap_or(""),
        record.outcome,
    );
    metrics.bytes(name, record.bytes_up, record.bytes_down);
    metrics.connection_closed(name);
    debug!(outcome = record.outcome, "connection finished");
    log.write(record);
}

async fn pipeline(
    client: &TcpStream,
    listener: &ListenerState,
    routing: &Routing,
    record: &mut AccessRecord,
    metrics: &Metrics,
    pending: OwnedSemaphorePermit,
    stop: &CancellationToken,
) -> Outcome {
    let cfg = &listener.config;
    let deadline = Instant::now() + cfg.client_hello_timeout;
    let mut buf = BytesMut::with_capacity(INITIAL_BUFFER);
    let mut proxy_ssl_tlv = false;
    if cfg.proxy_protocol != ExpectProxy::Off {
        // A PROXY header is a claim anyone can make: only trusted peers may
        // make it, and on this listener every connection must.
        if !cfg.trusted_proxies.contains(record.peer.ip()) {
            debug!(peer = %record.peer, "a PROXY header is expected, but the peer is not in trusted_proxies");
            return Outcome::Refused(Refusal::ProxyHeaderUntrusted);
        }
        match read_proxy_header(client, &mut buf, deadline, cfg.proxy_protocol).await {
            Ok(header) => {
                if let (true, Some(source)) = (header.proxied, header.source) {
                    record.client = source;
                }
                proxy_ssl_tlv = header.tls_terminated;
            }
            Err(HelloError::Refused(refusal)) => return Outcome::Refused(refusal),
            Err(HelloError::Closed | HelloError::ConnectRequest) => return Outcome::ClientClosed,
        }
    }
    let mut connect_host = None;
    let mut reads = 0;
    let mut read = read_client_hello(
        client,
        &mut buf,
        deadline,
        cfg.max_client_hello,
        cfg.accept_connect,
        &mut reads,
    )
    .await;
    if read == Err(HelloError::ConnectRequest) {
        // Inbound CONNECT: answer only for routed names, then read the
        // ClientHello inside the tunnel. The CONNECT head is not forwarded.
        match read_connect(client, &mut buf, deadline).await {
            ConnectRequest::Incomplete => return Outcome::Refused(Refusal::ClientHelloTimeout),
            ConnectRequest::Malformed(reason) => {
                record.detail = Some(format!("CONNECT refused: {reason}"));
                answer_connect_error(client, "400 Bad Request", reason).await;
                return Outcome::Refused(Refusal::PlaintextHttp);
            }
            ConnectRequest::Target { host, port } => {
                record.detail = Some(format!("CONNECT {host}:{port}"));
                if !routing.table.routes_name(&host) {
                    let reason = format!(
                        "no route for {host}; CONNECT is only answered for names passthru routes"
                    );
                    answer_connect_error(client, "403 Forbidden", &reason).await;
                    return Outcome::Refused(Refusal::NoRoute);
                }
                if answer_connect_ok(client).await.is_err() {
                    return Outcome::ClientClosed;
                }
                connect_host = Some(host);
            }
        }
        reads = 0;
        let max = cfg.max_client_hello;
        read = read_client_hello(client, &mut buf, deadline, max, false, &mut reads).await;
    }
    let mut hello = match read {
        Ok(hello) => hello,
        Err(HelloError::Closed | HelloError::ConnectRequest) => return Outcome::ClientClosed,
        Err(HelloError::Refused(refusal)) => {
            if refusal == Refusal::PlaintextHttp {
                let signals = answer_plaintext(
                    client,
                    &mut buf,
                    deadline,
                    cfg.max_client_hello,
                    record,
                    proxy_ssl_tlv,
                )
                .await;
                for signal in &signals {
                    metrics.offload_signal(&cfg.name, signal);
                }
            }
            debug!(
                reason = refusal.as_str(),
                bytes = buf.len(),
                "refused before routing"
            );
            return Outcome::Refused(refusal);
        }
    };
    if proxy_ssl_tlv {
        // TLS again after a hop that terminated TLS: a re-encrypting balancer.
        // The agent's certificate cannot be in this handshake.
        warn!(peer = %record.peer, "the PROXY header's SSL TLV says the balancer terminated TLS and re-encrypted: client certificates cannot reach the gateway");
        record.detail = Some("offload signals: proxy_v2_ssl_tlv".to_string());
        metrics.offload_signal(&cfg.name, "proxy_v2_ssl_tlv");
    }
    // A hello that came whole with the bytes before it took one read.
    let groups = hello.key_shares.iter().map(|group| group.name());
    metrics.client_hello(&cfg.name, hello.len, reads.max(1), hello.records, groups);
    record.sni.clone_from(&hello.server_name);
    record.alpn = std::mem::take(&mut hello.alpn);
    record.tls_version = Some(hello.offered_version_name());
    record.ja4 = clienthello::ja4(&buf);
    record.key_shares = Some(hello.key_shares);

    if let Some(host) = &connect_host
        && !sni_is(&hello, host)
    {
        refuse(client, &hello, Refusal::ConnectSniMismatch).await;
        return Outcome::Refused(Refusal::ConnectSniMismatch);
    }

    let Some(routed) = routing
        .table
        .lookup(hello.server_name.as_deref(), &record.alpn)
    else {
        refuse(client, &hello, Refusal::NoRoute).await;
        return Outcome::Refused(Refusal::NoRoute);
    };
    record.route = Some(match (routed.route, routed.kind) {
        (Some(i), _) => format!("route[{i}]"),
        (None, MatchKind::Default) | (None, _) => "default".to_string(),
    });
    let Some(backend) = routing.backends.get(routed.backend) else {
        refuse(client, &hello, Refusal::NoRoute).await;
        return Outcome::Refused(Refusal::NoRoute);
    };
    record.backend = Some(backend.config.name.clone());
    // Routed: no longer pending.
    drop(pending);
    record.via = backend.config.via.as_ref().map(|v| v.proxy.to_string());

    let proxy_header = match (backend.config.send_proxy_protocol, client.local_addr()) {
        (SendProxy::Off, _) | (_, Err(_)) => Vec::new(),
        (SendProxy::V1, Ok(local)) => encode_v1(canonical(record.client), canonical(local)),
        (SendProxy::V2, Ok(local)) => encode_v2(
            canonical(record.client),
            canonical(local),
            hello.server_name.as_deref(),
        ),
    };
    let upstream =
        match upstream::connect(backend, record.client.ip(), &[&proxy_header, &buf]).await {
            Ok((upstream, connect_time)) => {
                metrics.upstream_connect(connect_time.as_secs_f64());
                upstream
            }
            Err(error) => {
                record.detail = Some(error);
                refuse(client, &hello, Refusal::UpstreamUnavailable).await;
                return Outcome::Refused(Refusal::UpstreamUnavailable);
            }
        };
    record.server = Some(upstream.server.to_string());
    // Routed: the parsed hello is not kept for the life of the connection.
    drop(hello);
    debug!(sni = ?record.sni, route = ?record.route, server = ?record.server, "routed");

    let counters = Counters::default();
    let tap = cfg.observe_handshake.then(ObserverTap::new);
    if let Some(tap) = &tap {
        tap.feed_direction(Direction::ClientToServer, &buf);
        tap.feed_direction(Direction::ServerToClient, &upstream.leftover);
    }
    // The buffered hello (up to max_client_hello) is not kept either.
    let hello_bytes = buf.len() as u64;
    drop(buf);
    let end =
        if !upstream.leftover.is_empty() && write_all(client, &upstream.leftover).await.is_err() {
            End::ClientReset
        } else {
            let tap = tap.as_ref().map(|t| t as &dyn Tap);
            forward_with(
                client,
                &upstream.stream,
                backend.config.idle_timeout,
                routing.forwarding,
                tap,
                &counters,
                stop,
            )
            .await
        };
    record.bytes_up = hello_bytes + counters.upstream.load(Ordering::Relaxed);
    record.bytes_down =
        upstream.leftover.len() as u64 + counters.downstream.load(Ordering::Relaxed);
    if let Some(tap) = tap {
        let (report, duration) = tap.finish();
        observed_metrics(metrics, &cfg.name, &backend.config.name, &report);
        record.handshake = Some(Observed {
            report,
            duration_ms: duration.map(|d| d.as_millis() as u64),
        });
    }
    Outcome::Forwarded(end)
}

/// Count an observed handshake and the client certificate's days left.
fn observed_metrics(metrics: &Metrics, listener: &str, backend: &str, report: &Handshake) {
    let outcome = match (&report.alert, report.completed) {
        (Some(_), _) => "failed",
        (None, true) => "completed",
        (None, false) => "incomplete",
    };
    let alert = report.alert.as_ref().map_or("", |(_, name)| name.as_str());
    metrics.handshake(listener, backend, outcome, alert);
    if let Some(cert) = &report.client_cert {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        metrics.client_cert_expiry(backend, (cert.not_after_unix - now) as f64 / 86_400.0);
    }
}

/// IPv4-mapped IPv6 addresses (dual-stack sockets) as plain IPv4.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Whether the hello's SNI names `host` (case and one trailing dot ignored).
fn sni_is(hello: &ClientHello, host: &str) -> bool {
    match (&hello.server_name, host.parse::<ServerNamePattern>()) {
        (Some(sni), Ok(ServerNamePattern::Exact(want))) => {
            let sni = sni.strip_suffix('.').unwrap_or(sni);
            sni.eq_ignore_ascii_case(&want)
        }
        _ => false,
    }
}

const INITIAL_BUFFER: usize = 1024;
