//! Raw ClientHellos for tests that need exact bytes: captured fixtures,
//! built hellos with a chosen SNI/ALPN/size, and re-framing over records.

use std::path::PathBuf;

/// A captured ClientHello from `proxy/src/clienthello/testdata/` (see its README).
pub fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../proxy/src/clienthello/testdata")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// A TLS 1.3-style ClientHello (legacy version 1.2, supported_versions
/// 1.3 and 1.2) with this SNI and ALPN list, in as few records as fit.
pub fn client_hello(sni: Option<&str>, alpn: &[&str]) -> Vec<u8> {
    client_hello_padded(sni, alpn, 0)
}

/// Like [`client_hello`], with a padding extension of `padding` bytes
/// (large hellos span several records).
pub fn client_hello_padded(sni: Option<&str>, alpn: &[&str], padding: usize) -> Vec<u8> {
    let mut ext = Vec::new();
    if let Some(name) = sni {
        let n = name.len() as u16;
        ext.extend_from_slice(&[0x00, 0x00]);
        ext.extend_from_slice(&(n + 5).to_be_bytes());
        ext.extend_from_slice(&(n + 3).to_be_bytes());
        ext.push(0);
        ext.extend_from_slice(&n.to_be_bytes());
        ext.extend_from_slice(name.as_bytes());
    }
    if !alpn.is_empty() {
        let list: Vec<u8> = alpn
            .iter()
            .flat_map(|p| std::iter::once(p.len() as u8).chain(p.bytes()))
            .collect();
        ext.extend_from_slice(&[0x00, 0x10]);
        ext.extend_from_slice(&(list.len() as u16 + 2).to_be_bytes());
        ext.extend_from_slice(&(list.len() as u16).to_be_bytes());
        ext.extend_from_slice(&list);
    }
    ext.extend_from_slice(&[0x00, 0x2b, 0x00, 0x05, 0x04, 0x03, 0x04, 0x03, 0x03]);
    if padding > 0 {
        ext.extend_from_slice(&[0x00, 0x15]);
        ext.extend_from_slice(&(padding as u16).to_be_bytes());
        ext.extend(std::iter::repeat_n(0u8, padding));
    }
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[0x11; 32]);
    body.push(32);
    body.extend_from_slice(&[0x22; 32]);
    body.extend_from_slice(&[0x00, 0x04, 0x13, 0x01, 0xc0, 0x2f]);
    body.extend_from_slice(&[0x01, 0x00]);
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut handshake = vec![0x01];
    handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&body);
    let mut splits = Vec::new();
    let mut at = MAX_RECORD;
    while at < handshake.len() {
        splits.push(at);
        at += MAX_RECORD;
    }
    frame(&handshake, &splits)
}

/// The handshake bytes carried by a sequence of handshake records.
pub fn handshake_bytes(records: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = records;
    while rest.len() >= 5 && rest[0] == 0x16 {
        let len = u16::from_be_bytes([rest[3], rest[4]]) as usize;
        let end = (5 + len).min(rest.len());
        out.extend_from_slice(&rest[5..end]);
        rest = &rest[end..];
    }
    out
}

/// Re-frame a ClientHello so that its handshake bytes are split at the given
/// offsets (into the handshake message, ascending) into separate records.
pub fn reframe(hello: &[u8], splits: &[usize]) -> Vec<u8> {
    frame(&handshake_bytes(hello), splits)
}

fn frame(handshake: &[u8], splits: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut start = 0;
    for &end in splits.iter().chain(std::iter::once(&handshake.len())) {
        let piece = &handshake[start..end];
        out.extend_from_slice(&[0x16, 0x03, 0x01]);
        out.extend_from_slice(&(piece.len() as u16).to_be_bytes());
        out.extend_from_slice(piece);
        start = end;
    }
    out
}

/// Offset of `needle` in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

const MAX_RECORD: usize = 16384;
