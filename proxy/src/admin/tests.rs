use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;

use super::*;

/// Upper bound for every wait on the endpoint under test.
const WAIT: Duration = Duration::from_secs(5);

/// An admin endpoint on 127.0.0.1:0 with the phase and metrics it reports.
struct RunningAdmin {
    addr: SocketAddr,
    phase: watch::Sender<Phase>,
    metrics: Arc<Metrics>,
    monitors: Arc<Monitors>,
    stop: CancellationToken,
    served: JoinHandle<()>,
}

async fn admin_in_phase(phase: Phase) -> RunningAdmin {
    admin_with_limits(phase, Limits::DEFAULT).await
}

async fn admin_with_limits(phase: Phase, limits: Limits) -> RunningAdmin {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (phase, receiver) = watch::channel(phase);
    let metrics = Arc::new(Metrics::new(
        &["public".into()],
        &[("gw".into(), vec!["10.0.0.1:443".into()])],
    ));
    let monitors = Arc::new(Monitors::default());
    let state = AdminState {
        phase: receiver,
        metrics: Arc::clone(&metrics),
        monitors: Arc::clone(&monitors),
    };
    let stop = CancellationToken::new();
    let served = tokio::spawn(serve_with(listener, state, stop.clone(), limits));
    RunningAdmin {
        addr,
        phase,
        metrics,
        monitors,
        stop,
        served,
    }
}

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Sends `request` on a new connection and reads the reply until the
/// server closes.
async fn exchange(addr: SocketAddr, request: &[u8]) -> Reply {
    let mut stream = timeout(WAIT, TcpStream::connect(addr))
        .await
        .unwrap()
        .unwrap();
    exchange_on(&mut stream, request).await
}

async fn exchange_on(stream: &mut TcpStream, request: &[u8]) -> Reply {
    timeout(WAIT, stream.write_all(request))
        .await
        .unwrap()
        .unwrap();
    let mut raw = Vec::new();
    timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("the admin endpoint did not close the connection")
        .unwrap();
    parse_reply(&raw)
}

fn parse_reply(raw: &[u8]) -> Reply {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut response = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(head_len) = response.parse(raw).unwrap() else {
        panic!("incomplete response: {:?}", String::from_utf8_lossy(raw));
    };
    Reply {
        status: response.code.unwrap(),
        headers: response
            .headers
            .iter()
            .map(|h| {
                let value = String::from_utf8(h.value.to_vec()).unwrap();
                (h.name.to_owned(), value)
            })
            .collect(),
        body: String::from_utf8(raw[head_len..].to_vec()).unwrap(),
    }
}

async fn get(addr: SocketAddr, path: &str) -> Reply {
    let request = format!("GET {path} HTTP/1.1\r\nHost: admin\r\nUser-Agent: test\r\n\r\n");
    exchange(addr, request.as_bytes()).await
}

/// Reads from a connection the server should close without answering:
/// returns how many bytes arrived before the close.
async fn read_until_closed(stream: &mut TcpStream) -> usize {
    let mut raw = Vec::new();
    match timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("the admin endpoint did not close the connection")
    {
        Ok(_) => raw.len(),
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => raw.len(),
        Err(error) => panic!("unexpected read error: {error}"),
    }
}

#[tokio::test]
async fn healthz_is_ok_while_serving_and_503_from_draining_on() {
    let admin = admin_in_phase(Phase::Starting).await;

    let reply = get(admin.addr, "/healthz").await;
    assert_eq!((reply.status, reply.body.as_str()), (503, "starting\n"));

    admin.phase.send(Phase::Serving).unwrap();
    let reply = get(admin.addr, "/healthz").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "ok\n"));
    assert_eq!(reply.header("Content-Length"), Some("3"));
    assert_eq!(reply.header("Connection"), Some("close"));
    assert_eq!(
        reply.header("Content-Type"),
        Some("text/plain; charset=utf-8")
    );

    for phase in [Phase::Draining, Phase::Stopping, Phase::Stopped] {
        admin.phase.send(phase).unwrap();
        let reply = get(admin.addr, "/healthz").await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (503, "draining\n"),
            "{phase:?}"
        );
    }
}

