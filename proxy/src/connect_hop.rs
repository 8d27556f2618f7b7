//! The upstream HTTP CONNECT hop (`via`): open a tunnel to a server through
//! an HTTP proxy. Nothing but the request is written until the proxy has
//! answered; any 2xx opens the tunnel; bytes the proxy sent after its header
//! block belong to the tunnel and are returned, never dropped. The whole
//! exchange (TCP connect included) sits under one deadline, and the answer
//! is bounded to 16 KiB.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use base64::Engine;
use bytes::{Bytes, BytesMut};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use crate::config::ServerAddr;
use crate::connect::{DialError, dial_until};
use crate::forward::write_all;
use crate::front::read_some;

/// A `via = "http://[user:pass@]host:port"` URL. `Display` and `Debug` never
/// show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct ViaUrl {
    /// The proxy's address.
    pub proxy: ServerAddr,
    credentials: Option<(String, String)>,
}

/// Why a `via` URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ViaUrlError {
    /// Not `http://`.
    #[error("only http:// proxies are supported (the CONNECT request itself is not encrypted)")]
    Scheme,
    /// No `:port`.
    #[error("the port is missing, as in \"http://proxy.corp:3128\"")]
    MissingPort,
    /// A host or port that cannot be used.
    #[error("the host or port is not valid")]
    BadAddress,
    /// `%` not followed by two hex digits, or not UTF-8 once decoded.
    #[error("the user name or password has bad percent-encoding")]
    BadPercentEncoding,
    /// A path, query or fragment after the authority.
    #[error("a proxy URL has no path, query or fragment")]
    Path,
}

impl FromStr for ViaUrl {
    type Err = ViaUrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s
            .strip_prefix("http://")
            .or_else(|| {
                s.get(..7)
                    .filter(|p| p.eq_ignore_ascii_case("http://"))
                    .map(|_| &s[7..])
            })
            .ok_or(ViaUrlError::Scheme)?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#']) {
            return Err(ViaUrlError::Path);
        }
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let credentials = match userinfo {
            None => None,
            Some(u) => {
                let (user, pass) = u.split_once(':').unwrap_or((u, ""));
                Some((percent_decode(user)?, percent_decode(pass)?))
            }
        };
        let (host, port) = hostport.rsplit_once(':').ok_or(ViaUrlError::MissingPort)?;
        if host.ends_with(']') && !host.starts_with('[') || port.contains(']') {
            return Err(ViaUrlError::MissingPort);
        }
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or(ViaUrlError::BadAddress)?;
        let host_ok = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b':'));
        if !host_ok {
            return Err(ViaUrlError::BadAddress);
        }
        Ok(ViaUrl {
            proxy: ServerAddr {
                host: host.to_ascii_lowercase(),
                port,
            },
            credentials,
        })
    }
}

impl ViaUrl {
    /// Whether credentials are configured.
    pub fn has_credentials(&self) -> bool {
        self.credentials.is_some()
    }

    /// The `Proxy-Authorization` value, when credentials are configured.
    fn authorization(&self) -> Option<String> {
        self.credentials.as_ref().map(|(user, pass)| {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            format!("Basic {token}")
        })
    }
}

impl fmt::Display for ViaUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.credentials {
            Some((user, _)) => write!(f, "http://{user}:***@{}", self.proxy),
            None => write!(f, "http://{}", self.proxy),
        }
    }
}

impl fmt::Debug for ViaUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ViaUrl({self})")
    }
}

/// An open tunnel.
#[derive(Debug)]
pub struct Tunnel {
    /// The connection to the proxy, now a tunnel to the target.
    pub stream: TcpStream,
    /// Bytes the proxy sent after its header block: the target's first bytes.
    pub leftover: Bytes,
    /// The proxy's status line, e.g. `HTTP/1.1 200 Connection established`.
    pub status_line: String,
}

