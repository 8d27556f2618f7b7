//! `passthru-certs probe`: one real TLS handshake against a server
//! (directly or through an HTTP CONNECT proxy), reported step by step —
//! name resolution, TCP, the CONNECT answer, the negotiated version and
//! cipher, the server's chain with thumbprints and whether `--ca` trusts
//! it, whether the server asked for a client certificate and which CA names
//! it accepts, and whether it accepted ours (with TLS 1.3 the verdict comes
//! after the handshake, so the probe reads once, bounded, before saying
//! so). Rendering is in `render`.

use std::sync::Arc;
use std::time::Duration;

use passthru_net::ViaUrl;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::time::{Instant, timeout};
use tokio_rustls::TlsConnector;

use report::{chain_entry, dn_name, version_name};

use crate::clock;
use crate::verify::{self, Purpose, TrustAnchors};

mod dial;
mod report;
mod tls;

pub use report::{Alert, ChainEntry, ClientAuth, ProbeReport, Session, Step, StepReport};

/// What to probe and how.
#[derive(Debug)]
pub struct ProbeOptions {
    /// "host:port" ("[::1]:443" for IPv6).
    pub target: String,
    /// The server name to send; defaults to the target's host.
    pub sni: Option<String>,
    /// Our client certificate chain (leaf first) and its key.
    pub client: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    /// Trust anchors to judge the server's chain with.
    pub ca: Option<TrustAnchors>,
    /// An HTTP CONNECT proxy to go through.
    pub via: Option<ViaUrl>,
    /// Limit for each step (resolution, TCP, CONNECT, handshake).
    pub timeout: Duration,
}

/// A problem with the probe's arguments (a usage error).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The target is not "host:port".
    #[error("{target:?} is not HOST:PORT")]
    BadTarget {
        /// As given.
        target: String,
    },
    /// The server name cannot be sent.
    #[error("{name:?} is not a DNS name or IP address usable as --sni")]
    BadSni {
        /// As given.
        name: String,
    },
    /// The client certificate and key do not go together.
    #[error("--cert/--key cannot be used: {0}")]
    Identity(rustls::Error),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Tls(rustls::Error),
}

/// Runs the probe. Only argument problems are errors; everything the
/// network does is in the report.
pub async fn probe(options: &ProbeOptions) -> Result<ProbeReport, SetupError> {
    let (host, port) = split_host_port(&options.target).ok_or_else(|| SetupError::BadTarget {
        target: options.target.clone(),
    })?;
    let sni = options.sni.clone().unwrap_or_else(|| host.clone());
    let server_name =
        ServerName::try_from(sni.clone()).map_err(|_| SetupError::BadSni { name: sni.clone() })?;
    let identity = match &options.client {
        Some((chain, key)) => {
            Some(tls::certified_key(chain.clone(), key.clone_key()).map_err(SetupError::Identity)?)
        }
        None => None,
    };
    let recorder = Arc::new(tls::Recorder::default());
    let config = tls::client_config(&recorder, identity).map_err(SetupError::Tls)?;
    let limit = options.timeout;

    let mut report = ProbeReport {
        target: options.target.clone(),
        sni: sni.clone(),
        via: options.via.as_ref().map(ToString::to_string),
        steps: Vec::new(),
        session: None,
        server_chain: Vec::new(),
        client_auth: ClientAuth::default(),
        alert: None,
        ok: false,
    };
    let reached = match &options.via {
        Some(proxy) => dial::via(proxy, &options.target, limit).await,
        None => dial::direct(&host, port, limit).await,
    };
    for (step, result) in reached.steps {
        report.push(step, result);
    }
    let Some(stream) = reached.stream else {
        return Ok(report.finish());
    };

    let started = Instant::now();
    let connector = TlsConnector::from(Arc::new(config));
    let verdict = match timeout(limit, connector.connect(server_name, stream)).await {
        Err(_) => {
            report.push(Step::Tls, Err(format!(
                "no TLS answer within {}: the port accepts TCP but does not answer the ClientHello \
                 (not TLS, or a stalled server)",
                dial::human(limit)
            )));
            None
        }
        Ok(Err(e)) => {
            let detail = report.handshake_error(&e, false);
            report.push(Step::Tls, Err(format!("handshake failed: {detail}")));
            Some(Err(detail))
        }
        Ok(Ok(mut stream)) => {
            let (_, conn) = stream.get_ref();
            let session = Session {
                version: version_name(conn.protocol_version()),
                cipher_suite: conn
                    .negotiated_cipher_suite()
                    .map_or_else(|| "?".to_owned(), |s| format!("{:?}", s.suite())),
            };
            let tls13 = conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3);
            report.push(
                Step::Tls,
                Ok(format!(
                    "{}, {} in {}",
                    session.version,
                    session.cipher_suite,
                    dial::millis(started)
                )),
            );
            report.session = Some(session);
            let requested = recorder.observed().requested;
            let verdict = if requested && tls13 {
                settle(&mut stream, &recorder, limit.min(SETTLE), &mut report).await
            } else {
                Ok("the handshake completed".to_owned())
            };
            let _ = timeout(SETTLE, stream.shutdown()).await;
            Some(verdict)
        }
    };

    let observed = std::mem::take(&mut *recorder.observed());
    let now = clock::now();
    report.server_chain = observed
        .server_chain
        .iter()
        .filter_map(|c| chain_entry(c, now))
        .collect();
    if !observed.server_chain.is_empty() {
        let detail = server_trust(options.ca.as_ref(), &observed.server_chain, now, &sni);
        report.push(Step::ServerCertificate, detail);
    }
    report.client_auth = ClientAuth {
        requested: observed.requested,
        acceptable_ca_names: observed.ca_names.iter().map(|dn| dn_name(dn)).collect(),
        sent: match (&options.client, observed.sent) {
            (Some((chain, _)), true) => chain
                .first()
                .and_then(|c| verify::Summary::of(c))
                .map(|s| s.subject),
            _ => None,
        },
        accepted: None,
    };
    if let Some(verdict) = verdict {
        let step = report.client_step(&options.client, verdict);
        if let Some(step) = step {
            report.push(Step::ClientCertificate, step);
        }
    }
    Ok(report.finish())
}

