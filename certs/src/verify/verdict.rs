//! The verdict's terms: the [`Purpose`] checked, why a chain is not valid
//! ([`VerifyError`]) and the whole [`VerifyReport`].

use std::fmt;

use serde::Serialize;

use super::summary::Summary;
use crate::clock;

/// What the chain must be good for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// TLS client authentication (EKU clientAuth): an agent's certificate.
    Client,
    /// TLS server authentication (EKU serverAuth): a gateway or backend.
    Server,
}

impl Purpose {
    /// The EKU name this purpose needs.
    pub fn eku(self) -> &'static str {
        match self {
            Purpose::Client => "clientAuth",
            Purpose::Server => "serverAuth",
        }
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Purpose::Client => "client",
            Purpose::Server => "server",
        })
    }
}

/// Why a chain is not valid, with the numbers that explain it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum VerifyError {
    /// No certificate in the trust bundle issued the top of the chain.
    #[error("{}", unknown_issuer(subject, issuer, anchors))]
    UnknownIssuer {
        /// The certificate whose issuer is missing.
        subject: String,
        /// The missing issuer's name.
        issuer: String,
        /// The subjects of the trust anchors that were given.
        anchors: Vec<String>,
    },
    /// A signature does not verify with the named issuer's key.
    #[error("signature of {subject} does not verify with the key of {issuer}{}",
        if *issuer_in_bundle { " (the --ca bundle has a certificate with that name but another key: a regenerated CA?)" } else { "" })]
    BadSignature {
        /// The certificate whose signature failed.
        subject: String,
        /// Its issuer.
        issuer: String,
        /// A trust anchor with the issuer's name was given.
        issuer_in_bundle: bool,
    },
    /// Checked before notBefore.
    #[error("{subject}: not valid yet: valid from {not_before}, checked at {at} ({} early)", clock::span(*early_secs))]
    NotYetValid {
        /// The certificate concerned.
        subject: String,
        /// Its notBefore (RFC 3339).
        not_before: String,
        /// The check time (RFC 3339).
        at: String,
        /// How early, in seconds.
        early_secs: u64,
    },
    /// Checked after notAfter.
    #[error("{subject}: expired: valid until {not_after}, checked at {at} ({} late)", clock::span(*late_secs))]
    Expired {
        /// The certificate concerned.
        subject: String,
        /// Its notAfter (RFC 3339).
        not_after: String,
        /// The check time (RFC 3339).
        at: String,
        /// How late, in seconds.
        late_secs: u64,
    },
    /// The leaf's EKU does not allow the purpose.
    #[error("{subject}: EKU is {}, --purpose {purpose} needs {}",
        if presented.is_empty() { "empty".to_owned() } else { presented.join(", ") }, purpose.eku())]
    WrongPurpose {
        /// The leaf.
        subject: String,
        /// The purpose checked.
        purpose: Purpose,
        /// The EKUs the leaf has.
        presented: Vec<String>,
    },
    /// The leaf is not valid for the requested name.
    #[error("name mismatch: {name} is not among the certificate's names ({})",
        if presented.is_empty() { "it has no subject alternative names".to_owned() } else { presented.join(", ") })]
    NameMismatch {
        /// The name asked for.
        name: String,
        /// The names the leaf carries.
        presented: Vec<String>,
    },
    /// Anything else webpki refused, in its words.
    #[error("{reason}")]
    Other {
        /// rustls's description.
        reason: String,
    },
}

/// The verdict on one chain.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The chain's file, when the caller names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain_file: Option<String>,
    /// The trust bundle's file, when the caller names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// The check time (RFC 3339).
    pub at: String,
    /// The purpose checked.
    pub purpose: Purpose,
    /// The name checked, if any.
    pub name: Option<String>,
    /// The chain as given, leaf first.
    pub chain: Vec<Summary>,
    /// The trust anchors' subjects.
    pub anchors: Vec<String>,
    /// Whether the chain is valid.
    pub valid: bool,
    /// Why not, in one sentence.
    pub reason: Option<String>,
    /// Why not, with its fields.
    pub error: Option<VerifyError>,
}

/// The sentence for an unknown issuer: names the bundle's subjects.
fn unknown_issuer(subject: &str, issuer: &str, anchors: &[String]) -> String {
    let holds = anchors.join("; ");
    if subject == issuer {
        format!("{subject} is self-signed and not in --ca bundle (which holds {holds})")
    } else {
        format!("issuer {issuer} not in --ca bundle (which holds {holds}); {subject} names it")
    }
}
