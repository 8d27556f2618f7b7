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
    let mut headers = header_slots(buf);
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
    let mut headers = header_slots(head);
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

/// One header slot per line of `head`: the number of headers is bounded by
/// the bytes of the block (16 KiB at most, see [`MAX_HEADER`]), not by a
/// fixed count. One pass over the bytes.
fn header_slots(head: &[u8]) -> Vec<httparse::Header<'static>> {
    let lines = head.iter().filter(|&&b| b == b'\n').count();
    vec![httparse::EMPTY_HEADER; lines.min(MAX_HEADER / 2) + 1]
}

/// Length of the HTTP head at the start of `buf` (blank line included), once
/// it is complete. A blank line is `\r\n` or a bare `\n`, as the parsers
/// accept both.
pub fn head_len(buf: &[u8]) -> Option<usize> {
    HeadEnd::default().find(buf)
}

/// The end of an HTTP head in a buffer that grows read by read. Each call
/// looks only at the bytes added since the last one (plus two), so a head
/// trickled one byte per read costs time linear in its length.
#[derive(Debug, Default, Clone)]
pub struct HeadEnd {
    scanned: usize,
    examined: u64,
}

impl HeadEnd {
    /// The head's length (blank line included) once `buf` holds it all.
    /// `buf` must be the same buffer, only ever appended to.
    pub fn find(&mut self, buf: &[u8]) -> Option<usize> {
        let from = self.scanned.saturating_sub(2).min(buf.len());
        self.examined += (buf.len() - from) as u64;
        self.scanned = buf.len();
        let mut i = from;
        while let Some(p) = buf[i..].iter().position(|&b| b == b'\n') {
            let at = i + p;
            match (buf.get(at + 1), buf.get(at + 2)) {
                (Some(b'\n'), _) => return Some(at + 2),
                (Some(b'\r'), Some(b'\n')) => return Some(at + 3),
                _ => i = at + 1,
            }
        }
        None
    }

    /// Bytes looked at so far, over all calls (the fuzz targets' cost check).
    pub fn examined(&self) -> u64 {
        self.examined
    }
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
        assert_eq!(head_len(b"CONNECT a:1 HTTP/1.1\n\n\x16"), Some(22));
        assert_eq!(head_len(b"CONNECT a:1 HTTP/1.1\r\n"), None);
        assert_eq!(head_len(b"CONNECT a:1 HTTP/1.1\r\nA: b\r\n\r"), None);
    }

    /// A head trickled one byte per read is found at the same place as in one
    /// piece, each byte looked at a bounded number of times.
    #[test]
    fn trickled_heads_cost_linear_time() {
        let mut head = b"CONNECT gw:443 HTTP/1.1\r\n".to_vec();
        while head.len() < MAX_HEADER - 100 {
            head.extend_from_slice(b"X-Pad: 0123456789\r\n");
        }
        head.extend_from_slice(b"\r\nrest");
        let mut end = HeadEnd::default();
        let found = (1..=head.len()).find_map(|n| end.find(&head[..n]));
        assert_eq!(found, head_len(&head));
        assert!(
            end.examined() <= 3 * head.len() as u64,
            "{}",
            end.examined()
        );
    }

    /// The header block is bounded by bytes, not by a count of lines:
    /// 100 header lines (HAProxy allows 101) are a valid head.
    #[test]
    fn a_hundred_header_lines_are_accepted() {
        let mut head = b"CONNECT gw.example.com:443 HTTP/1.1\r\n".to_vec();
        let mut resp = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..100 {
            head.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
            resp.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        resp.extend_from_slice(b"\r\n");
        assert!(matches!(
            parse_connect(&head),
            ConnectRequest::Target { .. }
        ));
        assert_eq!(parse_response(&resp).unwrap().unwrap().status, 200);
        // The smallest header lines a 16 KiB block can hold.
        let mut many = b"CONNECT gw:443 HTTP/1.1\r\n".to_vec();
        while many.len() < MAX_HEADER - 10 {
            many.extend_from_slice(b"a:\n");
        }
        many.extend_from_slice(b"\n");
        assert!(matches!(
            parse_connect(&many),
            ConnectRequest::Target { .. }
        ));
    }
}
