//! Why a ClientHello parse stopped: need more bytes ([`Error::Incomplete`])
//! or never ([`Invalid`]).

use super::wire::MAX_RECORD_LEN;

/// Why [`parse`](super::parse) could not return a [`ClientHello`](super::ClientHello).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not enough bytes yet. `needed` is a lower bound on the TOTAL buffer
    /// length (from the start) needed to go on; always > buf.len().
    #[error("incomplete client hello: need at least {needed} bytes")]
    Incomplete {
        /// Lower bound on the total buffer length needed.
        needed: usize,
    },
    /// Can never become a valid ClientHello.
    #[error("invalid client hello: {0}")]
    Invalid(Invalid),
}

impl From<Invalid> for Error {
    fn from(reason: Invalid) -> Self {
        Self::Invalid(reason)
    }
}

/// Why the bytes can never become a valid ClientHello.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// The first record is not a handshake record (type 22), or a later one
    /// has another type before the hello is complete.
    #[error("not a tls handshake record")]
    NotHandshake,
    /// A record's version major is not 3.
    #[error("record version major is not 3")]
    BadRecordVersion,
    /// A record is longer than 16384 + 2048 bytes.
    #[error("record length exceeds {} bytes", MAX_RECORD_LEN)]
    RecordTooLarge,
    /// A handshake record with no payload.
    #[error("zero-length handshake record")]
    EmptyRecord,
    /// The handshake message is not a ClientHello (type 1).
    #[error("handshake message is not a client hello")]
    NotClientHello,
    /// A length field runs past its container; names the field.
    #[error("{0} runs past its container")]
    Truncated(&'static str),
    /// A length field holds a value the protocol forbids (odd cipher_suites
    /// length, session_id longer than 32, no compression method).
    #[error("{0} has an invalid length")]
    BadLength(&'static str),
    /// Bytes left over after a field that should end its container.
    #[error("unexpected bytes after {0}")]
    TrailingBytes(&'static str),
    /// A malformed extension (e.g. the SNI or ALPN list); names it.
    #[error("malformed {0} extension")]
    BadExtension(&'static str),
    /// The same extension type appears twice.
    #[error("duplicate extension 0x{0:04x}")]
    DuplicateExtension(u16),
    /// An SSLv2-format CLIENT-HELLO whose version major is not 3: it offers
    /// neither SSL 3.0 nor any TLS version.
    #[error("sslv2 client-hello offers neither ssl 3.0 nor tls")]
    Sslv2WithoutTls,
}

/// `Error::Incomplete` asking for `needed` bytes in all.
pub(super) fn need(needed: usize) -> Error {
    Error::Incomplete { needed }
}
