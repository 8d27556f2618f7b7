//! The per-client limit of a listener (spec: "Per-client limit"): open
//! connections per client address, the PROXY header's when the listener
//! expects one. A connection holds a [`ClientSlot`] until it ends; the
//! table keeps only addresses with connections open, so its size is
//! bounded by the listener's `max_connections`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::config::ClientLimit;

/// Open connections per client address, for one listener.
#[derive(Debug, Default)]
pub struct ClientTable {
    limit: ClientLimit,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl ClientTable {
    /// A table enforcing `limit` (a limit of 0 admits everyone, uncounted).
    pub fn new(limit: ClientLimit) -> ClientTable {
        ClientTable {
            limit,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// Count a connection from `client`: `Ok(None)` when no limit applies
    /// to it (none set, or the address is exempt), `Ok(Some(slot))` held
    /// until the connection ends, `Err(AtLimit)` when the address is at its limit.
    pub fn admit(self: &Arc<Self>, client: IpAddr) -> Result<Option<ClientSlot>, AtLimit> {
        let client = client.to_canonical();
        if self.limit.max_per_client == 0 || self.limit.exempt.contains(client) {
            return Ok(None);
        }
        let mut open = self.open();
        let count = open.entry(client).or_insert(0);
        if *count >= self.limit.max_per_client {
            return Err(AtLimit);
        }
        *count += 1;
        Ok(Some(ClientSlot {
            table: Arc::clone(self),
            client,
        }))
    }

    /// Connections `client` has open (counted ones).
    pub fn open_from(&self, client: IpAddr) -> usize {
        self.open()
            .get(&client.to_canonical())
            .copied()
            .unwrap_or(0)
    }

    fn open(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The client address already has `max_connections_per_client` open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtLimit;

/// One counted connection of a client; uncounted when it drops.
#[derive(Debug)]
pub struct ClientSlot {
    table: Arc<ClientTable>,
    client: IpAddr,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.table.open();
        if let Some(count) = open.get_mut(&self.client) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::TrustedProxies;

    fn table(max: usize, exempt: &[&str]) -> Arc<ClientTable> {
        let exempt = TrustedProxies::parse(exempt).unwrap();
        Arc::new(ClientTable::new(ClientLimit {
            max_per_client: max,
            exempt,
        }))
    }

    #[test]
    fn limits_each_address_and_forgets_it_at_zero() {
        let t = table(2, &[]);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = t.admit(a).unwrap();
        let second = t.admit(a).unwrap();
        assert!(first.is_some() && second.is_some());
        assert!(t.admit(a).is_err(), "a third from the same address");
        assert!(
            t.admit(b).unwrap().is_some(),
            "another address is not affected"
        );
        drop(first);
        assert_eq!(t.open_from(a), 1);
        let third = t.admit(a).unwrap();
        assert!(third.is_some(), "a freed place is taken again");
        drop((second, third));
        assert_eq!(t.open_from(a), 0);
        assert!(
            t.open().is_empty(),
            "no entry kept for addresses with nothing open"
        );
    }

    #[test]
    fn exempt_and_unlimited_are_not_counted() {
        let t = table(1, &["10.9.0.0/24"]);
        let monitor: IpAddr = "10.9.0.7".parse().unwrap();
        let held: Vec<_> = (0..5).map(|_| t.admit(monitor).unwrap()).collect();
        assert!(held.iter().all(Option::is_none));
        let mapped: IpAddr = "::ffff:192.0.2.9".parse().unwrap();
        let _one = t.admit(mapped).unwrap();
        assert!(
            t.admit("192.0.2.9".parse().unwrap()).is_err(),
            "an IPv4-mapped address is the same client"
        );
        let none = table(0, &[]);
        assert!(none.admit(monitor).unwrap().is_none());
    }
}
