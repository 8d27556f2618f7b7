//! Property tests for the parsers that read network input: the ClientHello
//! engine and first-bytes sniffer, PROXY v1/v2 headers, the upstream CONNECT
//! response reader and the offload-header finder.
//!
//! Each property runs a few hundred to a few thousand cases drawn from a
//! small seeded xorshift generator (no property-testing crate: nothing to
//! build, and a failure prints the seed, the case number and the input, which
//! is all a replay needs). The seed is fixed so `make test` is deterministic;
//! `PASSTHRU_PROPERTY_SEED=<u64>` explores other ones. The coverage-guided
//! counterpart is `make fuzz` (`fuzz/`, docs/reliability.md "Fuzzing").
//!
//! The properties, for each parser:
//! - valid inputs, however they are framed (records re-split at random) or
//!   delivered (random read sizes through a loop that, like `front.rs`,
//!   parses again only once `needed` bytes are in), give the same answer as
//!   the whole input, and every strict prefix is `Incomplete` with
//!   `len < needed <= full length`;
//! - arbitrary and mutated bytes never panic, `needed` is always beyond the
//!   buffer and within the configured bound (PROXY: [`MAX_V1_LEN`] after a
//!   `P`, [`MAX_V2_LEN`] after a `\r`), and a refused prefix stays refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Debug;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use passthru::alert::{OFFLOAD_HEADERS, find_offload_headers};
use passthru::clienthello::{self, ClientHello};
use passthru::proxy_protocol::{
    self, MAX_AUTHORITY_LEN, MAX_V1_LEN, MAX_V2_LEN, ProxyHeader, Version, encode_v1, encode_v2,
    encode_v2_local,
};
use passthru::sniff::{Sniff, sniff};
use passthru_net::connect_head::{MAX_HEADER, parse_response};

/// The captured ClientHellos (`proxy/src/clienthello/testdata/README.md`).
const CLIENT_HELLOS: [(&str, &[u8]); 9] = [
    (
        "openssl-tls10.bin",
        include_bytes!("../src/clienthello/testdata/openssl-tls10.bin"),
    ),
    (
        "openssl-tls11.bin",
        include_bytes!("../src/clienthello/testdata/openssl-tls11.bin"),
    ),
    (
        "openssl-tls12.bin",
        include_bytes!("../src/clienthello/testdata/openssl-tls12.bin"),
    ),
    (
        "openssl-tls13.bin",
        include_bytes!("../src/clienthello/testdata/openssl-tls13.bin"),
    ),
    (
        "openssl-nosni.bin",
        include_bytes!("../src/clienthello/testdata/openssl-nosni.bin"),
    ),
    (
        "curl.bin",
        include_bytes!("../src/clienthello/testdata/curl.bin"),
    ),
    (
        "python.bin",
        include_bytes!("../src/clienthello/testdata/python.bin"),
    ),
    (
        "rustls.bin",
        include_bytes!("../src/clienthello/testdata/rustls.bin"),
    ),
    (
        "sslv2-compat.bin",
        include_bytes!("../src/clienthello/testdata/sslv2-compat.bin"),
    ),
];

/// The captured PROXY headers, each but the health check followed by a
/// ClientHello (`proxy/src/proxy_protocol/testdata/README.md`).
const PROXY_HEADERS: [(&str, &[u8]); 4] = [
    (
        "haproxy-v1.bin",
        include_bytes!("../src/proxy_protocol/testdata/haproxy-v1.bin"),
    ),
    (
        "haproxy-v2.bin",
        include_bytes!("../src/proxy_protocol/testdata/haproxy-v2.bin"),
    ),
    (
        "haproxy-v2-crc32c.bin",
        include_bytes!("../src/proxy_protocol/testdata/haproxy-v2-crc32c.bin"),
    ),
    (
        "haproxy-v2-local.bin",
        include_bytes!("../src/proxy_protocol/testdata/haproxy-v2-local.bin"),
    ),
];

// ---------------------------------------------------------------------------
// ClientHello and sniff

#[test]
fn clienthello_reframed_fixtures_parse_the_same_and_every_prefix_is_incomplete() {
    let mut rng = Rng::for_property(1);
    for (name, bytes) in CLIENT_HELLOS {
        let whole = clienthello::parse(bytes).unwrap();
        if whole.sslv2 {
            continue; // one SSLv2 header, nothing to re-frame
        }
        let (version, payload) = handshake_payload(bytes);
        for case in 0..40 {
            let sizes = rng.record_sizes(payload.len());
            let (framed, hello_len) = frame_records(version, &payload, &sizes);
            let want = ClientHello {
                len: hello_len,
                records: record_count(&framed[..hello_len]),
                ..whole.clone()
            };
            let what = format!("{name}, case {case}, records {sizes:?}");
            assert_eq!(clienthello::parse(&framed), Ok(want), "{what}");
            assert_prefixes_incomplete(&framed[..hello_len], &what, |buf| {
                hello_answer(clienthello::parse(buf))
            });
        }
    }
}

