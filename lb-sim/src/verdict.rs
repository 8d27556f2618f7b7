//! The verdict of one run, drawn from what the hops recorded: it works, or
//! which hop failed first and why, with one sentence an operator would
//! understand. Pure: no I/O.

use serde::Serialize;

use crate::agent::GATEWAY_NAME;
use crate::observe::{FailureKind, Hop, HopRecord, Layer, Leg, Refusal};

/// The outcome of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    /// Both handshakes completed and every request was answered.
    Works,
    /// Not run: what it needs is missing here (never counts as passed).
    Skipped,
    /// `hop` stopped the connection for `reason`.
    Fails {
        /// Where it broke.
        hop: Hop,
        /// Why.
        reason: Reason,
    },
}

/// Why a connection failed, as the lab tells causes apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// The agent was shown another certificate than the pinned gateway one.
    PinMismatch,
    /// The gateway received no client certificate.
    NoClientCertificate,
    /// The gateway authenticated someone else than the agent.
    WrongClientIdentity,
    /// The client chain does not lead to a trusted root.
    UntrustedIssuer,
    /// The client certificate has expired.
    CertificateExpired,
    /// The client certificate is not valid yet.
    CertificateNotYetValid,
    /// Valid chain, but not the one pinned host: "Authentication Required".
    AuthenticationRequired,
    /// Identity by CN matched several registered certificates.
    AmbiguousIdentity,
    /// A balancer dropped the idle flow and reset it on the next packet.
    IdleReset,
    /// The first hop could not be reached.
    Unreachable,
    /// Anything else (see the explanation).
    Other,
}

impl Verdict {
    /// Text for reports: "works" or "fails at gateway: untrusted-issuer".
    pub fn label(&self) -> String {
        match self {
            Verdict::Works => "works".to_string(),
            Verdict::Skipped => "skipped".to_string(),
            Verdict::Fails { hop, reason } => {
                format!("fails at {}: {}", hop.as_str(), reason.as_str())
            }
        }
    }

    /// Short text for the table: "works" or "gateway: untrusted-issuer".
    pub fn short(&self) -> String {
        match self {
            Verdict::Works => "works".to_string(),
            Verdict::Skipped => "skipped".to_string(),
            Verdict::Fails { hop, reason } => format!("{}: {}", hop.as_str(), reason.as_str()),
        }
    }
}

impl Reason {
    /// Kebab-case name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::PinMismatch => "pin-mismatch",
            Reason::NoClientCertificate => "no-client-certificate",
            Reason::WrongClientIdentity => "wrong-client-identity",
            Reason::UntrustedIssuer => "untrusted-issuer",
            Reason::CertificateExpired => "certificate-expired",
            Reason::CertificateNotYetValid => "certificate-not-yet-valid",
            Reason::AuthenticationRequired => "authentication-required",
            Reason::AmbiguousIdentity => "ambiguous-identity",
            Reason::IdleReset => "idle-reset",
            Reason::Unreachable => "unreachable",
            Reason::Other => "other",
        }
    }
}

