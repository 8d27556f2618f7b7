//! The accept loop of one listener. It only accepts: take a permit (none
//! left → refuse at once), set socket options, spawn the connection task.
//! Everything that waits on the peer happens inside that task.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, debug_span, warn};

use crate::access_log::{AccessLog, AccessRecord};
use crate::client_limit::ClientTable;
use crate::config::ListenerConfig;
use crate::conn::{self, Accepted, ConnContext, Opened, Outcome};
use crate::metrics::Metrics;
use crate::refusal::Refusal;
use crate::routing::Routing;
use crate::workers::Placement;

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
    /// Which thread runs each new connection (and the stop token it
    /// watches there).
    pub(crate) placement: Placement,
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
        // TCP_NODELAY and keepalive come from the listening socket
        // (`server::listen` set them there).
        let routing = Arc::clone(&ctx.routing.borrow());
        // With RUST_LOG=debug, every event of the connection names it; at
        // the default level the span is disabled and costs nothing per poll.
        let span = debug_span!("conn", listener = %state.config.name, peer.addr = %peer);
        let placed = ctx.placement.pick();
        let stream = match placed.handle {
            None => Accepted::Here(stream),
            // Taken off this thread's event loop, for the worker's.
            Some(_) => match stream.into_std() {
                Ok(stream) => Accepted::Moved(stream),
                Err(error) => {
                    debug!(%peer, %error, "cannot move an accepted connection to another thread");
                    continue;
                }
            },
        };
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
                stop: placed.stop,
                open: placed.open,
                placement: Some(ctx.placement.clone()),
            },
        );
        let task = ctx.tracker.track_future(task.instrument(span));
        match placed.handle {
            None => drop(tokio::spawn(task)),
            Some(worker) => drop(worker.spawn(task)),
        }
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
