//! Every way a connection can end before its bytes are forwarded, and how
//! every connection ended ([`Outcome`]). One closed enum drives the
//! access-log outcome, the counters and what goes on the wire, so they
//! cannot drift apart. No I/O: `front.rs` writes what [`Refusal::reply`] says.

use std::fmt;

use crate::alert::AlertDescription;

/// Why passthru did not forward a connection. `as_str` is the spec's
/// `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// The first bytes were a plaintext HTTP request: an SSL-offloading
    /// balancer is probably in front.
    PlaintextHttp,
    /// The first bytes were neither TLS nor HTTP.
    NotTls,
    /// The ClientHello did not arrive within `client_hello_timeout`.
    ClientHelloTimeout,
    /// The ClientHello is larger than `max_client_hello`.
    ClientHelloTooLarge,
    /// No route matched and there is no `[default]`.
    NoRoute,
    /// A PROXY header from a peer outside `trusted_proxies`.
    ProxyHeaderUntrusted,
    /// A malformed, missing or unexpected PROXY header.
    ProxyHeaderInvalid,
    /// The listener had `max_connections` open.
    MaxConnections,
    /// Too many connections still in the PROXY/ClientHello phase.
    MaxPending,
    /// No server of the backend could be reached.
    UpstreamUnavailable,
    /// An inbound CONNECT whose tunnelled ClientHello named another host.
    ConnectSniMismatch,
    /// An inbound CONNECT that is not a usable request (the reason is
    /// quoted in the 400). Counted as `plaintext_http`: it is plaintext HTTP
    /// that passthru will not tunnel.
    ConnectMalformed(&'static str),
    /// An inbound CONNECT to a name passthru does not route: `403`, counted
    /// as `no_route`.
    ConnectNoRoute,
    /// The client address already had `max_connections_per_client` open.
    ClientLimit,
    /// Every usable server was at its limit and `max_queue` connections
    /// already waited.
    QueueFull,
    /// No server slot freed within `queue_timeout`.
    QueueTimeout,
}

/// What passthru writes to the client before closing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// A TLS fatal alert record.
    Alert(AlertDescription),
    /// The `400 Bad Request` that explains TLS passthrough.
    HttpBadRequest,
    /// An HTTP answer to an inbound CONNECT (`400 Bad Request`,
    /// `403 Forbidden`) with a one-line reason.
    ConnectError(&'static str),
    /// Nothing: close.
    Close,
}

impl Refusal {
    /// Every `reason` label, in the order metrics list them (the CONNECT
    /// variants share the labels of `plaintext_http` and `no_route`).
    pub const ALL: [Refusal; 14] = [
        Refusal::PlaintextHttp,
        Refusal::NotTls,
        Refusal::ClientHelloTimeout,
        Refusal::ClientHelloTooLarge,
        Refusal::NoRoute,
        Refusal::ProxyHeaderUntrusted,
        Refusal::ProxyHeaderInvalid,
        Refusal::MaxConnections,
        Refusal::MaxPending,
        Refusal::UpstreamUnavailable,
        Refusal::ConnectSniMismatch,
        Refusal::ClientLimit,
        Refusal::QueueFull,
        Refusal::QueueTimeout,
    ];

