//! Inbound CONNECT (`accept_connect = true`): agents that can only leave
//! through an HTTP proxy use passthru as that proxy. It answers only for
//! routed names, never inspects the tunnelled TLS, and refuses a ClientHello
//! whose SNI is not the CONNECT host.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Command;

use passthru_tests::wire::client_hello;
use passthru_tests::{Client, Lab, ProxyUnderTest, RawBackend, TlsBackend, within};

async fn connect_through(
    addr: std::net::SocketAddr,
    target: &str,
) -> (String, BufReader<TcpStream>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut reader = BufReader::new(tcp);
    reader
        .get_mut()
        .write_all(
            format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: agent\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut status = String::new();
    within("the CONNECT answer", reader.read_line(&mut status))
        .await
        .unwrap();
    (status.trim_end().to_string(), reader)
}

#[tokio::test]
async fn an_agent_reaches_the_gateway_through_passthru_as_its_proxy() {
    let lab = Lab::new();
    let mut backend = TlsBackend::new(&lab)
        .require_client_cert(&lab)
        .spawn()
        .await;
    let mut proxy = ProxyUnderTest::new()
        .listener_option("accept_connect = true")
        .route(&["gw.example.com"], "gw")
        .backend("gw", &[backend.addr])
        .spawn()
        .await;
    let (status, mut reader) = connect_through(proxy.addr, "gw.example.com:443").await;
    assert_eq!(status, "HTTP/1.1 200 Connection established");
    let mut blank = String::new();
    reader.read_line(&mut blank).await.unwrap();
    assert_eq!(blank, "\r\n");
    let tcp = reader.into_inner();
    let mut conn = within("TLS inside the tunnel", Client::new(&lab).handshake(tcp))
        .await
        .unwrap();
    assert_eq!(conn.server_cert_sha256, lab.pki.gateway.sha256_hex());
    conn.stream.write_all(b"ping").await.unwrap();
    let mut echo = [0u8; 4];
    within("the echo", conn.stream.read_exact(&mut echo))
        .await
        .unwrap();
    assert_eq!(&echo, b"ping");
    let seen = backend.next_seen().await;
    assert_eq!(
        seen.client_cert_sha256.as_deref(),
        Some(lab.pki.agent.sha256_hex().as_str())
    );
    conn.stream.shutdown().await.unwrap();
    let mut rest = Vec::new();
    let _ = within("the close", conn.stream.read_to_end(&mut rest)).await;
    let record = proxy.next_record().await;
    assert_eq!(record.outcome, "ok");
    assert_eq!(record.detail.as_deref(), Some("CONNECT gw.example.com:443"));
    assert_eq!(record.sni.as_deref(), Some("gw.example.com"));
}

#[tokio::test]
async fn curl_uses_passthru_as_its_https_proxy() {
    let lab = Lab::new();
    let backend = TlsBackend::new(&lab)
        .require_client_cert(&lab)
        .spawn()
        .await;
    let proxy = ProxyUnderTest::new()
        .listener_option("accept_connect = true")
        .route(&["gw.example.com"], "gw")
        .backend("gw", &[backend.addr])
        .spawn()
        .await;
    let output = within(
        "curl",
        Command::new("curl")
            .args(["-sS", "--max-time", "8", "--http1.1"])
            .arg("--proxy")
            .arg(format!("http://{}", proxy.addr))
            .arg("--cacert")
            .arg(lab.cert_file(&lab.pki.gateway))
            .arg("--cert")
            .arg(lab.chain_file(&lab.pki.agent))
            .arg("--key")
            .arg(lab.key_file(&lab.pki.agent))
            .arg("https://gw.example.com/agent/status")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("curl is not installed: run `make deps`");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "curl failed: {stderr}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("client-sha256={}", lab.pki.agent.sha256_hex())
    );
}

#[tokio::test]
async fn openssl_s_client_uses_passthru_as_its_proxy() {
    let lab = Lab::new();
    let backend = TlsBackend::new(&lab)
        .require_client_cert(&lab)
        .spawn()
        .await;
    let proxy = ProxyUnderTest::new()
        .listener_option("accept_connect = true")
        .route(&["gw.example.com"], "gw")
        .backend("gw", &[backend.addr])
        .spawn()
        .await;
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-brief",
            "-verify_return_error",
            "-connect",
            "gw.example.com:443",
        ])
        .arg("-proxy")
        .arg(proxy.addr.to_string())
        .arg("-CAfile")
        .arg(lab.cert_file(&lab.pki.gateway))
        .arg("-cert")
        .arg(lab.cert_file(&lab.pki.agent))
        .arg("-cert_chain")
        .arg(lab.cert_file(&lab.pki.agent_ca))
        .arg("-key")
        .arg(lab.key_file(&lab.pki.agent))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"hello through the front\n").await.unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut echo = String::new();
    within("the echo through the tunnel", out.read_line(&mut echo))
        .await
        .unwrap();
    assert_eq!(echo, "hello through the front\n");
    drop(stdin);
    let mut err = String::new();
    let _ = within(
        "s_client to finish",
        child.stderr.take().unwrap().read_to_string(&mut err),
    )
    .await;
    assert!(err.contains("Verification: OK"), "{err}");
}

