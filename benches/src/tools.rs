//! The standard tools as clients: wrk (keep-alive requests and new TLS
//! connections) and curl (bulk downloads and handshake timing), run as
//! child processes with a time bound, and the parsers of what they print.
//! The parsers are pure and unit-tested; the runners only add the process.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use tokio::process::Command;
use tokio::time::timeout;

use crate::configs::{BULK_PATH, SERVER_NAME, WRK_NAME};

/// What one wrk run reports.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct WrkResult {
    /// Completed requests (`N requests in …`).
    pub requests: u64,
    /// `Requests/sec:`.
    pub rate: f64,
    /// Socket errors (connect, read, write, timeout) plus non-2xx/3xx answers.
    pub errors: u64,
}

/// wrk's summary: `N requests in 2.00s, …`, `Requests/sec: R`, and the
/// optional `Socket errors: connect A, read B, write C, timeout D` and
/// `Non-2xx or 3xx responses: E` lines.
pub fn parse_wrk(text: &str) -> Result<WrkResult> {
    let mut requests = None;
    let mut rate = None;
    let mut errors = 0;
    for line in text.lines().map(str::trim) {
        if let Some((n, _)) = line.split_once(" requests in ") {
            requests = n.trim().parse().ok();
        } else if let Some(r) = line.strip_prefix("Requests/sec:") {
            rate = r.trim().parse().ok();
        } else if let Some(list) = line.strip_prefix("Socket errors:") {
            errors += list
                .split(',')
                .filter_map(|kv| kv.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>();
        } else if let Some(n) = line.strip_prefix("Non-2xx or 3xx responses:") {
            errors += n.trim().parse::<u64>().unwrap_or(0);
        }
    }
    match (requests, rate) {
        (Some(requests), Some(rate)) => Ok(WrkResult {
            requests,
            rate,
            errors,
        }),
        _ => Err(anyhow!(
            "wrk printed no `requests in` / `Requests/sec:` lines: {}",
            text.trim()
        )),
    }
}

/// The numbers curl prints for `-w` (whitespace-separated), as f64.
pub fn parse_curl_w(text: &str, expected: usize) -> Result<Vec<f64>> {
    let values: Vec<f64> = text
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| anyhow!("curl printed `{}`, not numbers", text.trim()))?;
    if values.len() != expected {
        bail!(
            "curl printed {} numbers, not {expected}: `{}`",
            values.len(),
            text.trim()
        );
    }
    Ok(values)
}

/// `wrk -t THREADS -c CONNS -d SECONDS` against `/small` at `addr` under
/// [`WRK_NAME`]; with `close`, every request carries `Connection: close`,
/// so every request is a new TCP connection and a full TLS handshake.
pub fn wrk_command(
    wrk: &Path,
    addr: SocketAddr,
    threads: usize,
    conns: usize,
    duration: Duration,
    close: bool,
) -> Command {
    let mut cmd = Command::new(wrk);
    cmd.arg("-t")
        .arg(threads.to_string())
        .arg("-c")
        .arg(conns.to_string())
        .arg("-d")
        .arg(format!("{}s", duration.as_secs().max(1)));
    if close {
        cmd.arg("-H").arg("Connection: close");
    }
    cmd.arg(format!("https://{WRK_NAME}:{}/small", addr.port()));
    cmd
}

/// Run a wrk command to its end (bounded by its duration plus a margin).
pub async fn run_wrk(mut cmd: Command, duration: Duration) -> Result<WrkResult> {
    let out = bounded_output(&mut cmd, duration + TOOL_MARGIN, "wrk").await?;
    parse_wrk(&out)
}

/// Where curl finds the agent's identity and the gateway's certificate
/// (self-signed: curl trusts exactly it, as the agents pin it).
#[derive(Debug, Clone)]
pub struct CurlIdentity {
    /// `gateway.pem`.
    pub ca: std::path::PathBuf,
    /// `agent-01.chain.pem` (leaf and intermediate).
    pub cert: std::path::PathBuf,
    /// `agent-01.key`.
    pub key: std::path::PathBuf,
}

impl CurlIdentity {
    /// The lab files in `pki_dir`.
    pub fn in_dir(pki_dir: &Path) -> CurlIdentity {
        CurlIdentity {
            ca: pki_dir.join("gateway.pem"),
            cert: pki_dir.join("agent-01.chain.pem"),
            key: pki_dir.join("agent-01.key"),
        }
    }
}

