//! The lab PKI: every certificate the tests, `lb-sim` and the demo need,
//! generated in-process (ECDSA P-256) with validity windows relative to a
//! given "now", so clock-skew scenarios are reproducible and nothing with a
//! baked-in expiry date is checked in.
//!
//! Trust layout:
//!
//! ```text
//! root-ca ─┬─ agent-ca (pathlen 0) ─┬─ agent-01, agent-02, agent-01-rotated
//!          │                        └─ agent-expired, agent-not-yet-valid, agent-server-eku
//!          ├─ backend, balancer, server-wrong-name
//! rogue-ca ── agent-untrusted
//! gateway (self-signed, pinned by SHA-1 thumbprint)
//! ```
//!
//! [`LabPki::generate`] does no I/O; [`LabPki::write_to`] is the only
//! function here that touches the file system. Key material never appears in
//! `Debug` output.

use std::fmt;
use std::io;
use std::path::PathBuf;

use rcgen::{CertificateParams, Issuer, KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime, UtcOffset};

use crate::fingerprint;
use template::{
    AGENT, AGENT_2, AGENT_CA, AGENT_EXPIRED, AGENT_NOT_YET_VALID, AGENT_ROTATED, AGENT_SERVER_EKU,
    AGENT_UNTRUSTED, BACKEND, BALANCER, GATEWAY, INSPECTING_CA, INSPECTING_LEAF, ROGUE_CA, ROOT_CA,
    SERVER_WRONG_NAME, Template,
};

mod files;
mod template;

/// One certificate with its private key.
#[derive(Clone)]
pub struct Identity {
    /// File stem, e.g. "agent-01".
    pub name: String,
    /// What it is for, one line (goes into README.txt).
    pub purpose: String,
    /// The certificate (DER).
    pub cert_der: Vec<u8>,
    /// The certificate (PEM).
    pub cert_pem: String,
    /// Certificates a peer needs after the leaf to reach the root
    /// (intermediates, not the root), DER, in order.
    pub intermediates_der: Vec<Vec<u8>>,
    /// Leaf followed by intermediates (PEM): what a TLS endpoint presents.
    pub chain_pem: String,
    /// PKCS#8 private key (DER).
    pub key_der: Vec<u8>,
    /// PKCS#8 private key (PEM, "PRIVATE KEY").
    pub key_pem: String,
}

impl Identity {
    /// SHA-1 thumbprint of the certificate, lower-case hex without separators.
    pub fn sha1_hex(&self) -> String {
        fingerprint::sha1_hex(&self.cert_der)
    }

    /// SHA-256 thumbprint of the certificate, lower-case hex without separators.
    pub fn sha256_hex(&self) -> String {
        fingerprint::sha256_hex(&self.cert_der)
    }

    /// rustls types ready for a `ServerConfig`/`ClientConfig`:
    /// (leaf + intermediates, key).
    pub fn rustls_chain(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let mut chain = Vec::with_capacity(1 + self.intermediates_der.len());
        chain.push(CertificateDer::from(self.cert_der.clone()));
        chain.extend(
            self.intermediates_der
                .iter()
                .map(|der| CertificateDer::from(der.clone())),
        );
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        (chain, key)
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("name", &self.name)
            .field("sha1", &self.sha1_hex())
            .finish_non_exhaustive()
    }
}

