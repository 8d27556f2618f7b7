//! One connection, start to end, in the order of the wire steps (SPEC,
//! "Wire behaviour"): `read_front` (PROXY header, inbound CONNECT,
//! ClientHello), `route`, `open_upstream` (connect, and replay the
//! buffered bytes to the server), `replay` (the hop's leftover bytes to
//! the client), `copy` (forwarding, in a task of its own that may move to
//! another thread), and `account` (counters and the access record). A
//! step that refuses returns the [`Refusal`]; its reply is written in one
//! place (`front::answer`). The only module that sequences the parts on a
//! socket; every wait on a peer is under a named deadline.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::Bytes;
use passthru_net::io::write_all;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;
use tokio_util::task::task_tracker::TaskTrackerToken;
use tracing::{Instrument, debug, warn};

use crate::access_log::{AccessLog, AccessRecord, Observed};
use crate::backend::Backend;
use crate::client_limit::{AtLimit, ClientSlot, ClientTable};
use crate::clienthello::{self, ClientHello};
use crate::config::{ExpectProxy, ListenerConfig, SendProxy};
use crate::forward::{Counters, End, Progress, Tap, forward_with};
use crate::front::{
    Answering, ClientSide, HelloError, answer, answer_connect_ok, read_client_hello, read_connect,
    read_proxy_header,
};
use crate::metrics::Metrics;
use crate::observe::{Direction, Handshake, ObserverTap};
use crate::proxy_protocol::{encode_v1, encode_v2};
pub use crate::refusal::Outcome;
use crate::refusal::Refusal;
use crate::route::{MatchKind, ServerNamePattern};
use crate::routing::Routing;
use crate::slots::Slot;
use crate::upstream::{self, Upstream};
use crate::workers::{Moved, Open, Placement};

/// What a connection needs from its listener and server.
#[derive(Debug)]
pub struct ConnContext {
    /// The settings of the listener it arrived on.
    pub listener: Arc<ListenerConfig>,
    /// Open connections per client address (`max_connections_per_client`).
    pub clients: Arc<ClientTable>,
    /// Routes and backends, as of its accept.
    pub routing: Arc<Routing>,
    /// Where its access record goes.
    pub log: AccessLog,
    /// Counters it moves.
    pub metrics: Arc<Metrics>,
    /// Cancelled when open connections must end (drain timeout).
    pub stop: CancellationToken,
    /// Counts the connection as open on its thread until it ends.
    pub open: Open,
    /// The threads: where the connection moves once it lasts.
    pub placement: Option<Placement>,
}

/// Serve one accepted connection and account for it. `permit` is the
/// listener's `max_connections` slot, held until the connection ends;
/// `pending` its `max_pending` slot, returned once the connection is routed.
///
/// A plain function returning an `async move` block, not an `async fn`: an
/// `async fn` keeps each argument twice in the task (as the argument and
/// as its local copy), and the task lives as long as the connection.
#[allow(clippy::manual_async_fn)]
pub fn serve(
    stream: Accepted,
    mut record: AccessRecord,
    permit: OwnedSemaphorePermit,
    pending: OwnedSemaphorePermit,
    ctx: ConnContext,
) -> impl Future<Output = ()> + Send {
    async move {
        let started = Instant::now();
        let mut stream = match stream.register() {
            Ok(stream) => stream,
            Err(error) => {
                debug!(%error, "cannot register an accepted connection");
                account(
                    record,
                    Err(Outcome::ClientClosed),
                    &ctx.metrics,
                    &ctx.log,
                    Opened::No,
                );
                return;
            }
        };
        ctx.metrics.connection_opened(&ctx.listener.name);
        // `stop` ends each step from inside, so that what a step learned (the
        // bytes forwarded above all) is in the record when it is accounted.
        //
        // The front steps (wire steps 1-6 up to the delivered ClientHello)
        // run in a boxed future that is freed once they are done: the
        // ClientHello buffer, its parse and the refusal replies are not kept
        // in the task for the life of the connection, which holds only what
        // forwarding needs (see "Memory per idle connection" in
        // docs/benchmarking.md).
        let ready = match Box::pin(open(&mut stream, &ctx, &mut record, pending)).await {
            Ok(ready) => ready,
            Err(outcome) => {
                record.duration = started.elapsed();
                account(record, Err(outcome), &ctx.metrics, &ctx.log, Opened::Yes);
                drop(permit);
                return;
            }
        };
        let replayed = replay(&stream, &ready.leftover).await;
        record.bytes_down = ready.leftover.len() as u64;
        let Ready {
            server,
            leftover: _,
            server_slot,
            backend,
            tap,
            client_slot,
        } = ready;
        let config = &backend.config;
        // Through a `via` hop, keepalive is already set (on the hop's
        // socket); directly, only once the connection lasts.
        let keepalive = config.tcp_keepalive.filter(|_| config.via.is_none());
        // The copy runs in a task of its own, counted by the tracker like
        // this one: this task (its upvars, the front steps' state) is freed
        // now, and what a forwarded connection holds is only the copy's
        // state, owned, so that it can move to another thread.
        let counted = ctx.placement.as_ref().map(Placement::token);
        let copying = Copying {
            _counted: counted,
            progress: Progress::new(),
            counters: Counters::default(),
            keepalive,
            tap,
            backend,
            _server_slot: server_slot,
            _client_slot: client_slot,
            record,
            ctx,
            started,
            _permit: permit,
        };
        match replayed {
            Ok(()) => {
                let copy = copy(stream, server, copying).instrument(tracing::Span::current());
                drop(tokio::spawn(copy));
            }
            Err(end) => copying.finish(end),
        }
    }
}

