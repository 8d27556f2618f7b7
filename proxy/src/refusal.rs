//! Every way a connection can end before its bytes are forwarded. One
//! closed enum drives the access-log outcome, the counters and what goes
//! on the wire, so they cannot drift apart.

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
    /// Nothing: close.
    Close,
}

/// Who caused the refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client (or the balancer in front of passthru).
    Client,
    /// The backend servers.
    Upstream,
    /// passthru's own limits or configuration.
    Local,
}

impl Refusal {
    /// Every reason, in the order metrics list them.
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
            Refusal::PlaintextHttp => "plaintext_http",
            Refusal::NotTls => "not_tls",
            Refusal::ClientHelloTimeout => "client_hello_timeout",
            Refusal::ClientHelloTooLarge => "client_hello_too_large",
            Refusal::NoRoute => "no_route",
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

    /// Who caused it.
    pub fn side(self) -> Side {
        match self {
            Refusal::UpstreamUnavailable => Side::Upstream,
            Refusal::MaxConnections
            | Refusal::MaxPending
            | Refusal::NoRoute
            | Refusal::QueueFull
            | Refusal::QueueTimeout => Side::Local,
            _ => Side::Client,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
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
        for queued in [Refusal::QueueFull, Refusal::QueueTimeout] {
            assert_eq!(
                queued.reply(),
                Reply::Alert(AlertDescription::InternalError)
            );
        }
        assert_eq!(Refusal::ClientLimit.reply(), Reply::Close);
    }
}
