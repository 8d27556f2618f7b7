//! Certificate thumbprints (SHA-1, SHA-256) and serial numbers in every
//! encoding operators meet them in: hex plain, colon-separated or with
//! spaces, byte-reversed (as some agents store a serial in the registry),
//! base64 (as some gateways expose them in policy variables) and decimal;
//! and [`match_value`], which recognises a value pasted in any of those.
//!
//! Pure functions over DER bytes; no certificate parsing, no I/O.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{
    STANDARD, STANDARD_PAD_INDIFFERENT, URL_SAFE_PAD_INDIFFERENT,
};
use passthru_net::thumbprint::{self, lower_hex};
use serde::Serialize;

pub use passthru_net::thumbprint::{colon_hex, sha1_hex, sha256_hex, spaced_hex};

/// `bytes` in standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// One digest in the three forms tools show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Thumbprint {
    /// Lower-case hex without separators (what gateways pin).
    pub hex: String,
    /// Upper-case hex pairs joined by colons (`openssl x509 -fingerprint`).
    pub colon: String,
    /// Standard base64 of the digest bytes (policy variables).
    pub base64: String,
}

impl Thumbprint {
    /// Renders the digest `bytes`.
    pub fn of(bytes: &[u8]) -> Thumbprint {
        Thumbprint {
            hex: lower_hex(bytes),
            colon: colon_hex(bytes),
            base64: base64(bytes),
        }
    }
}

/// SHA-1 and SHA-256 thumbprints of one certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Thumbprints {
    /// SHA-1 over the DER certificate.
    pub sha1: Thumbprint,
    /// SHA-256 over the DER certificate.
    pub sha256: Thumbprint,
}

impl Thumbprints {
    /// The thumbprints of the DER certificate `der`.
    pub fn of(der: &[u8]) -> Thumbprints {
        Thumbprints {
            sha1: Thumbprint::of(&thumbprint::sha1(der)),
            sha256: Thumbprint::of(&thumbprint::sha256(der)),
        }
    }
}

/// A serial number in every rendering operators compare by hand. `raw` is
/// the content of the DER INTEGER, so a serial whose first byte has the high
/// bit set starts with a 0x00 byte here, as the Windows viewer shows it,
/// while OpenSSL leaves it out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Serial {
    /// Lower-case hex pairs with spaces, leading 0x00 kept ("00 8f 12").
    pub spaced: String,
    /// The same bytes in reverse order ("12 8f 00"), as some agents store
    /// the serial in the registry.
    pub reversed: String,
    /// Upper-case hex without the sign byte, as `openssl x509 -serial`
    /// prints it ("8F12").
    pub openssl: String,
    /// Standard base64 of the DER INTEGER content (Java's
    /// `BigInteger.toByteArray()`).
    pub base64: String,
    /// The number in decimal.
    pub decimal: String,
}

impl Serial {
    /// Renders the DER INTEGER content `raw`.
    pub fn of(raw: &[u8]) -> Serial {
        let reversed: Vec<u8> = raw.iter().rev().copied().collect();
        let magnitude = strip_leading_zeros(raw);
        let openssl = if magnitude.is_empty() {
            "00".to_owned()
        } else {
            lower_hex(magnitude).to_ascii_uppercase()
        };
        Serial {
            spaced: spaced_hex(raw),
            reversed: spaced_hex(&reversed),
            openssl,
            base64: base64(raw),
            decimal: decimal(magnitude),
        }
    }
}

/// Which number a pasted value turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    /// The SHA-1 thumbprint.
    Sha1,
    /// The SHA-256 thumbprint.
    Sha256,
    /// The serial number, in certificate order.
    Serial,
    /// The serial number with its bytes reversed.
    SerialReversed,
}

/// How a pasted value was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// Hex digits, any case, with or without spaces, colons or dashes.
    Hex,
    /// Base64, standard or URL-safe alphabet, padding optional.
    Base64,
    /// Decimal digits.
    Decimal,
}

/// A value recognised as one of a certificate's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Match {
    /// Which number it is.
    pub field: Field,
    /// How it was written.
    pub encoding: Encoding,
}

impl fmt::Display for Match {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = match self.field {
            Field::Sha1 => "the SHA-1 thumbprint",
            Field::Sha256 => "the SHA-256 thumbprint",
            Field::Serial => "the serial number",
            Field::SerialReversed => "the serial number, byte-reversed",
        };
        let encoding = match self.encoding {
            Encoding::Hex => "hex",
            Encoding::Base64 => "base64",
            Encoding::Decimal => "decimal",
        };
        write!(f, "{field} ({encoding})")
    }
}

