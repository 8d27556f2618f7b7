//! What a probe saw, as serialisable data: the steps with their verdicts,
//! the session, the server's chain, client authentication and the alert;
//! and the bookkeeping that fills it in. No I/O.

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Serialize;
use time::OffsetDateTime;
use x509_parser::prelude::FromDer as _;
use x509_parser::x509::X509Name;

use super::tls;
use crate::{inspect, verify};

/// The probe's steps, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Resolving the host name.
    Resolve,
    /// The TCP connection (to the proxy with `--via`).
    Tcp,
    /// The proxy's answer to CONNECT.
    Connect,
    /// The TLS handshake.
    Tls,
    /// Whether `--ca` trusts the server's chain.
    ServerCertificate,
    /// The server's request for a client certificate and its verdict.
    ClientCertificate,
}

/// One step's result.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// Which step.
    pub step: Step,
    /// Whether it went well.
    pub ok: bool,
    /// One line saying what happened.
    pub detail: String,
}

/// The negotiated session.
#[derive(Debug, Clone, Serialize)]
pub struct Session {
    /// "TLS 1.3" or "TLS 1.2".
    pub version: String,
    /// The cipher suite's IANA name.
    pub cipher_suite: String,
}

/// A TLS alert the server sent.
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    /// Its RFC name, e.g. "unknown_ca".
    pub name: String,
    /// Its code, e.g. 48.
    pub code: u8,
    /// Whether it came after our side of the handshake had completed.
    pub after_handshake: bool,
}

/// One certificate of the server's chain.
#[derive(Debug, Clone, Serialize)]
pub struct ChainEntry {
    /// Subject name.
    pub subject: String,
    /// Issuer name.
    pub issuer: String,
    /// SHA-1 thumbprint, hex.
    pub sha1: String,
    /// SHA-256 thumbprint, hex.
    pub sha256: String,
    /// notAfter (RFC 3339).
    pub not_after: String,
}

/// What happened around client authentication.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClientAuth {
    /// The server sent a CertificateRequest.
    pub requested: bool,
    /// The CA names in it (empty: "any").
    pub acceptable_ca_names: Vec<String>,
    /// The subject of the certificate we sent, if any.
    pub sent: Option<String>,
    /// Whether the server accepted the handshake with what we sent
    /// (`None` when it did not ask or we could not tell).
    pub accepted: Option<bool>,
}

/// Everything the probe saw.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    /// "host:port" as given.
    pub target: String,
    /// The server name sent (or used for verification when it is an IP).
    pub sni: String,
    /// The CONNECT proxy, password masked.
    pub via: Option<String>,
    /// The steps taken, in order; the first failure ends the list except
    /// that the certificate steps are reported whenever there is something
    /// to say.
    pub steps: Vec<StepReport>,
    /// The negotiated session, when the handshake completed.
    pub session: Option<Session>,
    /// The server's chain as sent, leaf first.
    pub server_chain: Vec<ChainEntry>,
    /// Client authentication.
    pub client_auth: ClientAuth,
    /// The alert the server sent, if any.
    pub alert: Option<Alert>,
    /// Every step went well.
    pub ok: bool,
}

impl ProbeReport {
    pub(super) fn push(&mut self, step: Step, result: Result<String, String>) {
        let ok = result.is_ok();
        let detail = result.unwrap_or_else(|e| e);
        self.steps.push(StepReport { step, ok, detail });
    }

    pub(super) fn finish(mut self) -> Self {
        self.ok = !self.steps.is_empty() && self.steps.iter().all(|s| s.ok);
        self
    }

    /// Describes a handshake or read error, noting an alert.
    pub(super) fn handshake_error(&mut self, e: &std::io::Error, after_handshake: bool) -> String {
        match e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            Some(rustls::Error::AlertReceived(alert)) => {
                let (name, code) = tls::alert_name(*alert);
                let detail = format!("the server sent alert {name} ({code})");
                self.alert = Some(Alert {
                    name,
                    code,
                    after_handshake,
                });
                detail
            }
            Some(rustls::Error::InvalidMessage(m)) => {
                format!("the server's answer is not TLS ({m:?})")
            }
            Some(other) => other.to_string(),
            None => match e.kind() {
                std::io::ErrorKind::UnexpectedEof => {
                    "the server closed the connection without an alert".to_owned()
                }
                std::io::ErrorKind::ConnectionReset => "the server reset the connection".to_owned(),
                _ => e.to_string(),
            },
        }
    }

    /// The client-certificate step from the handshake's verdict.
    pub(super) fn client_step(
        &mut self,
        client: &Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
        verdict: Result<String, String>,
    ) -> Option<Result<String, String>> {
        let auth = &mut self.client_auth;
        if !auth.requested {
            return verdict
                .is_ok()
                .then(|| Ok("not requested by the server".to_owned()));
        }
        let names = if auth.acceptable_ca_names.is_empty() {
            "no CA names (any issuer)".to_owned()
        } else {
            format!("CA names {}", auth.acceptable_ca_names.join("; "))
        };
        let ours = match &auth.sent {
            Some(subject) => format!("we sent {subject}"),
            None if client.is_some() => "we sent none".to_owned(),
            None => "we sent none (no --cert)".to_owned(),
        };
        let hint = issuer_hint(
            client.as_ref().map(|(c, _)| c.as_slice()),
            &auth.acceptable_ca_names,
        );
        auth.accepted = Some(verdict.is_ok());
        Some(match verdict {
            Ok(how) => Ok(format!("requested with {names}; {ours}; accepted: {how}")),
            Err(why) => Err(format!(
                "requested with {names}; {ours}; rejected: {why}{hint}"
            )),
        })
    }
}

pub(super) fn chain_entry(
    der: &CertificateDer<'static>,
    now: OffsetDateTime,
) -> Option<ChainEntry> {
    let cert = inspect::describe("server", 1, der, now, None).ok()?;
    Some(ChainEntry {
        subject: cert.subject,
        issuer: cert.issuer,
        sha1: cert.thumbprints.sha1.hex,
        sha256: cert.thumbprints.sha256.hex,
        not_after: cert.validity.not_after,
    })
}

/// A distinguished name from a CertificateRequest, as text.
pub(super) fn dn_name(der: &[u8]) -> String {
    match X509Name::from_der(der) {
        Ok((_, name)) => name.to_string(),
        Err(_) => format!("(undecodable name {})", crate::fingerprint::colon_hex(der)),
    }
}

pub(super) fn version_name(version: Option<rustls::ProtocolVersion>) -> String {
    match version {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3".to_owned(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2".to_owned(),
        Some(other) => format!("{other:?}"),
        None => "?".to_owned(),
    }
}

/// A note when none of our chain's issuers is among the CA names offered.
fn issuer_hint(chain: Option<&[CertificateDer<'static>]>, offered: &[String]) -> String {
    let Some(chain) = chain else {
        return String::new();
    };
    let summaries: Vec<verify::Summary> = chain
        .iter()
        .filter_map(|c| verify::Summary::of(c))
        .collect();
    if offered.is_empty() || summaries.iter().any(|s| offered.contains(&s.issuer)) {
        return String::new();
    }
    let top = summaries
        .last()
        .map(|s| s.issuer.clone())
        .unwrap_or_default();
    format!(" (our chain ends at issuer {top}, which is not among the CA names the server accepts)")
}
