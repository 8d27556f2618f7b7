//! [`CertSummary`] of a DER certificate seen in clear: names, serial,
//! thumbprints and notAfter, in the renderings `passthru-certs inspect`
//! uses, so an operator can compare them by eye. No I/O.

use passthru_net::thumbprint::{sha1_hex, sha256_hex, spaced_hex};

use super::handshake::CertSummary;

/// Summarises `der`; `None` when it is not a certificate x509-parser can
/// read (the thumbprints alone would not say which certificate it was
/// meant to be, and a hostile peer controls these bytes).
pub(super) fn summarize(der: &[u8]) -> Option<CertSummary> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let not_after = cert.validity().not_after;
    let t = not_after.to_datetime();
    Some(CertSummary {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        serial_hex: spaced_hex(cert.raw_serial()),
        sha1: sha1_hex(der),
        sha256: sha256_hex(der),
        not_after: format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        not_after_unix: not_after.timestamp(),
    })
}
