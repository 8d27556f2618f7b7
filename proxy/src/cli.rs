//! Command line: `passthru run` and `passthru check`.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// TLS passthrough proxy: routes each connection by the SNI (and ALPN) of
/// its ClientHello and forwards the bytes untouched. passthru never
/// terminates TLS, so client certificates and pinned server certificates
/// reach their peers.
#[derive(Debug, Parser)]
#[command(
    name = "passthru",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("PASSTHRU_BUILD"), ")"),
    propagate_version = true
)]
#[command(
    after_help = "Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.\n\
Configuration keys: passthru.toml(5) (`man 5 passthru.toml`), or docs/configuration.md in the source tree."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the proxy until SIGTERM or SIGINT; SIGHUP reloads routes, backends and drain settings.
    ///
    /// One access-log line per finished connection goes to stdout;
    /// diagnostics go to stderr, filtered by RUST_LOG (default "info").
    /// On SIGTERM/SIGINT passthru drains: with [admin], /healthz says 503 at
    /// once while the listeners keep accepting for drain_delay (default 20s;
    /// shorter with monitor_fall, once the balancer's monitors have seen the
    /// 503s); then they close and open connections get up to drain_timeout
    /// (default 30s). A second SIGTERM/SIGINT ends the drain at once. Every
    /// access-log line is written before exit.
    /// Inherited listening sockets (systemd socket activation, LISTEN_FDS)
    /// serve the listeners whose bind they match.
    Run {
        /// The TOML configuration file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Format of the access log (stdout) and diagnostics (stderr).
        #[arg(long, value_enum, default_value_t = Format::Text, value_name = "FORMAT")]
        log_format: Format,
        /// Take the listening sockets over from the running passthru whose
        /// `[admin] handoff` is SOCKET: it stops accepting once this one
        /// accepts, and drains. On any failure before that, it is left
        /// unchanged and this one exits 2.
        #[arg(long, value_name = "SOCKET")]
        takeover: Option<PathBuf>,
        /// Threads that forward connections, each with its own event loop
        /// (the first also accepts and serves the admin port; new
        /// connections stay on it, lasting ones spread over all). Default:
        /// one per CPU this process may use.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
        threads: Option<u16>,
    },
    /// Validate a configuration file and exit: 0 and a one-line summary
    /// when valid, 2 and the reason when not.
    ///
    /// Warnings (routes that can never match) are printed on stderr and do
    /// not change the exit code.
    Check {
        /// The TOML configuration file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Also say which route, backend, servers, `via` hop and PROXY header
        /// a connection with this SNI would get, and why.
        #[arg(long, value_name = "NAME")]
        explain: Option<String>,
        /// With --explain: an ALPN protocol the client offers (repeatable).
        #[arg(long, value_name = "PROTO", requires = "explain")]
        alpn: Vec<String>,
    },
}

/// `--log-format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// key=value pairs, one line per event.
    Text,
    /// One JSON object per line.
    Json,
}