/// An accepted connection's socket.
#[derive(Debug)]
pub enum Accepted {
    /// Registered with this thread's event loop (it accepted it).
    Here(TcpStream),
    /// Moved from the accepting thread: registered by the thread that runs it.
    Moved(std::net::TcpStream),
}

impl Accepted {
    /// The socket, registered with the event loop of the calling thread.
    fn register(self) -> std::io::Result<TcpStream> {
        match self {
            Accepted::Here(stream) => Ok(stream),
            Accepted::Moved(stream) => TcpStream::from_std(stream),
        }
    }
}

/// Whether the connection was counted as open (`connection_opened`):
/// refusals at accept never were.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Opened {
    /// Served by [`serve`].
    Yes,
    /// Refused by the accept loop.
    No,
}

/// Wire step 7, for every connection (those refused at accept included):
/// the outcome, the counters and the one access-log line.
pub(crate) fn account(
    mut record: AccessRecord,
    ended: Result<End, Outcome>,
    metrics: &Metrics,
    log: &AccessLog,
    opened: Opened,
) {
    let outcome = match ended {
        Ok(end) => {
            record.end = Some(end.as_str());
            Outcome::Forwarded
        }
        Err(outcome) => outcome,
    };
    record.outcome = outcome;
    let name = record.listener.as_str();
    if let Outcome::Refused(refusal) = outcome {
        metrics.refused(name, refusal);
    }
    metrics.connection_finished(
        name,
        record.route.as_deref().unwrap_or(""),
        record.backend.as_deref().unwrap_or(""),
        outcome.as_str(),
    );
    if opened == Opened::Yes {
        metrics.bytes(name, record.bytes_up, record.bytes_down);
        metrics.connection_closed(name);
        debug!(%outcome, "connection finished");
    }
    if !log.write(record) {
        metrics.access_log_dropped();
    }
}

/// What the front steps hand to forwarding.
struct Ready {
    /// The server connection, the ClientHello delivered.
    server: TcpStream,
    /// Bytes the `via` hop sent after its answer, for the client first.
    leftover: Bytes,
    /// The connection's place on its server.
    server_slot: Slot,
    /// Its backend.
    backend: Arc<Backend>,
    /// Handshake observation (`observe_handshake`), fed the bytes so far.
    tap: Option<Box<ObserverTap>>,
    /// The connection's place in `max_connections_per_client`.
    client_slot: Option<ClientSlot>,
}

