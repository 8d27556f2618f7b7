//! Memory at scale: open N TLS connections through a proxy (handshake with
//! the client certificate and one request each, so both directions of the
//! data path have run), leave them idle, and report the growth of the
//! proxy's resident memory divided by N. Kernel socket memory is not in
//! RSS; this is the proxy's user-space cost per idle connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep};

use crate::client::{self, Agent, Stream};
use crate::daemon::Daemon;
use crate::topology::Target;

/// The result for one proxy.
#[derive(Debug, Clone, Serialize)]
pub struct IdleResult {
    /// Which proxy.
    pub target: Target,
    /// Connections asked for.
    pub wanted: usize,
    /// Connections open at the measurement.
    pub held: usize,
    /// RSS (all processes) after a warm-up, before the connections, KiB.
    pub rss_before_kib: u64,
    /// RSS with the connections open and idle, KiB.
    pub rss_held_kib: u64,
    /// RSS after they all closed, KiB.
    pub rss_after_kib: u64,
    /// (held − before) / held, bytes.
    pub bytes_per_conn: f64,
    /// Seconds to open them.
    pub open_s: f64,
}

/// Hold `n` idle connections through `addr` and measure `proxy`'s RSS;
/// read it again `after_close` after they all closed.
pub async fn measure(
    target: Target,
    addr: SocketAddr,
    proxy: &Daemon,
    agent: &Agent,
    n: usize,
    after_close: Duration,
) -> Result<IdleResult> {
    // Warm-up: threads, allocator arenas and code pages the first
    // connections touch should not be charged to the idle ones.
    let warm = open(addr, agent, WARMUP_CONNS, Duration::from_secs(30)).await?;
    for s in warm {
        client::close(s).await;
    }
    sleep(SETTLE).await;
    let before = proxy.usage()?.rss_kib;

    let t = Instant::now();
    let held = open(addr, agent, n, OPEN_WITHIN).await?;
    let open_s = t.elapsed().as_secs_f64();
    sleep(SETTLE).await;
    let during = proxy.usage()?.rss_kib;
    let count = held.len();
    eprintln!(
        "loadgen idle: {target}: {count} connections open in {open_s:.1}s; RSS {:.1} MiB → {:.1} MiB",
        before as f64 / 1024.0,
        during as f64 / 1024.0
    );
    let mut closing = JoinSet::new();
    for s in held {
        closing.spawn(client::close(s));
    }
    while closing.join_next().await.is_some() {}
    sleep(after_close).await;
    let after = proxy.usage()?.rss_kib;
    if count == 0 {
        bail!("idle through {target}: no connection could be opened");
    }
    Ok(IdleResult {
        target,
        wanted: n,
        held: count,
        rss_before_kib: before,
        rss_held_kib: during,
        rss_after_kib: after,
        bytes_per_conn: during.saturating_sub(before) as f64 * 1024.0 / count as f64,
        open_s,
    })
}

/// Open `n` connections, [`CONCURRENCY`] at a time, each doing one request;
/// stop at `within`. Fails if fewer than all could be opened.
async fn open(addr: SocketAddr, agent: &Agent, n: usize, within: Duration) -> Result<Vec<Stream>> {
    let deadline = Instant::now() + within;
    let gate = Arc::new(Semaphore::new(CONCURRENCY));
    let mut tasks = JoinSet::new();
    for _ in 0..n {
        let gate = Arc::clone(&gate);
        let agent = agent.clone();
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await.ok()?;
            if Instant::now() >= deadline {
                return None;
            }
            let mut stream = agent.connect(addr).await.ok()?;
            let mut buf = Vec::new();
            client::small_request(&mut stream, &mut buf).await.ok()?;
            Some(stream)
        });
    }
    let mut streams = Vec::with_capacity(n);
    let mut failed = 0;
    while let Some(joined) = tasks.join_next().await {
        match joined.ok().flatten() {
            Some(s) => streams.push(s),
            None => failed += 1,
        }
    }
    if failed > 0 {
        for s in streams {
            client::close(s).await;
        }
        bail!("{failed} of {n} connections to {addr} failed or were not opened within {within:?}");
    }
    Ok(streams)
}

/// Connections opened and closed before the baseline.
const WARMUP_CONNS: usize = 200;
/// Handshakes in flight while opening.
const CONCURRENCY: usize = 32;
/// Bound on opening all connections.
const OPEN_WITHIN: Duration = Duration::from_secs(180);
/// Wait between the idle connections closing and the last RSS reading.
pub const AFTER_CLOSE: Duration = Duration::from_secs(3);
/// Pause before reading RSS.
pub const SETTLE: Duration = Duration::from_secs(1);
