//! Real offloading balancers: HAProxy (`mode tcp`, `bind … ssl crt`, with or
//! without `server … ssl` and `verify optional`) and nginx (`stream` with
//! `ssl` and `proxy_ssl`), each run as a child process from a config
//! template, beside lb-sim's built-in relay.
//!
//! Each run gets a temporary directory holding the PEM files and the
//! configuration; the process runs in the foreground (`haproxy -db`, nginx
//! `daemon off; master_process off`), is stopped by its PID (kill on drop)
//! and the directory is removed with it. Neither program can listen on port
//! 0 and report the port, so a free loopback port is found by binding port 0
//! and releasing it, with a new port when the program cannot bind it.
//!
//! These programs report nothing to the ledger: the gateway counts the
//! connections it accepts itself, and the balancer's record carries the
//! program's version and configuration.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use passthru_certs::{Identity, LabPki};
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::agent::GATEWAY_NAME;
use crate::observe::{Hop, HopRecord, Layer, Leg, Role};
use crate::tls::cert_seen;

/// Which software plays the offloading balancer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "kebab-case", tag = "implementation")]
pub enum Implementation {
    /// lb-sim's own relay (or passthru on passthrough paths).
    #[default]
    Builtin,
    /// HAProxy, `mode tcp`, `bind … ssl crt`; `verify_client` adds
    /// `verify optional ca-file` (it asks the agent for its certificate).
    Haproxy {
        /// Ask for and verify the agent's certificate.
        verify_client: bool,
    },
    /// nginx `stream` with `ssl` termination (and `proxy_ssl on` when
    /// re-encrypting).
    Nginx,
}

impl Implementation {
    /// Short name for tables: "built-in", "HAProxy", "HAProxy (verify optional)", "nginx".
    pub fn name(self) -> &'static str {
        match self {
            Implementation::Builtin => "built-in",
            Implementation::Haproxy {
                verify_client: false,
            } => "HAProxy",
            Implementation::Haproxy {
                verify_client: true,
            } => "HAProxy (verify optional)",
            Implementation::Nginx => "nginx",
        }
    }

    /// The program, or `None` for the built-in relay.
    fn program(self) -> Option<&'static str> {
        match self {
            Implementation::Builtin => None,
            Implementation::Haproxy { .. } => Some("haproxy"),
            Implementation::Nginx => Some("nginx"),
        }
    }

    /// Why this implementation cannot run here, or `None` when it can.
    pub fn unavailable(self) -> Option<String> {
        let program = self.program()?;
        if find_program(program).is_none() {
            return Some(format!(
                "{program} is not installed (`make deps` installs it)"
            ));
        }
        if self == Implementation::Nginx && nginx_stream_module().is_none() && !nginx_has_stream() {
            return Some(
                "nginx has no stream module (Debian: libnginx-mod-stream; `make deps` installs it)"
                    .to_string(),
            );
        }
        None
    }
}

/// A running HAProxy or nginx.
#[derive(Debug)]
pub struct RealBalancer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it is ("HAProxy version 2.6.12…").
    pub version: String,
    /// The configuration, as written (paths relative to its directory).
    pub config: String,
    child: Child,
    dir: tempfile::TempDir,
}

impl RealBalancer {
    /// The balancer's record of one agent connection. The program reports
    /// nothing to the lab, so its side of the agent's handshake is the
    /// mirror of what the agent saw (`identity` presented, the agent's
    /// certificate if it asked for it).
    pub fn record(&self, reencrypt: bool, identity: &Identity, agent: Option<&Leg>) -> HopRecord {
        let mut record = HopRecord::new(Hop::Balancer, &format!("{} (real)", self.version));
        if let Some(agent) = agent {
            record.legs.push(Leg {
                layer: Layer::Outer,
                role: Role::Server,
                sni: agent.sni.clone(),
                presented: Some(cert_seen(&identity.cert_der)),
                peer_cert: agent.presented.clone(),
                client_cert_requested: agent.client_cert_requested,
                completed: agent.completed,
                failure: None,
            });
        }
        record.notes.push(if reencrypt {
            "terminated the agent's TLS with its own certificate and opened its own TLS session to the gateway".to_string()
        } else {
            "terminated the agent's TLS with its own certificate and forwarded the bytes in clear".to_string()
        });
        record.notes.push(format!(
            "{} reports nothing to the lab: its handshakes are drawn as the agent and the gateway saw them",
            self.version
        ));
        record
    }

    /// Stop it (SIGKILL by PID) and remove its directory.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(STOP_WITHIN, self.child.wait()).await;
        drop(self.dir);
    }
}

