//! An HTTP CONNECT proxy, in two modes: a plain tunnel (what passthru's
//! `via` hop and persistent agent connections need), and an inspecting
//! proxy that answers 200, then intercepts the TLS inside the tunnel with a
//! certificate minted on the fly by its own CA, and opens its own TLS
//! session to the gateway — which, having no agent key, it makes without the
//! agent's client certificate. Names are resolved from the lab's table.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use passthru_certs::{Identity, LabPki};
use passthru_net::ServerAddr;
use passthru_net::connect_head::{ConnectRequest, parse_connect};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::balancer::upstream_handshake;
use crate::observe::{Failure, FailureKind, Hop, HopRecord, Layer, Ledger, Leg, Role};
use crate::tls::{ServerSight, ServerTrust, cert_seen, server_config};
use crate::wire::{Wire, WireStats, accept_each, listen, tunnel};

/// What the proxy does inside the tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProxyMode {
    /// Copies bytes, never looks inside.
    Tunnel,
    /// Terminates the TLS inside the tunnel with its own CA (SSL inspection).
    Inspecting,
}

/// What the proxy is configured with.
#[derive(Clone)]
pub struct ProxyPlan {
    /// Where to listen (port 0: any free port).
    pub listen: SocketAddr,
    /// The mode.
    pub mode: ProxyMode,
    /// The lab's name table: `host:port` a client may CONNECT to → address.
    pub names: Vec<(String, SocketAddr)>,
    /// How the inspecting proxy trusts the gateway (an exception for its
    /// self-signed certificate).
    pub upstream_trust: ServerTrust,
    /// Bound of each step.
    pub step_limit: Duration,
}

/// A running proxy.
#[derive(Debug, Clone)]
pub struct RunningProxy {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The inspecting proxy's CA (what corporate machines are told to trust).
    pub ca: Option<Identity>,
    /// The certificate the inspecting proxy presents for the gateway's name.
    pub minted: Option<Identity>,
}

/// Bind `plan.listen` and serve until `stop`. The inspecting proxy mints its
/// CA and a certificate for gw.example.com from `pki` up front.
pub async fn spawn(
    plan: ProxyPlan,
    pki: &LabPki,
    ledger: Ledger,
    stop: CancellationToken,
) -> anyhow::Result<RunningProxy> {
    let listener = listen("CONNECT proxy", plan.listen).await?;
    let addr = listener.local_addr()?;
    let (ca, minted) = match plan.mode {
        ProxyMode::Tunnel => (None, None),
        ProxyMode::Inspecting => {
            let (ca, leaf) = pki.inspecting_proxy()?;
            (Some(ca), Some(leaf))
        }
    };
    let shared = Arc::new((plan, minted.clone()));
    accept_each(listener, stop, move |tcp| {
        let shared = Arc::clone(&shared);
        let ledger = ledger.clone();
        async move {
            let (plan, minted) = &*shared;
            let record = serve(plan, minted.as_ref(), &ledger, tcp).await;
            ledger.report(record);
        }
    });
    Ok(RunningProxy { addr, ca, minted })
}

async fn serve(
    plan: &ProxyPlan,
    minted: Option<&Identity>,
    ledger: &Ledger,
    mut client: TcpStream,
) -> HopRecord {
    let component = match plan.mode {
        ProxyMode::Tunnel => "CONNECT proxy (plain tunnel)",
        ProxyMode::Inspecting => "CONNECT proxy (SSL inspection)",
    };
    let mut record = HopRecord::new(Hop::Proxy, component);
    let (target, leftover) = match read_request(&mut client, plan.step_limit).await {
        Ok(request) => request,
        Err(failure) => {
            record.error = Some(failure);
            return record;
        }
    };
    let Some(addr) = plan
        .names
        .iter()
        .find(|(n, _)| *n == target)
        .map(|(_, a)| *a)
    else {
        let _ = client
            .write_all(b"HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\n\r\n")
            .await;
        record.error = Some(Failure::plain(
            FailureKind::Other,
            format!("CONNECT {target}: not in the lab's name table"),
        ));
        return record;
    };
    record.notes.push(format!("CONNECT {target} → {addr}"));
    let stats = Arc::new(WireStats::default());
    let limit = plan.step_limit * TUNNEL_STEPS;
    let copied = match (plan.mode, minted) {
        (ProxyMode::Inspecting, Some(minted)) => {
            if client.write_all(ESTABLISHED).await.is_err() {
                return record;
            }
            let wire = Wire::new(client, leftover, Arc::clone(&stats));
            let Some(mut agent_side) = intercept(plan, minted, wire, &mut record).await else {
                return record;
            };
            let Some(gateway) = dial(addr, plan.step_limit, ledger, &mut record).await else {
                return record;
            };
            let (upstream, leg) =
                upstream_handshake(plan.upstream_trust.clone(), None, gateway, plan.step_limit)
                    .await;
            record.legs.push(leg);
            let Some(mut upstream) = upstream else {
                return record;
            };
            record.notes.push(
                "opened its own TLS session to the gateway: it has no client certificate of the agent to present"
                    .to_string(),
            );
            tunnel(&mut agent_side, &mut upstream, limit).await
        }
        _ => {
            let Some(mut gateway) = dial(addr, plan.step_limit, ledger, &mut record).await else {
                let _ = client
                    .write_all(b"HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\n\r\n")
                    .await;
                return record;
            };
            if client.write_all(ESTABLISHED).await.is_err() {
                return record;
            }
            let mut wire = Wire::new(client, leftover, Arc::clone(&stats));
            tunnel(&mut wire, &mut gateway, limit).await
        }
    };
    match copied {
        Ok((up, down)) => {
            record.bytes_up = up;
            record.bytes_down = down;
        }
        Err(failure) => record.error = Some(failure),
    }
    record
}

