//! Unit tests for the ClientHello parser: captured fixtures, every prefix,
//! re-framed and split hellos, built edge cases and refusals.

use std::borrow::Cow;

use super::record::reassemble;
use super::*;
use crate::sniff::{Sniff, sniff};

const OPENSSL_TLS10: &[u8] = include_bytes!("testdata/openssl-tls10.bin");
const OPENSSL_TLS11: &[u8] = include_bytes!("testdata/openssl-tls11.bin");
const OPENSSL_TLS12: &[u8] = include_bytes!("testdata/openssl-tls12.bin");
const OPENSSL_TLS13: &[u8] = include_bytes!("testdata/openssl-tls13.bin");
const OPENSSL_NOSNI: &[u8] = include_bytes!("testdata/openssl-nosni.bin");
const CURL: &[u8] = include_bytes!("testdata/curl.bin");
const PYTHON: &[u8] = include_bytes!("testdata/python.bin");
const RUSTLS: &[u8] = include_bytes!("testdata/rustls.bin");
const CHROMIUM: &[u8] = include_bytes!("testdata/chromium.bin");
const SSLV2_COMPAT: &[u8] = include_bytes!("testdata/sslv2-compat.bin");

const SNI: &str = "gw.example.com";

/// Every fixture, by file name.
const FIXTURES: [(&str, &[u8]); 10] = [
    ("openssl-tls10.bin", OPENSSL_TLS10),
    ("openssl-tls11.bin", OPENSSL_TLS11),
    ("openssl-tls12.bin", OPENSSL_TLS12),
    ("openssl-tls13.bin", OPENSSL_TLS13),
    ("openssl-nosni.bin", OPENSSL_NOSNI),
    ("curl.bin", CURL),
    ("python.bin", PYTHON),
    ("rustls.bin", RUSTLS),
    ("chromium.bin", CHROMIUM),
    ("sslv2-compat.bin", SSLV2_COMPAT),
];

/// The hello a TLS-framed fixture must parse to.
fn tls_hello(
    len: usize,
    sni: Option<&str>,
    alpn: &[&str],
    legacy: u16,
    versions: &[u16],
) -> ClientHello {
    ClientHello {
        server_name: sni.map(str::to_owned),
        alpn: alpn.iter().map(|name| (*name).to_owned()).collect(),
        supported_versions: versions.to_vec(),
        ..ClientHello::bare(0x0301, legacy, false, len)
    }
}

/// `hello` with the groups it offers.
fn with_groups(mut hello: ClientHello, shares: &[u16], supported: &[u16]) -> ClientHello {
    hello.key_shares = shares.iter().copied().collect();
    hello.supported_groups = supported.iter().copied().collect();
    hello
}

fn expected(fixture: &str) -> ClientHello {
    const H2_H11: &[&str] = &["h2", "http/1.1"];
    const ALL: &[u16] = &[0x0304, 0x0303, 0x0302, 0x0301];
    const TLS13_12: &[u16] = &[0x0304, 0x0303];
    // x25519, secp256r1, x448, secp521r1, secp384r1, then ffdhe2048..8192
    const OPENSSL_GROUPS: &[u16] = &[29, 23, 30, 25, 24, 256, 257, 258, 259, 260];
    const X25519: &[u16] = &[29];
    let tls12 = |version| {
        let hello = tls_hello(145, Some(SNI), H2_H11, version, &[]);
        with_groups(hello, &[], &OPENSSL_GROUPS[..5])
    };
    match fixture {
        "openssl-tls10.bin" => tls12(0x0301),
        "openssl-tls11.bin" => tls12(0x0302),
        "openssl-tls12.bin" => ClientHello {
            len: 229,
            ..tls12(0x0303)
        },
        "openssl-tls13.bin" => with_groups(
            tls_hello(266, Some(SNI), H2_H11, 0x0303, &[0x0304]),
            X25519,
            OPENSSL_GROUPS,
        ),
        "openssl-nosni.bin" => with_groups(
            tls_hello(297, None, &[], 0x0303, ALL),
            X25519,
            OPENSSL_GROUPS,
        ),
        "curl.bin" => with_groups(
            tls_hello(517, Some(SNI), H2_H11, 0x0303, ALL),
            X25519,
            OPENSSL_GROUPS,
        ),
        "python.bin" => with_groups(
            tls_hello(517, Some(SNI), H2_H11, 0x0303, TLS13_12),
            X25519,
            OPENSSL_GROUPS,
        ),
        "rustls.bin" => with_groups(
            tls_hello(250, Some(SNI), &["h2"], 0x0303, TLS13_12),
            X25519,
            &[29, 23, 24],
        ),
        // Chromium sends a GREASE encrypted_client_hello extension.
        "chromium.bin" => ClientHello {
            ech: true,
            ..with_groups(
                tls_hello(1986, Some(SNI), H2_H11, 0x0303, TLS13_12),
                &[0x11ec, 29],
                &[0x11ec, 29, 23, 24],
            )
        },
        "sslv2-compat.bin" => ClientHello::bare(0x0002, 0x0301, true, 39),
        other => panic!("no expectation for {other}"),
    }
}

