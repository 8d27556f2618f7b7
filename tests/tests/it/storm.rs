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
