//! Chain verification that says why: runs rustls's webpki verifiers
//! (client or server purpose, optional name) and turns their typed errors
//! into [`VerifyError`]s that carry the certificate, the names and the time
//! deltas involved. No I/O; `probe` reuses it for the server's chain.

pub use anchors::{SetupError, TrustAnchors};
pub use check::{check, verify};
pub use explain::explain;
pub use summary::Summary;
pub use verdict::{Purpose, VerifyError, VerifyReport};

mod anchors;
mod check;
mod explain;
mod summary;
mod verdict;

#[cfg(test)]
mod tests;
