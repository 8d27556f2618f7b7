//! passthru-certs: the lab PKI and certificate toolkit for passthru.
//!
//! passthru forwards TLS untouched so that an agent's client certificate
//! reaches the gateway that asked for it, and the gateway's (often pinned)
//! certificate reaches the agent. This crate builds the certificates that the
//! tests, `lb-sim` and the demo use to show that, generated in-process with
//! validity windows relative to a given "now" (nothing with a baked-in expiry
//! date is checked in), and renders certificate thumbprints the way gateways
//! and agents show them.
//!
//! # Layout
//!
//! - [`lab`]: [`LabPki`] — root CA, agent CA, agents, the self-signed gateway,
//!   backend, balancer and the fault variants (expired, not yet valid,
//!   untrusted issuer, duplicate CN, wrong EKU, wrong name); writes them as
//!   PEM files with a README.txt.
//! - [`fingerprint`]: SHA-1 / SHA-256 thumbprints and hex renderings.
#![warn(missing_docs)]

pub mod fingerprint;
pub mod lab;

pub use lab::{Identity, LabError, LabPki};
