//! The data path: copy bytes both ways between client and server until
//! both directions are done. Half-close is propagated (a FIN one way does
//! not cut the other), a reset is propagated as a reset (once the surviving
//! direction has passed on what the broken peer sent before breaking, see
//! [`survive`]), and `idle_timeout` means no byte in *either* direction for
//! that long.
//!
//! Each direction reads into its thread's 64 KiB scratch buffer and writes
//! at once; only bytes the receiving peer does not take then are copied to
//! a buffer of their own until it does (an idle connection holds no copy
//! buffer, and a busy one allocates nothing while its peer keeps up). On Linux, a
//! direction can instead move bytes with `splice(2)` through a pipe, never
//! through user space: always (`forwarding = "splice"`), or once it has
//! carried [`AUTO_SPLICE_AFTER`] bytes in large reads (`"auto"`, so that
//! small exchanges keep the cheaper copy and its two fewer descriptors,
//! however long the connection lives). While a [`Tap`]
//! still wants the bytes (handshake observation), a direction copies.

use std::io;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use passthru_net::io::write_all;
use socket2::SockRef;
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use crate::config::Forwarding;

mod activity;
#[cfg(target_os = "linux")]
mod splice;

use activity::{Activity, Failed, half_close};

/// How a forwarded connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Both sides closed (FIN) normally.
    Closed,
    /// No byte in either direction for `idle_timeout`.
    IdleTimeout,
    /// The client reset the connection (or vanished); the server was reset.
    ClientReset,
    /// The server reset the connection; the client was reset.
    ServerReset,
    /// passthru stopped before the connection ended.
    Stopped,
    /// Not an end: both directions were quiet (nothing read and not yet
    /// written, no splice pipe, no tap) when the caller's `may_move` asked
    /// to move the connection to another thread. Its bytes are in the
    /// sockets; calling [`forward_with`] again (on any thread) goes on.
    Moving,
}

impl End {
    /// The label used in the access log.
    pub fn as_str(self) -> &'static str {
        match self {
            End::Closed => "closed",
            End::IdleTimeout => "idle_timeout",
            End::ClientReset => "client_reset",
            End::ServerReset => "server_reset",
            End::Stopped => "stopped",
            End::Moving => "moving",
        }
    }
}

/// Byte counters, readable while the copy runs.
#[derive(Debug, Default)]
pub struct Counters {
    /// Client → server.
    pub upstream: AtomicU64,
    /// Server → client.
    pub downstream: AtomicU64,
}

/// Something that wants to see the bytes as they pass (handshake
/// observation). It never changes them.
pub trait Tap: Sync {
    /// Bytes just read in one direction (`upstream`: client → server), before
    /// they are written on. Returns whether the tap wants more.
    fn feed(&self, upstream: bool, bytes: &[u8]) -> bool;
}

/// What a connection's copy keeps from one call of [`forward_with`] to
/// the next, when it moves between threads.
#[derive(Debug)]
pub struct Progress {
    /// When forwarding started.
    epoch: Instant,
    /// Milliseconds from `epoch` to the last byte either way.
    last: AtomicU64,
    /// Whether the server socket has its keepalive probes.
    keepalive_set: AtomicBool,
}

impl Progress {
    /// Forwarding starts now.
    pub fn new() -> Progress {
        Progress {
            epoch: Instant::now(),
            last: AtomicU64::new(0),
            keepalive_set: AtomicBool::new(false),
        }
    }
}

impl Default for Progress {
    fn default() -> Progress {
        Progress::new()
    }
}

