//! The Prometheus metric families, with names and labels exactly as in the
//! spec, and their OpenMetrics text exposition. No I/O: the admin endpoint
//! serves [`Metrics::encode`].
//!
//! Every series a dashboard needs before the first event (refusals per
//! listener and reason, active connections, bytes per direction, the up
//! gauge per server) exists at 0 from [`Metrics::new`] on. The per-connection
//! calls look their series up in maps built there, so the hot path allocates
//! no label set.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};

use prometheus_client::encoding::{EncodeLabelSet, text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::refusal::Refusal;

mod hello;
mod tls;

/// passthru's metrics: one registry holding every family, plus cached
/// handles to the per-listener series. Shared as `Arc<Metrics>`.
pub struct Metrics {
    registry: Registry,
    connections: Family<ConnectionLabels, Counter>,
    active: Family<ListenerLabels, Gauge>,
    bytes: Family<BytesLabels, Counter>,
    refused: Family<RefusedLabels, Counter>,
    upstream_connect: Histogram,
    server_up: Family<ServerLabels, Gauge>,
    server_active: Family<ServerLabels, Gauge>,
    queue: Family<BackendLabels, Gauge>,
    queue_wait: Family<BackendLabels, Histogram>,
    access_log_dropped: Counter,
    moved: Counter,
    /// Series handles of the listeners given to [`Metrics::new`].
    listeners: HashMap<String, ListenerSeries>,
    /// `passthru_connections_total` handles, keyed by [`connection_key`].
    finished: RwLock<HashMap<String, Counter>>,
    /// The `(backend, server)` pairs of the current backend set.
    servers: Mutex<HashSet<ServerLabels>>,
    /// Offload signals and observed handshakes.
    tls: tls::TlsMetrics,
    /// ClientHello sizes, reads, records and key shares.
    hello: hello::HelloMetrics,
}

impl Metrics {
    /// The `Content-Type` to serve [`Metrics::encode`] with.
    pub const CONTENT_TYPE: &'static str =
        "application/openmetrics-text; version=1.0.0; charset=utf-8";

    /// Registers every family and pre-creates, at 0, every series a
    /// dashboard should see before the first event:
    /// `passthru_refused_total{listener,reason}` for every listener and
    /// every [`Refusal::ALL`] reason, `passthru_active_connections{listener}`,
    /// `passthru_bytes_total{listener,direction}` for both directions, and
    /// `passthru_backend_server_up{backend,server} = 1` for each server.
    pub fn new(listeners: &[String], backends: &[(String, Vec<String>)]) -> Metrics {
        let mut registry = Registry::default();
        let connections = Family::<ConnectionLabels, Counter>::default();
        let active = Family::<ListenerLabels, Gauge>::default();
        let bytes = Family::<BytesLabels, Counter>::default();
        let refused = Family::<RefusedLabels, Counter>::default();
        let upstream_connect = Histogram::new(CONNECT_BUCKETS);
        let server_up = Family::<ServerLabels, Gauge>::default();
        let server_active = Family::<ServerLabels, Gauge>::default();
        let queue = Family::<BackendLabels, Gauge>::default();
        let queue_wait = Family::<BackendLabels, Histogram>::new_with_constructor(
            queue_wait_histogram as fn() -> Histogram,
        );

        registry.register(
            "passthru_connections",
            "Connections finished, by listener, route, backend and outcome (ok or the refusal reason)",
            connections.clone(),
        );
        registry.register(
            "passthru_active_connections",
            "Connections currently open, by listener",
            active.clone(),
        );
        registry.register(
            "passthru_bytes",
            "Bytes forwarded, by listener and direction (upstream = client to server)",
            bytes.clone(),
        );
        registry.register(
            "passthru_refused",
            "Connections refused before forwarding, by listener and reason",
            refused.clone(),
        );
        registry.register_with_unit(
            "passthru_upstream_connect",
            "Time to connect to a backend server, including any CONNECT hop",
            Unit::Seconds,
            upstream_connect.clone(),
        );
        registry.register(
            "passthru_backend_server_up",
            "Whether a backend server is considered up (1) or down (0)",
            server_up.clone(),
        );
        registry.register(
            "passthru_backend_server_active",
            "Connections open to a backend server (what max_connections_per_server limits)",
            server_active.clone(),
        );
        registry.register(
            "passthru_backend_queue",
            "Connections waiting for a free server slot, by backend",
            queue.clone(),
        );
        registry.register_with_unit(
            "passthru_queue_wait",
            "Time connections waited in the backend queue (served or refused)",
            Unit::Seconds,
            queue_wait.clone(),
        );

        let access_log_dropped = Counter::default();
        registry.register(
            "passthru_access_log_dropped",
            "Access-log lines dropped because stdout could not keep up (forwarding never waits for it)",
            access_log_dropped.clone(),
        );

        let moved = Counter::default();
        registry.register(
            "passthru_connections_moved",
            "Lasting connections moved to a less busy thread (see --threads)",
            moved.clone(),
        );

        let tls = tls::TlsMetrics::register(&mut registry);
        let hello = hello::HelloMetrics::register(&mut registry);
        let listeners = listeners
            .iter()
            .map(|name| {
                let series = ListenerSeries::new(name, &active, &bytes, &refused);
                (name.clone(), series)
            })
            .collect();

        let metrics = Metrics {
            registry,
            connections,
            active,
            bytes,
            refused,
            upstream_connect,
            server_up,
            server_active,
            queue,
            queue_wait,
            access_log_dropped,
            moved,
            listeners,
            finished: RwLock::new(HashMap::new()),
            servers: Mutex::new(HashSet::new()),
            tls,
            hello,
        };
        metrics.set_backends(backends);
        metrics
    }

    /// Replaces the backend set after a reload: servers added get
    /// `passthru_backend_server_up = 1`, servers removed lose their series,
    /// servers kept keep their current value.
    pub fn set_backends(&self, backends: &[(String, Vec<String>)]) {
        let wanted: HashSet<ServerLabels> = backends
            .iter()
            .flat_map(|(backend, servers)| {
                servers.iter().map(move |server| ServerLabels {
                    backend: backend.clone(),
                    server: server.clone(),
                })
            })
            .collect();
        let mut known = lock(&self.servers);
        for gone in known.difference(&wanted) {
            self.server_up.remove(gone);
            self.server_active.remove(gone);
        }
        for added in wanted.difference(&known) {
            self.server_up.get_or_create(added).set(1);
            self.server_active.get_or_create(added).set(0);
        }
        *known = wanted;
    }

    /// A sign that a device in front terminates TLS (an offload header's
    /// name, or `proxy_v2_ssl_tlv`): `passthru_offload_signals_total` +1.
    pub fn offload_signal(&self, listener: &str, signal: &str) {
        self.tls.offload_signal(listener, signal);
    }

    /// An observed handshake: `passthru_handshakes_total` +1 (`alert` "" when none).
    pub fn handshake(&self, listener: &str, backend: &str, outcome: &str, alert: &str) {
        self.tls.handshake(listener, backend, outcome, alert);
    }

    /// A whole ClientHello was read on `listener`: `bytes` long, after
    /// `reads` socket reads, over `records` TLS records, offering key shares
    /// of the named `groups` (observed in the `passthru_client_hello_*`
    /// histograms; `passthru_client_hello_key_shares_total` +1 per group).
    pub fn client_hello(
        &self,
        listener: &str,
        bytes: usize,
        reads: usize,
        records: usize,
        groups: impl Iterator<Item = &'static str>,
    ) {
        self.hello
            .client_hello(listener, bytes, reads, records, groups);
    }

    /// Days left on a client certificate seen in clear, for `backend`.
    pub fn client_cert_expiry(&self, backend: &str, days: f64) {
        self.tls.client_cert_expiry(backend, days);
    }

    /// A connection was accepted on `listener`: `passthru_active_connections` +1.
    pub fn connection_opened(&self, listener: &str) {
        match self.listeners.get(listener) {
            Some(series) => series.active.inc(),
            None => self
                .active
                .get_or_create(&ListenerLabels::new(listener))
                .inc(),
        };
    }

    /// A connection on `listener` was closed: `passthru_active_connections` -1.
    pub fn connection_closed(&self, listener: &str) {
        match self.listeners.get(listener) {
            Some(series) => series.active.dec(),
            None => self
                .active
                .get_or_create(&ListenerLabels::new(listener))
                .dec(),
        };
    }

    /// A connection finished: `passthru_connections_total` +1. `route` and
    /// `backend` are `""` when the connection got none; `outcome` is `ok` or
    /// the refusal reason.
    pub fn connection_finished(&self, listener: &str, route: &str, backend: &str, outcome: &str) {
        CONNECTION_KEY.with_borrow_mut(|key| {
            connection_key(key, [listener, route, backend, outcome]);
            if let Some(counter) = read(&self.finished).get(key.as_str()) {
                counter.inc();
                return;
            }
            let labels = ConnectionLabels {
                listener: listener.to_owned(),
                route: route.to_owned(),
                backend: backend.to_owned(),
                outcome: outcome.to_owned(),
            };
            let counter = self.connections.get_or_create_owned(&labels);
            counter.inc();
            write(&self.finished).insert(key.clone(), counter);
        });
    }

    /// A connection on `listener` was refused: `passthru_refused_total` +1,
    /// labelled with the refusal's reason.
    pub fn refused(&self, listener: &str, refusal: Refusal) {
        let reason = refusal.as_str();
        let cached = self
            .listeners
            .get(listener)
            .and_then(|series| series.refused.get(reason));
        match cached {
            Some(counter) => counter.inc(),
            None => {
                let labels = RefusedLabels {
                    listener: listener.to_owned(),
                    reason: reason.to_owned(),
                };
                self.refused.get_or_create(&labels).inc()
            }
        };
    }

    /// Bytes forwarded by one connection on `listener`: `upstream` from the
    /// client to the server, `downstream` back.
    pub fn bytes(&self, listener: &str, upstream: u64, downstream: u64) {
        match self.listeners.get(listener) {
            Some(series) => {
                series.upstream.inc_by(upstream);
                series.downstream.inc_by(downstream);
            }
            None => {
                for (direction, count) in [(UPSTREAM, upstream), (DOWNSTREAM, downstream)] {
                    let labels = BytesLabels::new(listener, direction);
                    self.bytes.get_or_create(&labels).inc_by(count);
                }
            }
        }
    }

    /// One access-log line was dropped (stdout did not keep up):
    /// `passthru_access_log_dropped_total`.
    pub fn access_log_dropped(&self) {
        self.access_log_dropped.inc();
    }

    /// A lasting connection moved to a less busy thread:
    /// `passthru_connections_moved_total`.
    pub fn connection_moved(&self) {
        self.moved.inc();
    }

    /// One successful connect to a backend server took `seconds`:
    /// observed in `passthru_upstream_connect_seconds`.
    pub fn upstream_connect(&self, seconds: f64) {
        self.upstream_connect.observe(seconds);
    }

    /// A health check marked `server` of `backend` up or down. A server not
    /// in the current backend set is ignored, so a check still running for
    /// a server that a reload removed cannot bring its series back.
    pub fn server_up(&self, backend: &str, server: &str, up: bool) {
        let labels = ServerLabels {
            backend: backend.to_owned(),
            server: server.to_owned(),
        };
        let known = lock(&self.servers);
        if known.contains(&labels) {
            self.server_up.get_or_create(&labels).set(i64::from(up));
        }
    }

    /// The `passthru_backend_server_active{backend,server}` gauge, for the
    /// server slots to keep.
    pub fn server_active(&self, backend: &str, server: &str) -> Gauge {
        self.server_active
            .get_or_create(&ServerLabels {
                backend: backend.to_owned(),
                server: server.to_owned(),
            })
            .clone()
    }

    /// The `passthru_backend_queue{backend}` gauge, for the queue to keep.
    pub fn backend_queue(&self, backend: &str) -> Gauge {
        self.queue
            .get_or_create(&BackendLabels {
                backend: backend.to_owned(),
            })
            .clone()
    }

    /// A connection left `backend`'s queue after `seconds` (served or
    /// refused): observed in `passthru_queue_wait_seconds`.
    pub fn queue_wait(&self, backend: &str, seconds: f64) {
        self.queue_wait
            .get_or_create(&BackendLabels {
                backend: backend.to_owned(),
            })
            .observe(seconds);
    }

    /// The OpenMetrics text exposition of every family, ending in `# EOF`.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        if let Err(fmt::Error) = text::encode(&mut out, &self.registry) {
            // Writing to a String cannot fail and our label sets always
            // encode; keep what was written rather than serve nothing.
            tracing::warn!("metrics encoding failed part way");
        }
        out
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("listeners", &self.listeners.keys())
            .finish_non_exhaustive()
    }
}

