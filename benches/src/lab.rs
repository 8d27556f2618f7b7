//! The run's workspace: a temporary directory holding the lab PKI as PEM
//! files (for nginx), the sparse bulk file, the peers' configs and logs;
//! and the rustls client configuration built from the same PKI (ring
//! provider, TLS 1.3, the agent's client certificate, the gateway
//! certificate pinned, no session resumption).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use passthru_certs::LabPki;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tempfile::TempDir;

use crate::configs::{BULK_BYTES, BULK_PATH};

/// The temporary directory and the PKI in it.
#[derive(Debug)]
pub struct Lab {
    dir: TempDir,
    /// The generated PKI (gateway, agent-01, root-ca, …).
    pub pki: LabPki,
}

impl Lab {
    /// Generate the PKI and lay out the directory. The directory is made
    /// world-readable (0755) because nginx workers started by root run as
    /// `nobody` and must read the bulk file.
    pub fn new() -> Result<Lab> {
        let dir = tempfile::Builder::new()
            .prefix("passthru-loadgen-")
            .tempdir()?;
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))?;
        let pki =
            LabPki::generate(time::OffsetDateTime::now_utc()).context("generating the lab PKI")?;
        pki.write_to(&dir.path().join("pki"), true)
            .context("writing the lab PKI")?;
        for sub in ["www", "backend-tmp", "logs"] {
            fs::create_dir_all(dir.path().join(sub))?;
            fs::set_permissions(dir.path().join(sub), fs::Permissions::from_mode(0o755))?;
        }
        let bulk = dir
            .path()
            .join("www")
            .join(BULK_PATH.trim_start_matches('/'));
        let file = fs::File::create(&bulk)?;
        file.set_len(BULK_BYTES)?;
        fs::set_permissions(&bulk, fs::Permissions::from_mode(0o644))?;
        Ok(Lab { dir, pki })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Write `text` to `name` in the directory and return its path.
    pub fn write(&self, name: &str, text: &str) -> Result<PathBuf> {
        let path = self.dir.path().join(name);
        fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// Where a peer's stderr goes.
    pub fn log(&self, name: &str) -> PathBuf {
        self.dir.path().join("logs").join(format!("{name}.log"))
    }

    /// The agent's client configuration.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Arc::new(Pinned {
            pinned: CertificateDer::from(self.pki.gateway.cert_der.clone()),
            provider: Arc::clone(&provider),
        });
        let (chain, key) = self.pki.agent.rustls_chain();
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(chain, key)?;
        config.resumption = rustls::client::Resumption::disabled();
        Ok(Arc::new(config))
    }
}

/// Accepts exactly the pinned certificate (as agents that pin the gateway
/// by thumbprint do), and checks the handshake signatures with it.
#[derive(Debug)]
struct Pinned {
    pinned: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.pinned.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "not the pinned gateway certificate".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
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
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
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
