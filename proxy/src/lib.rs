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
//! - [`clienthello`]: pure ClientHello parser (SNI, ALPN, versions, JA4). No I/O.
//!   Record reassembly, the hello, wire numbers and errors are files of their
//!   own under `clienthello/`.
//! - [`route`]: server-name patterns and the route table, built from routes. No I/O.
//! - [`routing`]: routes, backends and forwarding mode: what a reload swaps.
//! - [`backend`]: server lists and balancing.
//! - [`health`]: active TCP health checks with rise/fall.
//! - [`forward`]: the bidirectional byte copy with half-close and idle timeout.
//! - [`refusal`]: every way a connection ends early, what goes on the wire,
//!   and the [`refusal::Outcome`] of every connection. No I/O.
//! - [`alert`]: TLS alert records and the plaintext-HTTP 400 reply.
//! - `front` (private): the client's side before routing: reading the PROXY
//!   header, an inbound CONNECT and the ClientHello; writing every refusal's reply.
//! - `upstream` (private): reaching a server, directly or through the `via`
//!   hop, and replaying the buffered bytes to it.
//! - [`conn`]: one connection in wire-step order (read_front, route,
//!   open_upstream, replay, forward, account); the only place that sequences the above.
//! - [`explain`]: `check --explain NAME`: the route a name gets, and why.
//! - [`drain`]: the lifecycle phase the admin endpoint reports, and who polls
//!   `/healthz` (for `monitor_fall`).
//! - [`listener`]: the accept loop.
//! - [`server`]: binds every listener, runs them, shuts down.
//! - [`workers`]: the runtime shape: one single-threaded runtime per thread,
//!   each accepting on every listener.
//! - [`reload`]: SIGHUP: re-read the file, swap the routing, report what needs a restart.
//! - [`admin`]: the admin HTTP endpoint: /healthz, /readyz, /metrics.
//! - [`observe`]: follows a TLS handshake in clear without altering a byte. No I/O.
//!   The report types (`observe/handshake.rs`), the observer
//!   (`observe/observer.rs`), record framing, messages, certificates, names
//!   and the forwarding tap are files under `observe/`.
//! - [`metrics`]: Prometheus metric families, names as in the spec.
//! - [`access_log`]: one line per finished connection, text or JSON.
//! - [`logging`]: diagnostics subscriber (stderr, `RUST_LOG`).
//! - [`proxy_protocol`]: PROXY protocol v1/v2 headers, parsed and encoded. No I/O.
//!   The shared header types are in `proxy_protocol/header.rs`, each version
//!   in `v1.rs` and `v2.rs`.
//! - [`trust`]: `trusted_proxies`, the peers allowed to send a PROXY header.
//! - [`signal`]: SIGTERM/SIGINT → shutdown, SIGHUP → reload.
//!
//! Dialling, the `via` CONNECT client, `host:port`, socket read/write
//! helpers and thumbprints are in the `passthru-net` crate, shared with the
//! certificate toolkit and the lab. Which module may import which:
//! `docs/architecture.md`.
#![warn(missing_docs)]

pub mod access_log;
pub mod admin;
pub mod alert;
pub mod backend;
pub mod client_limit;
pub mod clienthello;
pub mod config;
pub mod conn;
pub mod drain;
pub mod explain;
pub mod forward;
mod front;
pub mod handoff;
pub mod health;
pub mod inherited;
pub mod listener;
pub mod logging;
pub mod metrics;
pub mod observe;
pub mod proxy_protocol;
pub mod refusal;
pub mod reload;
pub mod route;
pub mod routing;
pub mod server;
pub mod signal;
pub mod slots;
pub mod sniff;
pub mod trust;
mod upstream;
pub mod workers;

pub use config::{Config, ConfigError};
pub use server::Server;
