//! The load generator: `loadgen run` prints the comparison table (direct,
//! passthru, HAProxy, nginx stream), `loadgen compare` the same comparison
//! made with wrk and curl against the goals, `loadgen syscalls` the system
//! calls per keep-alive request, `loadgen idle` the memory per idle
//! connection. Thin: parse the command line, run, exit 1 with one sentence
//! on failure. See `docs/benchmarking.md`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use passthru_benches::compare::{self, CompareOptions};
use passthru_benches::rounds::Shape;
use passthru_benches::session::{self, IdleOptions, RunOptions};
use passthru_benches::syscalls;
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
    /// The comparison with wrk and curl, each proxy paired with a direct run,
    /// and idle memory at two connection counts: one table with the goals.
    Compare {
        /// About 2 minutes: 2 rounds, 2 s wrk runs, 8 × 16 MiB and 64 MiB
        /// downloads, 40 handshakes, 500 and 1,000 idle connections.
        #[arg(long)]
        quick: bool,
        /// Rounds (default 3, or 2 with --quick).
        #[arg(long)]
        rounds: Option<usize>,
        /// Seconds of each wrk run (default 5, or 2 with --quick).
        #[arg(long)]
        wrk_seconds: Option<u64>,
        /// MiB each of the 8 parallel downloads fetches (default 256, or 16 with --quick).
        #[arg(long)]
        bulk_parallel_mib: Option<u64>,
        /// MiB the single download fetches (default 1024, or 64 with --quick).
        #[arg(long)]
        bulk_single_mib: Option<u64>,
        /// Sequential handshakes per run (default 300, or 40 with --quick).
        #[arg(long)]
        handshakes: Option<usize>,
        /// Idle connection counts (default 5000,10000, or 500,1000 with --quick).
        #[arg(long, value_delimiter = ',')]
        idle: Vec<usize>,
        #[command(flatten)]
        common: Common,
    },
    /// System calls per keep-alive request, by call, for each proxy (perf, or strace).
    Syscalls {
        /// Seconds counted per proxy.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Count per new TLS connection instead (wrk with `Connection: close`).
        #[arg(long)]
        close: bool,
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
                Command::Compare {
                    quick,
                    rounds,
                    wrk_seconds,
                    bulk_parallel_mib,
                    bulk_single_mib,
                    handshakes,
                    idle,
                    common,
                } => {
                    let pick = |v: Option<u64>, full: u64, short: u64| {
                        v.unwrap_or(if quick { short } else { full })
                    };
                    let idle = if idle.is_empty() {
                        if quick {
                            vec![500, 1000]
                        } else {
                            vec![5000, 10_000]
                        }
                    } else {
                        idle
                    };
                    compare::compare(CompareOptions {
                        rounds: rounds.unwrap_or(if quick { 2 } else { 3 }).max(1),
                        wrk_duration: Duration::from_secs(pick(wrk_seconds, 5, 2).max(1)),
                        bulk_parallel_bytes: pick(bulk_parallel_mib, 256, 16).max(1) << 20,
                        bulk_single_bytes: pick(bulk_single_mib, 1024, 64).max(1) << 20,
                        handshakes: handshakes.unwrap_or(if quick { 40 } else { 300 }).max(1),
                        idle_counts: idle,
                        plan: plan(&common, RUN_CONNECTIONS),
                        out: common.out,
                    })
                    .await
                }
                Command::Syscalls {
                    seconds,
                    close,
                    common,
                } => {
                    syscalls::syscalls(
                        plan(&common, RUN_CONNECTIONS),
                        Duration::from_secs(seconds.max(1)),
                        close,
                    )
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
