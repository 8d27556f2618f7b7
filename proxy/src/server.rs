//! The server: bind every listener and the admin port (reporting the bound
//! addresses), run the accept loops, and drain:
//! `/healthz` turns 503, listeners keep accepting for `drain_delay` (or,
//! with `monitor_fall`, until every recent monitor has seen the 503s), then
//! close, and open connections get up to `drain_timeout`; a second signal
//! cuts it short. Every access line is flushed before `run` returns. Or,
//! when a new process takes the listening sockets over (`handoff`), stop
//! accepting at once without touching `/healthz`, and drain.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::access_log::AccessLog;
use crate::admin::{self, AdminState};
use crate::client_limit::ClientTable;
use crate::config::{AdminConfig, Config, ListenerConfig};
use crate::drain::{Monitors, Phase};
use crate::handoff::{HandoffServer, Handover, Takeover};
use crate::inherited::{Inherited, Kind};
use crate::listener::{AcceptContext, ListenerState, accept_loop};
use crate::metrics::Metrics;
use crate::reload::ReloadHandle;
use crate::routing::{Routing, backend_servers};
use crate::slots::Pools;
use crate::workers::Placement;

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
    /// `[admin]` as loaded; a reload replaces the drain settings in it.
    admin_config: watch::Sender<AdminConfig>,
    /// The listeners as the file has them (a reload compares with these).
    configured: Vec<ListenerConfig>,
    /// Who polls `/healthz` (`monitor_fall`).
    monitors: Arc<Monitors>,
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
    /// Other runtimes that run connections too (see `workers`).
    workers: Vec<Handle>,
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
            accepted_options(&socket, l.tcp_keepalive);
            let mut running = l.clone();
            // A listener without a name is named by its address: with port 0
            // that is the port the system chose, not `…:0`.
            if let (true, Ok(bound)) = (
                l.bind.port() == 0 && l.name == l.bind.to_string(),
                socket.local_addr(),
            ) {
                running.name = bound.to_string();
            }
            let state = ListenerState {
                permits: Arc::new(Semaphore::new(l.max_connections)),
                pending: Arc::new(Semaphore::new(l.max_pending)),
                clients: Arc::new(ClientTable::new(l.client_limit.clone())),
                config: Arc::new(running),
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
        let names: Vec<String> = listeners
            .iter()
            .map(|(s, _)| s.config.name.clone())
            .collect();
        let metrics = Arc::new(Metrics::new(&names, &backend_servers(config)));
        let pools = Arc::new(Pools::new(Arc::clone(&metrics)));
        let routing = Routing::new(config, &pools);
        routing.start_checks();
        let (routing, _) = watch::channel(Arc::new(routing));
        let (phase, _) = watch::channel(Phase::Starting);
        Ok(Server {
            listeners,
            admin,
            admin_config: watch::Sender::new(config.admin.clone()),
            configured: config.listeners.clone(),
            monitors: Arc::default(),
            routing,
            pools,
            phase,
            metrics,
            log,
            handoff_sockets,
            // Taking over, the path is the running process's until the switch.
            handoff: None,
            takeover,
            workers: Vec::new(),
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
        self.admin_config.send_modify(|a| {
            a.drain_delay = delay;
            a.drain_timeout = timeout;
        });
    }

    /// A handle that swaps routes and backends while the server runs.
    pub fn reload_handle(&self) -> ReloadHandle {
        ReloadHandle {
            routing: self.routing.clone(),
            pools: Arc::clone(&self.pools),
            metrics: Arc::clone(&self.metrics),
            admin: self.admin_config.clone(),
            listeners: self.configured.clone(),
        }
    }

    /// Run connections on these runtimes too (besides the one that runs
    /// the server and accepts), as [`Placement`] decides.
    pub fn spread_over(mut self, workers: Vec<Handle>) -> Server {
        self.workers = workers;
        self
    }

    /// Serve until `shutdown` resolves, then drain and return.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        self.run_until(shutdown, std::future::pending()).await;
    }

    /// Serve until `shutdown` resolves, then drain and return; `hurry`
    /// (a second signal) ends the drain at once, cutting open connections.
    /// Every access line is written and stdout flushed before it returns.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()>,
        hurry: impl Future<Output = ()>,
    ) {
        let tracker = TaskTracker::new();
        let stop_accepting = CancellationToken::new();
        let stop_connections = CancellationToken::new();
        let stop_admin = CancellationToken::new();
        // Every listener is bound (bind() did it) and the configuration
        // loaded: serving, before anything announces an address.
        self.phase.send_replace(Phase::Serving);
        let mut loops = Vec::with_capacity(self.listeners.len());
        // Built once for every listener: the open-connection counts are
        // the threads'.
        let placement = Placement::new(&self.workers, &stop_connections, &tracker);
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
                placement: placement.clone(),
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
                monitors: Arc::clone(&self.monitors),
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
        let drain = self.admin_config.borrow().clone();
        let handoff_task = take_over_and_listen(self.takeover, self.handoff, drain.handoff)
            .await
            .map(|server| tokio::spawn(server.serve(handover)));

        tokio::pin!(shutdown);
        tokio::pin!(hurry);
        let handed_over = tokio::select! {
            () = &mut shutdown => false,
            () = switched.cancelled() => true,
        };
        let started = Instant::now();
        let mut admin_task = admin_task;
        let why = if handed_over {
            // A new process accepts on the same sockets: stop at once,
            // admin included, and leave /healthz as it is.
            stop_admin.cancel();
            if let Some(task) = admin_task.take() {
                let _ = task.await;
            }
            Why::Handoff
        } else {
            handoff_shutdown.cancel();
            self.phase.send_replace(Phase::Draining);
            let drain = self.admin_config.borrow().clone();
            hold_listeners(&self.monitors, &drain, hurry.as_mut()).await
        };
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
        info!(after = %format_args!("{:.3}s", started.elapsed().as_secs_f64()), why = %why, open, "listeners closed");
        // A reload during the drain may have changed drain_timeout.
        let drain_timeout = self.admin_config.borrow().drain_timeout;
        if open > 0 && why != Why::Hurry {
            info!(open, timeout = %humantime::format_duration(drain_timeout), "waiting for open connections");
        }
        let mut cut = 0;
        let mut hurried = why == Why::Hurry;
        let finished = !hurried
            && tokio::select! {
                r = tokio::time::timeout(drain_timeout, tracker.wait()) => r.is_ok(),
                () = &mut hurry => {
                    hurried = true;
                    false
                }
                // Handed over, the first signal is the one that hurries.
                () = &mut shutdown, if handed_over => {
                    hurried = true;
                    false
                }
            };
        if !finished {
            cut = tracker.len();
            if cut > 0 {
                warn!(
                    open = cut,
                    "{}; closing the connections still open",
                    if hurried && handed_over {
                        "signal after the handoff"
                    } else if hurried {
                        "second signal"
                    } else {
                        "drain timeout reached"
                    }
                );
            }
            stop_connections.cancel();
            tracker.wait().await;
        }
        self.phase.send_replace(Phase::Stopped);
        self.routing.borrow().stop_checks();
        stop_admin.cancel();
        if let Some(task) = admin_task {
            let _ = task.await;
        }
        // Every connection has written its line: make sure it reaches stdout.
        let log = self.log.clone();
        let flushed = tokio::task::spawn_blocking(move || log.flush(FLUSH_LIMIT))
            .await
            .unwrap_or(false);
        if !flushed {
            warn!(limit = ?FLUSH_LIMIT, "stdout did not take the last access-log lines in time");
        }
        info!(still_open_at_timeout = cut, "stopped");
    }
}

