//! `post-quantum`: headless Chromium's ClientHello (X25519MLKEM768 key
//! share, about 1.9 KB) crossing a path whose MTU splits it, through the
//! real passthru, in a private network namespace ([`crate::netns`]).
//!
//! The run re-executes `lb-sim post-quantum-probe` under `unshare -n`. In
//! there: loopback MTU 1280 and a `tc tbf` rate limit; a TLS server for
//! gw.example.com; passthru in front of it; and in front of passthru a
//! counting relay that records the hello's size, its key-share groups, the
//! path's MSS, the data segments and reads it arrived in, then forwards it
//! over the same shaped loopback (where it is split again). Chromium then fetches `https://gw.example.com:PORT/`. The probe
//! prints one JSON [`Crossing`] on stdout.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use passthru_certs::LabPki;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::agent::GATEWAY_NAME;
use crate::balancer::{self, BalancerMode, BalancerPlan};
use crate::front::socket_counter;
use crate::netns;
use crate::observe::{Hop, HopRecord, Ledger};
use crate::tls::{ServerSight, ServerTrust, server_config};
use crate::wire::{accept_each, listen};

/// What crossed, as the probe measured it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Crossing {
    /// Chromium's version line.
    pub chromium: String,
    /// The namespace's loopback set-up, as run.
    pub shaping: Vec<String>,
    /// The ClientHello's size on the wire (records with headers).
    pub hello_bytes: usize,
    /// Key-share groups offered, by name.
    pub key_shares: Vec<String>,
    /// The relay socket's MSS (TCP_MAXSEG).
    pub mss: u32,
    /// TCP segments with data the relay's socket had received when the
    /// hello was complete (`ss -tin` `data_segs_in`).
    pub segments: usize,
    /// Reads the relay needed for the whole hello.
    pub reads: usize,
    /// What passthru logged (SNI, route, outcome).
    pub passthru: Vec<String>,
    /// passthru routed the hello to the server.
    pub routed: bool,
    /// The server completed the handshake with Chromium.
    pub handshake: bool,
    /// Chromium rendered the server's page.
    pub page: bool,
    /// What went wrong, if anything.
    pub error: Option<String>,
}

/// X25519MLKEM768's code point (draft-ietf-tls-ecdhe-mlkem).
const X25519_MLKEM768: u16 = 0x11ec;
const PAGE: &str = "post-quantum hello routed";
const CHROMIUM_WITHIN: Duration = Duration::from_secs(40);
const PROBE_WITHIN: Duration = Duration::from_secs(60);
/// The largest hello the relay waits for.
const MAX_HELLO: usize = 16 * 1024;

/// Why the scenario cannot run here, or `None`.
pub fn unavailable() -> Option<String> {
    if chromium().is_none() {
        return Some("chromium is not installed (`make deps` installs it)".into());
    }
    netns::unavailable()
}

/// Flags for a headless Chromium that stays on loopback: no sandbox (it
/// runs as root here), no GPU, no QUIC, and none of its background network
/// services (a closed network refuses them, many at a time). Add a fresh
/// `--user-data-dir` per run.
pub const CHROMIUM_HEADLESS: [&str; 8] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// Chromium's executable, when it is installed.
pub fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser"]
        .into_iter()
        .find_map(crate::real::find_program)
}

/// In the parent: run the probe in a new namespace and read its result.
pub async fn run_isolated() -> anyhow::Result<Crossing> {
    let exe = std::env::current_exe().context("cannot find lb-sim's own executable")?;
    let mut command = netns::isolated(&exe, &["post-quantum-probe"]);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command
        .spawn()
        .context("cannot start the probe under unshare -n")?;
    let out = tokio::time::timeout(PROBE_WITHIN, child.wait_with_output())
        .await
        .with_context(|| format!("the post-quantum probe did not finish within {PROBE_WITHIN:?}"))?
        .context("the post-quantum probe failed")?;
    serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "the post-quantum probe printed no result ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })
}

/// Inside the namespace: shape the loopback, start the server, passthru
/// and the counting relay, let Chromium fetch the page, measure.
pub async fn probe() -> Crossing {
    let mut crossing = Crossing::default();
    if let Err(e) = probe_into(&mut crossing).await {
        crossing.error = Some(format!("{e:#}"));
    }
    crossing
}

