//! JA4, the TLS client fingerprint of FoxIO's definition (transport `t`),
//! computed from the bytes of a ClientHello. Separate from [`parse`](super::parse)
//! so that routing never pays for the two SHA-256 hashes: the access log asks
//! for it once per connection. Allocates only the 36-byte answer (and, for
//! the rare hostile hello with more than [`INLINE`] ciphers or extensions,
//! one list to sort).

use sha2::{Digest, Sha256};

use super::error::Invalid;
use super::reader::Reader;
use super::record::reassemble;
use super::wire::{EXT_ALPN, EXT_SERVER_NAME, EXT_SUPPORTED_VERSIONS, is_grease};

/// The JA4 fingerprint of the ClientHello at the start of `buf`, as in
/// `t13d1516h2_8daaf6152771_b186095e22b6`. `None` when `buf` does not start
/// with a whole TLS-framed ClientHello (SSLv2-compatible hellos have none).
#[must_use]
pub fn ja4(buf: &[u8]) -> Option<String> {
    if buf.first().is_none_or(|b0| b0 & 0x80 != 0) {
        return None;
    }
    let framed = reassemble(buf).ok()?;
    fingerprint(&framed.message).ok()
}

/// Lists kept on the stack up to this many entries.
const INLINE: usize = 128;

/// GREASE-free u16 values, sorted on demand without allocating for real hellos.
struct Codes {
    inline: [u16; INLINE],
    len: usize,
    spill: Vec<u16>,
}

impl Codes {
    fn new() -> Self {
        Self {
            inline: [0; INLINE],
            len: 0,
            spill: Vec::new(),
        }
    }

    fn push(&mut self, code: u16) {
        if let Some(slot) = self.inline.get_mut(self.len) {
            *slot = code;
        } else {
            if self.spill.is_empty() {
                self.spill.extend_from_slice(&self.inline);
            }
            self.spill.push(code);
        }
        self.len += 1;
    }

    fn sorted(&mut self) -> &[u16] {
        let list = if self.spill.is_empty() {
            self.inline.get_mut(..self.len).unwrap_or_default()
        } else {
            self.spill.as_mut_slice()
        };
        list.sort_unstable();
        list
    }
}

/// Feed `codes` to `hash` as comma-separated lower-case 4-digit hex,
/// through a stack buffer so the hasher sees few large updates. Returns
/// whether there was any code.
pub(super) fn hash_codes(hash: &mut Sha256, codes: impl IntoIterator<Item = u16>) -> bool {
    let mut chunk = [0u8; 5 * 64];
    let mut len = 0;
    let mut any = false;
    for code in codes {
        if len + 5 > chunk.len() {
            hash.update(&chunk[..len]);
            len = 0;
        }
        if any {
            chunk[len] = b',';
            len += 1;
        }
        chunk[len..len + 4].copy_from_slice(&hex4(code));
        len += 4;
        any = true;
    }
    hash.update(&chunk[..len]);
    any
}

fn hex4(code: u16) -> [u8; 4] {
    let [hi, lo] = code.to_be_bytes();
    [
        HEX[usize::from(hi >> 4)],
        HEX[usize::from(hi & 15)],
        HEX[usize::from(lo >> 4)],
        HEX[usize::from(lo & 15)],
    ]
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The first 12 hex digits of a finished hash, or twelve zeros when the list
/// was empty.
pub(super) fn push_truncated(out: &mut String, hash: Sha256, any: bool) {
    if !any {
        out.push_str("000000000000");
        return;
    }
    for &byte in hash.finalize().iter().take(6) {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 15)]));
    }
}

/// `n` capped at 99, as two decimal digits.
fn push_count(out: &mut String, n: usize) {
    let n = n.min(99) as u8;
    out.push(char::from(b'0' + n / 10));
    out.push(char::from(b'0' + n % 10));
}

