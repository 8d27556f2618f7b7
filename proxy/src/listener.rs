//! The accept loop of one listener. It only accepts: take a permit (none
//! left → refuse at once), set socket options, spawn the connection task.
//! Everything that waits on the peer happens inside that task.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use passthru_net::dial::set_options;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info_span, warn};

use crate::access_log::{AccessLog, AccessRecord};
use crate::client_limit::ClientTable;
use crate::config::ListenerConfig;
use crate::conn::{self, ConnContext, Opened, Outcome};
use crate::metrics::Metrics;
use crate::refusal::Refusal;
use crate::routing::Routing;

/// A listener's settings and its connection permits.
#[derive(Debug)]
pub struct ListenerState {
    /// Validated settings.
    pub config: Arc<ListenerConfig>,
    /// One permit per allowed open connection (`max_connections`).
    pub permits: Arc<Semaphore>,
    /// One permit per connection not yet routed (`max_pending`).
    pub pending: Arc<Semaphore>,
    /// Open connections per client address (`max_connections_per_client`).
    pub clients: Arc<ClientTable>,
}

/// What an accept loop needs besides its socket.
#[derive(Debug, Clone)]
pub(crate) struct AcceptContext {
    pub(crate) routing: watch::Receiver<Arc<Routing>>,
    pub(crate) log: AccessLog,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) tracker: TaskTracker,
    /// Cancelled when the listener must stop accepting.
    pub(crate) stop_accepting: CancellationToken,
    /// Cancelled when open connections must end.
    pub(crate) stop_connections: CancellationToken,
}

pub(crate) async fn accept_loop(
    socket: TcpListener,
    state: Arc<ListenerState>,
    ctx: AcceptContext,
) {
    let mut last_warning: Option<tokio::time::Instant> = None;
    let mut failures: u64 = 0;
    loop {
        let accepted = tokio::select! {
            accepted = socket.accept() => accepted,
            () = ctx.stop_accepting.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) if is_connection_error(&error) => continue,
            Err(error) => {
                // EMFILE, ENFILE, ENOBUFS…: back off instead of spinning, and
                // log once per interval, not once per attempt.
                failures += 1;
                let now = tokio::time::Instant::now();
                if last_warning.is_none_or(|at| now.duration_since(at) >= ACCEPT_WARN_INTERVAL) {
                    warn!(listener = %state.config.name, %error, failures, "accept failed; pausing accepts briefly (out of file descriptors?)");
                    last_warning = Some(now);
                    failures = 0;
                }
                tokio::select! {
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    () = ctx.stop_accepting.cancelled() => break,
                }
            }
        };
        let record = AccessRecord::new(&state.config.name, peer);
        let permits = Arc::clone(&state.permits)
            .try_acquire_owned()
            .map_err(|_| Refusal::MaxConnections)
            .and_then(|p| {
                Ok((
                    p,
                    Arc::clone(&state.pending)
                        .try_acquire_owned()
                        .map_err(|_| Refusal::MaxPending)?,
                ))
            });
        let (permit, pending) = match permits {
            Ok(pair) => pair,
            Err(refusal) => {
                debug!(listener = %state.config.name, %peer, reason = refusal.as_str(), "limit reached; refusing at accept");
                // The socket drops here: closed at once, no reply.
                conn::account(
                    record,
                    Err(Outcome::Refused(refusal)),
                    &ctx.metrics,
                    &ctx.log,
                    Opened::No,
                );
                continue;
            }
        };
        set_options(&stream, state.config.tcp_keepalive);
        let routing = Arc::clone(&ctx.routing.borrow());
        let span = info_span!("conn", listener = %state.config.name, peer.addr = %peer);
        let task = conn::serve(
            stream,
            record,
            permit,
            pending,
            ConnContext {
                listener: Arc::clone(&state.config),
                clients: Arc::clone(&state.clients),
                routing,
                log: ctx.log.clone(),
                metrics: Arc::clone(&ctx.metrics),
                stop: ctx.stop_connections.clone(),
            },
        );
        ctx.tracker.spawn(task.instrument(span));
    }
}

/// Errors that concern one connection only, not the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
const ACCEPT_WARN_INTERVAL: Duration = Duration::from_secs(10);
