//! Criterion benchmark of `passthru::clienthello::parse` over captured
//! ClientHellos: whole single-record hellos and one re-framed into three
//! records (the path that joins records into a buffer); then the same
//! inputs parsed and fingerprinted (`ja4`, computed once per connection for
//! the access log), in the same run so the two compare. No I/O.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use passthru::clienthello::{ja4, parse};

const CURL: &[u8] = include_bytes!("../../proxy/src/clienthello/testdata/curl.bin");
const OPENSSL_TLS13: &[u8] =
    include_bytes!("../../proxy/src/clienthello/testdata/openssl-tls13.bin");
const CHROMIUM: &[u8] = include_bytes!("../../proxy/src/clienthello/testdata/chromium.bin");

fn clienthello(c: &mut Criterion) {
    let curl_3_records = reframe(CURL, &[100, 300]);
    let inputs = [
        ("curl_517B", CURL),
        ("openssl_tls13_266B", OPENSSL_TLS13),
        ("chromium_1986B", CHROMIUM),
        ("curl_3_records", curl_3_records.as_slice()),
    ];
    let mut group = c.benchmark_group("clienthello_parse");
    for (name, bytes) in inputs {
        assert!(parse(bytes).is_ok(), "{name} must parse");
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(name, |b| b.iter(|| parse(black_box(bytes))));
    }
    group.finish();
    let mut group = c.benchmark_group("clienthello_parse_ja4");
    for (name, bytes) in inputs {
        assert!(ja4(bytes).is_some(), "{name} must have a JA4");
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| (parse(black_box(bytes)), ja4(black_box(bytes))))
        });
    }
    group.finish();
}

/// Re-frame a single-record hello into records split at the given offsets of
/// its handshake payload.
fn reframe(hello: &[u8], splits: &[usize]) -> Vec<u8> {
    let (header, payload) = hello.split_at(5);
    let mut out = Vec::with_capacity(hello.len() + 5 * splits.len());
    let mut start = 0;
    for &end in splits.iter().chain([payload.len()].iter()) {
        let chunk = &payload[start..end];
        out.extend_from_slice(&header[..3]);
        out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        out.extend_from_slice(chunk);
        start = end;
    }
    out
}

criterion_group!(benches, clienthello);
criterion_main!(benches);