fn fingerprint(message: &[u8]) -> Result<String, Invalid> {
    let mut r = Reader::new(message);
    r.take(4, "handshake header")?;
    let legacy_version = r.u16("legacy_version")?;
    r.take(32, "random")?;
    let session_id = r.u8("session_id")?;
    r.take(usize::from(session_id), "session_id")?;
    let mut cipher_list = r.prefixed_u16("cipher_suites")?;
    let mut ciphers = Codes::new();
    while !cipher_list.is_empty() {
        let cipher = cipher_list.u16("cipher_suites")?;
        if !is_grease(cipher) {
            ciphers.push(cipher);
        }
    }
    r.prefixed_u8("compression_methods")?;
    let mut extensions = Codes::new();
    let mut extension_count = 0usize;
    let mut sni = false;
    let mut alpn: &[u8] = &[];
    let mut sigalgs: &[u8] = &[];
    let mut version = legacy_version;
    let mut list = if r.is_empty() {
        Reader::new(&[])
    } else {
        r.prefixed_u16("extensions")?
    };
    while !list.is_empty() {
        let kind = list.u16("extension")?;
        let mut data = list.prefixed_u16("extension")?;
        if is_grease(kind) {
            continue;
        }
        extension_count += 1;
        match kind {
            EXT_SERVER_NAME => sni = true,
            EXT_ALPN => {
                let mut names = data.prefixed_u16("alpn")?;
                if !names.is_empty() {
                    alpn = names.prefixed_u8("alpn")?.rest();
                }
            }
            EXT_SIGNATURE_ALGORITHMS => sigalgs = data.prefixed_u16("signature_algorithms")?.rest(),
            EXT_SUPPORTED_VERSIONS => {
                let mut offered = data.prefixed_u8("supported_versions")?;
                let mut best = None;
                while let Ok(v) = offered.u16("supported_versions") {
                    if !is_grease(v) {
                        best = best.max(Some(v));
                    }
                }
                version = best.unwrap_or(version);
            }
            _ => {}
        }
        if kind != EXT_SERVER_NAME && kind != EXT_ALPN {
            extensions.push(kind);
        }
    }

    let mut out = String::with_capacity(36);
    out.push('t');
    out.push_str(version_code(version));
    out.push(if sni { 'd' } else { 'i' });
    push_count(&mut out, ciphers.len);
    push_count(&mut out, extension_count);
    let (first, last) = alpn_chars(alpn);
    out.push(first);
    out.push(last);
    out.push('_');
    let mut hash = Sha256::new();
    let any = hash_codes(&mut hash, ciphers.sorted().iter().copied());
    push_truncated(&mut out, hash, any);
    out.push('_');
    let mut hash = Sha256::new();
    let any = hash_codes(&mut hash, extensions.sorted().iter().copied());
    let algorithms = sigalgs
        .chunks_exact(2)
        .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
        .filter(|&a| !is_grease(a));
    if any && !sigalgs.is_empty() {
        hash.update(b"_");
        hash_codes(&mut hash, algorithms);
    }
    push_truncated(&mut out, hash, any);
    Ok(out)
}

/// JA4's two-character version: `13` … `10`, `s3`, `s2`, DTLS `d1`–`d3`, else `00`.
fn version_code(version: u16) -> &'static str {
    match version {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0002 => "s2",
        0xfeff => "d1",
        0xfefd => "d2",
        0xfefc => "d3",
        _ => "00",
    }
}

/// First and last character of the first ALPN value; `00` when there is
/// none; the first and last hex digit of the value when either end is not an
/// ASCII letter or digit.
fn alpn_chars(value: &[u8]) -> (char, char) {
    match (value.first(), value.last()) {
        (Some(&f), Some(&l)) if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric() => {
            (char::from(f), char::from(l))
        }
        (Some(&f), Some(&l)) => (
            char::from(HEX[usize::from(f >> 4)]),
            char::from(HEX[usize::from(l & 15)]),
        ),
        _ => ('0', '0'),
    }
}

const EXT_SIGNATURE_ALGORITHMS: u16 = 13;
