//! The admin HTTP endpoint: `GET /healthz` (from the lifecycle [`Phase`]),
//! `GET /readyz` and `GET /metrics`. A few lines of HTTP/1.1 by hand, no
//! framework: one bounded request per connection, answered with
//! `Connection: close` and a `Content-Length`.
//!
//! It does not decide the phase or count anything itself: the server drives
//! the `watch` channel and the connection pipeline fills [`Metrics`].

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::drain::{Monitors, Phase};
use crate::metrics::Metrics;

/// What the admin endpoint reports.
#[derive(Debug)]
pub struct AdminState {
    /// The server's lifecycle phase; `/healthz` and `/readyz` read it.
    pub phase: watch::Receiver<Phase>,
    /// The metrics `/metrics` encodes.
    pub metrics: Arc<Metrics>,
    /// Who polls `/healthz`, and the 503 answers each got (`monitor_fall`).
    pub monitors: Arc<Monitors>,
}

/// Serves the admin endpoint on `listener` until `stop` is cancelled, then
/// closes the open admin connections and returns.
///
/// - `GET /healthz`: `200 ok` while the phase is `Serving`, `503 starting`
///   before, `503 draining` from `Draining` on. Each answer is recorded in
///   [`Monitors`] under the peer's IP address (for `monitor_fall`).
/// - `GET /readyz`: `200 ready` while `Serving` or `Draining` (listeners
///   bound, config loaded), else 503 with the phase name.
/// - `GET /metrics`: [`Metrics::encode`] as Prometheus text 0.0.4, or as
///   OpenMetrics 1.0.0 when the request's `Accept` names
///   `application/openmetrics-text` (see [`exposition`]).
///
/// `HEAD` is answered like `GET` without the body. Other paths get 404,
/// other methods on these paths 405 (with `Allow: GET, HEAD`), a malformed
/// request 400, a request head over 8 KiB 431. A request head must arrive
/// within 2 s, else the connection is closed. At most 256 admin connections
/// are open at once; a connection beyond that evicts the oldest one that is
/// not being answered (idle, or lingering after its answer), so that idle
/// or slow clients never keep a health monitor from its answer.
pub async fn serve(listener: TcpListener, state: AdminState, stop: CancellationToken) {
    serve_with(listener, state, stop, Limits::DEFAULT).await;
}

/// The bounds one admin connection lives within.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// Time allowed to receive the whole request head.
    read_timeout: Duration,
    /// Time allowed to write the response.
    write_timeout: Duration,
    /// After the response: time to wait for the client's close while
    /// discarding what it still sends, so the close is not a reset that
    /// destroys the response in the client's buffer.
    linger_timeout: Duration,
    /// Largest request head, in bytes.
    max_head: usize,
    /// Most admin connections open at once.
    max_connections: usize,
}

impl Limits {
    const DEFAULT: Limits = Limits {
        read_timeout: Duration::from_secs(2),
        write_timeout: Duration::from_secs(5),
        linger_timeout: Duration::from_secs(1),
        max_head: 8 * 1024,
        max_connections: 256,
    };
}

async fn serve_with(
    listener: TcpListener,
    state: AdminState,
    stop: CancellationToken,
    limits: Limits,
) {
    let state = Arc::new(state);
    let open = Arc::new(Open::default());
    let tracker = TaskTracker::new();
    let mut accept_error_logged = false;
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => {
                accept_error_logged = false;
                pair
            }
            Err(error) if is_connection_error(&error) => continue,
            Err(error) => {
                // EMFILE and friends: operator-actionable, log once per run
                // of failures and back off instead of spinning.
                if !accept_error_logged {
                    warn!(%error, "admin accept failed; retrying");
                    accept_error_logged = true;
                }
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                }
            }
        };
        let Some(slot) = Open::admit(&open, limits.max_connections) else {
            debug!(peer.addr = %peer, limit = limits.max_connections, "admin connection limit reached and none idle; closing");
            continue;
        };
        let state = Arc::clone(&state);
        let stop = stop.clone();
        tracker.spawn(async move {
            let evicted = slot.evicted.clone();
            tokio::select! {
                () = stop.cancelled() => {}
                () = evicted.cancelled() => {
                    debug!(peer.addr = %peer, "admin connection evicted for a newer one");
                }
                () = handle(stream, peer, &state, limits, &slot) => {}
            }
        });
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
}

/// The open admin connections: how many, and which may be evicted (oldest
/// first) to make room for a new one.
#[derive(Debug, Default)]
struct Open {
    inner: Mutex<OpenInner>,
}

