//! rustls building blocks every lab component shares: the ring provider,
//! certificate verifiers that record what they were shown (pinning by SHA-1
//! thumbprint or validating against roots), a client-certificate resolver
//! that records whether the server asked, and the client-certificate
//! verifier of the TLS servers. No sockets here.

use std::sync::{Arc, Mutex};

use passthru_certs::Identity;
use passthru_certs::fingerprint::sha1_hex;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, Error, RootCertStore,
    ServerConfig, SignatureScheme,
};

use crate::observe::{CertSeen, PinMismatch};

/// The ring crypto provider; every config in the lab is built with it.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// How a TLS client decides to trust the server's certificate.
#[derive(Clone)]
pub enum ServerTrust {
    /// Accept exactly the certificate with this SHA-1 thumbprint (hex), as
    /// agents pinning a self-signed gateway do. Handshake signatures are
    /// still verified.
    Pinned(String),
    /// Validate the chain against these roots and the server name.
    Roots(Arc<RootCertStore>),
}

/// What a client-side handshake saw, filled in while it runs (so it is known
/// even when the handshake fails).
#[derive(Debug, Default)]
pub struct ClientSight {
    /// The server's leaf certificate.
    pub server_cert: Mutex<Option<CertSeen>>,
    /// Whether the server sent a CertificateRequest.
    pub asked_for_client_cert: Mutex<bool>,
}

/// A client config: `trust` for the server, `identity` presented when asked,
/// observations recorded into `sight`.
pub fn client_config(
    trust: ServerTrust,
    identity: Option<&Identity>,
    sight: &Arc<ClientSight>,
) -> Result<ClientConfig, Error> {
    let provider = provider();
    let verifier = RecordingServerVerifier::new(trust, Arc::clone(&provider), Arc::clone(sight))?;
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let resolver = RecordingClientCert {
        key: identity
            .map(|id| certified_key(id, &provider))
            .transpose()?,
        sight: Arc::clone(sight),
    };
    Ok(builder.with_client_cert_resolver(Arc::new(resolver)))
}

/// What a server-side handshake saw of its client's certificate.
#[derive(Debug, Default)]
pub struct ServerSight {
    /// The client's leaf certificate, if it sent one.
    pub client_cert: Mutex<Option<CertSeen>>,
}

/// A server config presenting `identity`; with `client_roots`, a client
/// certificate is required and validated against them.
pub fn server_config(
    identity: &Identity,
    client_roots: Option<Arc<RootCertStore>>,
    sight: &Arc<ServerSight>,
) -> Result<ServerConfig, Error> {
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let builder = match client_roots {
        None => builder.with_no_client_auth(),
        Some(roots) => {
            let inner = WebPkiClientVerifier::builder_with_provider(roots, Arc::clone(&provider))
                .build()
                .map_err(|e| Error::General(format!("client verifier: {e}")))?;
            builder.with_client_cert_verifier(Arc::new(RecordingClientVerifier {
                inner,
                sight: Arc::clone(sight),
            }))
        }
    };
    let (chain, key) = identity.rustls_chain();
    builder.with_single_cert(chain, key)
}

/// Roots holding exactly these certificates.
pub fn roots(ders: &[&[u8]]) -> Result<Arc<RootCertStore>, Error> {
    let mut store = RootCertStore::empty();
    for der in ders {
        store
            .add(CertificateDer::from(der.to_vec()))
            .map_err(|e| Error::General(format!("trust anchor: {e}")))?;
    }
    Ok(Arc::new(store))
}

/// `identity` as a rustls signing identity.
pub fn certified_key(
    identity: &Identity,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, Error> {
    let (chain, key) = identity.rustls_chain();
    certified_key_from(chain, &key, provider)
}

/// A chain and its key as a rustls signing identity.
pub fn certified_key_from(
    chain: Vec<CertificateDer<'static>>,
    key: &PrivateKeyDer<'_>,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, Error> {
    let signing = provider.key_provider.load_private_key(key.clone_key())?;
    Ok(Arc::new(CertifiedKey::new(chain, signing)))
}

/// Thumbprint and subject CN of a DER certificate.
pub fn cert_seen(der: &[u8]) -> CertSeen {
    CertSeen {
        sha1: sha1_hex(der),
        subject_cn: subject_cn(der).unwrap_or_else(|| "(no CN)".to_string()),
    }
}

/// The subject common name of a DER certificate.
pub fn subject_cn(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}

#[derive(Debug)]
struct RecordingServerVerifier {
    trust: Trust,
    provider: Arc<CryptoProvider>,
    sight: Arc<ClientSight>,
}

#[derive(Debug)]
enum Trust {
    Pinned(String),
    Roots(Arc<WebPkiServerVerifier>),
}

impl RecordingServerVerifier {
    fn new(
        trust: ServerTrust,
        provider: Arc<CryptoProvider>,
        sight: Arc<ClientSight>,
    ) -> Result<Self, Error> {
        let trust = match trust {
            ServerTrust::Pinned(sha1) => Trust::Pinned(sha1),
            ServerTrust::Roots(roots) => Trust::Roots(
                WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
                    .build()
                    .map_err(|e| Error::General(format!("server verifier: {e}")))?,
            ),
        };
        Ok(RecordingServerVerifier {
            trust,
            provider,
            sight,
        })
    }
}

impl ServerCertVerifier for RecordingServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let seen = cert_seen(end_entity);
        let sha1 = seen.sha1.clone();
        if let Ok(mut slot) = self.sight.server_cert.lock() {
            *slot = Some(seen);
        }
        match &self.trust {
            Trust::Pinned(expected) if *expected == sha1 => Ok(ServerCertVerified::assertion()),
            Trust::Pinned(expected) => Err(Error::InvalidCertificate(CertificateError::Other(
                rustls::OtherError(Arc::new(PinMismatch {
                    expected: expected.clone(),
                    seen: sha1,
                })),
            ))),
            Trust::Roots(webpki) => webpki.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(
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
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(
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
struct RecordingClientCert {
    key: Option<Arc<CertifiedKey>>,
    sight: Arc<ClientSight>,
}

impl ResolvesClientCert for RecordingClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        if let Ok(mut asked) = self.sight.asked_for_client_cert.lock() {
            *asked = true;
        }
        self.key.clone()
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[derive(Debug)]
struct RecordingClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    sight: Arc<ServerSight>,
}

impl ClientCertVerifier for RecordingClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        if let Ok(mut slot) = self.sight.client_cert.lock() {
            *slot = Some(cert_seen(end_entity));
        }
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
