//! Reading the ClientHello on a real socket: every TLS version, one byte
//! per segment, split over records, SSLv2-compatible, and the time and
//! size limits.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use passthru_tests::wire::{client_hello, client_hello_padded, find, fixture, reframe};
use passthru_tests::{ProxyUnderTest, RawBackend, within};

use crate::hello_then_line;

#[tokio::test]
async fn hellos_of_every_version_and_client_are_routed_and_replayed_exactly() {
    let mut gw = RawBackend::spawn("gw").await;
    let mut proxy = ProxyUnderTest::new()
        .route(&["gw.example.com"], "gw")
        .backend("gw", &[gw.addr])
        .spawn()
        .await;
    for (file, version) in [
        ("openssl-tls10.bin", "TLSv1.0"),
        ("openssl-tls11.bin", "TLSv1.1"),
        ("openssl-tls12.bin", "TLSv1.2"),
        ("openssl-tls13.bin", "TLSv1.3"),
        ("curl.bin", "TLSv1.3"),
        ("python.bin", "TLSv1.3"),
        ("rustls.bin", "TLSv1.3"),
    ] {
        let hello = fixture(file);
        let (name, mut conn) = hello_then_line(proxy.addr, &hello).await;
        assert_eq!(name, "gw", "{file}");
        conn.get_mut().shutdown().await.unwrap();
        assert_eq!(
            gw.next_conn().await.received,
            hello,
            "{file}: bytes changed"
        );
        let record = proxy.next_record().await;
        assert_eq!(record.tls_version, Some(version), "{file}");
        assert_eq!(record.sni.as_deref(), Some("gw.example.com"), "{file}");
    }
}

#[tokio::test]
async fn a_hello_sent_one_byte_per_segment_is_routed() {
    let mut gw = RawBackend::spawn("gw").await;
    let proxy = ProxyUnderTest::new()
        .route(&["gw.example.com"], "gw")
        .backend("gw", &[gw.addr])
        .spawn()
        .await;
    let hello = fixture("curl.bin");
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    for b in &hello {
        tcp.write_all(std::slice::from_ref(b)).await.unwrap();
        tcp.flush().await.unwrap();
    }
    let mut line = [0u8; 3];
    within("the routed greeting", tcp.read_exact(&mut line))
        .await
        .unwrap();
    assert_eq!(&line, b"gw\n");
    tcp.shutdown().await.unwrap();
    assert_eq!(gw.next_conn().await.received, hello);
}

#[tokio::test]
async fn a_hello_split_over_three_records_is_routed() {
    let mut gw = RawBackend::spawn("gw").await;
    let proxy = ProxyUnderTest::new()
        .route(&["gw.example.com"], "gw")
        .backend("gw", &[gw.addr])
        .spawn()
        .await;
    let original = fixture("openssl-tls13.bin");
    // Split inside the 4-byte handshake header and in the middle of the SNI.
    let mid_sni = find(&original, b"gw.example.com").unwrap() - 5 + 4;
    let hello = reframe(&original, &[2, mid_sni]);
    assert_eq!(hello.len(), original.len() + 10);
    let (name, mut conn) = hello_then_line(proxy.addr, &hello).await;
    assert_eq!(name, "gw");
    conn.get_mut().shutdown().await.unwrap();
    assert_eq!(gw.next_conn().await.received, hello);
}

#[tokio::test]
async fn an_sslv2_compatible_hello_goes_to_the_default_backend() {
    let mut fallback = RawBackend::spawn("fallback").await;
    let mut proxy = ProxyUnderTest::new()
        .route(&["gw.example.com"], "gw")
        .default_backend("fallback")
        .backend("gw", &[fallback.addr])
        .backend("fallback", &[fallback.addr])
        .spawn()
        .await;
    let hello = fixture("sslv2-compat.bin");
    let (name, mut conn) = hello_then_line(proxy.addr, &hello).await;
    assert_eq!(name, "fallback");
    conn.get_mut().shutdown().await.unwrap();
    assert_eq!(fallback.next_conn().await.received, hello);
    let record = proxy.next_record().await;
    assert_eq!(record.route.as_deref(), Some("default"));
    assert_eq!(record.sni, None);
}

