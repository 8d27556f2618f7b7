//! PROXY protocol in from the balancer and out to the servers: real HAProxy
//! in front, hand-built headers split at every byte, the trust rule, and
//! the header passthru writes to a server.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;

use passthru::proxy_protocol::{self, ProxyHeader};
use passthru_tests::wire::client_hello;
use passthru_tests::{Client, Lab, ProxyUnderTest, RawBackend, TlsBackend, within};

use crate::hello_then_line;

fn v1_tcp4() -> Vec<u8> {
    b"PROXY TCP4 192.0.2.7 198.51.100.1 50000 443\r\n".to_vec()
}

fn trusted_any() -> ProxyUnderTest {
    ProxyUnderTest::new()
        .listener_option("proxy_protocol = \"any\"")
        .listener_option("trusted_proxies = [\"127.0.0.0/8\", \"::1\"]")
        .route(&["gw.example.com"], "gw")
}

#[tokio::test]
async fn headers_of_both_versions_set_the_client_address() {
    let mut gw = RawBackend::spawn("gw").await;
    let mut proxy = trusted_any().backend("gw", &[gw.addr]).spawn().await;
    let v6_src: SocketAddr = "[2001:db8::7]:50001".parse().unwrap();
    let v6_dst: SocketAddr = "[2001:db8::1]:443".parse().unwrap();
    let v4_src: SocketAddr = "192.0.2.9:40000".parse().unwrap();
    let cases: Vec<(Vec<u8>, Option<SocketAddr>)> = vec![
        (v1_tcp4(), Some("192.0.2.7:50000".parse().unwrap())),
        (
            b"PROXY TCP6 2001:db8::7 2001:db8::1 50001 443\r\n".to_vec(),
            Some(v6_src),
        ),
        (b"PROXY UNKNOWN\r\n".to_vec(), None),
        (
            proxy_protocol::encode_v2(
                v4_src,
                "198.51.100.1:443".parse().unwrap(),
                Some("gw.example.com"),
            ),
            Some(v4_src),
        ),
        (
            proxy_protocol::encode_v2(v6_src, v6_dst, None),
            Some(v6_src),
        ),
        (proxy_protocol::encode_v2_local(), None),
    ];
    let hello = client_hello(Some("gw.example.com"), &[]);
    for (header, client) in cases {
        let mut bytes = header.clone();
        bytes.extend_from_slice(&hello);
        let (name, mut conn) = hello_then_line(proxy.addr, &bytes).await;
        assert_eq!(name, "gw");
        let local = conn.get_ref().local_addr().unwrap();
        conn.get_mut().shutdown().await.unwrap();
        // The balancer's header is consumed, not forwarded.
        assert_eq!(gw.next_conn().await.received, hello);
        let record = proxy.next_record().await;
        assert_eq!(record.outcome, "ok");
        assert_eq!(record.peer, local);
        assert_eq!(
            record.client,
            client.unwrap_or(local),
            "{:?}",
            String::from_utf8_lossy(&header)
        );
    }
}

#[tokio::test]
async fn a_header_split_at_every_byte_is_read() {
    let mut gw = RawBackend::spawn("gw").await;
    let mut proxy = trusted_any().backend("gw", &[gw.addr]).spawn().await;
    let hello = client_hello(Some("gw.example.com"), &[]);
    let v2 = proxy_protocol::encode_v2(
        "[2001:db8::7]:50001".parse().unwrap(),
        "[2001:db8::1]:443".parse().unwrap(),
        Some("gw.example.com"),
    );
    for header in [v1_tcp4(), v2] {
        for split in 1..header.len() {
            let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
            tcp.set_nodelay(true).unwrap();
            tcp.write_all(&header[..split]).await.unwrap();
            tcp.flush().await.unwrap();
            let mut rest = header[split..].to_vec();
            rest.extend_from_slice(&hello);
            tcp.write_all(&rest).await.unwrap();
            let mut greeting = [0u8; 3];
            within("the routed greeting", tcp.read_exact(&mut greeting))
                .await
                .unwrap();
            assert_eq!(&greeting, b"gw\n", "split at {split}");
            tcp.shutdown().await.unwrap();
            assert_eq!(gw.next_conn().await.received, hello, "split at {split}");
            let record = proxy.next_record().await;
            assert_ne!(record.client, record.peer, "split at {split}");
        }
    }
}

