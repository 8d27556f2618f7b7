//! Unit tests for the handshake observer: real handshakes captured on
//! loopback (`testdata/`, see its README) fed in every order and split,
//! re-framed and cut short; built streams for HelloRetryRequest, alerts,
//! oversized messages and the budget; garbage and bit flips.

use super::record::Stop;
use super::*;

/// Both directions of one captured connection and the order in which the
/// relay forwarded its chunks ("c2s 211" per line).
struct Fixture {
    name: &'static str,
    c2s: &'static [u8],
    s2c: &'static [u8],
    order: &'static str,
}

macro_rules! fixture {
    ($name:literal) => {
        Fixture {
            name: $name,
            c2s: include_bytes!(concat!("testdata/", $name, ".c2s.bin")),
            s2c: include_bytes!(concat!("testdata/", $name, ".s2c.bin")),
            order: include_str!(concat!("testdata/", $name, ".order")),
        }
    };
}

const TLS12_MTLS: Fixture = fixture!("tls12-mtls");
const TLS12_UNKNOWN_CA: Fixture = fixture!("tls12-unknown-ca");
const TLS12_SERVER_ONLY: Fixture = fixture!("tls12-server-only");
const TLS12_EMPTY_CLIENT_CERT: Fixture = fixture!("tls12-empty-client-cert");
const TLS13_MTLS: Fixture = fixture!("tls13-mtls");
const TLS13_UNKNOWN_CA: Fixture = fixture!("tls13-unknown-ca");
const TLS13_HRR: Fixture = fixture!("tls13-hrr");

const FIXTURES: [&Fixture; 7] = [
    &TLS12_MTLS,
    &TLS12_UNKNOWN_CA,
    &TLS12_SERVER_ONLY,
    &TLS12_EMPTY_CLIENT_CERT,
    &TLS13_MTLS,
    &TLS13_UNKNOWN_CA,
    &TLS13_HRR,
];

const C2S: Direction = Direction::ClientToServer;
const S2C: Direction = Direction::ServerToClient;

/// The gateway's certificate as `openssl x509` reports it (README).
fn gateway_cert() -> CertSummary {
    CertSummary {
        subject: "O=passthru test, CN=gw.example.com".into(),
        issuer: "O=passthru test, CN=Observe Test Root CA".into(),
        serial_hex: "30 01".into(),
        sha1: "c31f22e58fdbccfcc38a6e715d77040dc30d2952".into(),
        sha256: "169d3ef57de2bce25eb3eef560207f8d0ecf70790aa9e568349f565c4a04752c".into(),
        not_after: "2036-11-20T02:57:52Z".into(),
        not_after_unix: 2_110_762_672,
    }
}

/// The agent's certificate (issued by the root the gateway trusts).
fn agent_cert() -> CertSummary {
    CertSummary {
        subject: "O=passthru test, CN=agent-01.corp.example".into(),
        issuer: "O=passthru test, CN=Observe Test Root CA".into(),
        serial_hex: "00 8f 12 34 56".into(),
        sha1: "720f34b65d97917a3f071872433cdd6274a70edc".into(),
        sha256: "0e74a3b3b4f74c0d3bd48bc8d14676cee6cf9f5efbbb8118cfe3076913e1db65".into(),
        not_after: "2036-11-20T02:57:53Z".into(),
        not_after_unix: 2_110_762_673,
    }
}

/// A client certificate from a CA the gateway does not trust.
fn stranger_cert() -> CertSummary {
    CertSummary {
        subject: "O=elsewhere, CN=stranger.example".into(),
        issuer: "O=elsewhere, CN=Rogue CA".into(),
        serial_hex: "42 42".into(),
        sha1: "6cea25382dd4cb531da582612ea2ac147aa3fe57".into(),
        sha256: "3bc01861afbdc431e4b010b5e46b6032459e3abc0b3e510cc8da60a7bf9c7572".into(),
        not_after: "2036-11-20T02:57:53Z".into(),
        not_after_unix: 2_110_762_673,
    }
}

fn tls12(client_cert_requested: Option<bool>) -> Handshake {
    Handshake {
        version: Some("TLSv1.2"),
        cipher: Some("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384".into()),
        client_cert_requested,
        server_cert: Some(gateway_cert()),
        completed: true,
        ..Handshake::default()
    }
}

