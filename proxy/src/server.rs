//! The server: bind every listener (reporting the bound addresses), run
//! the accept loops, swap routes on reload, and stop gracefully.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::access_log::AccessLog;
use crate::backend::Backend;
use crate::config::{Config, ListenerConfig};
use crate::listener::{AcceptContext, accept_loop};
use crate::route::RouteTable;

/// A listener's settings and its connection permits.
#[derive(Debug)]
pub struct ListenerState {
    /// Validated settings.
    pub config: ListenerConfig,
    /// One permit per allowed open connection (`max_connections`).
    pub permits: Arc<Semaphore>,
}

/// Routes and backends: what a reload replaces. Each connection takes the
/// current one when it is accepted and keeps it to the end.
#[derive(Debug)]
pub struct Routing {
    /// The route table.
    pub table: RouteTable,
    /// Backends, indexed as in the configuration.
    pub backends: Vec<Arc<Backend>>,
}

impl Routing {
    /// Build from a validated configuration.
    pub fn new(config: &Config) -> Routing {
        Routing {
            table: RouteTable::new(config),
            backends: config
                .backends
                .iter()
                .cloned()
                .map(|b| Arc::new(Backend::new(b)))
                .collect(),
        }
    }
}

/// Why a listener could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("listener {name}: cannot listen on {addr}: {source}")]
pub struct BindError {
    /// Listener name.
    pub name: String,
    /// Address asked for.
    pub addr: SocketAddr,
    /// The socket error.
    pub source: io::Error,
}

/// A bound, not yet running, proxy.
#[derive(Debug)]
pub struct Server {
    listeners: Vec<(Arc<ListenerState>, TcpListener)>,
    routing: watch::Sender<Arc<Routing>>,
    log: AccessLog,
    drain_timeout: Duration,
}

impl Server {
    /// Bind every listener of `config`. Must be called inside a tokio runtime.
    pub fn bind(config: &Config, log: AccessLog) -> Result<Server, BindError> {
        let mut listeners = Vec::with_capacity(config.listeners.len());
        for l in &config.listeners {
            let socket = bind_socket(l.bind).map_err(|source| BindError {
                name: l.name.clone(),
                addr: l.bind,
                source,
            })?;
            let state = ListenerState {
                permits: Arc::new(Semaphore::new(l.max_connections)),
                config: l.clone(),
            };
            listeners.push((Arc::new(state), socket));
        }
        let (routing, _) = watch::channel(Arc::new(Routing::new(config)));
        Ok(Server {
            listeners,
            routing,
            log,
            drain_timeout: DRAIN_TIMEOUT,
        })
    }

    /// The bound addresses, by listener name, in configuration order.
    pub fn local_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.listeners
            .iter()
            .filter_map(|(state, socket)| {
                Some((state.config.name.clone(), socket.local_addr().ok()?))
            })
            .collect()
    }

    /// How long `run` waits for open connections after `shutdown` resolves.
    pub fn set_drain_timeout(&mut self, timeout: Duration) {
        self.drain_timeout = timeout;
    }

    /// A handle that swaps routes and backends while the server runs.
    pub fn reload_handle(&self) -> ReloadHandle {
        ReloadHandle {
            routing: self.routing.clone(),
            listeners: self
                .listeners
                .iter()
                .map(|(s, _)| s.config.clone())
                .collect(),
        }
    }

    /// Serve until `shutdown` resolves, then stop accepting, give open
    /// connections up to the drain timeout, and return.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let tracker = TaskTracker::new();
        let stop_accepting = CancellationToken::new();
        let stop_connections = CancellationToken::new();
        let mut loops = Vec::with_capacity(self.listeners.len());
        for (state, socket) in self.listeners {
            if let Ok(addr) = socket.local_addr() {
                info!(listener = %state.config.name, %addr, "listening");
            }
            let ctx = AcceptContext {
                routing: self.routing.subscribe(),
                log: self.log.clone(),
                tracker: tracker.clone(),
                stop_accepting: stop_accepting.clone(),
                stop_connections: stop_connections.clone(),
            };
            loops.push(tokio::spawn(accept_loop(socket, state, ctx)));
        }
        shutdown.await;
        stop_accepting.cancel();
        for l in loops {
            let _ = l.await;
        }
        tracker.close();
        let open = tracker.len();
        if open > 0 {
            info!(open, timeout = %humantime::format_duration(self.drain_timeout), "stopped accepting; waiting for open connections");
        }
        if tokio::time::timeout(self.drain_timeout, tracker.wait())
            .await
            .is_err()
        {
            warn!(
                open = tracker.len(),
                "drain timeout reached; closing the connections still open"
            );
            stop_connections.cancel();
            tracker.wait().await;
        }
        info!("stopped");
    }
}

/// Applies a new configuration's routes and backends to a running server.
#[derive(Debug, Clone)]
pub struct ReloadHandle {
    routing: watch::Sender<Arc<Routing>>,
    listeners: Vec<ListenerConfig>,
}

impl ReloadHandle {
    /// Swap in the routes and backends of `config`. New connections use
    /// them; open connections keep theirs. Listener changes cannot be
    /// applied to bound sockets: they are returned as warnings.
    pub fn apply(&self, config: &Config) -> Vec<String> {
        self.routing.send_replace(Arc::new(Routing::new(config)));
        let mut warnings = Vec::new();
        if config.listeners != self.listeners {
            warnings.push(format!(
                "{}: listener settings changed; they take effect only after a restart",
                config.origin
            ));
        }
        warnings
    }
}

fn bind_socket(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

const BACKLOG: i32 = 4096;
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