/// The cached series of one configured listener.
struct ListenerSeries {
    active: Gauge,
    upstream: Counter,
    downstream: Counter,
    refused: HashMap<&'static str, Counter>,
}

impl ListenerSeries {
    /// Creates (at 0) and keeps the listener's series.
    fn new(
        name: &str,
        active: &Family<ListenerLabels, Gauge>,
        bytes: &Family<BytesLabels, Counter>,
        refused: &Family<RefusedLabels, Counter>,
    ) -> ListenerSeries {
        let refused = Refusal::ALL
            .iter()
            .map(|reason| {
                let labels = RefusedLabels {
                    listener: name.to_owned(),
                    reason: reason.as_str().to_owned(),
                };
                (reason.as_str(), refused.get_or_create_owned(&labels))
            })
            .collect();
        ListenerSeries {
            active: active.get_or_create_owned(&ListenerLabels::new(name)),
            upstream: bytes.get_or_create_owned(&BytesLabels::new(name, UPSTREAM)),
            downstream: bytes.get_or_create_owned(&BytesLabels::new(name, DOWNSTREAM)),
            refused,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ConnectionLabels {
    listener: String,
    route: String,
    backend: String,
    outcome: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ListenerLabels {
    listener: String,
}

impl ListenerLabels {
    fn new(listener: &str) -> ListenerLabels {
        ListenerLabels {
            listener: listener.to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BytesLabels {
    listener: String,
    direction: &'static str,
}

impl BytesLabels {
    fn new(listener: &str, direction: &'static str) -> BytesLabels {
        BytesLabels {
            listener: listener.to_owned(),
            direction,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RefusedLabels {
    listener: String,
    reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ServerLabels {
    backend: String,
    server: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BackendLabels {
    backend: String,
}

fn queue_wait_histogram() -> Histogram {
    Histogram::new(QUEUE_BUCKETS)
}

/// Writes an unambiguous cache key for a label tuple into `key`: each value
/// prefixed by its length, so no value can run into the next.
fn connection_key(key: &mut String, values: [&str; 4]) {
    key.clear();
    let mut digits = itoa::Buffer::new();
    for value in values {
        key.push_str(digits.format(value.len()));
        key.push(':');
        key.push_str(value);
    }
}

/// Locks, ignoring poisoning: every critical section leaves the data valid.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

thread_local! {
    /// Reused buffer for [`connection_key`], so a lookup allocates nothing.
    static CONNECTION_KEY: RefCell<String> = const { RefCell::new(String::new()) };
}

const UPSTREAM: &str = "upstream";
const DOWNSTREAM: &str = "downstream";

/// `passthru_upstream_connect_seconds` buckets: 0.5 ms to 10 s.
const CONNECT_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// `passthru_queue_wait_seconds` buckets: 1 ms to 30 s.
const QUEUE_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[cfg(test)]
mod tests;