/// Why a tunnel could not be opened. Each message names the hop.
#[derive(Debug, thiserror::Error)]
pub enum HopError {
    /// The proxy itself could not be reached.
    #[error("CONNECT via {via}: {source}")]
    Dial {
        /// The hop (password masked).
        via: String,
        /// Why.
        source: DialError,
    },
    /// No complete answer within the timeout.
    #[error("CONNECT via {via} to {target}: no answer within {}", humantime::format_duration(*.timeout))]
    Timeout {
        /// The hop.
        via: String,
        /// host:port asked for.
        target: String,
        /// The timeout (TCP connect plus CONNECT exchange).
        timeout: Duration,
    },
    /// The proxy answered something other than 2xx.
    #[error("CONNECT via {via} to {target} refused: {status_line}")]
    Refused {
        /// The hop.
        via: String,
        /// host:port asked for.
        target: String,
        /// The status code.
        status: u16,
        /// The status line as sent (bounded, control characters replaced).
        status_line: String,
    },
    /// The answer is not HTTP.
    #[error("CONNECT via {via} to {target}: the proxy's answer is not HTTP ({detail})")]
    Garbage {
        /// The hop.
        via: String,
        /// host:port asked for.
        target: String,
        /// What was wrong.
        detail: String,
    },
    /// The header block exceeded 16 KiB.
    #[error("CONNECT via {via} to {target}: the proxy's header block is larger than 16 KiB")]
    HeaderTooLarge {
        /// The hop.
        via: String,
        /// host:port asked for.
        target: String,
    },
    /// The proxy closed or broke the connection before answering.
    #[error("CONNECT via {via} to {target}: the proxy closed the connection before answering")]
    Closed {
        /// The hop.
        via: String,
        /// host:port asked for.
        target: String,
    },
}

/// Open a tunnel to `target` (`host:port`) through `via`, all within `timeout`.
pub async fn tunnel(via: &ViaUrl, target: &str, timeout: Duration) -> Result<Tunnel, HopError> {
    tunnel_with_keepalive(via, target, timeout, None).await
}

/// Like [`tunnel`], with TCP keepalive on the connection to the proxy.
pub async fn tunnel_with_keepalive(
    via: &ViaUrl,
    target: &str,
    timeout: Duration,
    keepalive: Option<Duration>,
) -> Result<Tunnel, HopError> {
    let deadline = Instant::now() + timeout;
    let name = via.to_string();
    let stream = dial_until(&via.proxy, deadline, timeout, keepalive)
        .await
        .map_err(|source| HopError::Dial {
            via: name.clone(),
            source,
        })?;
    let expired = || HopError::Timeout {
        via: name.clone(),
        target: target.to_string(),
        timeout,
    };
    let closed = || HopError::Closed {
        via: name.clone(),
        target: target.to_string(),
    };
    timeout_at(
        deadline,
        write_all(&stream, &request(target, via.authorization().as_deref())),
    )
    .await
    .map_err(|_| expired())?
    .map_err(|_| closed())?;
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        match parse_response(&buf) {
            Ok(Some(head)) => {
                let leftover = buf.split_off(head.len).freeze();
                if (200..300).contains(&head.status) {
                    return Ok(Tunnel {
                        stream,
                        leftover,
                        status_line: head.status_line,
                    });
                }
                return Err(HopError::Refused {
                    via: name,
                    target: target.to_string(),
                    status: head.status,
                    status_line: head.status_line,
                });
            }
            Ok(None) if buf.len() >= MAX_HEADER => {
                return Err(HopError::HeaderTooLarge {
                    via: name,
                    target: target.to_string(),
                });
            }
            Ok(None) => {}
            Err(detail) => {
                return Err(HopError::Garbage {
                    via: name,
                    target: target.to_string(),
                    detail,
                });
            }
        }
        match timeout_at(deadline, read_some(&stream, &mut buf, MAX_HEADER)).await {
            Err(_) => return Err(expired()),
            Ok(Ok(0) | Err(_)) => return Err(closed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// The CONNECT request.
pub fn request(target: &str, authorization: Option<&str>) -> Vec<u8> {
    let mut req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(auth) = authorization {
        req.push_str("Proxy-Authorization: ");
        req.push_str(auth);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    req.into_bytes()
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// Status code.
    pub status: u16,
    /// The status line (bounded, printable).
    pub status_line: String,
    /// Length of the header block, blank line included.
    pub len: usize,
}

/// Parse a proxy's response head: `Ok(None)` while incomplete, `Err` with
/// a reason when it can never be HTTP. Pure; bounded by the input.
pub fn parse_response(buf: &[u8]) -> Result<Option<ResponseHead>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(buf) {
        Ok(httparse::Status::Partial) => Ok(None),
        Ok(httparse::Status::Complete(len)) => {
            let status = resp.code.unwrap_or(0);
            let line_end = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
            let line = String::from_utf8_lossy(&buf[..line_end.min(MAX_STATUS_LINE)]);
            let status_line: String = line
                .trim_end()
                .chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect();
            Ok(Some(ResponseHead {
                status,
                status_line,
                len,
            }))
        }
        Err(httparse::Error::TooManyHeaders) => Err("more than 64 header lines".to_string()),
        Err(e) => Err(e.to_string()),
    }
}

fn percent_decode(s: &str) -> Result<String, ViaUrlError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .ok_or(ViaUrlError::BadPercentEncoding)?;
            let hex = std::str::from_utf8(hex).map_err(|_| ViaUrlError::BadPercentEncoding)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| ViaUrlError::BadPercentEncoding)?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ViaUrlError::BadPercentEncoding)
}