/// Wire steps 1-6 up to forwarding: read the front, route, reach a server
/// and deliver the buffered bytes to it; a refusal is answered here.
async fn open(
    client: &mut TcpStream,
    ctx: &ConnContext,
    record: &mut AccessRecord,
    pending: OwnedSemaphorePermit,
) -> Result<Ready, Outcome> {
    let (cfg, routing, metrics, stop) = (&*ctx.listener, &*ctx.routing, &*ctx.metrics, &ctx.stop);
    let mut side = ClientSide::new(client, cfg.client_hello_timeout);
    let mut front = Front::default();
    let admitted = tokio::select! {
        admitted = admit(
            &mut side,
            &mut front,
            cfg,
            routing,
            &ctx.clients,
            record,
            metrics,
            Some(pending),
        ) => Some(admitted),
        () = stop.cancelled() => None,
    };
    let Some(admitted) = admitted else {
        fingerprint(&side, &front, record);
        return Err(Outcome::Stopped);
    };
    let (hello, backend) = admitted?;
    let opened = tokio::select! {
        opened = open_upstream(&side, &hello, backend, record, metrics) => opened,
        () = stop.cancelled() => Err(Early::Outcome(Outcome::Stopped)),
    };
    let settled = settle(&mut side, &front, opened, cfg, record, metrics).await;
    // The hello is with the server (or refused): its fingerprint is off
    // the path that handshake waits on.
    fingerprint(&side, &front, record);
    let upstream = settled?;
    // Delivered: the hello's bytes are counted, and go to the tap, not on.
    let tap = cfg.observe_handshake.then(|| Box::new(ObserverTap::new()));
    if let Some(tap) = &tap {
        tap.feed_direction(Direction::ClientToServer, &side.buf);
        tap.feed_direction(Direction::ServerToClient, &upstream.leftover);
    }
    record.bytes_up = side.buf.len() as u64;
    // The server's address is in the record already (`server`).
    let Upstream {
        stream,
        leftover,
        server: _,
        _slot: server_slot,
    } = upstream;
    Ok(Ready {
        server: stream,
        leftover,
        server_slot,
        backend: Arc::clone(backend),
        tap,
        client_slot: front.client_slot.take(),
    })
}

/// Wire steps 1-4 on any byte stream: read the front, route, and on a
/// refusal write its reply. Returns the ClientHello and its backend.
/// `pending` (the listener's `max_pending` slot) is returned once routed or
/// refused: a refusal's reply, written to a client that may not read, does
/// not hold it past the ClientHello deadline.
#[allow(clippy::too_many_arguments)]
async fn admit<'r, S: AsyncRead + AsyncWrite + Unpin>(
    side: &mut ClientSide<'_, S>,
    front: &mut Front,
    cfg: &ListenerConfig,
    routing: &'r Routing,
    clients: &Arc<ClientTable>,
    record: &mut AccessRecord,
    metrics: &Metrics,
    pending: Option<OwnedSemaphorePermit>,
) -> Result<(ClientHello, &'r Arc<Backend>), Outcome> {
    let admitted = match read_front(side, front, cfg, routing, clients, record, metrics).await {
        Ok(hello) => route(&hello, routing, record).map(|backend| (hello, backend)),
        Err(early) => Err(early),
    };
    drop(pending);
    settle(side, front, admitted, cfg, record, metrics).await
}

/// A step's result as the pipeline goes on with it: a refusal is answered
/// here (`front::answer` writes what [`Refusal::reply`] says), once.
async fn settle<T, S: AsyncRead + AsyncWrite + Unpin>(
    side: &mut ClientSide<'_, S>,
    front: &Front,
    result: Result<T, Early>,
    cfg: &ListenerConfig,
    record: &mut AccessRecord,
    metrics: &Metrics,
) -> Result<T, Outcome> {
    if result.is_err() {
        fingerprint(side, front, record);
    }
    match result {
        Ok(value) => Ok(value),
        Err(Early::Outcome(outcome)) => Err(outcome),
        Err(Early::Refused(refusal)) => {
            debug!(reason = refusal.as_str(), bytes = side.buf.len(), "refused");
            let with = Answering {
                hello_version: front.hello_version,
                connect_host: front.connect_host.as_deref(),
                proxy_ssl_tlv: front.proxy_ssl_tlv,
                max_head: cfg.max_client_hello,
            };
            for signal in answer(side, refusal, with, record).await {
                metrics.offload_signal(&cfg.name, &signal);
            }
            Err(Outcome::Refused(refusal))
        }
    }
}

/// The ClientHello's JA4 into the record, once it was read: computed only
/// after the hello went on to its server, or at the end that stopped it
/// (a refusal, passthru stopping), so that its hashing is not on the
/// handshake's path.
fn fingerprint<S>(side: &ClientSide<'_, S>, front: &Front, record: &mut AccessRecord) {
    if front.hello_version.is_some() && record.ja4.is_none() {
        record.ja4 = clienthello::ja4(&side.buf);
    }
}

/// How a step ends the connection early.
#[derive(Debug)]
enum Early {
    /// Refused: the reply is written before the close.
    Refused(Refusal),
    /// Ended without a refusal (the client left).
    Outcome(Outcome),
}

impl From<Refusal> for Early {
    fn from(refusal: Refusal) -> Self {
        Early::Refused(refusal)
    }
}

impl From<HelloError> for Early {
    fn from(error: HelloError) -> Self {
        match error {
            HelloError::Refused(refusal) => Early::Refused(refusal),
            HelloError::Closed | HelloError::ConnectRequest => {
                Early::Outcome(Outcome::ClientClosed)
            }
        }
    }
}