/// Each strict prefix is `Incomplete` with `needed` beyond it, and the whole
/// buffer parses to `want`.
fn check_all_prefixes(bytes: &[u8], want: &ClientHello, what: &str) {
    for prefix_len in 0..bytes.len() {
        match parse(&bytes[..prefix_len]) {
            Err(Error::Incomplete { needed }) => {
                assert!(
                    needed > prefix_len,
                    "{what}: prefix {prefix_len} asked for {needed}"
                );
                assert!(
                    needed <= bytes.len(),
                    "{what}: prefix {prefix_len} asked for {needed}"
                );
            }
            other => panic!("{what}: prefix {prefix_len} gave {other:?}"),
        }
    }
    assert_eq!(
        parse_framing_aside(bytes),
        Ok(want.clone()),
        "{what}: full buffer"
    );
}

/// `parse`, with the record count set to 1: the tests that re-frame a hello
/// compare everything else.
fn parse_framing_aside(bytes: &[u8]) -> Result<ClientHello, Error> {
    parse(bytes).map(|hello| ClientHello {
        records: 1,
        ..hello
    })
}

/// Re-frame a single-record hello into records split at the given offsets
/// of the handshake payload (strictly increasing, inside the payload).
fn reframe(hello: &[u8], splits: &[usize]) -> Vec<u8> {
    let payload_len = usize::from(u16::from_be_bytes([hello[3], hello[4]]));
    assert_eq!(
        hello.len(),
        5 + payload_len,
        "reframe takes exactly one record"
    );
    let payload = &hello[5..];
    let mut out = Vec::new();
    let mut start = 0;
    for &end in splits.iter().chain([payload.len()].iter()) {
        let chunk = &payload[start..end];
        assert!(
            !chunk.is_empty(),
            "split points must be strictly increasing"
        );
        out.extend_from_slice(&[0x16, hello[1], hello[2]]);
        out.extend_from_slice(&u16::try_from(chunk.len()).unwrap().to_be_bytes());
        out.extend_from_slice(chunk);
        start = end;
    }
    out
}

/// Offset of `needle` in the handshake payload of a single-record hello.
fn payload_offset(hello: &[u8], needle: &[u8]) -> usize {
    hello
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap()
        - 5
}

// Built hellos ---------------------------------------------------------------

fn u16_prefixed(bytes: &[u8]) -> Vec<u8> {
    [
        &u16::try_from(bytes.len()).unwrap().to_be_bytes()[..],
        bytes,
    ]
    .concat()
}

fn sni_ext(name: &[u8]) -> Vec<u8> {
    u16_prefixed(&[&[0u8][..], &u16_prefixed(name)].concat())
}

fn alpn_ext(names: &[&[u8]]) -> Vec<u8> {
    let list: Vec<u8> = names
        .iter()
        .flat_map(|n| [&[u8::try_from(n.len()).unwrap()][..], n].concat())
        .collect();
    u16_prefixed(&list)
}

fn versions_ext(versions: &[u16]) -> Vec<u8> {
    let list: Vec<u8> = versions.iter().flat_map(|v| v.to_be_bytes()).collect();
    [&[u8::try_from(list.len()).unwrap()][..], &list].concat()
}

/// A ClientHello body (legacy_version 0x0303, TLS_AES_128_GCM_SHA256, null
/// compression) with these extensions, or with no extensions block at all.
fn body(extensions: Option<&[(u16, Vec<u8>)]>) -> Vec<u8> {
    body_with_ciphers(&[0x1301], extensions)
}

fn body_with_ciphers(ciphers: &[u16], extensions: Option<&[(u16, Vec<u8>)]>) -> Vec<u8> {
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[0x5a; 32]); // random
    body.push(0); // session_id
    let ciphers: Vec<u8> = ciphers.iter().flat_map(|c| c.to_be_bytes()).collect();
    body.extend_from_slice(&u16_prefixed(&ciphers)); // cipher_suites
    body.extend_from_slice(&[0x01, 0x00]); // compression_methods
    if let Some(extensions) = extensions {
        let block: Vec<u8> = extensions
            .iter()
            .flat_map(|(kind, data)| [&kind.to_be_bytes()[..], &u16_prefixed(data)].concat())
            .collect();
        body.extend_from_slice(&u16_prefixed(&block));
    }
    body
}

/// One TLS 1.0 record carrying one handshake message of type 1.
fn record(body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).unwrap().to_be_bytes();
    let message = [&[1, len[1], len[2], len[3]][..], body].concat();
    [&[0x16, 0x03, 0x01][..], &u16_prefixed(&message)].concat()
}

fn hello_with(extensions: &[(u16, Vec<u8>)]) -> Vec<u8> {
    record(&body(Some(extensions)))
}

