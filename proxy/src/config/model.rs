//! The validated configuration as types: what `validate.rs` produces and
//! the rest of the proxy reads. Data only: no parsing, no I/O.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use passthru_net::{ServerAddr, ViaUrl};

use crate::route::RouteConfig;
use crate::trust::TrustedProxies;

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the configuration came from (file path), for messages.
    pub origin: String,
    /// `[[listener]]` tables, in file order.
    pub listeners: Vec<ListenerConfig>,
    /// `[[route]]` tables, in file order.
    pub routes: Vec<RouteConfig>,
    /// `[default].backend`, as an index into `backends`.
    pub default_backend: Option<usize>,
    /// `[[backend]]` tables, in file order.
    pub backends: Vec<BackendConfig>,
    /// `[admin]`: the admin endpoint and the drain sequence.
    pub admin: AdminConfig,
    /// `[tuning] forwarding`.
    pub forwarding: Forwarding,
    /// Non-fatal findings (unreachable routes, …) that `check` prints.
    pub warnings: Vec<String>,
}

/// The admin endpoint and the drain sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// Where `/healthz`, `/readyz` and `/metrics` are served; `None`: nowhere.
    pub bind: Option<SocketAddr>,
    /// After SIGTERM: keep accepting this long while `/healthz` says 503.
    pub drain_delay: Duration,
    /// Then: wait at most this long for open connections.
    pub drain_timeout: Duration,
    /// Unix socket through which a new passthru takes the listening
    /// sockets over (`passthru run --takeover`); `None`: no handoff.
    pub handoff: Option<PathBuf>,
    /// With N > 0: close the listeners as soon as every health monitor seen
    /// in the last minute has had N answers of 503 (`drain_delay` stays the
    /// upper bound); 0 = off.
    pub monitor_fall: u32,
}

/// A backend's active TCP health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthCheck {
    /// Time between checks of one server.
    pub interval: Duration,
    /// Time allowed for one check (TCP connect, through `via` when set).
    pub timeout: Duration,
    /// Consecutive passes that mark a down server up.
    pub rise: u32,
    /// Consecutive failures that mark an up server down.
    pub fall: u32,
}

/// One listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    /// Name used in logs (defaults to the bind address).
    pub name: String,
    /// Address to bind.
    pub bind: SocketAddr,
    /// Time allowed to receive the whole ClientHello.
    pub client_hello_timeout: Duration,
    /// Largest ClientHello accepted, in bytes (all records, headers included).
    pub max_client_hello: usize,
    /// Connections open at once on this listener; beyond it new ones are refused.
    pub max_connections: usize,
    /// Connections accepted but not yet routed (PROXY header and ClientHello
    /// phase); beyond it new ones are refused, so that stalled clients cannot
    /// starve routed ones.
    pub max_pending: usize,
    /// Idle time before TCP keepalive probes on the client side; `None` disables.
    pub tcp_keepalive: Option<Duration>,
    /// Also accept HTTP CONNECT from agents that use passthru as their proxy.
    pub accept_connect: bool,
    /// Follow the TLS handshake in clear and log what it shows.
    pub observe_handshake: bool,
    /// PROXY header expected from the balancer in front.
    pub proxy_protocol: ExpectProxy,
    /// Peers allowed to send that header.
    pub trusted_proxies: TrustedProxies,
    /// Idle timeout of the balancer in front, if known: `check` warns about
    /// keepalive and idle timeouts that exceed it.
    pub front_idle_timeout: Option<Duration>,
    /// `max_connections_per_client` and `client_limit_exempt`.
    pub client_limit: ClientLimit,
}

/// A listener's per-client limit (see "Per-client limit").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientLimit {
    /// Open connections per client address; 0 = no limit.
    pub max_per_client: usize,
    /// Client addresses the limit ignores.
    pub exempt: TrustedProxies,
}

