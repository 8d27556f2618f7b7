//! The agent on a managed machine: opens TCP (directly or through an HTTP
//! CONNECT proxy), runs the outer TLS handshake with the gateway presenting
//! its machine certificate and pinning the gateway's certificate by SHA-1
//! thumbprint, then a second mutual-TLS handshake with the backend inside
//! that session, then request/answer exchanges (with idle periods between
//! them for persistent connections). It records what it saw at every step.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use passthru_certs::Identity;
use passthru_net::ViaUrl;
use passthru_net::tunnel::tunnel;
use rustls::RootCertStore;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;

use crate::observe::{Failure, FailureKind, Hop, HopRecord, Layer, Ledger, Leg, Role};
use crate::tls::{ClientSight, ServerTrust, cert_seen, client_config};
use crate::wire::{Wire, WireStats, plaintext_line, read_line, write_line};

/// How the agent reaches the first hop.
#[derive(Debug, Clone)]
pub enum Entry {
    /// TCP straight to this address.
    Direct(SocketAddr),
    /// Through an HTTP CONNECT proxy, asking for `target` (`host:port`).
    Connect {
        /// The proxy.
        proxy: SocketAddr,
        /// What to ask the proxy for.
        target: String,
    },
}

/// One agent connection: who it is, whom it trusts, what it does.
#[derive(Clone)]
pub struct AgentPlan {
    /// The machine certificate presented to the gateway and the backend.
    pub identity: Identity,
    /// How the outer (gateway) certificate is trusted.
    pub outer_trust: ServerTrust,
    /// Roots for the backend's certificate (inner handshake).
    pub inner_roots: Arc<RootCertStore>,
    /// Where to connect.
    pub entry: Entry,
    /// The hop that answers the TCP connection.
    pub first_hop: Hop,
    /// Request/answer exchanges over the inner session.
    pub exchanges: usize,
    /// Idle time between exchanges (persistent connection).
    pub idle: Duration,
    /// Bound of every step (connect, each handshake, each answer).
    pub step_limit: Duration,
    /// The local address to connect from (agents behind one NAT each have
    /// their own, e.g. 127.0.0.11); `None`: the system's choice.
    pub source: Option<IpAddr>,
}

/// Run one agent connection and return what it saw.
pub async fn run(plan: &AgentPlan, ledger: &Ledger) -> HopRecord {
    let mut record = HopRecord::new(Hop::Agent, "agent (rustls, pinning the gateway)");
    let outer_stats = Arc::new(WireStats::default());
    match open(plan, &mut record).await {
        Ok((tcp, leftover)) => {
            ledger.dialed(plan.first_hop);
            let wire = Wire::new(tcp, leftover, Arc::clone(&outer_stats));
            if let Err(failure) = converse(plan, wire, &mut record).await {
                record.error = Some(failure);
            }
        }
        Err(failure) => record.error = Some(failure),
    }
    record.bytes_up = outer_stats.written();
    record.bytes_down = outer_stats.read();
    record
}

async fn open(plan: &AgentPlan, record: &mut HopRecord) -> Result<(TcpStream, Bytes), Failure> {
    match &plan.entry {
        Entry::Direct(addr) => {
            let dial = tokio::time::timeout(plan.step_limit, dial(*addr, plan.source)).await;
            match dial {
                Ok(Ok(tcp)) => Ok((tcp, Bytes::new())),
                Ok(Err(e)) => Err(Failure::from_io(&e)),
                Err(_) => Err(Failure::plain(
                    FailureKind::Timeout,
                    "TCP connect timed out",
                )),
            }
        }
        Entry::Connect { proxy, target } => {
            let via: ViaUrl = format!("http://{proxy}")
                .parse()
                .map_err(|e| Failure::plain(FailureKind::Other, format!("proxy URL: {e}")))?;
            let opened = tunnel(&via, target, plan.step_limit)
                .await
                .map_err(|e| Failure::plain(FailureKind::Other, e.to_string()))?;
            record.notes.push(format!(
                "CONNECT {target} via {proxy}: {}",
                opened.status_line
            ));
            Ok((opened.stream, opened.leftover))
        }
    }
}