fn invalid(bytes: &[u8]) -> Invalid {
    match parse(bytes) {
        Err(Error::Invalid(reason)) => reason,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

// Fixtures -------------------------------------------------------------------

#[test]
fn every_fixture_parses_to_its_expected_hello() {
    for (name, bytes) in FIXTURES {
        assert_eq!(parse(bytes), Ok(expected(name)), "{name}");
        assert_eq!(expected(name).len, bytes.len(), "{name}");
    }
}

#[test]
fn fixtures_report_their_offered_version() {
    let names: Vec<(&str, &str)> = FIXTURES
        .iter()
        .map(|(name, bytes)| (*name, parse(bytes).unwrap().offered_version_name()))
        .collect();
    assert_eq!(
        names,
        [
            ("openssl-tls10.bin", "TLSv1.0"),
            ("openssl-tls11.bin", "TLSv1.1"),
            ("openssl-tls12.bin", "TLSv1.2"),
            ("openssl-tls13.bin", "TLSv1.3"),
            ("openssl-nosni.bin", "TLSv1.3"),
            ("curl.bin", "TLSv1.3"),
            ("python.bin", "TLSv1.3"),
            ("rustls.bin", "TLSv1.3"),
            ("chromium.bin", "TLSv1.3"),
            ("sslv2-compat.bin", "TLSv1.0"),
        ]
    );
}

#[test]
fn every_strict_prefix_of_every_fixture_is_incomplete() {
    for (name, bytes) in FIXTURES {
        check_all_prefixes(bytes, &expected(name), name);
    }
}

#[test]
fn trailing_bytes_after_the_hello_are_ignored() {
    let mut bytes = CURL.to_vec();
    bytes.extend_from_slice(&[0x14, 0x03, 0x03, 0x00, 0x01, 0x01]); // a CCS record
    assert_eq!(parse(&bytes), Ok(expected("curl.bin")));
}

// Re-framed and split hellos ---------------------------------------------------

#[test]
fn single_record_hellos_are_borrowed_and_split_ones_joined() {
    for (name, bytes) in FIXTURES
        .iter()
        .filter(|(name, _)| *name != "sslv2-compat.bin")
    {
        let framed = reassemble(bytes).unwrap();
        assert!(matches!(framed.message, Cow::Borrowed(_)), "{name}");
        assert_eq!(framed.len, bytes.len(), "{name}");
    }
    let split = reframe(CURL, &[2, 300]);
    let framed = reassemble(&split).unwrap();
    assert!(matches!(&framed.message, Cow::Owned(joined) if joined[..] == CURL[5..]));
    assert_eq!((framed.len, framed.record_version), (split.len(), 0x0301));
}

#[test]
fn handshake_bytes_after_the_hello_in_its_last_record_are_ignored() {
    // Append a 4-byte handshake message to the record that ends the hello.
    let mut one_record = OPENSSL_TLS13.to_vec();
    one_record.extend_from_slice(&[0x0f, 0x00, 0x00, 0x00]);
    one_record[3..5].copy_from_slice(&(261u16 + 4).to_be_bytes());
    let want = ClientHello {
        len: 270,
        ..expected("openssl-tls13.bin")
    };
    check_all_prefixes(&one_record, &want, "single record with a trailing message");

    let two_records = reframe(&one_record, &[100]);
    let want = ClientHello {
        len: 275,
        ..expected("openssl-tls13.bin")
    };
    check_all_prefixes(&two_records, &want, "split hello with a trailing message");
}

#[test]
fn two_records_split_inside_the_handshake_header() {
    for split in 1..4 {
        let bytes = reframe(OPENSSL_TLS13, &[split]);
        let want = ClientHello {
            len: OPENSSL_TLS13.len() + 5,
            ..expected("openssl-tls13.bin")
        };
        check_all_prefixes(&bytes, &want, &format!("split at {split}"));
    }
}

#[test]
fn two_records_split_in_the_middle_of_the_server_name() {
    let mid_name = payload_offset(CURL, SNI.as_bytes()) + SNI.len() / 2;
    let bytes = reframe(CURL, &[mid_name]);
    let want = ClientHello {
        len: CURL.len() + 5,
        ..expected("curl.bin")
    };
    check_all_prefixes(&bytes, &want, "curl split in the SNI");
}

#[test]
fn three_records_split_in_the_header_and_the_server_name() {
    let mid_name = payload_offset(CURL, SNI.as_bytes()) + 3;
    let bytes = reframe(CURL, &[2, mid_name]);
    assert_eq!(
        bytes[3..5],
        [0, 2],
        "first record carries only 2 handshake bytes"
    );
    let want = ClientHello {
        len: CURL.len() + 10,
        ..expected("curl.bin")
    };
    check_all_prefixes(&bytes, &want, "curl in 3 records");

    let bytes = reframe(RUSTLS, &[1, payload_offset(RUSTLS, SNI.as_bytes()) + 7]);
    let want = ClientHello {
        len: RUSTLS.len() + 10,
        ..expected("rustls.bin")
    };
    check_all_prefixes(&bytes, &want, "rustls in 3 records");
}

#[test]
fn one_byte_records_parse_the_same() {
    let splits: Vec<usize> = (1..OPENSSL_TLS12.len() - 5).collect();
    let bytes = reframe(OPENSSL_TLS12, &splits);
    let want = ClientHello {
        len: bytes.len(),
        ..expected("openssl-tls12.bin")
    };
    assert_eq!(parse_framing_aside(&bytes), Ok(want));
    assert_eq!(parse(&bytes).map(|h| h.records), Ok(splits.len() + 1));
}

#[test]
fn every_two_record_split_parses_the_same() {
    for (name, bytes) in [
        ("curl.bin", CURL),
        ("openssl-tls13.bin", OPENSSL_TLS13),
        ("rustls.bin", RUSTLS),
    ] {
        let want = ClientHello {
            len: bytes.len() + 5,
            ..expected(name)
        };
        for split in 1..bytes.len() - 5 {
            let reframed = reframe(bytes, &[split]);
            assert_eq!(
                parse_framing_aside(&reframed),
                Ok(want.clone()),
                "{name} split at {split}"
            );
        }
    }
}

#[test]
fn split_hello_keeps_the_first_record_version() {
    let mut bytes = reframe(OPENSSL_TLS13, &[100]);
    bytes[105 + 2] = 0x03; // second record says 3.3
    assert_eq!(parse(&bytes).unwrap().record_version, 0x0301);
}

#[test]
fn another_record_type_before_the_hello_is_complete_is_not_handshake() {
    let mut bytes = reframe(OPENSSL_TLS13, &[100]);
    assert_eq!(
        parse(&bytes[..105]),
        Err(Error::Incomplete {
            needed: 105 + 5 + 161
        })
    );
    bytes[105] = 0x17;
    assert_eq!(invalid(&bytes[..106]), Invalid::NotHandshake);
    bytes[105] = 0x14;
    assert_eq!(invalid(&bytes), Invalid::NotHandshake);
}

#[test]
fn empty_record_in_the_middle_is_invalid() {
    let mut bytes = reframe(OPENSSL_TLS13, &[100]);
    bytes.splice(105..105, [0x16, 0x03, 0x01, 0x00, 0x00]);
    assert_eq!(invalid(&bytes), Invalid::EmptyRecord);
}

// SSLv2-compatible hellos --------------------------------------------------------

#[test]
fn sslv2_compat_parses_with_no_server_name() {
    let hello = parse(SSLV2_COMPAT).unwrap();
    assert!(hello.sslv2);
    assert_eq!(hello.server_name, None);
    assert_eq!(hello.alpn, Vec::<String>::new());
    assert_eq!(
        (hello.record_version, hello.legacy_version),
        (0x0002, 0x0301)
    );
    assert_eq!(sniff(SSLV2_COMPAT), Sniff::Sslv2);
}

#[test]
fn sslv2_refusals_name_the_reason() {
    let mut pure_v2 = SSLV2_COMPAT.to_vec();
    pure_v2[3..5].copy_from_slice(&[0x00, 0x02]);
    assert_eq!(invalid(&pure_v2[..4]), Invalid::Sslv2WithoutTls);
    let mut server_hello = SSLV2_COMPAT.to_vec();
    server_hello[2] = 4;
    assert_eq!(invalid(&server_hello[..3]), Invalid::NotClientHello);
    let mut odd_specs = SSLV2_COMPAT.to_vec();
    odd_specs[6] = 11;
    assert_eq!(invalid(&odd_specs), Invalid::BadLength("cipher_specs"));
    let mut long_challenge = SSLV2_COMPAT.to_vec();
    long_challenge[10] = 17; // challenge runs past the message
    assert_eq!(invalid(&long_challenge), Invalid::Truncated("challenge"));
}

// Refusals -------------------------------------------------------------------------

/// Deterministic pseudo-random bytes (xorshift32).
fn garbage(len: usize, mut seed: u32) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed.to_be_bytes()[0]
        })
        .collect()
}

