//! lb-sim: a lab that shows, with real TLS handshakes over loopback sockets,
//! what each balancer arrangement does to client-certificate gateways.
//!
//! The field: an Internet gateway for managed agents validates each agent's
//! machine certificate chain, then tunnels TCP to a backend, and the agent
//! and the backend run a second mutual-TLS handshake inside that tunnel.
//! Agents pin the gateway's self-signed certificate by SHA-1 thumbprint. A
//! balancer in front must pass the handshake through; SSL offloading (or an
//! inspecting proxy) breaks it. lb-sim runs the same agent, gateway and
//! backend through each arrangement and records what every hop saw.
//!
//! # Components (each a real TLS endpoint on 127.0.0.1)
//!
//! Scenario runs bind port 0 everywhere; `serve --port-base N` fixes the
//! ports ([`topology::Ports`]): front (balancer) N, gateway N+1, backend N+2,
//! CONNECT proxy N+3.
//!
//! - [`agent`]: TLS client with a machine certificate, pinning the gateway;
//!   inner mutual TLS with the backend; request/answer exchanges.
//! - [`balancer`]: `passthrough` (the real passthru server, in-process),
//!   `offload` and `offload-reencrypt` relays (passthru refuses to offload).
//! - [`real`]: the same offloading done by real HAProxy and nginx, child
//!   processes started from config templates.
//! - [`front`]: a layer-4 balancer in front of passthru: source NAT, PROXY
//!   v2, an idle timeout that drops flows silently (`snat`, `idle-reset`).
//! - [`post_quantum`], [`netns`]: headless Chromium's post-quantum hello
//!   through passthru in a private network namespace with a small MTU.
//! - [`connect_proxy`]: HTTP CONNECT proxy, plain tunnel or TLS-inspecting.
//! - [`gateway`]: requires and validates the client certificate, optional
//!   identity check ("Authentication Required"), tunnels TCP to the backend.
//! - [`backend`]: inner mutual-TLS server that records the client thumbprint.
//! - [`topology`]: starts the components of a path, on free or fixed ports,
//!   and wires their addresses.
//!
//! # Judging
//!
//! - [`observe`]: per-hop records (certificate presented and seen, alert or
//!   error, bytes) and the ledger that knows when a run has settled.
//! - [`verdict`]: works, or which hop failed first and why, in one sentence.
//! - [`scenario`]: the scenario table with each run's expected verdict and
//!   the certificate each hop must have seen; [`run`] executes it. A run
//!   passes only when the verdict *and* every thumbprint check match.
//!
//! # Output
//!
//! - [`report`]: terminal table, JSON, self-contained HTML with one sequence
//!   diagram per scenario.
//! - [`serve`]: keeps one topology up for `openssl s_client`, `curl` and
//!   `passthru-certs probe`, on free ports or from `--port-base N`.
//! - [`tls`], [`wire`]: rustls configs and verifiers that record what they
//!   see; byte-level stream helpers.
#![warn(missing_docs)]

pub mod agent;
pub mod backend;
pub mod balancer;
pub mod connect_proxy;
pub mod front;
pub mod gateway;
pub mod netns;
pub mod observe;
pub mod post_quantum;
pub mod real;
pub mod report;
pub mod run;
pub mod scenario;
pub mod serve;
pub mod tls;
pub mod topology;
pub mod verdict;
pub mod wire;

pub use run::{Limits, Report, run_all};
pub use topology::Path;
