//! The server: bind every listener and the admin port (reporting the bound
//! addresses), run the accept loops, and drain:
//! `/healthz` turns 503, listeners keep accepting for `drain_delay`, then
//! close, and open connections get up to `drain_timeout`.

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
use crate::admin::{self, AdminState};
use crate::client_limit::ClientTable;
use crate::config::{AdminConfig, Config, ListenerConfig};
use crate::drain::Phase;
use crate::listener::{AcceptContext, ListenerState, accept_loop};
use crate::metrics::Metrics;
use crate::reload::ReloadHandle;
use crate::routing::{Routing, backend_servers};
use crate::slots::Pools;

/// Why a listener or the admin port could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("{name}: cannot listen on {addr}: {source}")]
pub struct BindError {
    /// `listener NAME` or `admin`.
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
    admin: Option<TcpListener>,
    admin_config: AdminConfig,
    routing: watch::Sender<Arc<Routing>>,
    /// Server slots and queues, by backend name, across reloads.
    pools: Arc<Pools>,
    phase: watch::Sender<Phase>,
    metrics: Arc<Metrics>,
    log: AccessLog,
}

impl Server {
    /// Bind every listener and the admin port of `config`. Must be called
    /// inside a tokio runtime.
    pub fn bind(config: &Config, log: AccessLog) -> Result<Server, BindError> {
        let mut listeners = Vec::with_capacity(config.listeners.len());
        for l in &config.listeners {
            let socket = bind_socket(l.bind).map_err(|source| BindError {
                name: format!("listener {}", l.name),
                addr: l.bind,
                source,
            })?;
            let state = ListenerState {
                permits: Arc::new(Semaphore::new(l.max_connections)),
                pending: Arc::new(Semaphore::new(l.max_pending)),
                clients: Arc::new(ClientTable::new(l.client_limit.clone())),
                config: Arc::new(l.clone()),
            };
            listeners.push((Arc::new(state), socket));
        }
        let admin = match config.admin.bind {
            None => None,
            Some(addr) => Some(bind_socket(addr).map_err(|source| BindError {
                name: "admin".to_string(),
                addr,
                source,
            })?),
        };
        let names: Vec<String> = config.listeners.iter().map(|l| l.name.clone()).collect();
        let metrics = Arc::new(Metrics::new(&names, &backend_servers(config)));
        let pools = Arc::new(Pools::new(Arc::clone(&metrics)));
        let routing = Routing::new(config, &pools);
        routing.start_checks();
        let (routing, _) = watch::channel(Arc::new(routing));
        let (phase, _) = watch::channel(Phase::Starting);
        Ok(Server {
            listeners,
            admin,
            admin_config: config.admin.clone(),
            routing,
            pools,
            phase,
            metrics,
            log,
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

    /// The admin endpoint's bound address, if configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|a| a.local_addr().ok())
    }

    /// The metrics this server updates.
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    /// Override the drain timings of the configuration (tests, embedding).
    pub fn set_drain(&mut self, delay: Duration, timeout: Duration) {
        self.admin_config.drain_delay = delay;
        self.admin_config.drain_timeout = timeout;
    }

    /// A handle that swaps routes and backends while the server runs.
    pub fn reload_handle(&self) -> ReloadHandle {
        ReloadHandle {
            routing: self.routing.clone(),
            pools: Arc::clone(&self.pools),
            metrics: Arc::clone(&self.metrics),
            listeners: self
                .listeners
                .iter()
                .map(|(s, _)| ListenerConfig::clone(&s.config))
                .collect(),
        }
    }

    /// Serve until `shutdown` resolves, then drain and return.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let tracker = TaskTracker::new();
        let stop_accepting = CancellationToken::new();
        let stop_connections = CancellationToken::new();
        let stop_admin = CancellationToken::new();
        // Every listener is bound (bind() did it) and the configuration
        // loaded: serving, before anything announces an address.
        self.phase.send_replace(Phase::Serving);
        let mut loops = Vec::with_capacity(self.listeners.len());
        for (state, socket) in self.listeners {
            if let Ok(addr) = socket.local_addr() {
                info!(listener = %state.config.name, %addr, "listening");
            }
            let ctx = AcceptContext {
                routing: self.routing.subscribe(),
                log: self.log.clone(),
                metrics: Arc::clone(&self.metrics),
                tracker: tracker.clone(),
                stop_accepting: stop_accepting.clone(),
                stop_connections: stop_connections.clone(),
            };
            loops.push(tokio::spawn(accept_loop(socket, state, ctx)));
        }
        let admin_task = self.admin.map(|socket| {
            if let Ok(addr) = socket.local_addr() {
                info!(%addr, "admin endpoint listening");
            }
            let state = AdminState {
                phase: self.phase.subscribe(),
                metrics: Arc::clone(&self.metrics),
            };
            tokio::spawn(admin::serve(socket, state, stop_admin.clone()))
        });

        shutdown.await;
        let AdminConfig {
            drain_delay,
            drain_timeout,
            ..
        } = self.admin_config;
        self.phase.send_replace(Phase::Draining);
        if !drain_delay.is_zero() {
            info!(delay = %humantime::format_duration(drain_delay), "draining: /healthz says 503; still accepting so the balancer can move traffic away");
            tokio::time::sleep(drain_delay).await;
        }
        stop_accepting.cancel();
        for l in loops {
            let _ = l.await;
        }
        self.phase.send_replace(Phase::Stopping);
        tracker.close();
        let open = tracker.len();
        if open > 0 {
            info!(open, timeout = %humantime::format_duration(drain_timeout), "listeners closed; waiting for open connections");
        }
        let mut cut = 0;
        if tokio::time::timeout(drain_timeout, tracker.wait())
            .await
            .is_err()
        {
            cut = tracker.len();
            warn!(
                open = cut,
                "drain timeout reached; closing the connections still open"
            );
            stop_connections.cancel();
            tracker.wait().await;
        }
        self.phase.send_replace(Phase::Stopped);
        self.routing.borrow().stop_checks();
        stop_admin.cancel();
        if let Some(task) = admin_task {
            let _ = task.await;
        }
        info!(still_open_at_timeout = cut, "stopped");
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