/// Outer handshake, inner handshake, exchanges, orderly close.
async fn converse(
    plan: &AgentPlan,
    wire: Wire<TcpStream>,
    record: &mut HopRecord,
) -> Result<(), Failure> {
    let presented = Some(cert_seen(&plan.identity.cert_der));
    let outer_sight = Arc::new(ClientSight::default());
    let outer_config = client_config(plan.outer_trust.clone(), Some(&plan.identity), &outer_sight)
        .map_err(|e| Failure::from_tls(&e))?;
    let outer = handshake(outer_config, GATEWAY_NAME, wire, plan.step_limit).await;
    let mut outer_leg = leg(Layer::Outer, GATEWAY_NAME, &outer_sight, presented.clone());
    let outer = match outer {
        Ok(stream) => {
            outer_leg.completed = true;
            stream
        }
        Err(failure) => {
            outer_leg.failure = Some(failure);
            record.legs.push(outer_leg);
            return Ok(());
        }
    };

    // Inside the outer session: the bytes the gateway's tunnel delivers.
    let inner_stats = Arc::new(WireStats::default());
    let tunnel = Wire::new(outer, Bytes::new(), Arc::clone(&inner_stats));
    let inner_sight = Arc::new(ClientSight::default());
    let inner_config = client_config(
        ServerTrust::Roots(Arc::clone(&plan.inner_roots)),
        Some(&plan.identity),
        &inner_sight,
    )
    .map_err(|e| Failure::from_tls(&e))?;
    let inner = handshake(inner_config, BACKEND_NAME, tunnel, plan.step_limit).await;
    let mut inner_leg = leg(Layer::Inner, BACKEND_NAME, &inner_sight, presented);
    let result = match inner {
        Ok(mut stream) => {
            inner_leg.completed = true;
            let exchanged = exchange(plan, &mut stream, record).await;
            if exchanged.is_ok() {
                close(&mut stream, plan.step_limit).await;
            }
            exchanged
        }
        Err(failure) => Err(failure),
    };
    // A failure of the outer session surfaces inside the inner one: put it
    // where it happened.
    match (result, inner_stats.failure()) {
        (Err(_), Some(outer_failure)) => outer_leg.failure = Some(outer_failure),
        (Err(failure), None) => {
            if let Some(text) = plaintext_line(&inner_stats.first_bytes()) {
                record.said.push(format!("received in clear: {text}"));
                outer_leg.failure = Some(Failure::plain(
                    FailureKind::AnsweredInClear,
                    format!("the gateway answered \"{text}\" instead of tunnelling"),
                ));
            } else if inner_leg.completed {
                record.error = Some(failure);
            } else {
                inner_leg.failure = Some(failure);
            }
        }
        (Ok(()), _) => {}
    }
    record.legs.push(outer_leg);
    record.legs.push(inner_leg);
    Ok(())
}

async fn handshake<S>(
    config: rustls::ClientConfig,
    name: &'static str,
    stream: S,
    limit: Duration,
) -> Result<tokio_rustls::client::TlsStream<S>, Failure>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let connector = TlsConnector::from(Arc::new(config));
    let server_name = ServerName::try_from(name)
        .map_err(|e| Failure::plain(FailureKind::Other, e.to_string()))?;
    let connected = tokio::time::timeout(limit, connector.connect(server_name, stream)).await;
    // With TLS 1.3 a rejected client certificate shows only on the first
    // read: the caller reads (inner handshake, answers) before any success
    // is reported.
    match connected {
        Ok(Ok(tls)) => Ok(tls),
        Ok(Err(e)) => Err(Failure::from_io(&e)),
        Err(_) => Err(Failure::plain(FailureKind::Timeout, "handshake timed out")),
    }
}

async fn exchange<S>(
    plan: &AgentPlan,
    stream: &mut S,
    record: &mut HopRecord,
) -> Result<(), Failure>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    for n in 1..=plan.exchanges {
        if n > 1 && !plan.idle.is_zero() {
            tokio::time::sleep(plan.idle).await;
        }
        write_line(stream, &format!("HELLO {n}"))
            .await
            .map_err(|e| Failure::from_io(&e))?;
        match read_line(stream, plan.step_limit).await {
            Ok(Some(answer)) => record.said.push(answer),
            Ok(None) => {
                return Err(Failure::plain(
                    FailureKind::Closed,
                    format!("the backend closed before answering request {n}"),
                ));
            }
            Err(e) => return Err(Failure::from_io(&e)),
        }
    }
    Ok(())
}

/// close_notify to the backend, then wait (bounded) for the other side to
/// finish, so every hop ends its connection in order.
async fn close<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, limit: Duration) {
    let _ = stream.shutdown().await;
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(limit, stream.read_to_end(&mut sink)).await;
}

fn leg(
    layer: Layer,
    sni: &str,
    sight: &ClientSight,
    presented: Option<crate::observe::CertSeen>,
) -> Leg {
    let asked = sight.asked_for_client_cert.lock().is_ok_and(|a| *a);
    Leg {
        layer,
        role: Role::Client,
        sni: Some(sni.to_string()),
        presented: presented.filter(|_| asked),
        peer_cert: sight.server_cert.lock().ok().and_then(|c| c.clone()),
        client_cert_requested: asked,
        completed: false,
        failure: None,
    }
}

/// The gateway's name, as agents are configured with it.
pub const GATEWAY_NAME: &str = "gw.example.com";
/// The backend's name, checked in the inner handshake.
pub const BACKEND_NAME: &str = "backend.example.com";

/// Connect to `addr`, from `source` when given.
async fn dial(addr: SocketAddr, source: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let Some(source) = source else {
        return TcpStream::connect(addr).await;
    };
    let socket = match source {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(addr).await
}