#[test]
fn clienthello_random_reads_reach_the_same_hello() {
    let mut rng = Rng::for_property(2);
    for (name, bytes) in CLIENT_HELLOS {
        let whole = clienthello::parse(bytes).unwrap();
        for case in 0..100 {
            // Re-framed (TLS hellos only) and followed by what the client
            // sends next, which must not change the answer.
            let mut input = if whole.sslv2 || case % 2 == 0 {
                bytes.to_vec()
            } else {
                let (version, payload) = handshake_payload(bytes);
                frame_records(version, &payload, &rng.record_sizes(payload.len())).0
            };
            let want = clienthello::parse(&input).unwrap();
            input.extend(rng.bytes_between(0, 39));
            let what = format!("{name}, case {case}");
            let got = read_like_front(&input, &mut rng, &what, |buf| {
                hello_answer(clienthello::parse(buf))
            });
            assert_eq!(got, Answer::Complete(want), "{what}");
        }
    }
}

#[test]
fn clienthello_arbitrary_bytes_never_panic_and_ask_beyond_the_buffer() {
    let mut rng = Rng::for_property(3);
    for case in 0..10_000 {
        let input = rng.hello_like_bytes();
        check_hello_contract(&input, &mut rng, &format!("case {case}"));
    }
}

#[test]
fn clienthello_mutated_fixtures_never_panic_and_stay_consistent() {
    let mut rng = Rng::for_property(4);
    let mut parsed = 0;
    for case in 0..10_000 {
        let (name, bytes) = CLIENT_HELLOS[case % CLIENT_HELLOS.len()];
        let input = rng.mutate(bytes);
        let what = format!("{name}, case {case}");
        parsed += usize::from(check_hello_contract(&input, &mut rng, &what));
    }
    // The mutations must leave many hellos intact (an unrelated byte
    // flipped), else this only tests refusals.
    assert!(
        parsed > 1000,
        "only {parsed} of 10000 mutated hellos parsed"
    );
}

/// The ClientHello contract on one input (and one random prefix of it):
/// `needed` beyond the buffer; a parsed hello fits the buffer, parses the
/// same from its own bytes and was sniffed as TLS; an invalid prefix makes
/// the whole invalid. Returns whether the input parsed.
fn check_hello_contract(input: &[u8], rng: &mut Rng, what: &str) -> bool {
    let whole = clienthello::parse(input);
    let class = sniff(input);
    let what = format!("{what}, input {}", hex(input));
    match &whole {
        Err(clienthello::Error::Incomplete { needed }) => {
            assert!(*needed > input.len(), "needed {needed}: {what}");
        }
        Err(clienthello::Error::Invalid(_)) => {}
        Ok(hello) => {
            assert!(hello.len <= input.len(), "{what}");
            assert!(
                matches!(class, Sniff::Tls | Sniff::Sslv2),
                "{class:?}: {what}"
            );
            assert_eq!(hello.sslv2, class == Sniff::Sslv2, "{what}");
            assert_eq!(&clienthello::parse(&input[..hello.len]), &whole, "{what}");
        }
    }
    if !input.is_empty() {
        let cut = rng.below(input.len());
        match clienthello::parse(&input[..cut]) {
            Ok(hello) => assert_eq!(Ok(&hello), whole.as_ref(), "prefix {cut}: {what}"),
            Err(clienthello::Error::Incomplete { needed }) => {
                assert!(needed > cut, "prefix {cut}: needed {needed}: {what}");
                if let Ok(hello) = &whole {
                    assert!(needed <= hello.len, "prefix {cut}: needed {needed}: {what}");
                }
            }
            Err(clienthello::Error::Invalid(reason)) => assert!(
                matches!(whole, Err(clienthello::Error::Invalid(_))),
                "prefix {cut} invalid ({reason}), whole {whole:?}: {what}"
            ),
        }
    }
    whole.is_ok()
}

fn hello_answer(result: Result<ClientHello, clienthello::Error>) -> Answer<ClientHello> {
    match result {
        Ok(hello) => Answer::Complete(hello),
        Err(clienthello::Error::Incomplete { needed }) => Answer::NeedMore(needed),
        Err(clienthello::Error::Invalid(reason)) => Answer::Invalid(reason.to_string()),
    }
}