/// Add to the real balancer's record its session toward the gateway, as the
/// mirror of what the gateway saw (re-encrypting runs: the gateway's outer
/// session was opened by the balancer).
pub fn mirror_upstream(records: &mut [HopRecord]) {
    let gateway = records
        .iter()
        .find(|r| r.hop == Hop::Gateway)
        .and_then(|g| g.leg(Layer::Outer))
        .filter(|leg| leg.sni.as_deref() == Some(GATEWAY_NAME))
        .cloned();
    let Some(gateway) = gateway else { return };
    for record in records.iter_mut().filter(|r| r.hop == Hop::Balancer) {
        if record
            .notes
            .iter()
            .any(|n| n.contains("its own TLS session"))
        {
            record.legs.push(Leg {
                layer: Layer::Upstream,
                role: Role::Client,
                sni: gateway.sni.clone(),
                presented: gateway.peer_cert.clone(),
                peer_cert: gateway.presented.clone(),
                client_cert_requested: gateway.client_cert_requested,
                completed: gateway.completed,
                failure: None,
            });
        }
    }
}

/// What the real balancer is asked to do.
#[derive(Debug, Clone, Copy)]
pub struct RealPlan {
    /// HAProxy or nginx.
    pub implementation: Implementation,
    /// Open its own TLS session to the gateway.
    pub reencrypt: bool,
    /// The gateway's address.
    pub gateway: SocketAddr,
}

/// Write the configuration and PEM files, start the program in the
/// foreground on a free loopback port and wait until it accepts.
pub async fn spawn(plan: RealPlan, pki: &LabPki) -> anyhow::Result<RealBalancer> {
    let Some(program) = plan.implementation.program() else {
        bail!("the built-in relay is not a program to start");
    };
    let binary = find_program(program).with_context(|| format!("{program} is not installed"))?;
    let version = version_line(&binary, plan.implementation).await;
    let mut last_error = None;
    for _ in 0..PORT_ATTEMPTS {
        let dir = tempfile::Builder::new()
            .prefix("lb-sim-")
            .tempdir()
            .context("cannot create a temporary directory for the balancer")?;
        write_pki(dir.path(), pki)?;
        let addr = free_port()?;
        let (config, mut command) = match plan.implementation {
            Implementation::Haproxy { verify_client } => {
                let config = haproxy_config(addr, plan.gateway, plan.reencrypt, verify_client);
                let path = dir.path().join("haproxy.cfg");
                write(&path, &haproxy_global(dir.path()), &config)?;
                let mut command = Command::new(&binary);
                command.arg("-db").arg("-f").arg(&path);
                (config, command)
            }
            _ => {
                let config = nginx_config(addr, plan.gateway, plan.reencrypt);
                let path = dir.path().join("nginx.conf");
                write(&path, &nginx_main(dir.path()), &config)?;
                let mut command = Command::new(&binary);
                command
                    .arg("-p")
                    .arg(dir.path())
                    .arg("-e")
                    .arg(dir.path().join("error.log"))
                    .arg("-c")
                    .arg(&path);
                (config, command)
            }
        };
        let log = std::fs::File::create(dir.path().join("stderr.log"))
            .context("cannot create the balancer's log file")?;
        command
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        match ready(&mut child, addr).await {
            Ok(()) => {
                return Ok(RealBalancer {
                    addr,
                    version,
                    config,
                    child,
                    dir,
                });
            }
            Err(e) => {
                let _ = child.start_kill();
                let _ = tokio::time::timeout(STOP_WITHIN, child.wait()).await;
                let log = std::fs::read_to_string(dir.path().join("stderr.log"))
                    .unwrap_or_default()
                    + &std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
                last_error = Some(format!("{e}: {}", log.trim()));
            }
        }
    }
    bail!(
        "{program} did not start on a free loopback port ({PORT_ATTEMPTS} tries): {}",
        last_error.unwrap_or_default()
    )
}

/// HAProxy's frontend and backend (what the report shows); PEM files are
/// named relative to `crt-base`/`ca-base`.
pub fn haproxy_config(
    listen: SocketAddr,
    gateway: SocketAddr,
    reencrypt: bool,
    verify_client: bool,
) -> String {
    let verify = if verify_client {
        " verify optional ca-file root-ca.pem"
    } else {
        ""
    };
    let server_ssl = if reencrypt {
        format!(" ssl crt balancer.pem ca-file gateway.pem verify required sni str({GATEWAY_NAME})")
    } else {
        String::new()
    };
    format!(
        "frontend agents\n    mode tcp\n    bind {listen} ssl crt balancer.pem{verify}\n    default_backend gateway\n\n\
         backend gateway\n    mode tcp\n    server gw {gateway}{server_ssl}\n"
    )
}

fn haproxy_global(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "global\n    nbthread 1\n    crt-base {d}\n    ca-base {d}\n    pidfile {d}/haproxy.pid\n\n\
         defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 60s\n    timeout server 60s\n\n"
    )
}