#[tokio::test]
async fn an_incomplete_hello_is_refused_at_client_hello_timeout() {
    let mut gw = RawBackend::spawn("gw").await;
    let mut proxy = ProxyUnderTest::new()
        .listener_option("client_hello_timeout = \"400ms\"")
        .route(&["gw.example.com"], "gw")
        .backend("gw", &[gw.addr])
        .spawn()
        .await;
    let hello = client_hello(Some("gw.example.com"), &[]);
    let started = Instant::now();
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    tcp.write_all(&hello[..20]).await.unwrap();
    let mut rest = Vec::new();
    within("the timeout close", tcp.read_to_end(&mut rest))
        .await
        .unwrap();
    assert!(rest.is_empty(), "nothing is sent on a timeout");
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(proxy.next_record().await.outcome, "client_hello_timeout");
    assert!(gw.try_next_conn().is_none());
}

#[tokio::test]
async fn a_trickling_client_cannot_stretch_the_deadline() {
    let gw = RawBackend::spawn("gw").await;
    let mut proxy = ProxyUnderTest::new()
        .listener_option("client_hello_timeout = \"500ms\"")
        .route(&["gw.example.com"], "gw")
        .backend("gw", &[gw.addr])
        .spawn()
        .await;
    let hello = client_hello(Some("gw.example.com"), &[]);
    let started = Instant::now();
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    // One byte every 50 ms would take several seconds; each byte arrives
    // well within 500 ms of the previous one.
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut closed = false;
    for b in &hello {
        tick.tick().await;
        if tcp.write_all(std::slice::from_ref(b)).await.is_err() {
            closed = true;
            break;
        }
        if started.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    let record = proxy.next_record().await;
    assert_eq!(record.outcome, "client_hello_timeout");
    assert!(
        record.duration < Duration::from_secs(2),
        "{:?}",
        record.duration
    );
    let _ = closed;
}

#[tokio::test]
async fn a_hello_larger_than_max_client_hello_is_refused() {
    let mut gw = RawBackend::spawn("gw").await;
    let mut proxy = ProxyUnderTest::new()
        .listener_option("max_client_hello = 1024")
        .route(&["gw.example.com"], "gw")
        .backend("gw", &[gw.addr])
        .spawn()
        .await;
    let started = Instant::now();
    let big = client_hello_padded(Some("gw.example.com"), &[], 2000);
    // Only the first record header is needed to know it is too large.
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    tcp.write_all(&big[..600]).await.unwrap();
    let mut rest = Vec::new();
    let _ = within("the refusal", tcp.read_to_end(&mut rest)).await;
    assert!(rest.is_empty());
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(proxy.next_record().await.outcome, "client_hello_too_large");
    assert!(gw.try_next_conn().is_none());

    // Just under the limit is routed.
    let fits = client_hello_padded(Some("gw.example.com"), &[], 900);
    assert!(fits.len() <= 1024);
    let (name, mut conn) = hello_then_line(proxy.addr, &fits).await;
    assert_eq!(name, "gw");
    conn.get_mut().shutdown().await.unwrap();
    assert_eq!(gw.next_conn().await.received, fits);
}

#[tokio::test]
async fn a_hello_spanning_two_full_records_is_routed() {
    let mut gw = RawBackend::spawn("gw").await;
    let proxy = ProxyUnderTest::new()
        .listener_option("max_client_hello = 65536")
        .route(&["gw.example.com"], "gw")
        .backend("gw", &[gw.addr])
        .spawn()
        .await;
    let big = client_hello_padded(Some("gw.example.com"), &["h2"], 20_000);
    assert!(big.len() > 20_000);
    let (name, mut conn) = hello_then_line(proxy.addr, &big).await;
    assert_eq!(name, "gw");
    conn.get_mut().shutdown().await.unwrap();
    assert_eq!(gw.next_conn().await.received, big);
}
