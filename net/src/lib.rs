//! passthru-net: what the proxy (`passthru`), the certificate toolkit
//! (`passthru-certs`) and the lab (`lb-sim`) share on the wire. A leaf crate:
//! it depends on none of them, so the toolkit can probe through a CONNECT
//! proxy with the very client the proxy's `via` uses without depending on
//! the proxy.
//!
//! # Layout
//!
//! - [`addr`]: `host:port` ([`ServerAddr`]) and the one splitter for it. No I/O.
//! - [`via`]: the `via` URL of an HTTP CONNECT proxy, password masked. No I/O.
//! - [`connect_head`]: the CONNECT request written, the request head and the
//!   response head parsed. No I/O.
//! - [`thumbprint`]: SHA-1/SHA-256 thumbprints and hex renderings. No I/O.
//! - [`io`]: one bounded read, one whole write on a `TcpStream`.
//! - [`dial`]: resolve and connect under a deadline, with socket options.
//! - [`tunnel`]: the CONNECT client: dial, ask, read the answer, keep leftovers.
//! - [`prefixed`]: a stream that replays bytes already read, then reads on.
//!
//! Imports go one way: the pure modules import only each other (`via` and
//! `connect_head` use `addr`); `tunnel` uses `dial`, `io`, `via` and
//! `connect_head`; nothing imports `tunnel` or `prefixed`.
#![warn(missing_docs)]

pub mod addr;
pub mod connect_head;
pub mod dial;
pub mod io;
pub mod prefixed;
pub mod thumbprint;
pub mod tunnel;
pub mod via;

pub use addr::ServerAddr;
pub use prefixed::Prefixed;
pub use via::ViaUrl;
