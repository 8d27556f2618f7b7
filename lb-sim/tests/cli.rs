//! Process level: the `lb-sim` binary's exit codes, --list, --scenario,
//! --json and --html files, the HTML in a real headless Chromium, and
//! `serve` with a real `openssl s_client`, on free or fixed (`--port-base`)
//! ports. Children are killed by PID.

// Helpers outside #[test] functions panic on purpose: a panic is a test
// failure with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{OnceLock, mpsc};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_lb-sim");
const SCENARIOS: [&str; 12] = [
    "passthrough",
    "offload",
    "offload-reencrypt",
    "connect-hop",
    "inspecting-proxy",
    "idle-reset",
    "snat",
    "post-quantum",
    "untrusted-root",
    "pinned-thumbprint-mismatch",
    "clock-skew",
    "duplicate-cn",
];

fn lb_sim(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().expect("run lb-sim")
}

/// One run of every scenario with --json and --html, shared by the tests
/// that read its output (each full run takes several seconds).
struct FullRun {
    out: std::process::Output,
    json: PathBuf,
    html: PathBuf,
}

fn full_run() -> &'static FullRun {
    static RUN: OnceLock<FullRun> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("lb-sim-cli-full-run");
        std::fs::create_dir_all(&dir).unwrap();
        let json = dir.join("report.json");
        let html = dir.join("report.html");
        let out = lb_sim(&[
            "--json",
            json.to_str().unwrap(),
            "--html",
            html.to_str().unwrap(),
        ]);
        FullRun { out, json, html }
    })
}

#[test]
fn every_scenario_matches_its_expectation_and_exits_0() {
    let out = &full_run().out;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("every observed outcome matches its expectation"),
        "{stdout}"
    );
    for name in SCENARIOS {
        assert!(stdout.contains(name), "table lacks {name}");
        assert!(
            stderr.contains(name),
            "no progress line for {name}: {stderr}"
        );
    }
    assert!(stdout.contains("gateway: untrusted-issuer"), "{stdout}");
}

#[test]
fn list_names_every_scenario() {
    let out = lb_sim(&["--list"]);
    assert_eq!(out.status.code(), Some(0));
    let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    assert_eq!(names, SCENARIOS);
}

