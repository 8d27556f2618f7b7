//! Follows a TLS handshake in clear from both directions' byte streams, as
//! they are forwarded, and reports what a passive observer can learn:
//! negotiated version and cipher; for TLS 1.2 and below, whether the server
//! asked for a client certificate and both parties' leaf certificates; the
//! first plaintext alert and who sent it; whether the handshake completed.
//! No I/O, no tokio: the caller feeds copies of the bytes it forwards.
//!
//! What each version shows:
//!
//! - **TLS 1.2 and below.** Everything up to each side's ChangeCipherSpec
//!   is in clear: ServerHello, both Certificate messages, the
//!   CertificateRequest, and any alert sent before ChangeCipherSpec (a
//!   server rejecting a client certificate sends e.g. `unknown_ca` in clear).
//!   The handshake counts as completed when each side sent ChangeCipherSpec
//!   and one record after it (its encrypted Finished) and no alert was seen.
//! - **TLS 1.3.** Only the ServerHello (and a HelloRetryRequest) is in
//!   clear; certificates, the CertificateRequest and most alerts are
//!   encrypted ([`Handshake::certificates_encrypted`]). Completion is a best
//!   effort: both sides sent an encrypted record after the ServerHello and
//!   no plaintext alert was seen. A server that rejects the client's
//!   certificate does so with an *encrypted* alert, which looks the same as
//!   success from outside: `completed` is then `true` and `alert` is `None`.
//!
//! A fatal alert in clear (e.g. the server's `unknown_ca` in TLS 1.2) ends
//! observation once the other side has nothing left to send either (its
//! part is over, or it is waiting for the alerting side), so the report does
//! not depend on which direction's bytes were fed first.
//!
//! Cost and bounds: each direction is followed record by record until the
//! handshake is over, then [`Observer::feed`] returns at once. At most the
//! budget given to [`Observer::new`] is examined per direction, only the
//! ServerHello and Certificate messages are buffered (each up to
//! [`MAX_MESSAGE`]); anything that is not TLS framing, a larger message or
//! a spent budget ends observation with [`Handshake::truncated`] set.
//! Hostile input can only end observation, never make it panic.

pub use handshake::{CertSummary, Direction, Handshake, Side};
pub use observer::{DEFAULT_BUDGET, Observer};
pub use record::MAX_MESSAGE;
pub use tap::ObserverTap;

mod cert;
mod handshake;
mod message;
mod names;
mod observer;
mod record;
mod tap;

#[cfg(test)]
mod tests;
