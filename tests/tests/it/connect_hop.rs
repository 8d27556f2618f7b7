//! The upstream CONNECT hop (`via`): exact request bytes, nothing sent
//! before the answer, bytes after the answer reach the client, every
//! failure mode fails the server with its reason, and real tinyproxy with
//! and without credentials.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use passthru_tests::hop::{FakeHop, HopScript, Tinyproxy};
use passthru_tests::wire::client_hello;
use passthru_tests::{Client, Lab, ProxyUnderTest, RawBackend, TlsBackend, within};

use crate::send_and_read_to_end;

const INTERNAL_ERROR: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 80];

#[tokio::test]
async fn the_hop_gets_the_exact_request_and_its_extra_bytes_reach_the_client() {
    let mut raw = RawBackend::spawn("behind-hop").await;
    let mut hop = FakeHop::spawn(HopScript::Tunnel(
        b"HTTP/1.1 200 Connection established\r\n\r\nEXTRA".to_vec(),
    ))
    .await;
    let mut proxy = ProxyUnderTest::new()
        .route(&["gw.example.com"], "gw")
        .backend_with(
            "gw",
            &[raw.addr.to_string()],
            &[&format!("via = \"http://agent:s%3Acret@{}\"", hop.addr)],
        )
        .spawn()
        .await;
    let hello = client_hello(Some("gw.example.com"), &[]);
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    tcp.write_all(&hello).await.unwrap();
    // The hop's extra bytes come first, then the server's greeting.
    let mut got = vec![0u8; 5 + "behind-hop\n".len()];
    within("bytes through the tunnel", tcp.read_exact(&mut got))
        .await
        .unwrap();
    assert_eq!(got, b"EXTRAbehind-hop\n");

    let request = hop.next_request().await;
    let expected = format!(
        "CONNECT {0} HTTP/1.1\r\nHost: {0}\r\nProxy-Authorization: Basic YWdlbnQ6czpjcmV0\r\n\r\n",
        raw.addr
    );
    assert_eq!(String::from_utf8(request.head).unwrap(), expected);
    assert!(
        request.early.is_empty(),
        "bytes were sent before the hop answered: {:?}",
        request.early
    );

    tcp.shutdown().await.unwrap();
    assert_eq!(
        raw.next_conn().await.received,
        hello,
        "the ClientHello must go through the tunnel unchanged"
    );
    let mut rest = Vec::new();
    within("the close", tcp.read_to_end(&mut rest))
        .await
        .unwrap();
    let record = proxy.next_record().await;
    assert_eq!(record.via, Some(hop.addr.to_string()));
    assert_eq!(record.outcome, "ok");
    assert_eq!(
        record.bytes_down,
        (5 + "behind-hop\n".len() + hello.len()) as u64
    );
    let line = record.to_text();
    assert!(
        !line.contains("s%3Acret") && !line.contains("s:cret") && !line.contains("agent"),
        "{line}"
    );
}

#[tokio::test]
async fn hop_failures_fail_the_server_with_their_reason() {
    let raw = RawBackend::spawn("unreachable").await;
    let big = format!(
        "HTTP/1.1 200 OK\r\nX-Filler: {}\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    let cases: Vec<(HopScript, &str)> = vec![
        (
            HopScript::Refuse(
                b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n"
                    .to_vec(),
            ),
            "refused: HTTP/1.1 407 Proxy Authentication Required",
        ),
        (
            HopScript::Refuse(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n".to_vec(),
            ),
            "refused: HTTP/1.1 503 Service Unavailable",
        ),
        (
            HopScript::Refuse(b"SSH-2.0-OpenSSH_9.2\r\n\r\n".to_vec()),
            "is not HTTP",
        ),
        (HopScript::Refuse(big.into_bytes()), "larger than 16 KiB"),
        (
            HopScript::Refuse(Vec::new()),
            "closed the connection before answering",
        ),
        (HopScript::Silence, "no answer within 500ms"),
    ];
    for (script, reason) in cases {
        let hop = FakeHop::spawn(script).await;
        let mut proxy = ProxyUnderTest::new()
            .route(&["gw.example.com"], "gw")
            .backend_with(
                "gw",
                &[raw.addr.to_string()],
                &[
                    &format!("via = \"http://{}\"", hop.addr),
                    "connect_timeout = \"500ms\"",
                ],
            )
            .spawn()
            .await;
        let reply =
            send_and_read_to_end(proxy.addr, &client_hello(Some("gw.example.com"), &[])).await;
        assert_eq!(reply, INTERNAL_ERROR, "{reason}");
        let record = proxy.next_record().await;
        assert_eq!(record.outcome, "upstream_unavailable", "{reason}");
        let detail = record.detail.unwrap_or_default();
        assert!(detail.contains(reason), "expected {reason:?} in {detail:?}");
        assert!(
            detail.contains(&format!("CONNECT via http://{}", hop.addr)),
            "{detail}"
        );
    }
}

