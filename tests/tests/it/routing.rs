//! Routing: exact before wildcard, longest wildcard, ALPN, default, no
//! route (alert bytes checked), failover and all-servers-down.

use tokio::io::AsyncWriteExt;

use passthru_tests::wire::{client_hello, fixture};
use passthru_tests::{ProxyUnderTest, RawBackend};

use crate::{dead_addr, hello_then_line, send_and_read_to_end};

#[tokio::test]
async fn exact_wildcard_alpn_and_default() {
    let exact = RawBackend::spawn("exact").await;
    let h2 = RawBackend::spawn("h2").await;
    let wild = RawBackend::spawn("wild").await;
    let deep = RawBackend::spawn("deep").await;
    let fallback = RawBackend::spawn("fallback").await;
    let mut proxy = ProxyUnderTest::new()
        .route_alpn(&["gw.example.com"], &["h2"], "h2")
        .route(&["gw.example.com"], "exact")
        .route(&["*.example.com"], "wild")
        .route(&["*.agents.example.com"], "deep")
        .default_backend("fallback")
        .backend("exact", &[exact.addr])
        .backend("h2", &[h2.addr])
        .backend("wild", &[wild.addr])
        .backend("deep", &[deep.addr])
        .backend("fallback", &[fallback.addr])
        .spawn()
        .await;
    let cases: &[(Option<&str>, &[&str], &str, &str)] = &[
        (Some("gw.example.com"), &[], "exact", "route[1]"),
        (Some("GW.Example.COM."), &["http/1.1"], "exact", "route[1]"),
        (
            Some("gw.example.com"),
            &["http/1.1", "h2"],
            "h2",
            "route[0]",
        ),
        (Some("console.example.com"), &[], "wild", "route[2]"),
        (Some("a1.agents.example.com"), &[], "deep", "route[3]"),
        (Some("example.com"), &[], "fallback", "default"),
        (Some("other.example.org"), &[], "fallback", "default"),
        (None, &[], "fallback", "default"),
    ];
    for (sni, alpn, want, route) in cases {
        let (got, mut conn) = hello_then_line(proxy.addr, &client_hello(*sni, alpn)).await;
        assert_eq!(&got, want, "sni {sni:?} alpn {alpn:?}");
        conn.get_mut().shutdown().await.unwrap();
        drop(conn);
        let record = proxy.next_record().await;
        assert_eq!(record.route.as_deref(), Some(*route), "sni {sni:?}");
        assert_eq!(record.backend.as_deref(), Some(*want));
        assert_eq!(record.sni.as_deref(), *sni);
        assert_eq!(record.outcome, "ok");
        assert!(record.ja4.is_some(), "no ja4 for sni {sni:?}");
    }
}

#[tokio::test]
async fn no_route_gets_an_unrecognized_name_alert() {
    let gw = RawBackend::spawn("gw").await;
    let mut proxy = ProxyUnderTest::new()
        .route(&["gw.example.com"], "gw")
        .backend("gw", &[gw.addr])
        .spawn()
        .await;
    let reply =
        send_and_read_to_end(proxy.addr, &client_hello(Some("unknown.example.com"), &[])).await;
    assert_eq!(reply, [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 112]);
    let record = proxy.next_record().await;
    assert_eq!(record.outcome, "no_route");
    assert_eq!(record.sni.as_deref(), Some("unknown.example.com"));
    // A refused hello is still fingerprinted.
    assert!(record.ja4.is_some(), "no ja4 for a refused hello");

    // A TLS 1.0 client gets the alert in a TLS 1.0 record.
    let mut old = fixture("openssl-tls10.bin");
    let at = passthru_tests::wire::find(&old, b"gw.example.com").unwrap();
    old[at..at + 2].copy_from_slice(b"xx");
    let reply = send_and_read_to_end(proxy.addr, &old).await;
    assert_eq!(reply, [0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 112]);

    // No SNI and no [default]: refused as well.
    let reply = send_and_read_to_end(proxy.addr, &client_hello(None, &[])).await;
    assert_eq!(reply, [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 112]);
}

