//! What each hop saw ([`HopRecord`]): the certificate it was shown, the one
//! it presented, the TLS alert or error, the bytes it moved.

use std::fmt;
use std::io;

use rustls::{AlertDescription, CertificateError};
use serde::Serialize;

/// A hop on the path, in path order (agent first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Hop {
    /// The managed machine's agent (TLS client).
    Agent,
    /// A layer-4 balancer in front of passthru (source NAT, idle timeout).
    #[serde(rename = "l4-lb")]
    Front,
    /// The balancer in front of the gateway (passthru, or an offloading relay).
    Balancer,
    /// An HTTP CONNECT proxy (plain tunnel or TLS-inspecting).
    Proxy,
    /// The Internet gateway: validates the agent's certificate, tunnels TCP.
    Gateway,
    /// The management server behind the gateway (inner mutual TLS).
    Backend,
}

impl Hop {
    /// Lower-case name, as in the table.
    pub fn as_str(self) -> &'static str {
        match self {
            Hop::Agent => "agent",
            Hop::Front => "l4-lb",
            Hop::Balancer => "balancer",
            Hop::Proxy => "proxy",
            Hop::Gateway => "gateway",
            Hop::Backend => "backend",
        }
    }
}

/// A certificate as a hop saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertSeen {
    /// SHA-1 thumbprint, lower-case hex (what the field pins and compares).
    pub sha1: String,
    /// Subject common name.
    pub subject_cn: String,
}

/// Which TLS session a [`Leg`] belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layer {
    /// The agent's session with the first hop that speaks TLS to it.
    Outer,
    /// The agent's session with the backend, inside the outer one.
    Inner,
    /// A relay's own session toward the gateway (offload-reencrypt, inspecting proxy).
    Upstream,
}

/// Which end of a handshake the recording hop was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Sent the ClientHello.
    Client,
    /// Answered it.
    Server,
}

/// One TLS handshake as one of its ends saw it.
#[derive(Debug, Clone, Serialize)]
pub struct Leg {
    /// Which session.
    pub layer: Layer,
    /// Which end.
    pub role: Role,
    /// The server name sent (client) or received (server).
    pub sni: Option<String>,
    /// The certificate this end presented.
    pub presented: Option<CertSeen>,
    /// The certificate the other end presented.
    pub peer_cert: Option<CertSeen>,
    /// Whether a client certificate was asked for (CertificateRequest).
    pub client_cert_requested: bool,
    /// Whether the handshake completed at this end.
    pub completed: bool,
    /// Why it failed.
    pub failure: Option<Failure>,
}

/// A TLS alert or error, classified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// What kind of failure.
    pub kind: FailureKind,
    /// The error text.
    pub message: String,
    /// The alert this end sent because of it (derived from rustls's error).
    pub alert_sent: Option<String>,
    /// The alert this end received.
    pub alert_received: Option<String>,
}

/// The failures the lab tells apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FailureKind {
    /// The server certificate is not the pinned one.
    PinMismatch {
        /// Pinned SHA-1.
        expected: String,
        /// Presented SHA-1.
        seen: String,
    },
    /// The chain does not lead to a trusted root.
    UnknownIssuer,
    /// The certificate expired (UNIX seconds).
    Expired {
        /// The certificate's notAfter.
        not_after: u64,
        /// When it was checked.
        checked_at: u64,
    },
    /// The certificate is not valid yet (UNIX seconds).
    NotYetValid {
        /// The certificate's notBefore.
        not_before: u64,
        /// When it was checked.
        checked_at: u64,
    },
    /// Another certificate problem.
    BadCertificate,
    /// The client sent no certificate although one is required.
    NoClientCertificate,
    /// The peer sent an alert.
    AlertReceived,
    /// What arrived is not TLS.
    NotTls,
    /// A refusal arrived in clear where TLS was expected
    /// ("Authentication Required").
    AnsweredInClear,
    /// The peer closed or reset the connection.
    Closed,
    /// No answer in time.
    Timeout,
    /// Another socket or protocol error.
    Other,
}

impl Failure {
    /// Classify an I/O error; a rustls error inside it is recognised.
    pub fn from_io(error: &io::Error) -> Failure {
        if let Some(tls) = error
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
        {
            return Failure::from_tls(tls);
        }
        if error.kind() == io::ErrorKind::UnexpectedEof {
            return Failure::plain(
                FailureKind::Closed,
                "the peer closed the connection (no TLS close_notify)",
            );
        }
        let kind = match error.kind() {
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => FailureKind::Closed,
            io::ErrorKind::TimedOut => FailureKind::Timeout,
            _ => FailureKind::Other,
        };
        Failure::plain(kind, error.to_string())
    }

    /// Classify a rustls error.
    pub fn from_tls(error: &rustls::Error) -> Failure {
        let mut message = error.to_string();
        let mut alert_sent = None;
        let mut alert_received = None;
        let kind = match error {
            rustls::Error::InvalidCertificate(cert) => {
                alert_sent = Some(alert_name(AlertDescription::from(cert.clone())));
                let kind = certificate_kind(cert);
                if let FailureKind::PinMismatch { expected, seen } = &kind {
                    message = format!(
                        "certificate is not the pinned one: pinned SHA-1 {expected}, presented {seen}"
                    );
                }
                kind
            }
            rustls::Error::NoCertificatesPresented => {
                alert_sent = Some(alert_name(AlertDescription::CertificateRequired));
                FailureKind::NoClientCertificate
            }
            rustls::Error::AlertReceived(alert) => {
                alert_received = Some(alert_name(*alert));
                FailureKind::AlertReceived
            }
            rustls::Error::InvalidMessage(_) => FailureKind::NotTls,
            _ => FailureKind::Other,
        };
        Failure {
            kind,
            message,
            alert_sent,
            alert_received,
        }
    }

