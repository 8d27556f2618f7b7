//! The peers as child processes: start one in the foreground from a config
//! file in the run's temporary directory, wait until it accepts TCP
//! (bounded polling), read its CPU and memory from `/proc`, and stop it by
//! its PID (SIGTERM, then SIGKILL for the whole process tree). Only
//! processes started here are ever signalled.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::time::{Instant, sleep, timeout};

use crate::procfs::{self, Usage};

/// A running peer.
#[derive(Debug)]
pub struct Daemon {
    name: String,
    child: Child,
    pid: u32,
    /// Every PID of the tree seen once it was ready (master and workers).
    tree: Vec<u32>,
    log: PathBuf,
}

impl Daemon {
    /// Start `command` with stdout discarded and stderr appended to
    /// `log`; then wait until `addr` accepts TCP.
    pub async fn spawn(
        name: &str,
        command: Command,
        log: &Path,
        addr: SocketAddr,
    ) -> Result<Daemon> {
        let mut daemon = Daemon::start(name, command, log, None, None)?;
        daemon.ready(addr).await?;
        Ok(daemon)
    }

    /// Start passthru, whose listener binds port 0: read the port from its
    /// `listening … addr=IP:PORT` line on stderr, then wait until it accepts.
    /// Its stdout (the access log) goes to the file `stdout`.
    pub async fn spawn_reporting_addr(
        name: &str,
        command: Command,
        log: &Path,
        stdout: &Path,
    ) -> Result<(Daemon, SocketAddr)> {
        let (tx, rx) = oneshot::channel();
        let mut daemon = Daemon::start(name, command, log, Some(stdout), Some(tx))?;
        let Ok(Ok(addr)) = timeout(READY_WITHIN, rx).await else {
            bail!(
                "{name} printed no `listening … addr=` line within {READY_WITHIN:?}; see {}",
                log.display()
            );
        };
        daemon.ready(addr).await?;
        Ok((daemon, addr))
    }

    /// The PID of the process started (nginx's master).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The peer's name ("passthru", "haproxy", …).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// CPU and memory of the process and its workers now.
    pub fn usage(&self) -> Result<Usage> {
        procfs::usage(self.pid)
            .with_context(|| format!("{} (see {})", self.name, self.log.display()))
    }

    /// Reset the peak-RSS mark of the process and its workers.
    pub fn reset_peak(&self) -> Result<()> {
        procfs::reset_peak(self.pid)
    }

    /// SIGTERM, wait up to [`STOP_WITHIN`] for the process to exit, then
    /// SIGKILL every PID of its tree that is still there.
    pub async fn stop(mut self) {
        signal("TERM", &[self.pid]);
        if timeout(STOP_WITHIN, self.child.wait()).await.is_err() {
            eprintln!(
                "loadgen: {} did not stop within {STOP_WITHIN:?}; killing it",
                self.name
            );
        }
        self.kill_tree();
    }

    fn start(
        name: &str,
        mut command: Command,
        log: &Path,
        stdout: Option<&Path>,
        addr_tx: Option<oneshot::Sender<SocketAddr>>,
    ) -> Result<Daemon> {
        let out = match stdout {
            Some(path) => Stdio::from(
                std::fs::File::create(path)
                    .with_context(|| format!("cannot create {}", path.display()))?,
            ),
            None => Stdio::null(),
        };
        command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {name} ({command:?})"))?;
        let pid = child.id().ok_or_else(|| anyhow!("{name} exited at once"))?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| anyhow!("{name}: no stderr pipe"))?;
        tokio::spawn(copy_stderr(stderr, log.to_path_buf(), addr_tx));
        Ok(Daemon {
            name: name.to_string(),
            child,
            pid,
            tree: vec![pid],
            log: log.to_path_buf(),
        })
    }

    /// Poll `addr` with TCP connects until one succeeds, within [`READY_WITHIN`].
    async fn ready(&mut self, addr: SocketAddr) -> Result<()> {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Ok(Ok(_)) = timeout(Duration::from_millis(200), TcpStream::connect(addr)).await {
                self.tree = procfs::tree(self.pid);
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                bail!(
                    "{} exited ({status}) before accepting on {addr}; see {}",
                    self.name,
                    self.log.display()
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} did not accept on {addr} within {READY_WITHIN:?}; see {}",
                    self.name,
                    self.log.display()
                );
            }
            sleep(Duration::from_millis(20)).await;
        }
    }

    fn kill_tree(&mut self) {
        let alive: Vec<u32> = self
            .tree
            .iter()
            .copied()
            .filter(|p| Path::new(&format!("/proc/{p}")).exists())
            .collect();
        if !alive.is_empty() {
            signal("KILL", &alive);
        }
        let _ = self.child.start_kill();
    }
}

impl Drop for Daemon {
    /// On an early return (an error, Ctrl-C), kill whatever is left.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill_tree();
        }
    }
}

/// `kill -SIG PID…` through the `kill` utility (no libc, no unsafe).
fn signal(sig: &str, pids: &[u32]) {
    let _ = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .args(pids.iter().map(u32::to_string))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Append the child's stderr to its log file; report the first
/// `addr=IP:PORT` of a line containing `listening` (passthru's startup line).
async fn copy_stderr(
    stderr: tokio::process::ChildStderr,
    log: PathBuf,
    mut addr_tx: Option<oneshot::Sender<SocketAddr>>,
) {
    let Ok(mut file) = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .await
    else {
        return;
    };
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.contains("listening")
            && !line.contains("admin")
            && let Some(addr) = listening_addr(&line)
            && let Some(tx) = addr_tx.take()
        {
            let _ = tx.send(addr);
        }
        let _ = file.write_all(line.as_bytes()).await;
        let _ = file.write_all(b"\n").await;
    }
}

/// `addr=127.0.0.1:40123` anywhere in a log line.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    line.split_whitespace()
        .find_map(|field| field.strip_prefix("addr="))
        .and_then(|a| a.trim_matches('"').parse().ok())
}

/// Bound on a peer's start.
const READY_WITHIN: Duration = Duration::from_secs(10);
/// Bound on a peer's graceful stop.
const STOP_WITHIN: Duration = Duration::from_secs(5);

/// The processes whose CPU is read around a window.
#[derive(Debug, Clone, Copy)]
pub struct Peers<'a> {
    /// The proxy under test (`None` for direct): its CPU and memory are the figures.
    pub proxy: Option<&'a Daemon>,
    /// The TLS backend: its CPU is recorded to show where the machine's time went.
    pub backend: &'a Daemon,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_passthru_startup_line() {
        let line =
            "2026-01-01T00:00:00.000000Z  INFO listening listener=bench addr=127.0.0.1:40123";
        assert_eq!(
            listening_addr(line),
            Some("127.0.0.1:40123".parse().unwrap())
        );
    }
}
