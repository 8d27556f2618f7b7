//! `lb-sim serve --mode … [--port-base N]`: keep one topology up on local
//! ports until Ctrl-C, with the lab PEM files written to a directory, and
//! print every address and ready-to-paste `openssl s_client`, `socat`,
//! `curl` and `passthru-certs probe` command lines; then one line per
//! connection each hop finishes.
//!
//! Without `--port-base` every component listens on a free port the system
//! picks (127.0.0.1:0). With `--port-base N` the ports are fixed (see
//! [`Ports`]): the front — the balancer the commands point at — on
//! 127.0.0.1:N, the gateway on N+1, the backend on N+2 and, for
//! `connect-hop`, the CONNECT proxy on N+3. N must be 1 to
//! [`Ports::MAX_BASE`]; a port already in use stops `serve` with one
//! sentence naming the component and the port.

use std::path::{Path as FsPath, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use passthru_certs::LabPki;

use crate::agent::{BACKEND_NAME, GATEWAY_NAME};
use crate::gateway::ClientCheck;
use crate::report::table::hop_line;
use crate::topology::{Path, Ports, Topology};

/// Run `path` on `ports` until Ctrl-C; lab files go to `dir` (a temporary
/// directory, removed on exit, when `None`).
pub async fn serve(path: Path, dir: Option<&FsPath>, ports: Ports) -> anyhow::Result<()> {
    let pki = LabPki::generate(time::OffsetDateTime::now_utc()).context("lab PKI")?;
    let temp = match dir {
        Some(_) => None,
        None => Some(tempfile::tempdir().context("temporary directory for the lab PEM files")?),
    };
    let dir: PathBuf = match (dir, &temp) {
        (Some(d), _) => d.to_path_buf(),
        (None, Some(t)) => t.path().to_path_buf(),
        (None, None) => anyhow::bail!("no directory for the lab PEM files"),
    };
    pki.write_to(&dir, true)
        .with_context(|| format!("writing the lab PEM files to {}", dir.display()))?;
    let topology = Topology::start_at(path, &pki, ClientCheck::ChainOnly, STEP, ports).await?;
    println!("{}", instructions(&topology, &dir));
    println!("ready: serving {} until Ctrl-C", path.as_str());

    let ledger = topology.ledger.clone();
    let printer = tokio::spawn(async move {
        let mut seen = 0;
        loop {
            let fresh = ledger.reports_after(seen).await;
            if fresh.is_empty() {
                return;
            }
            seen += fresh.len();
            for record in fresh {
                println!(
                    "{:<9} {}",
                    format!("{}:", record.hop.as_str()),
                    hop_line(&record)
                );
            }
        }
    });
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    println!("stopping");
    topology.stop();
    printer.abort();
    drop(temp);
    Ok(())
}

/// The addresses and command lines for a running topology.
pub fn instructions(topology: &Topology, dir: &FsPath) -> String {
    let d = dir.display();
    let mut lines = vec![format!("lab PEM files: {d} (README.txt lists them)")];
    if let Some(addr) = topology.balancer {
        lines.push(format!("balancer  {addr}  ({})", topology.path.describe()));
    }
    if let Some(proxy) = &topology.proxy {
        lines.push(format!("proxy     {}  (HTTP CONNECT)", proxy.addr));
    }
    lines.push(format!("gateway   {}", topology.gateway));
    lines.push(format!("backend   {}", topology.backend));
    let front = topology.balancer.unwrap_or(topology.gateway);
    let port = front.port();
    lines.push(String::new());
    lines.push(
        "# the outer handshake, as the agent makes it (pinned gateway = the only CA file):".into(),
    );
    lines.push(format!(
        "openssl s_client -connect {front} -servername {GATEWAY_NAME} -cert {d}/agent-01.pem -key {d}/agent-01.key -cert_chain {d}/agent-ca.pem -CAfile {d}/gateway.pem"
    ));
    lines.push("# the inner handshake with the backend, through the outer one (socat carries the outer TLS):".into());
    lines.push(format!(
        "socat TCP-LISTEN:9443,bind=127.0.0.1,reuseaddr OPENSSL:{front},cert={d}/agent-01.chain.pem,key={d}/agent-01.key,cafile={d}/gateway.pem,commonname={GATEWAY_NAME},snihost={GATEWAY_NAME} &"
    ));
    lines.push(format!(
        "openssl s_client -connect 127.0.0.1:9443 -servername {BACKEND_NAME} -cert {d}/agent-01.pem -key {d}/agent-01.key -cert_chain {d}/agent-ca.pem -CAfile {d}/root-ca.pem   # then type: HELLO 1"
    ));
    lines.push("# curl shows the outer handshake; its HTTP request then meets the backend's TLS, which expects a second handshake:".into());
    lines.push(format!(
        "curl -v --resolve {GATEWAY_NAME}:{port}:127.0.0.1 --cacert {d}/gateway.pem --cert {d}/agent-01.chain.pem --key {d}/agent-01.key https://{GATEWAY_NAME}:{port}/"
    ));
    lines.push(format!(
        "passthru-certs probe {front} --sni {GATEWAY_NAME} --cert {d}/agent-01.chain.pem --key {d}/agent-01.key --ca {d}/gateway.pem"
    ));
    lines.join("\n")
}

/// Step bound for interactive use (a person typing into s_client).
const STEP: Duration = Duration::from_secs(60);