/// The record version of a TLS-framed hello and its handshake bytes (every
/// record's payload, joined).
fn handshake_payload(records: &[u8]) -> ([u8; 2], Vec<u8>) {
    let version = [records[1], records[2]];
    let mut payload = Vec::new();
    let mut pos = 0;
    while pos < records.len() {
        let len = usize::from(u16::from_be_bytes([records[pos + 3], records[pos + 4]]));
        payload.extend_from_slice(&records[pos + 5..pos + 5 + len]);
        pos += 5 + len;
    }
    (version, payload)
}

/// `payload` in handshake records of the given sizes (the last one takes
/// the rest), and the length up to the end of the record that completes the
/// handshake message.
/// TLS records in `framed` (whole records, as [`frame_records`] writes them).
fn record_count(framed: &[u8]) -> usize {
    let mut pos = 0;
    let mut count = 0;
    while let Some(header) = framed.get(pos..pos + 5) {
        pos += 5 + usize::from(u16::from_be_bytes([header[3], header[4]]));
        count += 1;
    }
    count
}

fn frame_records(version: [u8; 2], payload: &[u8], sizes: &[usize]) -> (Vec<u8>, usize) {
    let message_len = 4
        + (usize::from(payload[1]) << 16 | usize::from(payload[2]) << 8 | usize::from(payload[3]));
    let mut framed = Vec::with_capacity(payload.len() + 5 * (sizes.len() + 1));
    let mut hello_len = None;
    let mut start = 0;
    for size in sizes.iter().copied().chain([usize::MAX]) {
        if start == payload.len() {
            break;
        }
        let end = start.saturating_add(size).min(payload.len());
        let record_len = u16::try_from(end - start).unwrap();
        framed.extend_from_slice(&[22, version[0], version[1]]);
        framed.extend_from_slice(&record_len.to_be_bytes());
        framed.extend_from_slice(&payload[start..end]);
        if hello_len.is_none() && end >= message_len {
            hello_len = Some(framed.len());
        }
        start = end;
    }
    (framed, hello_len.unwrap())
}

// ---------------------------------------------------------------------------
// PROXY protocol

#[test]
fn proxy_header_every_prefix_is_incomplete_within_its_bound() {
    let mut rng = Rng::for_property(5);
    let mut inputs: Vec<(String, Vec<u8>)> = PROXY_HEADERS
        .iter()
        .map(|(name, bytes)| ((*name).to_owned(), bytes.to_vec()))
        .collect();
    inputs.push(("encode_v2_local".to_owned(), encode_v2_local()));
    for case in 0..400 {
        let (source, destination) = (rng.socket_addr(), rng.socket_addr());
        let authority = rng.authority();
        let encoded = match case % 2 {
            0 => encode_v1(source, destination),
            _ => encode_v2(source, destination, authority.as_deref()),
        };
        inputs.push((format!("encoded case {case}"), encoded));
    }
    for (what, input) in inputs {
        let header = proxy_protocol::parse(&input).unwrap();
        let bound = match header.version {
            Version::V1 => MAX_V1_LEN,
            Version::V2 => MAX_V2_LEN,
        };
        assert!(header.len <= bound, "{what}: len {}", header.len);
        assert_prefixes_incomplete(&input[..header.len], &what, |buf| {
            proxy_answer(proxy_protocol::parse(buf))
        });
        // What follows the header (the ClientHello) changes nothing.
        let mut longer = input.clone();
        longer.extend(rng.bytes_between(1, 300));
        assert_eq!(proxy_protocol::parse(&longer), Ok(header), "{what}");
    }
}

#[test]
fn proxy_header_encoders_round_trip() {
    let mut rng = Rng::for_property(6);
    for case in 0..2000 {
        let (source, destination) = (rng.socket_addr(), rng.socket_addr());
        let authority = rng.authority();
        let (want_source, want_destination) = match (source, destination) {
            (SocketAddr::V4(_), SocketAddr::V4(_)) => (source, destination),
            _ => (mapped(source), mapped(destination)),
        };
        let what = format!("case {case}: {source} -> {destination}, authority {authority:?}");

        let v1 = proxy_protocol::parse(&encode_v1(source, destination)).unwrap();
        assert_eq!(v1.version, Version::V1, "{what}");
        assert!(v1.proxied, "{what}");
        assert_eq!(v1.source, Some(want_source), "{what}");
        assert_eq!(v1.destination, Some(want_destination), "{what}");
        assert!(v1.len <= MAX_V1_LEN, "{what}");

        let v2 = proxy_protocol::parse(&encode_v2(source, destination, authority.as_deref()));
        let v2 = v2.unwrap();
        assert_eq!(v2.version, Version::V2, "{what}");
        assert!(v2.proxied, "{what}");
        assert_eq!(v2.source, Some(want_source), "{what}");
        assert_eq!(v2.destination, Some(want_destination), "{what}");
        // A name longer than the AUTHORITY limit is left out, not cut.
        let want_authority = authority.filter(|name| name.len() <= MAX_AUTHORITY_LEN);
        assert_eq!(v2.authority, want_authority, "{what}");
    }
}