/// Whether `value` is the SHA-1 or SHA-256 thumbprint or the serial number
/// (forwards or byte-reversed) of the DER certificate `der` whose DER
/// INTEGER serial content is `raw_serial`, in hex (case, spaces, colons,
/// dashes and the invisible marks Windows adds on copy ignored; an
/// `openssl` prefix like "SHA1 Fingerprint=" or "serial=" allowed), base64
/// or decimal. Serials compare as numbers, so a leading 0x00 byte may be
/// present or not.
pub fn match_value(value: &str, der: &[u8], raw_serial: &[u8]) -> Option<Match> {
    let sha1 = thumbprint::sha1(der);
    let sha256 = thumbprint::sha256(der);
    let value = strip_prefix(value);
    let mut candidates: Vec<(Encoding, Vec<u8>)> = Vec::new();
    // "0x" marks hex only: a base64 value may start with "0x" or "0X".
    if let Some(bytes) = hex_bytes(strip_hex_marker(value)) {
        candidates.push((Encoding::Hex, bytes));
    }
    candidates.extend(
        base64_bytes(value)
            .into_iter()
            .map(|b| (Encoding::Base64, b)),
    );
    if let Some(bytes) = decimal_bytes(value) {
        candidates.push((Encoding::Decimal, bytes));
    }
    for (encoding, bytes) in candidates {
        let reversed: Vec<u8> = bytes.iter().rev().copied().collect();
        let field = if bytes.as_slice() == sha1.as_slice() {
            Field::Sha1
        } else if bytes.as_slice() == sha256.as_slice() {
            Field::Sha256
        } else if same_number(&bytes, raw_serial) {
            Field::Serial
        } else if same_number(&reversed, raw_serial) {
            Field::SerialReversed
        } else {
            continue;
        };
        return Some(Match { field, encoding });
    }
    None
}

/// Drops surrounding blanks and the labels `openssl` and viewers print
/// before a value ("SHA1 Fingerprint=", "serial=").
fn strip_prefix(value: &str) -> &str {
    let value = value.trim_matches(|c: char| c.is_whitespace() || is_invisible(c));
    let lower = value.to_ascii_lowercase();
    for prefix in [
        "sha1 fingerprint=",
        "sha256 fingerprint=",
        "sha1=",
        "sha256=",
        "serial=",
    ] {
        if lower.starts_with(prefix) {
            return value.get(prefix.len()..).unwrap_or(value).trim();
        }
    }
    value
}

/// Drops the "0x" that marks a hex number.
fn strip_hex_marker(value: &str) -> &str {
    match value.get(..2) {
        Some("0x" | "0X") => value.get(2..).unwrap_or(value),
        _ => value,
    }
}

/// Hex digits with separators removed; an odd count gets a leading zero.
fn hex_bytes(value: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = value
        .chars()
        .filter(|&c| !(c.is_whitespace() || is_invisible(c) || matches!(c, ':' | '-' | '.')))
        .map(|c| c.to_digit(16).and_then(|d| u8::try_from(d).ok()))
        .collect::<Option<_>>()?;
    if digits.is_empty() {
        return None;
    }
    let mut padded = Vec::with_capacity(digits.len() + 1);
    if digits.len() % 2 == 1 {
        padded.push(0);
    }
    padded.extend(digits);
    Some(
        padded
            .chunks(2)
            .map(|pair| pair[0] << 4 | pair[1])
            .collect(),
    )
}

/// Every distinct decoding of `value` as base64 (standard and URL-safe).
fn base64_bytes(value: &str) -> Vec<Vec<u8>> {
    let compact: String = value
        .chars()
        .filter(|&c| !(c.is_whitespace() || is_invisible(c)))
        .collect();
    let mut out: Vec<Vec<u8>> = Vec::new();
    for engine in [STANDARD_PAD_INDIFFERENT, URL_SAFE_PAD_INDIFFERENT] {
        if let Ok(bytes) = engine.decode(&compact)
            && !bytes.is_empty()
            && !out.contains(&bytes)
        {
            out.push(bytes);
        }
    }
    out
}

