//! Command line of `lb-sim` (clap derive).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Run every lab scenario (or the ones named) and print what each hop saw.
///
/// Each scenario drives real TLS handshakes over 127.0.0.1: an agent with a
/// machine certificate pinning the gateway, a balancer or proxy, a gateway
/// that requires the client certificate and tunnels to a backend, and a
/// second mutual-TLS handshake inside. Exit 0 only when every observed
/// outcome equals its expectation, 1 otherwise, 2 on a usage error.
#[derive(Debug, Parser)]
#[command(name = "lb-sim", version, about, long_about)]
pub(crate) struct Cli {
    /// List the scenarios and exit.
    #[arg(long)]
    pub(crate) list: bool,
    /// Run only this scenario (repeatable); see --list.
    #[arg(long, value_name = "NAME")]
    pub(crate) scenario: Vec<String>,
    /// Also write the results as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub(crate) json: Option<PathBuf>,
    /// Also write a self-contained HTML report (sequence diagrams) to FILE.
    #[arg(long, value_name = "FILE")]
    pub(crate) html: Option<PathBuf>,
    /// Do not print one progress line per finished scenario on stderr.
    #[arg(long, short)]
    pub(crate) quiet: bool,
    /// Subcommand (none: run the scenarios).
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Keep one topology up on local ports until Ctrl-C and print how to
    /// point openssl s_client, curl or passthru-certs probe at it.
    Serve {
        /// Which arrangement to run.
        #[arg(long, value_enum)]
        mode: Mode,
        /// Directory for the lab PEM files (default: a new temporary one,
        /// removed on exit).
        #[arg(long, value_name = "DIR")]
        pki_dir: Option<PathBuf>,
    },
}

/// `serve --mode` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Mode {
    /// agent → passthru → gateway → backend.
    Passthrough,
    /// agent → offloading balancer (plaintext onward) → gateway.
    Offload,
    /// agent → offloading balancer (re-encrypts) → gateway.
    OffloadReencrypt,
    /// agent → passthru → CONNECT proxy → gateway.
    ConnectHop,
}

impl Mode {
    /// The topology path.
    pub(crate) fn path(self) -> lb_sim::Path {
        match self {
            Mode::Passthrough => lb_sim::Path::Passthrough,
            Mode::Offload => lb_sim::Path::Offload,
            Mode::OffloadReencrypt => lb_sim::Path::OffloadReencrypt,
            Mode::ConnectHop => lb_sim::Path::ConnectHop,
        }
    }
}