#[test]
fn non_hellos_are_refused_with_their_reason() {
    let random = garbage(300, 1);
    assert_eq!(random[0] & 0x80, 0, "seed 1 starts without the high bit");
    let mut server_hello = OPENSSL_TLS13.to_vec();
    server_hello[5] = 2;
    let mut oversize = OPENSSL_TLS13.to_vec();
    oversize[3..5].copy_from_slice(&[0xff, 0xff]);
    let mut empty = OPENSSL_TLS13.to_vec();
    empty[3..5].copy_from_slice(&[0x00, 0x00]);
    let mut ssl2_version = OPENSSL_TLS13.to_vec();
    ssl2_version[1] = 2;
    let app_data = [&[0x17, 0x03, 0x03, 0x00, 0x28][..], &[0xab; 40]].concat();
    let cases: [(&str, &[u8], Invalid, Sniff); 9] = [
        ("garbage", &random, Invalid::NotHandshake, Sniff::NotTls),
        (
            "high-bit garbage",
            &[0x81, 0x02, 0x03, 0x04],
            Invalid::NotClientHello,
            Sniff::NotTls,
        ),
        (
            "http",
            b"GET / HTTP/1.1\r\nHost: gw.example.com\r\n\r\n",
            Invalid::NotHandshake,
            Sniff::PlaintextHttp,
        ),
        (
            "ssh",
            b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n",
            Invalid::NotHandshake,
            Sniff::NotTls,
        ),
        (
            "application data",
            &app_data,
            Invalid::NotHandshake,
            Sniff::NotTls,
        ),
        (
            "server hello",
            &server_hello,
            Invalid::NotClientHello,
            Sniff::Tls,
        ),
        (
            "record length 0xffff",
            &oversize,
            Invalid::RecordTooLarge,
            Sniff::Tls,
        ),
        ("record length 0", &empty, Invalid::EmptyRecord, Sniff::Tls),
        (
            "record version 2.1",
            &ssl2_version,
            Invalid::BadRecordVersion,
            Sniff::NotTls,
        ),
    ];
    for (what, bytes, reason, sniffed) in cases {
        assert_eq!(invalid(bytes), reason, "{what}");
        assert_eq!(sniff(bytes), sniffed, "{what}");
    }
}

