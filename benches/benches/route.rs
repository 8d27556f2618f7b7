//! Criterion benchmark of `RouteTable::lookup` at 10, 1,000 and 100,000
//! server names: an exact hit, a wildcard hit (exact probe misses first),
//! a miss that falls to `[default]`, and an ALPN-constrained hit. The
//! target is a lookup cost that does not grow with the number of routes.
//! No I/O.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use passthru::config::RouteConfig;
use passthru::route::{RouteTable, ServerNamePattern};

fn route(c: &mut Criterion) {
    let h2 = vec!["h2".to_string(), "http/1.1".to_string()];
    let none: Vec<String> = Vec::new();
    let mut group = c.benchmark_group("route_lookup");
    for size in [10usize, 1_000, 100_000] {
        let table = RouteTable::from_routes(&routes(size), Some(0));
        let last = size - 1;
        let exact = format!("Agent-{last}.Example.com.");
        let wildcard = format!("host.a.b.tenant-{last}.example.net");
        let alpn = format!("api-{last}.example.org");
        let cases: [(&str, &str, &[String]); 4] = [
            ("exact", &exact, &none),
            ("wildcard", &wildcard, &none),
            ("miss_default", "nothing.example.invalid", &none),
            ("exact_alpn", &alpn, &h2),
        ];
        for (case, sni, offered) in cases {
            assert!(
                table.lookup(Some(sni), offered).is_some(),
                "{case} at {size}"
            );
            group.bench_with_input(BenchmarkId::new(case, size), &sni, |b, sni| {
                b.iter(|| table.lookup(black_box(Some(*sni)), black_box(offered)));
            });
        }
    }
    group.finish();
}

/// `size` server names spread over routes as a real file has them: mostly
/// exact names, one wildcard per ten, one ALPN-constrained name per ten.
fn routes(size: usize) -> Vec<RouteConfig> {
    (0..size)
        .map(|i| {
            let (name, alpn) = match i % 10 {
                0 => (format!("*.tenant-{i}.example.net"), Vec::new()),
                1 => (format!("api-{i}.example.org"), vec!["h2".to_string()]),
                _ => (format!("agent-{i}.example.com"), Vec::new()),
            };
            RouteConfig {
                name: format!("route[{i}]"),
                server_names: vec![pattern(&name)],
                alpn,
                backend: i % 4,
            }
        })
        .chain(last_names(size))
        .collect()
}

/// Make sure the names the cases look up exist whatever `size % 10` is.
fn last_names(size: usize) -> Vec<RouteConfig> {
    let last = size - 1;
    vec![RouteConfig {
        name: format!("route[{size}]"),
        server_names: vec![
            pattern(&format!("agent-{last}.example.com")),
            pattern(&format!("*.tenant-{last}.example.net")),
            pattern(&format!("api-{last}.example.org")),
        ],
        alpn: Vec::new(),
        backend: 1,
    }]
}

#[allow(clippy::expect_used)] // bench setup: the names above are valid by construction
fn pattern(name: &str) -> ServerNamePattern {
    name.parse().expect("valid server name pattern")
}

criterion_group!(benches, route);
criterion_main!(benches);
