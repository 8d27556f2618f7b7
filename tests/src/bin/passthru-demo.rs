//! `make demo`: the whole picture on 127.0.0.1, from nothing.
//!
//! 1. generate a lab PKI (root CA, agent CA, agent certificate, the
//!    gateway's self-signed certificate);
//! 2. start a gateway that requires the agent's client certificate;
//! 3. start the real `passthru` binary in front of it with a commented
//!    configuration;
//! 4. connect an agent through passthru and show what each side saw;
//! 5. send plaintext HTTP, as an SSL-offloading balancer would, and show
//!    passthru's explanation;
//! 6. stop passthru with SIGTERM and clean up.

// A demo program: a failed step ends it with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use passthru_tests::binary::lines;
use passthru_tests::{Client, Lab, TlsBackend, within};

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("passthru-demo: {e:#}");
        std::process::exit(1);
    }
}

async fn run() -> Result<()> {
    let passthru = passthru_path()?;
    step("1. A lab PKI, generated in-process for this run");
    let lab = Lab::new();
    println!("   files in {}", lab.dir().display());
    println!(
        "   agent-01 (client certificate)  sha1 {}",
        lab.pki.agent.sha1_hex()
    );
    println!(
        "   gateway  (self-signed, pinned) sha1 {}",
        lab.pki.gateway.sha1_hex()
    );

    step("2. A gateway that requires the agent's client certificate");
    let mut gateway = TlsBackend::new(&lab)
        .require_client_cert(&lab)
        .spawn()
        .await;
    println!(
        "   gateway listens on {} and trusts only certificates issued under the lab root CA",
        gateway.addr
    );

    step("3. passthru in front of it");
    let config = CONFIG.replace("GATEWAY_ADDR", &gateway.addr.to_string());
    let config_path = lab.dir().join("passthru.toml");
    std::fs::write(&config_path, &config)?;
    println!("   configuration ({}):\n", config_path.display());
    for line in config.lines() {
        println!("     {line}");
    }
    let check = Command::new(&passthru)
        .arg("check")
        .arg("--config")
        .arg(&config_path)
        .output()?;
    println!(
        "\n   $ passthru check --config passthru.toml\n   {}",
        String::from_utf8_lossy(&check.stdout).trim()
    );
    if !check.status.success() {
        bail!(
            "passthru check failed: {}",
            String::from_utf8_lossy(&check.stderr)
        );
    }
    let mut proxy = Proxy::start(&passthru, &config_path)?;
    let addr = proxy.addr()?;
    println!("   passthru listens on {addr}");

    step("4. The agent connects through passthru (mutual TLS, gateway certificate pinned)");
    let mut conn = within("the agent's handshake", Client::new(&lab).connect(addr))
        .await
        .context("agent handshake through passthru")?;
    conn.stream
        .write_all(b"GET /agent/status HTTP/1.1\r\nHost: gw.example.com\r\n\r\n")
        .await?;
    let mut answer = String::new();
    within(
        "the gateway's answer",
        conn.stream.read_to_string(&mut answer),
    )
    .await?;
    conn.stream.shutdown().await?;
    drop(conn.stream);
    let seen = gateway.next_seen().await;
    let client_seen = seen.client_cert_sha256.unwrap_or_else(|| "none".into());
    let agent_ok = client_seen == lab.pki.agent.sha256_hex();
    let server_cert = conn.server_cert_sha256.clone();
    let pin_ok = server_cert == lab.pki.gateway.sha256_hex();
    println!("   the agent saw server certificate sha256 {server_cert}");
    println!(
        "     = the gateway's own self-signed certificate: {}",
        verdict(pin_ok)
    );
    println!("   the gateway saw client certificate sha256 {client_seen}");
    println!(
        "     = the agent's machine certificate (agent-01): {}",
        verdict(agent_ok)
    );
    println!(
        "   the gateway answered: {}",
        answer.lines().last().unwrap_or("").trim()
    );

    step("5. Plaintext HTTP, as an SSL-offloading balancer would send it");
    let mut tcp = TcpStream::connect(addr).await?;
    tcp.write_all(
        b"GET /agent/status HTTP/1.1\r\nHost: gw.example.com\r\nX-Forwarded-Proto: https\r\n\r\n",
    )
    .await?;
    let mut reply = String::new();
    within("passthru's 400", tcp.read_to_string(&mut reply)).await?;
    drop(tcp);
    for line in reply.lines() {
        println!("   | {line}");
    }

    step("6. passthru's access log (stdout), then SIGTERM");
    proxy.print_access_lines(2);
    let code = proxy.stop()?;
    println!("   passthru exited with status {code}");

    if !(agent_ok && pin_ok && reply.starts_with("HTTP/1.1 400")) {
        bail!("the demo did not show what it should: see above");
    }
    println!(
        "\nThe agent's certificate reached the gateway and the gateway's certificate reached the agent:"
    );
    println!("passthru forwarded the TLS bytes without terminating them.");
    Ok(())
}

const CONFIG: &str = r#"# passthru in front of one gateway. passthru never terminates TLS: the
# agent's client certificate and the gateway's certificate pass through.
[[listener]]
name = "agents"
bind = "127.0.0.1:0"            # port 0: the kernel picks one for this demo
client_hello_timeout = "5s"

[[route]]
server_names = ["gw.example.com"]
backend = "gateway"

[[backend]]
name = "gateway"
servers = ["GATEWAY_ADDR"]
connect_timeout = "2s"
"#;

fn step(title: &str) {
    println!("\n== {title}");
}

fn verdict(ok: bool) -> &'static str {
    if ok { "yes" } else { "NO" }
}

fn passthru_path() -> Result<PathBuf> {
    let mut args = std::env::args().skip(1);
    match (args.next().as_deref(), args.next()) {
        (Some("--passthru"), Some(path)) => Ok(PathBuf::from(path)),
        _ => bail!("usage: passthru-demo --passthru PATH-TO-PASSTHRU-BINARY"),
    }
}

/// The real passthru process, its output lines on channels.
struct Proxy {
    child: Child,
    stderr: mpsc::Receiver<String>,
    stdout: mpsc::Receiver<String>,
}

impl Proxy {
    fn start(bin: &PathBuf, config: &PathBuf) -> Result<Proxy> {
        let mut child = Command::new(bin)
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stderr = lines(child.stderr.take().context("stderr")?);
        let stdout = lines(child.stdout.take().context("stdout")?);
        Ok(Proxy {
            child,
            stderr,
            stdout,
        })
    }

    fn addr(&self) -> Result<SocketAddr> {
        loop {
            let line = self
                .stderr
                .recv_timeout(Duration::from_secs(10))
                .context("passthru did not report a listening address")?;
            if line.contains("listening")
                && let Some(addr) = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("addr="))
            {
                return Ok(addr.parse()?);
            }
        }
    }

    fn print_access_lines(&self, n: usize) {
        for _ in 0..n {
            if let Ok(line) = self.stdout.recv_timeout(Duration::from_secs(5)) {
                println!("   {line}");
            }
        }
    }

    fn stop(&mut self) -> Result<i32> {
        Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()?;
        for _ in 0..100 {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status.code().unwrap_or(-1));
            }
            // stderr closes when passthru exits; from then on the channel
            // no longer waits, so reap the exiting process instead of
            // spinning through the 100 polls in microseconds.
            if let Err(mpsc::RecvTimeoutError::Disconnected) =
                self.stderr.recv_timeout(Duration::from_millis(50))
            {
                return Ok(self.child.wait()?.code().unwrap_or(-1));
            }
        }
        self.child.kill()?;
        bail!("passthru did not stop within 5 s of SIGTERM")
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
