//! What one certificate says, in the terms operators compare: names, key,
//! usages, validity with its margin at a given time, the serial and the
//! thumbprints in every encoding, and whether a pasted value is one of
//! them. Builds serialisable reports; no I/O, no rendering (see `render`).

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::public_key::PublicKey;

use crate::clock;
use crate::fingerprint::{self, Match, Serial, Thumbprints};

/// Everything `passthru-certs inspect` reports for a set of certificates.
#[derive(Debug, Clone, Serialize)]
pub struct InspectReport {
    /// The time validity was judged at (RFC 3339).
    pub checked_at: String,
    /// One entry per certificate, in file order.
    pub certificates: Vec<CertificateReport>,
    /// Observations across certificates (several sharing one subject CN).
    pub notes: Vec<String>,
}

impl InspectReport {
    /// Whether any certificate matched the `--match` value; `None` when no
    /// value was given.
    pub fn any_match(&self) -> Option<bool> {
        let mut asked = false;
        let mut found = false;
        for cert in &self.certificates {
            if let Some(m) = &cert.matched {
                asked = true;
                found |= m.result.is_some();
            }
        }
        asked.then_some(found)
    }
}

/// One certificate, described.
#[derive(Debug, Clone, Serialize)]
pub struct CertificateReport {
    /// The file it came from ("stdin" for "-").
    pub source: String,
    /// Its position in that file, from 1.
    pub index: usize,
    /// Subject distinguished name.
    pub subject: String,
    /// Subject common name(s).
    pub common_names: Vec<String>,
    /// Issuer distinguished name.
    pub issuer: String,
    /// Issuer and subject are the same name.
    pub self_signed: bool,
    /// Subject alternative names as "DNS:…", "IP:…", "email:…", "URI:…".
    pub subject_alt_names: Vec<String>,
    /// Key type and size, e.g. "ECDSA P-256 (256 bits)".
    pub key: String,
    /// Key usage bits by their RFC 5280 names.
    pub key_usage: Vec<String>,
    /// Extended key usages ("serverAuth", "clientAuth", or the OID).
    pub extended_key_usage: Vec<String>,
    /// BasicConstraints CA flag.
    pub ca: bool,
    /// BasicConstraints path length, when the certificate is a CA with one.
    pub path_len: Option<u32>,
    /// The validity window and where the check time falls in it.
    pub validity: Validity,
    /// The serial number in every rendering.
    pub serial: Serial,
    /// SHA-1 and SHA-256 thumbprints in hex, colon-hex and base64.
    pub thumbprints: Thumbprints,
    /// The `--match` verdict, when a value was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched: Option<MatchReport>,
}

/// A validity window judged at one time.
#[derive(Debug, Clone, Serialize)]
pub struct Validity {
    /// notBefore (RFC 3339).
    pub not_before: String,
    /// notAfter (RFC 3339).
    pub not_after: String,
    /// Where the check time falls.
    pub status: ValidityStatus,
    /// Seconds from notBefore to the check time (negative: not yet valid).
    pub since_not_before_secs: i64,
    /// Seconds from the check time to notAfter (negative: expired).
    pub until_not_after_secs: i64,
    /// The margin in words: "expires in 364 days (valid since 1 day)".
    pub summary: String,
}

/// Where a check time falls in a validity window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ValidityStatus {
    /// Before notBefore.
    NotYetValid,
    /// Inside the window.
    Valid,
    /// After notAfter.
    Expired,
}

impl Validity {
    /// Judges the window `not_before..=not_after` at `at`.
    pub fn judge(
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
        at: OffsetDateTime,
    ) -> Self {
        let since = (at - not_before).whole_seconds();
        let until = (not_after - at).whole_seconds();
        let (status, summary) = if since < 0 {
            let early = since.unsigned_abs();
            (
                ValidityStatus::NotYetValid,
                format!("not valid for another {}", clock::span(early)),
            )
        } else if until < 0 {
            (
                ValidityStatus::Expired,
                format!("expired {} ago", clock::span(until.unsigned_abs())),
            )
        } else {
            (
                ValidityStatus::Valid,
                format!(
                    "expires in {} (valid since {})",
                    clock::span(until.unsigned_abs()),
                    clock::span(since.unsigned_abs())
                ),
            )
        };
        Validity {
            not_before: clock::rfc3339(not_before),
            not_after: clock::rfc3339(not_after),
            status,
            since_not_before_secs: since,
            until_not_after_secs: until,
            summary,
        }
    }
}

