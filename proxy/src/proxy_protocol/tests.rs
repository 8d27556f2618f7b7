//! Unit tests for the PROXY protocol parser and encoders: real HAProxy 2.6
//! captures, every strict prefix, encode → parse round trips, and one
//! crafted input per refusal.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use super::*;

const HAPROXY_V1: &[u8] = include_bytes!("testdata/haproxy-v1.bin");
const HAPROXY_V2: &[u8] = include_bytes!("testdata/haproxy-v2.bin");
const HAPROXY_V2_CRC32C: &[u8] = include_bytes!("testdata/haproxy-v2-crc32c.bin");
const HAPROXY_V2_LOCAL: &[u8] = include_bytes!("testdata/haproxy-v2-local.bin");
/// The ClientHello the capture client sent after connecting.
const HELLO: &[u8] = include_bytes!("../clienthello/testdata/openssl-tls13.bin");

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn invalid(buf: &[u8]) -> Invalid {
    match parse(buf) {
        Err(Error::Invalid(reason)) => reason,
        other => panic!(
            "{:?}: expected Invalid, got {other:?}",
            String::from_utf8_lossy(buf)
        ),
    }
}

fn proxied(version: Version, source: &str, destination: &str, len: usize) -> ProxyHeader {
    ProxyHeader {
        version,
        proxied: true,
        source: Some(addr(source)),
        destination: Some(addr(destination)),
        authority: None,
        tls_terminated: false,
        len,
    }
}

fn not_proxied(version: Version, len: usize) -> ProxyHeader {
    ProxyHeader {
        version,
        proxied: false,
        source: None,
        destination: None,
        authority: None,
        tls_terminated: false,
        len,
    }
}