/// Judge a run from its records; `exchanges` is how many answers the agent
/// should have received. Returns the verdict and one sentence saying why.
pub fn judge(records: &[HopRecord], exchanges: usize) -> (Verdict, String) {
    let fails = |hop, reason, why: String| (Verdict::Fails { hop, reason }, why);
    let Some(agent) = records.iter().find(|r| r.hop == Hop::Agent) else {
        return fails(
            Hop::Agent,
            Reason::Other,
            "the agent reported nothing".into(),
        );
    };
    let outer = agent.leg(Layer::Outer);
    let Some(outer) = outer else {
        let why = agent
            .error
            .as_ref()
            .map_or("no TCP connection".into(), |f| f.message.clone());
        return fails(
            Hop::Agent,
            Reason::Unreachable,
            format!("the agent could not reach the first hop: {why}"),
        );
    };
    let presented = agent.legs.iter().find_map(|l| l.presented.clone());
    let agent_sha1 = presented.as_ref().map(|c| c.sha1.clone());

    // 1. The agent refused what it was shown (its own alert, not the peer's).
    if let Some(failure) = outer
        .failure
        .as_ref()
        .filter(|f| f.alert_received.is_none())
    {
        if let FailureKind::PinMismatch { expected, .. } = &failure.kind {
            let seen = outer.peer_cert.as_ref();
            return fails(
                Hop::Agent,
                Reason::PinMismatch,
                format!(
                    "the agent pins the gateway's certificate (SHA-1 {expected}) but was shown CN={} (SHA-1 {}): something in front of the gateway terminated TLS with its own certificate",
                    seen.map_or("?", |c| c.subject_cn.as_str()),
                    seen.map_or("?", |c| c.sha1.as_str()),
                ),
            );
        }
        if failure.alert_sent.is_some() {
            return fails(
                Hop::Agent,
                Reason::Other,
                format!(
                    "the agent refused the outer certificate: {}",
                    failure.message
                ),
            );
        }
    }

    // 2. A layer-4 balancer that dropped the flow while it was idle.
    if let Some(front) = records.iter().find(|r| {
        r.hop == Hop::Front
            && r.error
                .as_ref()
                .is_some_and(|e| e.message == crate::front::IDLE_RESET)
    }) {
        let dropped = front
            .notes
            .iter()
            .find(|n| n.contains("idle for more than"))
            .cloned()
            .unwrap_or_default();
        return fails(
            Hop::Front,
            Reason::IdleReset,
            format!(
                "the layer-4 balancer saw no packet of this flow for longer than its idle timeout and dropped it ({dropped}); the agent's next request was answered with a reset, after {} of {exchanges} answers",
                agent.said.len()
            ),
        );
    }

    // 3. The hops behind the agent, front to back.
    for hop in [Hop::Balancer, Hop::Proxy, Hop::Gateway, Hop::Backend] {
        for record in records.iter().filter(|r| r.hop == hop) {
            if let Some(verdict) = judge_hop(record, agent_sha1.as_deref()) {
                return verdict;
            }
        }
    }

    // 4. The agent's inner session and answers.
    if let Some(failure) = agent.leg(Layer::Inner).and_then(|l| l.failure.as_ref()) {
        return fails(
            Hop::Agent,
            Reason::Other,
            format!(
                "the inner handshake with the backend failed: {}",
                failure.summary()
            ),
        );
    }
    if let Some(failure) = &outer.failure {
        return fails(
            Hop::Agent,
            Reason::Other,
            format!("the outer session failed: {}", failure.summary()),
        );
    }
    let answers = agent.said.len();
    if answers < exchanges {
        let why = agent
            .error
            .as_ref()
            .map_or(String::new(), |f| format!(": {}", f.message));
        return fails(
            Hop::Agent,
            Reason::Other,
            format!("only {answers} of {exchanges} requests were answered{why}"),
        );
    }
    let who = presented.map_or("(none)".to_string(), |c| {
        format!("CN={} (SHA-1 {})", c.subject_cn, c.sha1)
    });
    (
        Verdict::Works,
        format!(
            "both handshakes completed: the gateway and the backend each authenticated the agent's own certificate {who}; {answers} request(s) answered"
        ),
    )
}