/// The `--match` verdict for one certificate.
#[derive(Debug, Clone, Serialize)]
pub struct MatchReport {
    /// The value as given.
    pub value: String,
    /// What it matched, if anything.
    pub result: Option<Match>,
}

/// A certificate that x509-parser cannot read.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: certificate {index} does not parse as X.509: {reason}")]
pub struct InspectError {
    /// The file it came from.
    pub source_name: String,
    /// Its position in that file, from 1.
    pub index: usize,
    /// What the parser reported.
    pub reason: String,
}

/// Describes every certificate of every `(source name, DER certificates)`
/// at time `at`, checking `match_value` against each when given.
pub fn inspect(
    sources: &[(String, Vec<Vec<u8>>)],
    at: OffsetDateTime,
    match_value: Option<&str>,
) -> Result<InspectReport, InspectError> {
    let mut certificates = Vec::new();
    for (name, ders) in sources {
        for (i, der) in ders.iter().enumerate() {
            certificates.push(describe(name, i + 1, der, at, match_value)?);
        }
    }
    let notes = shared_common_names(&certificates);
    Ok(InspectReport {
        checked_at: clock::rfc3339(at),
        certificates,
        notes,
    })
}

/// Describes the DER certificate `der`, number `index` (from 1) of `source`.
pub fn describe(
    source: &str,
    index: usize,
    der: &[u8],
    at: OffsetDateTime,
    match_value: Option<&str>,
) -> Result<CertificateReport, InspectError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| InspectError {
        source_name: source.to_owned(),
        index,
        reason: e.to_string(),
    })?;
    let validity = cert.validity();
    let constraints = cert.basic_constraints().ok().flatten().map(|bc| bc.value);
    Ok(CertificateReport {
        source: source.to_owned(),
        index,
        subject: cert.subject().to_string(),
        common_names: common_names(&cert),
        issuer: cert.issuer().to_string(),
        self_signed: cert.subject().as_raw() == cert.issuer().as_raw(),
        subject_alt_names: subject_alt_names(&cert),
        key: key_description(&cert),
        key_usage: key_usage(&cert),
        extended_key_usage: extended_key_usage(&cert),
        ca: constraints.is_some_and(|bc| bc.ca),
        path_len: constraints.and_then(|bc| bc.path_len_constraint),
        validity: Validity::judge(
            clock::from_timestamp(validity.not_before.timestamp()),
            clock::from_timestamp(validity.not_after.timestamp()),
            at,
        ),
        serial: Serial::of(cert.raw_serial()),
        thumbprints: Thumbprints::of(der),
        matched: match_value.map(|value| MatchReport {
            value: value.to_owned(),
            result: fingerprint::match_value(value, der, cert.raw_serial()),
        }),
    })
}

/// Subject common names of `cert`.
pub fn common_names(cert: &X509Certificate<'_>) -> Vec<String> {
    cert.subject()
        .iter_common_name()
        .map(|cn| {
            cn.as_str()
                .map_or_else(|_| format!("{:?}", cn.as_slice()), str::to_owned)
        })
        .collect()
}

/// Subject alternative names as "DNS:…", "IP:…", "email:…", "URI:…".
pub fn subject_alt_names(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(ext)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    ext.value
        .general_names
        .iter()
        .map(|name| match name {
            GeneralName::DNSName(dns) => format!("DNS:{dns}"),
            GeneralName::IPAddress(bytes) => match ip(bytes) {
                Some(addr) => format!("IP:{addr}"),
                None => format!("IP:{}", fingerprint::colon_hex(bytes)),
            },
            GeneralName::RFC822Name(email) => format!("email:{email}"),
            GeneralName::URI(uri) => format!("URI:{uri}"),
            GeneralName::DirectoryName(dn) => format!("DirName:{dn}"),
            other => format!("{other:?}"),
        })
        .collect()
}

