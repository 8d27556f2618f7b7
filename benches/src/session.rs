//! One invocation of the load generator, start to finish: lay out the lab,
//! start the peers, run the rounds (or the idle test), print the table,
//! write the JSON file, stop the peers. A failure or Ctrl-C at any point
//! still stops every process started (see [`crate::daemon`]).

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use serde::Serialize;
use tokio::time::Instant;

use crate::client::Agent;
use crate::idle::{self, IdleResult};
use crate::lab::Lab;
use crate::procfs;
use crate::report::{self, RunInfo};
use crate::rounds::{self, Shape};
use crate::topology::{Plan, Target, Topology};

/// Options of `loadgen run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Rounds, timing and metrics.
    pub shape: Shape,
    /// Which proxies.
    pub plan: Plan,
    /// JSON output file (default under `target/loadgen/`).
    pub out: Option<PathBuf>,
}

/// Options of `loadgen idle`.
#[derive(Debug, Clone)]
pub struct IdleOptions {
    /// Connections to hold.
    pub connections: usize,
    /// Which proxies (direct is ignored).
    pub plan: Plan,
    /// JSON output file.
    pub out: Option<PathBuf>,
}

/// `loadgen run`: the comparison table.
pub async fn run(options: RunOptions) -> Result<()> {
    let started = Instant::now();
    let lab = Lab::new()?;
    let agent = Agent::new(lab.client_config()?)?;
    let topology = Topology::start(&lab, &options.plan).await?;
    let shape = &options.shape;
    eprintln!(
        "loadgen: {} round(s) of {} metric(s) against {}; warm-up {:?}, window {:?} each",
        shape.rounds,
        shape.metrics.len(),
        join(&topology.targets()),
        shape.timing.warmup,
        shape.timing.window
    );
    let result = rounds::run(&topology, &agent, shape).await;
    let info = run_info(&topology, format!("{shape:?}"), started);
    topology.stop().await;
    let samples = result?;

    let table = report::table(&samples);
    let path = options.out.unwrap_or_else(|| default_out("run"));
    report::write_json(&path, &info, &samples, &table)?;
    println!("{}", header(&info));
    for (t, why) in &info.skipped {
        println!("{t}: not run: {why}");
    }
    println!("\n{table}");
    println!("{}", report::noise(&samples));
    println!("Every sample: {}", path.display());
    Ok(())
}

/// `loadgen idle`: memory per idle connection.
pub async fn idle(options: IdleOptions) -> Result<()> {
    let started = Instant::now();
    let n = connections_allowed(options.connections);
    let lab = Lab::new()?;
    let agent = Agent::new(lab.client_config()?)?;
    let mut plan = options.plan.clone();
    plan.connections = n;
    let topology = Topology::start(&lab, &plan).await?;
    let mut results: Vec<IdleResult> = Vec::new();
    let mut failure = None;
    for target in topology.targets() {
        let (Some(addr), Some(daemon)) = (topology.addr(target), topology.daemon(target)) else {
            continue;
        };
        eprintln!("loadgen idle: opening {n} connections through {target}");
        match idle::measure(target, addr, daemon, &agent, n, idle::AFTER_CLOSE).await {
            Ok(r) => results.push(r),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let info = run_info(&topology, format!("idle, {n} connections"), started);
    topology.stop().await;
    if let Some(e) = failure {
        return Err(e);
    }

    #[derive(Serialize)]
    struct File<'a> {
        info: &'a RunInfo,
        results: &'a [IdleResult],
    }
    let path = options.out.unwrap_or_else(|| default_out("idle"));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&File {
            info: &info,
            results: &results,
        })?,
    )?;
    println!("{}", header(&info));
    println!(
        "\n| proxy | idle connections | RSS before, MiB | RSS holding them, MiB | per connection, KiB | RSS 3 s after closing, MiB |"
    );
    println!("|---|---|---|---|---|---|");
    for r in &results {
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            r.target,
            r.held,
            r.rss_before_kib as f64 / 1024.0,
            r.rss_held_kib as f64 / 1024.0,
            r.bytes_per_conn / 1024.0,
            r.rss_after_kib as f64 / 1024.0
        );
    }
    println!("\nEvery figure: {}", path.display());
    Ok(())
}

/// The proxy holds two sockets per connection and inherits this process's
/// open-files limit: clamp `wanted` to what the limit allows, saying so.
pub(crate) fn connections_allowed(wanted: usize) -> usize {
    let Some(limit) = procfs::open_files_limit() else {
        return wanted;
    };
    let allowed = usize::try_from(limit.saturating_sub(FD_SLACK) / 2).unwrap_or(usize::MAX);
    if allowed >= wanted {
        return wanted;
    }
    eprintln!(
        "loadgen idle: the open-files limit is {limit}, which lets a proxy hold {allowed} connections \
         (two sockets each), not {wanted}; measuring {allowed}. For {wanted}, raise it first: \
         `ulimit -n {}` (needs a hard limit at least that high)",
        (2 * wanted as u64 + FD_SLACK).next_power_of_two()
    );
    allowed
}

/// File descriptors a proxy needs besides its connections' sockets.
const FD_SLACK: u64 = 256;

/// Every proxy the load generator knows, for the default plan.
pub fn all_proxies() -> Vec<Target> {
    Target::ALL
        .into_iter()
        .filter(|t| *t != Target::Direct)
        .collect()
}

pub(crate) fn run_info(topology: &Topology, shape: String, started: Instant) -> RunInfo {
    let (cpu_model, cpus) = procfs::cpu_model();
    RunInfo {
        cpu_model,
        cpus,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
        versions: topology.versions.clone(),
        skipped: topology.skipped.clone(),
        shape,
        elapsed_s: started.elapsed().as_secs_f64(),
    }
}

pub(crate) fn header(info: &RunInfo) -> String {
    format!(
        "Machine: {} CPU(s), {}, Linux {}; {}; run took {:.0} s",
        info.cpus,
        info.cpu_model,
        info.kernel,
        info.versions
            .iter()
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
            .join("; "),
        info.elapsed_s
    )
}

pub(crate) fn default_out(kind: &str) -> PathBuf {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    PathBuf::from("target")
        .join("loadgen")
        .join(format!("{kind}-{secs}.json"))
}

fn join(targets: &[Target]) -> String {
    targets
        .iter()
        .map(|t| t.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
