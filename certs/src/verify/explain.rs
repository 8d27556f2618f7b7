//! From rustls's typed verification errors to [`VerifyError`]s that name
//! the certificate, the issuer and the times involved. Pure.

use rustls::pki_types::CertificateDer;
use rustls::{CertificateError, Error};
use time::OffsetDateTime;

use super::anchors::TrustAnchors;
use super::summary::Summary;
use super::verdict::{Purpose, VerifyError};
use crate::clock;

/// Turns a rustls verification error into the reason with its numbers.
pub fn explain(
    error: &Error,
    chain: &[CertificateDer<'static>],
    anchors: &TrustAnchors,
    at: OffsetDateTime,
    purpose: Purpose,
    name: Option<&str>,
) -> VerifyError {
    let certs: Vec<Summary> = chain.iter().filter_map(|c| Summary::of(c)).collect();
    let leaf_subject = certs
        .first()
        .map_or_else(|| "the leaf".to_owned(), |c| c.subject.clone());
    let Error::InvalidCertificate(cert_error) = error else {
        return VerifyError::Other {
            reason: error.to_string(),
        };
    };
    match cert_error {
        CertificateError::UnknownIssuer => {
            let top = top_of_chain(&certs);
            VerifyError::UnknownIssuer {
                subject: top.map_or_else(|| leaf_subject.clone(), |c| c.subject.clone()),
                issuer: top.map_or_else(String::new, |c| c.issuer.clone()),
                anchors: anchors.subjects.clone(),
            }
        }
        CertificateError::BadSignature => {
            let top = top_of_chain(&certs);
            let issuer = top.map_or_else(String::new, |c| c.issuer.clone());
            VerifyError::BadSignature {
                subject: top.map_or(leaf_subject, |c| c.subject.clone()),
                issuer_in_bundle: anchors.subjects.contains(&issuer),
                issuer,
            }
        }
        CertificateError::NotValidYetContext { time, not_before } => {
            let nb = i64::try_from(not_before.as_secs()).unwrap_or(i64::MAX);
            VerifyError::NotYetValid {
                subject: certs
                    .iter()
                    .find(|c| c.not_before_unix == nb)
                    .map_or(leaf_subject, |c| c.subject.clone()),
                not_before: clock::rfc3339(clock::from_unix_time(*not_before)),
                at: clock::rfc3339(clock::from_unix_time(*time)),
                early_secs: not_before.as_secs().saturating_sub(time.as_secs()),
            }
        }
        CertificateError::ExpiredContext { time, not_after } => {
            let na = i64::try_from(not_after.as_secs()).unwrap_or(i64::MAX);
            VerifyError::Expired {
                subject: certs
                    .iter()
                    .find(|c| c.not_after_unix == na)
                    .map_or(leaf_subject, |c| c.subject.clone()),
                not_after: clock::rfc3339(clock::from_unix_time(*not_after)),
                at: clock::rfc3339(clock::from_unix_time(*time)),
                late_secs: time.as_secs().saturating_sub(not_after.as_secs()),
            }
        }
        CertificateError::InvalidPurposeContext { .. } | CertificateError::InvalidPurpose => {
            VerifyError::WrongPurpose {
                subject: leaf_subject,
                purpose,
                presented: certs.first().map(|c| c.eku.clone()).unwrap_or_default(),
            }
        }
        CertificateError::NotValidForNameContext { .. } | CertificateError::NotValidForName => {
            VerifyError::NameMismatch {
                name: name.unwrap_or_default().to_owned(),
                presented: certs.first().map(|c| c.sans.clone()).unwrap_or_default(),
            }
        }
        CertificateError::Expired | CertificateError::NotValidYet => VerifyError::Other {
            reason: format!(
                "{leaf_subject}: {error} (checked at {})",
                clock::rfc3339(at)
            ),
        },
        _ => VerifyError::Other {
            reason: format!("{leaf_subject}: {error}"),
        },
    }
}

/// The highest certificate of the chain reachable from the leaf by issuer
/// name: the one whose issuer was looked for in the bundle.
fn top_of_chain(certs: &[Summary]) -> Option<&Summary> {
    let mut current = certs.first()?;
    for _ in 0..certs.len() {
        if current.issuer == current.subject {
            break;
        }
        match certs.iter().find(|c| c.subject == current.issuer) {
            Some(parent) => current = parent,
            None => break,
        }
    }
    Some(current)
}