#[tokio::test]
async fn the_same_header_is_refused_from_an_untrusted_peer() {
    let gw = RawBackend::spawn("gw").await;
    let mut bytes = v1_tcp4();
    bytes.extend_from_slice(&client_hello(Some("gw.example.com"), &[]));
    let mut untrusting = ProxyUnderTest::new()
        .listener_option("proxy_protocol = \"v1\"")
        .listener_option("trusted_proxies = [\"10.0.0.0/8\"]")
        .route(&["gw.example.com"], "gw")
        .backend("gw", &[gw.addr])
        .spawn()
        .await;
    let reply = crate::send_and_read_to_end(untrusting.addr, &bytes).await;
    assert!(reply.is_empty());
    let record = untrusting.next_record().await;
    assert_eq!(record.outcome, "proxy_header_untrusted");
    assert_eq!(
        record.client, record.peer,
        "an untrusted claim must not change the client address"
    );

    let mut trusting = ProxyUnderTest::new()
        .listener_option("proxy_protocol = \"v1\"")
        .listener_option("trusted_proxies = [\"10.0.0.0/8\", \"127.0.0.1\"]")
        .route(&["gw.example.com"], "gw")
        .backend("gw", &[gw.addr])
        .spawn()
        .await;
    let (name, mut conn) = hello_then_line(trusting.addr, &bytes).await;
    assert_eq!(name, "gw");
    conn.get_mut().shutdown().await.unwrap();
    let record = trusting.next_record().await;
    assert_eq!(record.client, "192.0.2.7:50000".parse().unwrap());
}

#[tokio::test]
async fn wrong_missing_and_malformed_headers_are_refused() {
    let mut gw = RawBackend::spawn("gw").await;
    let hello = client_hello(Some("gw.example.com"), &[]);
    let v2 = proxy_protocol::encode_v2(
        "192.0.2.7:1".parse().unwrap(),
        "192.0.2.8:2".parse().unwrap(),
        None,
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "v1",
            [v2.clone(), hello.clone()].concat(),
            "a v2 header on a v1 listener",
        ),
        (
            "v2",
            [v1_tcp4(), hello.clone()].concat(),
            "a v1 header on a v2 listener",
        ),
        ("any", hello.clone(), "no header at all"),
        (
            "any",
            [
                b"PROXY TCP4 192.0.2.7 198.51.100.1 +50000 443\r\n".to_vec(),
                hello.clone(),
            ]
            .concat(),
            "a signed port",
        ),
        (
            "any",
            [
                b"PROXY TCP4 2001:db8::1 198.51.100.1 1 2\r\n".to_vec(),
                hello.clone(),
            ]
            .concat(),
            "a v6 address in TCP4",
        ),
        (
            "any",
            b"PROXY TCP4 192.0.2.7 198.51".to_vec(),
            "half a header, then a close",
        ),
        ("any", v2[..20].to_vec(), "half a v2 header, then a close"),
    ];
    for (mode, bytes, what) in cases {
        let mut proxy = ProxyUnderTest::new()
            .listener_option(&format!("proxy_protocol = \"{mode}\""))
            .listener_option("trusted_proxies = [\"127.0.0.1\"]")
            .route(&["gw.example.com"], "gw")
            .backend("gw", &[gw.addr])
            .spawn()
            .await;
        let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
        tcp.write_all(&bytes).await.unwrap();
        tcp.shutdown().await.unwrap();
        let mut reply = Vec::new();
        let _ = within(what, tcp.read_to_end(&mut reply)).await;
        assert!(reply.is_empty(), "{what}: {reply:?}");
        assert_eq!(
            proxy.next_record().await.outcome,
            "proxy_header_invalid",
            "{what}"
        );
    }
    assert!(gw.try_next_conn().is_none(), "nothing may reach a backend");
}

/// A server that parses the PROXY header passthru sends, then reports it.
async fn header_reporting_server() -> (SocketAddr, oneshot::Receiver<(ProxyHeader, Vec<u8>)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        let header = loop {
            let n = tcp.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed before a whole header");
            buf.extend_from_slice(&chunk[..n]);
            match proxy_protocol::parse(&buf) {
                Ok(h) => break h,
                Err(proxy_protocol::Error::Incomplete { .. }) => continue,
                Err(e) => panic!("passthru sent a bad header: {e}"),
            }
        };
        let rest = buf[header.len..].to_vec();
        let _ = tcp.write_all(b"ok\n").await;
        let _ = tx.send((header, rest));
        let _ = tcp.read(&mut chunk).await;
    });
    (addr, rx)
}

