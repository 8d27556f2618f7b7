//! Pure ClientHello parser: reassembles the handshake records at the start of
//! a connection and extracts what passthru routes and logs on (SNI, ALPN,
//! offered versions, ECH and SSLv2 flags). No I/O: it is a function over the
//! bytes read so far, answering complete, need more (`Incomplete`) or never
//! (`Invalid`). It borrows the buffer when the hello fits one record and
//! copies only when the hello is split over several.

pub use error::{Error, Invalid};
pub use groups::{Group, GroupSet, Groups};
pub use hello::{ClientHello, MAX_ALPN_KEPT, MAX_HOST_NAME, parse};
pub use ja4::ja4;

mod error;
mod groups;
mod hello;
mod ja4;
mod reader;
mod record;
mod wire;

#[cfg(test)]
mod tests;
