//! Starts the components of one path — backend, gateway, optional CONNECT
//! proxy, balancer — from the back to the front, wiring each one's bound
//! address into the one before it, and stops them together.
//!
//! # Ports
//!
//! Every component listens on 127.0.0.1. With [`Ports::any`] (scenario runs,
//! and `serve` without `--port-base`) each binds port 0 and the system picks
//! a free port. With [`Ports::from_base`]`(N)` (`serve --port-base N`) the
//! ports are fixed, one slot per component whatever the path:
//!
//! - N: the front, what clients connect to: the balancer (passthru or
//!   relay), or the CONNECT proxy on a path without one (`inspecting-proxy`);
//! - N+1: the gateway;
//! - N+2: the backend;
//! - N+3: the CONNECT proxy behind the balancer (`connect-hop`).
//!
//! A slot a path does not use stays free; a port already in use fails
//! [`Topology::start_at`] with an error naming the component and the port.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use passthru_certs::LabPki;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::agent::Entry;
use crate::backend::{self, BackendPlan};
use crate::balancer::{self, BalancerMode, BalancerPlan};
use crate::connect_proxy::{self, ProxyMode, ProxyPlan, RunningProxy};
use crate::front::{self, FrontPlan};
use crate::gateway::{self, ClientCheck, GatewayPlan};
use crate::observe::{Hop, Ledger};
use crate::real::{self, Implementation, RealBalancer, RealPlan};
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
    /// agent → layer-4 balancer dropping idle flows → passthru → gateway → backend.
    IdleReset,
    /// agents → source-NATting layer-4 balancer → passthru → gateway → backend.
    Snat,
    /// headless Chromium → counting relay → passthru → TLS server, in a
    /// private network namespace with a small MTU (not a [`Topology`]).
    PostQuantum,
}

/// Settings of a run beyond its path: who plays the offloading balancer,
/// the layer-4 balancer in front of passthru, and passthru's own keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Knobs {
    /// HAProxy, nginx or the built-in relay (offloading paths).
    pub implementation: Implementation,
    /// The layer-4 balancer drops flows idle longer than this.
    pub idle_timeout: Option<Duration>,
    /// The layer-4 balancer sends PROXY v2; passthru expects it and sends
    /// it on (`send_proxy_protocol = "v2"`); the gateway reads it.
    pub proxy_v2: bool,
    /// passthru's listener `tcp_keepalive` (`None`: passthru's default).
    pub tcp_keepalive: Option<Duration>,
}

impl Path {
    /// Every path, in the order scenarios and `serve --mode` list them.
    pub const ALL: [Path; 8] = [
        Path::Passthrough,
        Path::Offload,
        Path::OffloadReencrypt,
        Path::ConnectHop,
        Path::InspectingProxy,
        Path::IdleReset,
        Path::Snat,
        Path::PostQuantum,
    ];

    /// Its name (`serve --mode`).
    pub fn as_str(self) -> &'static str {
        match self {
            Path::Passthrough => "passthrough",
            Path::Offload => "offload",
            Path::OffloadReencrypt => "offload-reencrypt",
            Path::ConnectHop => "connect-hop",
            Path::InspectingProxy => "inspecting-proxy",
            Path::IdleReset => "idle-reset",
            Path::Snat => "snat",
            Path::PostQuantum => "post-quantum",
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
            Path::IdleReset | Path::Snat => vec![
                Hop::Agent,
                Hop::Front,
                Hop::Balancer,
                Hop::Gateway,
                Hop::Backend,
            ],
            Path::PostQuantum => vec![Hop::Agent, Hop::Front, Hop::Balancer, Hop::Gateway],
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
            Path::IdleReset => "agent → L4 LB (idle timeout) → passthru → gateway → backend",
            Path::Snat => "agent → L4 LB (source NAT) → passthru → gateway → backend",
            Path::PostQuantum => {
                "Chromium → counting relay → passthru → TLS server (netns, MTU 1280)"
            }
        }
    }
}

/// Which 127.0.0.1 ports a topology's components listen on (see the
/// module documentation for the order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ports {
    base: Option<u16>,
}

/// `--port-base N` out of range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortBaseError(String);

impl fmt::Display for PortBaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PortBaseError {}

impl Ports {
    /// How many consecutive ports from the base a topology may use.
    pub const SPAN: u16 = 4;
    /// The highest base that leaves room for [`Ports::SPAN`] ports.
    pub const MAX_BASE: u16 = u16::MAX - (Ports::SPAN - 1);

    /// Port 0 everywhere: the system picks free ports.
    pub fn any() -> Ports {
        Ports { base: None }
    }

    /// Fixed ports from `base` (1..=[`Ports::MAX_BASE`]).
    pub fn from_base(base: u16) -> Result<Ports, PortBaseError> {
        if base == 0 || base > Ports::MAX_BASE {
            return Err(PortBaseError(format!(
                "port base {base} is out of range: it must be 1 to {} since the lab listens on N to N+{}",
                Ports::MAX_BASE,
                Ports::SPAN - 1
            )));
        }
        Ok(Ports { base: Some(base) })
    }

    /// The base, if fixed.
    pub fn base(self) -> Option<u16> {
        self.base
    }

    /// Where the component in `slot` (0 to SPAN-1) listens.
    fn slot(self, slot: u16) -> SocketAddr {
        let port = self.base.map_or(0, |base| base.saturating_add(slot));
        SocketAddr::from((Ipv4Addr::LOCALHOST, port))
    }

    /// The front: the balancer, or the proxy on a path without one.
    pub fn front(self) -> SocketAddr {
        self.slot(0)
    }

    /// The gateway.
    pub fn gateway(self) -> SocketAddr {
        self.slot(1)
    }