/// While draining: keep the listeners open for `drain_delay`, or with
/// `monitor_fall` until every recent monitor has seen the 503s (plus
/// [`IN_FLIGHT_GRACE`]), or until `hurry`. Says why it ended.
async fn hold_listeners(
    monitors: &Monitors,
    drain: &AdminConfig,
    hurry: std::pin::Pin<&mut impl Future<Output = ()>>,
) -> Why {
    let deadline = Instant::now() + drain.drain_delay;
    if drain.drain_delay.is_zero() {
        return Why::DrainDelay;
    }
    if drain.monitor_fall > 0 {
        info!(delay = %humantime::format_duration(drain.drain_delay), monitor_fall = drain.monitor_fall, "draining: /healthz says 503; still accepting until every health monitor has had monitor_fall answers of 503, at most drain_delay");
    } else {
        info!(delay = %humantime::format_duration(drain.drain_delay), "draining: /healthz says 503; still accepting so the balancer can move traffic away");
    }
    let fallen = async {
        if drain.monitor_fall == 0 {
            return std::future::pending().await;
        }
        let count = monitors.fallen(drain.monitor_fall).await;
        info!(monitors = count, monitor_fall = drain.monitor_fall, grace = ?IN_FLIGHT_GRACE, "every health monitor has seen the drain; closing the listeners after connections in flight arrive");
        tokio::time::sleep_until(deadline.min(Instant::now() + IN_FLIGHT_GRACE)).await;
    };
    tokio::select! {
        () = tokio::time::sleep_until(deadline) => {
            if drain.monitor_fall > 0 {
                match monitors.fewest() {
                    None => info!("drain_delay over; no health monitor polled /healthz in the last minute"),
                    Some((count, fewest)) => info!(monitors = count, fewest_503 = fewest, "drain_delay over before every health monitor had monitor_fall answers of 503"),
                }
            }
            Why::DrainDelay
        }
        () = fallen => Why::MonitorFall,
        () = hurry => Why::Hurry,
    }
}

