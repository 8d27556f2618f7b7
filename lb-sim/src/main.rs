//! `lb-sim`: parse the command line, run the scenarios (or `serve`), print
//! the table, write the requested files, and exit 0 only when every
//! observed outcome equals its expectation (1 otherwise, 2 on usage errors).

use std::process::ExitCode;

use clap::Parser;
use lb_sim::report::{html, json, table};
use lb_sim::scenario::{self, Scenario};
use lb_sim::{Limits, run_all, serve};

mod cli;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    if cli.list {
        for s in scenario::all() {
            println!("{:<28} {}", s.name, s.title);
        }
        return ExitCode::SUCCESS;
    }
    let scenarios = match select(&cli.scenario) {
        Ok(s) => s,
        Err(unknown) => {
            eprintln!("lb-sim: unknown scenario \"{unknown}\"; `lb-sim --list` shows the names");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lb-sim: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    if let Some(Command::PostQuantumProbe) = &cli.command {
        let crossing = runtime.block_on(lb_sim::post_quantum::probe());
        return match serde_json::to_string(&crossing) {
            Ok(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("lb-sim post-quantum-probe: {e}");
                ExitCode::from(1)
            }
        };
    }
    if let Some(Command::Serve {
        mode,
        pki_dir,
        port_base,
    }) = &cli.command
    {
        let ports = port_base.unwrap_or_default();
        return match runtime.block_on(serve::serve(mode.path(), pki_dir.as_deref(), ports)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("lb-sim serve: {e:#}");
                ExitCode::from(1)
            }
        };
    }
    let quiet = cli.quiet;
    let report = runtime.block_on(run_all(&scenarios, Limits::default(), |result| {
        if !quiet {
            eprintln!("{}", table::progress_line(result));
        }
    }));
    let report = match report {
        Ok(report) => report,
        Err(e) => {
            eprintln!("lb-sim: {e:#}");
            return ExitCode::from(1);
        }
    };
    print!("{}", table::render(&report));
    if let Some(path) = &cli.json
        && let Err(e) = std::fs::write(path, json::render(&report))
    {
        eprintln!("lb-sim: cannot write {}: {e}", path.display());
        return ExitCode::from(1);
    }
    if let Some(path) = &cli.html {
        if let Err(e) = std::fs::write(path, html::render(&report)) {
            eprintln!("lb-sim: cannot write {}: {e}", path.display());
            return ExitCode::from(1);
        }
        println!("HTML report: {}", path.display());
    }
    if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The scenarios named (all when none), or the first unknown name.
fn select(names: &[String]) -> Result<Vec<Scenario>, String> {
    if names.is_empty() {
        return Ok(scenario::all());
    }
    names
        .iter()
        .map(|n| scenario::find(n).ok_or_else(|| n.clone()))
        .collect()
}

/// Diagnostics on stderr, quiet unless RUST_LOG asks (passthru's own
/// warnings about refused connections are expected in failing scenarios).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
