//! Runs rustls's webpki verifiers and turns a failure into a
//! [`VerifyError`] with [`explain`].

use std::sync::Arc;

use rustls::Error;
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use time::OffsetDateTime;

use super::anchors::{SetupError, TrustAnchors};
use super::explain::explain;
use super::summary::Summary;
use super::verdict::{Purpose, VerifyError, VerifyReport};
use crate::clock;

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
