//! The HTTP CONNECT exchange as bytes: the request a client sends, the
//! request head a proxy reads, and the response head a client reads back.
//! Pure parsers, bounded by their input: no I/O.

use crate::addr::split_host_port;

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

/// A CONNECT request head read by a proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectRequest {
    /// `CONNECT host:port`: the host as asked for.
    Target {
        /// The host (lower-case, brackets removed for IPv6).
        host: String,
        /// The port asked for.
        port: u16,
    },
    /// Not a usable CONNECT; the reason goes into a 400.
    Malformed(&'static str),
    /// The client went quiet or away before the head was complete.
    Incomplete,
}

/// Parse a complete CONNECT request head. Pure.
pub fn parse_connect(head: &[u8]) -> ConnectRequest {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return ConnectRequest::Malformed("the CONNECT request is not valid HTTP"),
    }
    if req.method != Some("CONNECT") {
        return ConnectRequest::Malformed("the request is not a CONNECT");
    }
    let Some(target) = req.path else {
        return ConnectRequest::Malformed("the CONNECT request has no target");
    };
    let Some((host, port)) = split_host_port(target) else {
        return ConnectRequest::Malformed("the CONNECT target has no port (expected host:port)");
    };
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

/// Length of the HTTP head at the start of `buf` (blank line included), once
/// it is complete.
pub fn head_len(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// Largest header block accepted, request or response (16 KiB).
pub const MAX_HEADER: usize = 16 * 1024;
const MAX_STATUS_LINE: usize = 200;

#[cfg(test)]
mod tests {
    use super::*;

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
        for bad in [
            &b"CONNECT gw.example.com HTTP/1.1\r\n\r\n"[..],
            b"CONNECT gw:x HTTP/1.1\r\n\r\n",
            b"CONNECT :443 HTTP/1.1\r\n\r\n",
            b"CONNECT gw:443 HTTP/1.1\r\nbad header\r\n\r\n",
            b"GET gw:443 HTTP/1.1\r\n\r\n",
        ] {
            assert!(
                matches!(parse_connect(bad), ConnectRequest::Malformed(_)),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn head_length() {
        assert_eq!(head_len(b"CONNECT a:1 HTTP/1.1\r\n\r\n\x16\x03"), Some(24));
        assert_eq!(head_len(b"CONNECT a:1 HTTP/1.1\r\n"), None);
    }
}