/// curl as the agent (client certificate presented, the gateway's
/// certificate pinned, [`SERVER_NAME`] resolved to `addr`), silent, with
/// `--max-time`.
fn curl(curl: &Path, id: &CurlIdentity, addr: SocketAddr, max: Duration) -> Command {
    let mut cmd = Command::new(curl);
    cmd.args([
        "-sS",
        "--fail",
        "--tlsv1.3",
        "--no-sessionid",
        "-o",
        "/dev/null",
    ])
    .arg("--cacert")
    .arg(&id.ca)
    .arg("--cert")
    .arg(&id.cert)
    .arg("--key")
    .arg(&id.key)
    .arg("--resolve")
    .arg(format!("{SERVER_NAME}:{}:{}", addr.port(), addr.ip()))
    .arg("--max-time")
    .arg(format!("{:.0}", max.as_secs_f64().ceil()));
    cmd
}

/// One download of the first `bytes` of the bulk file (a `Range`
/// request); returns (bytes received, seconds from start to end).
pub async fn curl_download(
    tool: &Path,
    id: &CurlIdentity,
    addr: SocketAddr,
    bytes: u64,
    max: Duration,
) -> Result<(f64, f64)> {
    let mut cmd = curl(tool, id, addr, max);
    cmd.arg("-r")
        .arg(format!("0-{}", bytes.saturating_sub(1)))
        .arg("-w")
        .arg("%{size_download} %{time_total}")
        .arg(format!("https://{SERVER_NAME}:{}{BULK_PATH}", addr.port()));
    let out = bounded_output(&mut cmd, max + TOOL_MARGIN, "curl").await?;
    let v = parse_curl_w(&out, 2)?;
    if v[0] < bytes as f64 {
        bail!("curl received {} of {bytes} bytes from {addr}", v[0]);
    }
    Ok((v[0], v[1]))
}

/// One `GET /small` on a new connection; returns the seconds until the TLS
/// handshake completed (`time_appconnect`: TCP connect + handshake).
pub async fn curl_handshake(
    tool: &Path,
    id: &CurlIdentity,
    addr: SocketAddr,
    max: Duration,
) -> Result<f64> {
    let mut cmd = curl(tool, id, addr, max);
    cmd.arg("-w")
        .arg("%{time_appconnect}")
        .arg(format!("https://{SERVER_NAME}:{}/small", addr.port()));
    let out = bounded_output(&mut cmd, max + TOOL_MARGIN, "curl").await?;
    Ok(parse_curl_w(&out, 1)?[0])
}

/// Run `cmd` to its end within `within`, killed on drop when late; its
/// stdout when it exits 0, its stderr in the error otherwise.
async fn bounded_output(cmd: &mut Command, within: Duration, name: &str) -> Result<String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot start {name}"))?;
    let out = timeout(within, child.wait_with_output())
        .await
        .map_err(|_| anyhow!("{name} did not finish within {within:?}"))??;
    if !out.status.success() {
        bail!(
            "{name} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Time a tool may take beyond its own duration or `--max-time`.
const TOOL_MARGIN: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    const WRK_OUT: &str = "Running 2s test @ https://localhost:40000/small
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.96ms    1.10ms  21.34ms   88.12%
    Req/Sec    12.99k     1.02k   14.62k    70.00%
  51700 requests in 2.00s, 13.46MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 4
Requests/sec:  25839.26
Transfer/sec:      6.73MB
";

    #[test]
    fn reads_wrk_summary_and_errors() {
        let r = parse_wrk(WRK_OUT).unwrap();
        assert_eq!(r.requests, 51_700);
        assert!((r.rate - 25_839.26).abs() < 1e-6);
        assert_eq!(r.errors, 9);
    }

    #[test]
    fn wrk_without_summary_is_an_error() {
        assert!(parse_wrk("unable to connect to localhost:1 Connection refused").is_err());
    }

    #[test]
    fn reads_curl_numbers() {
        assert_eq!(
            parse_curl_w("268435456 0.812345", 2).unwrap(),
            vec![268_435_456.0, 0.812_345]
        );
        assert!(parse_curl_w("0.001", 2).is_err());
        assert!(parse_curl_w("x y", 2).is_err());
    }
}