#[tokio::test]
async fn the_next_server_is_tried_after_a_refusing_hop_answer() {
    // Two servers behind one hop that refuses the first target only.
    let mut good = RawBackend::spawn("good").await;
    let hop = FakeHop::spawn(HopScript::Tunnel(b"HTTP/1.1 200 OK\r\n\r\n".to_vec())).await;
    let dead = crate::dead_addr().await;
    let mut proxy = ProxyUnderTest::new()
        .route(&["gw.example.com"], "gw")
        .backend_with(
            "gw",
            &[dead.to_string(), good.addr.to_string()],
            &[&format!("via = \"http://{}\"", hop.addr)],
        )
        .spawn()
        .await;
    let hello = client_hello(Some("gw.example.com"), &[]);
    let (name, mut conn) = crate::hello_then_line(proxy.addr, &hello).await;
    assert_eq!(name, "good");
    conn.get_mut().shutdown().await.unwrap();
    assert_eq!(good.next_conn().await.received, hello);
    assert_eq!(
        proxy.next_record().await.server.as_deref(),
        Some(good.addr.to_string().as_str())
    );
}

#[tokio::test]
async fn mutual_tls_through_tinyproxy_with_credentials() {
    let lab = Lab::new();
    let mut backend = TlsBackend::new(&lab)
        .require_client_cert(&lab)
        .spawn()
        .await;
    let tiny = Tinyproxy::start(backend.addr.port(), Some(("agent", "s3cret"))).await;
    let mut proxy = ProxyUnderTest::new()
        .route(&["gw.example.com"], "gw")
        .backend_with(
            "gw",
            &[backend.addr.to_string()],
            &[
                &format!("via = \"http://agent:s3cret@{}\"", tiny.addr),
                "tcp_keepalive = \"5s\"",
            ],
        )
        .spawn()
        .await;
    let mut conn = within(
        "handshake through passthru and tinyproxy",
        Client::new(&lab).connect(proxy.addr),
    )
    .await
    .unwrap();
    assert_eq!(conn.server_cert_sha256, lab.pki.gateway.sha256_hex());
    let seen = backend.next_seen().await;
    assert_eq!(
        seen.client_cert_sha256.as_deref(),
        Some(lab.pki.agent.sha256_hex().as_str())
    );
    // A persistent connection: several exchanges, with a pause between them.
    for round in 0..3u8 {
        let msg = [b'm', round];
        conn.stream.write_all(&msg).await.unwrap();
        let mut echo = [0u8; 2];
        within("the echo", conn.stream.read_exact(&mut echo))
            .await
            .unwrap();
        assert_eq!(echo, msg);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Keepalive probes are armed on both of passthru's sockets: toward the
    // agent (listener tcp_keepalive, 60s by default) and toward the hop (5s).
    let ss = within(
        "ss",
        tokio::process::Command::new("ss")
            .args(["-tnoH", "state", "established"])
            .output(),
    )
    .await
    .expect("ss (iproute2) is not installed");
    let ss = String::from_utf8_lossy(&ss.stdout);
    // Columns: Recv-Q Send-Q Local Peer [timer].
    let socket = |local: Option<String>, peer: Option<String>| {
        ss.lines().find(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.len() >= 4
                && local.as_deref().is_none_or(|a| cols[2] == a)
                && peer.as_deref().is_none_or(|a| cols[3] == a)
        })
    };
    let hop_side = socket(None, Some(tiny.addr.to_string()));
    assert!(
        hop_side.is_some_and(|l| l.contains("timer:(keepalive")),
        "no keepalive toward the hop:\n{ss}"
    );
    let client_side = socket(Some(proxy.addr.to_string()), None);
    assert!(
        client_side.is_some_and(|l| l.contains("timer:(keepalive")),
        "no keepalive toward the agent:\n{ss}"
    );

    conn.stream.shutdown().await.unwrap();
    let mut rest = Vec::new();
    let _ = within("the close", conn.stream.read_to_end(&mut rest)).await;
    let record = proxy.next_record().await;
    assert_eq!(record.via, Some(tiny.addr.to_string()));
    assert_eq!(record.outcome, "ok");
}

