//! Criterion benchmark of `passthru::clienthello::parse` over captured
//! ClientHellos: whole single-record hellos and one re-framed into three
//! records (the path that joins records into a buffer). No I/O.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use passthru::clienthello::parse;

const CURL: &[u8] = include_bytes!("../../proxy/src/clienthello/testdata/curl.bin");
const OPENSSL_TLS13: &[u8] =
    include_bytes!("../../proxy/src/clienthello/testdata/openssl-tls13.bin");

fn clienthello(c: &mut Criterion) {
    let curl_3_records = reframe(CURL, &[100, 300]);
    let mut group = c.benchmark_group("clienthello_parse");
    for (name, bytes) in [
        ("curl_517B", CURL),
        ("openssl_tls13_266B", OPENSSL_TLS13),
        ("curl_3_records", curl_3_records.as_slice()),
    ] {
        assert!(parse(bytes).is_ok(), "{name} must parse");
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(name, |b| b.iter(|| parse(black_box(bytes))));
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