    /// The backend.
    pub fn backend(self) -> SocketAddr {
        self.slot(2)
    }

    /// The CONNECT proxy of `path`: the front when no balancer precedes it.
    pub fn proxy(self, path: Path) -> SocketAddr {
        match path {
            Path::InspectingProxy => self.front(),
            _ => self.slot(3),
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
    /// HAProxy or nginx, when one plays the balancer.
    pub real: Option<RealBalancer>,
    stop: CancellationToken,
}

impl Topology {
    /// Start every component of `path` for the lab `pki` on ports the
    /// system picks; the gateway applies `check` after validating the client
    /// chain. Returns once all are bound.
    pub async fn start(
        path: Path,
        pki: &LabPki,
        check: ClientCheck,
        step_limit: Duration,
    ) -> anyhow::Result<Topology> {
        Topology::start_with(path, Knobs::default(), pki, check, step_limit, Ports::any()).await
    }

    /// [`Topology::start`] on `ports`. When a component cannot bind, the
    /// ones already started are stopped and the error names the component
    /// and its address.
    pub async fn start_at(
        path: Path,
        pki: &LabPki,
        check: ClientCheck,
        step_limit: Duration,
        ports: Ports,
    ) -> anyhow::Result<Topology> {
        Topology::start_with(path, Knobs::default(), pki, check, step_limit, ports).await
    }

    /// [`Topology::start_at`] with `knobs`: HAProxy or nginx on a free port
    /// instead of the relay; the layer-4 balancer's and passthru's settings.
    pub async fn start_with(
        path: Path,
        knobs: Knobs,
        pki: &LabPki,
        check: ClientCheck,
        step_limit: Duration,
        ports: Ports,
    ) -> anyhow::Result<Topology> {
        let implementation = knobs.implementation;
        let real_plan = |gateway| RealPlan {
            implementation,
            reencrypt: path == Path::OffloadReencrypt,
            gateway,
        };
        let external = implementation != Implementation::Builtin;
        if path == Path::PostQuantum {
            anyhow::bail!("post-quantum runs in its own network namespace, not as a topology");
        }
        if external && !matches!(path, Path::Offload | Path::OffloadReencrypt) {
            anyhow::bail!(
                "{} can only play the offloading balancer, not {}",
                implementation.name(),
                path.as_str()
            );
        }
        let ledger = Ledger::new();
        let stop = CancellationToken::new();
        // Stops whatever started if a later component fails to bind.
        let started = stop.clone().drop_guard();
        let lab_root = roots(&[&pki.root_ca.cert_der])?;
        let backend = backend::spawn(
            BackendPlan {
                listen: ports.backend(),
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
                listen: ports.gateway(),
                identity: pki.gateway.clone(),
                client_roots: lab_root,
                check,
                backend,
                step_limit,
                counts_accepts: external,
                proxy_v2: knobs.proxy_v2,
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
                        listen: ports.proxy(path),
                        mode,
                        names: vec![(GATEWAY_TARGET.to_string(), gateway)],
                        upstream_trust: gateway_pin.clone(),
                        step_limit,
                    },
                    pki,
                    ledger.clone(),
                    stop.clone(),
                )
                .await?,
            ),
        };
        let balancer_mode = match path {
            Path::Passthrough | Path::ConnectHop | Path::IdleReset | Path::Snat => {
                Some(BalancerMode::Passthrough)
            }
            Path::Offload => Some(BalancerMode::Offload),
            Path::OffloadReencrypt => Some(BalancerMode::OffloadReencrypt),
            Path::InspectingProxy | Path::PostQuantum => None,
        };
        let via = proxy
            .as_ref()
            .map(|p| p.addr)
            .filter(|_| path == Path::ConnectHop);
        let real = if external {
            Some(real::spawn(real_plan(gateway), pki).await?)
        } else {
            None
        };
        let balancer = match (balancer_mode, &real) {
            (_, Some(real)) => Some(real.addr),
            (None, None) => None,
            (Some(mode), None) => Some(
                balancer::spawn(
                    BalancerPlan {
                        listen: match path {
                            Path::IdleReset | Path::Snat => ports.proxy(path),
                            _ => ports.front(),
                        },
                        mode,
                        identity: pki.balancer.clone(),
                        gateway: match via {
                            Some(_) => GATEWAY_TARGET.to_string(),
                            None => gateway.to_string(),
                        },
                        via,
                        gateway_trust: gateway_pin,
                        step_limit,
                        proxy_v2: knobs.proxy_v2,
                        tcp_keepalive: knobs.tcp_keepalive,
                    },
                    ledger.clone(),
                    stop.clone(),
                )
                .await?,
            ),
        };
        let front = match (path, balancer) {
            (Path::IdleReset | Path::Snat, Some(passthru)) => Some(
                front::spawn(
                    FrontPlan {
                        listen: ports.front(),
                        passthru,
                        idle_timeout: knobs.idle_timeout,
                        proxy_v2: knobs.proxy_v2,
                        step_limit,
                    },
                    ledger.clone(),
                    stop.clone(),
                )
                .await?,
            ),
            _ => None,
        };
        let (entry, first_hop) = match (front, balancer, &proxy) {
            (Some(addr), _, _) => (Entry::Direct(addr), Hop::Front),
            (None, Some(addr), _) => (Entry::Direct(addr), Hop::Balancer),
            (None, None, Some(proxy)) => (
                Entry::Connect {
                    proxy: proxy.addr,
                    target: GATEWAY_TARGET.to_string(),
                },
                Hop::Proxy,
            ),
            (None, None, None) => (Entry::Direct(gateway), Hop::Gateway),
        };
        started.disarm();
        Ok(Topology {
            path,
            entry,
            first_hop,
            ledger,
            balancer,
            proxy,
            gateway,
            backend,
            real,
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
