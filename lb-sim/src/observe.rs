//! What each hop saw: the certificate it was shown, the one it presented,
//! the TLS alert or error, the bytes it moved; and the [`Ledger`] the
//! components of one run report into, which also knows when the run has
//! settled (every connection some hop opened has been reported by the hop
//! that accepted it). The verdict drawn from these lives in `verdict.rs`.

pub use hop::{
    CertSeen, Failure, FailureKind, Hop, HopRecord, Layer, Leg, PinMismatch, Refusal, Role,
    alert_name,
};
pub use ledger::Ledger;

mod hop;
mod ledger;
