//! passthru-certs: the lab PKI and certificate toolkit for passthru.
//!
//! passthru forwards TLS untouched so that an agent's client certificate
//! reaches the gateway that asked for it, and the gateway's (often pinned)
//! certificate reaches the agent. This crate builds the certificates that the
//! tests, `lb-sim` and the demo use to show that, generated in-process with
//! validity windows relative to a given "now" (nothing with a baked-in expiry
//! date is checked in), and answers the questions operators of
//! certificate-authenticated gateways ask all day: which certificate is
//! this, in the encoding my tool shows; why does this chain not verify; what
//! does the gateway ask for and say during a real handshake.
//!
//! # Layout
//!
//! - [`lab`]: [`LabPki`] — root CA, agent CA, agents, the self-signed gateway,
//!   backend, balancer and the fault variants (expired, not yet valid,
//!   untrusted issuer, duplicate CN, wrong EKU, wrong name); writes them as
//!   PEM files with a README.txt.
//! - [`pin`]: a verifier that accepts exactly one server certificate (agents' pinning).
//! - [`fingerprint`]: thumbprints and serial numbers in hex (plain, colon,
//!   spaced), byte-reversed, base64 and decimal; recognising a pasted value.
//!   The digests and hex renderings are `passthru_net::thumbprint`'s, the
//!   same code the proxy's handshake observer uses.
//! - [`inspect`]: what one certificate says (names, key, usages, validity
//!   margin, serial, thumbprints). No I/O.
//! - [`verify`]: chain verification with rustls's webpki, errors that carry
//!   names and time deltas. No I/O.
//! - [`probe`]: a real TLS handshake (optionally through an HTTP CONNECT
//!   proxy, with `passthru_net`'s CONNECT client) reported step by step.
//!
//! The toolkit depends on `passthru-net`, not on the proxy.
//! - [`render`]: the human text of every report (JSON is serde).
//! - [`input`]: reading certificate and key files (PEM or DER, "-" = stdin).
//! - [`clock`]: time arguments, RFC 3339 and human spans.
#![warn(missing_docs)]

pub mod clock;
pub mod fingerprint;
pub mod input;
pub mod inspect;
pub mod lab;
pub mod pin;
pub mod probe;
pub mod render;
pub mod verify;

pub use lab::{Identity, LabEntry, LabError, LabPki, LabReport};
