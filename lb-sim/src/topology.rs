//! Starts the components of one path on 127.0.0.1:0 — backend, gateway,
//! optional CONNECT proxy, balancer — from the back to the front, wiring each
//! one's bound address into the one before it, and stops them together.

use std::net::SocketAddr;
use std::time::Duration;

use passthru_certs::LabPki;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::agent::Entry;
use crate::backend::{self, BackendPlan};
use crate::balancer::{self, BalancerMode, BalancerPlan};
use crate::connect_proxy::{self, ProxyMode, ProxyPlan, RunningProxy};
use crate::gateway::{self, ClientCheck, GatewayPlan};
use crate::observe::{Hop, Ledger};
use crate::tls::{ServerTrust, roots};

/// The arrangement between the agent and the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Path {
    /// agent → passthru → gateway → backend.
    Passthrough,
    /// agent → offloading balancer (plaintext onward) → gateway.
    Offload,
    /// agent → offloading balancer (re-encrypts) → gateway → backend.
    OffloadReencrypt,
    /// agent → passthru → CONNECT proxy → gateway → backend.
    ConnectHop,
    /// agent → (CONNECT) inspecting proxy → gateway.
    InspectingProxy,
}

impl Path {
    /// Every path, in the order scenarios and `serve --mode` list them.
    pub const ALL: [Path; 5] = [
        Path::Passthrough,
        Path::Offload,
        Path::OffloadReencrypt,
        Path::ConnectHop,
        Path::InspectingProxy,
    ];

    /// Its name (`serve --mode`).
    pub fn as_str(self) -> &'static str {
        match self {
            Path::Passthrough => "passthrough",
            Path::Offload => "offload",
            Path::OffloadReencrypt => "offload-reencrypt",
            Path::ConnectHop => "connect-hop",
            Path::InspectingProxy => "inspecting-proxy",
        }
    }

    /// The hops on it, agent first.
    pub fn hops(self) -> Vec<Hop> {
        match self {
            Path::Passthrough | Path::Offload | Path::OffloadReencrypt => {
                vec![Hop::Agent, Hop::Balancer, Hop::Gateway, Hop::Backend]
            }
            Path::ConnectHop => vec![
                Hop::Agent,
                Hop::Balancer,
                Hop::Proxy,
                Hop::Gateway,
                Hop::Backend,
            ],
            Path::InspectingProxy => vec![Hop::Agent, Hop::Proxy, Hop::Gateway, Hop::Backend],
        }
    }

    /// The path in words, for the table.
    pub fn describe(self) -> &'static str {
        match self {
            Path::Passthrough => "agent → passthru → gateway → backend",
            Path::Offload => "agent → offload LB → gateway → backend",
            Path::OffloadReencrypt => "agent → re-encrypting LB → gateway → backend",
            Path::ConnectHop => "agent → passthru → CONNECT proxy → gateway → backend",
            Path::InspectingProxy => "agent → inspecting proxy → gateway → backend",
        }
    }
}

/// A running set of components.
#[derive(Debug)]
pub struct Topology {
    /// The arrangement.
    pub path: Path,
    /// How the agent reaches the first hop.
    pub entry: Entry,
    /// The hop the agent connects to.
    pub first_hop: Hop,
    /// Where the components report.
    pub ledger: Ledger,
    /// The balancer's address (passthru or relay).
    pub balancer: Option<SocketAddr>,
    /// The CONNECT proxy.
    pub proxy: Option<RunningProxy>,
    /// The gateway's address.
    pub gateway: SocketAddr,
    /// The backend's address.
    pub backend: SocketAddr,
    stop: CancellationToken,
}

impl Topology {
    /// Start every component of `path` for the lab `pki`; the gateway applies
    /// `check` after validating the client chain. Returns once all are bound.
    pub async fn start(
        path: Path,
        pki: &LabPki,
        check: ClientCheck,
        step_limit: Duration,
    ) -> anyhow::Result<Topology> {
        let ledger = Ledger::new();
        let stop = CancellationToken::new();
        let lab_root = roots(&[&pki.root_ca.cert_der])?;
        let backend = backend::spawn(
            BackendPlan {
                identity: pki.backend.clone(),
                client_roots: lab_root.clone(),
                step_limit,
            },
            ledger.clone(),
            stop.clone(),
        )
        .await?;
        let gateway = gateway::spawn(
            GatewayPlan {
                identity: pki.gateway.clone(),
                client_roots: lab_root,
                check,
                backend,
                step_limit,
            },
            ledger.clone(),
            stop.clone(),
        )
        .await?;
        let gateway_pin = ServerTrust::Pinned(pki.gateway.sha1_hex());
        let proxy_mode = match path {
            Path::ConnectHop => Some(ProxyMode::Tunnel),
            Path::InspectingProxy => Some(ProxyMode::Inspecting),
            _ => None,
        };
        let proxy = match proxy_mode {
            None => None,
            Some(mode) => Some(
                connect_proxy::spawn(
                    ProxyPlan {
                        mode,
                        names: vec![(GATEWAY_TARGET.to_string(), gateway)],
                        upstream_trust: gateway_pin.clone(),
                        step_limit,
                    },
                    ledger.clone(),
                    stop.clone(),
                )
                .await?,
            ),
        };
        let balancer_mode = match path {
            Path::Passthrough | Path::ConnectHop => Some(BalancerMode::Passthrough),
            Path::Offload => Some(BalancerMode::Offload),
            Path::OffloadReencrypt => Some(BalancerMode::OffloadReencrypt),
            Path::InspectingProxy => None,
        };
        let via = proxy
            .as_ref()
            .map(|p| p.addr)
            .filter(|_| path == Path::ConnectHop);
        let balancer = match balancer_mode {
            None => None,
            Some(mode) => Some(
                balancer::spawn(
                    BalancerPlan {
                        mode,
                        identity: pki.balancer.clone(),
                        gateway: match via {
                            Some(_) => GATEWAY_TARGET.to_string(),
                            None => gateway.to_string(),
                        },
                        via,
                        gateway_trust: gateway_pin,
                        step_limit,
                    },
                    ledger.clone(),
                    stop.clone(),
                )
                .await?,
            ),
        };
        let (entry, first_hop) = match (balancer, &proxy) {
            (Some(addr), _) => (Entry::Direct(addr), Hop::Balancer),
            (None, Some(proxy)) => (
                Entry::Connect {
                    proxy: proxy.addr,
                    target: GATEWAY_TARGET.to_string(),
                },
                Hop::Proxy,
            ),
            (None, None) => (Entry::Direct(gateway), Hop::Gateway),
        };
        Ok(Topology {
            path,
            entry,
            first_hop,
            ledger,
            balancer,
            proxy,
            gateway,
            backend,
            stop,
        })
    }

    /// Stop every component (listeners and open connections).
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// What agents and passthru ask a CONNECT proxy for: the gateway's public
/// name and port, which the proxy resolves from the lab's table.
pub const GATEWAY_TARGET: &str = "gw.example.com:443";
