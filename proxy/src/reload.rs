//! Reload on SIGHUP: re-read the configuration file with the same
//! `Config::from_file`, and on success swap in its routes and backends
//! (new connections use them, open connections keep theirs); on failure log
//! the error and keep the running configuration. Listener and admin changes
//! cannot be applied to bound sockets: they are reported as needing a
//! restart, not applied silently.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;

use crate::config::{Config, ListenerConfig};
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
        let mut warnings = Vec::new();
        if config.listeners != self.listeners {
            warnings.push(format!(
                "{}: listener settings changed; they take effect only after a restart",
                config.origin
            ));
        }
        warnings
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
