//! One certificate of a chain as the report shows it ([`Summary`]).

use serde::Serialize;
use x509_parser::certificate::X509Certificate;

use crate::{clock, fingerprint, inspect};

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
    pub(super) not_before_unix: i64,
    #[serde(skip)]
    pub(super) not_after_unix: i64,
    #[serde(skip)]
    pub(super) sans: Vec<String>,
    #[serde(skip)]
    pub(super) eku: Vec<String>,
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