#[tokio::test]
async fn readyz_is_ready_while_serving_or_draining() {
    let admin = admin_in_phase(Phase::Starting).await;
    let expected = [
        (Phase::Starting, 503, "starting\n"),
        (Phase::Serving, 200, "ready\n"),
        (Phase::Draining, 200, "ready\n"),
        (Phase::Stopping, 503, "stopping\n"),
        (Phase::Stopped, 503, "stopped\n"),
    ];
    for (phase, status, body) in expected {
        admin.phase.send(phase).unwrap();
        let reply = get(admin.addr, "/readyz").await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (status, body),
            "{phase:?}"
        );
    }
}

/// Checks `body` line by line against the Prometheus text format 0.0.4:
/// only `# HELP`/`# TYPE` comments, every sample `name[{labels}] value`
/// with a number for value, and every sample under a declared family.
/// Returns the declared `(name, type)` pairs.
fn parse_prometheus_text(body: &str) -> Vec<(String, String)> {
    let mut families: Vec<(String, String)> = Vec::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            families.push((name.to_owned(), kind.to_owned()));
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(!line.starts_with('#'), "not a 0.0.4 comment: {line}");
        let (series, value) = line.rsplit_once(' ').unwrap();
        assert!(
            value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value),
            "{line}"
        );
        let name = series.split('{').next().unwrap();
        let (family, kind) = families.last().expect("sample before any # TYPE");
        let belongs = match kind.as_str() {
            "histogram" => ["_bucket", "_sum", "_count"]
                .iter()
                .any(|suffix| name == format!("{family}{suffix}")),
            _ => name == family,
        };
        assert!(belongs, "{name} is not in family {family} ({kind})");
    }
    families
}

#[tokio::test]
async fn metrics_are_served_as_prometheus_text_by_default() {
    let admin = admin_in_phase(Phase::Serving).await;
    admin
        .metrics
        .refused("public", crate::refusal::Refusal::NoRoute);
    admin.metrics.connection_opened("public");
    admin.metrics.upstream_connect(0.002);

    let reply = get(admin.addr, "/metrics").await;

    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(
        reply.header("Content-Length"),
        Some(reply.body.len().to_string().as_str())
    );
    assert!(!reply.body.contains("# EOF"), "{}", reply.body);
    assert!(!reply.body.contains("# UNIT"), "{}", reply.body);
    let families = parse_prometheus_text(&reply.body);
    for (name, kind) in [
        ("passthru_refused_total", "counter"),
        ("passthru_bytes_total", "counter"),
        ("passthru_active_connections", "gauge"),
        ("passthru_upstream_connect_seconds", "histogram"),
    ] {
        assert!(
            families.contains(&(name.to_owned(), kind.to_owned())),
            "no {kind} {name} in:\n{}",
            reply.body
        );
    }
    assert!(
        families
            .iter()
            .filter(|(_, kind)| kind == "counter")
            .all(|(name, _)| name.ends_with("_total")),
        "{families:?}"
    );
    assert!(
        reply
            .body
            .contains("passthru_refused_total{listener=\"public\",reason=\"no_route\"} 1\n")
    );
    assert!(
        reply
            .body
            .contains("passthru_active_connections{listener=\"public\"} 1\n")
    );
    assert!(
        reply
            .body
            .contains("passthru_upstream_connect_seconds_count 1\n")
    );
}

