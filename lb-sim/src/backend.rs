//! The management server behind the gateway: the inner mutual-TLS endpoint.
//! It requires a client certificate chaining to the lab root, records the
//! thumbprint it saw, and answers each request line with the identity it
//! authenticated, until the agent closes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use passthru_certs::Identity;
use rustls::RootCertStore;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::observe::{Failure, FailureKind, Hop, HopRecord, Layer, Ledger, Leg, Role};
use crate::tls::{ServerSight, cert_seen, server_config};
use crate::wire::{Wire, WireStats, accept_each, listen, read_line, write_line};

/// What the backend is configured with.
#[derive(Clone)]
pub struct BackendPlan {
    /// Where to listen (port 0: any free port).
    pub listen: SocketAddr,
    /// Its certificate (issued by the lab root, backend.example.com).
    pub identity: Identity,
    /// Roots a client chain must lead to.
    pub client_roots: Arc<RootCertStore>,
    /// Bound of the handshake and of the wait for each request.
    pub step_limit: Duration,
}

/// Bind `plan.listen` and serve until `stop`; returns the bound address.
pub async fn spawn(
    plan: BackendPlan,
    ledger: Ledger,
    stop: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = listen("backend", plan.listen).await?;
    let addr = listener.local_addr()?;
    let plan = Arc::new(plan);
    accept_each(listener, stop, move |tcp| {
        let plan = Arc::clone(&plan);
        let ledger = ledger.clone();
        async move {
            let record = serve(&plan, tcp).await;
            ledger.report(record);
        }
    });
    Ok(addr)
}

async fn serve(plan: &BackendPlan, tcp: TcpStream) -> HopRecord {
    let mut record = HopRecord::new(Hop::Backend, "backend (rustls, inner mutual TLS)");
    let sight = Arc::new(ServerSight::default());
    let stats = Arc::new(WireStats::default());
    let mut leg = Leg {
        layer: Layer::Inner,
        role: Role::Server,
        sni: None,
        presented: Some(cert_seen(&plan.identity.cert_der)),
        peer_cert: None,
        client_cert_requested: true,
        completed: false,
        failure: None,
    };
    let config = match server_config(&plan.identity, Some(Arc::clone(&plan.client_roots)), &sight) {
        Ok(config) => config,
        Err(e) => {
            record.error = Some(Failure::from_tls(&e));
            return record;
        }
    };
    let wire = Wire::new(tcp, bytes::Bytes::new(), Arc::clone(&stats));
    let accepted = tokio::time::timeout(
        plan.step_limit,
        TlsAcceptor::from(Arc::new(config)).accept(wire),
    )
    .await;
    leg.peer_cert = sight.client_cert.lock().ok().and_then(|c| c.clone());
    let mut tls = match accepted {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            leg.failure = Some(Failure::from_io(&e));
            record.legs.push(leg);
            return finish(record, &stats);
        }
        Err(_) => {
            leg.failure = Some(Failure::plain(FailureKind::Timeout, "handshake timed out"));
            record.legs.push(leg);
            return finish(record, &stats);
        }
    };
    leg.completed = true;
    leg.sni = tls.get_ref().1.server_name().map(str::to_string);
    let client = leg.peer_cert.clone();
    record.legs.push(leg);

    loop {
        match read_line(&mut tls, plan.step_limit * IDLE_STEPS).await {
            Ok(Some(request)) => {
                let answer = match &client {
                    Some(c) => format!(
                        "{request}: backend authenticated CN={} SHA-1 {}",
                        c.subject_cn, c.sha1
                    ),
                    None => format!("{request}: backend saw no client certificate"),
                };
                if let Err(e) = write_line(&mut tls, &answer).await {
                    record.error = Some(Failure::from_io(&e));
                    break;
                }
                record.said.push(answer);
            }
            Ok(None) => {
                let _ = tls.shutdown().await;
                break;
            }
            Err(e) => {
                record.error = Some(Failure::from_io(&e));
                break;
            }
        }
    }
    finish(record, &stats)
}

fn finish(mut record: HopRecord, stats: &WireStats) -> HopRecord {
    record.bytes_up = stats.read();
    record.bytes_down = stats.written();
    record
}

/// How many step limits the backend waits for the next request (persistent
/// connections idle between requests).
const IDLE_STEPS: u32 = 4;
