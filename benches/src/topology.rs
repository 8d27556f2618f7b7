//! The four paths under test and the processes behind them: the nginx TLS
//! backend (always), and in front of it passthru (the release binary),
//! HAProxy and nginx stream, each its own process on its own port. A
//! missing HAProxy or nginx stream module skips that column with a note;
//! a missing nginx (the backend) or passthru binary fails the run.

use std::fmt;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use tokio::process::Command;

use crate::configs;
use crate::daemon::{Daemon, Peers};
use crate::lab::Lab;

/// A path from the client to the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// Straight to the backend: the baseline of every ratio.
    Direct,
    /// Through passthru.
    Passthru,
    /// Through HAProxy `mode tcp`.
    Haproxy,
    /// Through nginx `stream` with `ssl_preread`.
    Nginx,
}

impl Target {
    /// Every target, in table order.
    pub const ALL: [Target; 4] = [
        Target::Direct,
        Target::Passthru,
        Target::Haproxy,
        Target::Nginx,
    ];

    /// The column name.
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Direct => "direct",
            Target::Passthru => "passthru",
            Target::Haproxy => "haproxy",
            Target::Nginx => "nginx",
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which proxies to start and how many connections they must hold.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The passthru binary.
    pub passthru: PathBuf,
    /// The proxies wanted (direct is always there).
    pub proxies: Vec<Target>,
    /// Connections each peer must be able to hold at once.
    pub connections: usize,
}

/// The running peers.
#[derive(Debug)]
pub struct Topology {
    /// The backend's address (the `direct` target).
    pub backend_addr: SocketAddr,
    backend: Daemon,
    proxies: Vec<(Target, Daemon, SocketAddr)>,
    /// Proxies that could not be run, with the reason.
    pub skipped: Vec<(Target, String)>,
    /// Versions of the tools, for the report.
    pub versions: Vec<(String, String)>,
}

impl Topology {
    /// Start the backend and the planned proxies.
    pub async fn start(lab: &Lab, plan: &Plan) -> Result<Topology> {
        let nginx = find_tool("nginx").context(
            "nginx is required as the TLS backend (Debian: apt-get install nginx, or `make deps`)",
        )?;
        let mut versions = vec![("nginx".to_string(), tool_version(&nginx, "-v"))];
        let backend_addr = free_port()?;
        let conf = lab.write(
            "backend.conf",
            &configs::nginx_backend(lab.path(), backend_addr, plan.connections),
        )?;
        let backend = Daemon::spawn(
            "backend",
            nginx_command(&nginx, lab.path(), &conf, "backend"),
            &lab.log("backend"),
            backend_addr,
        )
        .await?;

        let mut topology = Topology {
            backend_addr,
            backend,
            proxies: Vec::new(),
            skipped: Vec::new(),
            versions: Vec::new(),
        };
        for &target in &plan.proxies {
            match target {
                Target::Direct => {}
                Target::Passthru => {
                    if !plan.passthru.exists() {
                        bail!(
                            "{} not found: build it first (cargo build --release -p passthru) or pass --passthru",
                            plan.passthru.display()
                        );
                    }
                    versions.push((
                        "passthru".to_string(),
                        tool_version(&plan.passthru, "--version"),
                    ));
                    let conf = lab.write("passthru.toml", &configs::passthru(backend_addr))?;
                    let mut cmd = Command::new(&plan.passthru);
                    cmd.arg("run")
                        .arg("--config")
                        .arg(&conf)
                        .env("RUST_LOG", "info");
                    let (daemon, addr) = Daemon::spawn_reporting_addr(
                        "passthru",
                        cmd,
                        &lab.log("passthru"),
                        &lab.access_log(),
                    )
                    .await?;
                    topology.proxies.push((target, daemon, addr));
                }
                Target::Haproxy => {
                    let Some(haproxy) = find_tool("haproxy") else {
                        topology.skip(target, "haproxy is not installed (Debian: apt-get install haproxy, or `make deps`)");
                        continue;
                    };
                    versions.push(("haproxy".to_string(), tool_version(&haproxy, "-v")));
                    let addr = free_port()?;
                    let conf = lab.write(
                        "haproxy.cfg",
                        &configs::haproxy(addr, backend_addr, plan.connections),
                    )?;
                    let mut cmd = Command::new(&haproxy);
                    cmd.arg("-db").arg("-f").arg(&conf);
                    match Daemon::spawn("haproxy", cmd, &lab.log("haproxy"), addr).await {
                        Ok(daemon) => topology.proxies.push((target, daemon, addr)),
                        Err(e) => topology.skip(target, &format!("haproxy did not start: {e:#}")),
                    }
                }
                Target::Nginx => {
                    let module = if Path::new(configs::NGINX_STREAM_MODULE).exists() {
                        Some(configs::NGINX_STREAM_MODULE)
                    } else if nginx_has_static_stream(&nginx) {
                        None
                    } else {
                        topology.skip(target, "the nginx stream module is not installed (Debian: apt-get install libnginx-mod-stream)");
                        continue;
                    };
                    let addr = free_port()?;
                    let conf = lab.write(
                        "stream.conf",
                        &configs::nginx_stream(
                            lab.path(),
                            addr,
                            backend_addr,
                            plan.connections,
                            module,
                        ),
                    )?;
                    match Daemon::spawn(
                        "nginx-stream",
                        nginx_command(&nginx, lab.path(), &conf, "stream"),
                        &lab.log("nginx-stream"),
                        addr,
                    )
                    .await
                    {
                        Ok(daemon) => topology.proxies.push((target, daemon, addr)),
                        Err(e) => {
                            topology.skip(target, &format!("nginx stream did not start: {e:#}"))
                        }
                    }
                }
            }
        }
        topology.versions = versions;
        Ok(topology)
    }

