//! The data path: copy bytes both ways between client and server until
//! both directions are done. Half-close is propagated (a FIN one way does
//! not cut the other), a reset is propagated as a reset, and `idle_timeout`
//! means no byte in *either* direction for that long.
//!
//! Each direction copies through a 64 KiB buffer taken only while it has
//! data to move (an idle connection holds no copy buffer). On Linux, a
//! direction can instead move bytes with `splice(2)` through a pipe, never
//! through user space: always (`forwarding = "splice"`), or once it has
//! carried [`AUTO_SPLICE_AFTER`] bytes (`"auto"`, so that small exchanges
//! keep the cheaper copy and its two fewer descriptors). While a [`Tap`]
//! still wants the bytes (handshake observation), a direction copies.

use std::io;
use std::net::Shutdown;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use passthru_net::io::write_all;
use socket2::SockRef;
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use crate::config::Forwarding;

#[cfg(target_os = "linux")]
mod splice;

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
    /// Directions that switched to splice.
    pub spliced: AtomicU64,
}

/// Something that wants to see the bytes as they pass (handshake
/// observation). It never changes them.
pub trait Tap: Sync {
    /// Bytes just read in one direction (`upstream`: client → server), before
    /// they are written on. Returns whether the tap wants more.
    fn feed(&self, upstream: bool, bytes: &[u8]) -> bool;
}

/// Copy both ways until both directions are done, the idle timeout
/// expires, or `stop` is cancelled.
pub async fn forward(
    client: &TcpStream,
    server: &TcpStream,
    idle_timeout: Option<Duration>,
    counters: &Counters,
    stop: &CancellationToken,
) -> End {
    forward_with(
        client,
        server,
        idle_timeout,
        Forwarding::Copy,
        None,
        counters,
        stop,
    )
    .await
}

/// [`forward`] with a forwarding mode and an optional tap.
pub async fn forward_with(
    client: &TcpStream,
    server: &TcpStream,
    idle_timeout: Option<Duration>,
    mode: Forwarding,
    tap: Option<&dyn Tap>,
    counters: &Counters,
    stop: &CancellationToken,
) -> End {
    let epoch = Instant::now();
    let last = AtomicU64::new(0);
    let activity = Activity { last: &last, epoch };
    let up = async {
        let dir = Direction {
            upstream: true,
            count: &counters.upstream,
            spliced: &counters.spliced,
        };
        pump(client, server, dir, mode, tap, activity)
            .await
            .map_err(|f| match f {
                Failed::Reader => Peer::Client,
                Failed::Writer => Peer::Server,
            })
    };
    let down = async {
        let dir = Direction {
            upstream: false,
            count: &counters.downstream,
            spliced: &counters.spliced,
        };
        pump(server, client, dir, mode, tap, activity)
            .await
            .map_err(|f| match f {
                Failed::Reader => Peer::Server,
                Failed::Writer => Peer::Client,
            })
    };
    let copy = async {
        match tokio::try_join!(up, down) {
            Ok(_) => End::Closed,
            Err(Peer::Client) => {
                reset_on_close(server);
                End::ClientReset
            }
            Err(Peer::Server) => {
                reset_on_close(client);
                End::ServerReset
            }
        }
    };
    tokio::select! {
        end = copy => end,
        () = idle(idle_timeout, &last, epoch) => End::IdleTimeout,
        () = stop.cancelled() => End::Stopped,
    }
}

/// Which socket of a pump failed.
#[derive(Debug)]
enum Failed {
    Reader,
    Writer,
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
    spliced: &'a AtomicU64,
}

/// The last-activity clock shared by both directions.
#[derive(Clone, Copy)]
struct Activity<'a> {
    last: &'a AtomicU64,
    epoch: Instant,
}

impl Activity<'_> {
    fn touch(&self) {
        self.last
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

/// Make the coming close send a reset, so that the other peer learns the
/// connection broke instead of seeing a clean end of stream.
fn reset_on_close(stream: &TcpStream) {
    let _ = SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

/// Pass the FIN on: no more bytes this way; the other direction goes on.
fn half_close(to: &TcpStream) {
    let _ = SockRef::from(to).shutdown(Shutdown::Write);
}

async fn pump(
    from: &TcpStream,
    to: &TcpStream,
    dir: Direction<'_>,
    mode: Forwarding,
    tap: Option<&dyn Tap>,
    activity: Activity<'_>,
) -> Result<(), Failed> {
    let mut tapping = tap.is_some();
    let mut moved: u64 = 0;
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let splice_now = !tapping
            && match mode {
                Forwarding::Copy => false,
                Forwarding::Splice => true,
                Forwarding::Auto => moved >= AUTO_SPLICE_AFTER,
            };
        #[cfg(target_os = "linux")]
        if splice_now && let Some(pipe) = splice::Pipe::new() {
            dir.spliced.fetch_add(1, Ordering::Relaxed);
            drop(buf);
            return splice::pump(from, to, &pipe, dir.count, &activity).await;
        }
        #[cfg(not(target_os = "linux"))]
        let _ = splice_now;
        from.readable().await.map_err(|_| Failed::Reader)?;
        if buf.capacity() == 0 {
            buf.reserve_exact(BUFFER_SIZE);
        }
        match from.try_read_buf(&mut buf) {
            Ok(0) => {
                half_close(to);
                return Ok(());
            }
            Ok(n) => {
                if tapping && let Some(tap) = tap {
                    tapping = tap.feed(dir.upstream, &buf);
                }
                write_all(to, &buf).await.map_err(|_| Failed::Writer)?;
                buf.clear();
                moved += n as u64;
                dir.count.fetch_add(n as u64, Ordering::Relaxed);
                activity.touch();
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // Drained: give the buffer back while this direction idles.
                buf = Vec::new();
            }
            Err(_) => return Err(Failed::Reader),
        }
    }
}

async fn idle(timeout: Option<Duration>, last: &AtomicU64, epoch: Instant) {
    let Some(timeout) = timeout else {
        return std::future::pending().await;
    };
    loop {
        let at = epoch + Duration::from_millis(last.load(Ordering::Relaxed)) + timeout;
        if Instant::now() >= at {
            return;
        }
        sleep_until(at).await;
    }
}

/// Copy buffer per active direction: large enough that bulk transfer is
/// not bound by system calls (0.5 CPU-s per GiB relayed, against 1.0-1.4 at
/// 8 KiB), and below glibc's mmap threshold, so that taking and returning it
/// for every burst of a keep-alive connection costs no system call.
const BUFFER_SIZE: usize = 64 * 1024;

/// With `forwarding = "auto"`, a direction switches to splice after this
/// many bytes: bulk transfers, not request/response exchanges.
pub const AUTO_SPLICE_AFTER: u64 = 4 * 1024 * 1024;