/// The whole lab tree. Field comments give the file stem of each identity.
#[derive(Clone, Debug)]
pub struct LabPki {
    /// "root-ca": Lab Root CA, CA:true, trust anchor of the gateway and backend.
    pub root_ca: Identity,
    /// "agent-ca": issued by root, CA:true pathlen 0, issues agent client certs.
    pub agent_ca: Identity,
    /// "agent-01": CN=agent-01, SAN DNS agent-01.agents.example.com, EKU
    /// clientAuth, issued by agent-ca.
    pub agent: Identity,
    /// "agent-02": a second good agent.
    pub agent2: Identity,
    /// "gateway": self-signed, not a CA, CN=gw.example.com, SAN DNS
    /// gw.example.com + localhost + IP 127.0.0.1, EKU serverAuth; agents pin
    /// it by SHA-1 thumbprint.
    pub gateway: Identity,
    /// "backend": issued by root, CN=backend.example.com, SAN DNS
    /// backend.example.com + localhost + IP 127.0.0.1, EKU serverAuth.
    pub backend: Identity,
    /// "balancer": issued by root, CN=lb.example.com, SAN DNS lb.example.com
    /// and gw.example.com (an offloading balancer presents a certificate for
    /// the gateway's name) and IP 127.0.0.1, EKU serverAuth and clientAuth.
    pub balancer: Identity,
    /// "rogue-ca": a root nobody trusts.
    pub rogue_ca: Identity,
    /// "agent-expired": issued by agent-ca, expired 35 days before `now`.
    pub agent_expired: Identity,
    /// "agent-not-yet-valid": valid from `now` + 2 hours (clock-skew lab).
    pub agent_not_yet_valid: Identity,
    /// "agent-untrusted": CN=agent-01 issued by rogue-ca.
    pub agent_untrusted: Identity,
    /// "agent-01-rotated": the same subject as `agent` (CN=agent-01), another
    /// key and serial (rotation in parallel).
    pub agent_duplicate_cn: Identity,
    /// "agent-server-eku": an agent certificate with EKU serverAuth only.
    pub agent_server_only: Identity,
    /// "server-wrong-name": issued by root, SAN wrong.example.com only.
    pub server_wrong_name: Identity,
    /// The "now" the validity windows were computed from (UTC, whole seconds).
    pub now: OffsetDateTime,
}

impl LabPki {
    /// Generate the whole tree in-process (ECDSA P-256), validity windows
    /// relative to `now` (normal certificates: now - 1 day .. now + 365
    /// days). Names and serial numbers are fixed per identity; keys are
    /// random. `now` is taken in UTC and truncated to whole seconds, as
    /// certificates store it.
    pub fn generate(now: OffsetDateTime) -> Result<LabPki, LabError> {
        let now = now.to_offset(UtcOffset::UTC);
        let now = now - Duration::nanoseconds(i64::from(now.nanosecond()));

        let root = Authority::new(&ROOT_CA, None, now)?;
        let agent_ca = Authority::new(&AGENT_CA, Some(&root), now)?;
        let rogue = Authority::new(&ROGUE_CA, None, now)?;
        Ok(LabPki {
            agent: issue(&AGENT, Some(&agent_ca), now)?.0,
            agent2: issue(&AGENT_2, Some(&agent_ca), now)?.0,
            gateway: issue(&GATEWAY, None, now)?.0,
            backend: issue(&BACKEND, Some(&root), now)?.0,
            balancer: issue(&BALANCER, Some(&root), now)?.0,
            agent_expired: issue(&AGENT_EXPIRED, Some(&agent_ca), now)?.0,
            agent_not_yet_valid: issue(&AGENT_NOT_YET_VALID, Some(&agent_ca), now)?.0,
            agent_untrusted: issue(&AGENT_UNTRUSTED, Some(&rogue), now)?.0,
            agent_duplicate_cn: issue(&AGENT_ROTATED, Some(&agent_ca), now)?.0,
            agent_server_only: issue(&AGENT_SERVER_EKU, Some(&agent_ca), now)?.0,
            server_wrong_name: issue(&SERVER_WRONG_NAME, Some(&root), now)?.0,
            root_ca: root.identity,
            agent_ca: agent_ca.identity,
            rogue_ca: rogue.identity,
            now,
        })
    }

    /// An SSL-inspecting proxy's own CA and the certificate it presents for
    /// gw.example.com (issued by that CA), valid around `self.now`. Not part
    /// of the written lab: each call makes a new CA with a new key, as an
    /// inspecting proxy does when it starts.
    pub fn inspecting_proxy(&self) -> Result<(Identity, Identity), LabError> {
        let ca = Authority::new(&INSPECTING_CA, None, self.now)?;
        let (leaf, _, _) = issue(&INSPECTING_LEAF, Some(&ca), self.now)?;
        Ok((ca.identity, leaf))
    }

