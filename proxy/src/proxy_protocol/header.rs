//! The PROXY header's types, shared by the v1 and v2 parsers and encoders:
//! the parsed [`ProxyHeader`], why a parse stopped ([`Error`], [`Invalid`]),
//! the size limits, and the address pair both encoders send. No I/O.

use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};

/// Which version of the protocol a header used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// The text header: `PROXY TCP4 … \r\n`.
    V1,
    /// The binary header with the 12-byte signature.
    V2,
}

/// A parsed PROXY header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyHeader {
    /// The version the header used.
    pub version: Version,
    /// false for v2 LOCAL, v2 AF_UNSPEC and v1 "UNKNOWN": the connection's
    /// own addresses apply.
    pub proxied: bool,
    /// Original client (source) address, when `proxied` and the family is
    /// TCP over IPv4/IPv6.
    pub source: Option<SocketAddr>,
    /// Original destination (the address the client connected to), when
    /// `proxied` and the family is TCP over IPv4/IPv6.
    pub destination: Option<SocketAddr>,
    /// v2 PP2_TYPE_AUTHORITY (0x02) TLV, if present: the host name the
    /// client asked for (lossy UTF-8, at most [`MAX_AUTHORITY_LEN`] bytes).
    pub authority: Option<String>,
    /// v2 PP2_TYPE_SSL (0x20) TLV with the PP2_CLIENT_SSL bit: the hop that
    /// wrote the header received the connection over TLS, i.e. it
    /// terminated TLS (SSL offloading) before passthru.
    pub tls_terminated: bool,
    /// Bytes the header occupied at the start of the buffer.
    pub len: usize,
}

/// Why [`parse`](super::parse) returned no header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not enough bytes yet. `needed` is a lower bound on the TOTAL buffer
    /// length (from the start) needed to go on; always > `buf.len()`.
    #[error("incomplete proxy header: need at least {needed} bytes")]
    Incomplete {
        /// Lower bound on the total buffer length needed.
        needed: usize,
    },
    /// Can never become a valid header, whatever bytes follow.
    #[error("invalid proxy header: {0}")]
    Invalid(Invalid),
}

impl From<Invalid> for Error {
    fn from(reason: Invalid) -> Self {
        Self::Invalid(reason)
    }
}

/// Why the bytes can never become a valid PROXY header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// Neither `"PROXY "` nor the 12-byte v2 signature: decided at the first
    /// byte that rules both out (a TLS record or an HTTP request at byte 0).
    #[error("no proxy protocol signature")]
    NoSignature,
    /// A v1 line with no CRLF within [`MAX_V1_LEN`] bytes.
    #[error("v1 header has no crlf within {} bytes", MAX_V1_LEN)]
    V1TooLong,
    /// A malformed v1 field; names it ("protocol", "source address",
    /// "destination port", "line end", …).
    #[error("malformed v1 {0}")]
    V1Syntax(&'static str),
    /// The v2 version nibble is not 2.
    #[error("v2 version is not 2")]
    BadVersion,
    /// The v2 command nibble is neither LOCAL (0) nor PROXY (1).
    #[error("v2 command is neither local nor proxy")]
    BadCommand,
    /// A v2 family/transport byte that passthru does not accept: a value
    /// the protocol does not define, or with the PROXY command a UNIX or
    /// DGRAM family (passthru proxies TCP only).
    #[error("v2 address family is not tcp over ipv4 or ipv6")]
    BadFamily,
    /// The v2 length field makes the header longer than [`MAX_V2_LEN`].
    #[error("v2 header longer than {} bytes", MAX_V2_LEN)]
    V2TooLong,
    /// The v2 length is too short for the addresses of the stated family.
    #[error("v2 header too short for its address family")]
    AddressTruncated,
    /// A v2 TLV runs past the end of the header.
    #[error("v2 tlv runs past the end of the header")]
    TlvTruncated,
    /// A v2 TLV whose length its type forbids: CRC32C (0x03) not 4 bytes,
    /// AUTHORITY (0x02) longer than [`MAX_AUTHORITY_LEN`]; holds the type.
    #[error("v2 tlv 0x{0:02x} has an invalid length")]
    TlvLength(u8),
    /// A v2 CRC32C or AUTHORITY TLV that appears twice; holds the type.
    #[error("duplicate v2 tlv 0x{0:02x}")]
    DuplicateTlv(u8),
    /// The v2 CRC32C TLV does not match the header's checksum.
    #[error("v2 crc32c checksum mismatch")]
    Crc32cMismatch,
}

/// The longest v1 header, CRLF included (HAProxy's limit: 107 bytes).
pub const MAX_V1_LEN: usize = 107;

/// The largest v2 header accepted: the 16-byte fixed part plus at most
/// 4096 bytes of addresses and TLVs. The protocol allows 16 + 65535; real
/// headers are far smaller (IPv6 addresses take 36 bytes, an AUTHORITY TLV
/// at most 258, CRC32C 7, a HAProxy unique ID at most 131), so a larger
/// length field is refused at once instead of waiting for 64 KiB.
pub const MAX_V2_LEN: usize = 16 + 4096;

/// The longest AUTHORITY TLV value accepted and sent: a DNS name takes at
/// most 253 bytes, so 255 leaves room for a trailing dot.
pub const MAX_AUTHORITY_LEN: usize = 255;

/// A source and destination of one family, as both encoders send them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TcpPair {
    /// Both IPv4: `TCP4` / AF_INET.
    V4(SocketAddrV4, SocketAddrV4),
    /// Both IPv6, or one of each with the IPv4 one mapped into IPv6:
    /// `TCP6` / AF_INET6.
    V6(SocketAddrV6, SocketAddrV6),
}

impl TcpPair {
    /// Pair `source` and `destination`, mapping an IPv4 address to
    /// IPv4-mapped IPv6 (`::ffff:a.b.c.d`) when the families differ.
    pub(super) fn new(source: SocketAddr, destination: SocketAddr) -> Self {
        match (source, destination) {
            (SocketAddr::V4(s), SocketAddr::V4(d)) => Self::V4(s, d),
            (s, d) => Self::V6(as_v6(s), as_v6(d)),
        }
    }
}

/// `addr` as IPv6, IPv4-mapped when it is IPv4.
fn as_v6(addr: SocketAddr) -> SocketAddrV6 {
    match addr {
        SocketAddr::V4(v4) => SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0),
        SocketAddr::V6(v6) => v6,
    }
}