#[test]
fn scenario_flag_runs_only_that_scenario() {
    let out = lb_sim(&["--scenario", "passthrough", "--quiet"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("1 scenarios, 1 runs"), "{stdout}");
    assert!(!stdout.contains("offload"), "{stdout}");
}

#[test]
fn unknown_scenario_is_a_usage_error() {
    let out = lb_sim(&["--scenario", "no-such-thing"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown scenario \"no-such-thing\""),
        "{stderr}"
    );
    assert_eq!(lb_sim(&["--no-such-flag"]).status.code(), Some(2));
}

#[test]
fn json_has_one_entry_per_scenario_with_verdicts() {
    let run = full_run();
    let file = &run.json;
    assert_eq!(run.out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    let scenarios = json["scenarios"].as_array().unwrap();
    let names: Vec<&str> = scenarios
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, SCENARIOS);
    assert_eq!(json["passed"], true);
    let offload = &scenarios[1]["attempts"][0];
    assert_eq!(offload["observed"]["verdict"], "fails");
    assert_eq!(offload["observed"]["hop"], "agent");
    assert_eq!(offload["observed"]["reason"], "pin-mismatch");
    // Every run names its balancer; HAProxy and nginx ran (make deps
    // installs them), each with its configuration.
    let runs: Vec<&serde_json::Value> = scenarios
        .iter()
        .flat_map(|s| s["attempts"].as_array().unwrap())
        .collect();
    assert!(runs.iter().all(|r| r["balancer"].is_string()));
    for (name, directive) in [
        ("HAProxy", "ssl crt balancer.pem"),
        ("nginx", "proxy_ssl on;"),
    ] {
        let real: Vec<_> = runs
            .iter()
            .filter(|r| r["balancer"].as_str().unwrap().starts_with(name))
            .collect();
        assert!(!real.is_empty(), "no {name} run");
        assert!(
            real.iter().all(|r| r["skipped"].is_null()),
            "{name} skipped"
        );
        assert!(
            real.iter()
                .any(|r| r["balancer_config"].as_str().unwrap().contains(directive)),
            "{name} config"
        );
    }
    // snat: the gateway logged the balancer, or the agent with PROXY v2.
    let snat = scenarios.iter().find(|s| s["name"] == "snat").unwrap();
    let logged: Vec<&str> = snat["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["logged"]["expected"].as_str().unwrap())
        .collect();
    assert_eq!(
        logged,
        ["127.0.0.1", "127.0.0.1", "127.0.0.11", "127.0.0.12"]
    );
    // idle-reset: above the timeout the flow dies, below it lives.
    let idle = scenarios
        .iter()
        .find(|s| s["name"] == "idle-reset")
        .unwrap();
    assert_eq!(idle["attempts"][0]["observed"]["reason"], "idle-reset");
    assert_eq!(idle["attempts"][1]["observed"]["verdict"], "works");
    // post-quantum: Chromium's hybrid key share crossed in several segments.
    let pq = scenarios
        .iter()
        .find(|s| s["name"] == "post-quantum")
        .unwrap();
    let hello = &pq["attempts"][0]["hello"];
    if let Some(reason) = lb_sim::post_quantum::unavailable() {
        // No namespaces here (not root): skipped with its reason, never passed.
        eprintln!("post-quantum skipped: {reason}");
        assert_eq!(pq["attempts"][0]["skipped"], reason.as_str());
        assert_eq!(pq["attempts"][0]["passed"], false);
        return;
    }
    assert!(
        pq["attempts"][0]["skipped"].is_null(),
        "post-quantum skipped"
    );
    assert!(hello["hello_bytes"].as_u64().unwrap() > 1228, "{hello}");
    assert!(hello["segments"].as_u64().unwrap() >= 2, "{hello}");
    assert!(
        hello["key_shares"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g == "X25519MLKEM768"),
        "{hello}"
    );
}

#[test]
fn html_is_self_contained_with_one_diagram_per_scenario() {
    let run = full_run();
    assert_eq!(run.out.status.code(), Some(0));
    let html = std::fs::read_to_string(&run.html).unwrap();
    assert!(html.contains("class=\"lbconf\""), "real balancer headers");
    assert!(html.contains("bind 127.0.0.1:"), "HAProxy config excerpt");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external address"
    );
    assert!(!html.contains("<script"), "readable without JavaScript");
    assert!(
        !html.contains("<link") && !html.contains("<img"),
        "nothing to fetch"
    );
    assert_eq!(html.matches("<svg").count(), SCENARIOS.len());
    for name in SCENARIOS {
        assert!(html.contains(&format!("id=\"scenario-{name}\"")), "{name}");
    }
}

/// Headless Chromium renders the report: a screenshot that is not blank,
/// every scenario's diagram in the rendered DOM, no console errors.
#[test]
fn html_renders_in_headless_chromium() {
    let Some(chromium) = ["chromium", "chromium-browser"].into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }) else {
        if std::env::var_os("LB_SIM_SKIP_BROWSER").is_some() {
            eprintln!(
                "SKIPPED html_renders_in_headless_chromium: chromium is not installed and LB_SIM_SKIP_BROWSER is set"
            );
            return;
        }
        panic!(
            "chromium is not installed: run `make deps` (Debian package chromium), or set LB_SIM_SKIP_BROWSER=1 to skip this check knowingly"
        );
    };
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.html");
    std::fs::copy(&full_run().html, &report).unwrap();
    let blank = dir.path().join("blank.html");
    std::fs::write(&blank, "<!DOCTYPE html><html><body></body></html>").unwrap();

    let shot = dir.path().join("report.png");
    let blank_shot = dir.path().join("blank.png");
    screenshot(chromium, &report, &shot, dir.path());
    screenshot(chromium, &blank, &blank_shot, dir.path());
    let png = std::fs::read(&shot).unwrap();
    let blank_png = std::fs::read(&blank_shot).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    assert!(
        png.len() > 50_000,
        "screenshot of {} bytes looks blank",
        png.len()
    );
    assert!(
        png.len() > blank_png.len() * 4,
        "report screenshot no larger than a blank page's"
    );

    let dom = chromium_run(
        chromium,
        dir.path(),
        &[
            "--dump-dom",
            "--enable-logging=stderr",
            "--v=0",
            &url(&report),
        ],
    );
    let rendered = String::from_utf8_lossy(&dom.stdout);
    for name in SCENARIOS {
        assert!(
            rendered.contains(&format!("id=\"scenario-{name}\"")),
            "{name} not in the rendered DOM"
        );
    }
    assert_eq!(rendered.matches("<svg").count(), SCENARIOS.len());
    let log = String::from_utf8_lossy(&dom.stderr);
    let console: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Failed to load resource"))
        .collect();
    assert!(console.is_empty(), "console messages: {console:?}");
}

