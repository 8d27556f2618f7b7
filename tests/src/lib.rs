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
pub mod wire;

use std::future::Future;
use std::time::Duration;

pub use backend::{RawBackend, TlsBackend};
pub use binary::BinaryProxy;
pub use client::Client;
pub use lab::Lab;
pub use proxy::ProxyUnderTest;

/// The bound on any single wait in a test.
pub const WAIT: Duration = Duration::from_secs(10);

/// Await `fut` for at most [`WAIT`], panicking with `what` otherwise.
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

/// Poll `check` until it returns `Some`, for at most `limit`.
pub async fn eventually<T>(limit: Duration, mut check: impl FnMut() -> Option<T>, what: &str) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("{what} (gave up after {limit:?})");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The ring crypto provider, always named explicitly (see docs/dependencies.md).
pub fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}