/// What the front steps learned that a reply may need.
#[derive(Debug, Default)]
struct Front {
    hello_version: Option<u16>,
    client_slot: Option<ClientSlot>,
    connect_host: Option<String>,
    proxy_ssl_tlv: bool,
}

/// Wire steps 1-3: the PROXY header (when the listener expects one), an
/// inbound CONNECT (when accepted), and the ClientHello, all within one
/// deadline; every ClientHello byte stays in `side.buf`.
async fn read_front<S: AsyncRead + AsyncWrite + Unpin>(
    side: &mut ClientSide<'_, S>,
    front: &mut Front,
    cfg: &ListenerConfig,
    routing: &Routing,
    clients: &Arc<ClientTable>,
    record: &mut AccessRecord,
    metrics: &Metrics,
) -> Result<ClientHello, Early> {
    if cfg.proxy_protocol != ExpectProxy::Off {
        // A PROXY header is a claim anyone can make: only trusted peers may
        // make it, and on this listener every connection must.
        if !cfg.trusted_proxies.contains(record.peer.ip()) {
            debug!(peer = %record.peer, "a PROXY header is expected, but the peer is not in trusted_proxies");
            return Err(Refusal::ProxyHeaderUntrusted.into());
        }
        let header = read_proxy_header(
            side.stream,
            &mut side.buf,
            side.deadline,
            cfg.proxy_protocol,
        )
        .await?;
        if let (true, Some(source)) = (header.proxied, header.source) {
            record.client = source;
        }
        front.proxy_ssl_tlv = header.tls_terminated;
    }
    // Wire step 1 ends with the client address known: the per-client
    // limit applies from here, held until the connection ends.
    match clients.admit(record.client.ip()) {
        Ok(slot) => front.client_slot = slot,
        Err(AtLimit) => {
            debug!(client = %record.client, "max_connections_per_client reached; closing");
            return Err(Refusal::ClientLimit.into());
        }
    }
    let mut reads = 0;
    let mut read = read_client_hello(
        &mut *side.stream,
        &mut side.buf,
        side.deadline,
        cfg.max_client_hello,
        cfg.accept_connect,
        &mut reads,
    )
    .await;
    if read == Err(HelloError::ConnectRequest) {
        // Inbound CONNECT: answer only for routed names, then read the
        // ClientHello inside the tunnel. The CONNECT head is not forwarded.
        let (host, port) = read_connect(side).await.inspect_err(|e| {
            if let HelloError::Refused(Refusal::ConnectMalformed(reason)) = e {
                record.detail = Some(format!("CONNECT refused: {reason}"));
            }
        })?;
        record.detail = Some(format!("CONNECT {host}:{port}"));
        let routed = routing.table.routes_name(&host);
        front.connect_host = Some(host);
        if !routed {
            return Err(Refusal::ConnectNoRoute.into());
        }
        if answer_connect_ok(&mut *side.stream).await.is_err() {
            return Err(Early::Outcome(Outcome::ClientClosed));
        }
        reads = 0;
        read = read_client_hello(
            &mut *side.stream,
            &mut side.buf,
            side.deadline,
            cfg.max_client_hello,
            false,
            &mut reads,
        )
        .await;
    }
    let mut hello = read?;
    front.hello_version = Some(hello.legacy_version);
    if front.proxy_ssl_tlv {
        // TLS again after a hop that terminated TLS: a re-encrypting balancer.
        // The agent's certificate cannot be in this handshake.
        warn!(peer = %record.peer, "the PROXY header's SSL TLV says the balancer terminated TLS and re-encrypted: client certificates cannot reach the gateway");
        record.detail = Some("offload signals: proxy_v2_ssl_tlv".to_string());
        metrics.offload_signal(&cfg.name, "proxy_v2_ssl_tlv");
    }
    // A hello that came whole with the bytes before it took one read.
    let groups = hello.key_shares.iter().map(|group| group.name());
    metrics.client_hello(&cfg.name, hello.len, reads.max(1), hello.records, groups);
    record.sni.clone_from(&hello.server_name);
    record.alpn = std::mem::take(&mut hello.alpn);
    record.tls_version = Some(hello.offered_version_name());
    record.key_shares = Some(std::mem::take(&mut hello.key_shares));
    if let Some(host) = &front.connect_host
        && !sni_is(&hello, host)
    {
        return Err(Refusal::ConnectSniMismatch.into());
    }
    Ok(hello)
}

/// The route name of connections that matched no route (the default backend).
static DEFAULT_ROUTE: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from("default"));

