//! The load generator: `loadgen run` prints the comparison table (direct,
//! passthru, HAProxy, nginx stream), `loadgen idle` the memory per idle
//! connection. Thin: parse the command line, run, exit 1 with one sentence
//! on failure. See `docs/benchmarking.md`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use passthru_benches::rounds::Shape;
use passthru_benches::session::{self, IdleOptions, RunOptions};
use passthru_benches::topology::{Plan, Target};
use passthru_benches::workload::{Metric, Timing};

/// Load generator for passthru: ratios to a direct connection, with HAProxy
/// and nginx stream in the same run.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every metric against every target and print the table.
    Run {
        /// About 2 minutes instead of about 7: 3 rounds, shorter windows.
        #[arg(long)]
        quick: bool,
        /// Rounds (default 5, or 3 with --quick).
        #[arg(long)]
        rounds: Option<usize>,
        /// Measured window per throughput metric, seconds (default 3, or 1.5 with --quick).
        #[arg(long)]
        window: Option<f64>,
        /// Metrics to run (default: all).
        #[arg(long, value_enum, value_delimiter = ',')]
        metrics: Vec<MetricArg>,
        #[command(flatten)]
        common: Common,
    },
    /// Hold N idle TLS connections through each proxy and report RSS per connection.
    Idle {
        /// Connections to hold.
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Debug, clap::Args)]
struct Common {
    /// Proxies to compare (default: all installed; direct always runs).
    #[arg(long, value_enum, value_delimiter = ',')]
    proxies: Vec<ProxyArg>,
    /// The passthru binary (default: `passthru` next to this program).
    #[arg(long)]
    passthru: Option<PathBuf>,
    /// Where to write every sample as JSON (default: target/loadgen/KIND-TIME.json).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ProxyArg {
    Passthru,
    Haproxy,
    Nginx,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum MetricArg {
    Bulk1,
    Bulk8,
    KeepAlive,
    NewConns,
    Handshake,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before any thread or peer exists, so that all of them inherit it.
    let nice = passthru_benches::procfs::raise_priority();
    eprintln!("loadgen: running at nice {nice} (peers inherit it)");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let work = async {
            match cli.command {
                Command::Run {
                    quick,
                    rounds,
                    window,
                    metrics,
                    common,
                } => {
                    let timing = Timing {
                        warmup: Duration::from_millis(if quick { 500 } else { 1000 }),
                        window: Duration::from_secs_f64(window.unwrap_or(if quick {
                            1.5
                        } else {
                            3.0
                        })),
                        handshakes: if quick { 200 } else { 400 },
                    };
                    let metrics = if metrics.is_empty() {
                        Metric::ALL.to_vec()
                    } else {
                        metrics.into_iter().map(metric).collect()
                    };
                    let shape = Shape {
                        rounds: rounds.unwrap_or(if quick { 3 } else { 5 }).max(1),
                        timing,
                        metrics,
                    };
                    session::run(RunOptions {
                        shape,
                        plan: plan(&common, RUN_CONNECTIONS),
                        out: common.out,
                    })
                    .await
                }
                Command::Idle {
                    connections,
                    common,
                } => {
                    session::idle(IdleOptions {
                        connections,
                        plan: plan(&common, connections),
                        out: common.out,
                    })
                    .await
                }
            }
        };
        tokio::select! {
            r = work => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted; stopping the peers")),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn plan(common: &Common, connections: usize) -> Plan {
    let proxies = if common.proxies.is_empty() {
        session::all_proxies()
    } else {
        common
            .proxies
            .iter()
            .map(|p| match p {
                ProxyArg::Passthru => Target::Passthru,
                ProxyArg::Haproxy => Target::Haproxy,
                ProxyArg::Nginx => Target::Nginx,
            })
            .collect()
    };
    let passthru = common.passthru.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join("passthru")))
            .unwrap_or_else(|| PathBuf::from("target/release/passthru"))
    });
    Plan {
        passthru,
        proxies,
        connections,
    }
}

fn metric(m: MetricArg) -> Metric {
    match m {
        MetricArg::Bulk1 => Metric::Bulk1,
        MetricArg::Bulk8 => Metric::Bulk8,
        MetricArg::KeepAlive => Metric::KeepAlive,
        MetricArg::NewConns => Metric::NewConns,
        MetricArg::Handshake => Metric::Handshake,
    }
}

/// Connections each peer must hold during `run` (50 keep-alive at most, plus slack).
const RUN_CONNECTIONS: usize = 1024;