/// Extended key usages of `cert` by their short names.
pub fn extended_key_usage(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(ext)) = cert.extended_key_usage() else {
        return Vec::new();
    };
    let eku = ext.value;
    let mut out: Vec<String> = [
        (eku.server_auth, "serverAuth"),
        (eku.client_auth, "clientAuth"),
        (eku.code_signing, "codeSigning"),
        (eku.email_protection, "emailProtection"),
        (eku.time_stamping, "timeStamping"),
        (eku.ocsp_signing, "OCSPSigning"),
        (eku.any, "anyExtendedKeyUsage"),
    ]
    .iter()
    .filter(|(set, _)| *set)
    .map(|(_, name)| (*name).to_owned())
    .collect();
    out.extend(eku.other.iter().map(|oid| oid.to_id_string()));
    out
}

fn key_usage(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(ext)) = cert.key_usage() else {
        return Vec::new();
    };
    let ku = ext.value;
    [
        (ku.digital_signature(), "digitalSignature"),
        (ku.non_repudiation(), "nonRepudiation"),
        (ku.key_encipherment(), "keyEncipherment"),
        (ku.data_encipherment(), "dataEncipherment"),
        (ku.key_agreement(), "keyAgreement"),
        (ku.key_cert_sign(), "keyCertSign"),
        (ku.crl_sign(), "cRLSign"),
        (ku.encipher_only(), "encipherOnly"),
        (ku.decipher_only(), "decipherOnly"),
    ]
    .iter()
    .filter(|(set, _)| *set)
    .map(|(_, name)| (*name).to_owned())
    .collect()
}

fn key_description(cert: &X509Certificate<'_>) -> String {
    let spki = cert.public_key();
    let algorithm = spki.algorithm.algorithm.to_id_string();
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => format!("RSA ({} bits)", rsa.key_size()),
        Ok(PublicKey::EC(point)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|oid| oid.to_id_string());
            let curve = match curve.as_deref() {
                Some("1.2.840.10045.3.1.7") => "P-256".to_owned(),
                Some("1.3.132.0.34") => "P-384".to_owned(),
                Some("1.3.132.0.35") => "P-521".to_owned(),
                Some(other) => other.to_owned(),
                None => "unknown curve".to_owned(),
            };
            format!("ECDSA {curve} ({} bits)", point.key_size())
        }
        _ => match algorithm.as_str() {
            "1.3.101.112" => "Ed25519".to_owned(),
            "1.3.101.113" => "Ed448".to_owned(),
            other => format!("algorithm {other}"),
        },
    }
}

fn ip(bytes: &[u8]) -> Option<IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        return Some(IpAddr::from(v4));
    }
    <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from)
}

