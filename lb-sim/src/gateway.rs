//! The Internet gateway for managed agents: terminates the outer TLS session
//! with its self-signed certificate, requires a client certificate and
//! validates its chain, optionally checks the client's identity (one pinned
//! management host, or a registry of machines by thumbprint or by subject
//! CN) and answers "Authentication Required" in clear when that check fails;
//! otherwise opens TCP to the backend and copies bytes both ways between the
//! decrypted session and the backend socket. It never sees inside the inner
//! TLS session.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use passthru_certs::Identity;
use rustls::RootCertStore;
use rustls::server::Acceptor;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::LazyConfigAcceptor;
use tokio_util::sync::CancellationToken;

use crate::observe::{
    CertSeen, Failure, FailureKind, Hop, HopRecord, Layer, Ledger, Leg, Refusal, Role,
};
use crate::tls::{ServerSight, cert_seen, server_config};
use crate::wire::{accept_each, connect_within, listen, tunnel, write_line};

/// Which clients the gateway lets through once their chain is valid.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ClientCheck {
    /// Any valid chain.
    ChainOnly,
    /// Exactly one management host, pinned by SHA-1 thumbprint.
    Pinned {
        /// The pinned thumbprint.
        sha1: String,
    },
    /// Known machines, looked up by `by`.
    Registry {
        /// How a certificate is matched to a machine.
        by: IdentifyBy,
        /// The registered certificates.
        known: Vec<KnownClient>,
    },
}

/// How a registry matches a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdentifyBy {
    /// By SHA-1 thumbprint (unique per certificate).
    Thumbprint,
    /// By subject common name (shared by certificates in rotation).
    SubjectCn,
}

/// A registered client certificate.
#[derive(Debug, Clone, Serialize)]
pub struct KnownClient {
    /// The registry's label for it.
    pub label: String,
    /// Its thumbprint and CN.
    pub cert: CertSeen,
}

/// What the gateway is configured with.
#[derive(Clone)]
pub struct GatewayPlan {
    /// Where to listen (port 0: any free port).
    pub listen: SocketAddr,
    /// Its own (self-signed) certificate.
    pub identity: Identity,
    /// Roots a client chain must lead to.
    pub client_roots: Arc<RootCertStore>,
    /// The identity check after the chain.
    pub check: ClientCheck,
    /// The backend it tunnels to.
    pub backend: SocketAddr,
    /// Bound of each step and of the tunnel.
    pub step_limit: Duration,
    /// Count each accepted connection in the ledger itself (the hop in front
    /// is a program that cannot report what it dialled).
    pub counts_accepts: bool,
    /// Expect a PROXY v2 header first and log the client address it names.
    pub proxy_v2: bool,
}

/// Bind `plan.listen` and serve until `stop`; returns the bound address.
pub async fn spawn(
    plan: GatewayPlan,
    ledger: Ledger,
    stop: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = listen("gateway", plan.listen).await?;
    let addr = listener.local_addr()?;
    let plan = Arc::new(plan);
    accept_each(listener, stop, move |tcp| {
        let plan = Arc::clone(&plan);
        let ledger = ledger.clone();
        if plan.counts_accepts {
            ledger.dialed(Hop::Gateway);
        }
        async move {
            let record = serve(&plan, &ledger, tcp).await;
            ledger.report(record);
        }
    });
    Ok(addr)
}

async fn serve(plan: &GatewayPlan, ledger: &Ledger, mut tcp: TcpStream) -> HopRecord {
    let mut record = HopRecord::new(
        Hop::Gateway,
        "gateway (rustls, requires a client certificate)",
    );
    record.client_addr = tcp.peer_addr().ok().map(|a| a.to_string());
    if plan.proxy_v2 {
        match tokio::time::timeout(plan.step_limit, read_proxy_v2(&mut tcp)).await {
            Ok(Ok(source)) => {
                record.notes.push(format!(
                    "PROXY v2 header names the client {source} (TCP peer {})",
                    record.client_addr.as_deref().unwrap_or("?")
                ));
                record.client_addr = Some(source.to_string());
            }
            Ok(Err(e)) => {
                record.error = Some(Failure::plain(FailureKind::Other, e));
                return record;
            }
            Err(_) => {
                record.error = Some(Failure::plain(
                    FailureKind::Timeout,
                    "no PROXY v2 header in time",
                ));
                return record;
            }
        }
    }
    let sight = Arc::new(ServerSight::default());
    let mut leg = Leg {
        layer: Layer::Outer,
        role: Role::Server,
        sni: None,
        presented: Some(cert_seen(&plan.identity.cert_der)),
        peer_cert: None,
        client_cert_requested: true,
        completed: false,
        failure: None,
    };
    let config = match server_config(&plan.identity, Some(Arc::clone(&plan.client_roots)), &sight) {
        Ok(config) => Arc::new(config),
        Err(e) => {
            record.error = Some(Failure::from_tls(&e));
            return record;
        }
    };
    let accepted = tokio::time::timeout(plan.step_limit, async {
        let start = LazyConfigAcceptor::new(Acceptor::default(), tcp).await?;
        let sni = start.client_hello().server_name().map(str::to_string);
        Ok::<_, std::io::Error>((sni, start.into_stream(config)))
    })
    .await;
    let handshake = match accepted {
        Ok(Ok((sni, handshake))) => {
            leg.sni = sni;
            tokio::time::timeout(plan.step_limit, handshake).await
        }
        Ok(Err(e)) => Ok(Err(e)),
        Err(elapsed) => Err(elapsed),
    };
    let peer = || sight.client_cert.lock().ok().and_then(|c| c.clone());
    let mut tls = match handshake {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            leg.peer_cert = peer();
            leg.failure = Some(Failure::from_io(&e));
            record.legs.push(leg);
            return record;
        }
        Err(_) => {
            leg.peer_cert = peer();
            leg.failure = Some(Failure::plain(
                FailureKind::Timeout,
                "no ClientHello in time",
            ));
            record.legs.push(leg);
            return record;
        }
    };
    leg.completed = true;
    leg.peer_cert = peer();
    let client = leg.peer_cert.clone();
    record.legs.push(leg);

    if let Err(refusal) = check(&plan.check, client.as_ref()) {
        let line = format!("Authentication Required: {refusal}");
        let _ = write_line(&mut tls, &line).await;
        let _ = tls.shutdown().await;
        record.said.push(line);
        record.refused = Some(refusal);
        return record;
    }
    if let Some(client) = &client {
        record.notes.push(format!(
            "authenticated the client as CN={} (SHA-1 {})",
            client.subject_cn, client.sha1
        ));
    }

    let dialed = connect_within(plan.backend, plan.step_limit, "backend connect timed out");
    let mut backend = match dialed.await {
        Ok(socket) => socket,
        Err(failure) => {
            record.error = Some(failure);
            return record;
        }
    };
    ledger.dialed(Hop::Backend);
    record.notes.push(format!(
        "opened TCP to the backend {}; tunnelling",
        plan.backend
    ));
    match tunnel(&mut tls, &mut backend, plan.step_limit * TUNNEL_STEPS).await {
        Ok((up, down)) => {
            record.bytes_up = up;
            record.bytes_down = down;
        }
        Err(failure) => record.error = Some(failure),
    }
    record
}

