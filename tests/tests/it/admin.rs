//! The admin endpoint as a balancer and Prometheus see it (curl over real
//! HTTP), counters that move by exactly one per refusal, and active health
//! checks that take a dead server out of balancing and bring it back.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use passthru_tests::wire::{client_hello, client_hello_padded};
use passthru_tests::{ProxyUnderTest, RawBackend, eventually, within};

use crate::{dead_addr, hello_then_line, send_and_read_to_end};

async fn curl(url: String) -> (String, String) {
    let out = within(
        "curl",
        tokio::process::Command::new("curl")
            .args(["-sS", "--max-time", "5", "-D", "-"])
            .arg(&url)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("curl is not installed: run `make deps`");
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_string(), body.to_string())
}

fn value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// 200 idle connections on the admin port (a scan, a stuck monitor, an
/// attack) do not keep the balancer's health check from its answer.
#[tokio::test]
async fn healthz_answers_within_a_second_with_200_idle_admin_connections() {
    let gw = RawBackend::spawn("gw").await;
    let proxy = ProxyUnderTest::new()
        .admin()
        .route(&["gw.example.com"], "gw")
        .backend("gw", &[gw.addr])
        .spawn()
        .await;
    let admin = proxy.admin_addr.unwrap();
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(
            within("an idle connection", TcpStream::connect(admin))
                .await
                .unwrap(),
        );
    }
    let answer = tokio::time::timeout(Duration::from_secs(1), async {
        let mut tcp = TcpStream::connect(admin).await?;
        tcp.write_all(b"GET /healthz HTTP/1.1\r\n\r\n").await?;
        let mut raw = Vec::new();
        tcp.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&raw).into_owned())
    })
    .await
    .expect("/healthz did not answer within a second")
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    drop(idle);
}

#[tokio::test]
async fn healthz_readyz_and_metrics_over_http() {
    let gw = RawBackend::spawn("gw").await;
    let mut proxy = ProxyUnderTest::new()
        .admin()
        .route(&["gw.example.com"], "gw")
        .backend("gw", &[gw.addr])
        .spawn()
        .await;
    let admin = proxy.admin_addr.unwrap();
    let (head, body) = curl(format!("http://{admin}/healthz")).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, "ok\n");
    let (head, _) = curl(format!("http://{admin}/readyz")).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let (head, _) = curl(format!("http://{admin}/nope")).await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");

    // One forwarded connection, so every family has a series.
    let (name, mut conn) =
        hello_then_line(proxy.addr, &client_hello(Some("gw.example.com"), &[])).await;
    assert_eq!(name, "gw");
    conn.get_mut().shutdown().await.unwrap();
    drop(conn);
    let _ = proxy.next_record().await;

    let (head, body) = curl(format!("http://{admin}/metrics")).await;
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(!body.contains("# EOF"), "{body}");
    assert!(
        body.contains("# TYPE passthru_connections_total counter\n"),
        "{body}"
    );
    for series in [
        "passthru_connections_total{listener=\"test\",route=\"route[0]\",backend=\"gw\",outcome=\"ok\"}",
        "passthru_active_connections{listener=\"test\"}",
        "passthru_bytes_total{listener=\"test\",direction=\"upstream\"}",
        "passthru_bytes_total{listener=\"test\",direction=\"downstream\"}",
        "passthru_upstream_connect_seconds_count",
    ] {
        assert!(
            value(&body, series).is_some(),
            "{series} missing from:\n{body}"
        );
    }
    assert_eq!(
        value(
            &body,
            "passthru_connections_total{listener=\"test\",route=\"route[0]\",backend=\"gw\",outcome=\"ok\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&body, "passthru_upstream_connect_seconds_count"),
        Some(1.0)
    );
    assert_eq!(
        value(
            &body,
            &format!(
                "passthru_backend_server_up{{backend=\"gw\",server=\"{}\"}}",
                gw.addr
            )
        ),
        Some(1.0)
    );
    for reason in passthru::refusal::Refusal::ALL {
        let series = format!(
            "passthru_refused_total{{listener=\"test\",reason=\"{}\"}}",
            reason.as_str()
        );
        assert_eq!(value(&body, &series), Some(0.0), "{series}");
    }
}

#[tokio::test]
async fn each_refusal_moves_its_counter_by_exactly_one() {
    let dead = dead_addr().await;
    let gw = RawBackend::spawn("gw").await;
    let mut proxy = ProxyUnderTest::new()
        .admin()
        .listener_option("client_hello_timeout = \"300ms\"")
        .listener_option("max_client_hello = 1024")
        .route(&["gw.example.com"], "gw")
        .route(&["down.example.com"], "down")
        .backend("gw", &[gw.addr])
        .backend("down", &[dead])
        .spawn()
        .await;
    let admin = proxy.admin_addr.unwrap();
    let inputs: Vec<(&str, Vec<u8>)> = vec![
        (
            "plaintext_http",
            b"GET / HTTP/1.1\r\nHost: gw\r\n\r\n".to_vec(),
        ),
        ("not_tls", b"SSH-2.0-x\r\n".to_vec()),
        (
            "client_hello_too_large",
            client_hello_padded(Some("gw.example.com"), &[], 2000)[..600].to_vec(),
        ),
        ("no_route", client_hello(Some("nowhere.example.com"), &[])),
        (
            "upstream_unavailable",
            client_hello(Some("down.example.com"), &[]),
        ),
        (
            "client_hello_timeout",
            client_hello(Some("gw.example.com"), &[])[..10].to_vec(),
        ),
    ];
    for (reason, bytes) in &inputs {
        let _ = send_and_read_to_end(proxy.addr, bytes).await;
        assert_eq!(proxy.next_record().await.outcome, *reason);
    }
    let (_, body) = curl(format!("http://{admin}/metrics")).await;
    for reason in passthru::refusal::Refusal::ALL {
        let series = format!(
            "passthru_refused_total{{listener=\"test\",reason=\"{}\"}}",
            reason.as_str()
        );
        let want = if inputs.iter().any(|(r, _)| *r == reason.as_str()) {
            1.0
        } else {
            0.0
        };
        assert_eq!(value(&body, &series), Some(want), "{series}\n{body}");
    }
    let active = value(&body, "passthru_active_connections{listener=\"test\"}");
    assert_eq!(
        active,
        Some(0.0),
        "every refused connection must be closed and uncounted"
    );
}