fn judge_hop(record: &HopRecord, agent_sha1: Option<&str>) -> Option<(Verdict, String)> {
    let hop = record.hop;
    let fails = |reason, why: String| Some((Verdict::Fails { hop, reason }, why));
    let name = hop.as_str();
    for leg in &record.legs {
        let relay_front = matches!(hop, Hop::Balancer | Hop::Proxy) && leg.layer == Layer::Outer;
        if relay_front {
            continue; // the agent's side of that handshake was judged already
        }
        if let Some(failure) = &leg.failure {
            let reason = certificate_reason(leg);
            let seen = leg
                .peer_cert
                .as_ref()
                .map_or("no client certificate".to_string(), |c| {
                    format!("client certificate CN={} (SHA-1 {})", c.subject_cn, c.sha1)
                });
            let why = match (reason, &failure.kind) {
                (
                    Reason::CertificateNotYetValid,
                    FailureKind::NotYetValid {
                        not_before,
                        checked_at,
                    },
                ) => format!(
                    "the {name} refused the {seen}: not valid until {} but its clock says {} — {} early (clock skew)",
                    utc(*not_before),
                    utc(*checked_at),
                    span(not_before.saturating_sub(*checked_at))
                ),
                (
                    Reason::CertificateExpired,
                    FailureKind::Expired {
                        not_after,
                        checked_at,
                    },
                ) => format!(
                    "the {name} refused the {seen}: expired at {}, checked at {} — {} late",
                    utc(*not_after),
                    utc(*checked_at),
                    span(checked_at.saturating_sub(*not_after))
                ),
                (Reason::NoClientCertificate, _) if leg.sni.as_deref() != Some(GATEWAY_NAME) => {
                    format!(
                        "the {name} asked for a client certificate and got none: the ClientHello it received was the agent's inner one (SNI {}), sent in clear because the TLS layer in front was terminated ({})",
                        leg.sni.as_deref().unwrap_or("(none)"),
                        failure.summary()
                    )
                }
                (Reason::NoClientCertificate, _) => format!(
                    "the {name} asked for a client certificate and got none: whoever opened this TLS session does not hold the agent's key ({})",
                    failure.summary()
                ),
                _ => format!("the {name} refused the {seen}: {}", failure.summary()),
            };
            return fails(reason, why);
        }
    }
    if let Some(refusal) = &record.refused {
        let reason = match refusal {
            Refusal::AmbiguousCn { .. } => Reason::AmbiguousIdentity,
            _ => Reason::AuthenticationRequired,
        };
        return fails(
            reason,
            format!(
                "the {name}'s handshake completed, then it answered \"Authentication Required\": {refusal}"
            ),
        );
    }
    if hop == Hop::Gateway {
        let client = record.leg(Layer::Outer).and_then(|l| l.peer_cert.as_ref());
        if let (Some(client), Some(agent)) = (client, agent_sha1)
            && client.sha1 != agent
        {
            return fails(
                Reason::WrongClientIdentity,
                format!(
                    "the gateway authenticated CN={} (SHA-1 {}) instead of the agent (SHA-1 {agent}): every machine behind this balancer looks like the balancer",
                    client.subject_cn, client.sha1
                ),
            );
        }
    }
    None
}

fn certificate_reason(leg: &Leg) -> Reason {
    let Some(failure) = &leg.failure else {
        return Reason::Other;
    };
    match failure.kind {
        FailureKind::UnknownIssuer => Reason::UntrustedIssuer,
        FailureKind::Expired { .. } => Reason::CertificateExpired,
        FailureKind::NotYetValid { .. } => Reason::CertificateNotYetValid,
        FailureKind::NoClientCertificate => Reason::NoClientCertificate,
        _ if leg.peer_cert.is_none() && leg.client_cert_requested => Reason::NoClientCertificate,
        _ => Reason::Other,
    }
}

/// A UNIX time as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc(unix: u64) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(i64::try_from(unix).unwrap_or(i64::MAX))
    else {
        return format!("@{unix}");
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Seconds as "2h 0m 3s" / "35d 0h".
pub fn span(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    match (d, h) {
        (0, 0) => format!("{m}m {s}s"),
        (0, _) => format!("{h}h {m}m {s}s"),
        _ => format!("{d}d {h}h {m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_like_a_person_writes_them() {
        assert_eq!(span(7203), "2h 0m 3s");
        assert_eq!(span(35 * 86_400 + 60), "35d 0h 1m");
        assert_eq!(span(59), "0m 59s");
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
    }

    #[test]
    fn no_agent_record_is_a_failure_not_a_pass() {
        let (verdict, _) = judge(&[], 1);
        assert_eq!(
            verdict,
            Verdict::Fails {
                hop: Hop::Agent,
                reason: Reason::Other
            }
        );
    }
}
