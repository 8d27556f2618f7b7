//! The balancer in front of the gateway, in one of three modes:
//! `passthrough` is the real passthru server, in-process, configured through
//! its TOML path; `offload` and `offload-reencrypt` are relays that live
//! here (passthru refuses to offload): they terminate the agent's TLS with
//! the balancer's own certificate and forward the decrypted bytes, in clear
//! or re-encrypted with the balancer's own client certificate — never the
//! agent's, whose private key they do not hold.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use passthru::access_log::{AccessLog, AccessRecord};
use passthru_certs::Identity;
use rustls::pki_types::ServerName;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_util::sync::CancellationToken;

use crate::agent::GATEWAY_NAME;
use crate::observe::{Failure, FailureKind, Hop, HopRecord, Layer, Ledger, Leg, Role};
use crate::tls::{ClientSight, ServerSight, ServerTrust, cert_seen, client_config, server_config};
use crate::wire::{accept_each, bind_error, connect_within, listen, tunnel};

/// What the balancer does with the agent's TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BalancerMode {
    /// Forward the bytes untouched (passthru).
    Passthrough,
    /// Terminate TLS, forward plaintext.
    Offload,
    /// Terminate TLS, open a new TLS session to the gateway.
    OffloadReencrypt,
}

/// What the balancer is configured with.
#[derive(Clone)]
pub struct BalancerPlan {
    /// Where to listen (port 0: any free port).
    pub listen: SocketAddr,
    /// The mode.
    pub mode: BalancerMode,
    /// The balancer's certificate (SAN lb.example.com and gw.example.com).
    pub identity: Identity,
    /// The gateway as passthru's `servers` entry says it (`host:port`).
    pub gateway: String,
    /// passthru's `via` CONNECT hop, if any.
    pub via: Option<SocketAddr>,
    /// How the re-encrypting relay trusts the gateway.
    pub gateway_trust: ServerTrust,
    /// Bound of each step.
    pub step_limit: Duration,
    /// passthru expects PROXY v2 from 127.0.0.1 and sends it on.
    pub proxy_v2: bool,
    /// passthru's listener `tcp_keepalive` (`None`: its default).
    pub tcp_keepalive: Option<Duration>,
}

/// Start the balancer on `plan.listen` until `stop`; returns its address.
pub async fn spawn(
    plan: BalancerPlan,
    ledger: Ledger,
    stop: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    match plan.mode {
        BalancerMode::Passthrough => spawn_passthru(&plan, ledger, stop).await,
        BalancerMode::Offload | BalancerMode::OffloadReencrypt => {
            let listener = listen("balancer", plan.listen).await?;
            let addr = listener.local_addr()?;
            let plan = Arc::new(plan);
            accept_each(listener, stop, move |tcp| {
                let plan = Arc::clone(&plan);
                let ledger = ledger.clone();
                async move {
                    let record = relay(&plan, &ledger, tcp).await;
                    ledger.report(record);
                }
            });
            Ok(addr)
        }
    }
}

/// passthru's configuration for the lab: one listener on `listen`, one route
/// for the gateway's name, one backend (optionally through the CONNECT hop).
pub fn passthru_toml(listen: SocketAddr, gateway: &str, via: Option<SocketAddr>) -> String {
    passthru_toml_with(listen, gateway, via, false, None)
}