fn tls13() -> Handshake {
    Handshake {
        version: Some("TLSv1.3"),
        cipher: Some("TLS_AES_256_GCM_SHA384".into()),
        certificates_encrypted: true,
        completed: true,
        ..Handshake::default()
    }
}

/// What each fixture must report, and after which captured chunk (index in
/// the order file) the observer is done.
fn expected(fixture: &Fixture) -> (Handshake, usize) {
    match fixture.name {
        "tls12-mtls" => (
            Handshake {
                client_cert: Some(agent_cert()),
                ..tls12(Some(true))
            },
            3,
        ),
        "tls12-unknown-ca" => (
            Handshake {
                client_cert: Some(stranger_cert()),
                alert: Some((Side::Server, "unknown_ca".into())),
                completed: false,
                ..tls12(Some(true))
            },
            3,
        ),
        "tls12-server-only" => (tls12(Some(false)), 3),
        "tls12-empty-client-cert" => (
            Handshake {
                client_cert_empty: true,
                ..tls12(Some(true))
            },
            3,
        ),
        // The server's rejection is an encrypted alert: invisible.
        "tls13-mtls" | "tls13-unknown-ca" => (tls13(), 2),
        "tls13-hrr" => (tls13(), 4),
        other => panic!("no expectation for {other}"),
    }
}