fn url(path: &Path) -> String {
    format!("file://{}", path.display())
}

fn screenshot(chromium: &str, page: &Path, png: &Path, dir: &Path) {
    let shot = format!("--screenshot={}", png.display());
    let out = chromium_run(
        chromium,
        dir,
        &[&shot, "--window-size=1280,4000", &url(page)],
    );
    assert!(
        png.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Chromium with a fresh profile, no network services, bounded in time.
fn chromium_run(chromium: &str, dir: &Path, args: &[&str]) -> std::process::Output {
    let profile = tempfile::tempdir_in(dir).unwrap();
    let child = Command::new(chromium)
        .args(lb_sim::post_quantum::CHROMIUM_HEADLESS)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_bounded(child, Duration::from_secs(90), "chromium")
}

/// Wait for `child` at most `limit`; kill it by PID past that.
fn wait_bounded(child: Child, limit: Duration, what: &str) -> std::process::Output {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("{what} (pid {pid}) did not finish within {limit:?}");
        }
    }
}

/// A running `lb-sim serve`, killed by PID when dropped.
struct Serving {
    child: Child,
    front: String,
    /// Every `component  address` line printed before `ready:`.
    addresses: Vec<(String, String)>,
    pki: tempfile::TempDir,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(mode: &str) -> Serving {
    serve_with(mode, &[]).unwrap_or_else(|stderr| panic!("lb-sim serve --mode {mode}: {stderr}"))
}

/// `lb-sim serve --mode MODE EXTRA…`, read until its `ready:` line (20 s at
/// most, then killed by PID). `Err` holds its stderr when it exited first.
fn serve_with(mode: &str, extra: &[&str]) -> Result<Serving, String> {
    let pki = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--mode",
            mode,
            "--pki-dir",
            pki.path().to_str().unwrap(),
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut addresses = Vec::new();
    let serving = loop {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) if line.starts_with("ready:") => break true,
            Ok(line) => {
                let mut words = line.split_whitespace();
                if let (
                    Some(component @ ("balancer" | "proxy" | "gateway" | "backend")),
                    Some(addr),
                ) = (words.next(), words.next())
                {
                    addresses.push((component.to_string(), addr.to_string()));
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break false,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("lb-sim serve --mode {mode} {extra:?} printed no ready line within 20 s");
            }
        }
    };
    if !serving {
        let _ = child.kill();
        let _ = child.wait();
        return Err(errors.join().unwrap_or_default());
    }
    let front = addresses
        .iter()
        .find(|(component, _)| component == "balancer")
        .map(|(_, addr)| addr.clone());
    let Some(front) = front else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("lb-sim serve --mode {mode} printed no balancer address: {addresses:?}");
    };
    Ok(Serving {
        child,
        front,
        addresses,
        pki,
    })
}

/// Ports `serve --port-base N` may use: N (front), N+1 (gateway), N+2
/// (backend), N+3 (CONNECT proxy).
const PORT_SPAN: u16 = 4;

