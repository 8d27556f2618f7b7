//! Reading certificates and private keys named on the command line: a path
//! or "-" for stdin, PEM (one or more certificates) or DER. Every error
//! names the file; nothing here interprets a certificate beyond checking
//! that it is one.

use std::fs;
use std::io::{self, Read as _};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why a file given on the command line could not be used.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The file (or stdin) could not be read.
    #[error("cannot read {name}: {source}")]
    Read {
        /// The path as given, or "stdin".
        name: String,
        /// What the operating system reported.
        source: io::Error,
    },
    /// The file holds no certificate, or a broken one.
    #[error("{name} is not a certificate: {reason}")]
    NotCertificate {
        /// The path as given, or "stdin".
        name: String,
        /// What was found instead.
        reason: String,
    },
    /// The file holds no usable private key.
    #[error("{name} is not a private key: {reason}")]
    NotKey {
        /// The path as given, or "stdin".
        name: String,
        /// What was found instead.
        reason: String,
    },
}

/// The name to show for `path` ("-" is stdin).
pub fn display_name(path: &str) -> String {
    if path == "-" {
        "stdin".to_owned()
    } else {
        path.to_owned()
    }
}

/// Reads every certificate in `path` ("-" = stdin): all CERTIFICATE blocks
/// of a PEM file in order, or the DER certificate(s) of a binary file.
pub fn certificates(path: &str) -> Result<Vec<CertificateDer<'static>>, InputError> {
    let bytes = read(path)?;
    parse_certificates(&display_name(path), &bytes)
}

/// Parses `bytes` read from `name` as PEM or DER certificates.
pub fn parse_certificates(
    name: &str,
    bytes: &[u8],
) -> Result<Vec<CertificateDer<'static>>, InputError> {
    let not_certificate = |reason: String| InputError::NotCertificate {
        name: name.to_owned(),
        reason,
    };
    let certs: Vec<CertificateDer<'static>> = if is_pem(bytes) {
        CertificateDer::pem_slice_iter(bytes)
            .collect::<Result<_, _>>()
            .map_err(|e| not_certificate(format!("broken PEM: {e}")))?
    } else {
        split_der(bytes).map_err(not_certificate)?
    };
    if certs.is_empty() {
        let labels = pem_labels(bytes);
        return Err(not_certificate(if labels.is_empty() {
            "no CERTIFICATE block".to_owned()
        } else {
            format!("no CERTIFICATE block, found {}", labels.join(", "))
        }));
    }
    for (i, cert) in certs.iter().enumerate() {
        if let Err(e) = x509_parser::parse_x509_certificate(cert) {
            return Err(not_certificate(format!(
                "certificate {} of {} does not parse as X.509: {e}",
                i + 1,
                certs.len()
            )));
        }
    }
    Ok(certs)
}

/// Reads the private key in `path` (PEM: PKCS#8, PKCS#1 or SEC1; or DER).
pub fn private_key(path: &str) -> Result<PrivateKeyDer<'static>, InputError> {
    let bytes = read(path)?;
    let name = display_name(path);
    if is_pem(&bytes) {
        PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
            let labels = pem_labels(&bytes);
            InputError::NotKey {
                name,
                reason: format!("{e} (found {})", labels.join(", ")),
            }
        })
    } else {
        PrivateKeyDer::try_from(bytes).map_err(|reason| InputError::NotKey {
            name,
            reason: reason.to_owned(),
        })
    }
}

/// The whole of `path`, or of stdin for "-".
pub fn read(path: &str) -> Result<Vec<u8>, InputError> {
    let result = if path == "-" {
        let mut bytes = Vec::new();
        io::stdin().read_to_end(&mut bytes).map(|_| bytes)
    } else {
        fs::read(path)
    };
    result.map_err(|source| InputError::Read {
        name: display_name(path),
        source,
    })
}

fn is_pem(bytes: &[u8]) -> bool {
    bytes.windows(11).any(|w| w == b"-----BEGIN ")
}

/// The labels of the PEM blocks in `bytes` ("PRIVATE KEY", ...).
fn pem_labels(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter_map(|line| line.trim().strip_prefix("-----BEGIN "))
        .map(|rest| rest.trim_end_matches('-').to_owned())
        .collect()
}

/// Splits concatenated DER certificates.
fn split_der(mut bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut certs = Vec::new();
    while !bytes.is_empty() {
        match x509_parser::parse_x509_certificate(bytes) {
            Ok((rest, _)) => {
                let used = bytes.len() - rest.len();
                certs.push(CertificateDer::from(bytes[..used].to_vec()));
                bytes = rest;
            }
            Err(e) if certs.is_empty() => return Err(format!("neither PEM nor DER X.509 ({e})")),
            Err(e) => {
                return Err(format!(
                    "{} trailing bytes after certificate {} ({e})",
                    bytes.len(),
                    certs.len()
                ));
            }
        }
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LabPki;

    #[test]
    fn reads_pem_chains_and_der() {
        let pki = LabPki::generate(time::OffsetDateTime::now_utc()).unwrap();
        let chain = parse_certificates("chain.pem", pki.agent.chain_pem.as_bytes()).unwrap();
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[0].as_ref(), pki.agent.cert_der.as_slice());
        let der = parse_certificates("agent.der", &pki.agent.cert_der).unwrap();
        assert_eq!(der.len(), 1);
        let mut two = pki.agent.cert_der.clone();
        two.extend_from_slice(&pki.agent_ca.cert_der);
        assert_eq!(parse_certificates("two.der", &two).unwrap().len(), 2);
    }

    #[test]
    fn names_the_file_and_what_it_holds() {
        let pki = LabPki::generate(time::OffsetDateTime::now_utc()).unwrap();
        let err = parse_certificates("agent-01.key", pki.agent.key_pem.as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "agent-01.key is not a certificate: no CERTIFICATE block, found PRIVATE KEY"
        );
        let err = parse_certificates("notes.txt", b"hello").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("notes.txt is not a certificate: neither PEM nor DER X.509"),
            "{err}"
        );
        let err = certificates("/nonexistent/agent.pem").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read /nonexistent/agent.pem: "),
            "{err}"
        );
    }
}