async fn probe_into(crossing: &mut Crossing) -> anyhow::Result<()> {
    crossing.shaping = netns::shape_loopback().map_err(anyhow::Error::msg)?;
    let pki = LabPki::generate(time::OffsetDateTime::now_utc()).context("lab PKI")?;
    let stop = CancellationToken::new();
    let _stop_all = stop.clone().drop_guard();
    let ledger = Ledger::new();
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let handshakes = Arc::new(Mutex::new(0usize));
    let server = serve_page(&pki, any, Arc::clone(&handshakes), stop.clone()).await?;
    let passthru = balancer::spawn(
        BalancerPlan {
            listen: any,
            mode: BalancerMode::Passthrough,
            identity: pki.balancer.clone(),
            gateway: server.to_string(),
            via: None,
            gateway_trust: ServerTrust::Pinned(pki.gateway.sha1_hex()),
            step_limit: Duration::from_secs(10),
            proxy_v2: false,
            tcp_keepalive: None,
        },
        ledger.clone(),
        stop.clone(),
    )
    .await?;
    let hellos = Arc::new(Mutex::new(Vec::new()));
    let front = count_reads(any, passthru, Arc::clone(&hellos), stop.clone()).await?;

    let chromium = chromium().context("chromium is not installed")?;
    crossing.chromium = version(&chromium).await;
    let profile = tempfile::tempdir().context("a profile directory for chromium")?;
    let out = tokio::time::timeout(
        CHROMIUM_WITHIN,
        tokio::process::Command::new(&chromium)
            .args(CHROMIUM_HEADLESS)
            .arg("--ignore-certificate-errors")
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!(
                "--host-resolver-rules=MAP {GATEWAY_NAME} 127.0.0.1"
            ))
            .arg("--dump-dom")
            .arg(format!("https://{GATEWAY_NAME}:{}/", front.port()))
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .context("chromium did not finish in time")?
    .context("cannot run chromium")?;
    crossing.page = String::from_utf8_lossy(&out.stdout).contains(PAGE);
    crossing.handshake = handshakes.lock().is_ok_and(|n| *n > 0);
    if let Some(hello) = hellos.lock().ok().and_then(|h| h.first().cloned()) {
        crossing.hello_bytes = hello.bytes;
        crossing.mss = hello.mss;
        crossing.reads = hello.reads;
        crossing.segments = hello.segments;
        crossing.key_shares = hello.groups.iter().map(|g| group_name(*g)).collect();
    }
    // passthru reports each connection when it ends (Chromium has exited).
    let passthru_done = async {
        let mut seen = 0;
        loop {
            let new = ledger.reports_after(seen).await;
            seen += new.len();
            if new.is_empty() || new.iter().any(|r| r.hop == Hop::Balancer) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), passthru_done).await;
    for record in ledger.records().iter().filter(|r| r.hop == Hop::Balancer) {
        crossing.passthru.extend(record.notes.iter().cloned());
        crossing.routed |= record
            .notes
            .iter()
            .any(|n| n.contains("routed to 127.0.0.1"));
    }
    Ok(())
}

/// A TLS server for gw.example.com answering one small HTML page.
async fn serve_page(
    pki: &LabPki,
    listen_on: SocketAddr,
    handshakes: Arc<Mutex<usize>>,
    stop: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let sight = Arc::new(ServerSight::default());
    let acceptor = TlsAcceptor::from(Arc::new(server_config(&pki.gateway, None, &sight)?));
    let listener = listen("page server", listen_on).await?;
    let addr = listener.local_addr()?;
    accept_each(listener, stop, move |tcp| {
        let acceptor = acceptor.clone();
        let handshakes = Arc::clone(&handshakes);
        async move {
            let Ok(Ok(mut tls)) =
                tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
            else {
                return;
            };
            if let Ok(mut n) = handshakes.lock() {
                *n += 1;
            }
            let mut request = vec![0u8; 4096];
            let _ = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut request)).await;
            let body = format!("<html><body><p>{PAGE}</p></body></html>");
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tls.write_all(answer.as_bytes()).await;
            let _ = tls.shutdown().await;
        }
    });
    Ok(addr)
}

