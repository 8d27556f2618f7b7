//! The client side of every measurement: a TLS 1.3 connection presenting
//! the agent certificate, and the smallest HTTP/1.1 exchange the backend
//! understands (`GET`, a `Content-Length` answer, keep-alive). Every read
//! and write sits under [`IO_TIMEOUT`].

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::configs::SERVER_NAME;

/// A TLS stream to the backend, possibly through a proxy.
pub type Stream = TlsStream<TcpStream>;

/// Opens TLS connections with the agent identity.
#[derive(Clone)]
pub struct Agent {
    connector: TlsConnector,
    name: ServerName<'static>,
}

impl Agent {
    /// An agent using `config` and sending [`SERVER_NAME`].
    pub fn new(config: Arc<ClientConfig>) -> io::Result<Agent> {
        Ok(Agent {
            connector: TlsConnector::from(config),
            name: ServerName::try_from(SERVER_NAME).map_err(io::Error::other)?,
        })
    }

    /// TCP connect and TLS handshake, within [`IO_TIMEOUT`].
    pub async fn connect(&self, addr: SocketAddr) -> io::Result<Stream> {
        bounded(async {
            let tcp = TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            self.connector.connect(self.name.clone(), tcp).await
        })
        .await
    }
}

/// One `GET /small` on a kept-alive connection; returns once the 64-byte
/// body has arrived. `buf` is reused across calls.
pub async fn small_request(stream: &mut Stream, buf: &mut Vec<u8>) -> io::Result<()> {
    bounded(async {
        stream.write_all(SMALL_REQUEST).await?;
        let (header_len, body_len) = read_header(stream, buf).await?;
        read_body(stream, buf, header_len, body_len).await
    })
    .await
}

/// Download `/bulk.bin` over and over on one connection until `until`,
/// adding the bytes received (headers included) to `counter`.
pub async fn download(stream: &mut Stream, until: Instant, counter: &AtomicU64) -> io::Result<()> {
    let mut buf = Vec::with_capacity(READ_CHUNK);
    while Instant::now() < until {
        bounded(stream.write_all(BULK_REQUEST)).await?;
        let (header_len, body_len) = bounded(read_header(stream, &mut buf)).await?;
        counter.fetch_add(buf.len() as u64, Ordering::Relaxed);
        let mut left = body_len.saturating_sub((buf.len() - header_len) as u64);
        let mut chunk = vec![0u8; READ_CHUNK];
        while left > 0 && Instant::now() < until {
            let n = bounded(stream.read(&mut chunk)).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "bulk body cut short",
                ));
            }
            counter.fetch_add(n as u64, Ordering::Relaxed);
            left = left.saturating_sub(n as u64);
        }
    }
    Ok(())
}

/// Close with `close_notify` and FIN, within [`IO_TIMEOUT`]; errors ignored.
pub async fn close(mut stream: Stream) {
    let _ = timeout(IO_TIMEOUT, stream.shutdown()).await;
}

/// Read until the end of the response header; returns (header length,
/// Content-Length). Bytes after the header stay in `buf`.
async fn read_header(stream: &mut Stream, buf: &mut Vec<u8>) -> io::Result<(usize, u64)> {
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let header = std::str::from_utf8(&buf[..end]).map_err(io::Error::other)?;
            if !header.starts_with("HTTP/1.1 200") {
                let status = header.lines().next().unwrap_or("").to_string();
                return Err(io::Error::other(format!("backend answered {status:?}")));
            }
            let length = header
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse().ok())
                .ok_or_else(|| io::Error::other("answer without Content-Length"))?;
            return Ok((end + 4, length));
        }
        if buf.len() > MAX_HEADER {
            return Err(io::Error::other("response header larger than 16 KiB"));
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed before the response header",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Read the rest of a `body_len`-byte body of which `buf[header_len..]`
/// already arrived.
async fn read_body(
    stream: &mut Stream,
    buf: &[u8],
    header_len: usize,
    body_len: u64,
) -> io::Result<()> {
    let mut have = (buf.len() - header_len) as u64;
    let mut chunk = [0u8; 4096];
    while have < body_len {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "body cut short",
            ));
        }
        have += n as u64;
    }
    Ok(())
}

/// Run `fut` under [`IO_TIMEOUT`], a timeout becoming an I/O error.
async fn bounded<T>(fut: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    timeout(IO_TIMEOUT, fut).await.unwrap_or_else(|_| {
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "no progress within 10s",
        ))
    })
}

/// Bound on any single read, write or handshake.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

const SMALL_REQUEST: &[u8] = b"GET /small HTTP/1.1\r\nHost: gw.example.com\r\n\r\n";
const BULK_REQUEST: &[u8] = b"GET /bulk.bin HTTP/1.1\r\nHost: gw.example.com\r\n\r\n";
const READ_CHUNK: usize = 64 * 1024;
const MAX_HEADER: usize = 16 * 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::configs::BULK_PATH;

    #[test]
    fn bulk_request_names_the_bulk_path() {
        assert!(BULK_REQUEST.starts_with(format!("GET {BULK_PATH} ").as_bytes()));
    }
}
