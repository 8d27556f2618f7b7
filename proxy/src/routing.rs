//! [`Routing`]: the routes, backends and forwarding mode a connection is
//! served with, and what a reload replaces as a whole. Each connection takes
//! the current one when it is accepted and keeps it to the end.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::backend::Backend;
use crate::config::{Config, Forwarding};
use crate::health;
use crate::route::RouteTable;
use crate::slots::Pools;

/// Routes and backends: what a reload replaces. Each connection takes the
/// current one when it is accepted and keeps it to the end.
#[derive(Debug)]
pub struct Routing {
    /// The route table.
    pub table: RouteTable,
    /// Each route's name (`name`, or `route[N]`), indexed as the routes;
    /// shared by the access records of its connections.
    pub route_names: Vec<Arc<str>>,
    /// Backends, indexed as in the configuration.
    pub backends: Vec<Arc<Backend>>,
    /// `[tuning] forwarding`.
    pub forwarding: Forwarding,
    /// Stops this generation's health checks when a reload replaces it.
    checks: CancellationToken,
}

impl Routing {
    /// Build from a validated configuration (no health checks running).
    /// Server slots come from `pools`, so servers that stay across a
    /// reload keep counting the connections opened before it.
    pub fn new(config: &Config, pools: &Pools) -> Routing {
        Routing {
            table: RouteTable::from_routes(&config.routes, config.default_backend),
            route_names: config
                .routes
                .iter()
                .map(|r| Arc::from(r.name.as_str()))
                .collect(),
            backends: config
                .backends
                .iter()
                .cloned()
                .map(|b| {
                    let slots = pools.slots_for(&b);
                    Arc::new(Backend::with_slots(b, slots))
                })
                .collect(),
            forwarding: config.forwarding,
            checks: CancellationToken::new(),
        }
    }

    /// Start this generation's health checks.
    pub(crate) fn start_checks(&self) {
        health::spawn(&self.backends, &self.checks);
    }

    /// Stop this generation's health checks (replaced, or the server stopped).
    pub(crate) fn stop_checks(&self) {
        self.checks.cancel();
    }
}

/// Each backend's name and its servers as text, for the metric labels.
pub(crate) fn backend_servers(config: &Config) -> Vec<(String, Vec<String>)> {
    config
        .backends
        .iter()
        .map(|b| {
            (
                b.name.clone(),
                b.servers.iter().map(ToString::to_string).collect(),
            )
        })
        .collect()
}
