//! Byte-level helpers shared by the components: a stream wrapper that
//! replays bytes already read, counts bytes both ways, keeps the first bytes
//! received and the first error of the stream beneath; bounded line reads;
//! and the two-way copy of a tunnel.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use passthru_net::Prefixed;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::observe::Failure;

/// What a [`Wire`] saw.
#[derive(Debug, Default)]
pub struct WireStats {
    read: AtomicU64,
    written: AtomicU64,
    first_bytes: Mutex<Vec<u8>>,
    failure: Mutex<Option<Failure>>,
}

impl WireStats {
    /// Bytes read so far (replayed prefix included).
    pub fn read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// The first bytes read (at most 512).
    pub fn first_bytes(&self) -> Vec<u8> {
        self.first_bytes
            .lock()
            .map(|b| b.clone())
            .unwrap_or_default()
    }

    /// The first error of the stream beneath, if any.
    pub fn failure(&self) -> Option<Failure> {
        self.failure.lock().ok().and_then(|f| f.clone())
    }

    fn note_read(&self, bytes: &[u8]) {
        self.read.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        if let Ok(mut first) = self.first_bytes.lock() {
            let room = FIRST_BYTES.saturating_sub(first.len());
            first.extend_from_slice(&bytes[..room.min(bytes.len())]);
        }
    }

    fn note_error(&self, error: &io::Error) {
        if let Ok(mut slot) = self.failure.lock() {
            slot.get_or_insert_with(|| Failure::from_io(error));
        }
    }
}

/// A stream that first replays `prefix`, then reads `inner`, recording into
/// shared [`WireStats`].
#[derive(Debug)]
pub struct Wire<S> {
    inner: Prefixed<S>,
    stats: std::sync::Arc<WireStats>,
}

