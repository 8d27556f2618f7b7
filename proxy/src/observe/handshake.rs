//! What the observer reports: the [`Handshake`] seen on one connection,
//! the certificates in it, and the names for a direction and a party.

use serde::Serialize;

/// Which way bytes were forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the TLS client to the server (upstream).
    ClientToServer,
    /// From the server to the TLS client (downstream).
    ServerToClient,
}

/// A party of the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The TLS client (serialised as "client").
    Client,
    /// The TLS server (serialised as "server").
    Server,
}

/// What was learned about one handshake.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Handshake {
    /// Negotiated version from the ServerHello ("TLSv1.3", "TLSv1.2",
    /// "TLSv1.1", "TLSv1", "SSLv3"); `supported_versions` wins over
    /// `legacy_version`.
    pub version: Option<&'static str>,
    /// Negotiated cipher suite: the IANA name for common suites
    /// ("TLS_AES_128_GCM_SHA256"), else the number ("0xC0AB").
    pub cipher: Option<String>,
    /// TLS 1.3: certificates travel encrypted and are not visible.
    pub certificates_encrypted: bool,
    /// TLS 1.2 and below: whether the server sent a CertificateRequest
    /// (`Some(false)` once its ServerHelloDone arrived without one). `None`
    /// when unknown: TLS 1.3, a resumed session, or not seen yet.
    pub client_cert_requested: Option<bool>,
    /// TLS 1.2 and below: the client's leaf certificate, if it sent one.
    pub client_cert: Option<CertSummary>,
    /// TLS 1.2 and below: the client answered the CertificateRequest with
    /// an empty Certificate message (it had no certificate to offer).
    pub client_cert_empty: bool,
    /// TLS 1.2 and below: the server's leaf certificate.
    pub server_cert: Option<CertSummary>,
    /// The first plaintext alert: who sent it and its RFC 8446 name
    /// ("unknown_ca", "bad_certificate", "certificate_expired",
    /// "handshake_failure", ...), "alert_N" for numbers without a name.
    pub alert: Option<(Side, String)>,
    /// The handshake completed, as far as can be seen (module docs: exact
    /// for TLS 1.2, best effort for TLS 1.3).
    pub completed: bool,
    /// Observation stopped early: budget spent, a message larger than
    /// [`MAX_MESSAGE`](super::MAX_MESSAGE), or input that is not TLS.
    pub truncated: bool,
}

/// A certificate seen in clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertSummary {
    /// Subject distinguished name ("O=passthru test, CN=gw.example.com").
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// Serial number: the DER INTEGER content as lower-case hex pairs with
    /// spaces, a leading 00 kept ("00 8f 12 34 56"), as `passthru-certs
    /// inspect` shows it (`openssl x509 -serial` prints "8F123456").
    pub serial_hex: String,
    /// SHA-1 thumbprint of the DER certificate, lower-case hex.
    pub sha1: String,
    /// SHA-256 thumbprint of the DER certificate, lower-case hex.
    pub sha256: String,
    /// notAfter in RFC 3339, UTC ("2036-11-20T02:57:53Z").
    pub not_after: String,
    /// notAfter in seconds since the Unix epoch.
    pub not_after_unix: i64,
}