    /// The `reason` label, exactly as in the spec.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::PlaintextHttp | Refusal::ConnectMalformed(_) => "plaintext_http",
            Refusal::NotTls => "not_tls",
            Refusal::ClientHelloTimeout => "client_hello_timeout",
            Refusal::ClientHelloTooLarge => "client_hello_too_large",
            Refusal::NoRoute | Refusal::ConnectNoRoute => "no_route",
            Refusal::ProxyHeaderUntrusted => "proxy_header_untrusted",
            Refusal::ProxyHeaderInvalid => "proxy_header_invalid",
            Refusal::MaxConnections => "max_connections",
            Refusal::MaxPending => "max_pending",
            Refusal::UpstreamUnavailable => "upstream_unavailable",
            Refusal::ConnectSniMismatch => "connect_sni_mismatch",
            Refusal::ClientLimit => "client_limit",
            Refusal::QueueFull => "queue_full",
            Refusal::QueueTimeout => "queue_timeout",
        }
    }

    /// What goes on the wire before the close.
    pub fn reply(self) -> Reply {
        match self {
            Refusal::PlaintextHttp => Reply::HttpBadRequest,
            Refusal::ConnectMalformed(_) => Reply::ConnectError("400 Bad Request"),
            Refusal::ConnectNoRoute => Reply::ConnectError("403 Forbidden"),
            Refusal::NoRoute | Refusal::ConnectSniMismatch => {
                Reply::Alert(AlertDescription::UnrecognizedName)
            }
            Refusal::UpstreamUnavailable | Refusal::QueueFull | Refusal::QueueTimeout => {
                Reply::Alert(AlertDescription::InternalError)
            }
            Refusal::NotTls
            | Refusal::ClientHelloTimeout
            | Refusal::ClientHelloTooLarge
            | Refusal::ProxyHeaderUntrusted
            | Refusal::ProxyHeaderInvalid
            | Refusal::MaxConnections
            | Refusal::MaxPending
            | Refusal::ClientLimit => Reply::Close,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a connection ended: the access log's `outcome` and the `outcome`
/// label of `passthru_connections_total`. Two outcomes are equal (and
/// ordered, and hashed) as their labels are, so records can be counted by
/// label: a malformed CONNECT is `plaintext_http` like a plaintext request.
#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    /// Routed and forwarded (`ok`), however the forwarding ended.
    Forwarded,
    /// Refused before forwarding: the refusal's reason.
    Refused(Refusal),
    /// The client closed before sending a whole ClientHello (a TCP health
    /// check, a port scan). Not a refusal: nothing was refused.
    ClientClosed,
    /// passthru stopped before the connection was routed.
    Stopped,
}

impl Outcome {
    /// `ok`, a refusal reason, `client_closed` or `stopped`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Forwarded => "ok",
            Outcome::Refused(r) => r.as_str(),
            Outcome::ClientClosed => "client_closed",
            Outcome::Stopped => "stopped",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq for Outcome {
    fn eq(&self, other: &Outcome) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Outcome {}

impl PartialOrd for Outcome {
    fn partial_cmp(&self, other: &Outcome) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Outcome {
    fn cmp(&self, other: &Outcome) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl std::hash::Hash for Outcome {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl std::borrow::Borrow<str> for Outcome {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<&str> for Outcome {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl serde::Serialize for Outcome {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_unique_and_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for r in Refusal::ALL {
            assert!(seen.insert(r.as_str()), "{r:?} repeats a label");
            assert!(
                r.as_str()
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c == b'_')
            );
        }
        assert_eq!(seen.len(), 14);
    }

    #[test]
    fn wire_replies() {
        assert_eq!(
            Refusal::NoRoute.reply(),
            Reply::Alert(AlertDescription::UnrecognizedName)
        );
        assert_eq!(
            Refusal::UpstreamUnavailable.reply(),
            Reply::Alert(AlertDescription::InternalError)
        );
        assert_eq!(Refusal::PlaintextHttp.reply(), Reply::HttpBadRequest);
        assert_eq!(Refusal::NotTls.reply(), Reply::Close);
        assert_eq!(
            Refusal::ConnectMalformed("x").reply(),
            Reply::ConnectError("400 Bad Request")
        );
        assert_eq!(
            Refusal::ConnectNoRoute.reply(),
            Reply::ConnectError("403 Forbidden")
        );
        for queued in [Refusal::QueueFull, Refusal::QueueTimeout] {
            assert_eq!(
                queued.reply(),
                Reply::Alert(AlertDescription::InternalError)
            );
        }
        assert_eq!(Refusal::ClientLimit.reply(), Reply::Close);
    }

    #[test]
    fn connect_refusals_keep_the_labels_of_their_cases() {
        assert_eq!(Refusal::ConnectMalformed("x").as_str(), "plaintext_http");
        assert_eq!(Refusal::ConnectNoRoute.as_str(), "no_route");
        assert_eq!(Outcome::Refused(Refusal::ConnectNoRoute), "no_route");
        assert_eq!(Outcome::Forwarded.to_string(), "ok");
    }
}
