//! One measurement: a metric against one target for one round. Throughput
//! metrics run their connections through an untimed warm-up, then read a
//! shared counter and the proxy's CPU time at the start and end of the
//! window while the load keeps flowing, so connection setup and teardown
//! never fall inside the window. Handshake latency is measured one
//! connection at a time (unloaded) into an HDR histogram.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Result, bail};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until, timeout};

use crate::client::{self, Agent, IO_TIMEOUT};
use crate::daemon::{Daemon, Peers};
use crate::procfs::{self, Usage};
use crate::topology::Target;

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Metric {
    /// Download over one connection: MB/s.
    Bulk1,
    /// Download over [`BULK_CONNS`] connections: MB/s.
    Bulk8,
    /// `GET /small` (64-byte answer) on [`KEEPALIVE_CONNS`] kept-alive connections: requests/s.
    KeepAlive,
    /// Connect, TLS handshake with client certificate, one `GET /small`,
    /// close; [`NEWCONN_CONCURRENCY`] at a time: connections/s.
    NewConns,
    /// Connect + handshake, one at a time: latency.
    Handshake,
}

impl Metric {
    /// Every metric, in run order.
    pub const ALL: [Metric; 5] = [
        Metric::Bulk1,
        Metric::Bulk8,
        Metric::KeepAlive,
        Metric::NewConns,
        Metric::Handshake,
    ];

    /// Short name for progress lines and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Bulk1 => "bulk-1",
            Metric::Bulk8 => "bulk-8",
            Metric::KeepAlive => "keep-alive",
            Metric::NewConns => "new-conns",
            Metric::Handshake => "handshake",
        }
    }
}

/// How long each phase runs.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Timing {
    /// Untimed load before each window.
    pub warmup: Duration,
    /// The measured window of a throughput metric.
    pub window: Duration,
    /// Handshakes timed per latency sample (bounded by 2 × `window` too).
    pub handshakes: usize,
}

/// The result of one measurement.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Round number, from 0.
    pub round: usize,
    /// What was measured.
    pub metric: Metric,
    /// Through what.
    pub target: Target,
    /// MB/s (10^6 bytes), requests/s or connections/s; p50 in ms for [`Metric::Handshake`].
    pub value: f64,
    /// Bytes, requests, connections or handshakes inside the window.
    pub work: f64,
    /// Length of the window, seconds.
    pub window_s: f64,
    /// The proxy's CPU seconds (utime + stime, all processes) inside the window.
    pub proxy_cpu_s: Option<f64>,
    /// `proxy_cpu_s / work`: seconds per byte, request or connection.
    pub proxy_cpu_per_unit: Option<f64>,
    /// The load generator's own CPU seconds inside the window.
    pub client_cpu_s: Option<f64>,
    /// The backend's CPU seconds (nginx master and workers) inside the window.
    pub backend_cpu_s: Option<f64>,
    /// CPU seconds the rest of the machine used inside the window (all
    /// busy time minus client, backend and proxy): other load, i.e. noise.
    pub other_cpu_s: Option<f64>,
    /// The proxy's peak RSS during the phase (KiB, all processes); measured for keep-alive.
    pub proxy_peak_rss_kib: Option<u64>,
    /// Handshake latency p50, ms.
    pub p50_ms: Option<f64>,
    /// Handshake latency p99, ms.
    pub p99_ms: Option<f64>,
    /// Failed connections or requests (the load goes on without them).
    pub errors: u64,
}

