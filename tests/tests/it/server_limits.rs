//! Server limits, the backend queue and the per-client limit, end to end:
//! a server that counts what it accepts, clients that send exact
//! ClientHellos, the gauges and the refusals on the wire.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;

use passthru::proxy_protocol;
use passthru_tests::wire::client_hello_padded;
use passthru_tests::{ProxyUnderTest, RawBackend, eventually, within};

use crate::hello_then_line;

/// The `internal_error` alert record passthru answers a TLS 1.2+ hello with.
const INTERNAL_ERROR: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 80];

/// A server that hands every accepted connection to the test.
async fn counting_server() -> (SocketAddr, mpsc::UnboundedReceiver<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            if tx.send(tcp).is_err() {
                return;
            }
        }
    });
    (addr, rx)
}

/// A distinct ClientHello per client (the padding tells them apart).
fn hello(n: usize) -> Vec<u8> {
    client_hello_padded(Some("gw.example.com"), &[], 16 + n)
}

async fn send(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    tcp.write_all(bytes).await.unwrap();
    tcp
}

/// The bytes of the next accepted connection's first `len` bytes.
async fn accepted(
    server: &mut mpsc::UnboundedReceiver<TcpStream>,
    len: usize,
) -> (TcpStream, Vec<u8>) {
    let mut tcp = within("the server to accept a connection", server.recv())
        .await
        .unwrap();
    let mut got = vec![0u8; len];
    within("the ClientHello at the server", tcp.read_exact(&mut got))
        .await
        .unwrap();
    (tcp, got)
}

async fn read_to_end(tcp: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = within("the proxy to close", tcp.read_to_end(&mut out)).await;
    out
}

fn gauge_is(proxy: &passthru_tests::proxy::RunningProxy, line: &str) -> Option<()> {
    proxy
        .metrics
        .encode()
        .lines()
        .any(|l| l == line)
        .then_some(())
}

async fn wait_gauge(proxy: &passthru_tests::proxy::RunningProxy, line: &str) {
    eventually(
        Duration::from_secs(10),
        || gauge_is(proxy, line),
        &format!("metrics never showed `{line}`"),
    )
    .await;
}

#[tokio::test]
async fn two_served_two_queued_the_fifth_refused_and_the_oldest_waiter_goes_next() {
    let (addr, mut server) = counting_server().await;
    let mut proxy = ProxyUnderTest::new()
        .route(&["gw.example.com"], "gw")
        .backend_with(
            "gw",
            &[addr.to_string()],
            &["max_connections_per_server = 2", "max_queue = 2"],
        )
        .spawn()
        .await;
    let server_line = format!("passthru_backend_server_active{{backend=\"gw\",server=\"{addr}\"}}");

    let mut first = send(proxy.addr, &hello(1)).await;
    let (mut up1, got) = accepted(&mut server, hello(1).len()).await;
    assert_eq!(got, hello(1));
    let _second = send(proxy.addr, &hello(2)).await;
    let (_up2, got) = accepted(&mut server, hello(2).len()).await;
    assert_eq!(got, hello(2));

    let mut third = send(proxy.addr, &hello(3)).await;
    wait_gauge(&proxy, "passthru_backend_queue{backend=\"gw\"} 1").await;
    let mut fourth = send(proxy.addr, &hello(4)).await;
    wait_gauge(&proxy, "passthru_backend_queue{backend=\"gw\"} 2").await;
    wait_gauge(&proxy, &format!("{server_line} 2")).await;
    assert!(
        server.try_recv().is_err(),
        "the server sees two connections, not the queued ones"
    );

    // The fifth finds the queue full: internal_error, then the close.
    let mut fifth = send(proxy.addr, &hello(5)).await;
    assert_eq!(read_to_end(&mut fifth).await, INTERNAL_ERROR);
    assert_eq!(proxy.next_record().await.outcome, "queue_full");
    assert!(
        proxy
            .metrics
            .encode()
            .contains("passthru_refused_total{listener=\"test\",reason=\"queue_full\"} 1")
    );

    // The first connection ends: its slot goes to the oldest waiter, whose
    // ClientHello reaches the server byte for byte.
    first.shutdown().await.unwrap();
    let mut rest = Vec::new();
    up1.read_to_end(&mut rest).await.unwrap();
    drop(up1);
    let _ = read_to_end(&mut first).await;
    assert_eq!(proxy.next_record().await.outcome, "ok");
    let (mut up3, got) = accepted(&mut server, hello(3).len()).await;
    assert_eq!(got, hello(3), "the oldest waiter, byte for byte");
    wait_gauge(&proxy, "passthru_backend_queue{backend=\"gw\"} 1").await;
    wait_gauge(&proxy, &format!("{server_line} 2")).await;
    // The connection it got is a normal one.
    up3.write_all(b"to third").await.unwrap();
    let mut buf = [0u8; 8];
    within("bytes from the server", third.read_exact(&mut buf))
        .await
        .unwrap();
    assert_eq!(&buf, b"to third");

    // The fourth leaves while queued: it leaves the queue at once and the
    // server never sees it.
    fourth.shutdown().await.unwrap();
    wait_gauge(&proxy, "passthru_backend_queue{backend=\"gw\"} 0").await;
    assert_eq!(proxy.next_record().await.outcome, "client_closed");
    wait_gauge(&proxy, &format!("{server_line} 2")).await;
    assert!(server.try_recv().is_err());
    assert!(
        proxy
            .metrics
            .encode()
            .contains("passthru_queue_wait_seconds_count{backend=\"gw\"} 1"),
        "one wait ended with a slot"
    );
}