/// What the counting relay saw of one hello.
#[derive(Debug, Clone)]
struct Hello {
    bytes: usize,
    segments: usize,
    reads: usize,
    mss: u32,
    groups: Vec<u16>,
}

/// A relay in front of passthru that counts the reads the first TLS
/// record (the hello) took, then forwards it in those pieces.
async fn count_reads(
    listen_on: SocketAddr,
    passthru: SocketAddr,
    hellos: Arc<Mutex<Vec<Hello>>>,
    stop: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let listener = listen("counting relay", listen_on).await?;
    let addr = listener.local_addr()?;
    accept_each(listener, stop, move |mut client| {
        let hellos = Arc::clone(&hellos);
        async move {
            // Dial passthru while the hello arrives: on the shaped loopback
            // that handshake queues behind the hello's segments.
            let dial = tokio::spawn(TcpStream::connect(passthru));
            let _ = client.set_nodelay(true);
            let mss = socket2::SockRef::from(&client).tcp_mss().unwrap_or(0);
            let mut pieces: Vec<Vec<u8>> = Vec::new();
            let mut seen = 0usize;
            let mut buf = vec![0u8; 4096];
            let mut hello = None;
            while seen < MAX_HELLO && hello.is_none() {
                let Ok(Ok(n)) =
                    tokio::time::timeout(Duration::from_secs(10), client.read(&mut buf)).await
                else {
                    return;
                };
                if n == 0 {
                    return;
                }
                pieces.push(buf[..n].to_vec());
                seen += n;
                let all = pieces.concat();
                if let Some(total) = record_len(&all)
                    && all.len() >= total
                {
                    let segments = match (client.local_addr(), client.peer_addr()) {
                        (Ok(l), Ok(p)) => socket_counter(l, p, "data_segs_in"),
                        _ => 0,
                    };
                    hello = Some(Hello {
                        bytes: total,
                        segments: usize::try_from(segments).unwrap_or(usize::MAX),
                        reads: pieces.len(),
                        mss,
                        groups: key_share_groups(&all[..total]),
                    });
                }
            }
            if let (Some(hello), Ok(mut list)) = (hello, hellos.lock()) {
                list.push(hello);
            }
            let Ok(Ok(mut upstream)) = dial.await else {
                return;
            };
            let _ = upstream.set_nodelay(true);
            for piece in &pieces {
                if upstream.write_all(piece).await.is_err() {
                    return;
                }
            }
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        }
    });
    Ok(addr)
}

/// The length of the first TLS record, header included, once known.
fn record_len(buf: &[u8]) -> Option<usize> {
    let len = u16::from_be_bytes([*buf.get(3)?, *buf.get(4)?]);
    Some(5 + usize::from(len))
}

/// The key-share groups of a ClientHello in one record (GREASE removed);
/// empty when the bytes do not parse.
pub fn key_share_groups(record: &[u8]) -> Vec<u16> {
    key_shares(record).unwrap_or_default()
}

fn key_shares(record: &[u8]) -> Option<Vec<u16>> {
    let mut at = Cursor {
        buf: record,
        pos: 0,
    };
    if at.u8()? != 0x16 {
        return None;
    }
    at.skip(4)?; // record version, length
    if at.u8()? != 0x01 {
        return None;
    }
    at.skip(3 + 2 + 32)?; // handshake length, legacy version, random
    let session = usize::from(at.u8()?);
    at.skip(session)?;
    let suites = usize::from(at.u16()?);
    at.skip(suites)?;
    let compression = usize::from(at.u8()?);
    at.skip(compression)?;
    let extensions_end = usize::from(at.u16()?) + at.pos;
    while at.pos + 4 <= extensions_end {
        let kind = at.u16()?;
        let len = usize::from(at.u16()?);
        if kind != 0x0033 {
            at.skip(len)?;
            continue;
        }
        let shares_end = usize::from(at.u16()?) + at.pos;
        let mut groups = Vec::new();
        while at.pos + 4 <= shares_end {
            let group = at.u16()?;
            let key = usize::from(at.u16()?);
            at.skip(key)?;
            if group & 0x0f0f != 0x0a0a {
                groups.push(group);
            }
        }
        return Some(groups);
    }
    Some(Vec::new())
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn u8(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes([self.u8()?, self.u8()?]))
    }
    fn skip(&mut self, n: usize) -> Option<()> {
        let end = self.pos.checked_add(n)?;
        (end <= self.buf.len()).then(|| self.pos = end)
    }
}

