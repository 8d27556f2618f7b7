//! Active TCP health checks: every `interval`, connect to each server of a
//! backend (through its `via` hop when it has one) within `timeout`. A
//! server that fails `fall` checks in a row is marked down and balanced
//! last; one that passes `rise` in a row is marked up again. The state (and
//! the `passthru_backend_server_up` gauge with it) lives in the backend's
//! slots, so a reload keeps it: checks of the new generation go on from it.

use std::sync::Arc;

use passthru_net::dial::dial;
use passthru_net::tunnel::tunnel;
use tokio::time::{MissedTickBehavior, interval};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::backend::Backend;
use crate::config::HealthCheck;

/// Start the checks of every backend that has one; they stop when `stop`
/// is cancelled.
pub fn spawn(backends: &[Arc<Backend>], stop: &CancellationToken) {
    for backend in backends {
        let Some(check) = backend.config.health_check else {
            continue;
        };
        for index in 0..backend.config.servers.len() {
            tokio::spawn(run(Arc::clone(backend), index, check, stop.clone()));
        }
    }
}

async fn run(backend: Arc<Backend>, index: usize, check: HealthCheck, stop: CancellationToken) {
    let Some(server) = backend.config.servers.get(index).cloned() else {
        return;
    };
    let name = server.to_string();
    let mut ticks = interval(check.interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let (mut passes, mut failures) = (0u32, 0u32);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = stop.cancelled() => return,
        }
        let result = match &backend.config.via {
            None => dial(&server, check.timeout, None)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            Some(via) => tunnel(via, &name, check.timeout)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
        };
        match result {
            Ok(()) => {
                passes = passes.saturating_add(1);
                failures = 0;
                if passes >= check.rise && backend.set_up(index, true) {
                    info!(backend = %backend.config.name, server = %name, passes, "server is up again");
                }
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                passes = 0;
                if failures >= check.fall && backend.set_up(index, false) {
                    warn!(backend = %backend.config.name, server = %name, failures, %error, "server is down; balancing skips it");
                }
            }
        }
    }
}
