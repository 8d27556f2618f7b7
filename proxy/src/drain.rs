//! The server's lifecycle phase, published on a `watch` channel: the admin
//! endpoint reads it (`/healthz` turns 503 from `Draining` on), the server
//! advances it.

/// Where the server is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Configuration loaded, listeners not yet bound.
    Starting,
    /// Every listener bound and accepting.
    Serving,
    /// Shutdown requested: still accepting for `drain_delay`, `/healthz` says 503.
    Draining,
    /// Listeners closed; waiting up to `drain_timeout` for open connections.
    Stopping,
    /// Done.
    Stopped,
}

impl Phase {
    /// Lower-case name, for logs and the admin endpoint.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Serving => "serving",
            Phase::Draining => "draining",
            Phase::Stopping => "stopping",
            Phase::Stopped => "stopped",
        }
    }
}
