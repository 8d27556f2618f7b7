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
#[command(
    name = "lb-sim",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("PASSTHRU_BUILD"), ")"),
    about,
    long_about
)]
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
    ///
    /// Every component listens on 127.0.0.1, on a free port the system picks
    /// unless --port-base N fixes them: the balancer (what openssl and curl
    /// connect to) on N, the gateway on N+1, the backend on N+2, and the
    /// CONNECT proxy (connect-hop only) on N+3. Every address is printed
    /// either way. Exit 1 when a port is already in use, 2 on a usage error.
    Serve {
        /// Which arrangement to run.
        #[arg(long, value_enum)]
        mode: Mode,
        /// Directory for the lab PEM files (default: a new temporary one,
        /// removed on exit).
        #[arg(long, value_name = "DIR")]
        pki_dir: Option<PathBuf>,
        /// Listen on fixed ports from N: balancer N, gateway N+1, backend
        /// N+2, CONNECT proxy N+3 (1 <= N <= 65532; default: free ports).
        #[arg(long, value_name = "N", value_parser = port_base)]
        port_base: Option<lb_sim::topology::Ports>,
    },
    /// The post-quantum scenario's probe, run by lb-sim itself under
    /// `unshare -n`: shapes that namespace's loopback and prints one JSON
    /// result.
    #[command(hide = true)]
    PostQuantumProbe,
}

/// `--port-base N`: a port number that leaves room for the whole topology.
fn port_base(text: &str) -> Result<lb_sim::topology::Ports, String> {
    let base: u16 = text
        .parse()
        .map_err(|_| format!("\"{text}\" is not a port number (1 to 65535)"))?;
    lb_sim::topology::Ports::from_base(base).map_err(|e| e.to_string())
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