#[test]
fn proxy_header_random_reads_reach_the_same_header_and_hello() {
    let mut rng = Rng::for_property(7);
    for (name, bytes) in PROXY_HEADERS {
        let header = proxy_protocol::parse(bytes).unwrap();
        let hello = &bytes[header.len..];
        for case in 0..100 {
            let what = format!("{name}, case {case}");
            let got = read_like_front(bytes, &mut rng, &what, |buf| {
                proxy_answer(proxy_protocol::parse(buf))
            });
            assert_eq!(got, Answer::Complete(header.clone()), "{what}");
            if hello.is_empty() {
                continue; // the health check sends nothing after its header
            }
            // The bytes after the header, read the same way, are the hello.
            let got = read_like_front(hello, &mut rng, &what, |buf| {
                hello_answer(clienthello::parse(buf))
            });
            assert_eq!(
                got,
                Answer::Complete(clienthello::parse(hello).unwrap()),
                "{what}"
            );
        }
    }
}

#[test]
fn proxy_header_arbitrary_bytes_never_ask_beyond_the_bound() {
    let mut rng = Rng::for_property(8);
    for case in 0..10_000 {
        let input = rng.proxy_like_bytes();
        check_proxy_contract(&input, &mut rng, &format!("case {case}"));
    }
}

#[test]
fn proxy_header_mutated_fixtures_never_panic_and_stay_consistent() {
    let mut rng = Rng::for_property(9);
    let mut parsed = 0;
    for case in 0..10_000 {
        let (name, bytes) = PROXY_HEADERS[case % PROXY_HEADERS.len()];
        let input = rng.mutate(bytes);
        let what = format!("{name}, case {case}");
        parsed += usize::from(check_proxy_contract(&input, &mut rng, &what));
    }
    assert!(
        parsed > 1000,
        "only {parsed} of 10000 mutated headers parsed"
    );
}

/// The PROXY contract on one input and one random prefix of it. Returns
/// whether the input parsed.
fn check_proxy_contract(input: &[u8], rng: &mut Rng, what: &str) -> bool {
    let what = format!("{what}, input {}", hex(input));
    let whole = proxy_protocol::parse(input);
    check_proxy_answer(input, &whole, &what);
    if !input.is_empty() {
        let cut = rng.below(input.len());
        let prefix = proxy_protocol::parse(&input[..cut]);
        check_proxy_answer(&input[..cut], &prefix, &format!("prefix {cut}: {what}"));
        match prefix {
            Ok(header) => assert_eq!(Ok(&header), whole.as_ref(), "prefix {cut}: {what}"),
            Err(proxy_protocol::Error::Incomplete { needed }) => {
                if let Ok(header) = &whole {
                    assert!(
                        needed <= header.len,
                        "prefix {cut}: needed {needed}: {what}"
                    );
                }
            }
            Err(proxy_protocol::Error::Invalid(reason)) => assert!(
                matches!(whole, Err(proxy_protocol::Error::Invalid(_))),
                "prefix {cut} invalid ({reason}), whole {whole:?}: {what}"
            ),
        }
    }
    whole.is_ok()
}

/// `needed` beyond the buffer and within the bound of the version the
/// buffer started as; a parsed header within its bound, parsing the same
/// from its own bytes, with addresses exactly when it is `proxied`.
fn check_proxy_answer(buf: &[u8], answer: &Result<ProxyHeader, proxy_protocol::Error>, what: &str) {
    match answer {
        Err(proxy_protocol::Error::Incomplete { needed }) => {
            let bound = if buf.first() == Some(&b'P') {
                MAX_V1_LEN
            } else {
                MAX_V2_LEN
            };
            assert!(*needed > buf.len(), "needed {needed}: {what}");
            assert!(*needed <= bound, "needed {needed} > {bound}: {what}");
        }
        Err(proxy_protocol::Error::Invalid(_)) => {}
        Ok(header) => {
            let bound = match header.version {
                Version::V1 => MAX_V1_LEN,
                Version::V2 => MAX_V2_LEN,
            };
            assert!(
                header.len <= buf.len().min(bound),
                "len {}: {what}",
                header.len
            );
            assert_eq!(header.source.is_some(), header.proxied, "{what}");
            assert_eq!(header.destination.is_some(), header.proxied, "{what}");
            assert_eq!(
                proxy_protocol::parse(&buf[..header.len]).as_ref(),
                Ok(header),
                "{what}"
            );
        }
    }
}