#[derive(Debug, Default)]
struct OpenInner {
    count: usize,
    next_id: u64,
    /// Connections not being answered, oldest first.
    evictable: VecDeque<(u64, CancellationToken)>,
}

/// One admitted connection: evictable until [`Slot::busy`], again after
/// [`Slot::idle`]; frees its place when dropped.
#[derive(Debug)]
struct Slot {
    open: Arc<Open>,
    id: u64,
    evicted: CancellationToken,
}

impl Open {
    /// A place for a new connection, evicting the oldest evictable one when
    /// all `max` are taken; `None` when all are being answered.
    fn admit(open: &Arc<Open>, max: usize) -> Option<Slot> {
        let mut inner = open.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.count >= max {
            let (_, oldest) = inner.evictable.pop_front()?;
            // Its task ends at once; its slot's drop then lowers the count,
            // so the count stays below twice `max` meanwhile.
            oldest.cancel();
        }
        inner.count += 1;
        inner.next_id += 1;
        let id = inner.next_id;
        let evicted = CancellationToken::new();
        inner.evictable.push_back((id, evicted.clone()));
        Some(Slot {
            open: Arc::clone(open),
            id,
            evicted,
        })
    }
}

impl Slot {
    fn with<T>(&self, f: impl FnOnce(&mut OpenInner) -> T) -> T {
        let mut inner = self
            .open
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        f(&mut inner)
    }

    /// Being answered: not evictable.
    fn busy(&self) {
        self.with(|inner| inner.evictable.retain(|(id, _)| *id != self.id));
    }

    /// Answered, lingering: evictable again (as the newest).
    fn idle(&self) {
        self.with(|inner| inner.evictable.push_back((self.id, self.evicted.clone())));
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.with(|inner| {
            inner.count = inner.count.saturating_sub(1);
            inner.evictable.retain(|(id, _)| *id != self.id);
        });
    }
}

/// Reads one request, answers it, closes.
async fn handle(
    mut stream: TcpStream,
    peer: SocketAddr,
    state: &AdminState,
    limits: Limits,
    slot: &Slot,
) {
    let read_deadline = Instant::now() + limits.read_timeout;
    let mut buf = vec![0; limits.max_head];
    let response = match timeout_at(read_deadline, read_request(&mut stream, &mut buf)).await {
        Ok(Ok(request)) => {
            if request.target == Target::Healthz {
                let draining = *state.phase.borrow() >= Phase::Draining;
                state.monitors.record(peer.ip(), draining);
            }
            respond(request, state)
        }
        Ok(Err(HeadError::TooLarge)) => {
            debug!(peer.addr = %peer, limit = limits.max_head, "admin request head too large");
            Response::plain(431, "request header fields too large\n").for_method(Method::Get)
        }
        Ok(Err(HeadError::Malformed(error))) => {
            debug!(peer.addr = %peer, %error, "malformed admin request");
            Response::plain(400, "bad request\n").for_method(Method::Get)
        }
        Ok(Err(HeadError::Closed)) => {
            debug!(peer.addr = %peer, "admin client closed before a complete request");
            return;
        }
        Ok(Err(HeadError::Io(error))) => {
            debug!(peer.addr = %peer, %error, "admin read failed");
            return;
        }
        Err(_elapsed) => {
            debug!(peer.addr = %peer, timeout = ?limits.read_timeout, "admin request not received in time; closing");
            return;
        }
    };

    slot.busy();
    let write_deadline = Instant::now() + limits.write_timeout;
    let written = timeout_at(write_deadline, async {
        stream.write_all(&response).await?;
        stream.shutdown().await
    })
    .await;
    match written {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            debug!(peer.addr = %peer, %error, "admin response write failed");
            return;
        }
        Err(_elapsed) => {
            debug!(peer.addr = %peer, timeout = ?limits.write_timeout, "admin response not taken in time; closing");
            return;
        }
    }

    // Discard anything the client still sends until it closes, bounded.
    slot.idle();
    let linger_deadline = Instant::now() + limits.linger_timeout;
    let _ = timeout_at(linger_deadline, async {
        let mut discarded = 0;
        while discarded < LINGER_MAX_BYTES {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => discarded += n,
            }
        }
    })
    .await;
}

/// Reads until `buf` holds a complete request head, or fails.
async fn read_request(stream: &mut TcpStream, buf: &mut [u8]) -> Result<Request, HeadError> {
    let mut filled = 0;
    loop {
        let Some(free) = buf.get_mut(filled..).filter(|free| !free.is_empty()) else {
            return Err(HeadError::TooLarge);
        };
        let n = stream.read(free).await.map_err(HeadError::Io)?;
        if n == 0 {
            return Err(HeadError::Closed);
        }
        let received = buf.get(filled..filled + n).unwrap_or_default();
        filled += n;
        // Only a completed line can complete (or break) the head.
        if !received.contains(&b'\n') {
            continue;
        }
        let head = buf.get(..filled).unwrap_or_default();
        if let Some(request) = parse_request(head)? {
            return Ok(request);
        }
    }
}

