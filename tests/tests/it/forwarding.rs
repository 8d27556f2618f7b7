//! Forwarding: mutual TLS end to end through passthru, bytes unaltered in
//! bulk, half-close both ways, resets, and the idle timeout.

use std::io::ErrorKind;
use std::time::Duration;

use sha2::{Digest, Sha256};
use socket2::SockRef;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::time::Instant;

use passthru_tests::wire::client_hello;
use passthru_tests::{Client, Lab, ProxyUnderTest, RawBackend, TlsBackend, within};

use crate::hello_then_line;

#[tokio::test]
async fn mutual_tls_reaches_the_backend_untouched() {
    let lab = Lab::new();
    let mut backend = TlsBackend::new(&lab)
        .require_client_cert(&lab)
        .spawn()
        .await;
    let mut proxy = ProxyUnderTest::new()
        .route(&["gw.example.com"], "gateway")
        .backend("gateway", &[backend.addr])
        .spawn()
        .await;

    let mut conn = within(
        "handshake through passthru",
        Client::new(&lab).connect(proxy.addr),
    )
    .await
    .unwrap();
    // The agent saw the gateway's own self-signed certificate...
    assert_eq!(conn.server_cert_sha256, lab.pki.gateway.sha256_hex());
    conn.stream.write_all(b"ping").await.unwrap();
    let mut echo = [0u8; 4];
    within("the echo", conn.stream.read_exact(&mut echo))
        .await
        .unwrap();
    assert_eq!(&echo, b"ping");
    // ...and the gateway saw the agent's certificate.
    let seen = backend.next_seen().await;
    assert_eq!(seen.error, None);
    assert_eq!(
        seen.client_cert_sha256.as_deref(),
        Some(lab.pki.agent.sha256_hex().as_str())
    );
    assert_eq!(seen.sni.as_deref(), Some("gw.example.com"));

    conn.stream.shutdown().await.unwrap();
    let mut rest = Vec::new();
    within("the close", conn.stream.read_to_end(&mut rest))
        .await
        .unwrap();
    let record = proxy.next_record().await;
    assert_eq!(record.outcome, "ok");
    assert_eq!(record.end, Some("closed"));
    assert_eq!(record.sni.as_deref(), Some("gw.example.com"));
    assert_eq!(record.tls_version, Some("TLSv1.3"));
    assert!(
        record.bytes_up > 500 && record.bytes_down > 500,
        "{record:?}"
    );
}

#[tokio::test]
async fn the_gateway_refuses_an_agent_without_a_certificate() {
    let lab = Lab::new();
    let mut backend = TlsBackend::new(&lab)
        .require_client_cert(&lab)
        .spawn()
        .await;
    let proxy = ProxyUnderTest::new()
        .route(&["gw.example.com"], "gateway")
        .backend("gateway", &[backend.addr])
        .spawn()
        .await;
    let client = Client::new(&lab).client_cert(None);
    // TLS 1.3: the client's handshake completes; the refusal arrives on read.
    if let Ok(mut conn) = within("handshake", client.connect(proxy.addr)).await {
        let mut buf = [0u8; 1];
        let read = within("the refusal", conn.stream.read(&mut buf)).await;
        assert!(read.is_err() || read.is_ok_and(|n| n == 0));
    }
    let seen = backend.next_seen().await;
    let error = seen.error.expect("the gateway must refuse");
    assert!(
        error.contains("no certificates") || error.contains("NoCertificatesPresented"),
        "{error}"
    );
}

/// Deterministic pseudo-random bytes (xorshift), `len` of them, in chunks.
fn stream_chunks(seed: u64, len: usize, chunk: usize) -> impl Iterator<Item = Vec<u8>> {
    let mut state = seed;
    let mut left = len;
    std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        let n = chunk.min(left);
        left -= n;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            out.extend_from_slice(&state.to_le_bytes());
        }
        out.truncate(n);
        Some(out)
    })
}

async fn send_hashed(w: &mut (impl AsyncWriteExt + Unpin), seed: u64, len: usize) -> Vec<u8> {
    let mut h = Sha256::new();
    for chunk in stream_chunks(seed, len, 64 * 1024) {
        h.update(&chunk);
        w.write_all(&chunk).await.unwrap();
    }
    h.finalize().to_vec()
}

async fn recv_hashed(r: &mut (impl AsyncReadExt + Unpin)) -> (Vec<u8>, usize) {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        let n = r.read(&mut buf).await.unwrap();
        if n == 0 {
            return (h.finalize().to_vec(), total);
        }
        h.update(&buf[..n]);
        total += n;
    }
}

#[tokio::test]
async fn sixty_four_mib_each_way_arrive_unaltered() {
    bulk_both_ways(None, 64 << 20).await;
}

#[tokio::test]
async fn sixty_four_mib_each_way_through_splice() {
    bulk_both_ways(Some("splice"), 64 << 20).await;
}

#[tokio::test]
async fn sixteen_mib_each_way_through_the_copy_loop() {
    bulk_both_ways(Some("copy"), 16 << 20).await;
}

