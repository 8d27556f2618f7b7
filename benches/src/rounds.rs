//! The run: rounds of every metric, each metric measured against every
//! target back to back (direct, passthru, haproxy, nginx), the order
//! reversed every other round so that no target always runs first or
//! right after another's load. One progress line per measurement.

use anyhow::Result;
use tokio::time::Instant;

use crate::client::Agent;
use crate::topology::{Target, Topology};
use crate::workload::{self, Metric, Sample, Timing};

/// How a run is shaped.
#[derive(Debug, Clone)]
pub struct Shape {
    /// Rounds of every metric.
    pub rounds: usize,
    /// Phase lengths.
    pub timing: Timing,
    /// Metrics, in run order.
    pub metrics: Vec<Metric>,
}

/// Run every round and return every sample.
pub async fn run(topology: &Topology, agent: &Agent, shape: &Shape) -> Result<Vec<Sample>> {
    let started = Instant::now();
    let targets = topology.targets();
    let mut samples = Vec::new();
    for round in 0..shape.rounds {
        let mut order = targets.clone();
        if round % 2 == 1 {
            order.reverse();
        }
        for &metric in &shape.metrics {
            for &target in &order {
                let Some(addr) = topology.addr(target) else {
                    continue;
                };
                let sample = workload::measure(
                    metric,
                    target,
                    round,
                    addr,
                    agent,
                    topology.peers(target),
                    shape.timing,
                )
                .await?;
                eprintln!(
                    "[{:>5.1}s] round {}/{} {:<10} {:<8} {}",
                    started.elapsed().as_secs_f64(),
                    round + 1,
                    shape.rounds,
                    metric.as_str(),
                    target.as_str(),
                    progress(&sample)
                );
                samples.push(sample);
            }
        }
    }
    Ok(samples)
}

fn progress(s: &Sample) -> String {
    let cpu = |scale: f64, unit: &str| {
        s.proxy_cpu_per_unit.map_or_else(String::new, |c| {
            format!(", proxy CPU {:.1} {unit}", c * scale)
        })
    };
    let errors = if s.errors > 0 {
        format!(" ({} errors)", s.errors)
    } else {
        String::new()
    };
    let share = |cpu: Option<f64>, who: &str| {
        cpu.filter(|_| s.window_s > 0.0)
            .map_or_else(String::new, |c| {
                format!(", {who} {:.0}%", 100.0 * c / s.window_s)
            })
    };
    let others = format!(
        "; CPU{}{}{}{}",
        share(s.client_cpu_s, "client"),
        share(s.backend_cpu_s, "backend"),
        share(s.proxy_cpu_s, "proxy"),
        share(s.other_cpu_s, "other")
    )
    .replacen("CPU, ", "CPU: ", 1);
    let others = if others == "; CPU" {
        String::new()
    } else {
        others
    };
    let line = match s.metric {
        Metric::Bulk1 | Metric::Bulk8 => format!("{:8.1} MB/s{}", s.value, cpu(1e3 * 1e9, "ms/GB")),
        Metric::KeepAlive => format!(
            "{:8.0} req/s{}{}",
            s.value,
            cpu(1e6, "µs/req"),
            s.proxy_peak_rss_kib.map_or_else(String::new, |k| format!(
                ", peak RSS {:.1} MiB",
                k as f64 / 1024.0
            ))
        ),
        Metric::NewConns => format!("{:8.0} conn/s{}", s.value, cpu(1e6, "µs/conn")),
        Metric::Handshake => format!(
            "p50 {:.3} ms, p99 {:.3} ms ({} handshakes)",
            s.p50_ms.unwrap_or(0.0),
            s.p99_ms.unwrap_or(0.0),
            s.work
        ),
    };
    format!("{line}{errors}{others}")
}

/// Targets in table order that have samples.
pub fn targets_of(samples: &[Sample]) -> Vec<Target> {
    Target::ALL
        .into_iter()
        .filter(|t| samples.iter().any(|s| s.target == *t))
        .collect()
}
