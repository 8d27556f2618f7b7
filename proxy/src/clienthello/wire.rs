//! Numbers and limits of the wire format: record and handshake header
//! sizes and types, the extension types the parsers look for, and GREASE
//! (RFC 8701).

pub(super) const RECORD_HEADER_LEN: usize = 5;
pub(super) const HANDSHAKE_HEADER_LEN: usize = 4;
/// Largest record passthru accepts: 2^14 plaintext plus the 2048 bytes
/// RFC 5246 allows for compression/expansion.
pub(super) const MAX_RECORD_LEN: usize = 16384 + 2048;
pub(super) const CONTENT_HANDSHAKE: u8 = 22;
pub(super) const HANDSHAKE_CLIENT_HELLO: u8 = 1;

/// GREASE values (RFC 8701): 0x0a0a, 0x1a1a, … 0xfafa.
pub(super) fn is_grease(value: u16) -> bool {
    value & 0x0f0f == 0x0a0a && value >> 8 == value & 0xff
}

pub(super) const EXT_SERVER_NAME: u16 = 0;

pub(super) const EXT_SUPPORTED_GROUPS: u16 = 10;

pub(super) const EXT_ALPN: u16 = 16;

pub(super) const EXT_SUPPORTED_VERSIONS: u16 = 43;

pub(super) const EXT_KEY_SHARE: u16 = 51;

pub(super) const EXT_ECH: u16 = 0xfe0d;