/// [`passthru_toml`], with PROXY v2 expected from 127.0.0.1 and sent on
/// (`proxy_v2`) and the listener's `tcp_keepalive`.
pub fn passthru_toml_with(
    listen: SocketAddr,
    gateway: &str,
    via: Option<SocketAddr>,
    proxy_v2: bool,
    tcp_keepalive: Option<Duration>,
) -> String {
    let mut listener = String::new();
    if proxy_v2 {
        listener.push_str("proxy_protocol = \"v2\"\ntrusted_proxies = [\"127.0.0.1/32\"]\n");
    }
    if let Some(keepalive) = tcp_keepalive {
        listener.push_str(&format!(
            "tcp_keepalive = \"{}ms\"\n",
            keepalive.as_millis()
        ));
    }
    let mut text = format!(
        "[[listener]]\nname = \"lab\"\nbind = \"{listen}\"\n{listener}\n\
         [[route]]\nserver_names = [\"{GATEWAY_NAME}\"]\nbackend = \"gateway\"\n\n\
         [[backend]]\nname = \"gateway\"\nservers = [\"{gateway}\"]\nconnect_timeout = \"3s\"\n"
    );
    if proxy_v2 {
        text.push_str("send_proxy_protocol = \"v2\"\n");
    }
    if let Some(via) = via {
        text.push_str(&format!("via = \"http://{via}\"\n"));
    }
    text
}

async fn spawn_passthru(
    plan: &BalancerPlan,
    ledger: Ledger,
    stop: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let text = passthru_toml_with(
        plan.listen,
        &plan.gateway,
        plan.via,
        plan.proxy_v2,
        plan.tcp_keepalive,
    );
    let config = passthru::Config::from_toml(&text, "lb-sim passthru.toml")
        .context("lb-sim's passthru configuration")?;
    let (log, mut records) = AccessLog::channel();
    let mut server = passthru::Server::bind(&config, log)
        .map_err(|e| bind_error("balancer (passthru)", e.addr, &e.source))?;
    server.set_drain(Duration::ZERO, plan.step_limit);
    let addr = server
        .local_addrs()
        .first()
        .map(|(_, addr)| *addr)
        .context("passthru bound no listener")?;
    tokio::spawn(server.run(stop.cancelled_owned()));
    let next = if plan.via.is_some() {
        Hop::Proxy
    } else {
        Hop::Gateway
    };
    tokio::spawn(async move {
        while let Some(access) = records.recv().await {
            if access.server.is_some() {
                ledger.dialed(next);
            }
            ledger.report(passthru_record(&access));
        }
    });
    Ok(addr)
}

fn passthru_record(access: &AccessRecord) -> HopRecord {
    let mut record = HopRecord::new(Hop::Balancer, "passthru (the real proxy, in-process)");
    record.notes.push(format!(
        "read the ClientHello: SNI {}, {}; routed to {}{}; forwarded every byte untouched",
        access.sni.as_deref().unwrap_or("(none)"),
        access.tls_version.unwrap_or("TLS version unknown"),
        access.server.as_deref().unwrap_or("(no server)"),
        access
            .via
            .as_ref()
            .map(|v| format!(" via CONNECT proxy {v}"))
            .unwrap_or_default(),
    ));
    record
        .notes
        .push(format!("access log outcome: {}", access.outcome));
    record.bytes_up = access.bytes_up;
    record.bytes_down = access.bytes_down;
    record
}