/// Copy both ways until both directions are done, the idle timeout
/// expires, or `stop` is cancelled; `tap` sees the bytes while it wants them.
/// `server_keepalive`: keepalive to set on `server` once the connection
/// has lasted [`KEEPALIVE_AFTER`]. `may_move`, asked once the connection
/// has lasted [`MOVE_FIRST`] and then less and less often: whether it
/// should move to another thread; at the next moment both directions are
/// quiet, this returns [`End::Moving`].
#[allow(clippy::too_many_arguments)]
pub async fn forward_with(
    client: &TcpStream,
    server: &TcpStream,
    progress: &Progress,
    server_keepalive: Option<Duration>,
    idle_timeout: Option<Duration>,
    mode: Forwarding,
    tap: Option<&dyn Tap>,
    counters: &Counters,
    stop: &CancellationToken,
    may_move: Option<&(dyn Fn() -> bool + Sync)>,
) -> End {
    let activity = Activity {
        last: &progress.last,
        epoch: progress.epoch,
    };
    let up = Direction {
        upstream: true,
        count: &counters.upstream,
    };
    let down = Direction {
        upstream: false,
        count: &counters.downstream,
    };
    // Set by each pump while it waits for bytes holding none.
    let parked = [AtomicBool::new(false), AtomicBool::new(false)];
    let [up_parked, down_parked] = &parked;
    // Both pumps are pinned here and only borrowed below: each is held once
    // in the connection's task (moving them into `survive` would keep a
    // copy at every level, about 2 KiB per idle connection).
    let up = pin!(pump(client, server, up, mode, tap, activity, up_parked));
    let down = pin!(pump(server, client, down, mode, tap, activity, down_parked));
    let copy = async {
        match survive(up, down).await {
            None => End::Closed,
            Some(Peer::Client) => {
                pass_reset(server).await;
                End::ClientReset
            }
            Some(Peer::Server) => {
                pass_reset(client).await;
                End::ServerReset
            }
        }
    };
    let keepalive = server_keepalive
        .filter(|_| !progress.keepalive_set.load(Ordering::Relaxed))
        .map(|k| (server, k));
    let moving = may_move.map(|wanted| Moving {
        wanted,
        parked: &parked,
    });
    // In order, not at random: no random number per wake-up, and when the
    // copy ended it is what is reported.
    tokio::select! {
        biased;
        end = copy => end,
        idle = idle(idle_timeout, progress, keepalive, moving) => idle,
        () = stop.cancelled() => End::Stopped,
    }
}

/// Once `live` has sent what it was given (at most [`SENT_WAIT`]), close it
/// with a reset. Boxed: a rare end, whose timer is not kept in every
/// connection's task.
async fn pass_reset(live: &TcpStream) {
    let _ = Box::pin(tokio::time::timeout(SENT_WAIT, sent(live))).await;
    reset_on_close(live);
}

/// Run both directions to their end; `Some(peer)` when `peer` broke.
///
/// When a direction fails *writing*, its peer is broken, but the other
/// direction reads from that same peer and may still hold bytes for the live
/// one (in its buffer, in the socket's receive queue): it goes on until it
/// ends too, so that nothing the broken peer sent before breaking is lost
/// (bounded by the caller's idle timeout). When a direction fails *reading*,
/// it has passed on everything its source sent; the other direction writes
/// to that broken source, so there is nothing left to save.
async fn survive(
    mut up: Pin<&mut impl Future<Output = Result<(), Failed>>>,
    mut down: Pin<&mut impl Future<Output = Result<(), Failed>>>,
) -> Option<Peer> {
    let (mut up_end, mut down_end) = (None, None);
    loop {
        tokio::select! {
            ended = up.as_mut(), if up_end.is_none() => up_end = Some(ended),
            ended = down.as_mut(), if down_end.is_none() => down_end = Some(ended),
        }
        // `up` reads the client and writes the server; `down` the reverse.
        match (&up_end, &down_end) {
            (Some(Err(Failed::Reader)), _) => return Some(Peer::Client),
            (_, Some(Err(Failed::Reader))) => return Some(Peer::Server),
            (Some(Err(Failed::Writer)), Some(_)) => return Some(Peer::Server),
            (Some(_), Some(Err(Failed::Writer))) => return Some(Peer::Client),
            (Some(Ok(())), Some(Ok(()))) => return None,
            _ => {}
        }
    }
}