/// A base whose PORT_SPAN ports were all free a moment ago: a port the
/// system hands out for 127.0.0.1:0, kept only if the ones after it bind too.
fn free_port_base() -> u16 {
    for _ in 0..100 {
        let base = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let Some(last) = base.checked_add(PORT_SPAN - 1) else {
            continue;
        };
        if (base..=last).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return base;
        }
    }
    panic!("found no {PORT_SPAN} consecutive free ports on 127.0.0.1 in 100 tries");
}

/// Real `openssl s_client` with the agent certificate; stdin stays open
/// until the handshake report is out. Returns the server certificate PEM.
fn s_client_server_cert(serving: &Serving) -> String {
    let d = serving.pki.path();
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &serving.front,
            "-servername",
            "gw.example.com",
        ])
        .arg("-cert")
        .arg(d.join("agent-01.pem"))
        .arg("-key")
        .arg(d.join("agent-01.key"))
        .arg("-cert_chain")
        .arg(d.join("agent-ca.pem"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl is installed (make deps)");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
            if text.contains("Verify return code") {
                let _ = tx.send(text.clone());
            }
        }
    });
    let text = rx.recv_timeout(Duration::from_secs(20));
    let _ = stdin.write_all(b"");
    drop(stdin);
    let _ = child.kill();
    let _ = child.wait();
    let text = text.expect("s_client printed its handshake report within 20 s");
    let begin = text
        .find("-----BEGIN CERTIFICATE-----")
        .expect("server certificate printed");
    let end = text[begin..].find("-----END CERTIFICATE-----").unwrap() + begin + 25;
    text[begin..end].to_string()
}

fn pem_of(dir: &Path, name: &str) -> String {
    let pem = std::fs::read_to_string(dir.join(name)).unwrap();
    pem.trim().to_string()
}

/// `--port-base P`: the front on P, gateway P+1, backend P+2, and P accepts
/// TCP. Another process may grab a port between the probe and the bind, so
/// a base that turns out to be taken ("already in use", exit 1) is replaced.
#[test]
fn serve_port_base_puts_the_front_on_the_base_port() {
    for _ in 0..5 {
        let base = free_port_base();
        let serving = match serve_with("passthrough", &["--port-base", &base.to_string()]) {
            Ok(serving) => serving,
            Err(stderr) if stderr.contains("already in use") => continue,
            Err(stderr) => panic!("lb-sim serve --port-base {base} failed: {stderr}"),
        };
        assert_eq!(serving.front, format!("127.0.0.1:{base}"));
        let expected: Vec<(String, String)> = [("balancer", 0), ("gateway", 1), ("backend", 2)]
            .into_iter()
            .map(|(c, offset)| (c.to_string(), format!("127.0.0.1:{}", base + offset)))
            .collect();
        assert_eq!(serving.addresses, expected);
        let front: std::net::SocketAddr = serving.front.parse().unwrap();
        std::net::TcpStream::connect_timeout(&front, Duration::from_secs(5))
            .expect("TCP connect to the --port-base port");
        return;
    }
    panic!("every port base tried was taken before lb-sim serve could bind it");
}