/// `len` bytes each way with SHA-256 compared and half-closes in both
/// directions (with the default `auto`, 64 MiB switches to splice after 4 MiB
/// in large reads).
async fn bulk_both_ways(forwarding: Option<&str>, len: usize) {
    let hello = client_hello(Some("gw.example.com"), &[]);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend_addr = listener.local_addr().unwrap();
    let hello_len = hello.len();
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let (mut r, mut w) = tcp.into_split();
        let mut first = vec![0u8; hello_len];
        r.read_exact(&mut first).await.unwrap();
        let recv = tokio::spawn(async move { recv_hashed(&mut r).await });
        let sent = send_hashed(&mut w, 2, len).await;
        w.shutdown().await.unwrap();
        let (got, total) = recv.await.unwrap();
        let _ = tx.send((first, got, total, sent));
    });
    let mut builder = ProxyUnderTest::new()
        .route(&["gw.example.com"], "bulk")
        .backend("bulk", &[backend_addr]);
    if let Some(mode) = forwarding {
        builder = builder.forwarding(mode);
    }
    let mut proxy = builder.spawn().await;

    let tcp = TcpStream::connect(proxy.addr).await.unwrap();
    let (mut r, mut w) = tcp.into_split();
    w.write_all(&hello).await.unwrap();
    let recv = tokio::spawn(async move { recv_hashed(&mut r).await });
    let sent_up = within("bulk upstream", send_hashed(&mut w, 1, len)).await;
    w.shutdown().await.unwrap();
    let (got_down, down_total) = within("bulk downstream", recv).await.unwrap();
    let (first, got_up, up_total, sent_down) = within("the backend's hashes", rx).await.unwrap();

    assert_eq!(
        first, hello,
        "the ClientHello must be replayed first, unchanged"
    );
    assert_eq!(up_total, len);
    assert_eq!(got_up, sent_up, "client → server bytes differ");
    assert_eq!(down_total, len);
    assert_eq!(got_down, sent_down, "server → client bytes differ");
    let record = proxy.next_record().await;
    assert_eq!(record.bytes_up, (hello_len + len) as u64);
    assert_eq!(record.bytes_down, len as u64);
    assert_eq!(record.end, Some("closed"));
}

#[tokio::test]
async fn client_half_close_keeps_the_answer_flowing() {
    let hello = client_hello(Some("gw.example.com"), &[]);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut all = Vec::new();
        tcp.read_to_end(&mut all).await.unwrap();
        // The client has sent FIN; answer after it.
        tcp.write_all(format!("got {} bytes after your FIN", all.len()).as_bytes())
            .await
            .unwrap();
        tcp.shutdown().await.unwrap();
    });
    let proxy = ProxyUnderTest::new()
        .route(&["gw.example.com"], "b")
        .backend("b", &[addr])
        .spawn()
        .await;
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    tcp.write_all(&hello).await.unwrap();
    tcp.write_all(b"request").await.unwrap();
    tcp.shutdown().await.unwrap();
    let mut answer = String::new();
    within("the answer after FIN", tcp.read_to_string(&mut answer))
        .await
        .unwrap();
    assert_eq!(
        answer,
        format!("got {} bytes after your FIN", hello.len() + 7)
    );
}

#[tokio::test]
async fn server_half_close_keeps_the_client_sending() {
    let hello = client_hello(Some("gw.example.com"), &[]);
    let hello_len = hello.len();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut first = vec![0u8; hello_len];
        tcp.read_exact(&mut first).await.unwrap();
        tcp.write_all(b"bye").await.unwrap();
        tcp.shutdown().await.unwrap();
        let mut rest = Vec::new();
        tcp.read_to_end(&mut rest).await.unwrap();
        let _ = tx.send(rest);
    });
    let proxy = ProxyUnderTest::new()
        .route(&["gw.example.com"], "b")
        .backend("b", &[addr])
        .spawn()
        .await;
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    tcp.write_all(&hello).await.unwrap();
    let mut got = Vec::new();
    within("the server's FIN", tcp.read_to_end(&mut got))
        .await
        .unwrap();
    assert_eq!(got, b"bye");
    tcp.write_all(b"still talking").await.unwrap();
    tcp.shutdown().await.unwrap();
    assert_eq!(
        within("the late bytes", rx).await.unwrap(),
        b"still talking"
    );
}

#[tokio::test]
async fn a_server_reset_reaches_the_client_as_a_reset() {
    let hello = client_hello(Some("gw.example.com"), &[]);
    let hello_len = hello.len();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut first = vec![0u8; hello_len];
        tcp.read_exact(&mut first).await.unwrap();
        SockRef::from(&tcp)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(tcp);
    });
    let mut proxy = ProxyUnderTest::new()
        .route(&["gw.example.com"], "b")
        .backend("b", &[addr])
        .spawn()
        .await;
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    tcp.write_all(&hello).await.unwrap();
    let mut buf = [0u8; 16];
    let err = within("the reset", tcp.read(&mut buf)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
    let record = proxy.next_record().await;
    assert_eq!(record.end, Some("server_reset"));
}