/// After a TLS 1.3 handshake in which the server asked for a certificate:
/// read once, until an alert, data, a session ticket, or `window` passes.
async fn settle<S>(
    stream: &mut tokio_rustls::client::TlsStream<S>,
    recorder: &tls::Recorder,
    window: Duration,
    report: &mut ProbeReport,
) -> Result<String, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut buf = [0u8; 1];
    tokio::select! {
        read = stream.read(&mut buf) => match read {
            Ok(0) => Err("the server closed the connection after the handshake without an alert".to_owned()),
            Ok(_) => Ok("the server sent application data".to_owned()),
            Err(e) => Err(format!("{} after the handshake", report.handshake_error(&e, true))),
        },
        () = recorder.ticket.notified() => {
            Ok("the server sent a session ticket after our Finished".to_owned())
        }
        () = tokio::time::sleep(window) => {
            Ok(format!("no alert within {} after the handshake", dial::human(window)))
        }
    }
}

fn server_trust(
    ca: Option<&TrustAnchors>,
    chain: &[CertificateDer<'static>],
    now: OffsetDateTime,
    name: &str,
) -> Result<String, String> {
    let Some(anchors) = ca else {
        let sha1 = chain
            .first()
            .map(|c| crate::fingerprint::sha1_hex(c))
            .unwrap_or_default();
        return Ok(format!(
            "not verified (no --ca); the leaf's SHA-1 thumbprint is {sha1}"
        ));
    };
    match verify::check(anchors, chain, now, Purpose::Server, Some(name)) {
        Ok(Ok(())) => Ok(format!("trusted by --ca and valid for {name}")),
        Ok(Err(why)) => Err(format!("not trusted: {why}")),
        Err(setup) => Err(format!("not verified: {setup}")),
    }
}

/// "host:port" or "[v6]:port" → (host, port).
fn split_host_port(target: &str) -> Option<(String, u16)> {
    let (host, port) = target.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (!host.is_empty() && !host.contains(['[', ']'])).then(|| (host.to_owned(), port))
}

/// How long to wait after a TLS 1.3 handshake for the server's verdict on
/// our certificate (at most `--timeout`).
const SETTLE: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_split_into_host_and_port() {
        assert_eq!(
            split_host_port("gw.example.com:443"),
            Some(("gw.example.com".to_owned(), 443))
        );
        assert_eq!(
            split_host_port("[::1]:8443"),
            Some(("::1".to_owned(), 8443))
        );
        assert_eq!(split_host_port("127.0.0.1:0"), None);
        assert_eq!(split_host_port("gw.example.com"), None);
        assert_eq!(split_host_port(":443"), None);
    }
}
