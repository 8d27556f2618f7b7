//! PROXY protocol v1 (text) and v2 (binary) headers, parsed and encoded.
//! No I/O: this module is functions over bytes; `conn.rs` reads and writes.
//!
//! passthru uses the protocol in two roles:
//!
//! - **expect** (inbound, listener key `proxy_protocol`): the balancer in
//!   front writes a header before the ClientHello. `conn.rs` checks the peer
//!   against [`trusted_proxies`](crate::trust::TrustedProxies), then calls
//!   [`parse`] on the bytes read so far, reading more only on
//!   [`Error::Incomplete`] and refusing on [`Error::Invalid`]. The bytes a
//!   header takes are bounded: [`MAX_V1_LEN`] for v1, [`MAX_V2_LEN`] for v2
//!   (checked as soon as the v2 length field arrives). A v2 `LOCAL` command
//!   (a balancer's health check) and a v1 `UNKNOWN` line parse with
//!   `proxied == false`: the connection's own addresses apply.
//! - **send** (outbound, backend key `send_proxy_protocol`): [`encode_v1`] or
//!   [`encode_v2`] build the header written to the server before the
//!   buffered ClientHello bytes; v2 carries the SNI as the AUTHORITY TLV.
//!
//! Like the ClientHello parser, [`parse`] answers complete, need more
//! ([`Error::Incomplete`], never for a strict prefix of a valid header) or
//! never ([`Error::Invalid`], decided at the first byte that rules the input
//! out). Trailing bytes after the header are the ClientHello and are left
//! alone. Wire formats: HAProxy's "The PROXY protocol" versions 1 and 2.

pub use header::{Error, Invalid, MAX_AUTHORITY_LEN, MAX_V1_LEN, MAX_V2_LEN, ProxyHeader, Version};
pub use v1::encode_v1;
pub use v2::{encode_v2, encode_v2_local};

mod header;
mod v1;
mod v2;

/// Parse a v1 or v2 header at the start of `buf` (either version; the
/// caller checks it against the listener's setting). Trailing bytes (the
/// ClientHello) are ignored.
pub fn parse(buf: &[u8]) -> Result<ProxyHeader, Error> {
    match buf.first() {
        None => Err(Error::Incomplete { needed: 1 }),
        Some(b'P') => v1::parse(buf),
        Some(b'\r') => v2::parse(buf),
        Some(_) => Err(Invalid::NoSignature.into()),
    }
}

#[cfg(test)]
mod tests;
