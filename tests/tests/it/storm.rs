//! Connection storms: waves of TLS connections held open together through
//! passthru, each verified end to end; the active-connections gauge returns
//! to 0 and memory is stable between waves. `make test` runs a small storm;
//! `make soak` runs the full one (two waves of 2,000).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Barrier;

use passthru_tests::{Client, Lab, ProxyUnderTest, TlsBackend, eventually};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

async fn storm(connections: usize, waves: usize) -> Vec<u64> {
    let lab = Lab::new();
    let mut backend = TlsBackend::new(&lab)
        .require_client_cert(&lab)
        .spawn()
        .await;
    let mut proxy = ProxyUnderTest::new()
        .route(&["gw.example.com"], "gw")
        .backend_with(
            "gw",
            &[backend.addr.to_string()],
            &["connect_timeout = \"10s\""],
        )
        .spawn()
        .await;
    let client = Client::new(&lab);
    let limit = Duration::from_secs(60 + connections as u64 / 20);
    let mut rss = Vec::new();
    for wave in 0..waves {
        let held = Arc::new(Barrier::new(connections + 1));
        let (release, released) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::with_capacity(connections);
        for i in 0..connections {
            let client = client.clone();
            let held = Arc::clone(&held);
            let mut released = released.clone();
            let addr = proxy.addr;
            tasks.push(tokio::spawn(async move {
                let mut conn = client
                    .connect(addr)
                    .await
                    .expect("handshake through passthru");
                let msg = format!("wave {wave} connection {i}");
                conn.stream.write_all(msg.as_bytes()).await.unwrap();
                let mut echo = vec![0u8; msg.len()];
                conn.stream.read_exact(&mut echo).await.unwrap();
                assert_eq!(echo, msg.as_bytes());
                // Every connection of the wave is open at this point; hold it
                // until the test has looked at the gauge.
                held.wait().await;
                let _ = released.wait_for(|r| *r).await;
                conn.stream.shutdown().await.unwrap();
                let mut rest = Vec::new();
                let _ = conn.stream.read_to_end(&mut rest).await;
            }));
        }
        tokio::time::timeout(limit, held.wait())
            .await
            .unwrap_or_else(|_| {
                panic!("wave {wave}: {connections} connections were not all open within {limit:?}")
            });
        let open = proxy.metrics.encode();
        assert!(
            open.contains(&format!(
                "passthru_active_connections{{listener=\"test\"}} {connections}"
            )),
            "wave {wave}: the gauge does not show {connections} open connections: {}",
            open.lines()
                .filter(|l| l.starts_with("passthru_active"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        release.send_replace(true);
        for t in tasks {
            tokio::time::timeout(limit, t)
                .await
                .expect("connection task timed out")
                .expect("connection task");
        }
        for _ in 0..connections {
            let record = proxy.next_record().await;
            assert_eq!(record.outcome, "ok");
            let _ = backend.next_seen().await;
        }
        eventually(
            Duration::from_secs(10),
            || {
                proxy
                    .metrics
                    .encode()
                    .contains("passthru_active_connections{listener=\"test\"} 0")
                    .then_some(())
            },
            "the active-connections gauge did not return to 0",
        )
        .await;
        rss.push(rss_kib());
    }
    rss
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_waves_of_two_hundred_connections() {
    let rss = storm(200, 2).await;
    // The second wave reuses what the first one allocated.
    assert!(
        rss[1] <= rss[0] + rss[0] / 4,
        "RSS grew from {} KiB to {} KiB between waves",
        rss[0],
        rss[1]
    );
}

/// The full storm (`make soak`): waves of 2,000 connections. The first wave
/// warms the allocator up (the process holds clients, passthru and the
/// backend); from then on a wave must not grow the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: run with `make soak`"]
async fn soak_waves_of_two_thousand_connections() {
    let rss = storm(2000, 3).await;
    eprintln!("RSS after each wave (KiB, whole test process: clients, passthru, backend): {rss:?}");
    assert!(
        rss[2] <= rss[1] + rss[1] / 10,
        "RSS grew from {} KiB to {} KiB between waves 2 and 3",
        rss[1],
        rss[2]
    );
}

/// What became of the agents of a reconnect storm.
#[derive(Debug)]
struct StormReport {
    agents: usize,
    /// Handshake, one exchange and a clean close, within the agent's
    /// handshake timeout.
    completed: usize,
    /// The most connections the gateway had open at once.
    gateway_peak: usize,
    /// Connections the gateway reset for being beyond its capacity.
    turned_away: usize,
}

/// How long an agent waits for its handshake (a common client default).
const AGENT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// `agents` agents reconnect at once (real mutual-TLS handshakes) through
/// passthru to a gateway that handles at most `capacity` connections at a
/// time and resets the rest. With `limited`, the backend has
/// `max_connections_per_server = capacity` and a queue.
async fn reconnect_storm(agents: usize, capacity: usize, limited: bool) -> StormReport {
    let lab = Lab::new();
    let gateway = TlsBackend::new(&lab)
        .require_client_cert(&lab)
        .max_open(capacity)
        .spawn()
        .await;
    let limit = format!("max_connections_per_server = {capacity}");
    let mut extra = vec!["connect_timeout = \"10s\""];
    if limited {
        extra.extend([
            limit.as_str(),
            "max_queue = 10000",
            "queue_timeout = \"25s\"",
        ]);
    }
    let proxy = ProxyUnderTest::new()
        .route(&["gw.example.com"], "gw")
        .backend_with("gw", &[gateway.addr.to_string()], &extra)
        .spawn()
        .await;
    let client = Client::new(&lab);
    let start = Arc::new(Barrier::new(agents));
    let mut tasks = Vec::with_capacity(agents);
    for i in 0..agents {
        let client = client.clone();
        let start = Arc::clone(&start);
        let addr = proxy.addr;
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let session = async {
                let mut conn = client.connect(addr).await?;
                let msg = format!("agent {i} checks in");
                conn.stream.write_all(msg.as_bytes()).await?;
                let mut echo = vec![0u8; msg.len()];
                conn.stream.read_exact(&mut echo).await?;
                conn.stream.shutdown().await?;
                let mut rest = Vec::new();
                let _ = conn.stream.read_to_end(&mut rest).await;
                Ok::<bool, std::io::Error>(echo == msg.as_bytes())
            };
            matches!(
                tokio::time::timeout(AGENT_HANDSHAKE_TIMEOUT, session).await,
                Ok(Ok(true))
            )
        }));
    }
    let mut completed = 0;
    for t in tasks {
        if tokio::time::timeout(AGENT_HANDSHAKE_TIMEOUT * 2, t)
            .await
            .expect("an agent task outlived its timeout")
            .expect("agent task")
        {
            completed += 1;
        }
    }
    let server = format!(
        "passthru_backend_server_active{{backend=\"gw\",server=\"{}\"}} 0",
        gateway.addr
    );
    eventually(
        Duration::from_secs(10),
        || {
            let text = proxy.metrics.encode();
            (text.lines().any(|l| l == server)
                && text
                    .lines()
                    .any(|l| l == "passthru_backend_queue{backend=\"gw\"} 0"))
            .then_some(())
        },
        "the server-active and queue gauges did not return to 0",
    )
    .await;
    StormReport {
        agents,
        completed,
        gateway_peak: gateway.peak_open(),
        turned_away: gateway.turned_away(),
    }
}

/// With the limit and the queue every agent gets through and the gateway
/// never has more than its capacity open; without them, print what fails.
async fn storm_with_and_without(agents: usize, capacity: usize) {
    let with = reconnect_storm(agents, capacity, true).await;
    let without = reconnect_storm(agents, capacity, false).await;
    eprintln!(
        "reconnect storm, {agents} agents, gateway capacity {capacity}:\n  \
         with max_connections_per_server = {capacity} and a queue: {with:?}\n  \
         without: {without:?} ({} failed)",
        without.agents - without.completed
    );
    assert_eq!(
        with.completed, agents,
        "with the limit every agent completes: {with:?}"
    );
    assert_eq!(with.turned_away, 0, "{with:?}");
    assert!(
        with.gateway_peak <= capacity,
        "the gateway saw {} open at once, above {capacity}",
        with.gateway_peak
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_storm_of_three_hundred_agents_against_a_gateway_of_twenty() {
    storm_with_and_without(300, 20).await;
}

/// The full reconnect storm (`make soak`): 2,000 agents, a gateway that
/// handles 50 at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: run with `make soak`"]
async fn soak_reconnect_storm_of_two_thousand_agents_against_a_gateway_of_fifty() {
    storm_with_and_without(2000, 50).await;
}