/// A v2 header: signature, `version_command`, `family`, length of `body`, `body`.
fn v2(version_command: u8, family: u8, body: &[u8]) -> Vec<u8> {
    let mut out = v2::SIGNATURE.to_vec();
    out.extend_from_slice(&[version_command, family]);
    out.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn tlv(kind: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(&u16::try_from(value.len()).unwrap().to_be_bytes());
    out.extend_from_slice(value);
    out
}

/// `header` with a CRC32C TLV appended and its length field updated, the
/// way HAProxy computes it (checksum over the header with the value zeroed).
fn with_crc32c(mut header: Vec<u8>) -> Vec<u8> {
    header.extend_from_slice(&tlv(0x03, &[0; 4]));
    let len = u16::try_from(header.len() - 16).unwrap();
    header[14..16].copy_from_slice(&len.to_be_bytes());
    let sum = v2::crc32c(&[&header]);
    let at = header.len() - 4;
    header[at..].copy_from_slice(&sum.to_be_bytes());
    header
}

/// 12 bytes of TCP4 addresses: 192.0.2.1:40000 → 198.51.100.2:443.
const TCP4_BLOCK: [u8; 12] = [192, 0, 2, 1, 198, 51, 100, 2, 0x9c, 0x40, 0x01, 0xbb];

fn tcp4_body(tlvs: &[u8]) -> Vec<u8> {
    [&TCP4_BLOCK[..], tlvs].concat()
}

/// Assert that every strict prefix of `header` is `Incomplete` with a lower
/// bound above the prefix and not above the whole header, and that the
/// whole header, alone or followed by a ClientHello, parses to `expected`.
fn assert_prefixes_incomplete(name: &str, header: &[u8], expected: &ProxyHeader) {
    assert_eq!(expected.len, header.len(), "{name}: expected len");
    for n in 0..header.len() {
        match parse(&header[..n]) {
            Err(Error::Incomplete { needed }) => assert!(
                needed > n && needed <= header.len(),
                "{name}: prefix of {n} bytes: needed {needed} outside ({n}, {}]",
                header.len()
            ),
            other => panic!("{name}: prefix of {n} bytes gave {other:?}"),
        }
    }
    assert_eq!(parse(header).as_ref(), Ok(expected), "{name}: whole");
    let followed = [header, HELLO].concat();
    assert_eq!(
        parse(&followed).as_ref(),
        Ok(expected),
        "{name}: with hello"
    );
}

// --- Real HAProxy 2.6.12 captures (see testdata/README.md) ---

#[test]
fn haproxy_send_proxy_v1_capture() {
    let header = parse(HAPROXY_V1).unwrap();
    assert_eq!(
        header,
        proxied(Version::V1, "127.0.0.23:44481", "127.0.0.1:51913", 45)
    );
    assert_eq!(&HAPROXY_V1[header.len..], HELLO);
    assert_prefixes_incomplete("haproxy-v1", &HAPROXY_V1[..header.len], &header);
}

#[test]
fn haproxy_send_proxy_v2_capture() {
    let header = parse(HAPROXY_V2).unwrap();
    assert_eq!(
        header,
        proxied(Version::V2, "127.0.0.23:47831", "127.0.0.1:60453", 28)
    );
    assert_eq!(&HAPROXY_V2[header.len..], HELLO);
    assert_prefixes_incomplete("haproxy-v2", &HAPROXY_V2[..header.len], &header);
}

#[test]
fn haproxy_v2_crc32c_authority_unique_id_capture() {
    let header = parse(HAPROXY_V2_CRC32C).unwrap();
    let expected = ProxyHeader {
        authority: Some("gw.example.com".to_owned()),
        tls_terminated: false,
        ..proxied(
            Version::V2,
            "[2001:db8::7]:51234",
            "[2001:db8::443]:443",
            173,
        )
    };
    assert_eq!(header, expected);
    assert_eq!(&HAPROXY_V2_CRC32C[header.len..], HELLO);
    assert_prefixes_incomplete("haproxy-v2-crc32c", &HAPROXY_V2_CRC32C[..173], &expected);
}

#[test]
fn haproxy_v2_crc32c_capture_corrupted_is_refused() {
    // The CRC32C TLV starts at 52 (value at 55..59); byte 100 is inside the
    // unique ID, byte 20 inside the source address.
    for at in [56, 100, 20] {
        let mut corrupted = HAPROXY_V2_CRC32C.to_vec();
        corrupted[at] ^= 0x01;
        assert_eq!(invalid(&corrupted), Invalid::Crc32cMismatch, "byte {at}");
    }
}

#[test]
fn haproxy_v2_local_health_check_capture() {
    // HAProxy's `check-send-proxy` health check: LOCAL, AF_UNSPEC, a CRC32C TLV.
    let header = parse(HAPROXY_V2_LOCAL).unwrap();
    assert_eq!(header, not_proxied(Version::V2, 23));
    assert_prefixes_incomplete("haproxy-v2-local", HAPROXY_V2_LOCAL, &header);
    let mut corrupted = HAPROXY_V2_LOCAL.to_vec();
    corrupted[22] ^= 0x80;
    assert_eq!(invalid(&corrupted), Invalid::Crc32cMismatch);
}

// --- Every strict prefix ---

#[test]
fn v1_every_strict_prefix_is_incomplete() {
    let cases: [(&str, &[u8], ProxyHeader); 5] = [
        (
            "tcp4",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 40000 443\r\n",
            proxied(Version::V1, "192.0.2.1:40000", "198.51.100.2:443", 45),
        ),
        (
            "tcp6",
            b"PROXY TCP6 2001:db8::1 2001:db8::2 40000 443\r\n",
            proxied(Version::V1, "[2001:db8::1]:40000", "[2001:db8::2]:443", 46),
        ),
        (
            "tcp6 longest",
            b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
            proxied(
                Version::V1,
                "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
                "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
                104,
            ),
        ),
        ("unknown", b"PROXY UNKNOWN\r\n", not_proxied(Version::V1, 15)),
        (
            "unknown with addresses",
            b"PROXY UNKNOWN ffff:f::1 ffff:f::2 65535 65535\r\n",
            not_proxied(Version::V1, 47),
        ),
    ];
    for (name, header, expected) in cases {
        assert_prefixes_incomplete(name, header, &expected);
    }
}

#[test]
fn v1_prefix_ending_before_destination_port_is_incomplete() {
    // ppp 2.3.0 answers this prefix with a terminal InvalidDestinationPort.
    let prefix = b"PROXY TCP4 127.0.0.23 127.0.0.1 44481 ";
    assert_eq!(
        parse(prefix),
        Err(Error::Incomplete {
            needed: prefix.len() + 1
        })
    );
    assert_eq!(&HAPROXY_V1[..prefix.len()], prefix);
}

#[test]
fn v2_every_strict_prefix_is_incomplete() {
    let authority = tlv(0x02, b"gw.example.com");
    let custom = [
        tlv(0x05, b"unique-id"),
        tlv(0x20, &[0x01, 0, 0, 0, 0]),
        tlv(0xe0, b"x"),
    ]
    .concat();
    let mut v6_body = Vec::new();
    v6_body.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
    v6_body.extend_from_slice(&"2001:db8::443".parse::<Ipv6Addr>().unwrap().octets());
    v6_body.extend_from_slice(&[0x9c, 0x40, 0x01, 0xbb]);
    let tlv_header = with_crc32c(v2(0x21, 0x11, &tcp4_body(&[authority, custom].concat())));
    let cases = [
        (
            "ipv4",
            v2(0x21, 0x11, &TCP4_BLOCK),
            proxied(Version::V2, "192.0.2.1:40000", "198.51.100.2:443", 28),
        ),
        (
            "ipv6",
            v2(0x21, 0x21, &v6_body),
            proxied(Version::V2, "[::1]:40000", "[2001:db8::443]:443", 52),
        ),
        ("local", encode_v2_local(), not_proxied(Version::V2, 16)),
        (
            "ipv4 with tlvs and crc32c",
            tlv_header.clone(),
            ProxyHeader {
                authority: Some("gw.example.com".to_owned()),
                // The 0x20 TLV above has the PP2_CLIENT_SSL bit.
                tls_terminated: true,
                ..proxied(
                    Version::V2,
                    "192.0.2.1:40000",
                    "198.51.100.2:443",
                    tlv_header.len(),
                )
            },
        ),
    ];
    for (name, header, expected) in cases {
        assert_prefixes_incomplete(name, &header, &expected);
    }
}

// --- Encode → parse ---

#[test]
fn v1_round_trips() {
    let cases = [
        (
            "192.0.2.1:40000",
            "198.51.100.2:443",
            "192.0.2.1:40000",
            "198.51.100.2:443",
        ),
        (
            "[2001:db8::1]:1",
            "[2001:db8::2]:65535",
            "[2001:db8::1]:1",
            "[2001:db8::2]:65535",
        ),
        (
            "192.0.2.1:40000",
            "[2001:db8::2]:443",
            "[::ffff:192.0.2.1]:40000",
            "[2001:db8::2]:443",
        ),
        (
            "[2001:db8::1]:40000",
            "198.51.100.2:443",
            "[2001:db8::1]:40000",
            "[::ffff:198.51.100.2]:443",
        ),
    ];
    for (source, destination, want_source, want_destination) in cases {
        let bytes = encode_v1(addr(source), addr(destination));
        let header = parse(&bytes).unwrap();
        assert_eq!(
            header,
            proxied(Version::V1, want_source, want_destination, bytes.len()),
            "{source} → {destination}"
        );
        assert!(bytes.len() <= MAX_V1_LEN);
    }
    assert_eq!(
        encode_v1(addr("192.0.2.1:40000"), addr("198.51.100.2:443")),
        b"PROXY TCP4 192.0.2.1 198.51.100.2 40000 443\r\n"
    );
    assert_eq!(
        encode_v1(addr("192.0.2.1:40000"), addr("[2001:db8::2]:443")),
        b"PROXY TCP6 ::ffff:192.0.2.1 2001:db8::2 40000 443\r\n"
    );
}

#[test]
fn v2_round_trips_with_and_without_authority() {
    let cases = [
        (
            "192.0.2.1:40000",
            "198.51.100.2:443",
            "192.0.2.1:40000",
            "198.51.100.2:443",
            28,
        ),
        (
            "[2001:db8::1]:1",
            "[2001:db8::2]:65535",
            "[2001:db8::1]:1",
            "[2001:db8::2]:65535",
            52,
        ),
        (
            "192.0.2.1:40000",
            "[2001:db8::2]:443",
            "[::ffff:192.0.2.1]:40000",
            "[2001:db8::2]:443",
            52,
        ),
        (
            "[::1]:40000",
            "127.0.0.1:443",
            "[::1]:40000",
            "[::ffff:127.0.0.1]:443",
            52,
        ),
    ];
    for (source, destination, want_source, want_destination, len) in cases {
        let plain = encode_v2(addr(source), addr(destination), None);
        let expected = proxied(Version::V2, want_source, want_destination, len);
        assert_eq!(
            parse(&plain),
            Ok(expected.clone()),
            "{source} → {destination}"
        );

        let named = encode_v2(addr(source), addr(destination), Some("gw.example.com"));
        let expected = ProxyHeader {
            authority: Some("gw.example.com".to_owned()),
            tls_terminated: false,
            len: len + 3 + 14,
            ..expected
        };
        assert_eq!(
            parse(&named),
            Ok(expected),
            "{source} → {destination} with authority"
        );
    }
}

#[test]
fn v2_encoding_matches_haproxy_bytes() {
    let ours = encode_v2(addr("127.0.0.23:47831"), addr("127.0.0.1:60453"), None);
    assert_eq!(ours, &HAPROXY_V2[..28]);
}

#[test]
fn v2_authority_longer_than_255_bytes_is_left_out() {
    let longest = "a".repeat(MAX_AUTHORITY_LEN);
    let bytes = encode_v2(addr("192.0.2.1:1"), addr("192.0.2.2:2"), Some(&longest));
    assert_eq!(
        parse(&bytes).unwrap().authority.as_deref(),
        Some(longest.as_str())
    );

    let too_long = "a".repeat(MAX_AUTHORITY_LEN + 1);
    let bytes = encode_v2(addr("192.0.2.1:1"), addr("192.0.2.2:2"), Some(&too_long));
    assert_eq!(bytes.len(), 28);
    assert_eq!(parse(&bytes).unwrap().authority, None);
}

#[test]
fn v2_local_encoding() {
    assert_eq!(encode_v2_local(), b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00");
    assert_eq!(parse(&encode_v2_local()), Ok(not_proxied(Version::V2, 16)));
}

// --- Accepted edge cases ---

#[test]
fn v1_longest_line_is_accepted_and_one_more_byte_is_not() {
    let pad = "x".repeat(MAX_V1_LEN - "PROXY UNKNOWN \r\n".len());
    let longest = format!("PROXY UNKNOWN {pad}\r\n");
    assert_eq!(longest.len(), MAX_V1_LEN);
    assert_eq!(
        parse(longest.as_bytes()),
        Ok(not_proxied(Version::V1, MAX_V1_LEN))
    );
    let longer = format!("PROXY UNKNOWN {pad}x\r\n");
    assert_eq!(invalid(longer.as_bytes()), Invalid::V1TooLong);
}

#[test]
fn v2_unspec_with_proxy_command_is_not_proxied_but_keeps_tlvs() {
    let header = v2(0x21, 0x00, &tlv(0x02, b"gw.example.com"));
    let parsed = parse(&header).unwrap();
    assert!(!parsed.proxied);
    assert_eq!(parsed.source, None);
    assert_eq!(parsed.authority.as_deref(), Some("gw.example.com"));
}

#[test]
fn v2_local_ignores_the_family_and_its_addresses() {
    let cases = [
        (0x11, 12),
        (0x12, 12),
        (0x21, 36),
        (0x22, 36),
        (0x31, 216),
        (0x32, 216),
    ];
    for (family, address_len) in cases {
        let header = v2(0x20, family, &vec![7; address_len]);
        assert_eq!(
            parse(&header),
            Ok(not_proxied(Version::V2, 16 + address_len)),
            "family 0x{family:02x}"
        );
    }
}

#[test]
fn v2_unknown_tlvs_are_skipped_and_authority_is_lossy_utf8() {
    let tlvs = [
        tlv(0x04, &[0; 8]),
        tlv(0x02, b"gw\xff.example.com"),
        tlv(0xe0, &[]),
    ]
    .concat();
    let header = v2(0x21, 0x11, &tcp4_body(&tlvs));
    let parsed = parse(&header).unwrap();
    assert_eq!(parsed.authority.as_deref(), Some("gw\u{fffd}.example.com"));
    assert_eq!(parsed.len, header.len());
}

// --- Refusals: one crafted input per variant ---

#[test]
fn empty_buffer_needs_one_byte() {
    assert_eq!(parse(b""), Err(Error::Incomplete { needed: 1 }));
}

#[test]
fn no_signature_is_decided_at_the_first_byte_that_rules_both_out() {
    for input in [
        &b"\x16"[..],
        b"\x16\x03\x01\x00\xc8\x01",
        b"G",
        b"GET / HTTP/1.1\r\n",
        b"PRX",
        b"PROXY\t",
        b"PROXYTCP4",
        b"\r\r",
        b"\r\n\r\n\x00\r\nQUIX",
        HELLO,
    ] {
        assert_eq!(invalid(input), Invalid::NoSignature, "{input:?}");
    }
}

#[test]
fn v1_line_without_crlf_is_too_long() {
    let mut line = b"PROXY UNKNOWN ".to_vec();
    line.resize(MAX_V1_LEN, b'x');
    assert_eq!(invalid(&line), Invalid::V1TooLong);
    assert_eq!(
        parse(&line[..MAX_V1_LEN - 2]),
        Err(Error::Incomplete {
            needed: MAX_V1_LEN - 1
        })
    );
}

#[test]
fn v1_syntax_errors_name_the_field() {
    let cases: [(&[u8], &str); 22] = [
        (b"PROXY TCP5 192.0.2.1 192.0.2.2 1 2\r\n", "protocol"),
        (b"PROXY tcp4 192.0.2.1 192.0.2.2 1 2\r\n", "protocol"),
        (b"PROXY  TCP4 192.0.2.1 192.0.2.2 1 2\r\n", "protocol"),
        (b"PROXY UNKNOWNX\r\n", "protocol"),
        (b"PROXY \r\n", "protocol"),
        (
            b"PROXY TCP4 192.0.2.1  192.0.2.2 1 2\r\n",
            "destination address",
        ),
        (b"PROXY TCP4 ::1 192.0.2.2 1 2\r\n", "source address"),
        (b"PROXY TCP4 01.2.3.4 192.0.2.2 1 2\r\n", "source address"),
        (
            b"PROXY TCP4 192.0.2.1 192.0.2.256 1 2\r\n",
            "destination address",
        ),
        (b"PROXY TCP6 192.0.2.1 ::1 1 2\r\n", "source address"),
        (b"PROXY TCP6 ::1 fe80::1%1 1 2\r\n", "destination address"),
        (b"PROXY TCP4 192.0.2.1 192.0.2.2 +1 2\r\n", "source port"),
        (b"PROXY TCP4 192.0.2.1 192.0.2.2 -1 2\r\n", "source port"),
        (
            b"PROXY TCP4 192.0.2.1 192.0.2.2 1 65536\r\n",
            "destination port",
        ),
        (
            b"PROXY TCP4 192.0.2.1 192.0.2.2 1 100000\r\n",
            "destination port",
        ),
        (
            b"PROXY TCP4 192.0.2.1 192.0.2.2 1  2\r\n",
            "destination port",
        ),
        (b"PROXY TCP4 192.0.2.1 192.0.2.2 1\r\n", "destination port"),
        (b"PROXY TCP4 192.0.2.1\r\n", "destination address"),
        (b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2 \r\n", "line end"),
        (b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2 3\r\n", "line end"),
        (b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\rX", "line end"),
        (b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\n", "destination port"),
    ];
    for (input, field) in cases {
        assert_eq!(
            invalid(input),
            Invalid::V1Syntax(field),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn v1_garbage_is_refused_before_the_crlf() {
    let cases: [(&[u8], &str); 6] = [
        (b"PROXY TCP5", "protocol"),
        (b"PROXY X", "protocol"),
        (b"PROXY TCP4 192.0.2.1:", "source address"),
        (b"PROXY TCP4 192.0.2.1 192.0.2.2 +", "source port"),
        (
            b"PROXY TCP4 192.0.2.1 192.0.2.2 1 65536",
            "destination port",
        ),
        (b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2 ", "line end"),
    ];
    for (input, field) in cases {
        assert_eq!(
            invalid(input),
            Invalid::V1Syntax(field),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn v2_fixed_fields_are_refused_as_soon_as_they_arrive() {
    let signature = v2::SIGNATURE;
    let with = |tail: &[u8]| [&signature[..], tail].concat();
    // 13 bytes: version/command.
    assert_eq!(invalid(&with(&[0x11])), Invalid::BadVersion);
    assert_eq!(invalid(&with(&[0x31])), Invalid::BadVersion);
    assert_eq!(invalid(&with(&[0x22])), Invalid::BadCommand);
    assert_eq!(invalid(&with(&[0x2f])), Invalid::BadCommand);
    // 14 bytes: family.
    for family in [0x12, 0x22, 0x31, 0x32, 0x01, 0x10, 0x13, 0x41] {
        assert_eq!(
            invalid(&with(&[0x21, family])),
            Invalid::BadFamily,
            "proxy 0x{family:02x}"
        );
    }
    for family in [0x01, 0x13, 0x33, 0x41] {
        assert_eq!(
            invalid(&with(&[0x20, family])),
            Invalid::BadFamily,
            "local 0x{family:02x}"
        );
    }
    // 16 bytes: length.
    assert_eq!(
        invalid(&with(&[0x21, 0x11, 0xff, 0xff])),
        Invalid::V2TooLong
    );
    assert_eq!(
        invalid(&with(&[0x21, 0x11, 0x00, 11])),
        Invalid::AddressTruncated
    );
    assert_eq!(
        invalid(&with(&[0x21, 0x21, 0x00, 35])),
        Invalid::AddressTruncated
    );
    assert_eq!(
        invalid(&with(&[0x20, 0x31, 0x00, 215])),
        Invalid::AddressTruncated
    );
}

#[test]
fn v2_length_cap_is_max_v2_len() {
    let at_cap = u16::try_from(MAX_V2_LEN - 16).unwrap();
    let header = v2(
        0x21,
        0x11,
        &tcp4_body(&tlv(0xe0, &vec![0; MAX_V2_LEN - 16 - 12 - 3])),
    );
    assert_eq!(header.len(), MAX_V2_LEN);
    assert_eq!(
        parse(&header[..16]),
        Err(Error::Incomplete { needed: MAX_V2_LEN })
    );
    assert_eq!(parse(&header).unwrap().len, MAX_V2_LEN);

    let mut over = header[..16].to_vec();
    over[14..16].copy_from_slice(&(at_cap + 1).to_be_bytes());
    assert_eq!(invalid(&over), Invalid::V2TooLong);
}

#[test]
fn v2_tlv_running_past_the_header_is_truncated() {
    // Two bytes where a three-byte TLV header should be.
    assert_eq!(
        invalid(&v2(0x21, 0x11, &tcp4_body(&[0x02, 0x00]))),
        Invalid::TlvTruncated
    );
    // A value claiming 20 bytes with 14 left.
    let mut short = tlv(0x02, b"gw.example.com");
    short[2] = 20;
    assert_eq!(
        invalid(&v2(0x21, 0x11, &tcp4_body(&short))),
        Invalid::TlvTruncated
    );
    // The same on a LOCAL header.
    assert_eq!(
        invalid(&v2(0x20, 0x00, &[0xe0, 0x00, 0x01])),
        Invalid::TlvTruncated
    );
}

#[test]
fn v2_tlv_lengths_are_checked() {
    let long_authority = tlv(0x02, &vec![b'a'; MAX_AUTHORITY_LEN + 1]);
    assert_eq!(
        invalid(&v2(0x21, 0x11, &tcp4_body(&long_authority))),
        Invalid::TlvLength(0x02)
    );
    let short_crc = tlv(0x03, &[0; 3]);
    assert_eq!(
        invalid(&v2(0x21, 0x11, &tcp4_body(&short_crc))),
        Invalid::TlvLength(0x03)
    );
}

#[test]
fn v2_duplicate_authority_or_crc32c_is_refused() {
    let twice = [tlv(0x02, b"a.example"), tlv(0x02, b"b.example")].concat();
    assert_eq!(
        invalid(&v2(0x21, 0x11, &tcp4_body(&twice))),
        Invalid::DuplicateTlv(0x02)
    );
    let once = with_crc32c(v2(0x21, 0x11, &TCP4_BLOCK));
    let twice = with_crc32c(once);
    assert_eq!(invalid(&twice), Invalid::DuplicateTlv(0x03));
}

#[test]
fn v2_corrupted_crc32c_is_a_mismatch() {
    let good = with_crc32c(v2(0x21, 0x11, &tcp4_body(&tlv(0x02, b"gw.example.com"))));
    assert!(parse(&good).is_ok());
    for at in [0x10, 0x1a, good.len() - 1] {
        let mut bad = good.clone();
        bad[at] ^= 0x04;
        assert_eq!(invalid(&bad), Invalid::Crc32cMismatch, "byte {at}");
    }
}

#[test]
fn crc32c_matches_the_rfc_3720_check_value() {
    assert_eq!(v2::crc32c(&[b"123456789"]), 0xe306_9283);
    assert_eq!(v2::crc32c(&[b"1234", b"", b"56789"]), 0xe306_9283);
    assert_eq!(v2::crc32c(&[&[0u8; 32]]), 0x8a91_36aa);
}

#[test]
fn error_messages_are_lower_case_and_specific() {
    assert_eq!(
        Error::Incomplete { needed: 16 }.to_string(),
        "incomplete proxy header: need at least 16 bytes"
    );
    assert_eq!(
        Error::from(Invalid::V1Syntax("source port")).to_string(),
        "invalid proxy header: malformed v1 source port"
    );
    assert_eq!(
        Invalid::V2TooLong.to_string(),
        "v2 header longer than 4112 bytes"
    );
    assert_eq!(
        Invalid::V1TooLong.to_string(),
        "v1 header has no crlf within 107 bytes"
    );
    assert_eq!(
        Invalid::TlvLength(3).to_string(),
        "v2 tlv 0x03 has an invalid length"
    );
}

#[test]
fn parsed_addresses_are_the_families_sent() {
    let v4 = parse(&encode_v2(addr("10.0.0.1:1"), addr("10.0.0.2:2"), None)).unwrap();
    assert_eq!(
        v4.source.map(|a| a.ip()),
        Some(Ipv4Addr::new(10, 0, 0, 1).into())
    );
    let v6 = parse(&encode_v1(addr("[::1]:1"), addr("[::2]:2"))).unwrap();
    assert_eq!(
        v6.destination.map(|a| a.ip()),
        Some(Ipv6Addr::from(2).into())
    );
}

#[test]
fn mutated_headers_keep_the_three_valued_contract() {
    // Deterministic xorshift: flip, cut and extend real and built headers;
    // the parser must never panic, `needed` must exceed the buffer, and a
    // parsed header must parse the same from exactly its own bytes.
    let seeds: [&[u8]; 7] = [
        &HAPROXY_V1[..45],
        &HAPROXY_V2[..28],
        &HAPROXY_V2_CRC32C[..173],
        HAPROXY_V2_LOCAL,
        b"PROXY UNKNOWN\r\n",
        b"PROXY TCP6 2001:db8::1 2001:db8::2 40000 443\r\n",
        &with_crc32c(v2(0x21, 0x00, &tlv(0x02, b"gw.example.com"))),
    ];
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        usize::try_from(state % 1_000_003).unwrap()
    };
    let mut outcomes = [0usize; 3];
    for round in 0..20_000 {
        let mut buf = seeds[round % seeds.len()].to_vec();
        for _ in 0..=next() % 3 {
            match next() % 4 {
                0 => {
                    let at = next() % buf.len();
                    buf[at] ^= u8::try_from(next() % 255 + 1).unwrap();
                }
                1 => buf.truncate(next() % (buf.len() + 1)),
                2 => buf.extend((0..next() % 8).map(|i| u8::try_from(i * 37 % 256).unwrap())),
                _ => {
                    let at = next() % buf.len().max(1);
                    buf.insert(at.min(buf.len()), b' ');
                }
            }
            if buf.is_empty() {
                buf.push(b'P');
            }
        }
        match parse(&buf) {
            Ok(header) => {
                outcomes[0] += 1;
                assert!(header.len <= buf.len(), "{buf:?}");
                assert_eq!(parse(&buf[..header.len]), Ok(header.clone()), "{buf:?}");
                assert_eq!(header.proxied, header.source.is_some(), "{buf:?}");
                assert_eq!(header.source.is_some(), header.destination.is_some());
            }
            Err(Error::Incomplete { needed }) => {
                outcomes[1] += 1;
                assert!(needed > buf.len(), "{buf:?}");
            }
            Err(Error::Invalid(_)) => outcomes[2] += 1,
        }
    }
    assert!(
        outcomes.iter().all(|&n| n >= 1000),
        "ok/incomplete/invalid: {outcomes:?}"
    );
}

#[test]
fn v2_ssl_tlv_says_the_hop_terminated_tls() {
    // PP2_TYPE_SSL (0x20): client bit PP2_CLIENT_SSL, verify = 0, no sub-TLVs.
    let ssl = tlv(0x20, &[0x01, 0, 0, 0, 0]);
    let header = v2(0x21, 0x11, &tcp4_body(&ssl));
    assert!(parse(&header).unwrap().tls_terminated);
    let not_ssl = tlv(0x20, &[0x00, 0, 0, 0, 0]);
    assert!(
        !parse(&v2(0x21, 0x11, &tcp4_body(&not_ssl)))
            .unwrap()
            .tls_terminated
    );
    let short = tlv(0x20, &[]);
    assert!(
        !parse(&v2(0x21, 0x11, &tcp4_body(&short)))
            .unwrap()
            .tls_terminated
    );
}

/// How many times `front::read_proxy_header` parses `data` arriving one
/// byte per read (parsing again only once `needed` bytes are in).
fn trickled_parses(data: &[u8]) -> usize {
    let mut want = 0;
    let mut parses = 0;
    for n in 1..=data.len() {
        if n < want {
            continue;
        }
        parses += 1;
        match parse(&data[..n]) {
            Err(Error::Incomplete { needed }) => want = needed,
            _ => break,
        }
    }
    parses
}

/// Cost: a header trickled one byte per read is parsed a bounded number of
/// times (the fuzz target `proxy_protocol` checks the same bound on any input).
#[test]
fn a_trickled_header_is_parsed_a_bounded_number_of_times() {
    let mut longest_v1 = b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n".to_vec();
    longest_v1.extend_from_slice(HELLO);
    for header in [
        HAPROXY_V1,
        HAPROXY_V2,
        HAPROXY_V2_CRC32C,
        HAPROXY_V2_LOCAL,
        &longest_v1,
    ] {
        let parses = trickled_parses(header);
        assert!(parses <= MAX_V1_LEN + 2 * 16, "{parses} parses");
    }
}