#[test]
fn refusals_are_decided_as_early_as_the_bytes_allow() {
    assert_eq!(invalid(b"G"), Invalid::NotHandshake);
    assert_eq!(invalid(b"S"), Invalid::NotHandshake);
    assert_eq!(invalid(&[0x17]), Invalid::NotHandshake);
    assert_eq!(invalid(&[0x16, 0x02]), Invalid::BadRecordVersion);
    assert_eq!(
        invalid(&[0x16, 0x03, 0x01, 0xff, 0xff]),
        Invalid::RecordTooLarge
    );
    assert_eq!(
        invalid(&[0x16, 0x03, 0x01, 0x01, 0x00, 0x02]),
        Invalid::NotClientHello
    );
    assert_eq!(invalid(&[0xff, 0xff]), Invalid::RecordTooLarge);
    assert_eq!(invalid(&[0x81, 0x02, 0x03]), Invalid::NotClientHello);
    for prefix_len in 1..=5 {
        assert!(matches!(
            parse(&OPENSSL_TLS13[..prefix_len]),
            Err(Error::Incomplete { .. })
        ));
    }
}

#[test]
fn a_claimed_one_mib_hello_asks_for_at_least_one_mib() {
    const MIB: usize = 1 << 20;
    let mut bytes = OPENSSL_TLS13.to_vec();
    bytes[6..9].copy_from_slice(&[0x10, 0x00, 0x00]); // handshake length 1 MiB
    for prefix_len in 9..=bytes.len() {
        match parse(&bytes[..prefix_len]) {
            Err(Error::Incomplete { needed }) => {
                assert!(needed >= MIB, "prefix {prefix_len}: {needed}")
            }
            other => panic!("prefix {prefix_len}: {other:?}"),
        }
    }
    // A whole first record plus the start of the next.
    bytes.extend_from_slice(&[0x16, 0x03, 0x01, 0x40, 0x00, 0x00]);
    assert!(matches!(parse(&bytes), Err(Error::Incomplete { needed }) if needed >= MIB + 4 + 10));
}

#[test]
fn body_fields_that_overrun_name_the_field() {
    let mut short = body(None);
    short.truncate(20);
    assert_eq!(invalid(&record(&short)), Invalid::Truncated("random"));
    let mut cipher_suites = body(None);
    cipher_suites[35..37].copy_from_slice(&[0x01, 0x00]);
    assert_eq!(
        invalid(&record(&cipher_suites)),
        Invalid::Truncated("cipher_suites")
    );
    let mut odd = body(None);
    odd[36] = 3;
    assert_eq!(invalid(&record(&odd)), Invalid::BadLength("cipher_suites"));
    let mut session_id = body(None);
    session_id[34] = 33;
    assert_eq!(
        invalid(&record(&session_id)),
        Invalid::BadLength("session_id")
    );
    let mut no_compression = body(None);
    no_compression[39] = 0;
    assert_eq!(
        invalid(&record(&no_compression)),
        Invalid::BadLength("compression_methods")
    );
    let mut extensions = body(Some(&[(0x1234, vec![1, 2, 3])]));
    extensions[42] += 1;
    assert_eq!(
        invalid(&record(&extensions)),
        Invalid::Truncated("extensions")
    );
    let mut trailing = body(Some(&[]));
    trailing.push(0);
    assert_eq!(
        invalid(&record(&trailing)),
        Invalid::TrailingBytes("extensions")
    );
}

#[test]
fn hello_without_extensions_block_parses() {
    let hello = parse(&record(&body(None))).unwrap();
    assert_eq!(
        (&hello.server_name, &hello.alpn, hello.legacy_version),
        (&None, &vec![], 0x0303)
    );
    assert_eq!(hello.offered_version_name(), "TLSv1.2");
}

// Extensions ------------------------------------------------------------------------

#[test]
fn server_name_is_kept_exactly_as_sent() {
    for name in [
        "GW.Example.COM.",
        "gw.example.com.",
        "192.0.2.10",
        "under_score.example",
    ] {
        let hello = parse(&hello_with(&[(0, sni_ext(name.as_bytes()))])).unwrap();
        assert_eq!(hello.server_name.as_deref(), Some(name));
    }
    let hello = parse(&hello_with(&[(0, sni_ext(b"caf\xe9.example"))])).unwrap();
    assert_eq!(hello.server_name.as_deref(), Some("caf\u{fffd}.example"));
}

#[test]
fn first_host_name_wins_and_other_name_types_are_skipped() {
    let list = [
        &[7u8][..],
        &u16_prefixed(b"other"),
        &[0],
        &u16_prefixed(b"a.example"),
        &[0],
        &u16_prefixed(b"b.example"),
    ]
    .concat();
    let hello = parse(&hello_with(&[(0, u16_prefixed(&list))])).unwrap();
    assert_eq!(hello.server_name.as_deref(), Some("a.example"));
}