#[tokio::test]
async fn tinyproxy_refusals_reach_the_log_and_the_client_gets_an_alert() {
    let raw = RawBackend::spawn("never").await;
    let tiny = Tinyproxy::start(raw.addr.port(), Some(("agent", "s3cret"))).await;
    let other_port = crate::dead_addr().await.port();
    let cases = [
        (
            format!("http://agent:wrong@{}", tiny.addr),
            raw.addr.port(),
            "401",
        ),
        (format!("http://{}", tiny.addr), raw.addr.port(), "407"),
        (
            format!("http://agent:s3cret@{}", tiny.addr),
            other_port,
            "403",
        ),
    ];
    for (via, port, status) in cases {
        let mut proxy = ProxyUnderTest::new()
            .route(&["gw.example.com"], "gw")
            .backend_with(
                "gw",
                &[format!("127.0.0.1:{port}")],
                &[&format!("via = \"{via}\"")],
            )
            .spawn()
            .await;
        let reply =
            send_and_read_to_end(proxy.addr, &client_hello(Some("gw.example.com"), &[])).await;
        assert_eq!(reply, INTERNAL_ERROR, "{status}");
        let record = proxy.next_record().await;
        assert_eq!(record.outcome, "upstream_unavailable");
        let detail = record.detail.unwrap_or_default();
        assert!(
            detail.contains(&format!(" {status} ")),
            "expected {status} in {detail}"
        );
        assert!(
            !detail.contains("wrong") && !detail.contains("s3cret"),
            "credentials leaked: {detail}"
        );
    }
}

#[tokio::test]
async fn an_open_tinyproxy_tunnels_without_credentials() {
    let mut raw = RawBackend::spawn("through-open-proxy").await;
    let tiny = Tinyproxy::start(raw.addr.port(), None).await;
    let mut proxy = ProxyUnderTest::new()
        .route(&["gw.example.com"], "gw")
        .backend_with(
            "gw",
            &[raw.addr.to_string()],
            &[&format!("via = \"http://{}\"", tiny.addr)],
        )
        .spawn()
        .await;
    let hello = client_hello(Some("gw.example.com"), &[]);
    let (name, mut conn) = crate::hello_then_line(proxy.addr, &hello).await;
    assert_eq!(name, "through-open-proxy");
    conn.get_mut().shutdown().await.unwrap();
    assert_eq!(raw.next_conn().await.received, hello);
    assert_eq!(proxy.next_record().await.via, Some(tiny.addr.to_string()));
}

/// The hop's answer is bounded by bytes (16 KiB), not by a count of header
/// lines: a 200 with 100 header lines opens the tunnel.
#[tokio::test]
async fn a_hop_answer_with_a_hundred_header_lines_opens_the_tunnel() {
    let raw = RawBackend::spawn("behind-hop").await;
    let mut answer = b"HTTP/1.1 200 Connection established\r\n".to_vec();
    for i in 0..100 {
        answer.extend_from_slice(format!("X-Hop-{i}: yes\r\n").as_bytes());
    }
    answer.extend_from_slice(b"\r\n");
    let hop = FakeHop::spawn(HopScript::Tunnel(answer)).await;
    let proxy = ProxyUnderTest::new()
        .route(&["gw.example.com"], "gw")
        .backend_with(
            "gw",
            &[raw.addr.to_string()],
            &[&format!("via = \"http://{}\"", hop.addr)],
        )
        .spawn()
        .await;
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    tcp.write_all(&client_hello(Some("gw.example.com"), &[]))
        .await
        .unwrap();
    let mut got = vec![0u8; "behind-hop\n".len()];
    within("bytes through the tunnel", tcp.read_exact(&mut got))
        .await
        .unwrap();
    assert_eq!(got, b"behind-hop\n");
}