/// The identity check after the chain was validated.
fn check(check: &ClientCheck, client: Option<&CertSeen>) -> Result<(), Refusal> {
    let Some(client) = client else {
        return Err(Refusal::NoCertificate);
    };
    match check {
        ClientCheck::ChainOnly => Ok(()),
        ClientCheck::Pinned { sha1 } if *sha1 == client.sha1 => Ok(()),
        ClientCheck::Pinned { sha1 } => Err(Refusal::NotPinned {
            pinned: sha1.clone(),
            presented: client.sha1.clone(),
        }),
        ClientCheck::Registry { by, known } => {
            let matches = known
                .iter()
                .filter(|k| match by {
                    IdentifyBy::Thumbprint => k.cert.sha1 == client.sha1,
                    IdentifyBy::SubjectCn => k.cert.subject_cn == client.subject_cn,
                })
                .count();
            match matches {
                1 => Ok(()),
                0 => Err(Refusal::Unregistered {
                    presented: client.sha1.clone(),
                }),
                count => Err(Refusal::AmbiguousCn {
                    cn: client.subject_cn.clone(),
                    count,
                }),
            }
        }
    }
}

/// The tunnel may stay open for this many step limits (persistent
/// connections with idle periods).
const TUNNEL_STEPS: u32 = 6;

/// Read one PROXY v2 header (16 fixed bytes, then its stated length) and
/// return the client address it names.
async fn read_proxy_v2(tcp: &mut TcpStream) -> Result<SocketAddr, String> {
    let mut head = vec![0u8; 16];
    tcp.read_exact(&mut head)
        .await
        .map_err(|e| format!("reading the PROXY v2 header: {e}"))?;
    let len = usize::from(u16::from_be_bytes([head[14], head[15]]));
    if 16 + len > passthru::proxy_protocol::MAX_V2_LEN {
        return Err(format!("PROXY v2 header of {len} bytes is too long"));
    }
    head.resize(16 + len, 0);
    tcp.read_exact(&mut head[16..])
        .await
        .map_err(|e| format!("reading the PROXY v2 addresses: {e}"))?;
    let header =
        passthru::proxy_protocol::parse(&head).map_err(|e| format!("PROXY v2 header: {e}"))?;
    header
        .source
        .ok_or_else(|| "PROXY v2 header without a client address".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(sha1: &str, cn: &str) -> CertSeen {
        CertSeen {
            sha1: sha1.to_string(),
            subject_cn: cn.to_string(),
        }
    }

    #[test]
    fn registry_by_cn_is_ambiguous_when_two_certificates_share_it() {
        let known = vec![
            KnownClient {
                label: "current".into(),
                cert: cert("aa", "agent-01"),
            },
            KnownClient {
                label: "rotated".into(),
                cert: cert("bb", "agent-01"),
            },
        ];
        let by_cn = ClientCheck::Registry {
            by: IdentifyBy::SubjectCn,
            known: known.clone(),
        };
        let by_sha1 = ClientCheck::Registry {
            by: IdentifyBy::Thumbprint,
            known,
        };
        assert_eq!(
            check(&by_cn, Some(&cert("aa", "agent-01"))),
            Err(Refusal::AmbiguousCn {
                cn: "agent-01".into(),
                count: 2
            })
        );
        assert_eq!(check(&by_sha1, Some(&cert("aa", "agent-01"))), Ok(()));
        assert_eq!(check(&by_sha1, Some(&cert("bb", "agent-01"))), Ok(()));
    }

    #[test]
    fn pinned_gateway_refuses_another_valid_certificate() {
        let pinned = ClientCheck::Pinned { sha1: "aa".into() };
        assert_eq!(check(&pinned, Some(&cert("aa", "agent-01"))), Ok(()));
        assert_eq!(
            check(&pinned, Some(&cert("cc", "agent-02"))),
            Err(Refusal::NotPinned {
                pinned: "aa".into(),
                presented: "cc".into()
            })
        );
    }
}
