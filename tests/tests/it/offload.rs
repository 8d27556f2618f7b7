//! Not TLS: plaintext HTTP gets the 400 that explains SSL offloading;
//! anything else is closed without an answer. Neither reaches a backend.

use passthru_tests::{ProxyUnderTest, RawBackend};

use crate::send_and_read_to_end;

#[tokio::test]
async fn plaintext_http_gets_a_400_that_explains_offloading() {
    let mut gw = RawBackend::spawn("gw").await;
    let mut proxy = ProxyUnderTest::new()
        .route(&["gw.example.com"], "gw")
        .default_backend("gw")
        .backend("gw", &[gw.addr])
        .spawn()
        .await;
    let reply = send_and_read_to_end(
        proxy.addr,
        b"GET /agent/status HTTP/1.1\r\nHost: gw.example.com\r\n\r\n",
    )
    .await;
    let reply = String::from_utf8(reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{reply}");
    assert!(reply.contains("\r\nConnection: close\r\n"), "{reply}");
    let body = reply.split_once("\r\n\r\n").unwrap().1;
    assert!(body.contains("TLS passthrough"), "{body}");
    assert!(body.contains("plaintext HTTP"), "{body}");
    assert!(body.contains("offloading SSL"), "{body}");
    assert!(body.contains("client certificate"), "{body}");
    assert!(
        !body.contains("headers that a TLS-terminating balancer adds"),
        "{body}"
    );
    let record = proxy.next_record().await;
    assert_eq!(record.outcome, "plaintext_http");
    assert!(
        gw.try_next_conn().is_none(),
        "plaintext must never reach a backend"
    );
}

#[tokio::test]
async fn headers_added_by_a_terminating_balancer_are_named() {
    let gw = RawBackend::spawn("gw").await;
    let mut proxy = ProxyUnderTest::new()
        .route(&["gw.example.com"], "gw")
        .backend("gw", &[gw.addr])
        .spawn()
        .await;
    let request = b"POST /api HTTP/1.1\r\nHost: gw.example.com\r\nX-Forwarded-Proto: https\r\n\
X-Forwarded-Client-Cert: Hash=abc\r\nContent-Length: 2\r\n\r\n{}";
    let reply = String::from_utf8(send_and_read_to_end(proxy.addr, request).await).unwrap();
    assert!(reply.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{reply}");
    assert!(
        reply.contains("X-Forwarded-Proto, X-Forwarded-Client-Cert"),
        "{reply}"
    );
    let record = proxy.next_record().await;
    assert_eq!(record.outcome, "plaintext_http");
    let detail = record.detail.unwrap();
    assert!(
        detail.contains("X-Forwarded-Proto") && detail.contains("X-Forwarded-Client-Cert"),
        "{detail}"
    );
}

#[tokio::test]
async fn other_input_is_closed_without_an_answer() {
    let mut gw = RawBackend::spawn("gw").await;
    let mut proxy = ProxyUnderTest::new()
        .route(&["gw.example.com"], "gw")
        .default_backend("gw")
        .backend("gw", &[gw.addr])
        .spawn()
        .await;
    let garbage: Vec<u8> = (0..300u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 0x01)
        .collect();
    for input in [
        b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n".to_vec(),
        garbage,
        // A TLS record that is not a handshake (application data).
        vec![0x17, 0x03, 0x03, 0x00, 0x05, 1, 2, 3, 4, 5],
        // A handshake record carrying a ServerHello, not a ClientHello.
        vec![
            0x16, 0x03, 0x03, 0x00, 0x06, 0x02, 0x00, 0x00, 0x02, 0x03, 0x03,
        ],
    ] {
        let reply = send_and_read_to_end(proxy.addr, &input).await;
        assert!(reply.is_empty(), "{input:?} got {reply:?}");
        assert_eq!(proxy.next_record().await.outcome, "not_tls", "{input:?}");
    }
    assert!(gw.try_next_conn().is_none());
}

#[tokio::test]
async fn a_client_that_closes_without_sending_is_not_a_refusal() {
    let gw = RawBackend::spawn("gw").await;
    let mut proxy = ProxyUnderTest::new()
        .route(&["gw.example.com"], "gw")
        .backend("gw", &[gw.addr])
        .spawn()
        .await;
    // What a balancer's TCP health check does: connect, close.
    let mut tcp = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    tokio::io::AsyncWriteExt::shutdown(&mut tcp).await.unwrap();
    let mut reply = Vec::new();
    passthru_tests::within(
        "the close",
        tokio::io::AsyncReadExt::read_to_end(&mut tcp, &mut reply),
    )
    .await
    .unwrap();
    assert!(reply.is_empty());
    let record = proxy.next_record().await;
    assert_eq!(record.outcome, "client_closed");
}

#[tokio::test]
async fn every_offload_header_and_the_proxy_ssl_tlv_are_named_and_counted() {
    let gw = RawBackend::spawn("gw").await;
    let mut proxy = ProxyUnderTest::new()
        .listener_option("proxy_protocol = \"v2\"")
        .listener_option("trusted_proxies = [\"127.0.0.1\"]")
        .route(&["gw.example.com"], "gw")
        .backend("gw", &[gw.addr])
        .spawn()
        .await;
    // A v2 header from a balancer that received the connection over TLS:
    // PP2_TYPE_SSL (0x20) with PP2_CLIENT_SSL, then the plaintext it forwards.
    let mut header = passthru::proxy_protocol::encode_v2(
        "192.0.2.7:50000".parse().unwrap(),
        "192.0.2.1:443".parse().unwrap(),
        None,
    );
    let ssl_tlv = [0x20, 0x00, 0x05, 0x01, 0, 0, 0, 0];
    let len = u16::from_be_bytes([header[14], header[15]]) + ssl_tlv.len() as u16;
    header[14..16].copy_from_slice(&len.to_be_bytes());
    header.extend_from_slice(&ssl_tlv);
    let mut request = b"GET / HTTP/1.1\r\nHost: gw\r\n".to_vec();
    for name in passthru::alert::OFFLOAD_HEADERS {
        request.extend_from_slice(format!("{name}: x\r\n").as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    let reply =
        String::from_utf8(send_and_read_to_end(proxy.addr, &[header, request].concat()).await)
            .unwrap();
    assert!(reply.starts_with("HTTP/1.1 400 Bad Request"), "{reply}");
    assert!(reply.contains("SSL TLV"), "{reply}");
    for name in passthru::alert::OFFLOAD_HEADERS {
        assert!(reply.contains(name), "{name} not named in {reply}");
    }
    let record = proxy.next_record().await;
    assert_eq!(record.client, "192.0.2.7:50000".parse().unwrap());
    assert!(record.detail.unwrap().contains("proxy_v2_ssl_tlv"));
    let metrics = proxy.metrics.encode();
    assert!(
        metrics.contains(
            "passthru_offload_signals_total{listener=\"test\",signal=\"proxy_v2_ssl_tlv\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "passthru_offload_signals_total{listener=\"test\",signal=\"x-forwarded-client-cert\"} 1"
        ),
        "{metrics}"
    );
}