/// Read the CONNECT request head (at most 16 KiB, within `limit`): the
/// target and any bytes after the head.
async fn read_request(client: &mut TcpStream, limit: Duration) -> Result<(String, Bytes), Failure> {
    let read = async {
        let mut buf = Vec::with_capacity(1024);
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                return Ok((buf, end + 4));
            }
            if buf.len() > MAX_HEAD {
                return Err(Failure::plain(
                    FailureKind::Other,
                    "request head over 16 KiB",
                ));
            }
            let mut chunk = [0u8; 1024];
            let n = client
                .read(&mut chunk)
                .await
                .map_err(|e| Failure::from_io(&e))?;
            if n == 0 {
                return Err(Failure::plain(
                    FailureKind::Closed,
                    "closed before a request",
                ));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    let (buf, end) = tokio::time::timeout(limit, read)
        .await
        .map_err(|_| Failure::plain(FailureKind::Timeout, "no CONNECT request in time"))??;
    match parse_connect(&buf[..end]) {
        ConnectRequest::Target { host, port } => Ok((
            ServerAddr { host, port }.to_string(),
            Bytes::copy_from_slice(&buf[end..]),
        )),
        _ => Err(Failure::plain(FailureKind::Other, "not a CONNECT request")),
    }
}

async fn intercept(
    plan: &ProxyPlan,
    minted: &Identity,
    wire: Wire<TcpStream>,
    record: &mut HopRecord,
) -> Option<tokio_rustls::server::TlsStream<Wire<TcpStream>>> {
    let sight = Arc::new(ServerSight::default());
    let mut leg = Leg {
        layer: Layer::Outer,
        role: Role::Server,
        sni: None,
        presented: Some(cert_seen(&minted.cert_der)),
        peer_cert: None,
        client_cert_requested: false,
        completed: false,
        failure: None,
    };
    let accepted = match server_config(minted, None, &sight) {
        Ok(config) => {
            let acceptor = TlsAcceptor::from(Arc::new(config));
            tokio::time::timeout(plan.step_limit, acceptor.accept(wire)).await
        }
        Err(e) => Ok(Err(std::io::Error::other(e))),
    };
    let tls = match accepted {
        Ok(Ok(tls)) => {
            leg.completed = true;
            leg.sni = tls.get_ref().1.server_name().map(str::to_string);
            Some(tls)
        }
        Ok(Err(e)) => {
            leg.failure = Some(Failure::from_io(&e));
            None
        }
        Err(_) => {
            leg.failure = Some(Failure::plain(FailureKind::Timeout, "handshake timed out"));
            None
        }
    };
    record.legs.push(leg);
    if tls.is_some() {
        record.notes.push(format!(
            "intercepted the TLS inside the tunnel with a certificate minted by its own CA (SHA-1 {})",
            minted.sha1_hex()
        ));
    }
    tls
}

async fn dial(
    addr: SocketAddr,
    limit: Duration,
    ledger: &Ledger,
    record: &mut HopRecord,
) -> Option<TcpStream> {
    match tokio::time::timeout(limit, TcpStream::connect(addr)).await {
        Ok(Ok(socket)) => {
            ledger.dialed(Hop::Gateway);
            Some(socket)
        }
        Ok(Err(e)) => {
            record.error = Some(Failure::from_io(&e));
            None
        }
        Err(_) => {
            record.error = Some(Failure::plain(FailureKind::Timeout, "connect timed out"));
            None
        }
    }
}

const ESTABLISHED: &[u8] = b"HTTP/1.1 200 Connection established\r\n\r\n";
const MAX_HEAD: usize = 16 * 1024;
/// The tunnel may stay open for this many step limits.
const TUNNEL_STEPS: u32 = 6;
