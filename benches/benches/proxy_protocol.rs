//! Criterion benchmark of the PROXY protocol: encode v1 and v2 (with and
//! without the AUTHORITY TLV) and parse the headers HAProxy sends (the
//! captured fixtures) plus the ones passthru encodes. No I/O.

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{Criterion, criterion_group, criterion_main};
use passthru::proxy_protocol::{encode_v1, encode_v2, parse};

const HAPROXY_V1: &[u8] = include_bytes!("../../proxy/src/proxy_protocol/testdata/haproxy-v1.bin");
const HAPROXY_V2: &[u8] = include_bytes!("../../proxy/src/proxy_protocol/testdata/haproxy-v2.bin");
const HAPROXY_V2_CRC: &[u8] =
    include_bytes!("../../proxy/src/proxy_protocol/testdata/haproxy-v2-crc32c.bin");

fn proxy_protocol(c: &mut Criterion) {
    let v4 = (addr("203.0.113.7:51234"), addr("10.0.0.5:443"));
    let v6 = (addr("[2001:db8::7]:51234"), addr("[2001:db8::5]:443"));

    let mut encode = c.benchmark_group("proxy_protocol_encode");
    encode.bench_function("v1_tcp4", |b| {
        b.iter(|| encode_v1(black_box(v4.0), black_box(v4.1)));
    });
    encode.bench_function("v1_tcp6", |b| {
        b.iter(|| encode_v1(black_box(v6.0), black_box(v6.1)));
    });
    encode.bench_function("v2_tcp4", |b| {
        b.iter(|| encode_v2(black_box(v4.0), black_box(v4.1), None));
    });
    encode.bench_function("v2_tcp4_authority", |b| {
        b.iter(|| {
            encode_v2(
                black_box(v4.0),
                black_box(v4.1),
                black_box(Some("gw.example.com")),
            )
        });
    });
    encode.bench_function("v2_tcp6_authority", |b| {
        b.iter(|| {
            encode_v2(
                black_box(v6.0),
                black_box(v6.1),
                black_box(Some("gw.example.com")),
            )
        });
    });
    encode.finish();

    let ours_v1 = encode_v1(v4.0, v4.1);
    let ours_v2 = encode_v2(v6.0, v6.1, Some("gw.example.com"));
    let mut decode = c.benchmark_group("proxy_protocol_parse");
    for (name, bytes) in [
        ("haproxy_v1", HAPROXY_V1),
        ("haproxy_v2", HAPROXY_V2),
        ("haproxy_v2_crc32c", HAPROXY_V2_CRC),
        ("passthru_v1_tcp4", ours_v1.as_slice()),
        ("passthru_v2_tcp6_authority", ours_v2.as_slice()),
    ] {
        assert!(parse(bytes).is_ok(), "{name} must parse");
        decode.bench_function(name, |b| b.iter(|| parse(black_box(bytes))));
    }
    decode.finish();
}

#[allow(clippy::expect_used)] // bench setup: literal addresses
fn addr(s: &str) -> SocketAddr {
    s.parse().expect("literal socket address")
}

criterion_group!(benches, proxy_protocol);
criterion_main!(benches);
