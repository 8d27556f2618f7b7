//! A fleet: three real passthru processes behind a real HAProxy (TCP mode,
//! `send-proxy-v2`, health checks on each instance's `/healthz` through
//! `check port`), a mutual-TLS gateway behind them, and agents connecting
//! continuously through HAProxy: short connections (handshake, one echo,
//! close) every few milliseconds, and persistent ones that exchange a
//! message every 20 ms for a couple of seconds, close cleanly, and connect
//! again. Then a rolling upgrade (`--takeover` on each instance in turn) and
//! a rolling restart (SIGTERM: drain, exit, start, wait for HAProxy to see it
//! up), each with its counts. `make demo-fleet` prints them; the `fleet`
//! test asserts zero failures.
//!
//! Every wait is bounded; processes are killed by their PID when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{Client, Lab, TlsBackend};

/// How many passthru instances.
pub const INSTANCES: usize = 3;
/// Persistent agents connected at any time.
pub const PERSISTENT: usize = 6;
/// How long one persistent connection lives before closing cleanly.
const PERSISTENT_LIFE: Duration = Duration::from_millis(1500);
/// Pause between two short connections of one agent loop.
const SHORT_PAUSE: Duration = Duration::from_millis(4);
/// Loops of short connections.
const SHORT_AGENTS: usize = 4;
/// The bound on any single wait.
const WAIT: Duration = Duration::from_secs(20);

/// What one procedure did to the agents.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    /// Short connections attempted.
    pub attempted: u64,
    /// Short connections that failed (refused, handshake or echo failure).
    pub failed: u64,
    /// Persistent connections that ended cleanly after their full life.
    pub persistent_completed: u64,
    /// Persistent connections that broke (error before their end).
    pub persistent_broken: u64,
    /// Persistent connections open while an instance was taken over or
    /// restarted, that went on to end cleanly.
    pub persistent_kept: u64,
    /// The first failure, if any.
    pub first_error: Option<String>,
}

/// The two procedures' counts.
#[derive(Debug, Clone)]
pub struct Report {
    /// `--takeover` on each instance in turn.
    pub rolling_upgrade: Counts,
    /// Drain, stop, start on each instance in turn.
    pub rolling_restart: Counts,
}

#[derive(Default)]
struct Tally {
    attempted: AtomicU64,
    failed: AtomicU64,
    completed: AtomicU64,
    broken: AtomicU64,
    /// Bumped at each takeover or restart: a persistent connection that
    /// completes in a later epoch than it started was kept through one.
    epoch: AtomicU64,
    kept: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Tally {
    fn error(&self, e: String) {
        if let Ok(mut first) = self.first_error.lock() {
            first.get_or_insert(e);
        }
    }

    fn snapshot(&self) -> Counts {
        Counts {
            attempted: self.attempted.load(Ordering::SeqCst),
            failed: self.failed.load(Ordering::SeqCst),
            persistent_completed: self.completed.load(Ordering::SeqCst),
            persistent_broken: self.broken.load(Ordering::SeqCst),
            persistent_kept: self.kept.load(Ordering::SeqCst),
            first_error: self.first_error.lock().ok().and_then(|e| e.clone()),
        }
    }

    /// Start a procedure: counters to zero.
    fn reset(&self) {
        for c in [
            &self.attempted,
            &self.failed,
            &self.completed,
            &self.broken,
            &self.kept,
        ] {
            c.store(0, Ordering::SeqCst);
        }
        if let Ok(mut first) = self.first_error.lock() {
            *first = None;
        }
    }

    /// An instance is being taken over or restarted.
    fn event(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }
}

/// One passthru process and its stderr lines.
struct Instance {
    child: Child,
    stderr: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl Instance {
    fn start(bin: &Path, config: &Path, takeover: Option<&Path>) -> Result<Instance> {
        let mut command = Command::new(bin);
        command.args(["run", "--config"]).arg(config);
        if let Some(socket) = takeover {
            command.arg("--takeover").arg(socket);
        }
        let mut child = command
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stderr = child.stderr.take().context("stderr")?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Instance { child, stderr: rx })
    }

    /// Wait for a stderr line containing `text`.
    async fn wait_for(&mut self, text: &str) -> Result<()> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.stderr.recv()).await {
                Ok(Some(line)) if line.contains(text) => return Ok(()),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => bail!("passthru did not log {text:?} within {WAIT:?}"),
            }
        }
    }

    fn terminate(&self) -> Result<()> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        if !status.success() {
            bail!("kill -TERM {} failed", self.child.id());
        }
        Ok(())
    }

    /// Wait for the exit; its code.
    async fn exit_code(mut self) -> Result<i32> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status.code().unwrap_or(-1));
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("passthru {} did not exit within {WAIT:?}", self.child.id());
            }
            // A child's exit has no event to wait on in std: poll.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// HAProxy in the foreground, killed by its PID when dropped.