/// The CONNECT head is bounded by bytes (16 KiB), not by a count of header
/// lines: 100 header lines (HAProxy allows 101) are answered 200.
#[tokio::test]
async fn a_connect_head_with_a_hundred_header_lines_is_accepted() {
    let raw = RawBackend::spawn("gw").await;
    let proxy = ProxyUnderTest::new()
        .listener_option("accept_connect = true")
        .route(&["gw.example.com"], "gw")
        .backend("gw", &[raw.addr])
        .spawn()
        .await;
    let mut head = String::from("CONNECT gw.example.com:443 HTTP/1.1\r\n");
    for i in 0..100 {
        head.push_str(&format!("X-Agent-{i}: yes\r\n"));
    }
    head.push_str("\r\n");
    let tcp = TcpStream::connect(proxy.addr).await.unwrap();
    let mut reader = BufReader::new(tcp);
    reader.get_mut().write_all(head.as_bytes()).await.unwrap();
    let mut status = String::new();
    within("the CONNECT answer", reader.read_line(&mut status))
        .await
        .unwrap();
    assert_eq!(status.trim_end(), "HTTP/1.1 200 Connection established");
}

#[tokio::test]
async fn connect_to_an_unrouted_name_gets_403() {
    let raw = RawBackend::spawn("gw").await;
    let mut proxy = ProxyUnderTest::new()
        .listener_option("accept_connect = true")
        .route(&["gw.example.com"], "gw")
        .default_backend("gw")
        .backend("gw", &[raw.addr])
        .spawn()
        .await;
    let (status, mut reader) = connect_through(proxy.addr, "intranet.example.com:443").await;
    assert_eq!(status, "HTTP/1.1 403 Forbidden");
    let mut rest = String::new();
    within("the 403 body", reader.read_to_string(&mut rest))
        .await
        .unwrap();
    assert!(rest.contains("no route for intranet.example.com"), "{rest}");
    let record = proxy.next_record().await;
    assert_eq!(record.outcome, "no_route");
}

#[tokio::test]
async fn a_tunnelled_hello_for_another_name_is_refused() {
    let mut raw = RawBackend::spawn("gw").await;
    let mut proxy = ProxyUnderTest::new()
        .listener_option("accept_connect = true")
        .route(&["gw.example.com", "other.example.com"], "gw")
        .backend("gw", &[raw.addr])
        .spawn()
        .await;
    let (status, mut reader) = connect_through(proxy.addr, "gw.example.com:443").await;
    assert_eq!(status, "HTTP/1.1 200 Connection established");
    let mut blank = String::new();
    reader.read_line(&mut blank).await.unwrap();
    let mut tcp = reader.into_inner();
    tcp.write_all(&client_hello(Some("other.example.com"), &[]))
        .await
        .unwrap();
    let mut reply = Vec::new();
    within("the refusal", tcp.read_to_end(&mut reply))
        .await
        .unwrap();
    assert_eq!(reply, [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 112]);
    let record = proxy.next_record().await;
    assert_eq!(record.outcome, "connect_sni_mismatch");
    assert!(raw.try_next_conn().is_none());
}

#[tokio::test]
async fn oversized_and_stalled_connect_requests_are_refused_within_bounds() {
    let raw = RawBackend::spawn("gw").await;
    let mut proxy = ProxyUnderTest::new()
        .listener_option("accept_connect = true")
        .listener_option("client_hello_timeout = \"500ms\"")
        .route(&["gw.example.com"], "gw")
        .backend("gw", &[raw.addr])
        .spawn()
        .await;
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    let big = format!(
        "CONNECT gw.example.com:443 HTTP/1.1\r\nX-Filler: {}\r\n\r\n",
        "a".repeat(17 * 1024)
    );
    let _ = tcp.write_all(big.as_bytes()).await;
    let mut reply = Vec::new();
    let _ = within("the 400", tcp.read_to_end(&mut reply)).await;
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 400 Bad Request"), "{reply}");
    assert!(reply.contains("larger than 16 KiB"), "{reply}");
    assert_eq!(proxy.next_record().await.outcome, "plaintext_http");

    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    tcp.write_all(b"CONNECT gw.example.com:443 HTTP/1.1\r\nHost: gw")
        .await
        .unwrap();
    let mut reply = Vec::new();
    within(
        "the stalled CONNECT to be closed",
        tcp.read_to_end(&mut reply),
    )
    .await
    .unwrap();
    assert!(reply.is_empty());
    assert_eq!(proxy.next_record().await.outcome, "client_hello_timeout");
}

#[tokio::test]
async fn plain_http_on_a_connect_listener_still_gets_the_400() {
    let raw = RawBackend::spawn("gw").await;
    let proxy = ProxyUnderTest::new()
        .listener_option("accept_connect = true")
        .route(&["gw.example.com"], "gw")
        .backend("gw", &[raw.addr])
        .spawn()
        .await;
    let reply =
        crate::send_and_read_to_end(proxy.addr, b"GET / HTTP/1.1\r\nHost: gw\r\n\r\n").await;
    assert!(String::from_utf8_lossy(&reply).starts_with("HTTP/1.1 400 Bad Request"));
}
