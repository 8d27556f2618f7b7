//! ClientHello engine and first-bytes sniffer on arbitrary bytes.
//!
//! Beyond "no panic", each input checks the parser's contract:
//! - `Incomplete { needed }` always asks for more than it has;
//! - a hello parsed from a buffer parses the same from any longer buffer
//!   (trailing bytes are ignored) and from exactly its own `len` bytes;
//! - a prefix of the input is consistent with the whole: a prefix that is
//!   `Invalid` makes the whole `Invalid`, and a prefix that is `Incomplete`
//!   never asks for more than the hello the whole turned out to hold;
//! - a parsed (record-framed) hello re-split into other records parses to
//!   the same hello;
//! - whatever parses was classified by `sniff` as TLS or SSLv2;
//! - cost: routing a parsed hello's SNI makes at most one hash probe more
//!   than the table has wildcard lengths, whatever the name, and its JA4 is
//!   36 characters (or none).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

use passthru::clienthello::{self, ClientHello, Error};
use passthru::config::RouteConfig;
use passthru::route::RouteTable;
use passthru::sniff::{Sniff, sniff};

/// Routes with three wildcard lengths and an exact name.
fn table() -> &'static RouteTable {
    static TABLE: OnceLock<RouteTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        let names = ["*.a", "*.lab.test", "*.x.lab.test", "gw.lab.test"];
        let routes: Vec<RouteConfig> = names
            .iter()
            .filter_map(|n| n.parse().ok())
            .map(|pattern| RouteConfig {
                server_names: vec![pattern],
                alpn: Vec::new(),
                backend: 0,
            })
            .collect();
        RouteTable::from_routes(&routes, Some(0))
    })
}

fuzz_target!(|data: &[u8]| {
    let whole = clienthello::parse(data);
    let class = sniff(data);
    match &whole {
        Err(Error::Incomplete { needed }) => {
            assert!(*needed > data.len(), "needed {needed} <= {}", data.len());
        }
        Err(Error::Invalid(_)) => {}
        Ok(hello) => {
            assert!(
                hello.len <= data.len(),
                "len {} > {}",
                hello.len,
                data.len()
            );
            assert!(matches!(class, Sniff::Tls | Sniff::Sslv2), "{class:?}");
            assert_eq!(hello.sslv2, class == Sniff::Sslv2);
            assert_eq!(clienthello::parse(&data[..hello.len]), whole);
            if let Some(name) = &hello.server_name {
                let probes = table().lookup_probes(name);
                assert!(probes <= 1 + table().wildcard_lengths(), "{probes} probes");
            }
            if let Some(ja4) = clienthello::ja4(data) {
                assert_eq!(ja4.len(), 36, "{ja4}");
            }
            if !hello.sslv2 {
                check_reframed(data, hello);
            }
        }
    }
    for cut in cuts(data, &whole) {
        match clienthello::parse(&data[..cut]) {
            Ok(hello) => assert_eq!(Ok(&hello), whole.as_ref(), "prefix {cut}"),
            Err(Error::Incomplete { needed }) => {
                assert!(needed > cut, "prefix {cut}: needed {needed}");
                if let Ok(hello) = &whole {
                    assert!(
                        needed <= hello.len,
                        "prefix {cut}: needed {needed} > {}",
                        hello.len
                    );
                }
            }
            Err(Error::Invalid(reason)) => assert!(
                matches!(whole, Err(Error::Invalid(_))),
                "prefix {cut} is invalid ({reason}) but the whole is {whole:?}"
            ),
        }
    }
});

/// A few prefix lengths to compare with the whole: cheap enough to keep
/// the run fast, varied by the input itself.
fn cuts(data: &[u8], whole: &Result<ClientHello, Error>) -> Vec<usize> {
    let len = data.len();
    if len == 0 {
        return Vec::new();
    }
    let mut cuts = vec![len - 1, len / 2];
    let mix = data.iter().fold(len, |acc, &b| {
        acc.wrapping_mul(31).wrapping_add(usize::from(b))
    });
    cuts.push(mix % len);
    if let Ok(hello) = whole {
        cuts.push(hello.len - 1);
    }
    cuts
}

/// The handshake bytes of `data[..hello.len]` (every record's payload,
/// joined), re-split into records of lengths taken from the input, must
/// parse to the same hello; only `len` changes.
fn check_reframed(data: &[u8], hello: &ClientHello) {
    let records = &data[..hello.len];
    let mut payload = Vec::with_capacity(records.len());
    let mut pos = 0;
    while pos < records.len() {
        let len = usize::from(u16::from_be_bytes([records[pos + 3], records[pos + 4]]));
        payload.extend_from_slice(&records[pos + 5..pos + 5 + len]);
        pos += 5 + len;
    }
    let message_len = 4
        + (usize::from(payload[1]) << 16 | usize::from(payload[2]) << 8 | usize::from(payload[3]));
    let mut framed = Vec::with_capacity(payload.len() + 5 * 16);
    let mut sizes = data.iter().cycle().skip(hello.len / 3);
    let mut start = 0;
    let mut expected_len = None;
    let mut record_count = 0;
    while start < payload.len() {
        // 1..=256 bytes per record; a zero size byte means "the rest".
        let size = match sizes.next().copied().unwrap_or(0) {
            0 => payload.len() - start,
            n => usize::from(n),
        };
        let end = (start + size).min(payload.len()).min(start + 16384);
        framed.extend_from_slice(&[22, records[1], records[2]]);
        framed.extend_from_slice(&u16::try_from(end - start).unwrap_or(0).to_be_bytes());
        framed.extend_from_slice(&payload[start..end]);
        if expected_len.is_none() {
            record_count += 1;
            if end >= message_len {
                expected_len = Some(framed.len());
            }
        }
        start = end;
    }
    let expected = ClientHello {
        len: expected_len.unwrap_or(framed.len()),
        records: record_count,
        ..hello.clone()
    };
    assert_eq!(clienthello::parse(&framed), Ok(expected), "re-framed");
}