fn proxy_answer(result: Result<ProxyHeader, proxy_protocol::Error>) -> Answer<ProxyHeader> {
    match result {
        Ok(header) => Answer::Complete(header),
        Err(proxy_protocol::Error::Incomplete { needed }) => Answer::NeedMore(needed),
        Err(proxy_protocol::Error::Invalid(reason)) => Answer::Invalid(reason.to_string()),
    }
}

fn mapped(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(v4) => SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port()),
        SocketAddr::V6(_) => addr,
    }
}

// ---------------------------------------------------------------------------
// CONNECT response (the `via` hop) and offload headers (plaintext HTTP)

#[test]
fn connect_response_every_prefix_is_incomplete_and_the_tunnel_bytes_are_left() {
    let mut rng = Rng::for_property(10);
    for case in 0..1000 {
        let status = 100 + u16::try_from(rng.below(500)).unwrap();
        let reason = rng.token(
            0,
            30,
            b" abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
        );
        let reason = reason.trim();
        let eol = if rng.below(4) == 0 { "\n" } else { "\r\n" };
        let mut head = format!("HTTP/1.{} {status} {reason}{eol}", rng.below(2));
        for _ in 0..rng.below(12) {
            let name = rng.token(
                1,
                20,
                b"abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJKLMNOPQRSTUVWXYZ",
            );
            let value = rng.token(0, 60, b" abcdefghijklmnopqrstuvwxyz0123456789=;,/.\"");
            head.push_str(&format!("{name}: {}{eol}", value.trim()));
        }
        head.push_str(eol);
        let tunnel = rng.bytes_between(0, 63);
        let input = [head.as_bytes(), &tunnel].concat();
        let what = format!("case {case}: {head:?}");
        for cut in 0..head.len() {
            assert_eq!(
                parse_response(&input[..cut]),
                Ok(None),
                "prefix {cut}, {what}"
            );
        }
        let got = parse_response(&input).unwrap().unwrap();
        assert_eq!(got.status, status, "{what}");
        assert_eq!(got.len, head.len(), "{what}");
        let want_line = format!("HTTP/1.{} {status} {reason}", &head[7..8]);
        assert_eq!(got.status_line, want_line.trim_end(), "{what}");
    }
}

#[test]
fn connect_response_arbitrary_bytes_never_panic_and_stay_bounded() {
    let mut rng = Rng::for_property(11);
    let valid = b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"corp\"\r\nContent-Length: 0\r\n\r\n";
    for case in 0..10_000 {
        let mut input = match case % 3 {
            0 => rng.mutate(valid),
            1 => [b"HTTP/1.1 ".as_slice(), &rng.text_like_bytes(300)].concat(),
            _ => rng.bytes_between(0, 299),
        };
        if case % 500 == 0 {
            // Now and then the whole bound: a long line of junk.
            input.extend(rng.text_like_bytes(MAX_HEADER));
        }
        input.truncate(MAX_HEADER);
        let what = format!("case {case}, input {}", hex(&input));
        let whole = parse_response(&input);
        if let Ok(Some(head)) = &whole {
            assert!(head.len <= input.len(), "{what}");
            assert!(head.status_line.chars().count() <= 200, "{what}");
            assert!(!head.status_line.chars().any(char::is_control), "{what}");
        }
        if !input.is_empty() {
            let cut = rng.below(input.len());
            match parse_response(&input[..cut]) {
                Ok(Some(head)) => assert_eq!(Ok(Some(head)), whole, "prefix {cut}: {what}"),
                Ok(None) => {}
                Err(error) => assert!(whole.is_err(), "prefix {cut} error {error}: {what}"),
            }
        }
    }
}