#[tokio::test]
async fn idle_connections_are_closed_after_idle_timeout() {
    let raw = RawBackend::spawn("idle").await;
    let mut proxy = ProxyUnderTest::new()
        .route(&["gw.example.com"], "b")
        .backend_with("b", &[raw.addr.to_string()], &["idle_timeout = \"300ms\""])
        .spawn()
        .await;
    let started = Instant::now();
    let hello = client_hello(Some("gw.example.com"), &[]);
    let (name, mut conn) = hello_then_line(proxy.addr, &hello).await;
    assert_eq!(name, "idle");
    // The backend echoes the hello, then nothing moves until passthru closes.
    let mut rest = Vec::new();
    within("the idle close", conn.read_to_end(&mut rest))
        .await
        .unwrap();
    assert_eq!(rest, hello);
    assert!(started.elapsed() >= Duration::from_millis(300));
    let record = proxy.next_record().await;
    assert_eq!(record.end, Some("idle_timeout"));
}

#[tokio::test]
async fn activity_in_one_direction_keeps_the_connection_open() {
    // A one-way download must not be cut by the idle timeout.
    let hello = client_hello(Some("gw.example.com"), &[]);
    let hello_len = hello.len();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut first = vec![0u8; hello_len];
        tcp.read_exact(&mut first).await.unwrap();
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        for _ in 0..16 {
            tick.tick().await;
            tcp.write_all(b"x").await.unwrap();
        }
        tcp.shutdown().await.unwrap();
    });
    let mut proxy = ProxyUnderTest::new()
        .route(&["gw.example.com"], "b")
        .backend_with("b", &[addr.to_string()], &["idle_timeout = \"300ms\""])
        .spawn()
        .await;
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    tcp.write_all(&hello).await.unwrap();
    let mut got = Vec::new();
    within("the download", tcp.read_to_end(&mut got))
        .await
        .unwrap();
    assert_eq!(got, vec![b'x'; 16], "the 800 ms download was cut");
    drop(tcp);
    let record = proxy.next_record().await;
    assert_eq!(record.bytes_down, 16);
}

#[tokio::test]
async fn a_server_reset_mid_splice_reaches_the_client_as_a_reset() {
    let hello = client_hello(Some("gw.example.com"), &[]);
    let hello_len = hello.len();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut first = vec![0u8; hello_len];
        tcp.read_exact(&mut first).await.unwrap();
        tcp.write_all(&vec![1u8; 1 << 20]).await.unwrap();
        SockRef::from(&tcp)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(tcp);
    });
    let mut proxy = ProxyUnderTest::new()
        .forwarding("splice")
        .route(&["gw.example.com"], "gw")
        .backend("gw", &[addr])
        .spawn()
        .await;
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    tcp.write_all(&hello).await.unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let err = loop {
        match within("the reset through splice", tcp.read(&mut buf)).await {
            Ok(0) => panic!("a clean end of stream instead of a reset"),
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
    assert_eq!(proxy.next_record().await.end, Some("server_reset"));
}

/// A server that sends a response and then resets: when passthru learns of
/// the reset by writing to it (the client sent more), the bytes it already
/// holds from the server still reach the client before the reset. The
/// client reads slowly (a small receive buffer), so they sit in passthru.
async fn bytes_sent_before_a_server_reset_reach_the_client(mode: &str) {
    const RESPONSE: usize = 48 * 1024;
    let hello = client_hello(Some("gw.example.com"), &[]);
    let hello_len = hello.len();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (reset_tx, reset_rx) = oneshot::channel();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut first = vec![0u8; hello_len];
        tcp.read_exact(&mut first).await.unwrap();
        tcp.write_all(&[7u8; RESPONSE]).await.unwrap();
        SockRef::from(&tcp)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(tcp);
        let _ = reset_tx.send(());
    });
    let mut proxy = ProxyUnderTest::new()
        .forwarding(mode)
        .route(&["gw.example.com"], "b")
        .backend("b", &[addr])
        .spawn()
        .await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(2048).unwrap();
    let mut tcp = socket.connect(proxy.addr).await.unwrap();
    tcp.write_all(&hello).await.unwrap();
    within("the server's reset", reset_rx).await.unwrap();
    // passthru writes this to the reset server and learns of the reset.
    tcp.write_all(b"more").await.unwrap();
    let mut got = 0usize;
    let mut buf = vec![0u8; 4096];
    let end = loop {
        match within("the response", tcp.read(&mut buf)).await {
            Ok(0) => break None,
            Ok(n) => got += n,
            Err(e) => break Some(e.kind()),
        }
    };
    assert_eq!(got, RESPONSE, "bytes lost (then {end:?})");
    assert_eq!(end, Some(ErrorKind::ConnectionReset));
    let record = proxy.next_record().await;
    assert_eq!(record.end, Some("server_reset"));
    assert_eq!(record.bytes_down, RESPONSE as u64);
}

#[tokio::test]
async fn bytes_sent_before_a_server_reset_reach_the_client_copy() {
    bytes_sent_before_a_server_reset_reach_the_client("copy").await;
}

#[tokio::test]
async fn bytes_sent_before_a_server_reset_reach_the_client_splice() {
    bytes_sent_before_a_server_reset_reach_the_client("splice").await;
}
