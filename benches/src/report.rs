//! From samples to the table: the median over rounds of each value, and
//! the median over rounds of each round's ratio to direct (so a slow round
//! for everyone does not move the ratio). Also the JSON file with every
//! sample. Ratios and CPU per unit are what to quote; absolute numbers
//! depend on the machine.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::rounds::targets_of;
use crate::topology::Target;
use crate::workload::{Metric, Sample};

/// A Markdown table's head: `label`, then one column per target.
pub fn head(label: &str, targets: &[Target]) -> String {
    let mut out = format!("| {label} |");
    for t in targets {
        let _ = write!(out, " {t} |");
    }
    out.push_str("\n|---|");
    for _ in targets {
        out.push_str("---|");
    }
    out.push('\n');
    out
}

/// The rendered table (Markdown), one row per figure.
pub fn table(samples: &[Sample]) -> String {
    let targets = targets_of(samples);
    let mut out = head("metric", &targets);
    for row in ROWS {
        let _ = write!(out, "| {} |", row.label);
        for &t in &targets {
            let _ = write!(out, " {} |", cell(samples, row, t));
        }
        out.push('\n');
    }
    out
}

/// One line on the other load the machine carried during the windows
/// (CPU time not used by the client, the backend or the proxy), with a
/// warning when it is large enough to move the figures.
pub fn noise(samples: &[Sample]) -> String {
    let shares: Vec<f64> = samples
        .iter()
        .filter_map(|s| {
            s.other_cpu_s
                .filter(|_| s.window_s > 0.0)
                .map(|o| o / s.window_s)
        })
        .collect();
    if shares.is_empty() {
        return String::new();
    }
    let max = shares.iter().copied().fold(0.0, f64::max);
    let med = median(shares);
    let warning = if med > NOISY {
        " — the machine was busy with other work: rerun when it is idle"
    } else {
        ""
    };
    format!(
        "Other load during the windows: median {:.0}% of one CPU, max {:.0}%{warning}",
        100.0 * med,
        100.0 * max
    )
}

/// Everything the JSON file holds besides the samples.
#[derive(Debug, Serialize)]
pub struct RunInfo {
    /// `model name` of the CPU.
    pub cpu_model: String,
    /// CPUs the kernel shows.
    pub cpus: usize,
    /// `uname -r`.
    pub kernel: String,
    /// Tool versions.
    pub versions: Vec<(String, String)>,
    /// Targets skipped and why.
    pub skipped: Vec<(Target, String)>,
    /// Rounds, phase lengths, metrics.
    pub shape: String,
    /// Seconds the run took.
    pub elapsed_s: f64,
}

