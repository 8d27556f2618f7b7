//! What passthru itself ever writes to a client: a TLS fatal alert record
//! (before any byte of the server reached the client) and the plaintext
//! HTTP `400` that explains TLS passthrough. No I/O.

/// The alerts passthru sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertDescription {
    /// 112: no route for the server name.
    UnrecognizedName,
    /// 80: no server of the backend could be reached.
    InternalError,
}

impl AlertDescription {
    /// The code on the wire.
    pub fn code(self) -> u8 {
        match self {
            AlertDescription::UnrecognizedName => 112,
            AlertDescription::InternalError => 80,
        }
    }

    /// The name used in RFC 8446.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertDescription::UnrecognizedName => "unrecognized_name",
            AlertDescription::InternalError => "internal_error",
        }
    }
}

/// A fatal alert record. `client_version` is the `legacy_version` of the
/// client's hello; the record carries it, clamped to TLS 1.0..=1.2 (TLS 1.3
/// records say 1.2), as a server that negotiated with that client would.
pub fn alert_record(client_version: u16, alert: AlertDescription) -> [u8; 7] {
    let version = client_version.clamp(0x0301, 0x0303);
    let [major, minor] = version.to_be_bytes();
    [0x15, major, minor, 0x00, 0x02, 0x02, alert.code()]
}

/// Request headers that a TLS-terminating balancer adds (F5, nginx,
/// HAProxy, Envoy, IIS ARR, AWS/Azure balancers, RFC 9440).
pub const OFFLOAD_HEADERS: [&str; 16] = [
    "x-forwarded-proto",
    "x-forwarded-ssl",
    "x-forwarded-scheme",
    "front-end-https",
    "x-ssl-client-cert",
    "x-ssl-client-verify",
    "x-ssl-client-dn",
    "x-ssl-client-s-dn",
    "x-client-cert",
    "x-client-verify",
    "x-forwarded-client-cert",
    "x-arr-clientcert",
    "x-arr-ssl",
    "sslclientcert",
    "client-cert",
    "ssl-client-cert",
];

/// The `400 Bad Request` answer to plaintext HTTP. `offload_headers` are
/// the headers of [`OFFLOAD_HEADERS`] the request carried, as sent;
/// `proxy_ssl_tlv` says the balancer's PROXY v2 header carried the SSL TLV
/// (it received the connection over TLS).
pub fn plaintext_http_reply(offload_headers: &[String], proxy_ssl_tlv: bool) -> Vec<u8> {
    let mut body = String::from(
        "This endpoint is TLS passthrough (passthru): it expects a TLS ClientHello, \
         but it received plaintext HTTP.\n\
         A load balancer in front is probably offloading SSL. Offloading strips the \
         agent's client certificate and replaces the gateway's certificate, so \
         client-certificate authentication fails. Configure the balancer to pass \
         TLS through (TCP / SSL passthrough mode).\n",
    );
    if !offload_headers.is_empty() {
        body.push_str("The request carries headers that a TLS-terminating balancer adds: ");
        body.push_str(&offload_headers.join(", "));
        body.push_str(".\n");
    }
    if proxy_ssl_tlv {
        body.push_str(
            "The balancer's PROXY protocol v2 header carries the SSL TLV: it received this \
             connection over TLS and terminated it.\n",
        );
    }
    let mut reply = format!(
        "HTTP/1.1 400 Bad Request\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    reply.extend_from_slice(body.as_bytes());
    reply
}

/// The names (as sent) of offload headers in an HTTP request head. Reads
/// only complete header lines; bounded by the input.
pub fn find_offload_headers(head: &[u8]) -> Vec<String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    // A partial or malformed head still fills the headers parsed so far.
    let _ = req.parse(head);
    req.headers
        .iter()
        .filter(|h| {
            !h.name.is_empty()
                && OFFLOAD_HEADERS
                    .iter()
                    .any(|o| h.name.eq_ignore_ascii_case(o))
        })
        .map(|h| h.name.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_bytes() {
        assert_eq!(
            alert_record(0x0303, AlertDescription::UnrecognizedName),
            [0x15, 3, 3, 0, 2, 2, 112]
        );
        assert_eq!(
            alert_record(0x0301, AlertDescription::InternalError),
            [0x15, 3, 1, 0, 2, 2, 80]
        );
        assert_eq!(
            alert_record(0x0304, AlertDescription::InternalError),
            [0x15, 3, 3, 0, 2, 2, 80]
        );
        assert_eq!(
            alert_record(0x0002, AlertDescription::InternalError),
            [0x15, 3, 1, 0, 2, 2, 80]
        );
    }

    #[test]
    fn reply_explains_and_names_headers() {
        let head = b"GET / HTTP/1.1\r\nHost: gw\r\nX-Forwarded-Proto: https\r\nX-SSL-Client-Cert: -----\r\n\r\n";
        let all: String = OFFLOAD_HEADERS
            .iter()
            .map(|h| format!("{h}: x\r\n"))
            .collect();
        let every = find_offload_headers(format!("GET / HTTP/1.1\r\n{all}\r\n").as_bytes());
        assert_eq!(every.len(), OFFLOAD_HEADERS.len());
        let found = find_offload_headers(head);
        assert_eq!(
            found,
            vec![
                "X-Forwarded-Proto".to_string(),
                "X-SSL-Client-Cert".to_string()
            ]
        );
        let reply = String::from_utf8(plaintext_http_reply(&found, true)).unwrap();
        assert!(reply.contains("SSL TLV"));
        assert!(reply.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(reply.contains("Connection: close\r\n"));
        assert!(reply.contains("TLS passthrough"));
        assert!(reply.contains("X-Forwarded-Proto, X-SSL-Client-Cert"));
        let (head, body) = reply.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
    }

    #[test]
    fn partial_head_still_finds_complete_lines() {
        let found =
            find_offload_headers(b"POST /x HTTP/1.1\r\nX-Forwarded-Proto: https\r\nHost: a");
        assert_eq!(found, vec!["X-Forwarded-Proto".to_string()]);
    }
}