#[test]
fn offload_headers_are_found_exactly_and_arbitrary_bytes_never_panic() {
    let mut rng = Rng::for_property(12);
    for case in 0..1000 {
        let mut head = String::from("GET / HTTP/1.1\r\nHost: gw.example.com\r\n");
        let mut want = Vec::new();
        for _ in 0..rng.below(10) {
            if rng.below(2) == 0 {
                let name = OFFLOAD_HEADERS[rng.below(OFFLOAD_HEADERS.len())];
                let name: String = name
                    .chars()
                    .map(|c| {
                        if rng.below(2) == 0 {
                            c.to_ascii_uppercase()
                        } else {
                            c
                        }
                    })
                    .collect();
                head.push_str(&format!("{name}: on\r\n"));
                want.push(name);
            } else {
                let name = rng.token(1, 20, b"abcdefghijklmnopqrstuvwxyz-");
                head.push_str(&format!("X-Other-{name}: on\r\n"));
            }
        }
        head.push_str("\r\n");
        assert_eq!(
            find_offload_headers(head.as_bytes()),
            want,
            "case {case}: {head:?}"
        );
    }
    for case in 0..5000 {
        let input = match case % 2 {
            0 => rng.mutate(
                b"POST /x HTTP/1.1\r\nX-Forwarded-Proto: https\r\nX-SSL-Client-Cert: a\r\n\r\n",
            ),
            _ => rng.text_like_bytes(400),
        };
        for name in find_offload_headers(&input) {
            assert!(
                OFFLOAD_HEADERS
                    .iter()
                    .any(|known| name.eq_ignore_ascii_case(known)),
                "case {case}: {name:?} from {}",
                hex(&input)
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Shared machinery

/// A parser's answer, the same shape for every three-valued parser.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer<T> {
    Complete(T),
    NeedMore(usize),
    Invalid(String),
}

/// Every strict prefix of `full` (a complete input, nothing after it) is
/// `NeedMore(needed)` with `prefix < needed <= full.len()`.
fn assert_prefixes_incomplete<T: Debug>(
    full: &[u8],
    what: &str,
    parse: impl Fn(&[u8]) -> Answer<T>,
) {
    for cut in 0..full.len() {
        match parse(&full[..cut]) {
            Answer::NeedMore(needed) => assert!(
                cut < needed && needed <= full.len(),
                "{what}: prefix {cut} of {} asks for {needed}",
                full.len()
            ),
            other => panic!("{what}: prefix {cut} of {} is {other:?}", full.len()),
        }
    }
}

/// Deliver `input` in random read sizes and parse the way `front.rs` does:
/// again only once at least `needed` bytes are in. Each `needed` must be
/// beyond what was read. Returns the first final answer, or the last
/// `NeedMore` when the input ran out.
fn read_like_front<T: Debug>(
    input: &[u8],
    rng: &mut Rng,
    what: &str,
    parse: impl Fn(&[u8]) -> Answer<T>,
) -> Answer<T> {
    let (mut have, mut want) = (0, 1);
    loop {
        if have >= want {
            match parse(&input[..have]) {
                Answer::NeedMore(needed) => {
                    assert!(
                        needed > have,
                        "{what}: after {have} bytes asks for {needed}"
                    );
                    want = needed;
                }
                done => return done,
            }
        }
        if have == input.len() {
            return Answer::NeedMore(want);
        }
        have = (have + rng.read_size()).min(input.len());
    }
}

/// Hex of the first bytes of an input, for failure messages.
fn hex(bytes: &[u8]) -> String {
    let shown: String = bytes.iter().take(96).map(|b| format!("{b:02x}")).collect();
    if bytes.len() > 96 {
        format!("{shown}… ({} bytes)", bytes.len())
    } else {
        shown
    }
}

/// xorshift64* (Vigna): small, fast, good enough to pick cases; seeded per
/// property so each one replays alone.
struct Rng(u64);

impl Rng {
    /// The generator for property number `n`, from the fixed seed or
    /// `PASSTHRU_PROPERTY_SEED`.
    fn for_property(n: u64) -> Rng {
        let seed = std::env::var("PASSTHRU_PROPERTY_SEED")
            .ok()
            .and_then(|seed| seed.parse::<u64>().ok())
            .unwrap_or(0x7061_7373_7468_7275); // "passthru"
        // splitmix64 of seed + n: distinct, never-zero states.
        let mut z = seed.wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-enough in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).unwrap()).unwrap()
    }

    fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[0]
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }

    /// `min..=max` random bytes.
    fn bytes_between(&mut self, min: usize, max: usize) -> Vec<u8> {
        let n = min + self.below(max - min + 1);
        self.bytes(n)
    }

    /// A read size: mostly small (byte-at-a-time peers), sometimes large.
    fn read_size(&mut self) -> usize {
        match self.below(4) {
            0 => 1,
            1 => 1 + self.below(8),
            2 => 1 + self.below(64),
            _ => 1 + self.below(1024),
        }
    }

    /// Record payload sizes for re-framing `total` handshake bytes: one to
    /// eight records, cut anywhere (inside the handshake header too).
    fn record_sizes(&mut self, total: usize) -> Vec<usize> {
        let records = 1 + self.below(8);
        (1..records)
            .map(|_| match self.below(3) {
                0 => 1 + self.below(4),
                _ => 1 + self.below(total),
            })
            .collect()
    }

    /// `n` in `min..=max` characters of `alphabet`.
    fn token(&mut self, min: usize, max: usize, alphabet: &[u8]) -> String {
        let len = min + self.below(max - min + 1);
        (0..len)
            .map(|_| char::from(alphabet[self.below(alphabet.len())]))
            .collect()
    }

    /// Up to `max` bytes that look like HTTP text now and then.
    fn text_like_bytes(&mut self, max: usize) -> Vec<u8> {
        const PIECES: [&[u8]; 8] = [b"\r\n", b": ", b" ", b"\n", b"HTTP/1.1", b"a", b"\t", b"\0"];
        let len = self.below(max + 1);
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            match self.below(3) {
                0 => out.extend_from_slice(PIECES[self.below(PIECES.len())]),
                1 => out.push(b'A' + u8::try_from(self.below(26)).unwrap()),
                _ => out.push(self.byte()),
            }
        }
        out
    }

    /// Arbitrary bytes shaped to get past the ClientHello parser's first
    /// checks: random, a TLS record header with a random body, a handshake
    /// header with random lengths, or an SSLv2 header.
    fn hello_like_bytes(&mut self) -> Vec<u8> {
        let len = self.below(600);
        let mut out = self.bytes(len);
        match self.below(4) {
            0 => {}
            1 => out.splice(0..0, [22, 3, self.byte() & 3]).for_each(drop),
            2 => {
                let record = u16::try_from(self.below(700)).unwrap().to_be_bytes();
                let body = u16::try_from(self.below(700)).unwrap().to_be_bytes();
                let header = [22, 3, 1, record[0], record[1], 1, 0, body[0], body[1]];
                out.splice(0..0, header).for_each(drop);
            }
            _ => {
                let header = [0x80 | (self.byte() & 1), self.byte(), 1, 3, self.byte() & 3];
                out.splice(0..0, header).for_each(drop);
            }
        }
        out
    }

    /// Arbitrary bytes shaped to get past the PROXY parser's first checks:
    /// random, `PROXY ` and text of its alphabet, or the v2 signature with
    /// random fixed fields and lengths.
    fn proxy_like_bytes(&mut self) -> Vec<u8> {
        match self.below(3) {
            0 => self.bytes_between(0, 199),
            1 => {
                const ALPHABET: &[u8] = b"PROXY TCP4 TCP6 UNKNOWN 0123456789.:abcdef \r\n";
                let len = self.below(140);
                let mut out = b"PROXY ".to_vec();
                out.extend((0..len).map(|_| ALPHABET[self.below(ALPHABET.len())]));
                out
            }
            _ => {
                let mut out = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
                let command = [0x20, 0x21, 0x20 | (self.byte() & 0x0f)][self.below(3)];
                let family = [0x00, 0x11, 0x21, 0x12, 0x31, self.byte()][self.below(6)];
                let len = match self.below(3) {
                    0 => u16::try_from(self.below(300)).unwrap(),
                    1 => u16::try_from(self.below(MAX_V2_LEN)).unwrap(),
                    _ => u16::from_be_bytes([self.byte(), self.byte()]),
                };
                out.extend([command, family]);
                out.extend(len.to_be_bytes());
                let body = self.below(usize::from(len) + 40);
                out.extend(self.bytes(body.min(600)));
                out
            }
        }
    }

    /// `input` with one to four mutations: bit flips, byte overwrites,
    /// insertions, deletions, truncation, duplicated slices.
    fn mutate(&mut self, input: &[u8]) -> Vec<u8> {
        let mut out = input.to_vec();
        for _ in 0..1 + self.below(4) {
            if out.is_empty() {
                out.push(self.byte());
                continue;
            }
            let at = self.below(out.len());
            match self.below(6) {
                0 => out[at] ^= 1 << self.below(8),
                1 => out[at] = self.byte(),
                2 => {
                    let insert = self.bytes_between(1, 8);
                    out.splice(at..at, insert).for_each(drop);
                }
                3 => {
                    let end = (at + 1 + self.below(8)).min(out.len());
                    out.drain(at..end);
                }
                4 => out.truncate(at),
                _ => {
                    let end = (at + 1 + self.below(16)).min(out.len());
                    let slice = out[at..end].to_vec();
                    out.splice(at..at, slice).for_each(drop);
                }
            }
        }
        out
    }

    fn socket_addr(&mut self) -> SocketAddr {
        let port = u16::try_from(self.below(65536)).unwrap();
        if self.below(2) == 0 {
            let ip = Ipv4Addr::from(u32::try_from(self.next() >> 32).unwrap());
            SocketAddr::new(ip.into(), port)
        } else {
            let ip = Ipv6Addr::from(u128::from(self.next()) << 64 | u128::from(self.next()));
            SocketAddr::new(ip.into(), port)
        }
    }

    /// An AUTHORITY value: none, a host name, or one too long to send.
    fn authority(&mut self) -> Option<String> {
        const HOST: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789-.";
        match self.below(4) {
            0 => None,
            1 => Some(self.token(250, 300, HOST)),
            _ => Some(self.token(1, 64, HOST)),
        }
    }
}