/// nginx's `stream` block (what the report shows); PEM files are named
/// relative to the configuration's directory.
pub fn nginx_config(listen: SocketAddr, gateway: SocketAddr, reencrypt: bool) -> String {
    let proxy_ssl = if reencrypt {
        format!(
            "        proxy_ssl on;\n        proxy_ssl_certificate balancer.pem;\n        proxy_ssl_certificate_key balancer.key;\n        \
             proxy_ssl_trusted_certificate gateway.pem;\n        proxy_ssl_verify on;\n        \
             proxy_ssl_name {GATEWAY_NAME};\n        proxy_ssl_server_name on;\n"
        )
    } else {
        String::new()
    };
    format!(
        "stream {{\n    server {{\n        listen {listen} ssl;\n        ssl_certificate balancer.pem;\n        \
         ssl_certificate_key balancer.key;\n        proxy_pass {gateway};\n{proxy_ssl}    }}\n}}\n"
    )
}

fn nginx_main(dir: &Path) -> String {
    let d = dir.display();
    let module = nginx_stream_module()
        .map(|m| format!("load_module {};\n", m.display()))
        .unwrap_or_default();
    format!(
        "{module}daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\nevents {{ worker_connections 64; }}\n"
    )
}

fn write(path: &Path, head: &str, body: &str) -> anyhow::Result<()> {
    std::fs::write(path, format!("{head}{body}"))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// balancer.pem (chain, then key: HAProxy reads both from one file; nginx
/// reads the certificates), balancer.key, root-ca.pem, gateway.pem.
fn write_pki(dir: &Path, pki: &LabPki) -> anyhow::Result<()> {
    let files = [
        (
            "balancer.pem",
            format!("{}{}", pki.balancer.chain_pem, pki.balancer.key_pem),
        ),
        ("balancer.key", pki.balancer.key_pem.clone()),
        ("root-ca.pem", pki.root_ca.cert_pem.clone()),
        ("gateway.pem", pki.gateway.cert_pem.clone()),
    ];
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// A loopback port that was free a moment ago.
fn free_port() -> anyhow::Result<SocketAddr> {
    let probe = StdListener::bind("127.0.0.1:0").context("cannot find a free loopback port")?;
    Ok(probe.local_addr()?)
}

/// Poll `addr` until it accepts, the child exits, or [`READY_WITHIN`].
async fn ready(child: &mut Child, addr: SocketAddr) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + READY_WITHIN;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            bail!("exited ({status}) before accepting on {addr}");
        }
        if let Ok(Ok(_)) = tokio::time::timeout(POLL, TcpStream::connect(addr)).await {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("did not accept on {addr} within {READY_WITHIN:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Debian's dynamic stream module, when present.
fn nginx_stream_module() -> Option<PathBuf> {
    let module = PathBuf::from("/usr/lib/nginx/modules/ngx_stream_module.so");
    module.is_file().then_some(module)
}

/// Whether nginx was built with the stream module compiled in.
fn nginx_has_stream() -> bool {
    find_program("nginx")
        .and_then(|nginx| std::process::Command::new(nginx).arg("-V").output().ok())
        .is_some_and(|out| String::from_utf8_lossy(&out.stderr).contains("--with-stream "))
}

/// "HAProxy 2.6.12" or "nginx 1.22.1" from `-v`.
async fn version_line(binary: &Path, implementation: Implementation) -> String {
    let name = match implementation {
        Implementation::Nginx => "nginx",
        _ => "HAProxy",
    };
    let out = Command::new(binary).arg("-v").output().await;
    let text = out
        .map(|o| {
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        })
        .unwrap_or_default();
    let version = text
        .split(|c: char| c.is_whitespace() || c == '/')
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()) && w.contains('.'))
        .map(|v| v.split('-').next().unwrap_or(v).to_string());
    match version {
        Some(v) => format!("{name} {v}"),
        None => name.to_string(),
    }
}

const PORT_ATTEMPTS: usize = 3;
const READY_WITHIN: Duration = Duration::from_secs(10);
const STOP_WITHIN: Duration = Duration::from_secs(3);
const POLL: Duration = Duration::from_millis(20);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn haproxy_template_has_the_documented_directives() {
        let a: SocketAddr = "127.0.0.1:1000".parse().unwrap();
        let g: SocketAddr = "127.0.0.1:2000".parse().unwrap();
        let plain = haproxy_config(a, g, false, false);
        assert!(plain.contains("bind 127.0.0.1:1000 ssl crt balancer.pem\n"));
        assert!(plain.contains("server gw 127.0.0.1:2000\n"));
        let both = haproxy_config(a, g, true, true);
        assert!(both.contains("verify optional ca-file root-ca.pem"));
        assert!(both.contains("server gw 127.0.0.1:2000 ssl crt balancer.pem"));
        let nginx = nginx_config(a, g, true);
        assert!(nginx.contains("listen 127.0.0.1:1000 ssl;"));
        assert!(nginx.contains("proxy_ssl on;"));
        assert!(!nginx_config(a, g, false).contains("proxy_ssl"));
    }
}
