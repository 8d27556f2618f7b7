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

/// Issue 19.7: with stderr connected to a pipe nobody read, the 143rd
/// connection to a dead backend filled the pipe (a warning per attempt,
/// written by the worker) and the proxy stalled, `/healthz` and healthy
/// routes included. Now stdout and stderr are never read after start-up,
/// thousands of connections go to a dead backend (an access line and, rate
/// limited, a warning each), and a healthy route and `/healthz` still
/// answer within the usual bounded wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_stdout_and_stderr_never_stall_the_proxy() {
    let healthy = RawBackend::spawn("healthy").await;
    let dead = crate::dead_addr().await;
    let config = format!(
        "[[listener]]\nname = \"test\"\nbind = \"127.0.0.1:0\"\n\
         [[route]]\nserver_names = [\"gw.lab.test\"]\nbackend = \"healthy\"\n\
         [[route]]\nserver_names = [\"dead.lab.test\"]\nbackend = \"dead\"\n\
         [[backend]]\nname = \"healthy\"\nservers = [\"{}\"]\nconnect_timeout = \"2s\"\n\
         [[backend]]\nname = \"dead\"\nservers = [\"{dead}\", \"{dead}\"]\nconnect_timeout = \"2s\"\n\
         [admin]\nbind = \"127.0.0.1:0\"\n",
        healthy.addr
    );
    let proxy = BinaryProxy::start_unread(&config);
    let addr = proxy.addr;
    let to_dead = client_hello(Some("dead.lab.test"), &[]);
    let floods: Vec<_> = (0..4)
        .map(|_| {
            let hello = to_dead.clone();
            tokio::task::spawn_blocking(move || {
                for _ in 0..750 {
                    send_until_closed(addr, &hello);
                }
            })
        })
        .collect();
    // About 3 s here; a stalled proxy would hold each connection for WAIT.
    tokio::time::timeout(std::time::Duration::from_secs(90), async {
        for flood in floods {
            flood.await.unwrap();
        }
    })
    .await
    .expect("3,000 connections to the dead backend stalled");
    let (line, _conn) = hello_then_line(addr, &client_hello(Some("gw.lab.test"), &[])).await;
    assert_eq!(line, "healthy");
    let admin = proxy.admin_addr.unwrap();
    let health = tokio::task::spawn_blocking(move || {
        let mut tcp = TcpStream::connect(admin).unwrap();
        tcp.set_read_timeout(Some(WAIT)).unwrap();
        tcp.write_all(b"GET /healthz HTTP/1.1\r\n\r\n").unwrap();
        let mut answer = String::new();
        let _ = tcp.read_to_string(&mut answer);
        answer
    })
    .await
    .unwrap();
    assert!(health.starts_with("HTTP/1.1 200"), "{health:?}");
    // The access lines that did not fit were counted, not waited for.
    let dropped =
        passthru_tests::binary::sample(&proxy.metrics(), "passthru_access_log_dropped_total");
    assert!(
        dropped.is_some(),
        "passthru_access_log_dropped_total is exposed"
    );
}

/// Issue 19.7: a dead backend no longer turns every client into warning
/// lines: 100 connections to it log "server unreachable" once (plus one
/// more per 10 s the run may take), with the count of the lines left out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_backend_warns_once_per_period_not_per_connection() {
    let dead = crate::dead_addr().await;
    let config = format!(
        "[[listener]]\nname = \"test\"\nbind = \"127.0.0.1:0\"\n\
         [default]\nbackend = \"dead\"\n\
         [[backend]]\nname = \"dead\"\nservers = [\"{dead}\"]\nconnect_timeout = \"2s\"\n"
    );
    let proxy = BinaryProxy::start(&config);
    let addr = proxy.addr;
    let hello = client_hello(Some("dead.lab.test"), &[]);
    tokio::task::spawn_blocking(move || {
        for _ in 0..100 {
            send_until_closed(addr, &hello);
        }
    })
    .await
    .unwrap();
    // Every connection has its access line: all were refused by now.
    for _ in 0..100 {
        assert!(
            proxy
                .next_access_line()
                .contains("outcome=upstream_unavailable")
        );
    }
    let mut seen = Vec::new();
    let warnings = passthru_tests::eventually(
        WAIT,
        || {
            seen.extend(
                proxy
                    .diagnostics_so_far()
                    .into_iter()
                    .filter(|l| l.contains("server unreachable")),
            );
            (!seen.is_empty()).then(|| seen.clone())
        },
        "the dead server was never reported",
    )
    .await;
    assert!(warnings.len() <= 5, "{} warning lines", warnings.len());
    assert!(warnings[0].contains("suppressed=0"), "{}", warnings[0]);
}