/// Largest response header block accepted.
pub const MAX_HEADER: usize = 16 * 1024;
const MAX_STATUS_LINE: usize = 200;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_never_show_the_password() {
        let v: ViaUrl = "http://alice:s%40cret@proxy.corp:3128".parse().unwrap();
        assert_eq!(v.proxy.to_string(), "proxy.corp:3128");
        assert_eq!(v.to_string(), "http://alice:***@proxy.corp:3128");
        assert_eq!(format!("{v:?}"), "ViaUrl(http://alice:***@proxy.corp:3128)");
        assert_eq!(
            v.authorization().unwrap(),
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("alice:s@cret")
            )
        );
        let v: ViaUrl = "http://[::1]:8080/".parse().unwrap();
        assert_eq!(v.proxy.host, "::1");
        assert!(!v.has_credentials());
        assert_eq!(v.to_string(), "http://[::1]:8080");
    }

    #[test]
    fn bad_urls_say_why() {
        assert_eq!("https://p:1".parse::<ViaUrl>(), Err(ViaUrlError::Scheme));
        assert_eq!("socks5://p:1".parse::<ViaUrl>(), Err(ViaUrlError::Scheme));
        assert_eq!(
            "http://proxy".parse::<ViaUrl>(),
            Err(ViaUrlError::MissingPort)
        );
        assert_eq!(
            "http://proxy:0".parse::<ViaUrl>(),
            Err(ViaUrlError::BadAddress)
        );
        assert_eq!(
            "http://proxy:99999".parse::<ViaUrl>(),
            Err(ViaUrlError::BadAddress)
        );
        assert_eq!(
            "http://u:%zz@proxy:1".parse::<ViaUrl>(),
            Err(ViaUrlError::BadPercentEncoding)
        );
        assert_eq!(
            "http://u:%4@proxy:1".parse::<ViaUrl>(),
            Err(ViaUrlError::BadPercentEncoding)
        );
        assert_eq!(
            "http://proxy:1/path".parse::<ViaUrl>(),
            Err(ViaUrlError::Path)
        );
        assert_eq!(
            "http://[::1]".parse::<ViaUrl>(),
            Err(ViaUrlError::MissingPort)
        );
    }

    #[test]
    fn request_bytes() {
        assert_eq!(
            request("gw.example.com:443", None),
            b"CONNECT gw.example.com:443 HTTP/1.1\r\nHost: gw.example.com:443\r\n\r\n"
        );
        let r = String::from_utf8(request("10.0.0.1:443", Some("Basic YTpi"))).unwrap();
        assert_eq!(
            r,
            "CONNECT 10.0.0.1:443 HTTP/1.1\r\nHost: 10.0.0.1:443\r\nProxy-Authorization: Basic YTpi\r\n\r\n"
        );
    }

    #[test]
    fn responses_every_prefix_is_incomplete() {
        let full = b"HTTP/1.1 200 Connection established\r\nProxy-Agent: x\r\n\r\nEXTRA";
        let head_len = full.len() - 5;
        for i in 0..head_len {
            assert_eq!(parse_response(&full[..i]), Ok(None), "prefix {i}");
        }
        let head = parse_response(full).unwrap().unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(head.len, head_len);
        assert_eq!(head.status_line, "HTTP/1.1 200 Connection established");
    }

    #[test]
    fn refusals_and_garbage() {
        let h = parse_response(
            b"HTTP/1.0 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (h.status, h.status_line.as_str()),
            (407, "HTTP/1.0 407 Proxy Authentication Required")
        );
        assert!(parse_response(b"SSH-2.0-OpenSSH\r\n").is_err());
        assert!(parse_response(&[0x15, 0x03, 0x03, 0, 2, 2, 40]).is_err());
    }
}