/// Parses a request head: `Ok(None)` when more bytes are needed. Public
/// (hidden) for the fuzz target `fuzz/fuzz_targets/admin_request.rs`.
#[doc(hidden)]
pub fn parse_request(head: &[u8]) -> Result<Option<Request>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(error) => return Err(HeadError::Malformed(error)),
    }
    let method = match request.method {
        Some("GET") => Method::Get,
        Some("HEAD") => Method::Head,
        _ => Method::Other,
    };
    let path = request.path.unwrap_or_default();
    let path = path.split_once('?').map_or(path, |(path, _query)| path);
    let openmetrics = request
        .headers
        .iter()
        .filter(|header| header.name.eq_ignore_ascii_case("accept"))
        .filter_map(|header| std::str::from_utf8(header.value).ok())
        .any(exposition::accepts_openmetrics);
    let target = match path {
        "/healthz" => Target::Healthz,
        "/readyz" => Target::Readyz,
        "/metrics" => Target::Metrics,
        _ => Target::Unknown,
    };
    Ok(Some(Request {
        method,
        target,
        openmetrics,
    }))
}

/// The response bytes for a parsed request.
fn respond(request: Request, state: &AdminState) -> Vec<u8> {
    let phase = *state.phase.borrow();
    let response = match (request.target, request.method) {
        (Target::Unknown, _) => Response::plain(404, "not found\n"),
        (_, Method::Other) => Response {
            allow: true,
            ..Response::plain(405, "method not allowed\n")
        },
        (Target::Healthz, _) => match phase {
            Phase::Serving => Response::plain(200, "ok\n"),
            Phase::Starting => Response::plain(503, "starting\n"),
            Phase::Draining | Phase::Stopping | Phase::Stopped => {
                Response::plain(503, "draining\n")
            }
        },
        (Target::Readyz, _) => match phase {
            Phase::Serving | Phase::Draining => Response::plain(200, "ready\n"),
            Phase::Starting | Phase::Stopping | Phase::Stopped => {
                Response::plain(503, format!("{}\n", phase.as_str()))
            }
        },
        (Target::Metrics, _) if request.openmetrics => Response {
            status: 200,
            content_type: exposition::OPENMETRICS_TEXT,
            body: state.metrics.encode(),
            allow: false,
        },
        (Target::Metrics, _) => Response {
            status: 200,
            content_type: exposition::PROMETHEUS_TEXT,
            body: exposition::prometheus_text(&state.metrics.encode()),
            allow: false,
        },
    };
    response.for_method(request.method)
}

/// A response before it is written out.
struct Response {
    status: u16,
    content_type: &'static str,
    body: String,
    /// Send `Allow: GET, HEAD` (with 405).
    allow: bool,
}

impl Response {
    fn plain(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
            allow: false,
        }
    }

    /// The bytes on the wire: no body for `HEAD`, the same headers.
    fn for_method(self, method: Method) -> Vec<u8> {
        let allow = if self.allow {
            "Allow: GET, HEAD\r\n"
        } else {
            ""
        };
        let head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
            self.status,
            reason_phrase(self.status),
            self.content_type,
            self.body.len(),
        );
        let mut bytes = head.into_bytes();
        if method != Method::Head {
            bytes.extend_from_slice(self.body.as_bytes());
        }
        bytes
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[doc(hidden)]
pub struct Request {
    method: Method,
    target: Target,
    /// `Accept` asked for `application/openmetrics-text`.
    openmetrics: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[doc(hidden)]
pub enum Method {
    Get,
    Head,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[doc(hidden)]
pub enum Target {
    Healthz,
    Readyz,
    Metrics,
    Unknown,
}

/// Why no request could be read.
#[derive(Debug, thiserror::Error)]
#[doc(hidden)]
pub enum HeadError {
    #[error("request head larger than the limit")]
    TooLarge,
    #[error("malformed request head: {0}")]
    Malformed(httparse::Error),
    #[error("client closed before a complete request")]
    Closed,
    #[error("read failed: {0}")]
    Io(io::Error),
}

/// Accept errors that concern one connection, not the listener.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

const MAX_HEADERS: usize = 64;
const LINGER_MAX_BYTES: usize = 64 * 1024;
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

mod exposition;
#[cfg(test)]
mod tests;