// ---------------------------------------------------------------------------
// Admin request head and inbound CONNECT head (reached through their
// `#[doc(hidden)]` exports)

#[test]
fn admin_request_prefixes_need_more_and_refusals_stay_refused() {
    let mut rng = Rng::for_property(13);
    for case in 0..1000 {
        let method = ["GET", "HEAD", "POST", "DELETE"][rng.below(4)];
        let path = ["/healthz", "/readyz", "/metrics", "/metrics?x=1", "/nope"][rng.below(5)];
        let mut head = format!("{method} {path} HTTP/1.{}\r\n", rng.below(2));
        for _ in 0..rng.below(20) {
            let name = rng.token(
                1,
                20,
                b"abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJKLMNOPQRSTUVWXYZ",
            );
            let value = rng.token(0, 60, b" abcdefghijklmnopqrstuvwxyz0123456789=;,/.\"");
            head.push_str(&format!("{name}: {}\r\n", value.trim()));
        }
        head.push_str("\r\n");
        let what = format!("case {case}: {head:?}");
        let whole = format!("{:?}", passthru::admin::parse_request(head.as_bytes()));
        assert!(whole.starts_with("Ok(Some("), "{whole}: {what}");
        for cut in 0..head.len() {
            let prefix = passthru::admin::parse_request(&head.as_bytes()[..cut]);
            assert!(
                matches!(prefix, Ok(None)),
                "prefix {cut}: {prefix:?}, {what}"
            );
        }
        let longer = [head.as_bytes(), &rng.bytes_between(1, 100)].concat();
        let longer = format!("{:?}", passthru::admin::parse_request(&longer));
        assert_eq!(longer, whole, "{what}");
    }
    for case in 0..5000 {
        let mut input = match case % 2 {
            0 => rng.mutate(b"GET /metrics HTTP/1.1\r\nHost: 10.0.0.5:9100\r\nAccept: */*\r\n\r\n"),
            _ => rng.text_like_bytes(400),
        };
        input.truncate(8 * 1024);
        let whole = format!("{:?}", passthru::admin::parse_request(&input));
        if !input.is_empty() {
            let cut = rng.below(input.len());
            match passthru::admin::parse_request(&input[..cut]) {
                Ok(None) => {}
                prefix => assert_eq!(
                    format!("{prefix:?}"),
                    whole,
                    "case {case}, prefix {cut}: {}",
                    hex(&input)
                ),
            }
        }
    }
}

#[test]
fn connect_request_targets_are_bounded_and_lower_case() {
    let mut rng = Rng::for_property(14);
    for case in 0..1000 {
        let host = rng.token(
            1,
            60,
            b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.",
        );
        let port = u16::try_from(rng.below(65536)).unwrap();
        let head = format!("CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n");
        let want = passthru_net::connect_head::ConnectRequest::Target {
            host: host.to_ascii_lowercase(),
            port,
        };
        assert_eq!(
            passthru_net::connect_head::parse_connect(head.as_bytes()),
            want,
            "case {case}: {head:?}"
        );
    }
    for case in 0..5000 {
        let input =
            rng.mutate(b"CONNECT GW.example.com:443 HTTP/1.1\r\nHost: GW.example.com:443\r\n\r\n");
        if let passthru_net::connect_head::ConnectRequest::Target { host, .. } =
            passthru_net::connect_head::parse_connect(&input)
        {
            assert!(
                !host.is_empty() && host.len() <= 253,
                "case {case}: {}",
                hex(&input)
            );
            assert_eq!(
                host,
                host.to_ascii_lowercase(),
                "case {case}: {}",
                hex(&input)
            );
        }
    }
}
