//! Hostile but well-formed ClientHellos through the real binary: long
//! server names must be cheap to refuse, huge ALPN lists cheap to hold.
//! CPU time and memory come from `/proc/PID`; bounds are generous (an order
//! of magnitude below what the unfixed proxy measured) because the machine
//! may be busy.

use std::io::{Read, Write};
use std::net::TcpStream;

use passthru_tests::binary::BinaryProxy;
use passthru_tests::wire::client_hello;
use passthru_tests::{RawBackend, WAIT};

use crate::hello_then_line;

fn config(backend: std::net::SocketAddr) -> String {
    format!(
        "[[listener]]\nname = \"test\"\nbind = \"127.0.0.1:0\"\n\
         [[route]]\nserver_names = [\"*.lab.test\"]\nbackend = \"raw\"\n\
         [default]\nbackend = \"raw\"\n\
         [[backend]]\nname = \"raw\"\nservers = [\"{backend}\"]\nconnect_timeout = \"2s\"\n"
    )
}

/// Send `bytes` on a fresh connection and read until passthru closes.
fn send_until_closed(addr: std::net::SocketAddr, bytes: &[u8]) {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    let _ = tcp.write_all(bytes);
    let mut sink = [0u8; 256];
    while matches!(tcp.read(&mut sink), Ok(n) if n > 0) {}
}

/// Issue 19.1: a 16,000-byte SNI of the form `a.a.a.…` cost 14.6 ms of CPU
/// each when a wildcard route existed. Now it is malformed (longer than
/// 255 bytes) and refused as `not_tls` after one parse; a normal client is
/// still routed meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_sni_flood_costs_little_cpu() {
    let backend = RawBackend::spawn("raw").await;
    let proxy = BinaryProxy::start(&config(backend.addr));
    let long = format!("{}lab.test", "a.".repeat(7_900));
    let hostile = client_hello(Some(&long), &[]);
    let floods = 200;
    let before = proxy.cpu_ticks();
    let addr = proxy.addr;
    tokio::task::spawn_blocking(move || {
        for _ in 0..floods {
            send_until_closed(addr, &hostile);
        }
    })
    .await
    .unwrap();
    let (line, _conn) = hello_then_line(proxy.addr, &client_hello(Some("x.lab.test"), &[])).await;
    assert_eq!(line, "raw");
    let ticks = proxy.cpu_ticks() - before;
    let refused = (0..floods)
        .map(|_| proxy.next_access_line())
        .filter(|l| l.contains("outcome=not_tls"))
        .count();
    assert_eq!(
        refused, floods,
        "every long-SNI hello is refused as not_tls"
    );
    // Clock ticks are 10 ms: 200 hellos at the old 14.6 ms would be ~290.
    println!(
        "long-SNI flood: {floods} hellos of {} bytes, {ticks} CPU ticks",
        long.len()
    );
    assert!(
        ticks < 100,
        "{ticks} ticks of CPU for {floods} long-SNI hellos"
    );
}

/// Issue 19.2: 300 held connections whose hellos list 6,000 ALPN names grew
/// the RSS by 650–675 KiB each. Only the first 16 names are kept, and the
/// parsed hello and its buffer are dropped once routed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_connections_with_huge_alpn_lists_stay_small() {
    let backend = RawBackend::spawn("raw").await;
    let proxy = BinaryProxy::start(&config(backend.addr));
    let names: Vec<String> = (0..6_000).map(|i| format!("{}", i % 10)).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let hello = client_hello(Some("x.lab.test"), &names);
    // Warm up: the runtime's and allocator's first connections.
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(hello_then_line(proxy.addr, &hello).await.1);
    }
    let before = proxy.rss_kib();
    let connections = 300;
    for _ in 0..connections {
        let (line, conn) = hello_then_line(proxy.addr, &hello).await;
        assert_eq!(line, "raw");
        held.push(conn);
    }
    let after = proxy.rss_kib();
    let per_connection = after.saturating_sub(before) as f64 / f64::from(connections);
    println!(
        "ALPN amplification: {} byte hellos, RSS {before} KiB -> {after} KiB, {per_connection:.1} KiB per held connection",
        hello.len()
    );
    assert!(
        per_connection < 64.0,
        "{per_connection:.1} KiB per connection held"
    );
    drop(held);
}