fn group_name(group: u16) -> String {
    match group {
        X25519_MLKEM768 => "X25519MLKEM768".into(),
        0x001d => "x25519".into(),
        0x0017 => "secp256r1".into(),
        0x0018 => "secp384r1".into(),
        other => format!("0x{other:04x}"),
    }
}

/// Whether the offered groups include X25519MLKEM768.
pub fn offers_post_quantum(crossing: &Crossing) -> bool {
    crossing.key_shares.iter().any(|g| g == "X25519MLKEM768")
}

async fn version(chromium: &std::path::Path) -> String {
    let out = tokio::process::Command::new(chromium)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .await;
    out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|_| "chromium".into())
}

/// The records of a finished crossing, for the reports.
pub fn records(crossing: &Crossing) -> Vec<HopRecord> {
    let mut agent = HopRecord::new(Hop::Agent, &format!("{} (headless)", crossing.chromium));
    agent.notes.push(format!(
        "ClientHello of {} B, key shares {}",
        crossing.hello_bytes,
        crossing.key_shares.join(", ")
    ));
    if crossing.page {
        agent.said.push(PAGE.to_string());
    }
    let mut front = HopRecord::new(Hop::Front, "counting relay (measures, then forwards)");
    front.notes.push(format!(
        "namespace loopback: {}",
        crossing.shaping.join("; ")
    ));
    front.notes.push(format!(
        "hello {} B at MSS {}: {} data segments, {} reads",
        crossing.hello_bytes, crossing.mss, crossing.segments, crossing.reads
    ));
    let mut passthru = HopRecord::new(Hop::Balancer, "passthru (the real proxy, in-process)");
    passthru.notes.clone_from(&crossing.passthru);
    let mut server = HopRecord::new(Hop::Gateway, "TLS server for gw.example.com (rustls)");
    server.notes.push(if crossing.handshake {
        "handshake completed with Chromium (rustls chose a classical group)".to_string()
    } else {
        "no handshake completed".to_string()
    });
    vec![agent, front, passthru, server]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_shares_are_read_from_a_client_hello_and_grease_is_dropped() {
        // Record header, handshake header, version, random, empty session,
        // one suite, null compression, then key_share with GREASE, X25519MLKEM768, x25519.
        let mut ks = Vec::new();
        for (group, len) in [(0x3a3a_u16, 1_u16), (0x11ec, 3), (0x001d, 2)] {
            ks.extend_from_slice(&group.to_be_bytes());
            ks.extend_from_slice(&len.to_be_bytes());
            ks.extend(std::iter::repeat_n(7u8, usize::from(len)));
        }
        let mut ext = vec![0x00, 0x33];
        ext.extend_from_slice(&((ks.len() + 2) as u16).to_be_bytes());
        ext.extend_from_slice(&(ks.len() as u16).to_be_bytes());
        ext.extend_from_slice(&ks);
        let mut body = vec![0x03, 0x03];
        body.extend([0u8; 32]);
        body.extend([0, 0, 2, 0x13, 0x01, 1, 0]);
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend_from_slice(&ext);
        let mut hs = vec![0x01, 0, 0, body.len() as u8];
        hs.extend_from_slice(&body);
        let mut record = vec![0x16, 0x03, 0x01];
        record.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        record.extend_from_slice(&hs);
        assert_eq!(key_share_groups(&record), [0x11ec, 0x001d]);
        assert_eq!(record_len(&record), Some(record.len()));
        // Truncated anywhere: no panic, no groups.
        for cut in 0..record.len() {
            let _ = key_share_groups(&record[..cut]);
        }
        assert!(key_share_groups(&record[..20]).is_empty());
    }
}
