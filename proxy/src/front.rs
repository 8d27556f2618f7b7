//! The client-facing side before routing: read the ClientHello (keeping
//! every byte), recognise plaintext HTTP and inbound CONNECT, and write
//! passthru's few replies (an alert, the 400, CONNECT answers) followed by
//! a lingering close. Every read sits under the caller's deadline and
//! within a byte bound.

use std::io;
use std::net::Shutdown;
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use socket2::SockRef;
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};
use tracing::debug;

use crate::access_log::AccessRecord;
use crate::alert::{alert_record, find_offload_headers, plaintext_http_reply};
use crate::clienthello::{self, ClientHello};
use crate::config::ExpectProxy;
use crate::forward::write_all;
use crate::proxy_protocol::{self, MAX_V2_LEN, ProxyHeader, Version};
use crate::refusal::{Refusal, Reply};
use crate::sniff::{Sniff, sniff};

/// Why no ClientHello came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HelloError {
    /// Refused for this reason.
    Refused(Refusal),
    /// The client closed (or reset) before a whole hello.
    Closed,
    /// An HTTP CONNECT request starts the buffer (only when asked to look for one).
    ConnectRequest,
}

/// Read and remove the PROXY header at the start of the connection, within
/// the same deadline as the ClientHello and at most [`MAX_V2_LEN`] bytes.
/// Bytes after the header (the ClientHello) stay in `buf`.
pub(crate) async fn read_proxy_header(
    stream: &TcpStream,
    buf: &mut BytesMut,
    deadline: Instant,
    expect: ExpectProxy,
) -> Result<ProxyHeader, HelloError> {
    let mut want = 0;
    loop {
        if !buf.is_empty() && buf.len() >= want {
            match proxy_protocol::parse(buf) {
                Ok(header) => {
                    let allowed = matches!(
                        (expect, header.version),
                        (ExpectProxy::Any, _)
                            | (ExpectProxy::V1, Version::V1)
                            | (ExpectProxy::V2, Version::V2)
                    );
                    if !allowed {
                        debug!(version = ?header.version, "PROXY header of the wrong version for this listener");
                        return Err(HelloError::Refused(Refusal::ProxyHeaderInvalid));
                    }
                    buf.advance(header.len);
                    return Ok(header);
                }
                Err(proxy_protocol::Error::Incomplete { needed }) => want = needed,
                Err(proxy_protocol::Error::Invalid(error)) => {
                    debug!(%error, "invalid or missing PROXY header");
                    return Err(HelloError::Refused(Refusal::ProxyHeaderInvalid));
                }
            }
        }
        match timeout_at(deadline, read_some(stream, buf, MAX_V2_LEN)).await {
            Err(_) => return Err(HelloError::Refused(Refusal::ClientHelloTimeout)),
            // A balancer's TCP check (nothing sent) is not a refusal; half a
            // header is.
            Ok(Ok(0) | Err(_)) if buf.is_empty() => return Err(HelloError::Closed),
            Ok(Ok(0) | Err(_)) => return Err(HelloError::Refused(Refusal::ProxyHeaderInvalid)),
            Ok(Ok(_)) => {}
        }
    }
}

/// Read until `buf` holds a whole ClientHello, within one deadline across
/// all reads and at most `max` bytes. Everything read stays in `buf`;
/// `reads` counts the socket reads that returned bytes.
pub(crate) async fn read_client_hello(
    stream: &TcpStream,
    buf: &mut BytesMut,
    deadline: Instant,
    max: usize,
    accept_connect: bool,
    reads: &mut usize,
) -> Result<ClientHello, HelloError> {
    // Parse again only once at least `want` bytes are in: a peer sending one
    // byte at a time costs one parse per record, not one per byte.
    let mut want = 0;
    loop {
        if !buf.is_empty() && buf.len() >= want {
            match sniff(buf) {
                Sniff::PlaintextHttp if accept_connect && is_connect(buf) => {
                    return Err(HelloError::ConnectRequest);
                }
                Sniff::PlaintextHttp => return Err(HelloError::Refused(Refusal::PlaintextHttp)),
                Sniff::NotTls => return Err(HelloError::Refused(Refusal::NotTls)),
                Sniff::NeedMore => {}
                Sniff::Tls | Sniff::Sslv2 => match clienthello::parse(buf) {
                    Ok(hello) => return Ok(hello),
                    Err(clienthello::Error::Incomplete { needed }) if needed > max => {
                        return Err(HelloError::Refused(Refusal::ClientHelloTooLarge));
                    }
                    Err(clienthello::Error::Incomplete { needed }) => want = needed,
                    Err(clienthello::Error::Invalid(error)) => {
                        debug!(%error, "invalid ClientHello");
                        return Err(HelloError::Refused(Refusal::NotTls));
                    }
                },
            }
        }
        if buf.len() >= max {
            return Err(HelloError::Refused(Refusal::ClientHelloTooLarge));
        }
        match timeout_at(deadline, read_some(stream, buf, max)).await {
            Err(_) => return Err(HelloError::Refused(Refusal::ClientHelloTimeout)),
            Ok(Ok(0) | Err(_)) => return Err(HelloError::Closed),
            Ok(Ok(_)) => *reads += 1,
        }
    }
}

