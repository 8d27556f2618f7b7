//! The command line of `passthru-certs` (clap derive): subcommands, flags,
//! and an example per subcommand in `--help`. Parsing only.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use passthru_certs::clock::{self, TimeError};
use passthru_certs::verify::Purpose;
use passthru_net::ViaUrl;
use time::OffsetDateTime;

/// Lab PKI, certificate inspection in every encoding, chain verification
/// that says why, and a TLS handshake probe for client-certificate gateways.
#[derive(Debug, Parser)]
#[command(
    name = "passthru-certs",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("PASSTHRU_BUILD"), ")"),
    after_help = EXAMPLES
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Write a complete lab PKI as PEM files (root CA, agent CA, agents,
    /// self-signed gateway, backend, balancer, fault variants) with a
    /// README.txt listing every file, its purpose and SHA-1 thumbprint.
    #[command(after_help = "Example:\n  passthru-certs lab --out ./lab --now 2026-09-01T00:00:00Z")]
    Lab(LabArgs),
    /// Describe certificates: names, key, usages, validity margin, serial
    /// (spaced, byte-reversed, openssl, base64, decimal) and SHA-1/SHA-256
    /// thumbprints (hex, colon, base64).
    #[command(after_help = "Examples:\n  \
        passthru-certs inspect lab/agent-01.pem\n  \
        passthru-certs inspect lab/agent-01.pem --match '01 30'     # byte-reversed serial from the registry\n  \
        openssl s_client -connect gw:443 -showcerts </dev/null | passthru-certs inspect - --json\n\n\
        With --match, exits 0 when the value is the serial or a thumbprint of some certificate, 1 otherwise.")]
    Inspect(InspectArgs),
    /// Verify a chain against a CA bundle and say precisely why it fails.
    /// Exit 0 valid, 1 invalid, 2 usage.
    #[command(after_help = "Examples:\n  \
        passthru-certs verify --ca lab/root-ca.pem lab/agent-01.chain.pem\n  \
        passthru-certs verify --ca lab/root-ca.pem lab/agent-not-yet-valid.chain.pem --at +2h\n  \
        passthru-certs verify --ca lab/root-ca.pem lab/backend.pem --purpose server --name backend.example.com")]
    Verify(VerifyArgs),
    /// Perform a real TLS handshake (optionally through an HTTP CONNECT
    /// proxy) and report each step. Exit 0 when every step went well, 1
    /// otherwise, 2 usage.
    #[command(after_help = "Examples:\n  \
        passthru-certs probe gw.example.com:443 --cert lab/agent-01.chain.pem --key lab/agent-01.key\n  \
        passthru-certs probe 10.0.1.10:443 --sni gw.example.com --ca lab/gateway.pem --via http://proxy.corp:3128")]
    Probe(ProbeArgs),
}

#[derive(Debug, Args)]
pub(crate) struct LabArgs {
    /// Output directory; created if missing, refused if not empty (see --force).
    #[arg(long, value_name = "DIR")]
    pub(crate) out: PathBuf,
    /// The "now" validity windows are relative to: RFC 3339, a date, or an
    /// offset like -2h (default: the system clock).
    #[arg(long, value_name = "TIME", value_parser = time_arg)]
    pub(crate) now: Option<OffsetDateTime>,
    /// Overwrite the lab files in a non-empty directory (other files are kept).
    #[arg(long)]
    pub(crate) force: bool,
    /// Print the written files as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// PEM (one or more certificates) or DER files; "-" reads stdin.
    #[arg(required = true, value_name = "FILE")]
    pub(crate) files: Vec<String>,
    /// A serial number or SHA-1/SHA-256 thumbprint in any encoding (hex with
    /// or without spaces or colons, byte-reversed, base64, decimal): say
    /// whether it is this certificate's.
    #[arg(long = "match", value_name = "VALUE")]
    pub(crate) match_value: Option<String>,
    /// Judge validity at this time instead of now (RFC 3339, date, or +10m/-2h).
    #[arg(long, value_name = "TIME", value_parser = time_arg)]
    pub(crate) at: Option<OffsetDateTime>,
    /// Machine-readable output.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// PEM bundle of trusted CA certificates (trust anchors).
    #[arg(long, value_name = "FILE")]
    pub(crate) ca: String,
    /// The chain to verify: leaf first, then intermediates (PEM or DER).
    #[arg(value_name = "CHAIN.pem")]
    pub(crate) chain: String,
    /// Verify at this time instead of now (RFC 3339, date, or +10m/-2h).
    #[arg(long, value_name = "TIME", value_parser = time_arg)]
    pub(crate) at: Option<OffsetDateTime>,
    /// What the leaf must be good for [default: server with --name, else client].
    #[arg(long, value_enum, value_name = "PURPOSE")]
    pub(crate) purpose: Option<PurposeArg>,
    /// A host name or IP address the leaf must be valid for.
    #[arg(long, value_name = "HOST")]
    pub(crate) name: Option<String>,
    /// Machine-readable output.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ProbeArgs {
    /// The server: HOST:PORT ("[::1]:443" for IPv6).
    #[arg(value_name = "HOST:PORT")]
    pub(crate) target: String,
    /// Server name to send in the ClientHello [default: HOST].
    #[arg(long, value_name = "NAME")]
    pub(crate) sni: Option<String>,
    /// Our client certificate chain (leaf first), PEM.
    #[arg(long, value_name = "FILE", requires = "key")]
    pub(crate) cert: Option<String>,
    /// The private key of --cert, PEM (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub(crate) key: Option<String>,
    /// Judge the server's chain against these CA certificates (or the pinned
    /// self-signed certificate itself); without it the chain is only shown.
    #[arg(long, value_name = "FILE")]
    pub(crate) ca: Option<String>,
    /// Go through an HTTP CONNECT proxy: http://[user:pass@]host:port.
    #[arg(long, value_name = "URL")]
    pub(crate) via: Option<ViaUrl>,
    /// Limit for each step (resolution, TCP, CONNECT, handshake).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    pub(crate) timeout: Duration,
    /// Machine-readable output.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `--purpose`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum PurposeArg {
    /// TLS client authentication (EKU clientAuth).
    Client,
    /// TLS server authentication (EKU serverAuth).
    Server,
}

impl From<PurposeArg> for Purpose {
    fn from(arg: PurposeArg) -> Self {
        match arg {
            PurposeArg::Client => Purpose::Client,
            PurposeArg::Server => Purpose::Server,
        }
    }
}

fn time_arg(value: &str) -> Result<OffsetDateTime, TimeError> {
    clock::parse_time(value, clock::now())
}

const EXAMPLES: &str = "\
Examples:
  passthru-certs lab --out ./lab
  passthru-certs inspect ./lab/agent-01.pem --match 'MAE='
  passthru-certs verify --ca ./lab/root-ca.pem ./lab/agent-01.chain.pem
  passthru-certs probe 127.0.0.1:8443 --sni gw.example.com --cert ./lab/agent-01.chain.pem --key ./lab/agent-01.key

Exit codes: 0 ok, 1 runtime failure or negative verdict, 2 usage or bad input.";
