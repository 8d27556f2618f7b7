//! Hostile load in miniature (the full versions run from `make soak`):
//! stalled clients, `max_pending`, a garbage mix, and faults mid-transfer.

use std::time::Duration;

use socket2::SockRef;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use passthru_tests::wire::client_hello;
use passthru_tests::{ProxyUnderTest, RawBackend, within};

use crate::hello_then_line;

#[tokio::test]
async fn stalled_clients_do_not_delay_a_routed_one_and_are_all_closed_at_the_timeout() {
    let gw = RawBackend::spawn("gw").await;
    let mut proxy = ProxyUnderTest::new()
        .listener_option("client_hello_timeout = \"600ms\"")
        .listener_option("max_pending = 100")
        .route(&["gw.example.com"], "gw")
        .backend("gw", &[gw.addr])
        .spawn()
        .await;
    let hello = client_hello(Some("gw.example.com"), &[]);
    let mut stalled = Vec::new();
    for _ in 0..50 {
        let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
        tcp.write_all(&hello[..30]).await.unwrap();
        stalled.push(tcp);
    }
    // A good client is routed at once, while fifty others stall.
    let (name, mut good) = hello_then_line(proxy.addr, &hello).await;
    assert_eq!(name, "gw");
    good.get_mut().shutdown().await.unwrap();
    for mut tcp in stalled {
        let mut rest = Vec::new();
        within("a stalled client to be closed", tcp.read_to_end(&mut rest))
            .await
            .unwrap();
        assert!(rest.is_empty());
    }
    let mut timeouts = 0;
    for _ in 0..51 {
        if proxy.next_record().await.outcome == "client_hello_timeout" {
            timeouts += 1;
        }
    }
    assert_eq!(timeouts, 50);
}

/// A refused connection returns its `max_pending` slot before its reply:
/// a client that got its `unrecognized_name` alert and keeps the connection
/// open (passthru waits for its close, lingering) does not keep the next
/// client out.
#[tokio::test]
async fn a_refusal_being_answered_does_not_hold_a_pending_slot() {
    let gw = RawBackend::spawn("gw").await;
    let proxy = ProxyUnderTest::new()
        .listener_option("max_pending = 1")
        .route(&["gw.example.com"], "gw")
        .backend("gw", &[gw.addr])
        .spawn()
        .await;
    let mut refused = TcpStream::connect(proxy.addr).await.unwrap();
    refused
        .write_all(&client_hello(Some("other.example.com"), &[]))
        .await
        .unwrap();
    // The alert arrived: the refusal is being answered (lingering).
    let mut alert = [0u8; 7];
    within("the alert", refused.read_exact(&mut alert))
        .await
        .unwrap();
    assert_eq!(alert[0], 0x15);
    let (name, _) = hello_then_line(proxy.addr, &client_hello(Some("gw.example.com"), &[])).await;
    assert_eq!(name, "gw");
    drop(refused);
}

#[tokio::test]
async fn connections_beyond_max_pending_are_refused_and_counted() {
    let gw = RawBackend::spawn("gw").await;
    let mut proxy = ProxyUnderTest::new()
        .listener_option("client_hello_timeout = \"500ms\"")
        .listener_option("max_pending = 3")
        .route(&["gw.example.com"], "gw")
        .backend("gw", &[gw.addr])
        .spawn()
        .await;
    let hello = client_hello(Some("gw.example.com"), &[]);
    let mut stalled = Vec::new();
    for _ in 0..3 {
        let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
        tcp.write_all(&hello[..10]).await.unwrap();
        stalled.push(tcp);
    }
    // The three are accepted (they hold the pending slots) before the fourth arrives:
    // wait until the proxy has seen their bytes, by the active-connections gauge.
    passthru_tests::eventually(
        Duration::from_secs(5),
        || {
            proxy
                .metrics
                .encode()
                .contains("passthru_active_connections{listener=\"test\"} 3")
                .then_some(())
        },
        "the stalled connections were never accepted",
    )
    .await;
    let reply = crate::send_and_read_to_end(proxy.addr, &hello).await;
    assert!(reply.is_empty());
    assert_eq!(proxy.next_record().await.outcome, "max_pending");
    assert!(
        proxy
            .metrics
            .encode()
            .contains("passthru_refused_total{listener=\"test\",reason=\"max_pending\"} 1")
    );
    drop(stalled);
    for _ in 0..3 {
        let _ = proxy.next_record().await;
    }
    let (name, _) = hello_then_line(proxy.addr, &hello).await;
    assert_eq!(name, "gw", "slots free again");
}

