//! Reload on SIGHUP: re-read the configuration file with the same
//! `Config::from_file`, and on success swap in its routes and backends
//! (new connections use them, open connections keep theirs); on failure log
//! the error and keep the running configuration. Listener and admin changes
//! cannot be applied to bound sockets: they are reported as needing a
//! restart, not applied silently.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;

use crate::config::{AdminConfig, Config, ListenerConfig};
use crate::metrics::Metrics;
use crate::routing::{Routing, backend_servers};
use crate::signal::Reloads;
use crate::slots::Pools;

/// Applies a new configuration's routes and backends to a running server.
#[derive(Debug, Clone)]
pub struct ReloadHandle {
    pub(crate) routing: watch::Sender<Arc<Routing>>,
    pub(crate) pools: Arc<Pools>,
    pub(crate) metrics: Arc<Metrics>,
    /// `[admin]` as the server runs it: the drain settings change on reload.
    pub(crate) admin: watch::Sender<AdminConfig>,
    pub(crate) listeners: Vec<ListenerConfig>,
}

impl ReloadHandle {
    /// Swap in the routes and backends of `config`. New connections use
    /// them; open connections keep theirs. Listener and admin changes cannot
    /// be applied to bound sockets: they are returned as warnings.
    pub fn apply(&self, config: &Config) -> Vec<String> {
        self.metrics.set_backends(&backend_servers(config));
        let routing = Routing::new(config, &self.pools);
        let names: Vec<&str> = config.backends.iter().map(|b| b.name.as_str()).collect();
        self.pools.retain(&names);
        routing.start_checks();
        let old = self.routing.send_replace(Arc::new(routing));
        old.stop_checks();
        self.admin.send_modify(|running| {
            running.drain_delay = config.admin.drain_delay;
            running.drain_timeout = config.admin.drain_timeout;
            running.monitor_fall = config.admin.monitor_fall;
        });
        let running_bind = self.admin.borrow().bind;
        let mut keys = listener_changes(&self.listeners, &config.listeners);
        if config.admin.bind != running_bind {
            keys.push("admin.bind".to_string());
        }
        keys.into_iter()
            .map(|key| {
                format!(
                    "{}: {key} changed; it takes effect only after a restart",
                    config.origin
                )
            })
            .collect()
    }

    /// Re-read `path` on every SIGHUP from `reloads` and apply it, logging
    /// what happened; runs until the process ends.
    pub async fn serve(self, reloads: Reloads, path: PathBuf) {
        reloads
            .run(move || match Config::from_file(&path) {
                Ok(new) => {
                    for warning in new.warnings.iter().chain(&self.apply(&new)) {
                        tracing::warn!("{warning}");
                    }
                    tracing::info!(summary = %new.summary(), "configuration reloaded");
                }
                Err(e) => {
                    tracing::error!("reload failed; keeping the running configuration: {e}");
                }
            })
            .await;
    }
}

/// The keys of `new` listeners that differ from the bound `old` ones, by
/// name (`listener[0].bind`, …); added or removed listeners as
/// `listener[N]`.
fn listener_changes(old: &[ListenerConfig], new: &[ListenerConfig]) -> Vec<String> {
    let mut keys = Vec::new();
    for (i, (o, n)) in old.iter().zip(new).enumerate() {
        let changed = [
            ("name", o.name != n.name),
            ("bind", o.bind != n.bind),
            (
                "client_hello_timeout",
                o.client_hello_timeout != n.client_hello_timeout,
            ),
            ("max_client_hello", o.max_client_hello != n.max_client_hello),
            ("max_connections", o.max_connections != n.max_connections),
            ("max_pending", o.max_pending != n.max_pending),
            ("tcp_keepalive", o.tcp_keepalive != n.tcp_keepalive),
            ("accept_connect", o.accept_connect != n.accept_connect),
            (
                "observe_handshake",
                o.observe_handshake != n.observe_handshake,
            ),
            ("proxy_protocol", o.proxy_protocol != n.proxy_protocol),
            ("trusted_proxies", o.trusted_proxies != n.trusted_proxies),
            (
                "front_idle_timeout",
                o.front_idle_timeout != n.front_idle_timeout,
            ),
            (
                "max_connections_per_client",
                o.client_limit.max_per_client != n.client_limit.max_per_client,
            ),
            (
                "client_limit_exempt",
                o.client_limit.exempt != n.client_limit.exempt,
            ),
        ];
        keys.extend(
            changed
                .iter()
                .filter(|(_, c)| *c)
                .map(|(k, _)| format!("listener[{i}].{k}")),
        );
    }
    let (short, long) = if old.len() < new.len() {
        (old.len(), new.len())
    } else {
        (new.len(), old.len())
    };
    keys.extend((short..long).map(|i| format!("listener[{i}]")));
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_changed_listener_key_is_named() {
        let text = |bind: &str, max: u32| {
            format!(
                "[[listener]]\nbind = \"{bind}\"\nmax_connections = {max}\n\
                 [[route]]\nserver_names = [\"gw.example.com\"]\nbackend = \"gw\"\n\
                 [[backend]]\nname = \"gw\"\nservers = [\"127.0.0.1:9443\"]\n"
            )
        };
        let old = Config::from_toml(&text("127.0.0.1:8443", 10), "a").unwrap();
        let new = Config::from_toml(&text("127.0.0.1:8444", 20), "a").unwrap();
        assert_eq!(
            listener_changes(&old.listeners, &new.listeners),
            [
                "listener[0].name",
                "listener[0].bind",
                "listener[0].max_connections"
            ]
        );
        assert!(listener_changes(&old.listeners, &old.listeners).is_empty());
        assert_eq!(listener_changes(&old.listeners, &[]), ["listener[0]"]);
    }
}
