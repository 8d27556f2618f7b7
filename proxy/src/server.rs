//! The server: bind every listener and the admin port (reporting the bound
//! addresses), run the accept loops, and drain:
//! `/healthz` turns 503, listeners keep accepting for `drain_delay`, then
//! close, and open connections get up to `drain_timeout`. Or, when a new
//! process takes the listening sockets over (`handoff`), stop accepting at
//! once without touching `/healthz` and drain.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
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
use crate::handoff::message::Kind;
use crate::handoff::{HandoffServer, Handover, Takeover};
use crate::inherited::Inherited;
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

/// Why [`Server::bind_inheriting`] failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener or the admin port.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// The `[admin] handoff` Unix socket.
    #[error("admin.handoff: cannot listen on {path}: {source}")]
    Handoff {
        /// The socket's path.
        path: PathBuf,
        /// The socket error.
        source: io::Error,
    },
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
    /// Duplicates of the listening sockets, for a handoff.
    handoff_sockets: Vec<(Kind, SocketAddr, OwnedFd)>,
    /// The bound handoff socket (bound after the switch when taking over).
    handoff: Option<HandoffServer>,
    /// The process this one takes over from, told to stop once we accept.
    takeover: Option<Takeover>,
}

impl Server {
    /// Bind every listener and the admin port of `config` (not the
    /// `[admin] handoff` socket: [`Server::bind_inheriting`] serves that).
    /// Must be called inside a tokio runtime.
    pub fn bind(config: &Config, log: AccessLog) -> Result<Server, BindError> {
        Server::bind_sockets(config, log, &mut Inherited::none(), None)
    }

    /// Like [`Server::bind`], but use the `inherited` socket of each
    /// listener (and of the admin port) that has one, and serve the
    /// `[admin] handoff` socket; with `takeover`, tell that process to stop
    /// accepting once this one accepts (and listen on the handoff socket
    /// only then). Sockets no listener claims are left in `inherited`.
    pub fn bind_inheriting(
        config: &Config,
        log: AccessLog,
        inherited: &mut Inherited,
        takeover: Option<Takeover>,
    ) -> Result<Server, StartError> {
        let taking_over = takeover.is_some();
        let mut server = Server::bind_sockets(config, log, inherited, takeover)?;
        if let (Some(path), false) = (&config.admin.handoff, taking_over) {
            server.handoff =
                Some(
                    HandoffServer::bind(path).map_err(|source| StartError::Handoff {
                        path: path.clone(),
                        source,
                    })?,
                );
        }
        Ok(server)
    }

    fn bind_sockets(
        config: &Config,
        log: AccessLog,
        inherited: &mut Inherited,
        takeover: Option<Takeover>,
    ) -> Result<Server, BindError> {
        let mut listeners = Vec::with_capacity(config.listeners.len());
        let mut handoff_sockets = Vec::new();
        for l in &config.listeners {
            let socket = listen(Kind::Listener, l.bind, inherited, &mut handoff_sockets).map_err(
                |source| BindError {
                    name: format!("listener {}", l.name),
                    addr: l.bind,
                    source,
                },
            )?;
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
            Some(addr) => Some(
                listen(Kind::Admin, addr, inherited, &mut handoff_sockets).map_err(|source| {
                    BindError {
                        name: "admin".to_string(),
                        addr,
                        source,
                    }
                })?,
            ),
        };
        let names: Vec<String> = config.listeners.iter().map(|l| l.name.clone()).collect();
        let metrics = Arc::new(Metrics::new(&names, &backend_servers(config)));
        let pools = Arc::new(Pools::new(Arc::clone(&metrics)));
        let routing = Routing::new(config, &pools);
        routing.start_checks(&metrics);
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
            handoff_sockets,
            // Taking over, the path is the running process's until the switch.
            handoff: None,
            takeover,
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
        let handover = Handover {
            sockets: self.handoff_sockets,
            switched: CancellationToken::new(),
            stopped: CancellationToken::new(),
            shutdown: CancellationToken::new(),
        };
        let (switched, stopped) = (handover.switched.clone(), handover.stopped.clone());
        let handoff_shutdown = handover.shutdown.clone();
        let handoff_task = take_over_and_listen(
            self.takeover,
            self.handoff,
            self.admin_config.handoff.clone(),
        )
        .await
        .map(|server| tokio::spawn(server.serve(handover)));

        let AdminConfig {
            drain_delay,
            drain_timeout,
            ..
        } = self.admin_config;
        let handed_over = tokio::select! {
            () = shutdown => false,
            () = switched.cancelled() => true,
        };
        let mut admin_task = admin_task;
        if handed_over {
            // A new process accepts on the same sockets: stop at once,
            // admin included, and leave /healthz as it is.
            stop_admin.cancel();
            if let Some(task) = admin_task.take() {
                let _ = task.await;
            }
        } else {
            handoff_shutdown.cancel();
            self.phase.send_replace(Phase::Draining);
            if !drain_delay.is_zero() {
                info!(delay = %humantime::format_duration(drain_delay), "draining: /healthz says 503; still accepting so the balancer can move traffic away");
                tokio::time::sleep(drain_delay).await;
            }
        }
        stop_accepting.cancel();
        for l in loops {
            let _ = l.await;
        }
        stopped.cancel();
        if let Some(task) = handoff_task {
            let _ = task.await;
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

/// When taking over: tell the running process to stop accepting (this one
/// accepts already), then listen on the handoff path it leaves. The handoff
/// server to run, if any.
async fn take_over_and_listen(
    takeover: Option<Takeover>,
    bound: Option<HandoffServer>,
    path: Option<PathBuf>,
) -> Option<HandoffServer> {
    let Some(takeover) = takeover else {
        return bound;
    };
    match takeover.switch().await {
        Ok(()) => info!("took over: the previous process stopped accepting and drains"),
        Err(error) => {
            warn!(%error, "took over, but the previous process did not confirm it stopped accepting")
        }
    }
    let path = path?;
    match HandoffServer::bind(&path) {
        Ok(server) => Some(server),
        Err(error) => {
            warn!(path = %path.display(), %error, "cannot listen on the handoff socket; the next upgrade cannot take over from this process");
            None
        }
    }
}

/// The listening socket for `kind` at `addr`: inherited if there is one,
/// else bound; a duplicate is kept in `dups` for a later handoff.
fn listen(
    kind: Kind,
    addr: SocketAddr,
    inherited: &mut Inherited,
    dups: &mut Vec<(Kind, SocketAddr, OwnedFd)>,
) -> io::Result<TcpListener> {
    let socket = match inherited.take(kind, addr) {
        Some(socket) => {
            info!(%addr, "using an inherited socket");
            socket
        }
        None => bind_socket(addr)?,
    };
    dups.push((kind, addr, OwnedFd::from(socket.try_clone()?)));
    TcpListener::from_std(socket)
}

fn bind_socket(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

const BACKLOG: i32 = 4096;