async fn relay(plan: &BalancerPlan, ledger: &Ledger, tcp: TcpStream) -> HopRecord {
    let component = match plan.mode {
        BalancerMode::OffloadReencrypt => "offloading balancer (terminates, re-encrypts)",
        _ => "offloading balancer (terminates, forwards plaintext)",
    };
    let mut record = HopRecord::new(Hop::Balancer, component);
    let sight = Arc::new(ServerSight::default());
    let mut front = Leg {
        layer: Layer::Outer,
        role: Role::Server,
        sni: None,
        presented: Some(cert_seen(&plan.identity.cert_der)),
        peer_cert: None,
        client_cert_requested: false,
        completed: false,
        failure: None,
    };
    let accepted = match server_config(&plan.identity, None, &sight) {
        Ok(config) => {
            let acceptor = TlsAcceptor::from(Arc::new(config));
            tokio::time::timeout(plan.step_limit, acceptor.accept(tcp)).await
        }
        Err(e) => {
            record.error = Some(Failure::from_tls(&e));
            return record;
        }
    };
    let mut agent_side = match accepted {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            front.failure = Some(Failure::from_io(&e));
            record.legs.push(front);
            return record;
        }
        Err(_) => {
            front.failure = Some(Failure::plain(FailureKind::Timeout, "handshake timed out"));
            record.legs.push(front);
            return record;
        }
    };
    front.completed = true;
    front.sni = agent_side.get_ref().1.server_name().map(str::to_string);
    record.legs.push(front);

    let dialed = connect_within(&plan.gateway, plan.step_limit, "gateway connect timed out");
    let gateway = match dialed.await {
        Ok(socket) => socket,
        Err(failure) => {
            record.error = Some(failure);
            return record;
        }
    };
    ledger.dialed(Hop::Gateway);
    let limit = plan.step_limit * RELAY_STEPS;
    let copied = if plan.mode == BalancerMode::Offload {
        record.notes.push(
            "terminated the agent's TLS; forwarding the decrypted bytes to the gateway in clear"
                .to_string(),
        );
        let mut gateway = gateway;
        tunnel(&mut agent_side, &mut gateway, limit).await
    } else {
        record.notes.push(
            "terminated the agent's TLS; re-encrypting to the gateway with the balancer's own certificate"
                .to_string(),
        );
        match reencrypt(plan, gateway, &mut record).await {
            Some(mut upstream) => tunnel(&mut agent_side, &mut upstream, limit).await,
            None => return record,
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

async fn reencrypt(
    plan: &BalancerPlan,
    gateway: TcpStream,
    record: &mut HopRecord,
) -> Option<tokio_rustls::client::TlsStream<TcpStream>> {
    let (tls, leg) = upstream_handshake(
        plan.gateway_trust.clone(),
        Some(&plan.identity),
        gateway,
        plan.step_limit,
    )
    .await;
    record.legs.push(leg);
    tls
}

/// A relay's own TLS session to the gateway (also used by the inspecting
/// proxy, which has no client certificate to present).
pub async fn upstream_handshake(
    trust: ServerTrust,
    identity: Option<&Identity>,
    gateway: TcpStream,
    limit: Duration,
) -> (Option<tokio_rustls::client::TlsStream<TcpStream>>, Leg) {
    let sight = Arc::new(ClientSight::default());
    let mut leg = Leg {
        layer: Layer::Upstream,
        role: Role::Client,
        sni: Some(GATEWAY_NAME.to_string()),
        presented: None,
        peer_cert: None,
        client_cert_requested: false,
        completed: false,
        failure: None,
    };
    let connected = match client_config(trust, identity, &sight) {
        Ok(config) => {
            let connector = TlsConnector::from(Arc::new(config));
            let name = ServerName::try_from(GATEWAY_NAME).map(|n| n.to_owned());
            match name {
                Ok(name) => tokio::time::timeout(limit, connector.connect(name, gateway)).await,
                Err(e) => Ok(Err(std::io::Error::other(e))),
            }
        }
        Err(e) => Ok(Err(std::io::Error::other(e))),
    };
    leg.client_cert_requested = sight.asked_for_client_cert.lock().is_ok_and(|a| *a);
    leg.peer_cert = sight.server_cert.lock().ok().and_then(|c| c.clone());
    if leg.client_cert_requested {
        leg.presented = identity.map(|id| cert_seen(&id.cert_der));
    }
    match connected {
        Ok(Ok(tls)) => {
            leg.completed = true;
            (Some(tls), leg)
        }
        Ok(Err(e)) => {
            leg.failure = Some(Failure::from_io(&e));
            (None, leg)
        }
        Err(_) => {
            leg.failure = Some(Failure::plain(FailureKind::Timeout, "handshake timed out"));
            (None, leg)
        }
    }
}

/// The relay's tunnel may stay open for this many step limits.
const RELAY_STEPS: u32 = 6;