/// Wire step 4: the backend for this ClientHello.
fn route<'r>(
    hello: &ClientHello,
    routing: &'r Routing,
    record: &mut AccessRecord,
) -> Result<&'r Arc<Backend>, Early> {
    let routed = routing
        .table
        .lookup(hello.server_name.as_deref(), &record.alpn)
        .ok_or(Refusal::NoRoute)?;
    record.route = Some(match (routed.route, routed.kind) {
        (Some(i), _) => routing
            .route_names
            .get(i)
            .cloned()
            .unwrap_or_else(|| Arc::from(format!("route[{i}]"))),
        (None, MatchKind::Default) | (None, _) => Arc::clone(&DEFAULT_ROUTE),
    });
    let backend = routing
        .backends
        .get(routed.backend)
        .ok_or(Refusal::NoRoute)?;
    record.backend = Some(Arc::clone(&backend.name));
    record.via = backend.config.via.as_ref().map(|v| v.proxy.to_string());
    Ok(backend)
}

/// Wire steps 5-6 (server side): reach a server of `backend` and deliver
/// the PROXY header (if configured) and the buffered bytes to it.
async fn open_upstream(
    side: &ClientSide<'_>,
    hello: &ClientHello,
    backend: &Arc<Backend>,
    record: &mut AccessRecord,
    metrics: &Metrics,
) -> Result<Upstream, Early> {
    // The local address costs a system call: asked only for a header.
    let send_proxy = backend.config.send_proxy_protocol;
    let local = (send_proxy != SendProxy::Off)
        .then(|| side.stream.local_addr().ok())
        .flatten();
    let proxy_header = match (send_proxy, local) {
        (SendProxy::Off, _) | (_, None) => Vec::new(),
        (SendProxy::V1, Some(local)) => encode_v1(canonical(record.client), canonical(local)),
        (SendProxy::V2, Some(local)) => encode_v2(
            canonical(record.client),
            canonical(local),
            hello.server_name.as_deref(),
        ),
    };
    let initial: [&[u8]; 2] = [&proxy_header, &side.buf];
    match upstream::connect(backend, side.stream, record.client.ip(), &initial).await {
        Ok((upstream, connect_time)) => {
            metrics.upstream_connect(connect_time.as_secs_f64());
            record.server = Some(Arc::clone(&upstream.server));
            debug!(sni = ?hello.server_name, route = ?record.route, server = ?record.server, "routed");
            Ok(upstream)
        }
        // upstream_unavailable, or the queue's queue_full / queue_timeout
        Err(upstream::Failure::Refused(refusal, error)) => {
            record.detail = Some(error.to_string());
            Err(refusal.into())
        }
        Err(upstream::Failure::ClientGone) => Err(Early::Outcome(Outcome::ClientClosed)),
    }
}

/// Wire step 6 (client side): bytes the `via` hop sent after its answer
/// are the server's first bytes; they go to the client before the copy.
async fn replay(client: &TcpStream, leftover: &[u8]) -> Result<(), End> {
    if leftover.is_empty() {
        return Ok(());
    }
    match timeout(REPLAY_WAIT, write_all(client, leftover)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(End::ClientReset),
        Err(_) => Err(End::IdleTimeout),
    }
}

/// Longest wait for a client to take the hop's leftover bytes (at most
/// 16 KiB) before the copy starts.
const REPLAY_WAIT: Duration = Duration::from_secs(10);

/// A connection from its first forwarded byte to its end: everything the
/// copy and the access record need, owned, so that the connection can move
/// to another thread on the way.
struct Copying {
    /// Keeps the connection counted by the drain until it ends.
    _counted: Option<TaskTrackerToken>,
    progress: Progress,
    counters: Counters,
    /// Keepalive to set on the server socket once the connection lasts.
    keepalive: Option<Duration>,
    tap: Option<Box<ObserverTap>>,
    backend: Arc<Backend>,
    /// The slots (per server, per client) are held until the end.
    _server_slot: Slot,
    _client_slot: Option<ClientSlot>,
    record: AccessRecord,
    ctx: ConnContext,
    started: Instant,
    /// The listener's `max_connections` slot.
    _permit: OwnedSemaphorePermit,
}