#[tokio::test]
async fn all_servers_down_gets_an_internal_error_alert() {
    let (a, b) = (dead_addr().await, dead_addr().await);
    let mut proxy = ProxyUnderTest::new()
        .route(&["gw.example.com"], "gw")
        .backend("gw", &[a, b])
        .spawn()
        .await;
    let reply = send_and_read_to_end(proxy.addr, &client_hello(Some("gw.example.com"), &[])).await;
    assert_eq!(reply, [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 80]);
    let record = proxy.next_record().await;
    assert_eq!(record.outcome, "upstream_unavailable");
    assert_eq!(record.backend.as_deref(), Some("gw"));
    assert_eq!(record.server, None);
    assert!(record.ja4.is_some(), "no ja4 when no server took the hello");
}

#[tokio::test]
async fn a_dead_server_is_skipped_before_any_byte_is_forwarded() {
    let dead = dead_addr().await;
    let mut alive = RawBackend::spawn("alive").await;
    let mut proxy = ProxyUnderTest::new()
        .route(&["gw.example.com"], "gw")
        .backend("gw", &[dead, alive.addr])
        .spawn()
        .await;
    // Round robin: the first connection tries the dead server first, the
    // second starts with the live one; both must reach it.
    for _ in 0..2 {
        let hello = client_hello(Some("gw.example.com"), &[]);
        let (got, mut conn) = hello_then_line(proxy.addr, &hello).await;
        assert_eq!(got, "alive");
        conn.get_mut().shutdown().await.unwrap();
        assert_eq!(alive.next_conn().await.received, hello);
        let record = proxy.next_record().await;
        assert_eq!(
            record.server.as_deref(),
            Some(alive.addr.to_string().as_str())
        );
        assert_eq!(record.outcome, "ok");
    }
}

#[tokio::test]
async fn server_names_resolve_at_connect_time() {
    let gw = RawBackend::spawn("by-name").await;
    let mut proxy = ProxyUnderTest::new()
        .route(&["gw.example.com"], "gw")
        .backend_with("gw", &[format!("localhost:{}", gw.addr.port())], &[])
        .spawn()
        .await;
    let (got, mut conn) =
        hello_then_line(proxy.addr, &client_hello(Some("gw.example.com"), &[])).await;
    assert_eq!(got, "by-name");
    conn.get_mut().shutdown().await.unwrap();
    let record = proxy.next_record().await;
    assert_eq!(
        record.server.as_deref(),
        Some(format!("localhost:{}", gw.addr.port()).as_str())
    );
}

#[tokio::test]
async fn connections_beyond_max_connections_are_closed_at_accept() {
    let mut gw = RawBackend::spawn("gw").await;
    let mut proxy = ProxyUnderTest::new()
        .listener_option("max_connections = 1")
        .route(&["gw.example.com"], "gw")
        .backend("gw", &[gw.addr])
        .spawn()
        .await;
    let hello = client_hello(Some("gw.example.com"), &[]);
    let (name, mut first) = hello_then_line(proxy.addr, &hello).await;
    assert_eq!(name, "gw");
    // The listener is full: the next connection is closed without a byte
    // (a reset when the kernel still held its unread hello).
    let mut tcp = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let _ = tcp.write_all(&hello).await;
    let mut reply = Vec::new();
    match passthru_tests::within(
        "the refusal",
        tokio::io::AsyncReadExt::read_to_end(&mut tcp, &mut reply),
    )
    .await
    {
        Ok(_) => assert!(reply.is_empty(), "{reply:?}"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
    }
    assert_eq!(proxy.next_record().await.outcome, "max_connections");
    let metrics = proxy.metrics.encode();
    assert!(
        metrics.contains("passthru_refused_total{listener=\"test\",reason=\"max_connections\"} 1"),
        "{metrics}"
    );
    // Once the first one ends, its permit is free again.
    first.get_mut().shutdown().await.unwrap();
    let _ = gw.next_conn().await;
    assert_eq!(proxy.next_record().await.outcome, "ok");
    let (name, mut again) = hello_then_line(proxy.addr, &hello).await;
    assert_eq!(name, "gw");
    again.get_mut().shutdown().await.unwrap();
}