#[tokio::test]
async fn a_waiter_is_refused_at_queue_timeout_with_internal_error() {
    let (addr, mut server) = counting_server().await;
    let mut proxy = ProxyUnderTest::new()
        .route(&["gw.example.com"], "gw")
        .backend_with(
            "gw",
            &[addr.to_string()],
            &[
                "max_connections_per_server = 1",
                "queue_timeout = \"400ms\"",
            ],
        )
        .spawn()
        .await;
    let _held = send(proxy.addr, &hello(1)).await;
    let _up = accepted(&mut server, hello(1).len()).await;
    let started = tokio::time::Instant::now();
    let mut waiting = send(proxy.addr, &hello(2)).await;
    assert_eq!(read_to_end(&mut waiting).await, INTERNAL_ERROR);
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "refused after queue_timeout, not before: {:?}",
        started.elapsed()
    );
    let record = proxy.next_record().await;
    assert_eq!(record.outcome, "queue_timeout");
    assert!(server.try_recv().is_err(), "the server never saw it");
    wait_gauge(&proxy, "passthru_backend_queue{backend=\"gw\"} 0").await;
}

#[tokio::test]
async fn a_full_server_is_skipped_for_one_with_room() {
    let a = RawBackend::spawn("a").await;
    let b = RawBackend::spawn("b").await;
    let mut proxy = ProxyUnderTest::new()
        .route(&["gw.example.com"], "gw")
        .backend_with(
            "gw",
            &[a.addr.to_string(), b.addr.to_string()],
            &[
                "max_connections_per_server = 1",
                "balance = \"source_hash\"",
            ],
        )
        .spawn()
        .await;
    // Every connection comes from 127.0.0.1: source_hash sends them all
    // home while home has room, then to the other server.
    let (home, mut first) = hello_then_line(proxy.addr, &hello(1)).await;
    let (other, _second) = hello_then_line(proxy.addr, &hello(2)).await;
    assert_ne!(home, other, "the full home server was skipped");
    first.get_mut().shutdown().await.unwrap();
    let mut rest = Vec::new();
    first.read_to_end(&mut rest).await.unwrap();
    assert_eq!(proxy.next_record().await.outcome, "ok");
    let (again, _third) = hello_then_line(proxy.addr, &hello(3)).await;
    assert_eq!(again, home, "affinity kept when home has room again");
}

async fn connect_from(ip: IpAddr, to: SocketAddr, bytes: &[u8]) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(ip, 0)).unwrap();
    let mut tcp = socket.connect(to).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    tcp.write_all(bytes).await.unwrap();
    tcp
}

async fn greeted(tcp: &mut TcpStream) -> bool {
    let mut line = [0u8; 3];
    within("the backend's greeting", tcp.read_exact(&mut line))
        .await
        .is_ok()
        && &line == b"gw\n"
}

async fn closed_without_answer(tcp: &mut TcpStream) -> bool {
    read_to_end(tcp).await.is_empty()
}

#[tokio::test]
async fn per_client_limit_by_peer_address_with_an_exemption() {
    let gw = RawBackend::spawn("gw").await;
    let mut proxy = ProxyUnderTest::new()
        .listener_option("max_connections_per_client = 2")
        .listener_option("client_limit_exempt = [\"127.0.0.9/32\"]")
        .route(&["gw.example.com"], "gw")
        .backend("gw", &[gw.addr])
        .spawn()
        .await;
    let agent: IpAddr = "127.0.0.2".parse().unwrap();
    let mut one = connect_from(agent, proxy.addr, &hello(1)).await;
    let mut two = connect_from(agent, proxy.addr, &hello(2)).await;
    assert!(greeted(&mut one).await && greeted(&mut two).await);
    let mut three = connect_from(agent, proxy.addr, &hello(3)).await;
    assert!(closed_without_answer(&mut three).await);
    assert_eq!(proxy.next_record().await.outcome, "client_limit");
    assert!(
        proxy
            .metrics
            .encode()
            .contains("passthru_refused_total{listener=\"test\",reason=\"client_limit\"} 1")
    );
    // Another address is not affected; the exempt one is not limited.
    let mut other = connect_from("127.0.0.3".parse().unwrap(), proxy.addr, &hello(4)).await;
    assert!(greeted(&mut other).await);
    let mut monitors = Vec::new();
    for n in 0..4 {
        let mut m = connect_from("127.0.0.9".parse().unwrap(), proxy.addr, &hello(10 + n)).await;
        assert!(greeted(&mut m).await, "exempt connection {n}");
        monitors.push(m);
    }
    // A connection that ends gives its place back.
    one.shutdown().await.unwrap();
    let _ = read_to_end(&mut one).await;
    assert_eq!(proxy.next_record().await.outcome, "ok");
    let mut again = connect_from(agent, proxy.addr, &hello(5)).await;
    assert!(greeted(&mut again).await);
}