#[tokio::test]
async fn a_garbage_mix_is_counted_and_a_good_client_still_gets_through() {
    let gw = RawBackend::spawn("gw").await;
    let mut proxy = ProxyUnderTest::new()
        .route(&["gw.example.com"], "gw")
        .backend("gw", &[gw.addr])
        .spawn()
        .await;
    let hello = client_hello(Some("gw.example.com"), &[]);
    let addr = proxy.addr;
    let mut tasks = Vec::new();
    for i in 0..500u32 {
        let hello = hello.clone();
        tasks.push(tokio::spawn(async move {
            let mut tcp = TcpStream::connect(addr).await.unwrap();
            let bytes: Vec<u8> = match i % 5 {
                // 200 random-byte connections (first byte 0: never TLS, never HTTP).
                0 | 1 => std::iter::once(0u8)
                    .chain(
                        (0..199u32)
                            .map(|k| (k.wrapping_mul(2_654_435_761).wrapping_add(i) >> 11) as u8),
                    )
                    .collect(),
                // 200 truncated hellos, then a close.
                2 | 3 => hello[..(i as usize % (hello.len() - 1)) + 1].to_vec(),
                // 100 empty connections.
                _ => Vec::new(),
            };
            let _ = tcp.write_all(&bytes).await;
            let _ = tcp.shutdown().await;
            let mut sink = Vec::new();
            let _ = tcp.read_to_end(&mut sink).await;
        }));
    }
    for t in tasks {
        within("the garbage client", t).await.unwrap();
    }
    let (name, _) = hello_then_line(proxy.addr, &hello).await;
    assert_eq!(
        name, "gw",
        "a good client is routed right after the garbage"
    );
    let mut counts = std::collections::BTreeMap::new();
    for _ in 0..500 {
        *counts.entry(proxy.next_record().await.outcome).or_insert(0) += 1;
    }
    assert_eq!(counts.get("not_tls"), Some(&200), "{counts:?}");
    assert_eq!(counts.get("client_closed"), Some(&300), "{counts:?}");
    let metrics = proxy.metrics.encode();
    assert!(
        metrics.contains("passthru_refused_total{listener=\"test\",reason=\"not_tls\"} 200"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_client_reset_mid_transfer_releases_the_server_side() {
    let hello = client_hello(Some("gw.example.com"), &[]);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        // Stream to the client until the connection breaks.
        let chunk = vec![7u8; 64 * 1024];
        let result = loop {
            if let Err(e) = tcp.write_all(&chunk).await {
                break e.kind();
            }
        };
        let _ = tx.send(result);
    });
    let mut proxy = ProxyUnderTest::new()
        .route(&["gw.example.com"], "gw")
        .backend("gw", &[addr])
        .spawn()
        .await;
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    tcp.write_all(&hello).await.unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    within("the first bytes", tcp.read_exact(&mut buf))
        .await
        .unwrap();
    SockRef::from(&tcp)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(tcp);
    let kind = within("the server to notice the reset", rx).await.unwrap();
    assert!(
        matches!(
            kind,
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
        "{kind:?}"
    );
    assert_eq!(proxy.next_record().await.end, Some("client_reset"));
}

#[tokio::test]
async fn a_slow_reader_gets_every_byte() {
    const LEN: usize = 8 << 20;
    let hello = client_hello(Some("gw.example.com"), &[]);
    let hello_len = hello.len();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut first = vec![0u8; hello_len];
        tcp.read_exact(&mut first).await.unwrap();
        let data: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
        tcp.write_all(&data).await.unwrap();
        tcp.shutdown().await.unwrap();
    });
    let proxy = ProxyUnderTest::new()
        .route(&["gw.example.com"], "gw")
        .backend("gw", &[addr])
        .spawn()
        .await;
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    tcp.write_all(&hello).await.unwrap();
    // Read in small pieces with pauses: the server is held back by TCP
    // flow control through passthru, and nothing is lost.
    let mut got = Vec::with_capacity(LEN);
    let mut buf = [0u8; 16 * 1024];
    let mut reads = 0u32;
    loop {
        let n = within("slow reading", tcp.read(&mut buf)).await.unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        reads += 1;
        if reads.is_multiple_of(64) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert_eq!(got.len(), LEN);
    assert!(
        got.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8),
        "bytes altered"
    );
}