/// Measure `metric` against `addr`.
pub async fn measure(
    metric: Metric,
    target: Target,
    round: usize,
    addr: SocketAddr,
    agent: &Agent,
    peers: Peers<'_>,
    timing: Timing,
) -> Result<Sample> {
    let proxy = peers.proxy;
    let mut sample = Sample {
        round,
        metric,
        target,
        value: 0.0,
        work: 0.0,
        window_s: 0.0,
        proxy_cpu_s: None,
        proxy_cpu_per_unit: None,
        client_cpu_s: None,
        backend_cpu_s: None,
        other_cpu_s: None,
        proxy_peak_rss_kib: None,
        p50_ms: None,
        p99_ms: None,
        errors: 0,
    };
    if metric == Metric::Handshake {
        return handshakes(sample, addr, agent, timing).await;
    }
    let (conns, load) = match metric {
        Metric::Bulk1 => (1, Load::Bulk),
        Metric::Bulk8 => (BULK_CONNS, Load::Bulk),
        Metric::KeepAlive => (KEEPALIVE_CONNS, Load::KeepAlive),
        _ => (NEWCONN_CONCURRENCY, Load::NewConns),
    };
    let peak = metric == Metric::KeepAlive;
    if let (true, Some(p)) = (peak, proxy) {
        p.reset_peak()?;
    }
    let start = Instant::now();
    let window_start = start + timing.warmup;
    let window_end = window_start + timing.window;
    let until = window_end + TAIL;
    let counter = Arc::new(AtomicU64::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..conns {
        workers.spawn(worker(
            load,
            addr,
            agent.clone(),
            until,
            Arc::clone(&counter),
        ));
    }

    sleep_until(window_start).await;
    let (c0, u0, t0) = snapshot(&counter, peers)?;
    sleep_until(window_end).await;
    let (c1, u1, t1) = snapshot(&counter, peers)?;

    while let Ok(Some(joined)) = timeout(IO_TIMEOUT + TAIL, workers.join_next()).await {
        sample.errors += joined.unwrap_or(1);
    }
    workers.abort_all();

    let elapsed = t1.duration_since(t0).as_secs_f64();
    let work = (c1 - c0) as f64;
    if work == 0.0 {
        bail!(
            "{} through {target}: nothing completed in the window ({} errors)",
            metric.as_str(),
            sample.errors
        );
    }
    sample.work = work;
    sample.window_s = elapsed;
    sample.value = match load {
        Load::Bulk => work / elapsed / 1e6,
        Load::KeepAlive | Load::NewConns => work / elapsed,
    };
    sample.client_cpu_s = Some(u1.client.cpu_s - u0.client.cpu_s);
    sample.backend_cpu_s = Some(u1.backend.cpu_s - u0.backend.cpu_s);
    let ours = |s: &Snapshot| s.client.cpu_s + s.backend.cpu_s + s.proxy.map_or(0.0, |p| p.cpu_s);
    sample.other_cpu_s = Some(((u1.machine_s - u0.machine_s) - (ours(&u1) - ours(&u0))).max(0.0));
    if let (Some(u0), Some(u1)) = (u0.proxy, u1.proxy) {
        let cpu = u1.cpu_s - u0.cpu_s;
        sample.proxy_cpu_s = Some(cpu);
        sample.proxy_cpu_per_unit = Some(cpu / work);
        if peak {
            sample.proxy_peak_rss_kib = Some(u1.hwm_kib);
        }
    }
    Ok(sample)
}

/// What a worker does until its deadline.
#[derive(Debug, Clone, Copy)]
enum Load {
    Bulk,
    KeepAlive,
    NewConns,
}

/// One connection's (or one connector's) loop; returns its error count.
/// Every loop ends at `until`, and every I/O step is bounded by [`IO_TIMEOUT`].
async fn worker(
    load: Load,
    addr: SocketAddr,
    agent: Agent,
    until: Instant,
    counter: Arc<AtomicU64>,
) -> u64 {
    let mut errors = 0;
    let mut buf = Vec::with_capacity(1024);
    match load {
        Load::Bulk | Load::KeepAlive => {
            let Ok(mut stream) = agent.connect(addr).await else {
                return 1;
            };
            if let Load::Bulk = load {
                if client::download(&mut stream, until, &counter)
                    .await
                    .is_err()
                {
                    errors += 1;
                }
            } else {
                while Instant::now() < until {
                    if client::small_request(&mut stream, &mut buf).await.is_err() {
                        errors += 1;
                        break;
                    }
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }
            client::close(stream).await;
        }
        Load::NewConns => {
            while Instant::now() < until {
                let result = async {
                    let mut stream = agent.connect(addr).await?;
                    client::small_request(&mut stream, &mut buf).await?;
                    client::close(stream).await;
                    std::io::Result::Ok(())
                }
                .await;
                match result {
                    Ok(()) => {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => errors += 1,
                }
            }
        }
    }
    errors
}

/// Unloaded handshake latency: connect + TLS handshake, one at a time,
/// each followed (untimed) by one request and a close.
async fn handshakes(
    mut sample: Sample,
    addr: SocketAddr,
    agent: &Agent,
    timing: Timing,
) -> Result<Sample> {
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut buf = Vec::with_capacity(1024);
    let warmup_end = Instant::now() + timing.warmup;
    let mut warm = 0;
    while warm < WARMUP_HANDSHAKES && Instant::now() < warmup_end {
        one_handshake(addr, agent, &mut buf).await.ok();
        warm += 1;
    }
    let start = Instant::now();
    let deadline = start + 2 * timing.window;
    while histogram.len() < timing.handshakes as u64 && Instant::now() < deadline {
        match one_handshake(addr, agent, &mut buf).await {
            Ok(d) => histogram.record(d.as_micros().clamp(1, 60_000_000) as u64)?,
            Err(_) => sample.errors += 1,
        }
    }
    if histogram.is_empty() {
        bail!(
            "handshake through {}: none completed ({} errors)",
            sample.target,
            sample.errors
        );
    }
    let p50 = histogram.value_at_quantile(0.50) as f64 / 1000.0;
    sample.work = histogram.len() as f64;
    sample.window_s = start.elapsed().as_secs_f64();
    sample.value = p50;
    sample.p50_ms = Some(p50);
    sample.p99_ms = Some(histogram.value_at_quantile(0.99) as f64 / 1000.0);
    Ok(sample)
}

/// Time one connect + handshake; then a request and close, untimed.
async fn one_handshake(
    addr: SocketAddr,
    agent: &Agent,
    buf: &mut Vec<u8>,
) -> std::io::Result<Duration> {
    let t = Instant::now();
    let mut stream = agent.connect(addr).await?;
    let took = t.elapsed();
    client::small_request(&mut stream, buf).await?;
    client::close(stream).await;
    Ok(took)
}

/// CPU and memory of every process at one instant.
struct Snapshot {
    machine_s: f64,
    proxy: Option<Usage>,
    backend: Usage,
    client: Usage,
}

fn snapshot(counter: &AtomicU64, peers: Peers<'_>) -> Result<(u64, Snapshot, Instant)> {
    let usage = Snapshot {
        machine_s: procfs::machine_busy_s()?,
        proxy: peers.proxy.map(Daemon::usage).transpose()?,
        backend: peers.backend.usage()?,
        client: procfs::own_usage(std::process::id())?,
    };
    Ok((counter.load(Ordering::Relaxed), usage, Instant::now()))
}

/// Connections of the "bulk, 8 connections" metric.
pub const BULK_CONNS: usize = 8;
/// Connections of the keep-alive metric.
pub const KEEPALIVE_CONNS: usize = 50;
/// Connections opened at once in the new-connections metric.
pub const NEWCONN_CONCURRENCY: usize = 8;
/// Load keeps flowing this long after the window closes.
const TAIL: Duration = Duration::from_millis(200);
/// Untimed handshakes before the latency sample.
const WARMUP_HANDSHAKES: usize = 30;