#[tokio::test]
async fn metrics_are_openmetrics_when_accept_asks_for_it() {
    let admin = admin_in_phase(Phase::Serving).await;
    admin
        .metrics
        .refused("public", crate::refusal::Refusal::NoRoute);

    let request = "GET /metrics HTTP/1.1\r\nHost: admin\r\n\
        Accept: application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3\r\n\r\n";
    let reply = exchange(admin.addr, request.as_bytes()).await;

    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("Content-Type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert_eq!(reply.body, admin.metrics.encode());
    assert!(reply.body.contains("# TYPE passthru_refused counter\n"));
    assert!(
        reply
            .body
            .contains("passthru_refused_total{listener=\"public\",reason=\"no_route\"} 1\n")
    );
    assert!(reply.body.ends_with("# EOF\n"));
}

#[tokio::test]
async fn head_gets_the_headers_of_get_without_a_body() {
    let admin = admin_in_phase(Phase::Serving).await;

    let reply = exchange(admin.addr, b"HEAD /healthz HTTP/1.1\r\nHost: admin\r\n\r\n").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, ""));
    assert_eq!(reply.header("Content-Length"), Some("3"));

    let metrics_len = exposition::prometheus_text(&admin.metrics.encode())
        .len()
        .to_string();
    let reply = exchange(admin.addr, b"HEAD /metrics HTTP/1.1\r\n\r\n").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, ""));
    assert_eq!(reply.header("Content-Length"), Some(metrics_len.as_str()));
    assert_eq!(
        reply.header("Content-Type"),
        Some(exposition::PROMETHEUS_TEXT)
    );
}

#[tokio::test]
async fn unknown_path_is_404_and_a_query_string_is_ignored() {
    let admin = admin_in_phase(Phase::Serving).await;

    let reply = get(admin.addr, "/").await;
    assert_eq!((reply.status, reply.body.as_str()), (404, "not found\n"));
    let reply = get(admin.addr, "/healthz/extra").await;
    assert_eq!(reply.status, 404);

    let reply = get(admin.addr, "/healthz?probe=f5").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "ok\n"));
}

#[tokio::test]
async fn other_methods_are_405_with_allow() {
    let admin = admin_in_phase(Phase::Serving).await;
    for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
        let request = format!("{method} /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        let reply = exchange(admin.addr, request.as_bytes()).await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (405, "method not allowed\n"),
            "{method}"
        );
        assert_eq!(reply.header("Allow"), Some("GET, HEAD"), "{method}");
    }
}

#[tokio::test]
async fn malformed_requests_are_400() {
    let admin = admin_in_phase(Phase::Serving).await;
    let malformed: [&[u8]; 4] = [
        b"GET /healthz HTTP/9.9\r\n\r\n",
        b"GET /healthz\r\n\r\n",
        b"\x16\x03\x01\x00\x05hello\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nno colon here\r\n\r\n",
    ];
    for request in malformed {
        let reply = exchange(admin.addr, request).await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (400, "bad request\n"),
            "{request:?}"
        );
    }
}

#[tokio::test]
async fn request_head_over_8_kib_is_431() {
    let admin = admin_in_phase(Phase::Serving).await;
    let request = format!(
        "GET /healthz HTTP/1.1\r\nX-Padding: {}\r\n\r\n",
        "a".repeat(9 * 1024)
    );
    let reply = exchange(admin.addr, request.as_bytes()).await;
    assert_eq!(reply.status, 431);
    assert_eq!(reply.body, "request header fields too large\n");

    let many_headers: String = (0..100).map(|i| format!("X-{i}: v\r\n")).collect();
    let request = format!("GET /healthz HTTP/1.1\r\n{many_headers}\r\n");
    let reply = exchange(admin.addr, request.as_bytes()).await;
    assert_eq!(reply.status, 431);
}

#[tokio::test]
async fn a_head_split_over_many_writes_is_answered() {
    let admin = admin_in_phase(Phase::Serving).await;
    let mut stream = TcpStream::connect(admin.addr).await.unwrap();
    for byte in b"GET /healthz HTTP/1.1\r\nHost: admin\r\n" {
        stream.write_all(&[*byte]).await.unwrap();
        stream.flush().await.unwrap();
    }
    let reply = exchange_on(&mut stream, b"\r\n").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "ok\n"));
}