    /// All identities, in README order.
    pub fn identities(&self) -> Vec<&Identity> {
        vec![
            &self.root_ca,
            &self.agent_ca,
            &self.agent,
            &self.agent2,
            &self.gateway,
            &self.backend,
            &self.balancer,
            &self.rogue_ca,
            &self.agent_expired,
            &self.agent_not_yet_valid,
            &self.agent_untrusted,
            &self.agent_duplicate_cn,
            &self.agent_server_only,
            &self.server_wrong_name,
        ]
    }
}

/// The lab as written: where, relative to which "now", and each identity's
/// files and thumbprints.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LabReport {
    /// The output directory.
    pub dir: String,
    /// The "now" validity windows are relative to (RFC 3339).
    pub now: String,
    /// One entry per identity, in README order.
    pub identities: Vec<LabEntry>,
    /// The index file.
    pub readme: String,
}

/// One identity of a written lab.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LabEntry {
    /// File stem, e.g. "agent-01".
    pub name: String,
    /// What it is for.
    pub purpose: String,
    /// SHA-1 thumbprint, hex.
    pub sha1: String,
    /// SHA-256 thumbprint, hex.
    pub sha256: String,
    /// Its files, full paths: certificate, chain (if any), key.
    pub files: Vec<String>,
}

/// Why the lab PKI could not be generated or written.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// rcgen could not generate the key or sign the certificate of `name`.
    #[error("cannot generate lab certificate {name}: {source}")]
    Generate {
        /// The identity being generated, e.g. "agent-01".
        name: String,
        /// What rcgen reported.
        source: rcgen::Error,
    },
    /// The output directory exists, is not empty, and `force` was not given.
    #[error(
        "refusing to write the lab PKI into {dir}: the directory is not empty (force overwrites)",
        dir = dir.display()
    )]
    NotEmpty {
        /// The output directory.
        dir: PathBuf,
    },
    /// Creating the output directory or writing a file failed.
    #[error("cannot write {path}: {source}", path = path.display())]
    Io {
        /// The directory or file involved.
        path: PathBuf,
        /// What the operating system reported.
        source: io::Error,
    },
}

/// A CA that issues certificates in the lab, with the chain its leaves need.
struct Authority {
    identity: Identity,
    issuer: Issuer<'static, KeyPair>,
    /// What a leaf issued by this CA sends after itself: this CA and its own
    /// intermediates, never the root.
    chain_der: Vec<Vec<u8>>,
    chain_pem: String,
}

impl Authority {
    fn new(
        template: &Template,
        by: Option<&Authority>,
        now: OffsetDateTime,
    ) -> Result<Self, LabError> {
        let (identity, params, key) = issue(template, by, now)?;
        let (chain_der, chain_pem) = match by {
            None => (Vec::new(), String::new()),
            Some(parent) => {
                let mut der = vec![identity.cert_der.clone()];
                der.extend(parent.chain_der.iter().cloned());
                (der, format!("{}{}", identity.cert_pem, parent.chain_pem))
            }
        };
        Ok(Authority {
            identity,
            issuer: Issuer::new(params, key),
            chain_der,
            chain_pem,
        })
    }
}

/// Generates a key and a certificate for `template`, signed by `by` or
/// self-signed when `by` is `None`.
fn issue(
    template: &Template,
    by: Option<&Authority>,
    now: OffsetDateTime,
) -> Result<(Identity, CertificateParams, KeyPair), LabError> {
    let failed = |source| LabError::Generate {
        name: template.name.to_owned(),
        source,
    };
    let params = template.params(now).map_err(failed)?;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(failed)?;
    let cert = match by {
        None => params.self_signed(&key),
        Some(authority) => params.signed_by(&key, &authority.issuer),
    }
    .map_err(failed)?;
    let cert_pem = cert.pem();
    let identity = Identity {
        name: template.name.to_owned(),
        purpose: template.purpose.to_owned(),
        cert_der: cert.der().to_vec(),
        chain_pem: format!("{cert_pem}{}", by.map_or("", |a| a.chain_pem.as_str())),
        cert_pem,
        intermediates_der: by.map(|a| a.chain_der.clone()).unwrap_or_default(),
        key_der: key.serialize_der(),
        key_pem: key.serialize_pem(),
    };
    Ok((identity, params, key))
}

#[cfg(test)]
mod tests;