/// Write `info`, the table and every sample to `path` as JSON.
pub fn write_json(path: &Path, info: &RunInfo, samples: &[Sample], table: &str) -> Result<()> {
    #[derive(Serialize)]
    struct File<'a> {
        info: &'a RunInfo,
        table: &'a str,
        samples: &'a [Sample],
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let text = serde_json::to_string_pretty(&File {
        info,
        table,
        samples,
    })?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// How one row is computed.
struct Row {
    label: &'static str,
    metric: Metric,
    figure: Figure,
}

#[derive(Clone, Copy)]
enum Figure {
    /// The value, with the median per-round ratio to direct.
    Ratio { decimals: usize },
    /// p50 or p99 latency, with the median per-round difference to direct.
    Added { p99: bool },
    /// The proxy's CPU per unit, scaled.
    Cpu { scale: f64, decimals: usize },
    /// The proxy's peak RSS, MiB.
    PeakRss,
}

const ROWS: &[Row] = &[
    Row {
        label: "bulk, 1 connection, MB/s (ratio to direct)",
        metric: Metric::Bulk1,
        figure: Figure::Ratio { decimals: 0 },
    },
    Row {
        label: "bulk, 8 connections, MB/s (ratio)",
        metric: Metric::Bulk8,
        figure: Figure::Ratio { decimals: 0 },
    },
    Row {
        label: "keep-alive requests/s, 50 conns, 64-byte answers (ratio)",
        metric: Metric::KeepAlive,
        figure: Figure::Ratio { decimals: 0 },
    },
    Row {
        label: "new TLS connections/s, 8 at a time (ratio)",
        metric: Metric::NewConns,
        figure: Figure::Ratio { decimals: 0 },
    },
    Row {
        label: "handshake latency p50, ms, unloaded (added)",
        metric: Metric::Handshake,
        figure: Figure::Added { p99: false },
    },
    Row {
        label: "handshake latency p99, ms, unloaded (added)",
        metric: Metric::Handshake,
        figure: Figure::Added { p99: true },
    },
    Row {
        label: "proxy CPU per GB relayed, 1 conn, ms",
        metric: Metric::Bulk1,
        figure: Figure::Cpu {
            scale: 1e12,
            decimals: 0,
        },
    },
    Row {
        label: "proxy CPU per GB relayed, 8 conns, ms",
        metric: Metric::Bulk8,
        figure: Figure::Cpu {
            scale: 1e12,
            decimals: 0,
        },
    },
    Row {
        label: "proxy CPU per keep-alive request, µs",
        metric: Metric::KeepAlive,
        figure: Figure::Cpu {
            scale: 1e6,
            decimals: 1,
        },
    },
    Row {
        label: "proxy CPU per new connection, µs",
        metric: Metric::NewConns,
        figure: Figure::Cpu {
            scale: 1e6,
            decimals: 0,
        },
    },
    Row {
        label: "proxy peak RSS at 50 connections, MiB",
        metric: Metric::KeepAlive,
        figure: Figure::PeakRss,
    },
];

fn cell(samples: &[Sample], row: &Row, target: Target) -> String {
    let of = |t: Target| -> Vec<&Sample> {
        samples
            .iter()
            .filter(|s| s.metric == row.metric && s.target == t)
            .collect()
    };
    let mine = of(target);
    if mine.is_empty() {
        return "–".to_string();
    }
    let direct = of(Target::Direct);
    let paired = |f: &dyn Fn(&Sample, &Sample) -> Option<f64>| -> Vec<f64> {
        mine.iter()
            .filter_map(|s| {
                direct
                    .iter()
                    .find(|d| d.round == s.round)
                    .and_then(|d| f(s, d))
            })
            .collect()
    };
    match row.figure {
        Figure::Ratio { decimals } => {
            let value = median(mine.iter().map(|s| s.value).collect());
            if target == Target::Direct {
                return format!("{value:.decimals$}");
            }
            let ratio = median(paired(&|s, d| (d.value > 0.0).then(|| s.value / d.value)));
            format!("{value:.decimals$} ({ratio:.2})")
        }
        Figure::Added { p99 } => {
            let pick = |s: &Sample| if p99 { s.p99_ms } else { s.p50_ms };
            let value = median(mine.iter().filter_map(|s| pick(s)).collect());
            if target == Target::Direct {
                return format!("{value:.3}");
            }
            let added = median(paired(&|s, d| Some(pick(s)? - pick(d)?)));
            format!("{value:.3} ({added:+.3})")
        }
        Figure::Cpu { scale, decimals } => {
            let v: Vec<f64> = mine.iter().filter_map(|s| s.proxy_cpu_per_unit).collect();
            if v.is_empty() {
                return "–".to_string();
            }
            format!("{:.decimals$}", median(v) * scale)
        }
        Figure::PeakRss => {
            let v: Vec<f64> = mine
                .iter()
                .filter_map(|s| s.proxy_peak_rss_kib)
                .map(|k| k as f64 / 1024.0)
                .collect();
            if v.is_empty() {
                return "–".to_string();
            }
            format!("{:.1}", median(v))
        }
    }
}

/// Median share of one CPU used by other processes above which a run is flagged.
const NOISY: f64 = 0.10;

/// Median (mean of the middle two for an even count); NaN when empty.
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(Vec::new()).is_nan());
    }
}