#[tokio::test]
async fn a_stalled_request_is_closed_after_the_read_timeout() {
    let limits = Limits {
        read_timeout: Duration::from_millis(200),
        ..Limits::DEFAULT
    };
    let admin = admin_with_limits(Phase::Serving, limits).await;
    let mut stream = TcpStream::connect(admin.addr).await.unwrap();
    let started = Instant::now();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: ad")
        .await
        .unwrap();

    let received = read_until_closed(&mut stream).await;

    assert_eq!(received, 0, "a stalled request gets no answer");
    assert!(
        started.elapsed() >= limits.read_timeout,
        "closed after {:?}, before the read timeout",
        started.elapsed()
    );
}

#[tokio::test]
async fn idle_connections_never_starve_a_health_check() {
    // Idle connections must outlive the test, so the timeout is long.
    let limits = Limits {
        read_timeout: Duration::from_secs(60),
        max_connections: 8,
        ..Limits::DEFAULT
    };
    let admin = admin_with_limits(Phase::Serving, limits).await;
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(
            timeout(WAIT, TcpStream::connect(admin.addr))
                .await
                .unwrap()
                .unwrap(),
        );
    }
    // Every new connection evicts the oldest idle one: the health check
    // is answered, and the first idle connections were closed.
    let reply = get(admin.addr, "/healthz").await;
    assert_eq!(reply.status, 200);
    assert_eq!(read_until_closed(&mut idle[0]).await, 0);
    // The newest idle ones are still open and served.
    let last = idle.last_mut().unwrap();
    let reply = exchange_on(last, b"GET /healthz HTTP/1.1\r\n\r\n").await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn cancelling_stop_ends_serve_and_its_connections() {
    let admin = admin_in_phase(Phase::Serving).await;
    let mut idle = TcpStream::connect(admin.addr).await.unwrap();
    // The endpoint answers, so the idle connection has been accepted first.
    assert_eq!(get(admin.addr, "/healthz").await.status, 200);

    admin.stop.cancel();

    timeout(WAIT, admin.served)
        .await
        .expect("serve did not return after stop")
        .unwrap();
    assert_eq!(read_until_closed(&mut idle).await, 0);
    let refused = TcpStream::connect(admin.addr).await.unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[test]
fn parse_request_needs_a_complete_head() {
    let full = b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n";
    for end in 0..full.len() {
        assert_eq!(
            parse_request(&full[..end]).unwrap(),
            None,
            "prefix of {end} bytes"
        );
    }
    assert_eq!(
        parse_request(full).unwrap(),
        Some(Request {
            method: Method::Get,
            target: Target::Metrics,
            openmetrics: false,
        })
    );
}

#[test]
fn parse_request_never_panics_on_hostile_prefixes() {
    let inputs: [&[u8]; 5] = [
        b"\0\0\0\0\r\n\r\n",
        b"\xff\xfe GET / HTTP/1.1\r\n\r\n",
        b"GET /\xc3\x28 HTTP/1.1\r\n\r\n",
        b"\r\n\r\n\r\nGET /readyz HTTP/1.0\n\n",
        b"GET /healthz HTTP/1.1\r\nA:\xff\r\n\r\n",
    ];
    for input in inputs {
        for end in 0..=input.len() {
            let _ = parse_request(&input[..end]);
        }
    }
}

#[test]
fn head_responses_keep_the_content_length() {
    let get = Response::plain(404, "not found\n").for_method(Method::Get);
    let head = Response::plain(404, "not found\n").for_method(Method::Head);
    assert_eq!(get.len() - head.len(), "not found\n".len());
    assert!(
        String::from_utf8(head)
            .unwrap()
            .contains("Content-Length: 10\r\n")
    );
}

#[tokio::test]
async fn healthz_polls_are_counted_per_monitor_and_only_503s_of_the_drain() {
    let admin = admin_in_phase(Phase::Serving).await;
    let get = b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_eq!(exchange(admin.addr, get).await.status, 200);
    assert_eq!(admin.monitors.fewest(), Some((1, 0)));
    admin.phase.send_replace(Phase::Draining);
    for _ in 0..2 {
        assert_eq!(exchange(admin.addr, get).await.status, 503);
    }
    // Other paths are not health checks.
    exchange(admin.addr, b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(admin.monitors.fewest(), Some((1, 2)));
}
