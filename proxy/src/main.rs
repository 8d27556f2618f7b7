//! The `passthru` binary: parse the command line, load the configuration,
//! run or check, and map errors to exit codes (0 ok, 1 runtime failure,
//! 2 usage or configuration error) with one sentence on stderr.

mod cli;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use passthru::access_log::{AccessLog, LogFormat};
use passthru::{Config, Server, logging, signal};

use crate::cli::{Cli, Command, Format};

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Check {
            config,
            explain,
            alpn,
        } => check(&config, explain.as_deref(), &alpn),
        Command::Run { config, log_format } => run(config, log_format),
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

fn run(path: PathBuf, format: Format) -> ExitCode {
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
    logging::init(format);
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("passthru: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(async move {
        let (shutdown, reloads) = match signal::install() {
            Ok(handlers) => handlers,
            Err(e) => {
                eprintln!("passthru: cannot install signal handlers: {e}");
                return ExitCode::from(1);
            }
        };
        let server = match Server::bind(&config, AccessLog::stdout(format)) {
            Ok(server) => server,
            Err(e) => {
                eprintln!("passthru: {e}");
                return ExitCode::from(1);
            }
        };
        tokio::spawn(server.reload_handle().serve(reloads, path));
        let (first, again) = shutdown.tokens();
        server
            .run_until(first.cancelled_owned(), again.cancelled_owned())
            .await;
        ExitCode::SUCCESS
    });
    // The last diagnostics, bounded: a stalled stderr never holds the exit.
    logging::flush(std::time::Duration::from_secs(1));
    code
}