#[test]
fn malformed_extensions_are_bad_extension() {
    let cases: [(u16, Vec<u8>, Invalid); 7] = [
        (0, vec![], Invalid::BadExtension("server_name")),
        (
            0,
            vec![0x00, 0x05, 0x00, 0x00, 0x09, b'a', b'b'],
            Invalid::BadExtension("server_name"),
        ),
        (
            0,
            [sni_ext(b"a.example"), vec![0]].concat(),
            Invalid::BadExtension("server_name"),
        ),
        (
            16,
            vec![0x00, 0x03, 0x05, b'h', b'2'],
            Invalid::BadExtension("alpn"),
        ),
        (16, alpn_ext(&[b"h2", b""]), Invalid::BadExtension("alpn")),
        (
            43,
            vec![0x03, 0x03, 0x04, 0x03],
            Invalid::BadExtension("supported_versions"),
        ),
        (
            43,
            vec![0x04, 0x03, 0x04],
            Invalid::BadExtension("supported_versions"),
        ),
    ];
    for (kind, data, reason) in cases {
        assert_eq!(
            invalid(&hello_with(&[(kind, data.clone())])),
            reason,
            "{kind} {data:?}"
        );
    }
}

#[test]
fn alpn_versions_and_ech_are_read_and_grease_is_skipped() {
    let hello = parse(&hello_with(&[
        (0x0a0a, vec![]),
        (0, sni_ext(b"outer.example")),
        (16, alpn_ext(&[b"h2", b"http/1.1", b"\xff"])),
        (43, versions_ext(&[0x7a7a, 0x0304, 0x0303, 0xfafa])),
        (0xfe0d, vec![0x00, 0x00, 0x01, 0x00, 0x01, 0x2a]),
        (0xdada, vec![0]),
    ]))
    .unwrap();
    assert_eq!(hello.server_name.as_deref(), Some("outer.example"));
    assert_eq!(hello.alpn, ["h2", "http/1.1", "\u{fffd}"]);
    assert_eq!(hello.supported_versions, [0x0304, 0x0303]);
    assert!(hello.ech);
    assert_eq!(
        (hello.offered_version(), hello.offered_version_name()),
        (0x0304, "TLSv1.3")
    );
}

#[test]
fn unknown_version_names_are_unknown() {
    let hello = parse(&hello_with(&[(43, versions_ext(&[0x7f1c]))])).unwrap();
    assert_eq!(hello.offered_version_name(), "unknown");
}

#[test]
fn duplicate_extensions_are_invalid() {
    let sni = sni_ext(b"gw.example.com");
    assert_eq!(
        invalid(&hello_with(&[(0, sni.clone()), (0, sni)])),
        Invalid::DuplicateExtension(0)
    );
    assert_eq!(
        invalid(&hello_with(&[
            (0xfe0d, vec![]),
            (16, alpn_ext(&[b"h2"])),
            (0xfe0d, vec![])
        ])),
        Invalid::DuplicateExtension(0xfe0d)
    );
    // More unknown types than the short list holds: the bitmap takes over.
    let mut many: Vec<(u16, Vec<u8>)> = (0..40).map(|i| (0x1000 + i * 7, vec![])).collect();
    assert!(parse(&hello_with(&many)).is_ok());
    many.push((0x1000 + 3 * 7, vec![]));
    assert_eq!(
        invalid(&hello_with(&many)),
        Invalid::DuplicateExtension(0x1015)
    );
    many.pop();
    many.push((0x1000 + 39 * 7, vec![]));
    assert_eq!(
        invalid(&hello_with(&many)),
        Invalid::DuplicateExtension(0x1111)
    );
}

#[test]
fn errors_display_lower_case_without_trailing_period() {
    let messages = [
        Error::Incomplete { needed: 517 }.to_string(),
        Error::Invalid(Invalid::Truncated("cipher_suites")).to_string(),
        Invalid::DuplicateExtension(0).to_string(),
        Invalid::RecordTooLarge.to_string(),
    ];
    assert_eq!(
        messages,
        [
            "incomplete client hello: need at least 517 bytes",
            "invalid client hello: cipher_suites runs past its container",
            "duplicate extension 0x0000",
            "record length exceeds 18432 bytes",
        ]
    );
}

// JA4 --------------------------------------------------------------------------

