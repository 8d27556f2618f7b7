//! The accept loop of one listener. It only accepts: take a permit (none
//! left → refuse at once), set socket options, spawn the connection task.
//! Everything that waits on the peer happens inside that task.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info_span, warn};

use crate::access_log::{AccessLog, AccessRecord};
use crate::conn::{self, Outcome};
use crate::connect::set_options;
use crate::metrics::Metrics;
use crate::refusal::Refusal;
use crate::server::{ListenerState, Routing};

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
    loop {
        let accepted = tokio::select! {
            accepted = socket.accept() => accepted,
            () = ctx.stop_accepting.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) if is_connection_error(&error) => continue,
            Err(error) => {
                // EMFILE, ENFILE, ENOBUFS…: back off instead of spinning.
                warn!(listener = %state.config.name, %error, "accept failed; pausing accepts briefly");
                tokio::select! {
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    () = ctx.stop_accepting.cancelled() => break,
                }
            }
        };
        let record = AccessRecord::new(&state.config.name, peer);
        let Ok(permit) = Arc::clone(&state.permits).try_acquire_owned() else {
            debug!(listener = %state.config.name, %peer, "max_connections reached; refusing");
            let mut record = record;
            let outcome = Outcome::Refused(Refusal::MaxConnections).as_str();
            record.outcome = outcome;
            ctx.metrics.refused(&state.config.name, outcome);
            ctx.metrics
                .connection_finished(&state.config.name, "", "", outcome);
            ctx.log.write(record);
            continue;
        };
        set_options(&stream, state.config.tcp_keepalive);
        let routing = Arc::clone(&ctx.routing.borrow());
        let span = info_span!("conn", listener = %state.config.name, peer.addr = %peer);
        let task = conn::serve(
            stream,
            Arc::clone(&state),
            routing,
            record,
            ctx.log.clone(),
            Arc::clone(&ctx.metrics),
            ctx.stop_connections.clone(),
        );
        ctx.tracker.spawn(
            async move {
                let _permit = permit;
                task.await;
            }
            .instrument(span),
        );
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
