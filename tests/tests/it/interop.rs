//! Interoperability with the tools operators use: openssl s_client →
//! passthru → openssl s_server requiring a client certificate, and curl
//! with a client certificate through passthru to a rustls gateway.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use passthru_tests::{Lab, ProxyUnderTest, TlsBackend, within};

fn tool(name: &str) -> Command {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    assert!(found, "{name} is not installed: run `make deps`");
    let mut cmd = Command::new(name);
    cmd.kill_on_drop(true).stdin(Stdio::null());
    cmd
}

#[tokio::test]
async fn openssl_s_client_through_passthru_to_s_server_requiring_a_client_cert() {
    let lab = Lab::new();
    let mut server = tool("openssl")
        .args([
            "s_server",
            "-accept",
            "127.0.0.1:0",
            "-naccept",
            "1",
            "-Verify",
            "1",
            "-verify_return_error",
        ])
        .arg("-cert")
        .arg(lab.cert_file(&lab.pki.gateway))
        .arg("-key")
        .arg(lab.key_file(&lab.pki.gateway))
        .arg("-CAfile")
        .arg(lab.cert_file(&lab.pki.root_ca))
        // s_server quits when its stdin ends: keep it open.
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _server_stdin = server.stdin.take().unwrap();
    let mut out = BufReader::new(server.stdout.take().unwrap());
    let mut line = String::new();
    let port: u16 = loop {
        line.clear();
        let n = within("s_server's ACCEPT line", out.read_line(&mut line))
            .await
            .unwrap();
        assert!(n > 0, "s_server exited before listening");
        if let Some(addr) = line.trim().strip_prefix("ACCEPT ") {
            break addr.rsplit(':').next().unwrap().parse().unwrap();
        }
    };
    let proxy = ProxyUnderTest::new()
        .route(&["gw.example.com"], "gw")
        .backend("gw", &[([127, 0, 0, 1], port).into()])
        .spawn()
        .await;

    let mut client = tool("openssl")
        .args([
            "s_client",
            "-brief",
            "-verify_return_error",
            "-servername",
            "gw.example.com",
        ])
        .arg("-connect")
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
        .spawn()
        .unwrap();
    let mut stdin = client.stdin.take().unwrap();
    let mut client_err = BufReader::new(client.stderr.take().unwrap());
    // Wait for the handshake before sending, so the data is not lost to a race.
    let mut brief = String::new();
    loop {
        line.clear();
        let n = within(
            "s_client's handshake report",
            client_err.read_line(&mut line),
        )
        .await
        .unwrap();
        assert!(n > 0, "s_client ended early: {brief}");
        brief.push_str(&line);
        if line.starts_with("Verification")
            || line.contains("Peer certificate") && brief.contains("Verification")
        {
            break;
        }
        if line.contains("error") || line.contains("alert") {
            let _ = server.kill().await;
            let mut server_err = String::new();
            let _ = server
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut server_err)
                .await;
            panic!("s_client failed: {brief}\ns_server said: {server_err}");
        }
    }
    stdin.write_all(b"hello from the agent\n").await.unwrap();
    stdin.flush().await.unwrap();

    // s_server prints what it received; then the client closes.
    let mut seen = String::new();
    loop {
        line.clear();
        let n = within(
            "s_server to print the agent's line",
            out.read_line(&mut line),
        )
        .await
        .unwrap();
        assert!(n > 0, "s_server ended before the data arrived: {seen}");
        seen.push_str(&line);
        if line.contains("hello from the agent") {
            break;
        }
    }
    drop(stdin);
    let mut rest = String::new();
    let _ = within("s_client to finish", client_err.read_to_string(&mut rest)).await;
    brief.push_str(&rest);
    let _ = within("s_client to exit", client.wait()).await;
    let _ = server.kill().await;

    assert!(brief.contains("Verification: OK"), "{brief}");
    assert!(brief.contains("gw.example.com"), "{brief}");
    assert!(
        seen.contains("agent-01"),
        "s_server did not report the agent's certificate: {seen}"
    );
}

#[tokio::test]
async fn curl_with_a_client_certificate_through_passthru() {
    let lab = Lab::new();
    let backend = TlsBackend::new(&lab)
        .require_client_cert(&lab)
        .alpn(&["http/1.1"])
        .spawn()
        .await;
    let mut proxy = ProxyUnderTest::new()
        .route(&["gw.example.com"], "gw")
        .backend("gw", &[backend.addr])
        .spawn()
        .await;
    let port = proxy.addr.port();
    let output = within(
        "curl",
        tool("curl")
            .args(["-sS", "--max-time", "8", "--http1.1"])
            .arg("--resolve")
            .arg(format!("gw.example.com:{port}:127.0.0.1"))
            .arg("--cacert")
            .arg(lab.cert_file(&lab.pki.gateway))
            .arg("--cert")
            .arg(lab.chain_file(&lab.pki.agent))
            .arg("--key")
            .arg(lab.key_file(&lab.pki.agent))
            .arg(format!("https://gw.example.com:{port}/agent/status"))
            .output(),
    )
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "curl failed: {stderr}");
    assert_eq!(
        stdout.trim(),
        format!("client-sha256={}", lab.pki.agent.sha256_hex())
    );
    let record = proxy.next_record().await;
    assert_eq!(record.outcome, "ok");
    assert_eq!(record.sni.as_deref(), Some("gw.example.com"));
    assert!(
        record.alpn.contains(&"http/1.1".to_string()),
        "{:?}",
        record.alpn
    );
}