#[tokio::test]
async fn per_client_limit_by_proxy_v2_address_with_an_exemption() {
    let gw = RawBackend::spawn("gw").await;
    let mut proxy = ProxyUnderTest::new()
        .listener_option("proxy_protocol = \"v2\"")
        .listener_option("trusted_proxies = [\"127.0.0.0/8\"]")
        .listener_option("max_connections_per_client = 1")
        .listener_option("client_limit_exempt = [\"192.0.2.100/32\"]")
        .route(&["gw.example.com"], "gw")
        .backend("gw", &[gw.addr])
        .spawn()
        .await;
    let dst: SocketAddr = "198.51.100.1:443".parse().unwrap();
    let via_balancer = |client: &str, n: usize| {
        let mut bytes = proxy_protocol::encode_v2(client.parse().unwrap(), dst, None);
        bytes.extend_from_slice(&hello(n));
        bytes
    };
    // Every connection comes from the balancer at 127.0.0.1: the limit is
    // on the address in the PROXY header.
    let mut a1 = send(proxy.addr, &via_balancer("192.0.2.7:40001", 1)).await;
    assert!(greeted(&mut a1).await);
    let mut a2 = send(proxy.addr, &via_balancer("192.0.2.7:40002", 2)).await;
    assert!(closed_without_answer(&mut a2).await);
    let record = proxy.next_record().await;
    assert_eq!(record.outcome, "client_limit");
    assert_eq!(record.client.ip().to_string(), "192.0.2.7");
    let mut b1 = send(proxy.addr, &via_balancer("192.0.2.8:40001", 3)).await;
    assert!(
        greeted(&mut b1).await,
        "another agent behind the same balancer"
    );
    let mut m1 = send(proxy.addr, &via_balancer("192.0.2.100:1", 4)).await;
    let mut m2 = send(proxy.addr, &via_balancer("192.0.2.100:2", 5)).await;
    assert!(greeted(&mut m1).await && greeted(&mut m2).await, "exempt");
}

#[tokio::test]
async fn a_reload_keeps_counting_the_connections_opened_before_it() {
    let (addr, mut server) = counting_server().await;
    let (other, _other_server) = counting_server().await;
    let proxy = ProxyUnderTest::new()
        .route(&["gw.example.com"], "gw")
        .backend_with(
            "gw",
            &[addr.to_string()],
            &["max_connections_per_server = 1"],
        );
    let mut running = proxy.spawn().await;
    let mut before = send(running.addr, &hello(1)).await;
    let (mut up1, _) = accepted(&mut server, hello(1).len()).await;

    // Reload: the server stays (another one joins, at its own limit of 1).
    let reloaded = ProxyUnderTest::new()
        .route(&["gw.example.com"], "gw")
        .backend_with(
            "gw",
            &[addr.to_string(), other.to_string()],
            &[
                "max_connections_per_server = 1",
                "balance = \"source_hash\"",
            ],
        );
    let config = passthru::Config::from_toml(&reloaded.toml(), "reload.toml").unwrap();
    let warnings = running.reload.apply(&config);
    assert!(warnings.is_empty(), "{warnings:?}");
    let line = format!("passthru_backend_server_active{{backend=\"gw\",server=\"{addr}\"}} 1");
    wait_gauge(&running, &line).await;

    // Two more: one goes to the new server, the next must wait, because the
    // old server still counts the connection opened before the reload.
    let _to_other = send(running.addr, &hello(2)).await;
    let _third = send(running.addr, &hello(3)).await;
    wait_gauge(&running, "passthru_backend_queue{backend=\"gw\"} 1").await;
    assert!(
        server.try_recv().is_err(),
        "the kept server was not given a second"
    );

    // The connection from before the reload ends: its slot is freed and
    // goes to the waiter.
    before.shutdown().await.unwrap();
    let mut rest = Vec::new();
    up1.read_to_end(&mut rest).await.unwrap();
    drop(up1);
    let _ = read_to_end(&mut before).await;
    assert_eq!(running.next_record().await.outcome, "ok");
    let (_up3, got) = accepted(&mut server, hello(3).len()).await;
    assert_eq!(got, hello(3));
    wait_gauge(&running, "passthru_backend_queue{backend=\"gw\"} 0").await;
}
