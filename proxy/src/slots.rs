//! Server slots, the backend queue and slow start (spec: "Server limits and
//! the queue").
//!
//! Each backend has a [`Pool`], kept by name across reloads in [`Pools`]:
//! per server, the connections open to it (every generation's: a server
//! that stays in the configuration keeps its count) and when it came up;
//! per backend, the FIFO queue of connections waiting for a slot.
//!
//! A connection holds a [`Slot`] from before it dials a server until it
//! ends, however it ends (close, reset, idle, drain, reload, a failed
//! dial): the slot is released when it drops, never by hand. Releasing a
//! slot hands it straight to the oldest waiter, under the same lock, so a
//! newcomer cannot overtake the queue; while anyone waits, newcomers queue
//! too.
//!
//! Slow start: a server that comes up (first configured, or marked up by
//! its health check) has its limit ramp linearly from 10% to 100% over
//! `slow_start`. Without a limit, its share of the new connections that
//! would pick it ramps the same way (the others go to the next server).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::config::{BackendConfig, ServerAddr, ServerLimits};
use crate::metrics::Metrics;

/// Every backend's pool, by backend name. Lives as long as the server, so
/// that a reload finds the counts of the servers it keeps.
#[derive(Debug, Default)]
pub struct Pools {
    metrics: Option<Arc<Metrics>>,
    by_name: Mutex<HashMap<String, Arc<Pool>>>,
}

impl Pools {
    /// Pools whose gauges are those of `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Pools {
        Pools {
            metrics: Some(metrics),
            by_name: Mutex::new(HashMap::new()),
        }
    }

    /// The slots of `config`'s servers, from the pool of the backend of the
    /// same name when there is one: servers it already had keep their
    /// counts and ramp, new ones start a slow start, and the limits become
    /// `config`'s.
    pub fn slots_for(&self, config: &BackendConfig) -> BackendSlots {
        let pool = Arc::clone(
            lock(&self.by_name)
                .entry(config.name.clone())
                .or_insert_with(|| Arc::new(Pool::new(&config.name, self.metrics.clone()))),
        );
        let ids = pool.configure(config);
        BackendSlots { pool, ids }
    }

    /// Forget the pools of backends a reload removed (their open
    /// connections keep their slots, and the pool, until they end).
    pub fn retain(&self, names: &[&str]) {
        lock(&self.by_name).retain(|name, _| names.contains(&name.as_str()));
    }
}

/// One backend generation's view of its pool: server `index` of its
/// configuration is pool server `ids[index]`.
#[derive(Debug)]
pub struct BackendSlots {
    pool: Arc<Pool>,
    ids: Vec<usize>,
}

/// Why a connection left the queue without a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueExit {
    /// `max_queue` connections already waited.
    Full,
    /// No slot within `queue_timeout`.
    Timeout,
    /// The client closed (or reset) its connection while waiting.
    ClientGone,
}

impl BackendSlots {
    /// Slots in a pool of their own (no reload to survive, no metrics).
    pub fn standalone(config: &BackendConfig) -> BackendSlots {
        Pools::default().slots_for(config)
    }

    /// The backend's limits (as of the latest configuration).
    pub fn limits(&self) -> ServerLimits {
        self.pool.state().limits
    }

    /// A slot on server `index` if it is below its (ramping) limit and
    /// nobody waits; `None`: skip it like a down server.
    pub fn try_acquire(&self, index: usize) -> Option<Slot> {
        let id = *self.ids.get(index)?;
        self.pool.try_acquire(id)
    }

    /// Connections open to server `index` (every generation's).
    pub fn active(&self, index: usize) -> usize {
        let Some(&id) = self.ids.get(index) else {
            return 0;
        };
        self.pool.state().servers.get(id).map_or(0, |s| s.active)
    }

    /// Server `index` was marked up or down by its health check; returns
    /// whether that changed anything. Up again: its slow start begins, and
    /// waiters may get its slots. The one place for a server's health (kept
    /// across reloads) and its `passthru_backend_server_up` gauge.
    pub fn set_up(&self, index: usize, up: bool) -> bool {
        self.ids
            .get(index)
            .is_some_and(|&id| self.pool.set_up(id, up))
    }

    /// Whether server `index` is up (always, without health checks).
    pub fn is_up(&self, index: usize) -> bool {
        self.ids.get(index).is_some_and(|&id| self.pool.is_up(id))
    }

