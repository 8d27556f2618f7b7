//! Dialling a server: resolve its name at connect time, connect
//! within `connect_timeout`, set the socket options, and move on to the
//! next server when one fails.
//!
//! Name resolution (`getaddrinfo`, which blocks) runs on the blocking pool,
//! at most [`MAX_RESOLVING`] at once in the process: a slow resolver cannot
//! grow the pool toward its 512 threads, since the thread of a lookup that
//! outlives its connect timeout keeps its place until it returns. An answer
//! is reused for [`REUSE_ANSWER`] (names are resolved at connect time: a
//! DNS change shows within seconds), which also spares the resolver a
//! lookup per connection under load.

use std::collections::HashMap;
use std::io::{self, IoSlice};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use socket2::{Domain, Protocol, SockRef, Socket, TcpKeepalive, Type};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::{Instant, timeout_at};

use crate::addr::ServerAddr;

/// Why one server could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// No answer within `connect_timeout`.
    #[error("{server}: no connection within {}", humantime::format_duration(*.timeout))]
    Timeout {
        /// The server as configured.
        server: ServerAddr,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// The name did not resolve.
    #[error("{server}: name resolution failed: {source}")]
    Resolve {
        /// The server as configured.
        server: ServerAddr,
        /// The resolver's error.
        source: io::Error,
    },
    /// The connection was refused or failed.
    #[error("{server} ({addr}): {source}")]
    Connect {
        /// The server as configured.
        server: ServerAddr,
        /// The address tried last.
        addr: SocketAddr,
        /// The socket error.
        source: io::Error,
    },
}

/// Connect to one server within `connect_timeout` (resolution included),
/// trying each resolved address in turn. Sets `TCP_NODELAY` and keepalive.
pub async fn dial(
    server: &ServerAddr,
    connect_timeout: Duration,
    keepalive: Option<Duration>,
) -> Result<TcpStream, DialError> {
    dial_until(
        server,
        Instant::now() + connect_timeout,
        connect_timeout,
        keepalive,
    )
    .await
}

/// Like [`dial`], with an absolute deadline (`connect_timeout` is only
/// named in the error).
pub async fn dial_until(
    server: &ServerAddr,
    deadline: Instant,
    connect_timeout: Duration,
    keepalive: Option<Duration>,
) -> Result<TcpStream, DialError> {
    let (stream, _) = dial_sending_until(server, deadline, connect_timeout, &[]).await?;
    set_options(&stream, keepalive);
    Ok(stream)
}

/// Connect to one server within `connect_timeout` (resolution included)
/// and hand it `first` in the same step: the bytes go out with the first
/// system call after `connect(2)`, without waiting for the event loop to
/// report the socket writable (on loopback and in the same data centre
/// the connection is usually up by then). Returns the stream and how many
/// bytes of `first` it took; the caller writes the rest. Sets
/// `TCP_NODELAY` only: keepalive, four more system calls, is for
/// connections that last (see `set_keepalive`).
pub async fn dial_sending(
    server: &ServerAddr,
    connect_timeout: Duration,
    first: &[&[u8]],
) -> Result<(TcpStream, usize), DialError> {
    dial_sending_until(
        server,
        Instant::now() + connect_timeout,
        connect_timeout,
        first,
    )
    .await
}

async fn dial_sending_until(
    server: &ServerAddr,
    deadline: Instant,
    connect_timeout: Duration,
    first: &[&[u8]],
) -> Result<(TcpStream, usize), DialError> {
    let expired = || DialError::Timeout {
        server: server.clone(),
        timeout: connect_timeout,
    };
    let addrs: Vec<SocketAddr> = match server.host.parse() {
        Ok(ip) => vec![SocketAddr::new(ip, server.port)],
        Err(_) => timeout_at(deadline, resolve(&server.host, server.port))
            .await
            .map_err(|_| expired())?
            .map_err(|source| DialError::Resolve {
                server: server.clone(),
                source,
            })?,
    };
    let first: Vec<IoSlice<'_>> = first
        .iter()
        .filter(|part| !part.is_empty())
        .map(|part| IoSlice::new(part))
        .collect();
    let mut last = None;
    for addr in addrs {
        match timeout_at(deadline, connect_sending(addr, &first)).await {
            Err(_) => return Err(expired()),
            Ok(Ok(done)) => return Ok(done),
            Ok(Err(source)) => last = Some((addr, source)),
        }
    }
    Err(match last {
        Some((addr, source)) => DialError::Connect {
            server: server.clone(),
            addr,
            source,
        },
        None => DialError::Resolve {
            server: server.clone(),
            source: io::Error::new(io::ErrorKind::NotFound, "no addresses"),
        },
    })
}