/// Bytes to feed, in order.
type Steps = Vec<(Direction, &'static [u8])>;

/// The captured chunks, in the order the relay forwarded them.
fn chunks(fixture: &Fixture) -> Steps {
    let (mut c2s, mut s2c) = (fixture.c2s, fixture.s2c);
    let mut out = Vec::new();
    for line in fixture.order.lines() {
        let (dir, len) = line.split_once(' ').unwrap();
        let len: usize = len.parse().unwrap();
        let (dir, rest) = match dir {
            "c2s" => (C2S, &mut c2s),
            "s2c" => (S2C, &mut s2c),
            other => panic!("{}: bad direction {other}", fixture.name),
        };
        let (chunk, tail) = rest.split_at(len);
        *rest = tail;
        out.push((dir, chunk));
    }
    assert!(
        c2s.is_empty() && s2c.is_empty(),
        "{}: order file short",
        fixture.name
    );
    out
}

/// Feeds `steps` to a fresh observer with an ample budget.
fn observe(steps: &[(Direction, &[u8])]) -> Observer {
    let mut observer = Observer::new(DEFAULT_BUDGET);
    for (dir, bytes) in steps {
        observer.feed(*dir, bytes);
    }
    observer
}

/// `bytes` split into pieces of `size`.
fn pieces(dir: Direction, bytes: &[u8], size: usize) -> Vec<(Direction, &[u8])> {
    bytes.chunks(size).map(|piece| (dir, piece)).collect()
}

/// A small deterministic generator (xorshift64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Every way of feeding a fixture the observer must not care about.
fn feeding_orders(fixture: &Fixture) -> Vec<(&'static str, Steps)> {
    let captured = chunks(fixture);
    let byte_by_byte = captured
        .iter()
        .flat_map(|(dir, chunk)| pieces(*dir, chunk, 1))
        .collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut random_splits = Vec::new();
    for (dir, mut chunk) in captured.iter().copied() {
        while !chunk.is_empty() {
            let (piece, rest) = chunk.split_at(1 + rng.below(chunk.len().min(600)));
            random_splits.push((dir, piece));
            chunk = rest;
        }
    }
    let alternating = (0..fixture.c2s.len().max(fixture.s2c.len()))
        .flat_map(|i| {
            let c = fixture.c2s.get(i..=i).map(|b| (C2S, b));
            let s = fixture.s2c.get(i..=i).map(|b| (S2C, b));
            c.into_iter().chain(s)
        })
        .collect();
    vec![
        ("captured order", captured),
        ("captured order, one byte at a time", byte_by_byte),
        ("captured order, random splits", random_splits),
        (
            "client then server",
            vec![(C2S, fixture.c2s), (S2C, fixture.s2c)],
        ),
        (
            "server then client",
            vec![(S2C, fixture.s2c), (C2S, fixture.c2s)],
        ),
        ("alternating bytes", alternating),
    ]
}

#[test]
fn every_fixture_reports_the_captured_handshake_in_every_feeding_order() {
    for fixture in FIXTURES {
        let (want, _) = expected(fixture);
        for (how, steps) in feeding_orders(fixture) {
            let observer = observe(&steps);
            assert_eq!(observer.report(), &want, "{} fed {how}", fixture.name);
            assert!(observer.done(), "{} fed {how}: not done", fixture.name);
        }
    }
}

#[test]
fn done_right_after_the_last_handshake_record_and_not_before() {
    for fixture in FIXTURES {
        let (_, done_at) = expected(fixture);
        let mut observer = Observer::new(DEFAULT_BUDGET);
        for (i, (dir, chunk)) in chunks(fixture).into_iter().enumerate() {
            observer.feed(dir, chunk);
            assert_eq!(
                observer.done(),
                i >= done_at,
                "{} after chunk {i}",
                fixture.name
            );
        }
    }
}

#[test]
fn tls12_thumbprints_equal_openssl_fingerprints() {
    let report = observe(&chunks(&TLS12_MTLS)).report().clone();
    let client = report.client_cert.unwrap();
    // `openssl x509 -in agent.pem -noout -fingerprint -sha1` (README).
    assert_eq!(
        client.sha1.to_uppercase(),
        "72:0F:34:B6:5D:97:91:7A:3F:07:18:72:43:3C:DD:62:74:A7:0E:DC".replace(':', "")
    );
    assert_eq!(client.serial_hex, "00 8f 12 34 56");
    let server = report.server_cert.unwrap();
    assert_eq!(
        server.sha256.to_uppercase(),
        "16:9D:3E:F5:7D:E2:BC:E2:5E:B3:EE:F5:60:20:7F:8D:0E:CF:70:79:0A:A9:E5:68:34:9F:56:5C:4A:04:75:2C"
            .replace(':', "")
    );
}

#[test]
fn tls13_rejection_by_encrypted_alert_looks_completed() {
    // Documented limitation: only the record sizes differ.
    let accepted = observe(&chunks(&TLS13_MTLS));
    let rejected = observe(&chunks(&TLS13_UNKNOWN_CA));
    assert_eq!(rejected.report(), accepted.report());
    assert_eq!(rejected.report().alert, None);
}

#[test]
fn every_prefix_is_a_consistent_partial_report() {
    for fixture in FIXTURES {
        let (want, _) = expected(fixture);
        let steps: Vec<_> = chunks(fixture)
            .into_iter()
            .flat_map(|(dir, chunk)| pieces(dir, chunk, 1))
            .collect();
        for cut in 0..=steps.len() {
            let observer = observe(steps.get(..cut).unwrap());
            let report = observer.report();
            assert!(!report.truncated, "{} cut at {cut}", fixture.name);
            if observer.done() {
                assert_eq!(report, &want, "{} cut at {cut}", fixture.name);
            }
            if report.version.is_some() {
                assert_eq!(
                    report.version, want.version,
                    "{} cut at {cut}",
                    fixture.name
                );
                assert_eq!(report.cipher, want.cipher, "{} cut at {cut}", fixture.name);
            }
            for (got, full) in [
                (&report.client_cert, &want.client_cert),
                (&report.server_cert, &want.server_cert),
            ] {
                assert!(
                    got.is_none() || got == full,
                    "{} cut at {cut}",
                    fixture.name
                );
            }
            assert!(
                !report.completed || want.completed,
                "{} cut at {cut}",
                fixture.name
            );
        }
    }
}

#[test]
fn handshake_messages_spanning_records_or_sharing_one_give_the_same_report() {
    for fixture in [&TLS12_MTLS, &TLS12_UNKNOWN_CA, &TLS13_HRR] {
        let (want, _) = expected(fixture);
        for size in [1, 3, 7, 100, 1000, 16_384] {
            let c2s = reframe(fixture.c2s, size);
            let s2c = reframe(fixture.s2c, size);
            for steps in [
                vec![(C2S, &c2s[..]), (S2C, &s2c[..])],
                [pieces(S2C, &s2c, 1), pieces(C2S, &c2s, 1)].concat(),
            ] {
                let observer = observe(&steps);
                assert_eq!(
                    observer.report(),
                    &want,
                    "{} records of {size}",
                    fixture.name
                );
                assert!(observer.done());
            }
        }
    }
}

/// `stream` with its leading run of handshake records (up to the first
/// record of another type) merged and re-cut into records of `size` bytes.
fn reframe(stream: &[u8], size: usize) -> Vec<u8> {
    let mut rest = stream;
    let mut handshake = Vec::new();
    while let [record::HANDSHAKE, _, _, hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        handshake.extend_from_slice(&tail[..len]);
        rest = &tail[len..];
    }
    let mut out: Vec<u8> = handshake
        .chunks(size)
        .flat_map(|body| build_record(record::HANDSHAKE, body))
        .collect();
    out.extend_from_slice(rest);
    out
}

fn build_record(content_type: u8, body: &[u8]) -> Vec<u8> {
    let len = u16::try_from(body.len()).unwrap().to_be_bytes();
    [&[content_type, 3, 3][..], &len, body].concat()
}

fn build_handshake(kind: u8, body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).unwrap().to_be_bytes();
    [&[kind][..], &len[1..], body].concat()
}

