//! The client-facing side before routing: read the ClientHello (keeping
//! every byte), recognise plaintext HTTP and inbound CONNECT, and write
//! passthru's few replies (an alert, the 400, CONNECT answers) followed by
//! a lingering close. Every read sits under the caller's deadline and
//! within a byte bound.

use std::io;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use passthru_net::connect_head::{ConnectRequest, HeadEnd, MAX_HEADER, parse_connect};
use passthru_net::io::{READ_CHUNK, read_some_from};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};
use tracing::debug;

use crate::access_log::AccessRecord;
use crate::alert::{alert_record, find_offload_headers, plaintext_http_reply};
use crate::clienthello::{self, ClientHello};
use crate::config::ExpectProxy;
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

/// The client's side of a connection before routing: the socket, every
/// byte read from it so far (the server gets them first), and the one
/// deadline shared by the PROXY header, the CONNECT head and the
/// ClientHello.
#[derive(Debug)]
pub(crate) struct ClientSide<'a, S = TcpStream> {
    /// The client's socket (any byte stream in tests).
    pub(crate) stream: &'a mut S,
    /// Everything read and not consumed (the PROXY header and the CONNECT
    /// head are; the ClientHello is kept).
    pub(crate) buf: BytesMut,
    /// `client_hello_timeout` after accept.
    pub(crate) deadline: Instant,
}

impl<'a, S> ClientSide<'a, S> {
    /// A connection just accepted, with `timeout` to send its ClientHello.
    pub(crate) fn new(stream: &'a mut S, timeout: Duration) -> Self {
        ClientSide {
            stream,
            buf: BytesMut::with_capacity(INITIAL_BUFFER),
            deadline: Instant::now() + timeout,
        }
    }
}

/// Read and remove the PROXY header at the start of the connection, within
/// the same deadline as the ClientHello and at most [`MAX_V2_LEN`] bytes.
/// Bytes after the header (the ClientHello) stay in `buf`.
pub(crate) async fn read_proxy_header<S: AsyncRead + Unpin>(
    stream: &mut S,
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
        match timeout_at(deadline, read_some_from(stream, buf, MAX_V2_LEN)).await {
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
pub(crate) async fn read_client_hello<S: AsyncRead + Unpin>(
    stream: &mut S,
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
        match timeout_at(deadline, read_some_from(stream, buf, max)).await {
            Err(_) => return Err(HelloError::Refused(Refusal::ClientHelloTimeout)),
            Ok(Ok(0) | Err(_)) => return Err(HelloError::Closed),
            Ok(Ok(_)) => *reads += 1,
        }
    }
}

fn is_connect(buf: &[u8]) -> bool {
    buf.starts_with(b"CONNECT ")
}

/// What the reply to a refusal may draw on besides the refusal itself.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Answering<'a> {
    /// The ClientHello's `legacy_version`, once one was read: an alert
    /// answers at or below the version the client offered.
    pub(crate) hello_version: Option<u16>,
    /// The host an inbound CONNECT asked for.
    pub(crate) connect_host: Option<&'a str>,
    /// The PROXY header's SSL TLV said a balancer terminated TLS.
    pub(crate) proxy_ssl_tlv: bool,
    /// Bound on the plaintext request head read for the 400 (`max_client_hello`).
    pub(crate) max_head: usize,
}

/// Put on the wire what `refusal` answers ([`Refusal::reply`]): a TLS alert
/// record, the plaintext-HTTP 400 with its explanation, a CONNECT 400/403
/// with its reason, or nothing; then close. Returns the offload signals the
/// plaintext request carried (header names as sent, and
/// `proxy_v2_ssl_tlv`), for the counters; `record.detail` names them.
pub(crate) async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
    side: &mut ClientSide<'_, S>,
    refusal: Refusal,
    with: Answering<'_>,
    record: &mut AccessRecord,
) -> Vec<String> {
    match refusal.reply() {
        Reply::Alert(alert) => {
            if let Some(version) = with.hello_version {
                let bytes = alert_record(version, alert);
                let _ = timeout(WRITE_TIMEOUT, side.stream.write_all(&bytes)).await;
                lingering_close(&mut *side.stream).await;
            }
            Vec::new()
        }
        Reply::HttpBadRequest => answer_plaintext(side, with, record).await,
        Reply::ConnectError(status) => {
            let reason = match (refusal, with.connect_host) {
                (Refusal::ConnectMalformed(reason), _) => reason.to_string(),
                (_, Some(host)) => format!(
                    "no route for {host}; CONNECT is only answered for names passthru routes"
                ),
                (_, None) => refusal.as_str().to_string(),
            };
            answer_connect_error(&mut *side.stream, status, &reason).await;
            Vec::new()
        }
        Reply::Close => Vec::new(),
    }
}