/// The fingerprint of every fixture. The same values come from an independent
/// implementation (see testdata/README.md).
#[test]
fn ja4_of_every_fixture() {
    let got: Vec<(&str, Option<String>)> = FIXTURES
        .iter()
        .map(|(name, bytes)| (*name, ja4(bytes)))
        .collect();
    let want = [
        ("openssl-tls10.bin", "t10d0907h2_c491f621fb4c_195413a0cc0f"),
        ("openssl-tls11.bin", "t11d0907h2_c491f621fb4c_195413a0cc0f"),
        ("openssl-tls12.bin", "t12d2808h2_d943125447b4_e7e480e5a997"),
        ("openssl-tls13.bin", "t13d0411h2_16476d049b0b_78f1d400d464"),
        ("openssl-nosni.bin", "t13i310900_e8f1e7e78f70_1f22a2ca17c4"),
        ("curl.bin", "t13d3112h2_e8f1e7e78f70_b26ce05bbdd6"),
        ("python.bin", "t13d1812h2_85036bcba153_d41ae481755e"),
        ("rustls.bin", "t13d1011h2_61a7ad8aa9b6_3fcd1a44f3e3"),
        ("chromium.bin", "t13d1517h2_8daaf6152771_cb7bf5808d99"),
    ];
    for (name, ja4) in want {
        assert!(
            got.contains(&(name, Some(ja4.to_string()))),
            "{name}: {got:?}"
        );
    }
    assert!(got.contains(&("sslv2-compat.bin", None)));
}

#[test]
fn ja4_is_the_same_however_the_hello_is_framed() {
    let want = ja4(CHROMIUM);
    for split in [1, 4, 5, 100, 1000, 1900] {
        assert_eq!(ja4(&reframe(CHROMIUM, &[split])), want, "split at {split}");
    }
    assert_eq!(ja4(&CHROMIUM[..CHROMIUM.len() - 1]), None);
}

/// The example of FoxIO's JA4 technical details: a Chrome hello with 15
/// ciphers and 16 extensions, GREASE in ciphers, extensions and versions.
#[test]
fn ja4_matches_the_published_chrome_example() {
    let ciphers = [
        0x0a0a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013,
        0xc014, 0x009c, 0x009d, 0x002f, 0x0035,
    ];
    let sigalgs: Vec<u8> = [
        0x0403u16, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
    ]
    .iter()
    .flat_map(|a| a.to_be_bytes())
    .collect();
    let mut extensions = vec![(0x1a1a, Vec::new())];
    for kind in [
        0x001b, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002d, 0x000d, 0x0005, 0x0023, 0x0012,
        0x002b, 0xff01, 0x000b, 0x000a, 0x0015,
    ] {
        let data = match kind {
            0x0000 => sni_ext(b"example.com"),
            0x0010 => alpn_ext(&[b"h2", b"http/1.1"]),
            0x000d => u16_prefixed(&sigalgs),
            0x002b => versions_ext(&[0x2a2a, 0x0304, 0x0303]),
            _ => Vec::new(),
        };
        extensions.push((kind, data));
    }
    let hello = record(&body_with_ciphers(&ciphers, Some(&extensions)));
    assert_eq!(
        ja4(&hello).as_deref(),
        Some("t13d1516h2_8daaf6152771_e5627efa2ab1")
    );
}

/// The published raw (`ja4_r`) form of a later Chrome hello (ECH and the
/// new ALPS code point), hashed as JA4_b and JA4_c.
#[test]
fn ja4_hashes_the_published_raw_lists() {
    let truncated = |lists: &[&[u16]]| {
        let mut hash = sha2::Sha256::default();
        for (i, list) in lists.iter().enumerate() {
            if i > 0 {
                sha2::Digest::update(&mut hash, b"_");
            }
            ja4::hash_codes(&mut hash, list.iter().copied());
        }
        let mut out = String::new();
        ja4::push_truncated(&mut out, hash, true);
        out
    };
    let ciphers = [
        0x002f, 0x0035, 0x009c, 0x009d, 0x1301, 0x1302, 0x1303, 0xc013, 0xc014, 0xc02b, 0xc02c,
        0xc02f, 0xc030, 0xcca8, 0xcca9,
    ];
    let extensions = [
        0x0005, 0x000a, 0x000b, 0x000d, 0x0012, 0x0017, 0x001b, 0x0023, 0x002b, 0x002d, 0x0033,
        0x44cd, 0xfe0d, 0xff01,
    ];
    let sigalgs = [
        0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
    ];
    assert_eq!(truncated(&[&ciphers]), "8daaf6152771");
    assert_eq!(truncated(&[&extensions, &sigalgs]), "d8a2da3f94cd");
}

#[test]
fn ja4_first_part_rules() {
    let bare = |extensions: &[(u16, Vec<u8>)]| ja4(&hello_with(extensions)).unwrap();
    // No SNI, no ALPN, TLS 1.2 from legacy_version; no signature algorithms:
    // the extension hash has no trailing underscore part.
    let plain = bare(&[]);
    assert!(plain.starts_with("t12i"), "{plain}");
    assert!(plain.ends_with("_000000000000"), "{plain}");
    // ALPN: first and last character; one character twice; hex when an end
    // is not a letter or digit.
    assert_eq!(&bare(&[(16, alpn_ext(&[b"http/1.1"]))])[8..10], "h1");
    assert_eq!(&bare(&[(16, alpn_ext(&[b"h"]))])[8..10], "hh");
    assert_eq!(&bare(&[(16, alpn_ext(&[b"\xab\xcd"]))])[8..10], "ad");
    assert_eq!(&bare(&[(16, alpn_ext(&[b"h2", b"x"]))])[8..10], "h2");
    // Version from supported_versions, GREASE skipped.
    let tls13 = bare(&[(43, versions_ext(&[0xfafa, 0x0304, 0x0303]))]);
    assert!(tls13.starts_with("t13i"), "{tls13}");
    // Counts: GREASE extensions are not counted; SNI and ALPN are.
    let counted = bare(&[
        (0x0a0a, Vec::new()),
        (0, sni_ext(b"a.example")),
        (16, alpn_ext(&[b"h2"])),
    ]);
    assert!(counted.starts_with("t12d"), "{counted}");
    assert_eq!(&counted[6..8], "02");
    // SNI and ALPN are counted but not hashed: with nothing else the hash is zeros.
    assert!(counted.ends_with("_000000000000"), "{counted}");
}

