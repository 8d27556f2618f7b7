//! The `passthru` binary: parse the command line, load the configuration,
//! run or check, and map errors to exit codes (0 ok, 1 runtime failure,
//! 2 usage or configuration error) with one sentence on stderr.

mod cli;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use passthru::access_log::{AccessLog, LogFormat};
use passthru::handoff::Takeover;
use passthru::inherited::Inherited;
use passthru::workers::{self, Workers};
use passthru::{Config, Server, logging, signal};

use crate::cli::{Cli, Command, Format};

/// jemalloc, set up in `.cargo/config.toml` to give the memory of closed
/// connections back to the kernel within seconds (docs/dependencies.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Check {
            config,
            explain,
            alpn,
        } => check(&config, explain.as_deref(), &alpn),
        Command::Run {
            config,
            log_format,
            takeover,
            threads,
        } => run(config, log_format, takeover, threads),
    }
}

fn check(path: &Path, explain: Option<&str>, alpn: &[String]) -> ExitCode {
    match Config::from_file(path) {
        Ok(config) => {
            for warning in &config.warnings {
                eprintln!("passthru: warning: {warning}");
            }
            println!("{}", config.summary());
            if let Some(name) = explain {
                print!("{}", passthru::explain::explain(&config, name, alpn));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("passthru: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(path: PathBuf, format: Format, takeover: Option<PathBuf>, threads: Option<u16>) -> ExitCode {
    let format = match format {
        Format::Text => LogFormat::Text,
        Format::Json => LogFormat::Json,
    };
    let config = match Config::from_file(&path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("passthru: {e}");
            return ExitCode::from(2);
        }
    };
    // Before any thread starts: socket activation reads (and removes) the
    // LISTEN_* variables.
    let (takeover, mut inherited) = match takeover {
        Some(socket) => match Takeover::connect(&socket) {
            Ok((takeover, inherited)) => (Some(takeover), inherited),
            Err(e) => {
                eprintln!("passthru: {e}");
                return ExitCode::from(2);
            }
        },
        None => match Inherited::from_systemd() {
            Ok(inherited) => (None, inherited),
            Err(e) => {
                eprintln!("passthru: socket activation: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let taking_over = takeover.is_some();
    logging::init(format);
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    // This thread's runtime runs the server and accepts; the other threads
    // forward the connections placed on them (see `workers`).
    let threads = threads.map_or_else(workers::default_threads, usize::from);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("passthru: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.spawn(workers::tick());
    let workers = match Workers::start(threads.saturating_sub(1)) {
        Ok(workers) => workers,
        Err(e) => {
            eprintln!("passthru: cannot start the worker threads: {e}");
            return ExitCode::from(1);
        }
    };
    let spread = workers.handles();
    let code = runtime.block_on(async move {
        let (shutdown, reloads) = match signal::install() {
            Ok(handlers) => handlers,
            Err(e) => {
                eprintln!("passthru: cannot install signal handlers: {e}");
                return ExitCode::from(1);
            }
        };
        let log = AccessLog::stdout(format);
        let server = match Server::bind_inheriting(&config, log, &mut inherited, takeover) {
            Ok(server) => server.spread_over(spread),
            Err(e) => {
                eprintln!("passthru: {e}");
                // Taking over, nothing has changed in the running process.
                return ExitCode::from(if taking_over { 2 } else { 1 });
            }
        };
        for addr in inherited.addrs() {
            if taking_over {
                tracing::info!(%addr, "a listener the configuration no longer has stays with the previous process");
            } else {
                tracing::warn!(%addr, "an inherited socket matches no listener's bind; closed");
            }
        }
        drop(inherited);
        tokio::spawn(server.reload_handle().serve(reloads, path));
        let (first, again) = shutdown.tokens();
        server
            .run_until(first.cancelled_owned(), again.cancelled_owned())
            .await;
        ExitCode::SUCCESS
    });
    workers.stop();
    // The last diagnostics, bounded: a stalled stderr never holds the exit.
    logging::flush(std::time::Duration::from_secs(1));
    code
}
