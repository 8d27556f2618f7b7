//! Certificate thumbprints (SHA-1, SHA-256 over the DER bytes) and the hex
//! renderings operators compare by eye. Pure: no certificate parsing, no I/O.

use std::fmt::Write as _;

use sha1::{Digest as _, Sha1};
use sha2::Sha256;

/// SHA-1 thumbprint of `der` as lower-case hex without separators, the form
/// gateways use to pin a certificate ("thumbprint").
pub fn sha1_hex(der: &[u8]) -> String {
    lower_hex(&Sha1::digest(der))
}

/// SHA-256 thumbprint of `der` as lower-case hex without separators.
pub fn sha256_hex(der: &[u8]) -> String {
    lower_hex(&Sha256::digest(der))
}

/// SHA-1 digest bytes of `der`.
pub fn sha1(der: &[u8]) -> [u8; 20] {
    Sha1::digest(der).into()
}

/// SHA-256 digest bytes of `der`.
pub fn sha256(der: &[u8]) -> [u8; 32] {
    Sha256::digest(der).into()
}

/// `bytes` as lower-case hex without separators.
pub fn lower_hex(bytes: &[u8]) -> String {
    joined_hex(bytes, "", false)
}

/// `bytes` as upper-case hex pairs joined by colons ("AB:CD:EF"), as
/// certificate viewers and `openssl x509 -fingerprint` show them.
pub fn colon_hex(bytes: &[u8]) -> String {
    joined_hex(bytes, ":", true)
}

/// `bytes` as lower-case hex pairs joined by spaces ("30 01"), as the
/// Windows certificate viewer shows a serial number.
pub fn spaced_hex(bytes: &[u8]) -> String {
    joined_hex(bytes, " ", false)
}

fn joined_hex(bytes: &[u8], separator: &str, upper: bool) -> String {
    let mut out = String::with_capacity(bytes.len() * (2 + separator.len()));
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push_str(separator);
        }
        // Writing to a String cannot fail.
        let _ = if upper {
            write!(out, "{b:02X}")
        } else {
            write!(out, "{b:02x}")
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fips_180_vectors_in_each_rendering() {
        assert_eq!(sha1_hex(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(colon_hex(&[0xab, 0x01]), "AB:01");
        assert_eq!(spaced_hex(&[0x00, 0x8f]), "00 8f");
        assert_eq!(lower_hex(&sha1(b"abc")), sha1_hex(b"abc"));
        assert_eq!(lower_hex(&sha256(b"abc")), sha256_hex(b"abc"));
    }
}