fn is_connect(buf: &[u8]) -> bool {
    buf.starts_with(b"CONNECT ")
}

/// One read into `buf`, never growing it past `max`.
pub(crate) async fn read_some(
    stream: &TcpStream,
    buf: &mut BytesMut,
    max: usize,
) -> io::Result<usize> {
    loop {
        stream.readable().await?;
        let room = max.saturating_sub(buf.len());
        buf.reserve(room.min(READ_CHUNK));
        match stream.try_read_buf(&mut (&mut *buf).limit(room)) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            result => return result,
        }
    }
}

/// Send the refusal's TLS alert (if it has one), then close.
pub(crate) async fn refuse(client: &TcpStream, hello: &ClientHello, refusal: Refusal) {
    if let Reply::Alert(alert) = refusal.reply() {
        // A server answers at or below the version the client offered.
        let record = alert_record(hello.legacy_version, alert);
        let _ = timeout(WRITE_TIMEOUT, write_all(client, &record)).await;
        lingering_close(client).await;
    }
}

/// Plaintext HTTP: read the rest of the request head (bounded), answer
/// 400 with the explanation, and close. Returns the offload signals seen
/// (header names as sent, and `proxy_v2_ssl_tlv`).
pub(crate) async fn answer_plaintext(
    client: &TcpStream,
    buf: &mut BytesMut,
    deadline: Instant,
    max: usize,
    record: &mut AccessRecord,
    proxy_ssl_tlv: bool,
) -> Vec<String> {
    read_head(
        client,
        buf,
        deadline.min(Instant::now() + HTTP_HEAD_WAIT),
        max.min(MAX_HTTP_HEAD),
    )
    .await;
    let headers = find_offload_headers(buf);
    let mut signals = headers.clone();
    if proxy_ssl_tlv {
        signals.push("proxy_v2_ssl_tlv".to_string());
    }
    if !signals.is_empty() {
        record.detail = Some(format!("offload signals: {}", signals.join(",")));
    }
    let reply = plaintext_http_reply(&headers, proxy_ssl_tlv);
    let _ = timeout(WRITE_TIMEOUT, write_all(client, &reply)).await;
    lingering_close(client).await;
    signals
}

/// Read until `buf` holds a complete HTTP head, `limit` bytes, or `until`.
/// Returns whether the head is complete.
async fn read_head(client: &TcpStream, buf: &mut BytesMut, until: Instant, limit: usize) -> bool {
    loop {
        if head_len(buf).is_some() {
            return true;
        }
        if buf.len() >= limit {
            return false;
        }
        match timeout_at(until, read_some(client, buf, limit)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return false,
        }
    }
}

