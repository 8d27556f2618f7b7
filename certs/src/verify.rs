//! Chain verification that says why: runs rustls's webpki verifiers
//! (client or server purpose, optional name) and turns their typed errors
//! into [`VerifyError`]s that carry the certificate, the names and the time
//! deltas involved. No I/O; `probe` reuses it for the server's chain.

use std::fmt;
use std::sync::Arc;

use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{Error, RootCertStore};
use serde::Serialize;
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;

use crate::{clock, fingerprint, inspect};

pub use explain::explain;

mod explain;

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

/// A problem with the verification request itself (a usage error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    /// The trust bundle yielded no usable anchor.
    #[error("{name} holds no usable trust anchor")]
    NoAnchors {
        /// The bundle's file name.
        name: String,
    },
    /// `--name` is neither a DNS name nor an IP address.
    #[error("{name:?} is not a DNS name or IP address")]
    BadName {
        /// The name as given.
        name: String,
    },
    /// The chain file holds no certificate.
    #[error("the chain is empty")]
    EmptyChain,
}

/// The trust bundle (`--ca`), parsed once.
#[derive(Clone)]
pub struct TrustAnchors {
    roots: Arc<RootCertStore>,
    subjects: Vec<String>,
}

impl TrustAnchors {
    /// Builds the anchors from the certificates of the file `name`.
    pub fn new(name: &str, certs: &[CertificateDer<'static>]) -> Result<Self, SetupError> {
        let mut roots = RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(certs.iter().cloned());
        if added == 0 {
            return Err(SetupError::NoAnchors {
                name: name.to_owned(),
            });
        }
        let subjects = certs
            .iter()
            .filter_map(|c| Summary::of(c).map(|s| s.subject))
            .collect();
        Ok(TrustAnchors {
            roots: Arc::new(roots),
            subjects,
        })
    }

    /// The anchors' subject names.
    pub fn subjects(&self) -> &[String] {
        &self.subjects
    }
}

impl fmt::Debug for TrustAnchors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustAnchors")
            .field("subjects", &self.subjects)
            .finish_non_exhaustive()
    }
}

/// One certificate of a verified chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Subject name.
    pub subject: String,
    /// Issuer name.
    pub issuer: String,
    /// SHA-1 thumbprint, hex.
    pub sha1: String,
    /// notBefore (RFC 3339).
    pub not_before: String,
    /// notAfter (RFC 3339).
    pub not_after: String,
    #[serde(skip)]
    not_before_unix: i64,
    #[serde(skip)]
    not_after_unix: i64,
    #[serde(skip)]
    sans: Vec<String>,
    #[serde(skip)]
    eku: Vec<String>,
}

impl Summary {
    /// Summarises a DER certificate; `None` when it does not parse.
    pub fn of(der: &[u8]) -> Option<Summary> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        Some(Summary::from_parsed(&cert, der))
    }

    fn from_parsed(cert: &X509Certificate<'_>, der: &[u8]) -> Summary {
        let validity = cert.validity();
        let (nb, na) = (
            validity.not_before.timestamp(),
            validity.not_after.timestamp(),
        );
        Summary {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            sha1: fingerprint::sha1_hex(der),
            not_before: clock::rfc3339(clock::from_timestamp(nb)),
            not_after: clock::rfc3339(clock::from_timestamp(na)),
            not_before_unix: nb,
            not_after_unix: na,
            sans: inspect::subject_alt_names(cert),
            eku: inspect::extended_key_usage(cert),
        }
    }
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

/// Verifies `chain` (leaf first, then intermediates in any order) against
/// `anchors` at `at` for `purpose`, and for `name` when given.
pub fn verify(
    anchors: &TrustAnchors,
    chain: &[CertificateDer<'static>],
    at: OffsetDateTime,
    purpose: Purpose,
    name: Option<&str>,
) -> Result<VerifyReport, SetupError> {
    let result = check(anchors, chain, at, purpose, name)?;
    let error = result.err();
    Ok(VerifyReport {
        chain_file: None,
        ca_file: None,
        at: clock::rfc3339(at),
        purpose,
        name: name.map(str::to_owned),
        chain: chain.iter().filter_map(|c| Summary::of(c)).collect(),
        anchors: anchors.subjects.clone(),
        valid: error.is_none(),
        reason: error.as_ref().map(ToString::to_string),
        error,
    })
}

/// The verdict alone: `Ok(Err(why))` for an invalid chain.
pub fn check(
    anchors: &TrustAnchors,
    chain: &[CertificateDer<'static>],
    at: OffsetDateTime,
    purpose: Purpose,
    name: Option<&str>,
) -> Result<Result<(), VerifyError>, SetupError> {
    let (leaf, intermediates) = chain.split_first().ok_or(SetupError::EmptyChain)?;
    let server_name = name
        .map(|n| {
            ServerName::try_from(n.to_owned())
                .map_err(|_| SetupError::BadName { name: n.to_owned() })
        })
        .transpose()?;
    let now = clock::unix_time(at);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let parsed = match rustls::server::ParsedCertificate::try_from(leaf) {
        Ok(parsed) => parsed,
        Err(e) => return Ok(Err(explain(&e, chain, anchors, at, purpose, name))),
    };
    let verdict = match purpose {
        Purpose::Client => verify_client(anchors, leaf, intermediates, now, &provider),
        Purpose::Server => verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &anchors.roots,
            intermediates,
            now,
            provider.signature_verification_algorithms.all,
        ),
    }
    .and_then(|()| match &server_name {
        Some(server_name) => verify_server_name(&parsed, server_name),
        None => Ok(()),
    });
    Ok(verdict.map_err(|e| explain(&e, chain, anchors, at, purpose, name)))
}

fn verify_client(
    anchors: &TrustAnchors,
    leaf: &CertificateDer<'static>,
    intermediates: &[CertificateDer<'static>],
    now: rustls::pki_types::UnixTime,
    provider: &Arc<CryptoProvider>,
) -> Result<(), Error> {
    let verifier =
        WebPkiClientVerifier::builder_with_provider(anchors.roots.clone(), provider.clone())
            .build()
            .map_err(|e| Error::General(e.to_string()))?;
    verifier
        .verify_client_cert(leaf, intermediates, now)
        .map(|_| ())
}

fn unknown_issuer(subject: &str, issuer: &str, anchors: &[String]) -> String {
    let holds = anchors.join("; ");
    if subject == issuer {
        format!("{subject} is self-signed and not in --ca bundle (which holds {holds})")
    } else {
        format!("issuer {issuer} not in --ca bundle (which holds {holds}); {subject} names it")
    }
}

#[cfg(test)]
mod tests;
