//! An in-process passthru on 127.0.0.1:0, configured through the real TOML
//! path (so every test also exercises `Config::from_toml`), with its access
//! records delivered to the test.

use std::net::SocketAddr;
use std::time::Duration;

use passthru::access_log::{AccessLog, AccessRecord};
use passthru::{Config, Server};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::wait::within;

/// Builder for a proxy under test.
#[derive(Debug, Clone, Default)]
pub struct ProxyUnderTest {
    bind: Option<String>,
    listener: Vec<String>,
    routes: Vec<String>,
    backends: Vec<String>,
    default: Option<String>,
    admin: bool,
    forwarding: Option<String>,
}

/// A running proxy.
pub struct RunningProxy {
    /// The listener's bound address.
    pub addr: SocketAddr,
    /// The admin endpoint's address, with [`ProxyUnderTest::admin`].
    pub admin_addr: Option<SocketAddr>,
    /// The server's metrics.
    pub metrics: std::sync::Arc<passthru::metrics::Metrics>,
    /// Applies another configuration, as SIGHUP does.
    pub reload: passthru::reload::ReloadHandle,
    records: mpsc::UnboundedReceiver<AccessRecord>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl ProxyUnderTest {
    /// A proxy with one listener on 127.0.0.1:0 and nothing else yet.
    pub fn new() -> ProxyUnderTest {
        ProxyUnderTest::default()
    }

    /// Bind another address than 127.0.0.1:0 (e.g. "[::1]:0").
    pub fn bind(mut self, addr: &str) -> ProxyUnderTest {
        self.bind = Some(addr.to_string());
        self
    }

    /// Add a `key = value` line to the listener table.
    pub fn listener_option(mut self, line: &str) -> ProxyUnderTest {
        self.listener.push(line.to_string());
        self
    }

    /// `[tuning] forwarding = MODE` (auto, copy, splice).
    pub fn forwarding(mut self, mode: &str) -> ProxyUnderTest {
        self.forwarding = Some(mode.to_string());
        self
    }

    /// An `[admin]` endpoint on 127.0.0.1:0.
    pub fn admin(mut self) -> ProxyUnderTest {
        self.admin = true;
        self
    }

    /// A route for `names` to `backend`.
    pub fn route(self, names: &[&str], backend: &str) -> ProxyUnderTest {
        self.route_alpn(names, &[], backend)
    }

    /// A route for `names` with an ALPN constraint.
    pub fn route_alpn(mut self, names: &[&str], alpn: &[&str], backend: &str) -> ProxyUnderTest {
        let mut t = format!("[[route]]\nserver_names = {names:?}\nbackend = {backend:?}\n");
        if !alpn.is_empty() {
            t.push_str(&format!("alpn = {alpn:?}\n"));
        }
        self.routes.push(t);
        self
    }

    /// `[default] backend = …`.
    pub fn default_backend(mut self, backend: &str) -> ProxyUnderTest {
        self.default = Some(backend.to_string());
        self
    }

    /// A backend with these servers.
    pub fn backend(self, name: &str, servers: &[SocketAddr]) -> ProxyUnderTest {
        let servers: Vec<String> = servers.iter().map(ToString::to_string).collect();
        self.backend_with(name, &servers, &[])
    }

    /// A backend with servers written as text and extra `key = value` lines.
    pub fn backend_with(
        mut self,
        name: &str,
        servers: &[String],
        extra: &[&str],
    ) -> ProxyUnderTest {
        let mut t = format!("[[backend]]\nname = {name:?}\nservers = {servers:?}\n");
        if !extra.iter().any(|l| l.starts_with("connect_timeout")) {
            t.push_str("connect_timeout = \"2s\"\n");
        }
        for line in extra {
            t.push_str(line);
            t.push('\n');
        }
        self.backends.push(t);
        self
    }

    /// The configuration file this builder stands for.
    pub fn toml(&self) -> String {
        let bind = self.bind.as_deref().unwrap_or("127.0.0.1:0");
        let mut t = format!("[[listener]]\nname = \"test\"\nbind = \"{bind}\"\n");
        for line in &self.listener {
            t.push_str(line);
            t.push('\n');
        }
        for r in &self.routes {
            t.push_str(r);
        }
        if let Some(d) = &self.default {
            t.push_str(&format!("[default]\nbackend = {d:?}\n"));
        }
        for b in &self.backends {
            t.push_str(b);
        }
        if let Some(mode) = &self.forwarding {
            t.push_str(&format!("[tuning]\nforwarding = {mode:?}\n"));
        }
        if self.admin {
            t.push_str("[admin]\nbind = \"127.0.0.1:0\"\n");
        }
        t
    }

    /// Bind and run; returns once the listener is bound.
    pub async fn spawn(self) -> RunningProxy {
        let text = self.toml();
        let config =
            Config::from_toml(&text, "test.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
        let (log, records) = AccessLog::channel();
        let mut server = Server::bind(&config, log).expect("bind");
        server.set_drain(Duration::ZERO, Duration::from_secs(2));
        let addr = server.local_addrs()[0].1;
        let admin_addr = server.admin_addr();
        let metrics = server.metrics();
        let reload = server.reload_handle();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = rx.await;
        }));
        RunningProxy {
            addr,
            admin_addr,
            metrics,
            reload,
            records,
            shutdown: Some(tx),
            task: Some(task),
        }
    }
}

impl RunningProxy {
    /// The access record of the next connection to finish.
    pub async fn next_record(&mut self) -> AccessRecord {
        within("an access record", self.records.recv())
            .await
            .expect("proxy stopped")
    }

    /// Stop accepting and wait for the server to return.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            within("the proxy to stop", task)
                .await
                .expect("server task");
        }
    }
}