/// Why the listeners closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    /// `drain_delay` ran out (or is zero).
    DrainDelay,
    /// Every monitor had `monitor_fall` 503s (and the grace passed).
    MonitorFall,
    /// A second SIGTERM/SIGINT.
    Hurry,
    /// A new process took the listening sockets over.
    Handoff,
}

impl Why {
    fn as_str(self) -> &'static str {
        match self {
            Why::DrainDelay => "drain_delay",
            Why::MonitorFall => "monitor_fall",
            Why::Hurry => "second_signal",
            Why::Handoff => "handoff",
        }
    }
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// After the monitors have seen the drain: time for connections the
/// balancer sent just before to arrive.
const IN_FLIGHT_GRACE: Duration = Duration::from_secs(1);
/// Longest wait for stdout to take the last access-log lines.
const FLUSH_LIMIT: Duration = Duration::from_secs(5);

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

/// Set TCP_NODELAY and the keepalive of `tcp_keepalive` on a listening
/// socket: Linux copies them to every socket it accepts, so a connection
/// costs no `setsockopt`. An inherited socket may carry another process's
/// keepalive: without one configured, it is turned off.
fn accepted_options(socket: &TcpListener, keepalive: Option<Duration>) {
    passthru_net::dial::set_options(socket, keepalive);
    if keepalive.is_none() {
        let _ = socket2::SockRef::from(socket).set_keepalive(false);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The options set once on the listening socket are what every
    /// accepted connection has (none is set per connection).
    #[tokio::test]
    async fn accepted_sockets_inherit_nodelay_and_keepalive() {
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let listener = TcpListener::from_std(bind_socket(addr).unwrap()).unwrap();
        accepted_options(&listener, Some(Duration::from_secs(42)));
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        let sock = socket2::SockRef::from(&accepted);
        assert!(sock.tcp_nodelay().unwrap());
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(42));
        assert_eq!(
            sock.tcp_keepalive_interval().unwrap(),
            Duration::from_secs(15)
        );
        assert_eq!(sock.tcp_keepalive_retries().unwrap(), 4);
        drop(client);

        // Without a keepalive configured, an inherited one is turned off.
        accepted_options(&listener, None);
        let _client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        let sock = socket2::SockRef::from(&accepted);
        assert!(sock.tcp_nodelay().unwrap());
        assert!(!sock.keepalive().unwrap());
    }
}