/// A non-blocking connect to `addr`, then one `sendmsg(2)` of `first` right
/// away. Bytes taken prove the connection up; otherwise (nothing to send,
/// or not connected yet) wait until the socket is writable and check its
/// error, as a plain connect does.
async fn connect_sending(
    addr: SocketAddr,
    first: &[IoSlice<'_>],
) -> io::Result<(TcpStream, usize)> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )?;
    let _ = socket.set_tcp_nodelay(true);
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INPROGRESS.raw_os_error()) => {}
        Err(e) => return Err(e),
    }
    let sent = if first.is_empty() {
        0
    } else {
        // MSG_NOSIGNAL: a server that already closed is an error here,
        // never a SIGPIPE.
        let flags = rustix::net::SendFlags::NOSIGNAL.bits() as i32;
        match socket.send_vectored_with_flags(first, flags) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) => return Err(e),
        }
    };
    let stream = TcpStream::from_std(std::net::TcpStream::from(socket))?;
    if sent == 0 {
        stream.writable().await?;
        if let Some(e) = stream.take_error()? {
            return Err(e);
        }
    }
    Ok((stream, sent))
}

/// The addresses of `host:port` (at most [`MAX_ADDRESSES`]): a recent
/// answer, or a lookup on the blocking pool within the process-wide bound.
pub async fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    let key = (host.to_owned(), port);
    if let Some(addrs) = answers().recent(&key) {
        return Ok(addrs);
    }
    let permit = Arc::clone(resolving())
        .acquire_owned()
        .await
        .map_err(|_| io::Error::other("resolver closed"))?;
    // Another connection may have resolved it while this one waited.
    if let Some(addrs) = answers().recent(&key) {
        return Ok(addrs);
    }
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let addrs: Vec<SocketAddr> = key.to_socket_addrs()?.take(MAX_ADDRESSES).collect();
        answers().keep(key, addrs.clone());
        Ok(addrs)
    })
    .await
    .map_err(io::Error::other)?
}

fn resolving() -> &'static Arc<Semaphore> {
    static RESOLVING: OnceLock<Arc<Semaphore>> = OnceLock::new();
    RESOLVING.get_or_init(|| Arc::new(Semaphore::new(MAX_RESOLVING)))
}

fn answers() -> &'static Answers {
    static ANSWERS: OnceLock<Answers> = OnceLock::new();
    ANSWERS.get_or_init(Answers::default)
}

/// Recent answers, by name and port; at most [`MAX_ANSWERS`] kept.
#[derive(Default)]
struct Answers {
    by_name: Mutex<HashMap<(String, u16), Answer>>,
}

/// When a name was resolved, and to what.
type Answer = (Instant, Vec<SocketAddr>);

impl Answers {
    fn recent(&self, key: &(String, u16)) -> Option<Vec<SocketAddr>> {
        let by_name = self.by_name.lock().unwrap_or_else(PoisonError::into_inner);
        let (at, addrs) = by_name.get(key)?;
        (at.elapsed() < REUSE_ANSWER).then(|| addrs.clone())
    }

    fn keep(&self, key: (String, u16), addrs: Vec<SocketAddr>) {
        let mut by_name = self.by_name.lock().unwrap_or_else(PoisonError::into_inner);
        if by_name.len() >= MAX_ANSWERS {
            by_name.retain(|_, (at, _)| at.elapsed() < REUSE_ANSWER);
            if by_name.len() >= MAX_ANSWERS {
                by_name.clear();
            }
        }
        by_name.insert(key, (Instant::now(), addrs));
    }
}

