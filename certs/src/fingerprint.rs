//! Certificate thumbprints (SHA-1, SHA-256) and their hex renderings.
//!
//! Pure functions over DER bytes; no parsing, no I/O.

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

/// `bytes` as upper-case hex pairs joined by colons ("AB:CD:EF"), as
/// certificate viewers and `openssl x509 -fingerprint` show them.
pub fn colon_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02X}");
    }
    out
}

fn lower_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_of_abc_matches_fips_180_vector() {
        assert_eq!(sha1_hex(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
    }

    #[test]
    fn sha256_of_abc_matches_fips_180_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn colon_hex_is_upper_case_pairs() {
        assert_eq!(colon_hex(&[0xab, 0x01, 0xff]), "AB:01:FF");
        assert_eq!(colon_hex(&[0x0a]), "0A");
        assert_eq!(colon_hex(&[]), "");
    }
}
