//! The integration harness for passthru: everything a test needs to put
//! real TLS peers on both sides of the real proxy, on 127.0.0.1 port 0.
//!
//! # Layout
//!
//! - [`lab`]: [`Lab`], the generated PKI (in memory and as PEM files).
//! - [`backend`]: [`TlsBackend`] (mutual TLS, records what it saw) and
//!   [`RawBackend`] (plain TCP: records bytes, answers with its name).
//! - [`proxy`]: [`ProxyUnderTest`], an in-process passthru on port 0.
//! - [`binary`]: [`BinaryProxy`], the real `passthru` binary as a child
//!   process (CPU time and memory from `/proc`, metrics from its admin port).
//! - [`client`]: [`Client`], a rustls agent that pins the server certificate.
//! - [`fleet`]: three real passthru processes behind a real HAProxy, a
//!   rolling upgrade and a rolling restart under continuous agent load.
//! - [`hop`]: a scripted fake HTTP proxy and real tinyproxy.
//! - [`wire`]: raw ClientHellos (captured fixtures, built ones, re-framed).
//! - [`wait`]: [`WAIT`], [`within`] and [`eventually`], the bounded waits.
//!
//! Every wait is bounded: use [`within`] around anything that waits on a
//! peer, and [`eventually`] for state that settles asynchronously.
// A harness panics on purpose: a failed expectation is a failed test, with
// a message and a backtrace.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![warn(missing_docs)]

pub mod backend;
pub mod binary;
pub mod client;
pub mod fleet;
pub mod hop;
pub mod lab;
pub mod proxy;
pub mod wait;
pub mod wire;

pub use backend::{RawBackend, TlsBackend};
pub use binary::BinaryProxy;
pub use client::Client;
pub use lab::{Lab, provider};
pub use proxy::ProxyUnderTest;
pub use wait::{WAIT, eventually, within};