struct Haproxy {
    child: Child,
    stats: PathBuf,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Haproxy {
    /// The state HAProxy's checks give server `name` (`UP`, `DOWN`, …).
    fn status(&self, name: &str) -> Result<String> {
        let mut s = UnixStream::connect(&self.stats)?;
        s.set_read_timeout(Some(WAIT))?;
        s.write_all(b"show stat\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        // CSV: pxname,svname,…; status is column 18 (index 17).
        for line in out.lines() {
            let cols: Vec<&str> = line.split(',').collect();
            if cols.get(1) == Some(&name) {
                return Ok(cols.get(17).unwrap_or(&"?").to_string());
            }
        }
        bail!("HAProxy has no server {name}")
    }

    async fn wait_status(&self, name: &str, want: &str) -> Result<()> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let status = self.status(name)?;
            if status.starts_with(want) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("HAProxy never marked {name} {want} (it says {status})");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Run the fleet, both procedures, with the passthru binary at `bin`.
/// `progress` receives one line per step.
pub async fn run(bin: &Path, progress: impl Fn(&str)) -> Result<Report> {
    let lab = Lab::new();
    let gateway = TlsBackend::new(&lab)
        .require_client_cert(&lab)
        .spawn()
        .await;
    let dir = tempfile::tempdir()?;

    // The instances.
    let mut configs = Vec::new();
    let mut listen = Vec::new();
    let mut admins = Vec::new();
    for i in 0..INSTANCES {
        let (port, admin) = (free_port()?, free_port()?);
        let socket = dir.path().join(format!("handoff-{i}.sock"));
        let config = dir.path().join(format!("passthru-{i}.toml"));
        std::fs::write(
            &config,
            format!(
                "[[listener]]\nname = \"agents\"\nbind = \"127.0.0.1:{port}\"\n\
                 proxy_protocol = \"v2\"\ntrusted_proxies = [\"127.0.0.0/8\"]\n\
                 [[route]]\nserver_names = [\"gw.example.com\"]\nbackend = \"gateway\"\n\
                 [[backend]]\nname = \"gateway\"\nservers = [\"{}\"]\n\
                 [admin]\nbind = \"127.0.0.1:{admin}\"\ndrain_delay = \"1500ms\"\n\
                 drain_timeout = \"15s\"\nhandoff = \"{}\"\n",
                gateway.addr,
                socket.display()
            ),
        )?;
        configs.push((config, socket));
        listen.push(port);
        admins.push(admin);
    }
    let mut instances = Vec::new();
    for (config, _) in &configs {
        let mut instance = Instance::start(bin, config, None)?;
        instance.wait_for("handoff socket listening").await?;
        instances.push(Some(instance));
    }

    // HAProxy in front.
    let front = free_port()?;
    let stats = dir.path().join("haproxy.sock");
    let servers: String = (0..INSTANCES)
        .map(|i| {
            format!(
                "    server p{i} 127.0.0.1:{} check port {} send-proxy-v2\n",
                listen[i], admins[i]
            )
        })
        .collect();
    let haproxy_cfg = dir.path().join("haproxy.cfg");
    std::fs::write(
        &haproxy_cfg,
        format!(
            "global\n    nbthread 1\n    stats socket {}\n\n\
             defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 60s\n    timeout server 60s\n\n\
             frontend agents\n    bind 127.0.0.1:{front}\n    default_backend passthru\n\n\
             backend passthru\n    balance roundrobin\n    option httpchk GET /healthz\n    http-check expect status 200\n\
             \x20   default-server inter 200ms fall 2 rise 1\n{servers}",
            stats.display()
        ),
    )?;
    let child = Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&haproxy_cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("haproxy is not installed: run `make deps`")?;
    let haproxy = Haproxy { child, stats };
    let deadline = tokio::time::Instant::now() + WAIT;
    while !haproxy.stats.exists() {
        if tokio::time::Instant::now() >= deadline {
            bail!("HAProxy did not start");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for i in 0..INSTANCES {
        haproxy.wait_status(&format!("p{i}"), "UP").await?;
    }
    progress(&format!(
        "HAProxy on 127.0.0.1:{front} in front of {INSTANCES} passthru instances; gateway {} (mutual TLS)",
        gateway.addr
    ));

    // The agents.
    let addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], front));
    let client = Client::new(&lab);
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut agents = Vec::new();
    for _ in 0..SHORT_AGENTS {
        agents.push(tokio::spawn(short_agent(
            client.clone(),
            addr,
            Arc::clone(&tally),
            Arc::clone(&stop),
        )));
    }
    for _ in 0..PERSISTENT {
        agents.push(tokio::spawn(persistent_agent(
            client.clone(),
            addr,
            Arc::clone(&tally),
            Arc::clone(&stop),
        )));
    }
    // Let every persistent agent connect before the first procedure.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Rolling upgrade.
    tally.reset();
    progress("rolling upgrade: passthru run --takeover on each instance in turn");
    for (i, (config, socket)) in configs.iter().enumerate() {
        let mut new = Instance::start(bin, config, Some(socket))?;
        new.wait_for("took over").await?;
        tally.event();
        let old = instances[i].replace(new).context("no instance")?;
        let code = old.exit_code().await?;
        if code != 0 {
            bail!("the old passthru {i} exited {code} after the takeover");
        }
        progress(&format!(
            "  instance {i}: taken over; the old process drained and exited 0"
        ));
    }
    let rolling_upgrade = tally.snapshot();

    // Rolling restart.
    tally.reset();
    progress(
        "rolling restart: drain (/healthz 503), HAProxy moves traffic, stop, start, on each instance in turn",
    );
    for (i, (config, _)) in configs.iter().enumerate() {
        let old = instances[i].take().context("no instance")?;
        old.terminate()?;
        tally.event();
        haproxy.wait_status(&format!("p{i}"), "DOWN").await?;
        let code = old.exit_code().await?;
        if code != 0 {
            bail!("passthru {i} exited {code} after SIGTERM");
        }
        let mut new = Instance::start(bin, config, None)?;
        new.wait_for("handoff socket listening").await?;
        instances[i] = Some(new);
        haproxy.wait_status(&format!("p{i}"), "UP").await?;
        progress(&format!(
            "  instance {i}: drained, HAProxy marked it down, restarted, marked up"
        ));
    }
    let rolling_restart = tally.snapshot();

    stop.store(true, Ordering::SeqCst);
    for agent in agents {
        let _ = tokio::time::timeout(WAIT, agent).await;
    }
    drop(haproxy);
    Ok(Report {
        rolling_upgrade,
        rolling_restart,
    })
}

/// Short connections back to back: handshake, one echo, close.
async fn short_agent(client: Client, addr: SocketAddr, tally: Arc<Tally>, stop: Arc<AtomicBool>) {
    // Bounded: the run stops it long before.
    for _ in 0..1_000_000u32 {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        tally.attempted.fetch_add(1, Ordering::SeqCst);
        if let Err(e) = short_once(&client, addr).await {
            tally.failed.fetch_add(1, Ordering::SeqCst);
            tally.error(format!("short connection: {e}"));
        }
        tokio::time::sleep(SHORT_PAUSE).await;
    }
}

async fn short_once(client: &Client, addr: SocketAddr) -> Result<()> {
    let mut conn = tokio::time::timeout(WAIT, client.connect(addr))
        .await
        .context("handshake timed out")??;
    echo(&mut conn.stream, b"ping").await?;
    conn.stream.shutdown().await?;
    Ok(())
}

/// Persistent connections: a message every 20 ms for their life, then a
/// clean close, then the next one.
async fn persistent_agent(
    client: Client,
    addr: SocketAddr,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
) {
    for _ in 0..1_000_000u32 {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let epoch = tally.epoch.load(Ordering::SeqCst);
        match persistent_once(&client, addr).await {
            Ok(()) => {
                tally.completed.fetch_add(1, Ordering::SeqCst);
                if tally.epoch.load(Ordering::SeqCst) != epoch {
                    tally.kept.fetch_add(1, Ordering::SeqCst);
                }
            }
            Err(e) => {
                tally.broken.fetch_add(1, Ordering::SeqCst);
                tally.error(format!("persistent connection: {e}"));
            }
        }
    }
}

async fn persistent_once(client: &Client, addr: SocketAddr) -> Result<()> {
    let mut conn = tokio::time::timeout(WAIT, client.connect(addr))
        .await
        .context("handshake timed out")??;
    let end = tokio::time::Instant::now() + PERSISTENT_LIFE;
    let mut n = 0u32;
    while tokio::time::Instant::now() < end {
        n += 1;
        echo(&mut conn.stream, format!("message {n}").as_bytes()).await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    conn.stream.shutdown().await?;
    Ok(())
}

async fn echo<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    s: &mut S,
    message: &[u8],
) -> Result<()> {
    s.write_all(message).await?;
    let mut back = vec![0u8; message.len()];
    tokio::time::timeout(WAIT, s.read_exact(&mut back))
        .await
        .context("echo timed out")??;
    if back != message {
        bail!("the echo differs");
    }
    Ok(())
}
