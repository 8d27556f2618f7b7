//! The post-quantum proof: headless Chromium, which offers an
//! X25519MLKEM768 key share by default (a ~1.9 KB ClientHello), reaches a
//! TLS backend through the real passthru binary inside a private network
//! namespace whose loopback has a 1,280-byte MTU and is slowed by a token
//! bucket, so the hello arrives in more than one read. The access log must
//! show the route and `x25519mlkem768`, and the reads histogram the split.
//!
//! The outer test sets the namespace up with `unshare -n`, `ip` and `tc`,
//! then runs this test binary again inside it for the inner test. Where
//! `unshare`, `ip`, `tc` or Chromium is missing, or the namespace cannot be
//! made, it says why and passes without checking anything.

use std::path::PathBuf;
use std::process::Command;

use passthru_tests::binary::{BinaryProxy, passthru_binary};
use passthru_tests::{Lab, TlsBackend, WAIT};

const INNER: &str = "post_quantum::inside_a_small_mtu_namespace";
const IN_NAMESPACE: &str = "PASSTHRU_TEST_IN_NETNS";

/// The network set-up run inside the namespace before the inner test.
const SETUP: &str = "ip link set lo up && ip link set lo mtu 1280 && \
    tc qdisc add dev lo root tbf rate 128kbit burst 1600 latency 1s && exec \"$0\" \"$@\"";

fn program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find_map(program)
}

#[test]
fn chromium_post_quantum_hello_is_split_and_routed() {
    let missing: Vec<&str> = ["unshare", "ip", "tc"]
        .into_iter()
        .filter(|p| program(p).is_none())
        .collect();
    if !missing.is_empty() || chromium().is_none() {
        println!(
            "skipped: missing {missing:?} (chromium found: {})",
            chromium().is_some()
        );
        return;
    }
    if !Command::new("unshare")
        .args(["-n", "true"])
        .status()
        .is_ok_and(|s| s.success())
    {
        println!("skipped: `unshare -n` cannot create a network namespace here");
        return;
    }
    let binary = passthru_binary();
    let output = Command::new("unshare")
        .args(["-n", "sh", "-c", SETUP])
        .arg(std::env::current_exe().unwrap())
        .args([
            INNER,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(IN_NAMESPACE, "1")
        .env("PASSTHRU_BINARY", &binary)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "the test inside the namespace failed:\n{stdout}\n{stderr}"
    );
}

/// Run by [`chromium_post_quantum_hello_is_split_and_routed`] inside the
/// namespace; does nothing elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run inside a network namespace by chromium_post_quantum_hello_is_split_and_routed"]
async fn inside_a_small_mtu_namespace() {
    if std::env::var_os(IN_NAMESPACE).is_none() {
        println!("not inside the test's network namespace: nothing to do");
        return;
    }
    let lab = Lab::new();
    let backend = TlsBackend::new(&lab).alpn(&["http/1.1"]).spawn().await;
    let config = format!(
        "[[listener]]\nname = \"pq\"\nbind = \"127.0.0.1:0\"\n\
         [[route]]\nserver_names = [\"gw.example.com\"]\nbackend = \"gw\"\n\
         [[backend]]\nname = \"gw\"\nservers = [\"{}\"]\nconnect_timeout = \"5s\"\n\
         [admin]\nbind = \"127.0.0.1:0\"\n",
        backend.addr
    );
    let proxy = BinaryProxy::start(&config);
    let profile = tempfile::tempdir().unwrap();
    let mut browser = tokio::process::Command::new(chromium().unwrap())
        .args(lb_sim::post_quantum::CHROMIUM_HEADLESS)
        .args(["--ignore-certificate-errors", "--dump-dom"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--host-resolver-rules=MAP gw.example.com 127.0.0.1")
        .arg(format!("https://gw.example.com:{}/", proxy.addr.port()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Chromium exits once the page has loaded; its connection then closes
    // and passthru writes the access line.
    let _ = tokio::time::timeout(WAIT * 3, browser.wait()).await;
    let _ = browser.start_kill();
    let _ = browser.wait().await;
    let line = tokio::task::spawn_blocking(move || {
        let line = proxy.next_access_line();
        (line, proxy)
    })
    .await
    .unwrap();
    let (line, proxy) = line;
    println!("access line: {line}");
    let metrics = proxy.metrics();
    for l in metrics
        .lines()
        .filter(|l| l.starts_with("passthru_client_hello"))
    {
        println!("metric: {l}");
    }
    assert!(line.contains("sni=gw.example.com"), "{line}");
    assert!(line.contains("route=route[0]"), "{line}");
    assert!(line.contains("outcome=ok"), "{line}");
    assert!(line.contains("key_shares=x25519mlkem768"), "{line}");
    assert!(line.contains("ja4=t13d"), "{line}");
    let hellos = histogram(&metrics, "passthru_client_hello_reads_count", None);
    let in_one_read = histogram(&metrics, "passthru_client_hello_reads_bucket", Some(1.0));
    assert!(hellos >= 1.0, "{metrics}");
    assert!(
        in_one_read < hellos,
        "no ClientHello needed more than one read ({in_one_read} of {hellos} in one)"
    );
    let pq = metrics.lines().any(|l| {
        l.starts_with("passthru_client_hello_key_shares_total{")
            && l.contains("group=\"x25519mlkem768\"")
            && !l.ends_with(" 0")
    });
    assert!(pq, "{metrics}");
}

/// The value of a `listener="pq"` sample of `name`, for the bucket `le`
/// when given (whatever the label order and number format).
fn histogram(metrics: &str, name: &str, le: Option<f64>) -> f64 {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix(name))
        .filter_map(|rest| rest.strip_prefix('{'))
        .filter_map(|rest| rest.split_once("} "))
        .find(|(labels, _)| {
            let labels: Vec<&str> = labels.split(',').collect();
            labels.contains(&"listener=\"pq\"")
                && le.is_none_or(|le| {
                    labels.iter().any(|l| {
                        l.strip_prefix("le=\"")
                            .and_then(|v| v.trim_end_matches('"').parse::<f64>().ok())
                            == Some(le)
                    })
                })
        })
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0.0)
}
