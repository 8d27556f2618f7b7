//! What ClientHellos look like on the wire, per listener: their size, the
//! reads and TLS records they took, and the key-share groups they offer.
//! Cardinality is bounded: groups come from a closed list of names plus
//! `other`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// The ClientHello families.
pub(super) struct HelloMetrics {
    bytes: Family<ListenerLabels, Histogram, fn() -> Histogram>,
    reads: Family<ListenerLabels, Histogram, fn() -> Histogram>,
    records: Family<ListenerLabels, Histogram, fn() -> Histogram>,
    key_shares: Family<GroupLabels, Counter>,
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
        let labels = ListenerLabels {
            listener: listener.to_owned(),
        };
        self.bytes.get_or_create(&labels).observe(bytes as f64);
        self.reads.get_or_create(&labels).observe(reads as f64);
        self.records.get_or_create(&labels).observe(records as f64);
        for group in key_shares {
            let labels = GroupLabels {
                listener: labels.listener.clone(),
                group,
            };
            self.key_shares.get_or_create(&labels).inc();
        }
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
