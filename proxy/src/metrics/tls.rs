//! Metrics about TLS that passthru sees without terminating it: signs that
//! a device in front offloads SSL, and what handshake observation learns.
//! Cardinality is bounded: signals come from a fixed list, outcomes and
//! alerts from closed sets, and certificates are bucketed by days left,
//! never labelled by certificate.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The TLS families.
pub(super) struct TlsMetrics {
    offload: Family<SignalLabels, Counter>,
    handshakes: Family<HandshakeLabels, Counter>,
    expiry: Family<BackendLabels, Histogram, fn() -> Histogram>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SignalLabels {
    listener: String,
    signal: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct HandshakeLabels {
    listener: String,
    backend: String,
    outcome: String,
    alert: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BackendLabels {
    backend: String,
}

fn expiry_histogram() -> Histogram {
    Histogram::new(EXPIRY_BUCKETS)
}

impl TlsMetrics {
    pub(super) fn register(registry: &mut Registry) -> TlsMetrics {
        let offload = Family::<SignalLabels, Counter>::default();
        let handshakes = Family::<HandshakeLabels, Counter>::default();
        let expiry: Family<BackendLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(expiry_histogram);
        registry.register(
            "passthru_offload_signals",
            "Signs that a device in front terminates TLS (offload headers, a PROXY v2 SSL TLV), by listener and signal",
            offload.clone(),
        );
        registry.register(
            "passthru_handshakes",
            "Handshakes followed with observe_handshake, by listener, backend, outcome and plaintext alert",
            handshakes.clone(),
        );
        registry.register(
            "passthru_client_cert_expiry_days",
            "Days left on client certificates seen in clear (TLS 1.2), by backend",
            expiry.clone(),
        );
        TlsMetrics {
            offload,
            handshakes,
            expiry,
        }
    }

    pub(super) fn offload_signal(&self, listener: &str, signal: &str) {
        self.offload
            .get_or_create(&SignalLabels {
                listener: listener.to_string(),
                signal: signal.to_ascii_lowercase(),
            })
            .inc();
    }

    pub(super) fn handshake(&self, listener: &str, backend: &str, outcome: &str, alert: &str) {
        self.handshakes
            .get_or_create(&HandshakeLabels {
                listener: listener.to_string(),
                backend: backend.to_string(),
                outcome: outcome.to_string(),
                alert: alert.to_string(),
            })
            .inc();
    }

    pub(super) fn client_cert_expiry(&self, backend: &str, days: f64) {
        self.expiry
            .get_or_create(&BackendLabels {
                backend: backend.to_string(),
            })
            .observe(days);
    }
}

/// Days left: expired, within a week, a month, a quarter, a year, more.
const EXPIRY_BUCKETS: [f64; 6] = [0.0, 7.0, 30.0, 90.0, 365.0, 730.0];

impl std::fmt::Debug for TlsMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsMetrics")
    }
}