    /// Slow start without a limit: when the first of `order` is ramping
    /// and this connection is beyond its current share, move it last.
    pub fn defer_ramping(&self, order: &mut [usize]) {
        let Some(&first) = order.first() else { return };
        let Some(&id) = self.ids.get(first) else {
            return;
        };
        if !self.pool.admit_share(id, Instant::now()) {
            order.rotate_left(1);
        }
    }

    /// Wait in the queue, FIFO, for a slot on any usable server, watching
    /// `client` for EOF or an error without reading its bytes.
    pub async fn wait(&self, client: &TcpStream) -> Result<Slot, QueueExit> {
        self.wait_until_gone(client_gone(client)).await
    }

    /// [`BackendSlots::wait`], with what tells that the client left.
    pub async fn wait_until_gone(&self, gone: impl Future<Output = ()>) -> Result<Slot, QueueExit> {
        let started = Instant::now();
        let (grant, mut receiver) = oneshot::channel();
        let (id, deadline, tick, grants) = {
            let mut st = self.pool.state();
            if st.queue.len() >= st.limits.max_queue {
                return Err(QueueExit::Full);
            }
            let id = st.next_waiter;
            st.next_waiter += 1;
            st.queue.push_back(Waiter { id, grant });
            let tick = st.ramp_tick();
            let grants = st.pump(&self.pool, started);
            (id, started + st.limits.queue_timeout, tick, grants)
        };
        deliver(grants);
        let _leave = Leave {
            pool: &self.pool,
            id,
        };
        tokio::pin!(gone);
        let result = loop {
            tokio::select! {
                slot = &mut receiver => break slot.map_err(|_| QueueExit::Timeout),
                () = tokio::time::sleep_until(deadline) => break Err(QueueExit::Timeout),
                () = &mut gone => break Err(QueueExit::ClientGone),
                () = tokio::time::sleep(tick.unwrap_or(Duration::MAX)), if tick.is_some() => {
                    self.pool.pump_now();
                }
            }
        };
        let waited = result.is_ok() || result.as_ref().err() == Some(&QueueExit::Timeout);
        if let (true, Some(metrics)) = (waited, &self.pool.metrics) {
            metrics.queue_wait(&self.pool.backend, started.elapsed().as_secs_f64());
        }
        result
    }

    /// Connections waiting in the backend's queue.
    pub fn queued(&self) -> usize {
        self.pool.state().queue.len()
    }
}

/// Resolves when the client closed or reset its side. A client that sends
/// more before its turn (TLS early data) is there: stop watching, and
/// leave its bytes in the socket for the server.
async fn client_gone(client: &TcpStream) {
    let mut byte = [0u8; 1];
    match client.peek(&mut byte).await {
        Ok(0) | Err(_) => {}
        Ok(_) => std::future::pending().await,
    }
}

/// A connection's place on one server: released when it drops.
#[derive(Debug)]
pub struct Slot {
    pool: Arc<Pool>,
    id: usize,
}

impl Slot {
    /// The server this slot is on.
    pub fn server(&self) -> ServerAddr {
        self.pool.state().servers[self.id].addr.clone()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.pool.release(self.id);
    }
}

/// Takes a waiter out of the queue when its wait ends, however it ends.
struct Leave<'a> {
    pool: &'a Arc<Pool>,
    id: u64,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        let mut st = self.pool.state();
        if let Some(at) = st.queue.iter().position(|w| w.id == self.id) {
            st.queue.remove(at);
        }
        st.queue_gauge.set(st.queue.len() as i64);
    }
}

/// One backend's servers and queue.
#[derive(Debug)]
pub struct Pool {
    backend: String,
    metrics: Option<Arc<Metrics>>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    limits: ServerLimits,
    /// Every server of every configuration since start (a server removed
    /// by a reload keeps its entry, no longer `configured`, until it comes
    /// back: its entry, and its count, are reused).
    servers: Vec<Server>,
    queue: VecDeque<Waiter>,
    next_waiter: u64,
    queue_gauge: Gauge,
}

#[derive(Debug)]
struct Server {
    addr: ServerAddr,
    active: usize,
    /// In the latest configuration: only these get waiters.
    configured: bool,
    up: bool,
    /// When it came up: the start of its slow start.
    since: Instant,
    /// New connections that picked it first during its ramp (share ramp).
    offered: u64,
    gauge: Gauge,
}

#[derive(Debug)]
struct Waiter {
    id: u64,
    grant: oneshot::Sender<Slot>,
}