impl Copying {
    /// Wire step 7 for a forwarded connection: what handshake observation
    /// saw, the bytes each way, and the one access record.
    fn finish(self, end: End) {
        let Copying {
            counters,
            tap,
            backend,
            mut record,
            ctx,
            started,
            ..
        } = self;
        record.bytes_up += counters.upstream.load(Ordering::Relaxed);
        record.bytes_down += counters.downstream.load(Ordering::Relaxed);
        if let Some(tap) = &tap {
            observed(
                tap,
                &ctx.metrics,
                &ctx.listener.name,
                &backend.config.name,
                &mut record,
            );
        }
        record.duration = started.elapsed();
        account(record, Ok(end), &ctx.metrics, &ctx.log, Opened::Yes);
    }
}

/// Wire step 6: copy both directions until both are done, the idle
/// timeout, or `stop`. A connection that lasts may move to a less busy
/// thread at a quiet moment ([`Placement::move_from`]): the copy goes on
/// there. Returns an `async move` block for the same reason as [`serve`]:
/// `copying` is kept once in the task, the task of a forwarded connection.
#[allow(clippy::manual_async_fn)]
fn copy(client: TcpStream, server: TcpStream, copying: Copying) -> impl Future<Output = ()> + Send {
    async move {
        loop {
            let ctx = &copying.ctx;
            // Asked only when there is another thread to move to.
            let placement = ctx.placement.as_ref().filter(|p| p.threads() > 1);
            let wants_move = placement.map(|p| || p.wants_move(&ctx.open));
            let end = forward_with(
                &client,
                &server,
                &copying.progress,
                copying.keepalive,
                copying.backend.config.idle_timeout,
                ctx.routing.forwarding,
                copying.tap.as_deref().map(|t| t as &dyn Tap),
                &copying.counters,
                &ctx.stop,
                wants_move.as_ref().map(|f| f as &(dyn Fn() -> bool + Sync)),
            )
            .await;
            if end != End::Moving {
                return copying.finish(end);
            }
            if let Some(to) = placement.and_then(|p| p.move_from(&ctx.open)) {
                return hop(client, server, copying, to);
            }
        }
    }
}

/// Move a quiet connection to `to`'s thread: off this thread's event loop
/// (one `epoll_ctl` per socket) and on to the other's, where a new task
/// goes on copying from where this one stopped. Both the new task and the
/// sockets' new event-loop state are allocated here, where this task's
/// are about to be freed: the allocator reuses them at once, and a moved
/// connection holds no more memory than one that stayed.
fn hop(client: TcpStream, server: TcpStream, mut copying: Copying, to: Moved) {
    let Moved {
        runtime,
        open,
        stop,
    } = to;
    let (client, server) = match (client.into_std(), server.into_std()) {
        (Ok(client), Ok(server)) => {
            let _there = runtime.enter();
            (TcpStream::from_std(client), TcpStream::from_std(server))
        }
        // Not seen in practice: the event loop refused to let go of a
        // socket (and closed it). The connection cannot go on, and the
        // other peer learns it broke.
        (client, server) => {
            return copying.finish(broken(client.as_ref().ok(), server.as_ref().ok()));
        }
    };
    let (client, server) = match (client, server) {
        (Ok(client), Ok(server)) => (client, server),
        (client, server) => {
            return copying.finish(broken(client.as_ref().ok(), server.as_ref().ok()));
        }
    };
    copying.ctx.open = open;
    copying.ctx.stop = stop;
    copying.ctx.metrics.connection_moved();
    let copy = copy(client, server, copying).instrument(tracing::Span::current());
    drop(runtime.spawn(copy));
}

/// A move that lost a socket: the one left is closed with a reset, and the
/// end names the peer whose socket was lost.
fn broken<S: std::os::fd::AsFd>(client: Option<&S>, server: Option<&S>) -> End {
    let end = if client.is_none() {
        End::ClientReset
    } else {
        End::ServerReset
    };
    debug!(
        ?end,
        "a socket was lost moving a connection to another thread"
    );
    for left in client.into_iter().chain(server) {
        let _ = socket2::SockRef::from(left).set_linger(Some(Duration::ZERO));
    }
    end
}

/// What handshake observation saw, into the record and the counters.
fn observed(
    tap: &ObserverTap,
    metrics: &Metrics,
    listener: &str,
    backend: &str,
    record: &mut AccessRecord,
) {
    let (report, duration) = tap.finish();
    observed_metrics(metrics, listener, backend, &report);
    record.handshake = Some(Box::new(Observed {
        report,
        duration_ms: duration.map(|d| d.as_millis() as u64),
    }));
}