/// A taken port stops serve with exit 1 and one sentence naming the
/// component and the port.
#[test]
fn serve_port_base_with_a_taken_port_names_the_component_and_exits_1() {
    for _ in 0..5 {
        let base = free_port_base();
        let gateway = base + 1;
        let Ok(_taken) = std::net::TcpListener::bind(("127.0.0.1", gateway)) else {
            continue;
        };
        let pki = tempfile::tempdir().unwrap();
        let child = Command::new(BIN)
            .args(["serve", "--mode", "passthrough", "--port-base"])
            .arg(base.to_string())
            .arg("--pki-dir")
            .arg(pki.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = wait_bounded(child, Duration::from_secs(30), "lb-sim serve");
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !stderr.contains(&format!("port {gateway} ")) {
            // Someone else took the backend's port first: try another base.
            assert!(stderr.contains("already in use"), "{stderr}");
            continue;
        }
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert_eq!(
            stderr.trim(),
            format!(
                "lb-sim serve: port {gateway} is already in use, so the gateway cannot listen on 127.0.0.1:{gateway}"
            )
        );
        return;
    }
    panic!("could not set up a taken gateway port in 5 tries");
}

#[test]
fn serve_port_base_out_of_range_is_a_usage_error() {
    for base in ["65535", "65533", "0"] {
        let out = lb_sim(&["serve", "--mode", "passthrough", "--port-base", base]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--port-base {base}: {stderr}");
        assert!(stderr.contains("--port-base"), "{stderr}");
        assert!(
            stderr.contains(&format!(
                "port base {base} is out of range: it must be 1 to 65532"
            )),
            "{stderr}"
        );
    }
    let out = lb_sim(&[
        "serve",
        "--mode",
        "passthrough",
        "--port-base",
        "65532",
        "--help",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("--port-base <N>"));
}

#[test]
fn serve_passthrough_shows_openssl_the_gateway_certificate() {
    let serving = serve("passthrough");
    let cert = s_client_server_cert(&serving);
    assert_eq!(cert.trim(), pem_of(serving.pki.path(), "gateway.pem"));
}

#[test]
fn serve_offload_shows_openssl_the_balancer_certificate() {
    let serving = serve("offload");
    let cert = s_client_server_cert(&serving);
    assert_eq!(cert.trim(), pem_of(serving.pki.path(), "balancer.pem"));
}

/// The agent's whole path with a real `openssl s_client` as the outer TLS
/// layer (presenting agent-01, pinning by trusting only gateway.pem) and the
/// inner mutual-TLS handshake run by this test over s_client's stdin/stdout:
/// the backend's answer names the agent's thumbprint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_passthrough_backend_answers_through_openssl_outer_session() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

    let serving = serve("passthrough");
    let d = serving.pki.path().to_path_buf();
    let mut outer = tokio::process::Command::new("openssl")
        .args(["s_client", "-quiet", "-nocommands", "-verify_return_error"])
        .args(["-connect", &serving.front, "-servername", "gw.example.com"])
        .arg("-cert")
        .arg(d.join("agent-01.pem"))
        .arg("-key")
        .arg(d.join("agent-01.key"))
        .arg("-cert_chain")
        .arg(d.join("agent-ca.pem"))
        .arg("-CAfile")
        .arg(d.join("gateway.pem"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("openssl is installed (make deps)");
    let transport = tokio::io::join(outer.stdout.take().unwrap(), outer.stdin.take().unwrap());

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(d.join("root-ca.pem")).unwrap())
        .unwrap();
    let chain = vec![
        CertificateDer::from_pem_file(d.join("agent-01.pem")).unwrap(),
        CertificateDer::from_pem_file(d.join("agent-ca.pem")).unwrap(),
    ];
    let key = PrivateKeyDer::from_pem_file(d.join("agent-01.key")).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let name = ServerName::try_from("backend.example.com").unwrap();
    let exchange = async {
        let mut inner = connector.connect(name, transport).await.unwrap();
        inner.write_all(b"HELLO 1\n").await.unwrap();
        inner.flush().await.unwrap();
        let mut answer = String::new();
        tokio::io::BufReader::new(inner)
            .read_line(&mut answer)
            .await
            .unwrap();
        answer
    };
    let answer = tokio::time::timeout(Duration::from_secs(20), exchange)
        .await
        .expect("the backend answered within 20 s");
    let agent_sha1 = {
        let der = CertificateDer::from_pem_file(d.join("agent-01.pem")).unwrap();
        passthru_certs::fingerprint::sha1_hex(&der)
    };
    assert_eq!(
        answer.trim(),
        format!("HELLO 1: backend authenticated CN=agent-01 SHA-1 {agent_sha1}")
    );
    let _ = outer.start_kill();
    let _ = outer.wait().await;
}