fn head_len(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// A CONNECT request read from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectRequest {
    /// `CONNECT host:port`: the host as asked for.
    Target {
        /// The host (lower-case, brackets removed for IPv6).
        host: String,
        /// The port asked for (not used for routing).
        port: u16,
    },
    /// Not a usable CONNECT; the reason goes into a 400.
    Malformed(&'static str),
    /// The client went quiet or away before the head was complete.
    Incomplete,
}

/// Read the CONNECT head (≤ 16 KiB, within `deadline`) and remove it from
/// `buf`: what follows it is the start of the tunnelled ClientHello.
pub(crate) async fn read_connect(
    client: &TcpStream,
    buf: &mut BytesMut,
    deadline: Instant,
) -> ConnectRequest {
    if !read_head(client, buf, deadline, MAX_CONNECT_HEAD).await {
        return if buf.len() >= MAX_CONNECT_HEAD {
            ConnectRequest::Malformed("the CONNECT header block is larger than 16 KiB")
        } else {
            ConnectRequest::Incomplete
        };
    }
    let Some(len) = head_len(buf) else {
        return ConnectRequest::Incomplete;
    };
    let request = parse_connect(&buf[..len]);
    buf.advance(len);
    request
}

/// Parse a complete CONNECT head. Pure.
pub fn parse_connect(head: &[u8]) -> ConnectRequest {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return ConnectRequest::Malformed("the CONNECT request is not valid HTTP"),
    }
    let Some(target) = req.path else {
        return ConnectRequest::Malformed("the CONNECT request has no target");
    };
    let Some((host, port)) = target.rsplit_once(':') else {
        return ConnectRequest::Malformed("the CONNECT target has no port (expected host:port)");
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let Ok(port) = port.parse::<u16>() else {
        return ConnectRequest::Malformed("the CONNECT target's port is not a number");
    };
    if host.is_empty() || host.len() > 253 {
        return ConnectRequest::Malformed("the CONNECT target's host is empty or too long");
    }
    ConnectRequest::Target {
        host: host.to_ascii_lowercase(),
        port,
    }
}

/// `200 Connection established`: the tunnel is open.
pub(crate) async fn answer_connect_ok(client: &TcpStream) -> io::Result<()> {
    timeout(
        WRITE_TIMEOUT,
        write_all(client, b"HTTP/1.1 200 Connection established\r\n\r\n"),
    )
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "client not reading"))?
}

/// An HTTP error answer to a CONNECT (`403`, `400`), then close.
pub(crate) async fn answer_connect_error(client: &TcpStream, status: &str, reason: &str) {
    let body = format!("passthru: {reason}\n");
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = timeout(WRITE_TIMEOUT, write_all(client, reply.as_bytes())).await;
    lingering_close(client).await;
}

/// Half-close, then read and discard what the client still sends (bounded
/// in time and bytes), so that our reply is not destroyed by a reset.
pub(crate) async fn lingering_close(client: &TcpStream) {
    let _ = SockRef::from(client).shutdown(Shutdown::Write);
    let mut scratch = BytesMut::with_capacity(READ_CHUNK);
    let mut total = 0;
    let _ = timeout(LINGER, async {
        while total < LINGER_BYTES {
            scratch.clear();
            match read_some(client, &mut scratch, READ_CHUNK).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    })
    .await;
}

const READ_CHUNK: usize = 4096;
const MAX_HTTP_HEAD: usize = 16 * 1024;
const MAX_CONNECT_HEAD: usize = 16 * 1024;
const HTTP_HEAD_WAIT: Duration = Duration::from_secs(1);
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_requests() {
        assert_eq!(
            parse_connect(
                b"CONNECT GW.example.com:443 HTTP/1.1\r\nHost: gw.example.com:443\r\n\r\n"
            ),
            ConnectRequest::Target {
                host: "gw.example.com".into(),
                port: 443
            }
        );
        assert_eq!(
            parse_connect(b"CONNECT [::1]:8443 HTTP/1.1\r\n\r\n"),
            ConnectRequest::Target {
                host: "::1".into(),
                port: 8443
            }
        );
        assert!(matches!(
            parse_connect(b"CONNECT gw.example.com HTTP/1.1\r\n\r\n"),
            ConnectRequest::Malformed(_)
        ));
        assert!(matches!(
            parse_connect(b"CONNECT gw:x HTTP/1.1\r\n\r\n"),
            ConnectRequest::Malformed(_)
        ));
        assert!(matches!(
            parse_connect(b"CONNECT :443 HTTP/1.1\r\n\r\n"),
            ConnectRequest::Malformed(_)
        ));
        assert!(matches!(
            parse_connect(b"CONNECT gw:443 HTTP/1.1\r\nbad header\r\n\r\n"),
            ConnectRequest::Malformed(_)
        ));
    }

    #[test]
    fn head_length() {
        assert_eq!(head_len(b"CONNECT a:1 HTTP/1.1\r\n\r\n\x16\x03"), Some(24));
        assert_eq!(head_len(b"CONNECT a:1 HTTP/1.1\r\n"), None);
    }
}