#[tokio::test]
async fn health_checks_take_a_dead_server_out_and_bring_it_back() {
    let steady = RawBackend::spawn("steady").await;
    // The flaky server: a listener we can close and reopen on the same port.
    let flaky = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let flaky_addr = flaky.local_addr().unwrap();
    let flaky_task = tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = flaky.accept().await else {
                return;
            };
            let _ = tcp.write_all(b"flaky\n").await;
        }
    });
    let proxy = ProxyUnderTest::new()
        .route(&["gw.example.com"], "gw")
        .backend_with(
            "gw",
            &[flaky_addr.to_string(), steady.addr.to_string()],
            &["health_check = { interval = \"50ms\", timeout = \"200ms\", rise = 2, fall = 2 }"],
        )
        .spawn()
        .await;
    let up = |up: bool| {
        let m = proxy.metrics.encode();
        let series =
            format!("passthru_backend_server_up{{backend=\"gw\",server=\"{flaky_addr}\"}}");
        (value(&m, &series) == Some(if up { 1.0 } else { 0.0 })).then_some(())
    };
    assert!(up(true).is_some());

    flaky_task.abort();
    let _ = flaky_task.await;
    eventually(
        Duration::from_secs(5),
        || up(false),
        "the dead server was never marked down",
    )
    .await;
    // Marked down: round robin sends every connection to the steady server.
    for _ in 0..4 {
        let (name, _) =
            hello_then_line(proxy.addr, &client_hello(Some("gw.example.com"), &[])).await;
        assert_eq!(name, "steady");
    }

    let reopened = TcpListener::bind(flaky_addr).await.unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = reopened.accept().await else {
                return;
            };
            let _ = tcp.write_all(b"flaky\n").await;
        }
    });
    eventually(
        Duration::from_secs(5),
        || up(true),
        "the server was never marked up again",
    )
    .await;
    let mut names = Vec::new();
    for _ in 0..2 {
        let (name, _) =
            hello_then_line(proxy.addr, &client_hello(Some("gw.example.com"), &[])).await;
        names.push(name);
    }
    names.sort();
    assert_eq!(names, ["flaky", "steady"], "round robin uses both again");
}

/// A listening socket that never completes a handshake: its accept queue
/// is full, so further SYNs are dropped and a connect waits for its
/// timeout (a blackholed server).
fn blackhole() -> (
    socket2::Socket,
    Vec<std::net::TcpStream>,
    std::net::SocketAddr,
) {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let mut fill = Vec::new();
    for _ in 0..2 {
        if let Ok(tcp) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            fill.push(tcp);
        }
    }
    (socket, fill, addr)
}

/// A reload keeps the health of the servers that stay: a blackholed server
/// marked down stays down (and its gauge 0), so no connection waits for it
/// right after a SIGHUP. The connect timeout is far beyond the bounded wait
/// of each connection, so a connection that tried it fails the test.
#[tokio::test]
async fn a_reload_keeps_a_dead_server_down() {
    let steady = RawBackend::spawn("steady").await;
    let (_hole, _fill, dead) = blackhole();
    let builder = ProxyUnderTest::new()
        .route(&["gw.example.com"], "gw")
        .backend_with(
            "gw",
            &[dead.to_string(), steady.addr.to_string()],
            &[
                "connect_timeout = \"60s\"",
                "health_check = { interval = \"50ms\", timeout = \"200ms\", rise = 2, fall = 2 }",
            ],
        );
    let config = passthru::Config::from_toml(&builder.toml(), "reload.toml").unwrap();
    let proxy = builder.spawn().await;
    let series = format!("passthru_backend_server_up{{backend=\"gw\",server=\"{dead}\"}}");
    let down = || (value(&proxy.metrics.encode(), &series) == Some(0.0)).then_some(());
    eventually(
        Duration::from_secs(5),
        down,
        "the blackholed server was never marked down",
    )
    .await;

    let warnings = proxy.reload.apply(&config);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(down().is_some(), "the gauge must keep the server's state");
    for _ in 0..4 {
        let (name, _) =
            hello_then_line(proxy.addr, &client_hello(Some("gw.example.com"), &[])).await;
        assert_eq!(name, "steady");
    }
    assert!(down().is_some());
}