impl<S> Wire<S> {
    /// Wrap `inner`; `prefix` holds bytes already read from it.
    pub fn new(inner: S, prefix: Bytes, stats: std::sync::Arc<WireStats>) -> Wire<S> {
        Wire {
            inner: Prefixed::new(prefix, inner),
            stats,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Wire<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        match &polled {
            Poll::Ready(Ok(())) => {
                let fresh = &buf.filled()[before..];
                self.stats.note_read(fresh);
            }
            Poll::Ready(Err(e)) => self.stats.note_error(e),
            Poll::Pending => {}
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Wire<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        match &polled {
            Poll::Ready(Ok(n)) => {
                self.stats.written.fetch_add(*n as u64, Ordering::Relaxed);
            }
            Poll::Ready(Err(e)) => self.stats.note_error(e),
            Poll::Pending => {}
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Read one `\n`-terminated line (without the terminator) within `limit`;
/// `Ok(None)` on a clean end of stream before any byte.
pub async fn read_line<S: AsyncRead + Unpin>(
    stream: &mut S,
    limit: Duration,
) -> io::Result<Option<String>> {
    let read = async {
        let mut line = Vec::new();
        loop {
            let mut byte = [0u8; 1];
            if stream.read(&mut byte).await? == 0 {
                if line.is_empty() {
                    return Ok(None);
                }
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            if byte[0] == b'\n' {
                break;
            }
            if line.len() >= MAX_LINE {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "line longer than 1 KiB",
                ));
            }
            line.push(byte[0]);
        }
        let text = String::from_utf8_lossy(&line);
        Ok(Some(text.trim_end_matches('\r').to_string()))
    };
    tokio::time::timeout(limit, read)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer in time"))?
}

/// Write `line` and `\n`, flushed.
pub async fn write_line<S: AsyncWrite + Unpin>(stream: &mut S, line: &str) -> io::Result<()> {
    stream.write_all(format!("{line}\n").as_bytes()).await?;
    stream.flush().await
}

/// Copy both ways until both directions ended, at most `limit`. Returns the
/// bytes (a → b, b → a); an error or the limit ends the copy.
pub async fn tunnel<A, B>(a: &mut A, b: &mut B, limit: Duration) -> Result<(u64, u64), Failure>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::time::timeout(limit, tokio::io::copy_bidirectional(a, b)).await {
        Ok(Ok(counts)) => Ok(counts),
        Ok(Err(e)) => Err(Failure::from_io(&e)),
        Err(_) => Err(Failure::plain(
            crate::observe::FailureKind::Timeout,
            "tunnel still open at the end of the run",
        )),
    }
}

/// Open TCP to the next hop within `limit`; when it takes longer, the
/// failure is a timeout that says `timed_out`.
pub async fn connect_within(
    addr: impl tokio::net::ToSocketAddrs,
    limit: Duration,
    timed_out: &'static str,
) -> Result<TcpStream, Failure> {
    match tokio::time::timeout(limit, TcpStream::connect(addr)).await {
        Ok(Ok(socket)) => Ok(socket),
        Ok(Err(e)) => Err(Failure::from_io(&e)),
        Err(_) => Err(Failure::plain(
            crate::observe::FailureKind::Timeout,
            timed_out,
        )),
    }
}

/// Bind `addr` for `component` (the gateway, the backend, …); the error is
/// one sentence naming both, from [`bind_error`].
pub async fn listen(component: &str, addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| bind_error(component, addr, &e))
}

/// `component` could not listen on `addr`: one sentence naming both, and
/// saying so plainly when the port is already taken.
pub fn bind_error(component: &str, addr: SocketAddr, e: &io::Error) -> io::Error {
    let text = if e.kind() == io::ErrorKind::AddrInUse {
        format!(
            "port {} is already in use, so the {component} cannot listen on {addr}",
            addr.port()
        )
    } else {
        format!("the {component} cannot listen on {addr}: {e}")
    };
    io::Error::new(e.kind(), text)
}

/// Accept connections on `listener` until `stop` is cancelled; each one is
/// handled by `handler` in its own task, which `stop` also ends.
pub fn accept_each<F, Fut>(listener: TcpListener, stop: CancellationToken, handler: F)
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = stop.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            let Ok((stream, _peer)) = accepted else {
                continue;
            };
            let task = handler(stream);
            let stop = stop.clone();
            tokio::spawn(async move {
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = task => {}
                }
            });
        }
    });
}

/// Printable text of `bytes` when they look like a plaintext line (for a
/// gateway's "Authentication Required" arriving where TLS was expected).
pub fn plaintext_line(bytes: &[u8]) -> Option<String> {
    let end = bytes
        .iter()
        .position(|b| *b == b'\n')
        .unwrap_or(bytes.len());
    let line = &bytes[..end];
    let printable =
        !line.is_empty() && line.iter().all(|b| (0x20..0x7f).contains(b) || *b == b'\r');
    printable.then(|| String::from_utf8_lossy(line).trim_end().to_string())
}

const FIRST_BYTES: usize = 512;
const MAX_LINE: usize = 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wire_replays_the_prefix_then_counts_reads() {
        let (mut far, near) = tokio::io::duplex(64);
        let stats = std::sync::Arc::new(WireStats::default());
        let mut wire = Wire::new(near, Bytes::from_static(b"ab"), stats.clone());
        far.write_all(b"c\n").await.unwrap();
        let line = read_line(&mut wire, Duration::from_secs(5)).await.unwrap();
        assert_eq!(line.as_deref(), Some("abc"));
        assert_eq!(stats.read(), 4);
        assert_eq!(stats.first_bytes(), b"abc\n");
    }

    #[test]
    fn plaintext_line_recognises_text_not_tls() {
        assert_eq!(
            plaintext_line(b"Authentication Required\r\n").as_deref(),
            Some("Authentication Required")
        );
        assert_eq!(plaintext_line(&[0x16, 0x03, 0x03, 0x00]), None);
    }
}
