//! passthru: a load-balancer-aware TLS passthrough proxy.
//!
//! passthru reads only the TLS ClientHello of each connection, picks a
//! backend by SNI (and optionally ALPN), and forwards every byte untouched.
//! It never terminates TLS, so a client certificate presented by an agent
//! reaches the gateway that asked for it, and the gateway's own (often
//! pinned) certificate reaches the agent.
//!
//! # Layout
//!
//! - [`config`]: the TOML file → typed, validated [`Config`]; refuses
//!   SSL-offloading keys with their own message.
//! - [`sniff`]: classifies the first bytes (TLS, SSLv2 hello, plaintext HTTP, other).
//! - [`clienthello`]: pure ClientHello parser (SNI, ALPN, versions). No I/O.
//! - [`route`]: server-name patterns and the route table.
//! - [`backend`]: server lists and balancing.
//! - [`health`]: active TCP health checks with rise/fall.
//! - [`connect`]: dialling a backend's servers within `connect_timeout`.
//! - [`connect_hop`]: the upstream HTTP CONNECT hop (`via`).
//! - [`forward`]: the bidirectional byte copy with half-close and idle timeout.
//! - [`refusal`]: every way a connection ends early, and what goes on the wire.
//! - [`alert`]: TLS alert records and the plaintext-HTTP 400 reply.
//! - `front` (private): reading the ClientHello, inbound CONNECT, passthru's own replies.
//! - `upstream` (private): reaching a server, directly or through the `via` hop.
//! - [`conn`]: the per-connection pipeline; the only place that sequences the above.
//! - [`explain`]: `check --explain NAME`: the route a name gets, and why.
//! - [`drain`]: the lifecycle phase the admin endpoint reports.
//! - [`listener`]: the accept loop.
//! - [`server`]: binds every listener, runs them, shuts down.
//! - [`admin`]: the admin HTTP endpoint: /healthz, /readyz, /metrics.
//! - [`observe`]: follows a TLS handshake in clear without altering a byte. No I/O.
//! - [`metrics`]: Prometheus metric families, names as in the spec.
//! - [`access_log`]: one line per finished connection, text or JSON.
//! - [`logging`]: diagnostics subscriber (stderr, `RUST_LOG`).
//! - [`proxy_protocol`]: PROXY protocol v1/v2 headers, parsed and encoded. No I/O.
//! - [`trust`]: `trusted_proxies`, the peers allowed to send a PROXY header.
//! - [`signal`]: SIGTERM/SIGINT → shutdown, SIGHUP → reload.
#![warn(missing_docs)]

pub mod access_log;
pub mod admin;
pub mod alert;
pub mod backend;
pub mod client_limit;
pub mod clienthello;
pub mod config;
pub mod conn;
pub mod connect;
pub mod connect_hop;
pub mod drain;
pub mod explain;
pub mod forward;
mod front;
// The inbound CONNECT head parser, public (hidden) for the fuzz target
// `fuzz/fuzz_targets/connect_request.rs`.
#[doc(hidden)]
pub use front::{ConnectRequest, parse_connect};
pub mod health;
pub mod listener;
pub mod logging;
pub mod metrics;
pub mod observe;
pub mod proxy_protocol;
pub mod refusal;
pub mod route;
pub mod server;
pub mod signal;
pub mod slots;
pub mod sniff;
pub mod trust;
mod upstream;

pub use config::{Config, ConfigError};
pub use server::Server;
