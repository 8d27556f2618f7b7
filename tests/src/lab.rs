//! The lab PKI for tests: generated in-process for "now", also written as
//! PEM files (for openssl and curl) into a temporary directory.

use std::path::{Path, PathBuf};

use passthru_certs::{Identity, LabPki};

/// A generated PKI and the directory holding its PEM files.
pub struct Lab {
    /// The certificates and keys.
    pub pki: LabPki,
    dir: tempfile::TempDir,
}

impl Lab {
    /// Generate a fresh lab for the current time.
    pub fn new() -> Lab {
        let pki = LabPki::generate(time::OffsetDateTime::now_utc()).expect("lab PKI generation");
        let dir = tempfile::tempdir().expect("temp dir");
        pki.write_to(dir.path(), true).expect("write lab PKI");
        Lab { pki, dir }
    }

    /// The directory with the PEM files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `NAME.pem` of an identity.
    pub fn cert_file(&self, id: &Identity) -> PathBuf {
        self.dir.path().join(format!("{}.pem", id.name))
    }

    /// The leaf-plus-intermediates file of an identity (its `.pem` when it has none).
    pub fn chain_file(&self, id: &Identity) -> PathBuf {
        let chain = self.dir.path().join(format!("{}.chain.pem", id.name));
        if chain.exists() {
            chain
        } else {
            self.cert_file(id)
        }
    }

    /// `NAME.key` of an identity.
    pub fn key_file(&self, id: &Identity) -> PathBuf {
        self.dir.path().join(format!("{}.key", id.name))
    }
}

impl Default for Lab {
    fn default() -> Self {
        Lab::new()
    }
}

/// The ring crypto provider, always named explicitly (see docs/dependencies.md).
pub fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}