/// Which peer failed.
#[derive(Debug)]
enum Peer {
    Client,
    Server,
}

/// One direction's counters.
#[derive(Clone, Copy)]
struct Direction<'a> {
    upstream: bool,
    count: &'a AtomicU64,
}

/// Make the coming close send a reset, so that the other peer learns the
/// connection broke instead of seeing a clean end of stream.
fn reset_on_close(stream: &TcpStream) {
    let _ = SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

/// Wait until `stream` has sent every byte written to it: a reset discards
/// the bytes still queued in the kernel, while those already sent stay
/// readable by the peer before it sees the reset. Bounded by the caller's
/// idle timeout (a peer that does not read keeps them unsent).
async fn sent(stream: &TcpStream) {
    #[cfg(target_os = "linux")]
    {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        use tokio::io::Interest;
        // Writable now means "nothing left unsent" (TCP_NOTSENT_LOWAT).
        if SockRef::from(stream).set_tcp_notsent_lowat(1).is_err() {
            return;
        }
        loop {
            // Forget the cached readiness first, so that no wake-up between
            // the check and the wait is lost.
            let _ = stream.try_io(Interest::WRITABLE, || {
                Err::<(), _>(io::Error::from(io::ErrorKind::WouldBlock))
            });
            let mut fds = [PollFd::new(stream, PollFlags::OUT)];
            let now = Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            match poll(&mut fds, Some(&now)) {
                Ok(0) => {}
                _ => return,
            }
            if stream.writable().await.is_err() {
                return;
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = stream;
}

async fn pump(
    from: &TcpStream,
    to: &TcpStream,
    dir: Direction<'_>,
    mode: Forwarding,
    tap: Option<&dyn Tap>,
    activity: Activity<'_>,
    parked: &AtomicBool,
) -> Result<(), Failed> {
    let mut tapping = tap.is_some();
    let mut bulk = Bulk::default();
    // Empty (no allocation) while the receiving peer keeps up.
    let mut own: Vec<u8> = Vec::new();
    loop {
        let splice_now = !tapping
            && match mode {
                Forwarding::Copy => false,
                Forwarding::Splice => true,
                Forwarding::Auto => bulk.is_bulk(),
            };
        #[cfg(target_os = "linux")]
        if splice_now && let Some(pipe) = splice::Pipe::new() {
            drop(own);
            return splice::pump(from, to, &pipe, dir.count, &activity).await;
        }
        #[cfg(not(target_os = "linux"))]
        let _ = splice_now;
        // Holding no byte (the last write finished, `own` is empty): a
        // connection may move while this waits, unless a tap still wants
        // the bytes.
        parked.store(!tapping, Ordering::Relaxed);
        // The socket's one read-waker slot, not `readable()`'s list of
        // waiters and its lock: only this direction waits to read `from`
        // (the other one writes to it), so the slot is never contended.
        let readable = std::future::poll_fn(|cx| from.poll_read_ready(cx)).await;
        parked.store(false, Ordering::Relaxed);
        readable.map_err(|_| Failed::Reader)?;
        if own.capacity() > 0 {
            // The receiving peer lags: read into this direction's own
            // buffer until the sender is no longer ahead either.
            match read_draining(from, &mut own).map_err(|_| Failed::Reader)? {
                Read::Eof => {
                    half_close(to);
                    return Ok(());
                }
                Read::Empty => {}
                Read::Bytes { n, drained } => {
                    if tapping && let Some(tap) = tap {
                        tapping = tap.feed(dir.upstream, &own);
                    }
                    write_all(to, &own).await.map_err(|_| Failed::Writer)?;
                    own.clear();
                    if drained {
                        own = Vec::new();
                    }
                    bulk.saw(n);
                    dir.count.fetch_add(n as u64, Ordering::Relaxed);
                    activity.touch();
                }
            }
            continue;
        }
        // Read into this thread's scratch buffer and write at once, with no
        // await between: only when `to` does not take it all does this
        // direction get a buffer of its own.
        let step = SCRATCH.with_borrow_mut(|buf| {
            buf.clear();
            buf.reserve_exact(BUFFER_SIZE);
            match read_draining(from, buf).map_err(|_| Failed::Reader)? {
                Read::Eof => Ok(Step::Eof),
                Read::Empty => Ok(Step::Nothing),
                Read::Bytes { n, .. } => {
                    if tapping && let Some(tap) = tap {
                        tapping = tap.feed(dir.upstream, buf);
                    }
                    let taken = write_now(to, buf).map_err(|_| Failed::Writer)?;
                    if let Some(rest) = buf.get(taken..).filter(|rest| !rest.is_empty()) {
                        own.reserve_exact(BUFFER_SIZE);
                        own.extend_from_slice(rest);
                    }
                    Ok(Step::Moved(n))
                }
            }
        })?;
        match step {
            Step::Eof => {
                half_close(to);
                return Ok(());
            }
            Step::Nothing => {}
            Step::Moved(n) => {
                if !own.is_empty() {
                    write_all(to, &own).await.map_err(|_| Failed::Writer)?;
                    own.clear();
                }
                bulk.saw(n);
                dir.count.fetch_add(n as u64, Ordering::Relaxed);
                activity.touch();
            }
        }
    }
}

/// What `forwarding = "auto"` watches in one direction: the bytes that
/// came in large reads (at least [`LARGE_READ`], more than a full TLS
/// record: the sender is ahead, as in a download). Once they reach
/// [`AUTO_SPLICE_AFTER`], the direction is bulk and switches to splice. A
/// long-lived connection of small request/response exchanges never does,
/// however many bytes it carries: for small messages splice makes as many
/// calls as recv/send, each dearer.
#[derive(Debug, Default)]
struct Bulk {
    in_large_reads: u64,
}

impl Bulk {
    fn saw(&mut self, read: usize) {
        if read >= LARGE_READ {
            self.in_large_reads += read as u64;
        }
    }

    fn is_bulk(&self) -> bool {
        self.in_large_reads >= AUTO_SPLICE_AFTER
    }
}

/// A read this large means the sender is ahead of the copy.
const LARGE_READ: usize = 16 * 1024;

thread_local! {
    /// The copy buffer of every connection this thread runs: a connection
    /// uses it only between a read and the write that follows without
    /// waiting, so one per thread serves them all.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// What one wake-up of a direction did.
enum Step {
    /// The peer sent FIN.
    Eof,
    /// A spurious wake-up: nothing read.
    Nothing,
    /// This many bytes read (what `to` did not take is in the
    /// direction's own buffer).
    Moved(usize),
}

/// Write as much of `data` as `to` takes without waiting; how much it took.
fn write_now(to: &TcpStream, data: &[u8]) -> io::Result<usize> {
    let mut taken = 0;
    while let Some(rest) = data.get(taken..).filter(|rest| !rest.is_empty()) {
        match to.try_write(rest) {
            Ok(n) => taken += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok(taken)
}

/// What one read from a socket gave.
enum Read {
    /// The peer sent FIN.
    Eof,
    /// `n` bytes; `drained` when they did not fill the buffer's free space,
    /// so the socket had nothing more at that moment.
    Bytes { n: usize, drained: bool },
    /// Nothing to read after all (a spurious wake-up).
    Empty,
}

/// Read once into `buf`'s free space. A read that does not fill it shows
/// that the socket's receive queue is empty, so the cached readiness is
/// cleared at once, as tokio's own `poll_read` does: the next `readable()`
/// waits for new bytes instead of returning at once for a `recvfrom` that
/// would only say `EAGAIN` (one system call saved per message). The
/// readiness is cleared against the state seen *before* the read, so bytes
/// that arrive after it still wake the next wait.
fn read_draining(from: &TcpStream, buf: &mut Vec<u8>) -> io::Result<Read> {
    let spare = buf.capacity() - buf.len();
    let mut got = None;
    let read = from.try_io(tokio::io::Interest::READABLE, || {
        let n = from.try_read_buf(buf)?;
        got = Some(n);
        if n > 0 && n < spare {
            // Bytes read, and none left: clear the readiness.
            Err(io::Error::from(io::ErrorKind::WouldBlock))
        } else {
            Ok(())
        }
    });
    match (got, read) {
        (Some(0), _) => Ok(Read::Eof),
        (Some(n), Ok(())) => Ok(Read::Bytes { n, drained: false }),
        (Some(n), Err(_)) => Ok(Read::Bytes { n, drained: true }),
        (None, Err(e)) if e.kind() == io::ErrorKind::WouldBlock => Ok(Read::Empty),
        (None, Err(e)) => Err(e),
        (None, Ok(())) => Ok(Read::Empty),
    }
}

/// The caller's wish to move the connection, and whether each direction
/// is parked holding nothing.
struct Moving<'a> {
    wanted: &'a (dyn Fn() -> bool + Sync),
    parked: &'a [AtomicBool; 2],
}

impl Moving<'_> {
    fn quiet(&self) -> bool {
        self.parked.iter().all(|p| p.load(Ordering::Relaxed))
    }
}

/// Return [`End::IdleTimeout`] once no byte has passed either way for
/// `timeout`, or [`End::Moving`] once `moving` wants a move and both
/// directions are quiet. On the way, once the connection has lasted
/// [`KEEPALIVE_AFTER`], set `keepalive`'s probes on its socket: most
/// connections end sooner, and they are spared the four system calls (the
/// probes only matter after a long silence).
async fn idle(
    timeout: Option<Duration>,
    progress: &Progress,
    mut keepalive: Option<(&TcpStream, Duration)>,
    moving: Option<Moving<'_>>,
) -> End {
    let epoch = progress.epoch;
    let keepalive_at = epoch + KEEPALIVE_AFTER;
    // The first look at `moving` once the connection has lasted; then, while
    // no move is wanted, less and less often (an idle connection costs a
    // timer wake-up per minute at most).
    let mut move_every = MOVE_FIRST;
    let mut move_retry = MOVE_RETRY;
    let mut move_at = moving.as_ref().map(|_| epoch + MOVE_FIRST);
    loop {
        let idle_at = timeout
            .map(|t| epoch + Duration::from_millis(progress.last.load(Ordering::Relaxed)) + t);
        let now = Instant::now();
        if idle_at.is_some_and(|at| now >= at) {
            return End::IdleTimeout;
        }
        if let Some((socket, probes_after)) = keepalive
            && now >= keepalive_at
        {
            passthru_net::dial::set_keepalive(socket, probes_after);
            progress.keepalive_set.store(true, Ordering::Relaxed);
            keepalive = None;
            continue;
        }
        if let (Some(at), Some(moving)) = (move_at, &moving)
            && now >= at
        {
            if !(moving.wanted)() {
                move_every = (move_every * 4).min(MOVE_LAST);
                move_at = Some(now + move_every);
            } else if moving.quiet() {
                return End::Moving;
            } else {
                // Bytes in flight: look again shortly, then less often (a
                // direction that splices or lags is never quiet).
                move_at = Some(now + move_retry);
                move_retry = (move_retry * 2).min(MOVE_LAST);
            }
            continue;
        }
        let keepalive_at = keepalive.map(|_| keepalive_at);
        let Some(wake) = [idle_at, keepalive_at, move_at].into_iter().flatten().min() else {
            return std::future::pending().await;
        };
        sleep_until(wake).await;
    }
}

/// When a forwarded connection is first asked whether it should move to a
/// less busy thread: far longer than a short connection (a request, a
/// reconnect) lasts, short next to a keep-alive client's.
pub const MOVE_FIRST: Duration = Duration::from_millis(250);

/// The longest time between two looks at moving.
const MOVE_LAST: Duration = Duration::from_secs(64);

/// How soon to look again, at first, when a move is wanted but bytes are
/// in flight.
const MOVE_RETRY: Duration = Duration::from_millis(5);

/// How long a forwarded connection lasts before its server socket gets
/// keepalive probes.
pub const KEEPALIVE_AFTER: Duration = Duration::from_secs(1);

/// Longest wait for a live peer to take the bytes passthru already wrote
/// to it before the reset is passed on (also bounded by `idle_timeout`).
pub const SENT_WAIT: Duration = Duration::from_secs(10);

/// The scratch buffer per thread: large enough that bulk transfer is not
/// bound by system calls (0.5 CPU-s per GiB relayed, against 1.0-1.4 at
/// 8 KiB).
const BUFFER_SIZE: usize = 64 * 1024;

/// With `forwarding = "auto"`, a direction switches to splice after this
/// many bytes in large reads: bulk transfers, not request/response
/// exchanges (see [`Bulk`]).
pub const AUTO_SPLICE_AFTER: u64 = 4 * 1024 * 1024;

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;
    use tokio::time::sleep;

    use super::*;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let near = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (far, _) = listener.accept().await.unwrap();
        (near, far)
    }

    #[test]
    fn auto_switches_on_bulk_reads_not_on_many_small_ones() {
        let mut chatty = Bulk::default();
        // 100 MB of 300-byte messages: a long-lived agent connection.
        for _ in 0..350_000 {
            chatty.saw(300);
        }
        assert!(!chatty.is_bulk());
        let mut download = Bulk::default();
        for _ in 0..63 {
            download.saw(BUFFER_SIZE);
        }
        assert!(!download.is_bulk(), "just under 4 MiB");
        download.saw(BUFFER_SIZE);
        assert!(download.is_bulk());
        // Small reads in between do not reset it.
        let mut mixed = Bulk::default();
        for _ in 0..AUTO_SPLICE_AFTER / LARGE_READ as u64 {
            assert!(!mixed.is_bulk());
            mixed.saw(LARGE_READ);
            mixed.saw(100);
        }
        assert!(mixed.is_bulk());
    }

    #[tokio::test(start_paused = true)]
    async fn the_server_socket_gets_keepalive_once_the_connection_lasts() {
        let (client_far, client) = pair().await;
        let (server, server_far) = pair().await;
        let (counters, stop) = (Counters::default(), CancellationToken::new());
        let probes_after = Duration::from_secs(42);
        let progress = Progress::new();
        let forwarding = forward_with(
            &client,
            &server,
            &progress,
            Some(probes_after),
            None,
            Forwarding::Copy,
            None,
            &counters,
            &stop,
            None,
        );
        let mut forwarding = pin!(forwarding);
        tokio::select! {
            end = &mut forwarding => panic!("ended early: {end:?}"),
            () = sleep(KEEPALIVE_AFTER / 2) => {}
        }
        assert!(!SockRef::from(&server).keepalive().unwrap(), "set too soon");
        tokio::select! {
            end = &mut forwarding => panic!("ended early: {end:?}"),
            () = sleep(KEEPALIVE_AFTER) => {}
        }
        let sock = SockRef::from(&server);
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.tcp_keepalive_time().unwrap(), probes_after);
        assert!(!SockRef::from(&client).keepalive().unwrap());
        drop((client_far, server_far));
        assert_eq!(forwarding.await, End::Closed);
    }

    /// What a connection's copy keeps, for tests that call
    /// [`forward_with`] more than once.
    #[derive(Default)]
    struct State {
        progress: Progress,
        counters: Counters,
        stop: CancellationToken,
    }

    impl State {
        /// Copy mode, no keepalive, no idle timeout.
        async fn copy(
            &self,
            client: &TcpStream,
            server: &TcpStream,
            tap: Option<&dyn Tap>,
            may_move: Option<&(dyn Fn() -> bool + Sync)>,
        ) -> End {
            let State {
                progress,
                counters,
                stop,
            } = self;
            forward_with(
                client,
                server,
                progress,
                None,
                None,
                Forwarding::Copy,
                tap,
                counters,
                stop,
                may_move,
            )
            .await
        }
    }

    /// A connected pair of blocking sockets and a non-blocking one for
    /// tokio (not yet registered anywhere).
    fn std_pair() -> (std::net::TcpStream, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let near = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (far, _) = listener.accept().unwrap();
        near.set_nonblocking(true).unwrap();
        far.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        (near, far)
    }

    fn read_exactly(from: &mut std::net::TcpStream, n: usize) -> Vec<u8> {
        use std::io::Read;
        let mut got = vec![0; n];
        from.read_exact(&mut got).unwrap();
        got
    }

    #[test]
    fn a_moved_connection_goes_on_on_another_runtime_with_no_byte_lost() {
        use std::io::{Read, Write};
        let runtime = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        };
        let (here, there) = (runtime(), runtime());
        let (client, mut client_far) = std_pair();
        let (server, mut server_far) = std_pair();
        let state = State::default();
        // On the first runtime: one exchange, then the wish to move.
        client_far.write_all(b"hello").unwrap();
        let (client, server, end) = here.block_on(async {
            let client = TcpStream::from_std(client).unwrap();
            let server = TcpStream::from_std(server).unwrap();
            let end = state.copy(&client, &server, None, Some(&|| true)).await;
            (client, server, end)
        });
        assert_eq!(end, End::Moving);
        assert!(state.progress.epoch.elapsed() >= MOVE_FIRST);
        assert_eq!(read_exactly(&mut server_far, 5), b"hello");
        // Bytes that arrive while nothing forwards wait in the sockets.
        client_far.write_all(b"sent during the move").unwrap();
        let (client, server) = (client.into_std().unwrap(), server.into_std().unwrap());
        let forwarding = std::thread::spawn(move || {
            there.block_on(async {
                let client = TcpStream::from_std(client).unwrap();
                let server = TcpStream::from_std(server).unwrap();
                let end = state.copy(&client, &server, None, None).await;
                (end, state.counters)
            })
        });
        assert_eq!(read_exactly(&mut server_far, 20), b"sent during the move");
        server_far.write_all(b"answer").unwrap();
        assert_eq!(read_exactly(&mut client_far, 6), b"answer");
        drop(client_far);
        let mut rest = Vec::new();
        server_far.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "the client's FIN is passed on");
        drop(server_far);
        let (end, counters) = forwarding.join().unwrap();
        assert_eq!(end, End::Closed);
        // Counted on both runtimes.
        assert_eq!(counters.upstream.load(Ordering::Relaxed), 25);
        assert_eq!(counters.downstream.load(Ordering::Relaxed), 6);
    }

    /// A tap that wants every byte, for ever.
    struct Watching;

    impl Tap for Watching {
        fn feed(&self, _: bool, _: &[u8]) -> bool {
            true
        }
    }

    #[tokio::test(start_paused = true)]
    async fn no_move_while_a_tap_still_watches_or_none_is_wanted() {
        let (_client_far, client) = pair().await;
        let (server, _server_far) = pair().await;
        let state = State::default();
        let watched = state.copy(&client, &server, Some(&Watching), Some(&|| true));
        tokio::select! {
            end = watched => panic!("moved while tapped: {end:?}"),
            () = sleep(MOVE_LAST * 2) => {}
        }
        let stays = state.copy(&client, &server, None, Some(&|| false));
        tokio::select! {
            end = stays => panic!("moved unasked: {end:?}"),
            () = sleep(MOVE_LAST * 2) => {}
        }
    }
}