/// A backend's server limits, queue and slow start (see "Server limits
/// and the queue").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Open connections per server; 0 = no limit (and no queue).
    pub max_per_server: usize,
    /// Connections that may wait for a slot, per backend.
    pub max_queue: usize,
    /// How long one may wait.
    pub queue_timeout: Duration,
    /// Ramp of a server that comes up; zero = none.
    pub slow_start: Duration,
}

impl Default for ServerLimits {
    fn default() -> ServerLimits {
        ServerLimits {
            max_per_server: 0,
            max_queue: 10_000,
            queue_timeout: Duration::from_secs(10),
            slow_start: Duration::ZERO,
        }
    }
}

/// `proxy_protocol`: which PROXY header a listener expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectProxy {
    /// None: the TCP peer is the client.
    Off,
    /// A v1 (text) header, and only v1.
    V1,
    /// A v2 (binary) header, and only v2.
    V2,
    /// Either version (but a header all the same).
    Any,
}

/// `send_proxy_protocol`: which PROXY header a backend's servers get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendProxy {
    /// None.
    Off,
    /// v1 (text).
    V1,
    /// v2 (binary), with the SNI as the authority TLV.
    V2,
}

/// `[tuning] forwarding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Forwarding {
    /// Copy, and switch a direction to splice once it carries bulk data.
    #[default]
    Auto,
    /// Always copy through user space.
    Copy,
    /// Splice from the first byte (Linux; copy elsewhere).
    Splice,
}

/// How a backend picks its server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// Each new connection goes to the next server.
    RoundRobin,
    /// The server with the fewest open connections.
    LeastConn,
    /// A hash of the client address picks the server.
    SourceHash,
}

impl Balance {
    /// The name as written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Balance::RoundRobin => "round_robin",
            Balance::LeastConn => "least_conn",
            Balance::SourceHash => "source_hash",
        }
    }
}

/// One backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendConfig {
    /// Unique name.
    pub name: String,
    /// Servers, in file order.
    pub servers: Vec<ServerAddr>,
    /// Balancing mode.
    pub balance: Balance,
    /// Time allowed to connect to one server (name resolution included).
    pub connect_timeout: Duration,
    /// Close a connection with no bytes in either direction for this long; `None` = never.
    pub idle_timeout: Option<Duration>,
    /// Idle time before TCP keepalive probes on the server side (and to the
    /// `via` hop); `None` disables.
    pub tcp_keepalive: Option<Duration>,
    /// Upstream HTTP CONNECT hop.
    pub via: Option<ViaUrl>,
    /// PROXY header written to each server before the ClientHello.
    pub send_proxy_protocol: SendProxy,
    /// Active health check, if any.
    pub health_check: Option<HealthCheck>,
    /// Server limits, queue and slow start.
    pub limits: ServerLimits,
}

impl Config {
    /// The one-line summary `passthru check` prints.
    pub fn summary(&self) -> String {
        let names: usize = self.routes.iter().map(|r| r.server_names.len()).sum();
        let servers: usize = self.backends.iter().map(|b| b.servers.len()).sum();
        let listeners: Vec<String> = self
            .listeners
            .iter()
            .map(|l| {
                if l.name == l.bind.to_string() {
                    l.name.clone()
                } else {
                    format!("{} on {}", l.name, l.bind)
                }
            })
            .collect();
        let default = match self.default_backend {
            Some(i) => format!("default backend {}", self.backends[i].name),
            None => "no default backend".to_string(),
        };
        format!(
            "{}: ok: {} {} ({}), {} {} ({} server {}), {}, {} {} ({} {})",
            self.origin,
            self.listeners.len(),
            plural(self.listeners.len(), "listener", "listeners"),
            listeners.join(", "),
            self.routes.len(),
            plural(self.routes.len(), "route", "routes"),
            names,
            plural(names, "name", "names"),
            default,
            self.backends.len(),
            plural(self.backends.len(), "backend", "backends"),
            servers,
            plural(servers, "server", "servers"),
        )
    }
}

fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}
