//! The [`Ledger`] the components of one run report into: it counts the
//! connections dialled to each hop and collects each hop's records, so a
//! run knows when it has settled (every connection some hop opened has been
//! reported by the hop that accepted it).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::hop::{Hop, HopRecord};

/// Where the components of one run report, shared by all of them.
#[derive(Debug, Clone)]
pub struct Ledger {
    journal: Arc<watch::Sender<Journal>>,
}

#[derive(Debug, Default)]
struct Journal {
    dialed: BTreeMap<Hop, usize>,
    records: Vec<HopRecord>,
}

impl Journal {
    fn settled(&self) -> bool {
        self.dialed
            .iter()
            .all(|(hop, dialed)| self.records.iter().filter(|r| r.hop == *hop).count() >= *dialed)
    }
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Ledger {
        Ledger {
            journal: Arc::new(watch::channel(Journal::default()).0),
        }
    }

    /// A TCP connection to `hop` was established; `hop` will report it.
    pub fn dialed(&self, hop: Hop) {
        self.journal
            .send_modify(|j| *j.dialed.entry(hop).or_default() += 1);
    }

    /// A hop finished a connection.
    pub fn report(&self, record: HopRecord) {
        self.journal.send_modify(|j| j.records.push(record));
    }

    /// Wait until every dialled connection has been reported, at most
    /// `limit`. Returns whether it settled.
    pub async fn settled(&self, limit: Duration) -> bool {
        let mut rx = self.journal.subscribe();
        tokio::time::timeout(limit, rx.wait_for(Journal::settled))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Wait until more than `seen` records were reported; returns the new
    /// ones in report order (`serve` prints them as they arrive).
    pub async fn reports_after(&self, seen: usize) -> Vec<HopRecord> {
        let mut rx = self.journal.subscribe();
        match rx.wait_for(|j| j.records.len() > seen).await {
            Ok(journal) => journal.records.iter().skip(seen).cloned().collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The records so far, in path order (then report order).
    pub fn records(&self) -> Vec<HopRecord> {
        let mut records = self.journal.borrow().records.clone();
        records.sort_by_key(|r| r.hop);
        records
    }
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_settles_only_when_every_dialled_hop_reported() {
        let ledger = Ledger::new();
        ledger.dialed(Hop::Gateway);
        assert!(!ledger.journal.borrow().settled());
        ledger.report(HopRecord::new(Hop::Gateway, "gateway"));
        assert!(ledger.journal.borrow().settled());
    }
}
