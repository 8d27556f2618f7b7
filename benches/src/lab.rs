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
use passthru_certs::pin::PinnedServerCert;
use rustls::ClientConfig;
use rustls::pki_types::CertificateDer;
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

    /// Where passthru's stdout, its access log, goes: a file, so that the
    /// proxy pays what it pays when shipped (format, `write(2)`, the copy
    /// into the page cache), and the lines can be counted afterwards.
    pub fn access_log(&self) -> PathBuf {
        self.dir.path().join("logs").join("passthru-access.log")
    }

    /// Lines passthru wrote to its access log so far (0 when unreadable).
    pub fn access_log_lines(&self) -> usize {
        fs::read(self.access_log())
            .map(|b| b.iter().filter(|&&c| c == b'\n').count())
            .unwrap_or(0)
    }

    /// The agent's client configuration.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Arc::new(PinnedServerCert::new(
            CertificateDer::from(self.pki.gateway.cert_der.clone()),
            Arc::clone(&provider),
        ));
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