    /// A failure with no alert involved.
    pub fn plain(kind: FailureKind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
            alert_sent: None,
            alert_received: None,
        }
    }

    /// One short line: the alert, if any, then the error.
    pub fn summary(&self) -> String {
        match (&self.alert_sent, &self.alert_received) {
            (_, Some(alert)) => format!("received alert {alert}"),
            (Some(alert), None) => format!("sent alert {alert}: {}", self.message),
            (None, None) => self.message.clone(),
        }
    }
}

/// Everything one hop reports about one connection.
#[derive(Debug, Clone, Serialize)]
pub struct HopRecord {
    /// Which hop.
    pub hop: Hop,
    /// What implements it, e.g. "passthru (in-process)".
    pub component: String,
    /// Its TLS handshakes.
    pub legs: Vec<Leg>,
    /// Application-level lines it sent or received (answers, refusals).
    pub said: Vec<String>,
    /// Bytes this hop moved toward the backend (sent by the agent, relayed
    /// onward by the others).
    pub bytes_up: u64,
    /// Bytes this hop moved toward the agent.
    pub bytes_down: u64,
    /// Facts worth showing (routing decision, CONNECT target, ...).
    pub notes: Vec<String>,
    /// A failure outside any handshake (dial, tunnel, timeout).
    pub error: Option<Failure>,
    /// The gateway's application-level refusal after a valid handshake.
    pub refused: Option<Refusal>,
    /// The client address this hop logged (the gateway: from the TCP peer,
    /// or from a PROXY header when it expects one).
    pub client_addr: Option<String>,
}

/// Why a gateway refused a client whose chain was valid; it answers
/// "Authentication Required" in clear inside the session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Refusal {
    /// No client certificate at all.
    NoCertificate,
    /// The gateway trusts one host by thumbprint, and this is another one.
    NotPinned {
        /// The pinned SHA-1.
        pinned: String,
        /// The presented SHA-1.
        presented: String,
    },
    /// No registered certificate has this thumbprint.
    Unregistered {
        /// The presented SHA-1.
        presented: String,
    },
    /// Identity by CN: several registered certificates share this CN.
    AmbiguousCn {
        /// The shared CN.
        cn: String,
        /// How many registered certificates have it.
        count: usize,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NoCertificate => write!(f, "no client certificate"),
            Refusal::NotPinned { pinned, presented } => write!(
                f,
                "this gateway trusts only the host with SHA-1 {pinned}; presented {presented}"
            ),
            Refusal::Unregistered { presented } => {
                write!(f, "no registered certificate has SHA-1 {presented}")
            }
            Refusal::AmbiguousCn { cn, count } => write!(
                f,
                "{count} registered certificates have CN={cn}; cannot tell which one this is"
            ),
        }
    }
}

impl HopRecord {
    /// An empty record for `hop`.
    pub fn new(hop: Hop, component: &str) -> HopRecord {
        HopRecord {
            hop,
            component: component.to_string(),
            legs: Vec::new(),
            said: Vec::new(),
            bytes_up: 0,
            bytes_down: 0,
            notes: Vec::new(),
            error: None,
            refused: None,
            client_addr: None,
        }
    }

    /// The first leg of `layer`.
    pub fn leg(&self, layer: Layer) -> Option<&Leg> {
        self.legs.iter().find(|l| l.layer == layer)
    }
}

/// The alert's name as the TLS RFCs write it (`unknown_ca`).
pub fn alert_name(alert: AlertDescription) -> String {
    let camel = format!("{alert:?}");
    let mut out = String::with_capacity(camel.len() + 4);
    let mut previous_lower = false;
    for c in camel.chars() {
        if c.is_ascii_uppercase() && previous_lower {
            out.push('_');
        }
        previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        out.push(c.to_ascii_lowercase());
    }
    out
}

fn certificate_kind(error: &CertificateError) -> FailureKind {
    match error {
        CertificateError::Other(other) => match other.0.downcast_ref::<PinMismatch>() {
            Some(pin) => FailureKind::PinMismatch {
                expected: pin.expected.clone(),
                seen: pin.seen.clone(),
            },
            None => FailureKind::BadCertificate,
        },
        CertificateError::UnknownIssuer => FailureKind::UnknownIssuer,
        CertificateError::ExpiredContext { time, not_after } => FailureKind::Expired {
            not_after: not_after.as_secs(),
            checked_at: time.as_secs(),
        },
        CertificateError::NotValidYetContext { time, not_before } => FailureKind::NotYetValid {
            not_before: not_before.as_secs(),
            checked_at: time.as_secs(),
        },
        _ => FailureKind::BadCertificate,
    }
}

/// The server certificate's thumbprint did not match the pin.
#[derive(Debug)]
pub struct PinMismatch {
    /// The pinned SHA-1 thumbprint.
    pub expected: String,
    /// The thumbprint of the certificate presented.
    pub seen: String,
}

impl fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pinned SHA-1 {} but the server presented {}",
            self.expected, self.seen
        )
    }
}

impl std::error::Error for PinMismatch {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_names_are_snake_case() {
        assert_eq!(alert_name(AlertDescription::UnknownCA), "unknown_ca");
        assert_eq!(
            alert_name(AlertDescription::CertificateRequired),
            "certificate_required"
        );
        assert_eq!(
            alert_name(AlertDescription::BadCertificate),
            "bad_certificate"
        );
    }
}