#[test]
fn ja4_of_a_hostile_hello_is_bounded() {
    // Thousands of ciphers: the list spills from the stack, the answer is the same shape.
    let ciphers: Vec<u16> = (0..7000).collect();
    let hello = record(&body_with_ciphers(&ciphers, Some(&[])));
    let print = ja4(&hello).unwrap();
    assert_eq!(print.len(), 36);
    assert_eq!(&print[..6], "t12i99");
}

// Groups -----------------------------------------------------------------------

#[test]
fn key_shares_and_groups_are_named_grease_skipped() {
    let chromium = parse(CHROMIUM).unwrap();
    assert_eq!(chromium.key_shares.to_string(), "x25519mlkem768,x25519");
    let supported: Vec<&str> = chromium.supported_groups.iter().map(Group::name).collect();
    assert_eq!(
        supported,
        ["secp256r1", "secp384r1", "x25519", "x25519mlkem768"]
    );
    assert!(chromium.supported_groups.contains(Group(0x11ec)));
    assert!(!chromium.supported_groups.contains(Group(0x0019)));
    assert!(chromium.key_shares.iter().any(Group::post_quantum));
    assert_eq!(Group(0x1234).name(), "other");
    let named = [
        (0x0017, "secp256r1"),
        (0x0018, "secp384r1"),
        (0x0019, "secp521r1"),
        (0x001d, "x25519"),
        (0x001e, "x448"),
        (0x0100, "ffdhe2048"),
        (0x0104, "ffdhe8192"),
        (0x0201, "mlkem768"),
        (0x11eb, "secp256r1mlkem768"),
        (0x11ec, "x25519mlkem768"),
        (0x11ed, "secp384r1mlkem1024"),
        (0x6399, "x25519kyber768draft00"),
        (0x0016, "other"),
        (0x001f, "other"),
        (0x0105, "other"),
        (0x11ee, "other"),
    ];
    for (code, name) in named {
        assert_eq!(Group(code).name(), name, "{code:#06x}");
    }
    let set: GroupSet = [0x0a0a, 0x001d, 0x9999, 0x001d].into_iter().collect();
    assert_eq!(set.iter().map(Group::name).collect::<Vec<_>>(), ["x25519"]);
    assert_eq!(set.other, 1);
    let share = |group: u16| [&group.to_be_bytes()[..], &u16_prefixed(&[1, 2, 3])].concat();
    let shares = u16_prefixed(&[share(0x3a3a), share(0x0017), share(0x9999)].concat());
    let hello = parse(&hello_with(&[(51, shares)])).unwrap();
    assert_eq!(hello.key_shares.to_string(), "secp256r1,other");
    let many: Vec<u8> = (0x17..0x1d).flat_map(share).collect();
    let hello = parse(&hello_with(&[(51, u16_prefixed(&many))])).unwrap();
    assert_eq!(hello.key_shares.iter().count(), Groups::CAPACITY);
    assert_eq!(usize::from(hello.key_shares.more), 6 - Groups::CAPACITY);
    let truncated = u16_prefixed(&[0, 0x17, 0, 5, 1]);
    assert_eq!(
        invalid(&hello_with(&[(51, truncated)])),
        Invalid::BadExtension("key_share")
    );
}

// Hostile names and lists --------------------------------------------------------

#[test]
fn empty_long_or_nul_server_names_are_malformed() {
    let long = vec![b'a'; MAX_HOST_NAME + 1];
    for name in [&b""[..], &long, b"gw\0.lab.test"] {
        assert_eq!(
            invalid(&hello_with(&[(0, sni_ext(name))])),
            Invalid::BadExtension("server_name"),
            "{name:?}"
        );
    }
    let longest = vec![b'a'; MAX_HOST_NAME];
    let hello = parse(&hello_with(&[(0, sni_ext(&longest))])).unwrap();
    assert_eq!(hello.server_name.map(|n| n.len()), Some(MAX_HOST_NAME));
}

#[test]
fn alpn_keeps_the_first_names_and_counts_the_rest() {
    let names: Vec<Vec<u8>> = (0..6000)
        .map(|i| format!("{}", i % 10).into_bytes())
        .collect();
    let names: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
    let bytes = hello_with(&[(16, alpn_ext(&names))]);
    let hello = parse(&bytes).unwrap();
    assert_eq!(hello.alpn.len(), MAX_ALPN_KEPT);
    assert_eq!(hello.alpn_more, 6000 - MAX_ALPN_KEPT);
    assert_eq!(hello.alpn[..3], ["0", "1", "2"]);
}
