//! The trust bundle, parsed once ([`TrustAnchors`]), and what makes a
//! request unusable ([`SetupError`]).

use std::fmt;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;

use super::summary::Summary;

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
    pub(super) roots: Arc<RootCertStore>,
    pub(super) subjects: Vec<String>,
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