    /// The targets that run, in table order, direct first.
    pub fn targets(&self) -> Vec<Target> {
        std::iter::once(Target::Direct)
            .chain(self.proxies.iter().map(|(t, _, _)| *t))
            .collect()
    }

    /// Where a client connects for `target`.
    pub fn addr(&self, target: Target) -> Option<SocketAddr> {
        match target {
            Target::Direct => Some(self.backend_addr),
            _ => self
                .proxies
                .iter()
                .find(|(t, _, _)| *t == target)
                .map(|(_, _, a)| *a),
        }
    }

    /// The proxy process of `target` (`None` for direct).
    pub fn daemon(&self, target: Target) -> Option<&Daemon> {
        self.proxies
            .iter()
            .find(|(t, _, _)| *t == target)
            .map(|(_, d, _)| d)
    }

    /// The processes to read around a measurement of `target`.
    pub fn peers(&self, target: Target) -> Peers<'_> {
        Peers {
            proxy: self.daemon(target),
            backend: &self.backend,
        }
    }

    /// Stop every peer, proxies first.
    pub async fn stop(self) {
        for (_, daemon, _) in self.proxies {
            daemon.stop().await;
        }
        self.backend.stop().await;
    }

    fn skip(&mut self, target: Target, why: &str) {
        eprintln!("loadgen: skipping {target}: {why}");
        self.skipped.push((target, why.to_string()));
    }
}

/// nginx in the foreground with every path inside `dir`.
fn nginx_command(nginx: &Path, dir: &Path, conf: &Path, name: &str) -> Command {
    let mut cmd = Command::new(nginx);
    cmd.arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join(format!("{name}.error.log")))
        .arg("-c")
        .arg(conf)
        .arg("-g")
        .arg("daemon off;");
    cmd
}

/// A port the kernel just handed out on 127.0.0.1 (nginx and HAProxy cannot
/// report a port they chose, so one is picked here and released).
fn free_port() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

/// `name` in `PATH`, `/usr/sbin` or `/sbin`.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The first line a tool prints for its version flag.
fn tool_version(tool: &Path, flag: &str) -> String {
    std::process::Command::new(tool)
        .arg(flag)
        .output()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

/// Whether `nginx -V` says stream is compiled in (not `=dynamic`).
fn nginx_has_static_stream(nginx: &Path) -> bool {
    std::process::Command::new(nginx)
        .arg("-V")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stderr)
                .split_whitespace()
                .any(|f| f == "--with-stream")
        })
        .unwrap_or(false)
}