/// A ServerHello body; `selected` goes in supported_versions.
fn server_hello_body(random: [u8; 32], cipher: u16, selected: Option<u16>) -> Vec<u8> {
    let mut body = [&[3, 3][..], &random, &[0], &cipher.to_be_bytes(), &[0]].concat();
    if let Some(version) = selected {
        let ext = [&[0x00, 0x2b, 0x00, 0x02][..], &version.to_be_bytes()].concat();
        body.extend_from_slice(&u16::try_from(ext.len()).unwrap().to_be_bytes());
        body.extend_from_slice(&ext);
    }
    body
}

fn hello_retry_random() -> [u8; 32] {
    let hex = "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c";
    std::array::from_fn(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
}

#[test]
fn hello_retry_request_then_compat_change_cipher_spec_then_the_real_server_hello() {
    let hrr = server_hello_body(hello_retry_random(), 0x1301, Some(0x0304));
    let real = server_hello_body([7; 32], 0x1302, Some(0x0304));
    let s2c = [
        build_record(22, &build_handshake(2, &hrr)),
        build_record(20, &[1]),
        build_record(22, &build_handshake(2, &real)),
        build_record(23, &[0; 40]),
    ]
    .concat();
    let c2s = [build_record(20, &[1]), build_record(23, &[0; 40])].concat();
    let observer = observe(&[(S2C, &s2c), (C2S, &c2s)]);
    let report = observer.report();
    assert_eq!(report.cipher.as_deref(), Some("TLS_AES_256_GCM_SHA384"));
    assert_eq!(report.version, Some("TLSv1.3"));
    assert!(report.completed && observer.done());
    assert!(message::server_hello(&hrr).unwrap().retry);
    assert!(!message::server_hello(&real).unwrap().retry);
}

#[test]
fn legacy_version_counts_when_supported_versions_is_absent() {
    let hello = build_handshake(2, &server_hello_body([1; 32], 0xc02f, None));
    let observer = observe(&[(S2C, &build_record(22, &hello))]);
    assert_eq!(observer.report().version, Some("TLSv1.2"));
    assert_eq!(
        observer.report().cipher.as_deref(),
        Some("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")
    );
}

#[test]
fn server_alert_to_the_client_hello_ends_observation() {
    let c2s = &TLS13_MTLS.c2s[..248];
    let alert = build_record(21, &[2, 40]);
    for steps in [vec![(C2S, c2s), (S2C, &alert[..])], vec![(S2C, &alert[..])]] {
        let observer = observe(&steps);
        let want = Handshake {
            alert: Some((Side::Server, "handshake_failure".into())),
            ..Handshake::default()
        };
        assert_eq!(observer.report(), &want);
        assert!(observer.done());
    }
}

#[test]
fn client_rejecting_the_server_certificate_in_tls12_ends_observation() {
    let hello = build_handshake(2, &server_hello_body([1; 32], 0xc02b, None));
    let s2c = [
        build_record(22, &hello),
        build_record(22, &build_handshake(14, &[])),
    ]
    .concat();
    let alert = build_record(21, &[2, 42]);
    for steps in [
        vec![(S2C, &s2c[..]), (C2S, &alert[..])],
        vec![(C2S, &alert[..]), (S2C, &s2c[..])],
    ] {
        let observer = observe(&steps);
        let want = Handshake {
            version: Some("TLSv1.2"),
            cipher: Some("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256".into()),
            client_cert_requested: Some(false),
            alert: Some((Side::Client, "bad_certificate".into())),
            ..Handshake::default()
        };
        assert_eq!(observer.report(), &want);
        assert!(observer.done());
    }
}

#[test]
fn alert_names_follow_rfc_8446_else_the_number() {
    let observer = observe(&[(C2S, &build_record(21, &[1, 200]))]);
    assert_eq!(
        observer.report().alert,
        Some((Side::Client, "alert_200".into()))
    );
    // A warning alert is recorded but does not end observation.
    assert!(!observer.done());
    assert_eq!(names::alert(116), "certificate_required");
    assert_eq!(names::alert(45), "certificate_expired");
    assert_eq!(names::cipher(0x1234), "0x1234");
    assert_eq!(names::cipher(0xc0ad), "0xC0AD");
    assert_eq!(names::version(0x7f1c), None);
}

#[test]
fn two_byte_alert_record_after_encrypted_records_is_not_a_plaintext_alert() {
    let hello = build_handshake(2, &server_hello_body([1; 32], 0x1301, Some(0x0304)));
    let s2c = [
        build_record(22, &hello),
        build_record(23, &[0; 30]),
        build_record(21, &[2, 48]),
    ]
    .concat();
    let observer = observe(&[(S2C, &s2c)]);
    assert_eq!(observer.report().alert, None);
    assert!(observer.report().certificates_encrypted);
}

#[test]
fn certificate_larger_than_max_message_stops_at_its_header() {
    let hello = build_handshake(2, &server_hello_body([1; 32], 0xc02b, None));
    let len = u32::try_from(MAX_MESSAGE + 1).unwrap().to_be_bytes();
    // The record header and the Certificate's 4-byte header, no body yet.
    let mut s2c = build_record(22, &hello);
    s2c.extend_from_slice(&[22, 3, 3, 0x40, 0x00, 11, len[1], len[2], len[3]]);
    let mut observer = observe(&[(S2C, &s2c)]);
    assert!(observer.done());
    assert!(observer.report().truncated);
    assert_eq!(observer.state.stop, Some(Stop::MessageTooLarge));
    assert_eq!(observer.report().version, Some("TLSv1.2"));
    observer.feed(S2C, &vec![0; 2 * MAX_MESSAGE]);
    assert_eq!(observer.state.server.examined, s2c.len());
}

#[test]
fn certificate_of_exactly_max_message_is_read() {
    let der = leaf_of(TLS12_SERVER_ONLY.s2c);
    let entry_len = MAX_MESSAGE - 6;
    let mut entry = der.to_vec();
    entry.resize(entry_len, 0);
    let u24 = |n: usize| u32::try_from(n).unwrap().to_be_bytes()[1..].to_vec();
    let body = [u24(entry_len + 3), u24(entry_len), entry].concat();
    let message = build_handshake(11, &body);
    let mut s2c = build_record(
        22,
        &build_handshake(2, &server_hello_body([1; 32], 0xc02b, None)),
    );
    for piece in message.chunks(16_384) {
        s2c.extend_from_slice(&build_record(22, piece));
    }
    let observer = observe(&[(S2C, &s2c)]);
    assert!(!observer.report().truncated);
    let cert = observer.report().server_cert.clone().unwrap();
    assert_eq!(cert.subject, gateway_cert().subject);
}

/// The DER of the first certificate in a captured TLS 1.2 server stream
/// (ServerHello record, then the Certificate record).
fn leaf_of(s2c: &[u8]) -> &[u8] {
    let hello_len = usize::from(u16::from_be_bytes([s2c[3], s2c[4]]));
    let cert_record = &s2c[5 + hello_len..];
    let body = &cert_record[5 + 4..];
    let len = message::u24([body[3], body[4], body[5]]);
    &body[6..6 + len]
}

#[test]
fn budget_spent_before_the_handshake_ends_truncates() {
    let mut observer = Observer::new(100);
    for (dir, chunk) in chunks(&TLS12_MTLS) {
        observer.feed(dir, chunk);
    }
    assert!(observer.done() && observer.report().truncated);
    assert_eq!(observer.state.stop, Some(Stop::Budget));
    assert!(observer.state.client.examined <= 100 && observer.state.server.examined <= 100);
}

#[test]
fn budget_spent_after_a_sides_part_is_over_is_no_truncation() {
    // The server's part (ServerHello, ChangeCipherSpec, first encrypted
    // record) fits 300 bytes; the rest of its 2915 bytes is not examined,
    // and the client's part (259 bytes) still completes the handshake.
    let mut observer = Observer::new(300);
    observer.feed(S2C, TLS13_MTLS.s2c);
    assert_eq!(observer.state.server.examined, 300);
    assert!(!observer.done() && !observer.report().truncated);
    observer.feed(C2S, TLS13_MTLS.c2s);
    assert_eq!(observer.report(), &tls13());
    assert!(observer.done());
}

#[test]
fn feeding_megabytes_after_done_examines_nothing() {
    let mut observer = observe(&chunks(&TLS12_MTLS));
    assert!(observer.done());
    let before = observer.report().clone();
    let (client, server) = (
        observer.state.client.examined,
        observer.state.server.examined,
    );
    let ten_mb = vec![0x17; 10 * 1024 * 1024];
    for _ in 0..100 {
        observer.feed(C2S, &ten_mb);
        observer.feed(S2C, &ten_mb);
    }
    assert!(observer.done());
    assert_eq!(observer.report(), &before);
    assert_eq!(observer.state.client.examined, client);
    assert_eq!(observer.state.server.examined, server);
}

#[test]
fn input_that_is_not_tls_stops_with_truncated() {
    for (name, bytes) in [
        ("http", &b"GET / HTTP/1.1\r\nHost: gw\r\n\r\n"[..]),
        ("record too long", &[22, 3, 1, 0x48, 0x01][..]),
        ("content type 25", &[25, 3, 3, 0, 1][..]),
        ("version 2.0", &[22, 2, 0, 0, 1][..]),
        ("sslv2 hello", &[0x80, 0x2e, 0x01, 0x03, 0x01][..]),
    ] {
        let observer = observe(&[(C2S, bytes)]);
        assert!(observer.done(), "{name}");
        assert_eq!(observer.state.stop, Some(Stop::NotTls), "{name}");
        assert!(observer.report().truncated, "{name}");
    }
}

#[test]
fn malformed_server_hello_and_certificate_stop_with_truncated() {
    let short_hello = build_record(22, &build_handshake(2, &[3, 3, 0]));
    let observer = observe(&[(S2C, &short_hello)]);
    assert_eq!(observer.state.stop, Some(Stop::Malformed("random")));
    let bad_list = build_record(22, &build_handshake(11, &[0, 0, 9, 0, 0, 1]));
    let observer = observe(&[(C2S, &bad_list)]);
    assert_eq!(
        observer.state.stop,
        Some(Stop::Malformed("certificate_list"))
    );
    assert!(observer.report().truncated && observer.done());
}

#[test]
fn random_garbage_never_panics() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for _ in 0..2_000 {
        let mut observer = Observer::new(rng.below(1 << 16));
        for _ in 0..rng.below(20) {
            let dir = if rng.next() & 1 == 0 { C2S } else { S2C };
            // Plausible record headers half of the time, to get past framing.
            let len = rng.below(3000);
            let mut bytes = rng.bytes(len);
            if rng.next() & 1 == 0 {
                bytes.splice(
                    0..0,
                    [20 + (rng.next() % 5) as u8, 3, 3, rng.next() as u8 & 0x0f],
                );
            }
            observer.feed(dir, &bytes);
            let _ = observer.report();
        }
    }
}

#[test]
fn bit_flips_in_captures_never_panic() {
    for fixture in [&TLS12_MTLS, &TLS13_HRR] {
        for dir in [C2S, S2C] {
            let original = match dir {
                C2S => fixture.c2s,
                S2C => fixture.s2c,
            };
            for i in 0..original.len() {
                let mut flipped = original.to_vec();
                flipped[i] ^= 1 << (i % 8);
                let mut observer = Observer::new(DEFAULT_BUDGET);
                match dir {
                    C2S => observer.feed(S2C, fixture.s2c),
                    S2C => observer.feed(C2S, fixture.c2s),
                }
                observer.feed(dir, &flipped);
            }
        }
    }
}

#[test]
fn report_serialises_for_the_json_access_log() {
    let observer = observe(&chunks(&TLS12_UNKNOWN_CA));
    let json = serde_json::to_value(observer.report()).unwrap();
    assert_eq!(json["alert"], serde_json::json!(["server", "unknown_ca"]));
    assert_eq!(json["version"], "TLSv1.2");
    assert_eq!(json["client_cert"]["sha1"], stranger_cert().sha1);
    assert_eq!(json["client_cert"]["not_after_unix"], 2_110_762_673);
}