/// Plaintext HTTP: read the rest of the request head (bounded), answer
/// 400 with the explanation, and close.
async fn answer_plaintext<S: AsyncRead + AsyncWrite + Unpin>(
    side: &mut ClientSide<'_, S>,
    with: Answering<'_>,
    record: &mut AccessRecord,
) -> Vec<String> {
    read_head(
        &mut *side.stream,
        &mut side.buf,
        side.deadline.min(Instant::now() + HTTP_HEAD_WAIT),
        with.max_head.min(MAX_HTTP_HEAD),
    )
    .await;
    let headers = find_offload_headers(&side.buf);
    let mut signals = headers.clone();
    if with.proxy_ssl_tlv {
        signals.push("proxy_v2_ssl_tlv".to_string());
    }
    if !signals.is_empty() {
        record.detail = Some(format!("offload signals: {}", signals.join(",")));
    }
    let reply = plaintext_http_reply(&headers, with.proxy_ssl_tlv);
    let _ = timeout(WRITE_TIMEOUT, side.stream.write_all(&reply)).await;
    lingering_close(&mut *side.stream).await;
    signals
}

/// How reading an HTTP head ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Head {
    /// `buf` starts with a whole head of this length.
    Complete(usize),
    /// `limit` bytes and still no blank line.
    TooLarge,
    /// The deadline passed first.
    TimedOut,
    /// The client closed or reset first.
    Closed,
}

/// Read until `buf` holds a complete HTTP head, `limit` bytes, or `until`.
/// Each byte is looked at a bounded number of times, however the head is cut
/// into reads.
async fn read_head<S: AsyncRead + Unpin>(
    client: &mut S,
    buf: &mut BytesMut,
    until: Instant,
    limit: usize,
) -> Head {
    let mut end = HeadEnd::default();
    loop {
        if let Some(len) = end.find(buf) {
            return Head::Complete(len);
        }
        if buf.len() >= limit {
            return Head::TooLarge;
        }
        match timeout_at(until, read_some_from(client, buf, limit)).await {
            Ok(Ok(n)) if n > 0 => {}
            Err(_) => return Head::TimedOut,
            Ok(_) => return Head::Closed,
        }
    }
}

/// Read the CONNECT head (≤ 16 KiB, within the deadline) and remove it from
/// the buffer: what follows it is the start of the tunnelled ClientHello.
/// Returns the host and port asked for.
pub(crate) async fn read_connect<S: AsyncRead + Unpin>(
    side: &mut ClientSide<'_, S>,
) -> Result<(String, u16), HelloError> {
    let refused = |reason| Err(HelloError::Refused(Refusal::ConnectMalformed(reason)));
    let len = match read_head(&mut *side.stream, &mut side.buf, side.deadline, MAX_HEADER).await {
        Head::Complete(len) => len,
        Head::TooLarge => return refused("the CONNECT header block is larger than 16 KiB"),
        Head::TimedOut => return Err(HelloError::Refused(Refusal::ClientHelloTimeout)),
        Head::Closed => return Err(HelloError::Closed),
    };
    let request = parse_connect(&side.buf[..len]);
    side.buf.advance(len);
    match request {
        ConnectRequest::Target { host, port } => Ok((host, port)),
        ConnectRequest::Malformed(reason) => refused(reason),
        ConnectRequest::Incomplete => Err(HelloError::Closed),
    }
}

/// `200 Connection established`: the tunnel is open.
pub(crate) async fn answer_connect_ok<S: AsyncWrite + Unpin>(client: &mut S) -> io::Result<()> {
    timeout(
        WRITE_TIMEOUT,
        client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n"),
    )
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "client not reading"))?
}

/// An HTTP error answer to a CONNECT (`403`, `400`), then close.
async fn answer_connect_error<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut S,
    status: &str,
    reason: &str,
) {
    let body = format!("passthru: {reason}\n");
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = timeout(WRITE_TIMEOUT, client.write_all(reply.as_bytes())).await;
    lingering_close(client).await;
}

/// Half-close, then read and discard what the client still sends (bounded
/// in time and bytes), so that our reply is not destroyed by a reset.
async fn lingering_close<S: AsyncRead + AsyncWrite + Unpin>(client: &mut S) {
    // For a TcpStream, shutdown(Write): a FIN after the reply.
    let _ = timeout(WRITE_TIMEOUT, client.shutdown()).await;
    let mut scratch = BytesMut::with_capacity(READ_CHUNK);
    let mut total = 0;
    let _ = timeout(LINGER, async {
        while total < LINGER_BYTES {
            scratch.clear();
            match read_some_from(client, &mut scratch, READ_CHUNK).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    })
    .await;
}

const INITIAL_BUFFER: usize = 1024;
const MAX_HTTP_HEAD: usize = 16 * 1024;
const HTTP_HEAD_WAIT: Duration = Duration::from_secs(1);
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 64 * 1024;
