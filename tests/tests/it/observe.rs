//! Handshake observation (`observe_handshake = true`): what the access log
//! shows for TLS 1.2 and TLS 1.3 agents, alerts and who sent them, and that
//! following the handshake never changes a forwarded byte.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use passthru_tests::{Client, Lab, ProxyUnderTest, TlsBackend, within};

async fn observed_proxy(backend: std::net::SocketAddr) -> passthru_tests::proxy::RunningProxy {
    ProxyUnderTest::new()
        .listener_option("observe_handshake = true")
        .route(&["gw.example.com"], "gw")
        .backend("gw", &[backend])
        .spawn()
        .await
}

#[tokio::test]
async fn a_tls12_agent_is_logged_with_its_exact_certificate() {
    let lab = Lab::new();
    let mut backend = TlsBackend::new(&lab)
        .require_client_cert(&lab)
        .spawn()
        .await;
    let mut proxy = observed_proxy(backend.addr).await;
    let mut conn = within(
        "TLS 1.2 handshake",
        Client::new(&lab).tls12_only().connect(proxy.addr),
    )
    .await
    .unwrap();
    // Several MiB through the observed connection: every byte must come back.
    let data: Vec<u8> = (0..4 << 20)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let (mut r, mut w) = tokio::io::split(conn.stream);
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&sent).await.unwrap();
        w
    });
    let mut echoed = vec![0u8; data.len()];
    within("the echo", r.read_exact(&mut echoed)).await.unwrap();
    assert!(echoed == data, "observation changed the bytes");
    let w = writer.await.unwrap();
    conn.stream = r.unsplit(w);
    let _ = backend.next_seen().await;
    conn.stream.shutdown().await.unwrap();
    let mut rest = Vec::new();
    let _ = within("the close", conn.stream.read_to_end(&mut rest)).await;

    let record = proxy.next_record().await;
    let h = record.handshake.as_ref().expect("observed").report.clone();
    assert_eq!(h.version, Some("TLSv1.2"));
    assert_eq!(h.client_cert_requested, Some(true));
    let cert = h
        .client_cert
        .expect("the client certificate travels in clear in TLS 1.2");
    assert_eq!(cert.sha256, lab.pki.agent.sha256_hex());
    assert_eq!(cert.sha1, lab.pki.agent.sha1_hex());
    assert!(cert.subject.contains("agent-01"), "{}", cert.subject);
    assert_eq!(h.server_cert.unwrap().sha256, lab.pki.gateway.sha256_hex());
    assert!(h.completed);
    assert_eq!(h.alert, None);
    let line = record.to_text();
    assert!(
        line.contains(&format!(
            "client_cert_sha256={}",
            lab.pki.agent.sha256_hex()
        )),
        "{line}"
    );
    assert!(line.contains("hs=completed"), "{line}");
    let metrics = proxy.metrics.encode();
    assert!(
        metrics.contains("passthru_handshakes_total{listener=\"test\",backend=\"gw\",outcome=\"completed\",alert=\"\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("passthru_client_cert_expiry_days_count{backend=\"gw\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_rejected_tls12_certificate_shows_the_alert_and_its_sender() {
    let lab = Lab::new();
    let mut backend = TlsBackend::new(&lab)
        .require_client_cert(&lab)
        .spawn()
        .await;
    let mut proxy = observed_proxy(backend.addr).await;
    let client = Client::new(&lab)
        .tls12_only()
        .client_cert(Some(&lab.pki.agent_untrusted));
    let result = within("the refused handshake", client.connect(proxy.addr)).await;
    assert!(
        result.is_err(),
        "the gateway must refuse a certificate from an unknown CA"
    );
    let seen = backend.next_seen().await;
    assert!(seen.error.is_some());
    let record = proxy.next_record().await;
    let h = record.handshake.expect("observed").report;
    assert_eq!(
        h.alert,
        Some((passthru::observe::Side::Server, "unknown_ca".to_string()))
    );
    assert_eq!(
        h.client_cert.map(|c| c.sha256),
        Some(lab.pki.agent_untrusted.sha256_hex())
    );
    assert!(!h.completed);
}

#[tokio::test]
async fn a_tls13_agent_shows_version_and_completion_only() {
    let lab = Lab::new();
    let mut backend = TlsBackend::new(&lab)
        .require_client_cert(&lab)
        .spawn()
        .await;
    let mut proxy = observed_proxy(backend.addr).await;
    let mut conn = within("TLS 1.3 handshake", Client::new(&lab).connect(proxy.addr))
        .await
        .unwrap();
    conn.stream.write_all(b"ping").await.unwrap();
    let mut echo = [0u8; 4];
    within("the echo", conn.stream.read_exact(&mut echo))
        .await
        .unwrap();
    let _ = backend.next_seen().await;
    conn.stream.shutdown().await.unwrap();
    let mut rest = Vec::new();
    let _ = within("the close", conn.stream.read_to_end(&mut rest)).await;
    let record = proxy.next_record().await;
    let h = record.handshake.as_ref().expect("observed").report.clone();
    assert_eq!(h.version, Some("TLSv1.3"));
    assert!(h.certificates_encrypted);
    assert!(h.completed);
    assert_eq!(h.client_cert, None);
    let line = record.to_text();
    assert!(
        line.contains("certs=encrypted") && line.contains("hs_version=TLSv1.3"),
        "{line}"
    );
}

#[tokio::test]
async fn without_observation_nothing_is_logged_about_the_handshake() {
    let lab = Lab::new();
    let backend = TlsBackend::new(&lab)
        .require_client_cert(&lab)
        .spawn()
        .await;
    let mut proxy = ProxyUnderTest::new()
        .route(&["gw.example.com"], "gw")
        .backend("gw", &[backend.addr])
        .spawn()
        .await;
    let mut conn = within(
        "handshake",
        Client::new(&lab).tls12_only().connect(proxy.addr),
    )
    .await
    .unwrap();
    conn.stream.shutdown().await.unwrap();
    let mut rest = Vec::new();
    let _ = within("the close", conn.stream.read_to_end(&mut rest)).await;
    let record = proxy.next_record().await;
    assert!(record.handshake.is_none());
    assert!(!record.to_text().contains("client_cert_sha256"));
}
