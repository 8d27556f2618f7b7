//! A backend at run time: its servers, the balancing state, and the order
//! in which a new connection tries the servers. No I/O.

use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::config::{BackendConfig, Balance};
use crate::slots::BackendSlots;

/// A backend and its balancing state.
#[derive(Debug)]
pub struct Backend {
    /// The validated configuration.
    pub config: BackendConfig,
    /// Open connections per server, limits, queue and slow start (kept
    /// across reloads by the server's `Pools`).
    pub slots: BackendSlots,
    /// The name, shared by every access record of the backend's connections.
    pub name: Arc<str>,
    /// Each configured server as the access log shows it (`host:port`),
    /// formatted once rather than per connection.
    server_names: Vec<Arc<str>>,
    next: AtomicUsize,
}

impl Backend {
    /// The configured server at `index` as the access log shows it.
    pub fn server_name(&self, index: usize) -> Option<Arc<str>> {
        self.server_names.get(index).cloned()
    }

    /// Runtime state for a configured backend, with slots of its own.
    pub fn new(config: BackendConfig) -> Backend {
        let slots = BackendSlots::standalone(&config);
        Backend::with_slots(config, slots)
    }

    /// Runtime state for a configured backend whose slots come from the
    /// server's pools.
    pub fn with_slots(config: BackendConfig, slots: BackendSlots) -> Backend {
        Backend {
            name: Arc::from(config.name.as_str()),
            server_names: config
                .servers
                .iter()
                .map(|server| Arc::from(server.to_string()))
                .collect(),
            config,
            slots,
            next: AtomicUsize::new(0),
        }
    }

    /// The order in which a new connection from `client` tries the servers:
    /// the balanced pick among the servers that are up first, then the other
    /// up servers, then the servers health checks marked down (so that when
    /// every server is down, connections still try them: a slow failure
    /// beats a certain one).
    pub fn order(&self, client: IpAddr) -> Vec<usize> {
        let rotation = self.rotation(client);
        let (up, down): (Vec<usize>, Vec<usize>) =
            rotation.into_iter().partition(|&i| self.is_up(i));
        let mut order = up;
        // slow start without a limit: ramp the share of a new server
        self.slots.defer_ramping(&mut order);
        order.extend(down);
        order
    }

    /// Whether health checks consider server `index` up (always, without
    /// checks). The state lives in the slots, kept across reloads.
    pub fn is_up(&self, index: usize) -> bool {
        self.slots.is_up(index)
    }

    /// Mark server `index` up or down (its gauge follows); returns whether
    /// that changed anything.
    pub fn set_up(&self, index: usize, up: bool) -> bool {
        self.slots.set_up(index, up)
    }

    fn rotation(&self, client: IpAddr) -> Vec<usize> {
        let n = self.config.servers.len();
        if n == 0 {
            return Vec::new();
        }
        let is_up = |i: usize| self.is_up(i);
        let first = match self.config.balance {
            Balance::RoundRobin => self.next.fetch_add(1, Ordering::Relaxed) % n,
            Balance::SourceHash => {
                // SipHash with fixed keys: stable across restarts and processes.
                let mut h = std::hash::DefaultHasher::new();
                client.hash(&mut h);
                (h.finish() % n as u64) as usize
            }
            Balance::LeastConn => {
                // Rotate the start so that ties spread out; prefer servers that are up.
                let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
                (0..n)
                    .map(|k| (start + k) % n)
                    .min_by_key(|&i| (!is_up(i), self.slots.active(i)))
                    .unwrap_or(start)
            }
        };
        (0..n).map(|k| (first + k) % n).collect()
    }

    /// Connections currently open to server `index` (every generation's).
    pub fn active(&self, index: usize) -> usize {
        self.slots.active(index)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::config::ServerAddr;

    fn backend(n: usize, balance: Balance) -> Arc<Backend> {
        Arc::new(Backend::new(BackendConfig {
            name: "b".into(),
            servers: (0..n)
                .map(|i| ServerAddr {
                    host: "127.0.0.1".into(),
                    port: 1000 + i as u16,
                })
                .collect(),
            balance,
            connect_timeout: Duration::from_secs(1),
            idle_timeout: None,
            tcp_keepalive: None,
            via: None,
            send_proxy_protocol: crate::config::SendProxy::Off,
            health_check: None,
            limits: crate::config::ServerLimits::default(),
        }))
    }

    const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));

    #[test]
    fn round_robin_rotates_and_lists_every_server() {
        let b = backend(3, Balance::RoundRobin);
        assert_eq!(b.order(CLIENT), vec![0, 1, 2]);
        assert_eq!(b.order(CLIENT), vec![1, 2, 0]);
        assert_eq!(b.order(CLIENT), vec![2, 0, 1]);
        assert_eq!(b.order(CLIENT), vec![0, 1, 2]);
    }

    #[test]
    fn source_hash_is_stable_per_client_and_spreads() {
        let b = backend(4, Balance::SourceHash);
        let first = b.order(CLIENT)[0];
        for _ in 0..10 {
            assert_eq!(b.order(CLIENT)[0], first);
        }
        let picks: std::collections::HashSet<usize> = (0..64u8)
            .map(|i| b.order(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, i)))[0])
            .collect();
        assert!(picks.len() >= 3, "64 clients landed on {picks:?}");
    }

    #[test]
    fn down_servers_go_last_and_are_still_tried_when_all_are_down() {
        let b = backend(3, Balance::RoundRobin);
        assert!(b.set_up(0, false));
        assert!(!b.set_up(0, false), "no change the second time");
        assert_eq!(b.order(CLIENT), vec![1, 2, 0]);
        assert_eq!(b.order(CLIENT), vec![1, 2, 0]);
        assert_eq!(b.order(CLIENT), vec![2, 1, 0]);
        b.set_up(1, false);
        b.set_up(2, false);
        assert_eq!(
            b.order(CLIENT).len(),
            3,
            "all down: every server is still tried"
        );
        let h = backend(4, Balance::SourceHash);
        let first = h.order(CLIENT)[0];
        h.set_up(first, false);
        let moved = h.order(CLIENT);
        assert_ne!(moved[0], first);
        assert_eq!(moved[3], first);
        h.set_up(first, true);
        assert_eq!(h.order(CLIENT)[0], first, "back up: the client goes home");
    }

    #[test]
    fn least_conn_picks_the_idlest() {
        let b = backend(3, Balance::LeastConn);
        let open = |i| b.slots.try_acquire(i).unwrap();
        let _g0 = open(0);
        let _g0b = open(0);
        let g2 = open(2);
        assert_eq!(b.order(CLIENT)[0], 1);
        let _g1 = open(1);
        let _g1b = open(1);
        assert_eq!(b.order(CLIENT)[0], 2);
        drop(g2);
        assert_eq!(b.active(2), 0);
        assert_eq!(b.order(CLIENT)[0], 2);
    }
}