/// Name lookups running at once, in the whole process.
pub const MAX_RESOLVING: usize = 16;
/// How long an answer is reused.
pub const REUSE_ANSWER: Duration = Duration::from_secs(2);
/// Names whose answer is kept.
const MAX_ANSWERS: usize = 1024;

/// `TCP_NODELAY` (a relay must not add Nagle delays to the handshake) and
/// keepalive probes after `keepalive` idle, on a connected socket or on a
/// listening one (Linux copies both to every socket it accepts, which then
/// costs no system call). Failures are harmless and ignored.
pub fn set_options(socket: &impl std::os::fd::AsFd, keepalive: Option<Duration>) {
    let _ = SockRef::from(socket).set_tcp_nodelay(true);
    if let Some(idle) = keepalive {
        set_keepalive(socket, idle);
    }
}

/// Keepalive probes after `idle` without traffic, every 15 s (at most
/// `idle`), 4 unanswered ones ending the connection. Failures are harmless
/// and ignored.
pub fn set_keepalive(socket: &impl std::os::fd::AsFd, idle: Duration) {
    let ka = TcpKeepalive::new()
        .with_time(idle)
        .with_interval(KEEPALIVE_INTERVAL.min(idle))
        .with_retries(KEEPALIVE_RETRIES);
    let _ = SockRef::from(socket).set_tcp_keepalive(&ka);
}

/// Addresses of one name tried at most.
pub const MAX_ADDRESSES: usize = 16;
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
const KEEPALIVE_RETRIES: u32 = 4;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_bytes_leave_with_the_connect() {
        use tokio::io::AsyncReadExt as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = ServerAddr {
            host: "127.0.0.1".into(),
            port,
        };
        let (stream, sent) =
            dial_sending(&server, Duration::from_secs(5), &[b"PROXY ", b"", b"hello"])
                .await
                .unwrap();
        assert_eq!(sent, 11, "everything taken at once on loopback");
        assert!(SockRef::from(&stream).tcp_nodelay().unwrap());
        assert!(
            !SockRef::from(&stream).keepalive().unwrap(),
            "keepalive is for later"
        );
        let (mut accepted, _) = listener.accept().await.unwrap();
        drop(stream);
        let mut got = Vec::new();
        accepted.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"PROXY hello");
        // Nothing to send: a plain connect.
        let (_stream, sent) = dial_sending(&server, Duration::from_secs(5), &[])
            .await
            .unwrap();
        assert_eq!(sent, 0);
    }

    #[tokio::test]
    async fn a_refused_connect_with_bytes_to_send_is_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let server = ServerAddr {
            host: "127.0.0.1".into(),
            port: addr.port(),
        };
        match dial_sending(&server, Duration::from_secs(5), &[b"hello"]).await {
            Err(DialError::Connect {
                addr: tried,
                source,
                ..
            }) => {
                assert_eq!(tried, addr);
                assert_eq!(source.kind(), io::ErrorKind::ConnectionRefused);
            }
            other => panic!("expected a connect error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_name_resolves_and_its_answer_is_reused() {
        let addrs = resolve("localhost", 443).await.unwrap();
        assert!(!addrs.is_empty());
        assert!(
            addrs
                .iter()
                .all(|a| a.port() == 443 && a.ip().is_loopback())
        );
        let key = ("localhost".to_owned(), 443);
        assert_eq!(answers().recent(&key), Some(addrs));
    }

    #[tokio::test]
    async fn lookups_beyond_the_bound_wait_for_a_place() {
        // Hold every place: a lookup of a name not yet known waits.
        let held = Arc::clone(resolving())
            .acquire_many_owned(MAX_RESOLVING as u32)
            .await
            .unwrap();
        let waiting = tokio::time::timeout(
            Duration::from_millis(50),
            resolve("passthru-not-cached.localhost", 443),
        )
        .await;
        assert!(waiting.is_err(), "the lookup ran beyond the bound");
        drop(held);
    }
}
