//! What ClientHellos look like on the wire, per listener: their size, the
//! reads and TLS records they took, and the key-share groups they offer.
//! Cardinality is bounded: groups come from a closed list of names plus
//! `other`.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// The ClientHello families, and each seen listener's series kept at
/// hand: a hello costs a map lookup by listener name, not four label
/// allocations and family lookups (about 4 µs on every connection's path
/// to its server).
pub(super) struct HelloMetrics {
    bytes: Family<ListenerLabels, Histogram, fn() -> Histogram>,
    reads: Family<ListenerLabels, Histogram, fn() -> Histogram>,
    records: Family<ListenerLabels, Histogram, fn() -> Histogram>,
    key_shares: Family<GroupLabels, Counter>,
    listeners: RwLock<HashMap<String, ListenerHello>>,
}

/// One listener's ClientHello series (handles sharing the families' values).
struct ListenerHello {
    bytes: Histogram,
    reads: Histogram,
    records: Histogram,
    /// By group name; the groups are a closed list (plus `other`).
    key_shares: HashMap<&'static str, Counter>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ListenerLabels {
    listener: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct GroupLabels {
    listener: String,
    group: &'static str,
}

fn bytes_histogram() -> Histogram {
    Histogram::new(BYTES_BUCKETS)
}

fn reads_histogram() -> Histogram {
    Histogram::new(READS_BUCKETS)
}

fn records_histogram() -> Histogram {
    Histogram::new(RECORDS_BUCKETS)
}

impl HelloMetrics {
    pub(super) fn register(registry: &mut Registry) -> HelloMetrics {
        let bytes: Family<_, _, fn() -> Histogram> = Family::new_with_constructor(bytes_histogram);
        let reads: Family<_, _, fn() -> Histogram> = Family::new_with_constructor(reads_histogram);
        let records: Family<_, _, fn() -> Histogram> =
            Family::new_with_constructor(records_histogram);
        let key_shares = Family::<GroupLabels, Counter>::default();
        registry.register_with_unit(
            "passthru_client_hello",
            "Size of ClientHellos (all records carrying them, headers included), by listener",
            Unit::Bytes,
            bytes.clone(),
        );
        registry.register(
            "passthru_client_hello_reads",
            "Socket reads it took to receive a whole ClientHello, by listener",
            reads.clone(),
        );
        registry.register(
            "passthru_client_hello_records",
            "TLS records a ClientHello spanned, by listener",
            records.clone(),
        );
        registry.register(
            "passthru_client_hello_key_shares",
            "Key shares offered in ClientHellos, by listener and named group (GREASE not counted)",
            key_shares.clone(),
        );
        HelloMetrics {
            bytes,
            reads,
            records,
            key_shares,
            listeners: RwLock::default(),
        }
    }

    pub(super) fn client_hello<'a>(
        &self,
        listener: &str,
        bytes: usize,
        reads: usize,
        records: usize,
        key_shares: impl Iterator<Item = &'static str> + 'a,
    ) {
        let known = self
            .listeners
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(series) = known.get(listener) else {
            drop(known);
            self.keep_listener(listener);
            return self.client_hello(listener, bytes, reads, records, key_shares);
        };
        series.bytes.observe(bytes as f64);
        series.reads.observe(reads as f64);
        series.records.observe(records as f64);
        // Groups this listener has not seen yet (allocates only then).
        let mut new = Vec::new();
        for group in key_shares {
            match series.key_shares.get(group) {
                Some(counter) => {
                    counter.inc();
                }
                None => new.push(group),
            }
        }
        drop(known);
        for group in new {
            self.keep_key_share(listener, group).inc();
        }
    }

    /// Create and keep the listener's series (on its first hello).
    fn keep_listener(&self, listener: &str) {
        let mut known = self
            .listeners
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if known.contains_key(listener) {
            return;
        }
        let labels = ListenerLabels {
            listener: listener.to_owned(),
        };
        let series = ListenerHello {
            bytes: self.bytes.get_or_create(&labels).clone(),
            reads: self.reads.get_or_create(&labels).clone(),
            records: self.records.get_or_create(&labels).clone(),
            key_shares: HashMap::new(),
        };
        known.insert(listener.to_owned(), series);
    }

    /// The `group` counter of `listener`, kept for its next hellos.
    fn keep_key_share(&self, listener: &str, group: &'static str) -> Counter {
        let counter = self
            .key_shares
            .get_or_create(&GroupLabels {
                listener: listener.to_owned(),
                group,
            })
            .clone();
        let mut known = self
            .listeners
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(series) = known.get_mut(listener) {
            series.key_shares.insert(group, counter.clone());
        }
        counter
    }
}

/// `passthru_client_hello_bytes` buckets: up to the 16 KiB that
/// `max_client_hello` allows by default; 1,500 and 2,048 tell hellos that
/// fit one Ethernet segment from post-quantum ones.
const BYTES_BUCKETS: [f64; 9] = [
    256.0, 512.0, 1024.0, 1500.0, 2048.0, 4096.0, 8192.0, 12288.0, 16384.0,
];

/// `passthru_client_hello_reads` buckets: 1, 2, 3, 5, 10, 100 and above.
const READS_BUCKETS: [f64; 6] = [1.0, 2.0, 3.0, 5.0, 10.0, 100.0];

/// `passthru_client_hello_records` buckets: 1 to 4, then above.
const RECORDS_BUCKETS: [f64; 4] = [1.0, 2.0, 3.0, 4.0];