/// A decimal number as big-endian bytes.
fn decimal_bytes(value: &str) -> Option<Vec<u8>> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut bytes: Vec<u8> = Vec::new();
    for digit in value.bytes().map(|b| b - b'0') {
        // bytes = bytes * 10 + digit, most significant byte first.
        let mut carry = u16::from(digit);
        for byte in bytes.iter_mut().rev() {
            let v = u16::from(*byte) * 10 + carry;
            *byte = (v & 0xff) as u8;
            carry = v >> 8;
        }
        while carry > 0 {
            bytes.insert(0, (carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    Some(bytes)
}

/// A big-endian magnitude in decimal.
fn decimal(magnitude: &[u8]) -> String {
    let mut number = magnitude.to_vec();
    let mut digits = Vec::new();
    while !strip_leading_zeros(&number).is_empty() {
        // number /= 10, collecting the remainder.
        let mut remainder = 0u16;
        for byte in number.iter_mut() {
            let v = remainder << 8 | u16::from(*byte);
            *byte = (v / 10) as u8;
            remainder = v % 10;
        }
        digits.push(b'0' + remainder as u8);
    }
    if digits.is_empty() {
        digits.push(b'0');
    }
    digits.reverse();
    String::from_utf8_lossy(&digits).into_owned()
}

fn same_number(a: &[u8], b: &[u8]) -> bool {
    strip_leading_zeros(a) == strip_leading_zeros(b)
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

/// Marks that Windows dialogs put around copied values (LRM, RLM, BOM).
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{feff}' | '\u{200b}')
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

    #[test]
    fn serial_renderings_keep_the_sign_byte_where_viewers_do() {
        let serial = Serial::of(&[0x00, 0x8f, 0x12]);
        assert_eq!(serial.spaced, "00 8f 12");
        assert_eq!(serial.reversed, "12 8f 00");
        assert_eq!(serial.openssl, "8F12");
        assert_eq!(serial.base64, "AI8S");
        assert_eq!(serial.decimal, "36626");
        let small = Serial::of(&[0x30, 0x01]);
        assert_eq!(
            (
                small.spaced.as_str(),
                small.reversed.as_str(),
                small.openssl.as_str()
            ),
            ("30 01", "01 30", "3001")
        );
        assert_eq!(small.decimal, "12289");
        assert_eq!(Serial::of(&[0x00]).openssl, "00");
        assert_eq!(Serial::of(&[0x00]).decimal, "0");
    }

    #[test]
    fn decimal_round_trips_a_twenty_byte_number() {
        let raw: Vec<u8> = (1..=20).map(|i| i * 12).collect();
        let text = decimal(&raw);
        assert_eq!(decimal_bytes(&text).unwrap(), raw);
        assert_eq!(decimal(&[0x01, 0x00]), "256");
        assert_eq!(decimal_bytes("256").unwrap(), vec![0x01, 0x00]);
    }

    #[test]
    fn thumbprint_renders_hex_colon_and_base64() {
        let t = Thumbprint::of(&[0xab, 0x01, 0xff]);
        assert_eq!(t.hex, "ab01ff");
        assert_eq!(t.colon, "AB:01:FF");
        assert_eq!(t.base64, "qwH/");
    }

    #[test]
    fn match_value_recognises_every_encoding() {
        let der = b"not really a certificate";
        let raw_serial = [0x00, 0x8f, 0x12, 0x34];
        let t = Thumbprints::of(der);
        let m = |field, encoding| Some(Match { field, encoding });
        let cases = [
            (t.sha1.hex.clone(), m(Field::Sha1, Encoding::Hex)),
            (t.sha1.hex.to_uppercase(), m(Field::Sha1, Encoding::Hex)),
            (t.sha1.colon.clone(), m(Field::Sha1, Encoding::Hex)),
            (
                format!("SHA1 Fingerprint={}", t.sha1.colon),
                m(Field::Sha1, Encoding::Hex),
            ),
            (
                spaced_hex(&thumbprint::sha1(der)),
                m(Field::Sha1, Encoding::Hex),
            ),
            (
                format!("\u{200e}{}", t.sha1.hex),
                m(Field::Sha1, Encoding::Hex),
            ),
            (t.sha1.base64.clone(), m(Field::Sha1, Encoding::Base64)),
            (
                t.sha256.colon.to_lowercase(),
                m(Field::Sha256, Encoding::Hex),
            ),
            (t.sha256.base64.clone(), m(Field::Sha256, Encoding::Base64)),
            (
                t.sha256.base64.trim_end_matches('=').to_owned(),
                m(Field::Sha256, Encoding::Base64),
            ),
            ("00 8f 12 34".to_owned(), m(Field::Serial, Encoding::Hex)),
            ("8F1234".to_owned(), m(Field::Serial, Encoding::Hex)),
            ("serial=8F1234".to_owned(), m(Field::Serial, Encoding::Hex)),
            ("0x8f1234".to_owned(), m(Field::Serial, Encoding::Hex)),
            (
                "34 12 8f 00".to_owned(),
                m(Field::SerialReversed, Encoding::Hex),
            ),
            ("34128f".to_owned(), m(Field::SerialReversed, Encoding::Hex)),
            ("AI8SNA==".to_owned(), m(Field::Serial, Encoding::Base64)),
            ("9376308".to_owned(), m(Field::Serial, Encoding::Decimal)),
            ("8f1235".to_owned(), None),
            ("".to_owned(), None),
            ("not a number".to_owned(), None),
        ];
        for (value, want) in cases {
            assert_eq!(match_value(&value, der, &raw_serial), want, "{value:?}");
        }
    }

    #[test]
    fn base64_that_starts_with_0x_is_not_read_as_hex() {
        // "0Xdz" is the base64 of d1 77 73; "0X" is not a hex marker here.
        let raw_serial = [0x00, 0xd1, 0x77, 0x73];
        assert_eq!(
            match_value("0Xdz", b"der", &raw_serial),
            Some(Match {
                field: Field::Serial,
                encoding: Encoding::Base64
            })
        );
    }

    #[test]
    fn match_displays_field_and_encoding() {
        let m = Match {
            field: Field::SerialReversed,
            encoding: Encoding::Hex,
        };
        assert_eq!(m.to_string(), "the serial number, byte-reversed (hex)");
    }
}