impl Pool {
    fn new(backend: &str, metrics: Option<Arc<Metrics>>) -> Pool {
        let queue_gauge = metrics
            .as_ref()
            .map_or_else(Gauge::default, |m| m.backend_queue(backend));
        Pool {
            backend: backend.to_owned(),
            metrics,
            state: Mutex::new(State {
                limits: ServerLimits::default(),
                servers: Vec::new(),
                queue: VecDeque::new(),
                next_waiter: 0,
                queue_gauge,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Apply a configuration of the backend; returns the pool ids of its servers.
    fn configure(self: &Arc<Self>, config: &BackendConfig) -> Vec<usize> {
        let now = Instant::now();
        let gauge = |addr: &ServerAddr| {
            self.metrics.as_ref().map_or_else(Gauge::default, |m| {
                m.server_active(&self.backend, &addr.to_string())
            })
        };
        let (ids, grants, ups) = {
            let mut st = self.state();
            st.limits = config.limits;
            let stayed: Vec<bool> = st.servers.iter().map(|s| s.configured).collect();
            for s in &mut st.servers {
                s.configured = false;
            }
            let mut ids = Vec::with_capacity(config.servers.len());
            let mut ups = Vec::with_capacity(config.servers.len());
            for addr in &config.servers {
                let id = match st.servers.iter().position(|s| &s.addr == addr) {
                    Some(id) => id,
                    None => {
                        st.servers.push(Server {
                            addr: addr.clone(),
                            active: 0,
                            configured: false,
                            up: true,
                            since: now,
                            offered: 0,
                            gauge: Gauge::default(),
                        });
                        st.servers.len() - 1
                    }
                };
                let server = &mut st.servers[id];
                // A server that stays keeps its health (a dead one is not
                // tried again after a reload); one that comes (back) starts
                // up, and without health checks every server is up.
                if !stayed.get(id).copied().unwrap_or(false) || config.health_check.is_none() {
                    server.up = true;
                }
                server.configured = true;
                server.gauge = gauge(addr);
                server.gauge.set(server.active as i64);
                ups.push((addr.to_string(), server.up));
                ids.push(id);
            }
            let grants = st.pump(self, now);
            (ids, grants, ups)
        };
        for (server, up) in ups {
            self.publish_up(&server, up);
        }
        deliver(grants);
        ids
    }

    fn try_acquire(self: &Arc<Self>, id: usize) -> Option<Slot> {
        let now = Instant::now();
        let mut st = self.state();
        let queued = !st.queue.is_empty();
        let limits = st.limits;
        let server = st.servers.get_mut(id)?;
        if let Some(limit) = server.limit(&limits, now)
            && (server.active >= limit || queued)
        {
            return None;
        }
        server.active += 1;
        server.gauge.set(server.active as i64);
        drop(st);
        Some(Slot {
            pool: Arc::clone(self),
            id,
        })
    }

    fn release(self: &Arc<Self>, id: usize) {
        let grants = {
            let mut st = self.state();
            if let Some(server) = st.servers.get_mut(id) {
                server.active = server.active.saturating_sub(1);
                server.gauge.set(server.active as i64);
            }
            st.pump(self, Instant::now())
        };
        deliver(grants);
    }

    /// Mark server `id` up or down; returns whether that changed anything.
    /// The state and its `passthru_backend_server_up` gauge change together.
    fn set_up(self: &Arc<Self>, id: usize, up: bool) -> bool {
        let now = Instant::now();
        let (grants, addr) = {
            let mut st = self.state();
            let Some(server) = st.servers.get_mut(id) else {
                return false;
            };
            if server.up == up {
                return false;
            }
            if up {
                server.since = now;
                server.offered = 0;
            }
            server.up = up;
            let addr = server.addr.to_string();
            (st.pump(self, now), addr)
        };
        self.publish_up(&addr, up);
        deliver(grants);
        true
    }

    fn is_up(&self, id: usize) -> bool {
        self.state().servers.get(id).is_some_and(|s| s.up)
    }

    fn publish_up(&self, server: &str, up: bool) {
        if let Some(metrics) = &self.metrics {
            metrics.server_up(&self.backend, server, up);
        }
    }

    /// Grant what slow start freed since the last look.
    fn pump_now(self: &Arc<Self>) {
        let grants = self.state().pump(self, Instant::now());
        deliver(grants);
    }

    /// Share ramp: whether this new connection may go to server `id`.
    fn admit_share(&self, id: usize, now: Instant) -> bool {
        let mut st = self.state();
        let limits = st.limits;
        let Some(server) = st.servers.get_mut(id) else {
            return true;
        };
        if limits.max_per_server != 0 {
            return true;
        }
        let Some(share) = ramp(server.since, limits.slow_start, now) else {
            return true;
        };
        let n = server.offered;
        server.offered += 1;
        // Admit the connections at which the admitted count (share × n)
        // crosses an integer: an even spread at the current share.
        ((n + 1) as f64 * share).floor() > (n as f64 * share).floor() || n == 0
    }
}

impl State {
    /// Hand free slots to the oldest waiters; the senders and slots are
    /// delivered by the caller once the lock is released (a slot that
    /// cannot be delivered is dropped, which takes the lock again).
    fn pump(&mut self, pool: &Arc<Pool>, now: Instant) -> Vec<(oneshot::Sender<Slot>, Slot)> {
        let mut grants = Vec::new();
        loop {
            while self.queue.front().is_some_and(|w| w.grant.is_closed()) {
                self.queue.pop_front();
            }
            if self.queue.is_empty() {
                break;
            }
            let Some(id) = self.free_server(now) else {
                break;
            };
            let Some(waiter) = self.queue.pop_front() else {
                break;
            };
            let server = &mut self.servers[id];
            server.active += 1;
            server.gauge.set(server.active as i64);
            grants.push((
                waiter.grant,
                Slot {
                    pool: Arc::clone(pool),
                    id,
                },
            ));
        }
        self.queue_gauge.set(self.queue.len() as i64);
        grants
    }

    /// The least loaded configured server below its limit: among the
    /// servers that are up, or among all when none is.
    fn free_server(&self, now: Instant) -> Option<usize> {
        let any_up = self.servers.iter().any(|s| s.configured && s.up);
        self.servers
            .iter()
            .enumerate()
            .filter(|(_, s)| s.configured && (s.up || !any_up))
            .filter(|(_, s)| s.limit(&self.limits, now).is_none_or(|l| s.active < l))
            .min_by_key(|(_, s)| s.active)
            .map(|(id, _)| id)
    }

    /// How often a waiter looks for slots that a slow start opened: with a
    /// limit and a slow start, a server may begin to ramp (a health check
    /// marks it up) while the connection waits. `None` without either.
    fn ramp_tick(&self) -> Option<Duration> {
        let slow = self.limits.slow_start;
        (self.limits.max_per_server > 0 && !slow.is_zero())
            .then(|| (slow / 50).clamp(RAMP_TICK_MIN, RAMP_TICK_MAX))
    }
}

impl Server {
    /// The server's current limit: `None` without one; during slow start
    /// the ramped value (at least 1).
    fn limit(&self, limits: &ServerLimits, now: Instant) -> Option<usize> {
        let max = limits.max_per_server;
        if max == 0 {
            return None;
        }
        let slow = limits.slow_start.as_nanos();
        let elapsed = now.saturating_duration_since(self.since).as_nanos();
        if slow == 0 || elapsed >= slow {
            return Some(max);
        }
        // max × (0.1 + 0.9 × elapsed / slow), rounded up, in integers.
        let ramped = (max as u128 * (slow + 9 * elapsed)).div_ceil(10 * slow);
        Some(usize::try_from(ramped).unwrap_or(max).clamp(1, max))
    }
}

/// The slow-start share at `now` for a server up since `since`: from 0.1
/// to 1.0, linearly; `None` once the ramp is over (or without one).
fn ramp(since: Instant, slow_start: Duration, now: Instant) -> Option<f64> {
    let elapsed = now.saturating_duration_since(since);
    if slow_start.is_zero() || elapsed >= slow_start {
        return None;
    }
    Some(RAMP_FLOOR + (1.0 - RAMP_FLOOR) * elapsed.as_secs_f64() / slow_start.as_secs_f64())
}

/// Send granted slots outside the lock; a waiter gone meanwhile drops its
/// slot, which releases it to the next one.
fn deliver(grants: Vec<(oneshot::Sender<Slot>, Slot)>) {
    for (sender, slot) in grants {
        let _ = sender.send(slot);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

const RAMP_FLOOR: f64 = 0.1;
const RAMP_TICK_MIN: Duration = Duration::from_millis(10);
const RAMP_TICK_MAX: Duration = Duration::from_millis(250);

#[cfg(test)]
mod tests;
