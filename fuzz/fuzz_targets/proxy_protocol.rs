//! PROXY protocol v1/v2 header parser on arbitrary bytes.
//!
//! Beyond "no panic", each input checks the parser's contract:
//! - `Incomplete { needed }` asks for more than it has, and never for more
//!   than the header bound of the version it started as ([`MAX_V1_LEN`]
//!   after a `P`, [`MAX_V2_LEN`] after a `\r`);
//! - a parsed header fits its bound, parses the same from exactly its own
//!   `len` bytes, and carries addresses exactly when it says `proxied`;
//! - a prefix of the input is consistent with the whole (an `Invalid`
//!   prefix makes the whole `Invalid`; an `Incomplete` prefix never asks for
//!   more than the header the whole turned out to hold);
//! - cost: read as its caller reads it (parsing again only once `needed`
//!   bytes are in), trickled one byte per read, the input is parsed a
//!   bounded number of times (never once per byte of a long header).
#![no_main]

use libfuzzer_sys::fuzz_target;
use passthru::proxy_protocol::{
    self, Error, MAX_AUTHORITY_LEN, MAX_V1_LEN, MAX_V2_LEN, ProxyHeader, Version,
};

fuzz_target!(|data: &[u8]| {
    let whole = proxy_protocol::parse(data);
    check(data, &whole);
    assert!(trickled_parses(data) <= MAX_V1_LEN + 2 * 16);
    if let Ok(header) = &whole {
        assert_eq!(proxy_protocol::parse(&data[..header.len]), whole);
    }
    for cut in cuts(data, &whole) {
        let prefix = proxy_protocol::parse(&data[..cut]);
        check(&data[..cut], &prefix);
        match prefix {
            Ok(header) => assert_eq!(Ok(&header), whole.as_ref(), "prefix {cut}"),
            Err(Error::Incomplete { needed }) => {
                if let Ok(header) = &whole {
                    assert!(
                        needed <= header.len,
                        "prefix {cut}: needed {needed} > {}",
                        header.len
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

/// The checks that hold for one buffer and its answer.
fn check(buf: &[u8], answer: &Result<ProxyHeader, Error>) {
    let bound = if buf.first() == Some(&b'P') {
        MAX_V1_LEN
    } else {
        MAX_V2_LEN
    };
    match answer {
        Err(Error::Incomplete { needed }) => {
            assert!(*needed > buf.len(), "needed {needed} <= {}", buf.len());
            assert!(*needed <= bound, "needed {needed} > bound {bound}");
        }
        Err(Error::Invalid(_)) => {}
        Ok(header) => {
            assert!(header.len <= buf.len());
            let bound = match header.version {
                Version::V1 => MAX_V1_LEN,
                Version::V2 => MAX_V2_LEN,
            };
            assert!(header.len <= bound, "len {} > bound {bound}", header.len);
            assert_eq!(header.source.is_some(), header.proxied);
            assert_eq!(header.destination.is_some(), header.proxied);
            if let Some(authority) = &header.authority {
                assert_eq!(header.version, Version::V2);
                assert!(authority.chars().count() <= MAX_AUTHORITY_LEN);
            }
        }
    }
}

/// How many times the caller (`front::read_proxy_header`) parses `data`
/// arriving one byte per read, until a header or a refusal.
fn trickled_parses(data: &[u8]) -> usize {
    let data = &data[..data.len().min(MAX_V2_LEN)];
    let mut want = 0;
    let mut parses = 0;
    for n in 1..=data.len() {
        if n < want {
            continue;
        }
        parses += 1;
        match proxy_protocol::parse(&data[..n]) {
            Err(Error::Incomplete { needed }) => want = needed,
            _ => break,
        }
    }
    parses
}

/// A few prefix lengths to compare with the whole, varied by the input.
fn cuts(data: &[u8], whole: &Result<ProxyHeader, Error>) -> Vec<usize> {
    let len = data.len();
    if len == 0 {
        return Vec::new();
    }
    let mut cuts = vec![len - 1, len / 2];
    let mix = data.iter().fold(len, |acc, &b| {
        acc.wrapping_mul(31).wrapping_add(usize::from(b))
    });
    cuts.push(mix % len);
    if let Ok(header) = whole {
        cuts.push(header.len - 1);
    }
    cuts
}