/// One note per subject CN carried by several different certificates: the
/// duplicate-CN trap of certificate rotation.
fn shared_common_names(certs: &[CertificateReport]) -> Vec<String> {
    let mut by_cn: BTreeMap<&str, Vec<&CertificateReport>> = BTreeMap::new();
    for cert in certs {
        for cn in &cert.common_names {
            let group = by_cn.entry(cn.as_str()).or_default();
            if !group
                .iter()
                .any(|c| c.thumbprints.sha1.hex == cert.thumbprints.sha1.hex)
            {
                group.push(cert);
            }
        }
    }
    by_cn
        .into_iter()
        .filter(|(_, group)| group.len() > 1)
        .map(|(cn, group)| {
            let names: Vec<String> = group
                .iter()
                .map(|c| format!("{}#{} (SHA-1 {})", c.source, c.index, c.thumbprints.sha1.hex))
                .collect();
            format!(
                "CN={cn} is shared by {} certificates: {}; identify them by thumbprint, not by subject CN",
                group.len(),
                names.join(", ")
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LabPki;

    fn lab() -> LabPki {
        LabPki::generate(clock::from_timestamp(1_780_000_000)).unwrap()
    }

    #[test]
    fn describes_an_agent_certificate() {
        let pki = lab();
        let r = describe("agent-01.pem", 1, &pki.agent.cert_der, pki.now, None).unwrap();
        assert_eq!(r.subject, "O=passthru lab, CN=agent-01");
        assert_eq!(r.issuer, "O=passthru lab, CN=Lab Agent CA");
        assert_eq!(r.common_names, ["agent-01"]);
        assert!(!r.self_signed);
        assert_eq!(r.subject_alt_names, ["DNS:agent-01.agents.example.com"]);
        assert_eq!(r.key, "ECDSA P-256 (256 bits)");
        assert_eq!(r.key_usage, ["digitalSignature"]);
        assert_eq!(r.extended_key_usage, ["clientAuth"]);
        assert!(!r.ca);
        assert_eq!(r.serial.spaced, "30 01");
        assert_eq!(r.serial.reversed, "01 30");
        assert_eq!(r.thumbprints.sha1.hex, pki.agent.sha1_hex());
        assert_eq!(r.validity.status, ValidityStatus::Valid);
        assert_eq!(
            r.validity.summary,
            "expires in 365 days (valid since 1 day)"
        );
        assert_eq!(r.validity.until_not_after_secs, 365 * 86_400);
    }

    #[test]
    fn validity_margins_either_side() {
        let pki = lab();
        let early = describe("x", 1, &pki.agent_not_yet_valid.cert_der, pki.now, None).unwrap();
        assert_eq!(early.validity.status, ValidityStatus::NotYetValid);
        assert_eq!(early.validity.summary, "not valid for another 2 h");
        let late = describe("x", 1, &pki.agent_expired.cert_der, pki.now, None).unwrap();
        assert_eq!(late.validity.status, ValidityStatus::Expired);
        assert_eq!(late.validity.summary, "expired 35 days ago");
        assert_eq!(late.validity.until_not_after_secs, -35 * 86_400);
    }

    #[test]
    fn ca_and_server_certificates() {
        let pki = lab();
        let ca = describe("agent-ca.pem", 1, &pki.agent_ca.cert_der, pki.now, None).unwrap();
        assert!(ca.ca);
        assert_eq!(ca.path_len, Some(0));
        assert_eq!(ca.key_usage, ["digitalSignature", "keyCertSign", "cRLSign"]);
        let gw = describe("gateway.pem", 1, &pki.gateway.cert_der, pki.now, None).unwrap();
        assert!(gw.self_signed);
        assert_eq!(
            gw.subject_alt_names,
            ["DNS:gw.example.com", "DNS:localhost", "IP:127.0.0.1"]
        );
        assert_eq!(gw.extended_key_usage, ["serverAuth"]);
    }

    #[test]
    fn notes_two_certificates_sharing_a_cn() {
        let pki = lab();
        let sources = vec![
            ("agent-01.pem".to_owned(), vec![pki.agent.cert_der.clone()]),
            (
                "agent-01-rotated.pem".to_owned(),
                vec![pki.agent_duplicate_cn.cert_der.clone()],
            ),
            ("again.pem".to_owned(), vec![pki.agent.cert_der.clone()]),
            ("agent-02.pem".to_owned(), vec![pki.agent2.cert_der.clone()]),
        ];
        let report = inspect(&sources, pki.now, None).unwrap();
        assert_eq!(report.notes.len(), 1, "{:?}", report.notes);
        let note = &report.notes[0];
        assert!(
            note.starts_with("CN=agent-01 is shared by 2 certificates: agent-01.pem#1"),
            "{note}"
        );
        assert!(note.contains(&pki.agent_duplicate_cn.sha1_hex()), "{note}");
        assert_eq!(report.any_match(), None);
    }

    #[test]
    fn match_is_reported_per_certificate() {
        let pki = lab();
        let sources = vec![(
            "chain.pem".to_owned(),
            vec![pki.agent.cert_der.clone(), pki.agent_ca.cert_der.clone()],
        )];
        let report = inspect(&sources, pki.now, Some("01 30")).unwrap();
        let first = report.certificates[0].matched.as_ref().unwrap();
        assert_eq!(
            first.result.map(|m| m.to_string()).as_deref(),
            Some("the serial number, byte-reversed (hex)")
        );
        assert!(
            report.certificates[1]
                .matched
                .as_ref()
                .unwrap()
                .result
                .is_none()
        );
        assert_eq!(report.any_match(), Some(true));
        let none = inspect(&sources, pki.now, Some("deadbeef")).unwrap();
        assert_eq!(none.any_match(), Some(false));
    }
}
