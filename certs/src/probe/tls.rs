//! The probe's rustls client: a server-certificate verifier that records
//! the chain (and checks only the handshake signatures: trust is judged
//! afterwards, so the probe can go on and see the client-certificate
//! step), a client-certificate resolver that records the server's request
//! and its CA names, and a session store that notices the TLS 1.3 ticket a
//! server sends once it has accepted our Finished. Also TLS alert names.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{
    ClientSessionStore, ResolvesClientCert, Tls12ClientSessionValue, Tls13ClientSessionValue,
};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{AlertDescription, ClientConfig, DigitallySignedStruct, NamedGroup, SignatureScheme};
use tokio::sync::Notify;

/// What the handshake showed, filled in by the rustls callbacks.
#[derive(Debug, Default)]
pub(super) struct Observed {
    /// The server's chain as sent, leaf first.
    pub(super) server_chain: Vec<CertificateDer<'static>>,
    /// The server sent a CertificateRequest.
    pub(super) requested: bool,
    /// The DER distinguished names in that request.
    pub(super) ca_names: Vec<Vec<u8>>,
    /// We answered it with a certificate.
    pub(super) sent: bool,
    /// A TLS 1.3 NewSessionTicket arrived.
    pub(super) ticket: bool,
}

/// Shared between the callbacks and the probe.
#[derive(Debug, Default)]
pub(super) struct Recorder {
    observed: Mutex<Observed>,
    /// Woken when a session ticket arrives.
    pub(super) ticket: Notify,
}

impl Recorder {
    pub(super) fn observed(&self) -> MutexGuard<'_, Observed> {
        self.observed.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A client config that records into `recorder`, presents `identity` when
/// asked, and accepts any server chain whose handshake signature verifies.
pub(super) fn client_config(
    recorder: &Arc<Recorder>,
    identity: Option<Arc<CertifiedKey>>,
) -> Result<ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(RecordingVerifier {
            recorder: recorder.clone(),
            provider,
        }))
        .with_client_cert_resolver(Arc::new(RecordingResolver {
            recorder: recorder.clone(),
            identity,
        }));
    config.resumption = rustls::client::Resumption::store(Arc::new(TicketWatch {
        recorder: recorder.clone(),
    }));
    Ok(config)
}

/// Loads `chain` and `key` as a rustls signing identity, checking that the
/// key belongs to the leaf.
pub(super) fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<CertifiedKey>, rustls::Error> {
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(chain, key, &provider).map(Arc::new)
}

/// The RFC name of an alert ("unknown_ca") and its code.
pub(super) fn alert_name(alert: AlertDescription) -> (String, u8) {
    let code = u8::from(alert);
    let name = match code {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        22 => "record_overflow",
        40 => "handshake_failure",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        109 => "missing_extension",
        110 => "unsupported_extension",
        112 => "unrecognized_name",
        113 => "bad_certificate_status_response",
        115 => "unknown_psk_identity",
        116 => "certificate_required",
        120 => "no_application_protocol",
        _ => return (format!("alert {code}"), code),
    };
    (name.to_owned(), code)
}

#[derive(Debug)]
struct RecordingVerifier {
    recorder: Arc<Recorder>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut chain = vec![end_entity.clone().into_owned()];
        chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        self.recorder.observed().server_chain = chain;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[derive(Debug)]
struct RecordingResolver {
    recorder: Arc<Recorder>,
    identity: Option<Arc<CertifiedKey>>,
}

impl ResolvesClientCert for RecordingResolver {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        let mut observed = self.recorder.observed();
        observed.requested = true;
        observed.ca_names = root_hint_subjects.iter().map(|dn| dn.to_vec()).collect();
        observed.sent = self.identity.is_some();
        self.identity.clone()
    }

    fn has_certs(&self) -> bool {
        self.identity.is_some()
    }
}

/// Stores nothing; only notices that a TLS 1.3 ticket arrived.
#[derive(Debug)]
struct TicketWatch {
    recorder: Arc<Recorder>,
}

impl ClientSessionStore for TicketWatch {
    fn set_kx_hint(&self, _server_name: ServerName<'static>, _group: NamedGroup) {}

    fn kx_hint(&self, _server_name: &ServerName<'_>) -> Option<NamedGroup> {
        None
    }

    fn set_tls12_session(
        &self,
        _server_name: ServerName<'static>,
        _value: Tls12ClientSessionValue,
    ) {
    }

    fn tls12_session(&self, _server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        None
    }

    fn remove_tls12_session(&self, _server_name: &ServerName<'static>) {}

    fn insert_tls13_ticket(
        &self,
        _server_name: ServerName<'static>,
        _value: Tls13ClientSessionValue,
    ) {
        self.recorder.observed().ticket = true;
        self.recorder.ticket.notify_one();
    }

    fn take_tls13_ticket(
        &self,
        _server_name: &ServerName<'static>,
    ) -> Option<Tls13ClientSessionValue> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_names_follow_the_rfcs() {
        assert_eq!(
            alert_name(AlertDescription::UnknownCA),
            ("unknown_ca".to_owned(), 48)
        );
        assert_eq!(
            alert_name(AlertDescription::CertificateRequired),
            ("certificate_required".to_owned(), 116)
        );
        assert_eq!(
            alert_name(AlertDescription::UnrecognisedName),
            ("unrecognized_name".to_owned(), 112)
        );
        assert_eq!(
            alert_name(AlertDescription::Unknown(200)),
            ("alert 200".to_owned(), 200)
        );
    }
}