/// Count an observed handshake and the client certificate's days left.
fn observed_metrics(metrics: &Metrics, listener: &str, backend: &str, report: &Handshake) {
    let outcome = match (&report.alert, report.completed) {
        (Some(_), _) => "failed",
        (None, true) => "completed",
        (None, false) => "incomplete",
    };
    let alert = report.alert.as_ref().map_or("", |(_, name)| name.as_str());
    metrics.handshake(listener, backend, outcome, alert);
    if let Some(cert) = &report.client_cert {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        metrics.client_cert_expiry(backend, (cert.not_after_unix - now) as f64 / 86_400.0);
    }
}

/// IPv4-mapped IPv6 addresses (dual-stack sockets) as plain IPv4.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Whether the hello's SNI names `host` (case and one trailing dot ignored).
fn sni_is(hello: &ClientHello, host: &str) -> bool {
    match (&hello.server_name, host.parse::<ServerNamePattern>()) {
        (Some(sni), Ok(ServerNamePattern::Exact(want))) => {
            let sni = sni.strip_suffix('.').unwrap_or(sni);
            sni.eq_ignore_ascii_case(&want)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};

    use super::*;
    use crate::config::Config;
    use crate::routing::backend_servers;

    const CONFIG: &str = r#"
[[listener]]
name = "public"
bind = "127.0.0.1:8443"
client_hello_timeout = "10s"
accept_connect = true

[[route]]
server_names = ["gw.example.com"]
backend = "gw"

[[backend]]
name = "gw"
servers = ["127.0.0.1:9443"]
"#;

    /// Drives the front of one connection (wire steps 1-4 and the refusal's
    /// reply) over an in-memory stream; `client` writes first, then the
    /// client's half stays open until the connection is settled.
    async fn admit_over_duplex(
        client: &[u8],
    ) -> (Result<String, Outcome>, AccessRecord, Vec<u8>, Metrics) {
        let config = Config::from_toml(CONFIG, "test.toml").unwrap();
        let cfg = &config.listeners[0];
        let routing = Routing::new(
            &config,
            &crate::slots::Pools::new(Arc::new(Metrics::new(&[], &[]))),
        );
        let metrics = Metrics::new(std::slice::from_ref(&cfg.name), &backend_servers(&config));
        let (mut far, mut near): (DuplexStream, DuplexStream) = tokio::io::duplex(64 * 1024);
        far.write_all(client).await.unwrap();
        let mut record = AccessRecord::new(&cfg.name, "192.0.2.7:50000".parse().unwrap());
        let mut side = ClientSide::new(&mut near, cfg.client_hello_timeout);
        let mut front = Front::default();
        let clients = Arc::new(ClientTable::default());
        let admitted = admit(
            &mut side,
            &mut front,
            cfg,
            &routing,
            &clients,
            &mut record,
            &metrics,
            None,
        )
        .await
        .map(|(_, backend)| backend.config.name.clone());
        drop(near);
        let mut reply = Vec::new();
        far.read_to_end(&mut reply).await.unwrap();
        (admitted, record, reply, metrics)
    }

    /// What an idle connection costs in memory is mostly its task: once
    /// it forwards, the task of [`copy`]. The front steps run in the task
    /// of [`serve`], freed when forwarding starts, and their state is boxed
    /// inside it; no state is held twice. The copy's task stays near
    /// 2.2 KiB in a release build (about 13 KiB before; see "Memory per
    /// idle connection" in docs/benchmarking.md). The bounds leave room
    /// for unoptimised builds and compiler changes, not for a copy of the
    /// front steps or of the copy loops.
    #[tokio::test]
    async fn the_task_of_a_connection_stays_small() {
        let config = Config::from_toml(CONFIG, "test.toml").unwrap();
        let metrics = Arc::new(Metrics::new(&[], &[]));
        let routing = Arc::new(Routing::new(
            &config,
            &crate::slots::Pools::new(Arc::clone(&metrics)),
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (stream, peer) = listener.accept().await.unwrap();
        let permits = Arc::new(tokio::sync::Semaphore::new(3));
        let ctx = || ConnContext {
            listener: Arc::new(config.listeners[0].clone()),
            clients: Arc::new(ClientTable::default()),
            routing: Arc::clone(&routing),
            log: AccessLog::discard(),
            metrics: Arc::clone(&metrics),
            stop: CancellationToken::new(),
            open: Open::none(),
            placement: None,
        };
        let front = serve(
            Accepted::Here(stream),
            AccessRecord::new("public", peer),
            Arc::clone(&permits).try_acquire_owned().unwrap(),
            Arc::clone(&permits).try_acquire_owned().unwrap(),
            ctx(),
        );
        let size = std::mem::size_of_val(&front);
        assert!(size <= 2048, "the task of the front steps is {size} bytes");
        let backend = Arc::clone(&routing.backends[0]);
        let copying = Copying {
            _counted: None,
            progress: Progress::new(),
            counters: Counters::default(),
            keepalive: None,
            tap: None,
            _server_slot: backend.slots.try_acquire(0).unwrap(),
            backend,
            _client_slot: None,
            record: AccessRecord::new("public", peer),
            ctx: ctx(),
            started: Instant::now(),
            _permit: permits.try_acquire_owned().unwrap(),
        };
        let server = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let forwarding = copy(client, server, copying);
        let size = std::mem::size_of_val(&forwarding);
        assert!(
            size <= 4096,
            "the task of a forwarded connection is {size} bytes"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_routed_client_hello_reaches_its_backend_with_every_byte_kept() {
        let hello = include_bytes!("clienthello/testdata/curl.bin");
        let (admitted, record, reply, _) = admit_over_duplex(hello).await;
        assert_eq!(admitted, Ok("gw".to_string()));
        assert_eq!(record.sni.as_deref(), Some("gw.example.com"));
        assert_eq!(record.route.as_deref(), Some("route[0]"));
        assert!(reply.is_empty(), "nothing is written to a routed client");
    }

    #[tokio::test(start_paused = true)]
    async fn plaintext_http_gets_the_400_naming_the_offload_header() {
        let (admitted, record, reply, metrics) = admit_over_duplex(
            b"GET / HTTP/1.1\r\nHost: gw.example.com\r\nX-Forwarded-Proto: https\r\n\r\n",
        )
        .await;
        assert_eq!(admitted, Err(Outcome::Refused(Refusal::PlaintextHttp)));
        let reply = String::from_utf8_lossy(&reply);
        assert!(reply.starts_with("HTTP/1.1 400 Bad Request"), "{reply}");
        assert!(reply.contains("X-Forwarded-Proto"), "{reply}");
        assert_eq!(
            record.detail.as_deref(),
            Some("offload signals: X-Forwarded-Proto")
        );
        assert!(metrics.encode().contains("signal=\"x-forwarded-proto\""));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_client_hello_is_refused_at_the_deadline_in_paused_time() {
        let started = Instant::now();
        let (admitted, _, reply, _) = admit_over_duplex(&[0x16, 0x03, 0x01]).await;
        assert_eq!(admitted, Err(Outcome::Refused(Refusal::ClientHelloTimeout)));
        assert!(reply.is_empty());
        assert!(started.elapsed() >= Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn connect_refusals_answer_with_their_own_status() {
        let (admitted, _, reply, _) =
            admit_over_duplex(b"CONNECT other.example.com:443 HTTP/1.1\r\n\r\n").await;
        assert_eq!(admitted, Err(Outcome::Refused(Refusal::ConnectNoRoute)));
        let reply = String::from_utf8_lossy(&reply);
        assert!(reply.starts_with("HTTP/1.1 403 Forbidden"), "{reply}");
        assert!(reply.contains("no route for other.example.com"), "{reply}");

        let (admitted, record, reply, _) =
            admit_over_duplex(b"CONNECT other.example.com HTTP/1.1\r\n\r\n").await;
        assert!(matches!(
            admitted,
            Err(Outcome::Refused(Refusal::ConnectMalformed(_)))
        ));
        assert!(String::from_utf8_lossy(&reply).starts_with("HTTP/1.1 400 Bad Request"));
        assert!(record.detail.unwrap().starts_with("CONNECT refused: "));
    }

    #[tokio::test(start_paused = true)]
    async fn a_connect_client_that_leaves_is_client_closed() {
        let config = Config::from_toml(CONFIG, "test.toml").unwrap();
        let cfg = &config.listeners[0];
        let routing = Routing::new(
            &config,
            &crate::slots::Pools::new(Arc::new(Metrics::new(&[], &[]))),
        );
        let metrics = Metrics::new(std::slice::from_ref(&cfg.name), &backend_servers(&config));
        let (mut far, mut near) = tokio::io::duplex(1024);
        far.write_all(b"CONNECT gw.example.com:443 HTTP/1.1\r\nHost: gw")
            .await
            .unwrap();
        drop(far);
        let mut record = AccessRecord::new(&cfg.name, "192.0.2.7:50000".parse().unwrap());
        let mut side = ClientSide::new(&mut near, cfg.client_hello_timeout);
        let admitted = admit(
            &mut side,
            &mut Front::default(),
            cfg,
            &routing,
            &Arc::new(ClientTable::default()),
            &mut record,
            &metrics,
            None,
        )
        .await;
        assert_eq!(admitted.err(), Some(Outcome::ClientClosed));
    }
}