#[tokio::test]
async fn servers_get_the_client_address_and_the_sni_in_the_header() {
    for version in ["v1", "v2"] {
        let (server, reported) = header_reporting_server().await;
        let proxy = ProxyUnderTest::new()
            .route(&["gw.example.com"], "gw")
            .backend_with(
                "gw",
                &[server.to_string()],
                &[&format!("send_proxy_protocol = \"{version}\"")],
            )
            .spawn()
            .await;
        let hello = client_hello(Some("gw.example.com"), &["h2"]);
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.23:0".parse().unwrap()).unwrap();
        let mut tcp = socket.connect(proxy.addr).await.unwrap();
        let me = tcp.local_addr().unwrap();
        tcp.write_all(&hello).await.unwrap();
        let (header, rest) = within("the server's report", reported).await.unwrap();
        assert!(header.proxied, "{version}");
        assert_eq!(header.source, Some(me), "{version}");
        assert_eq!(header.destination, Some(proxy.addr), "{version}");
        assert_eq!(
            rest, hello,
            "{version}: the ClientHello must follow the header unchanged"
        );
        let authority = if version == "v2" {
            Some("gw.example.com".to_string())
        } else {
            None
        };
        assert_eq!(header.authority, authority);
    }
}

#[tokio::test]
async fn ipv6_listener_in_and_out() {
    let (server, reported) = header_reporting_server().await;
    let Ok(probe) = TcpListener::bind("[::1]:0").await else {
        eprintln!("no IPv6 loopback here; skipping");
        return;
    };
    drop(probe);
    let proxy = ProxyUnderTest::new()
        .bind("[::1]:0")
        .listener_option("proxy_protocol = \"v2\"")
        .listener_option("trusted_proxies = [\"::1/128\"]")
        .route(&["gw.example.com"], "gw")
        .backend_with(
            "gw",
            &[server.to_string()],
            &["send_proxy_protocol = \"v1\""],
        )
        .spawn()
        .await;
    assert!(proxy.addr.is_ipv6());
    let src: SocketAddr = "[2001:db8::42]:40404".parse().unwrap();
    let mut bytes = proxy_protocol::encode_v2(src, "[2001:db8::1]:443".parse().unwrap(), None);
    let hello = client_hello(Some("gw.example.com"), &[]);
    bytes.extend_from_slice(&hello);
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    tcp.write_all(&bytes).await.unwrap();
    let (header, rest) = within("the server's report", reported).await.unwrap();
    assert_eq!(header.source, Some(src));
    assert_eq!(header.destination, Some(proxy.addr));
    assert_eq!(rest, hello);
}

#[tokio::test]
async fn haproxy_send_proxy_v2_in_front_keeps_the_agent_address_and_certificate() {
    let lab = Lab::new();
    let mut backend = TlsBackend::new(&lab)
        .require_client_cert(&lab)
        .spawn()
        .await;
    let mut proxy = ProxyUnderTest::new()
        .listener_option("proxy_protocol = \"v2\"")
        .listener_option("trusted_proxies = [\"127.0.0.1/32\"]")
        .route(&["gw.example.com"], "gw")
        .backend("gw", &[backend.addr])
        .spawn()
        .await;
    let dir = tempfile::tempdir().unwrap();
    // HAProxy cannot report a kernel-chosen port: take a free one.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = format!(
        "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
         frontend fe\n  bind 127.0.0.1:{port}\n  default_backend be\n\
         backend be\n  server passthru {} send-proxy-v2\n",
        proxy.addr
    );
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(&path, conf).unwrap();
    let _haproxy = tokio::process::Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("haproxy is not installed: run `make deps`");
    let front: SocketAddr = ([127, 0, 0, 1], port).into();
    // Wait for HAProxy to listen: the handshake itself is the probe.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut conn = loop {
        match Client::new(&lab)
            .source([127, 0, 0, 23].into())
            .connect(front)
            .await
        {
            Ok(conn) => break conn,
            Err(e) if tokio::time::Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("no handshake through HAProxy: {e}"),
        }
    };
    assert_eq!(conn.server_cert_sha256, lab.pki.gateway.sha256_hex());
    conn.stream.write_all(b"ping").await.unwrap();
    let mut echo = [0u8; 4];
    within("the echo", conn.stream.read_exact(&mut echo))
        .await
        .unwrap();
    let seen = backend.next_seen().await;
    assert_eq!(
        seen.client_cert_sha256.as_deref(),
        Some(lab.pki.agent.sha256_hex().as_str())
    );
    conn.stream.shutdown().await.unwrap();
    let mut rest = Vec::new();
    let _ = within("the close", conn.stream.read_to_end(&mut rest)).await;
    let record = loop {
        let r = proxy.next_record().await;
        if r.outcome == "ok" {
            break r;
        }
    };
    assert_eq!(
        record.client.ip().to_string(),
        "127.0.0.23",
        "the agent's address from the header"
    );
    assert_eq!(
        record.peer.ip().to_string(),
        "127.0.0.1",
        "the balancer is the peer"
    );
}
