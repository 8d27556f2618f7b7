//! First-bytes classifier: tells a TLS handshake record, an SSLv2-compatible
//! hello, a plaintext HTTP request and anything else apart from the first
//! bytes of a connection, as early as the bytes allow. No I/O, no parsing
//! beyond the first few bytes (the ClientHello itself is `clienthello`'s job).

/// What the first bytes of a connection look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniff {
    /// A TLS handshake record: byte 0 is 0x16 and byte 1 (when present) is 0x03.
    Tls,
    /// An SSLv2-compatible CLIENT-HELLO offering SSL 3.0 or TLS.
    Sslv2,
    /// A plaintext HTTP request: a method token followed by a space.
    PlaintextHttp,
    /// Anything else; decided at the first byte that rules out the others.
    NotTls,
    /// Too few bytes to decide yet.
    NeedMore,
}

/// Classify the first bytes of a connection. An empty `buf` is `NeedMore`.
#[must_use]
pub fn sniff(buf: &[u8]) -> Sniff {
    match buf {
        [] => Sniff::NeedMore,
        [CONTENT_HANDSHAKE] | [CONTENT_HANDSHAKE, 3, ..] => Sniff::Tls,
        [CONTENT_HANDSHAKE, ..] => Sniff::NotTls,
        [b0, rest @ ..] if b0 & 0x80 != 0 => sslv2(rest),
        _ => http(buf),
    }
}

/// After a first byte with the high bit set: byte 1 is the low length byte,
/// byte 2 must be CLIENT-HELLO (1) and byte 3 the version major (3).
fn sslv2(after_first: &[u8]) -> Sniff {
    match after_first {
        [] | [_] => Sniff::NeedMore,
        [_, 1] => Sniff::NeedMore,
        [_, 1, 3, ..] => Sniff::Sslv2,
        _ => Sniff::NotTls,
    }
}

/// A method token and a space, or a strict prefix of one.
fn http(buf: &[u8]) -> Sniff {
    let mut prefix_of_some = false;
    for method in HTTP_METHODS {
        if buf.starts_with(method) {
            return Sniff::PlaintextHttp;
        }
        prefix_of_some |= method.starts_with(buf);
    }
    if prefix_of_some {
        Sniff::NeedMore
    } else {
        Sniff::NotTls
    }
}

const CONTENT_HANDSHAKE: u8 = 0x16;

/// Each method followed by the space that ends the token.
const HTTP_METHODS: [&[u8]; 10] = [
    b"GET ",
    b"HEAD ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"CONNECT ",
    b"OPTIONS ",
    b"TRACE ",
    b"PATCH ",
    b"PRI ",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_needs_more() {
        assert_eq!(sniff(b""), Sniff::NeedMore);
    }

    #[test]
    fn tls_record_is_tls_from_the_first_byte() {
        assert_eq!(sniff(&[0x16]), Sniff::Tls);
        assert_eq!(sniff(&[0x16, 0x03]), Sniff::Tls);
        assert_eq!(sniff(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]), Sniff::Tls);
        assert_eq!(sniff(&[0x16, 0x02]), Sniff::NotTls);
    }

    #[test]
    fn captured_hellos_are_tls() {
        let curl = include_bytes!("clienthello/testdata/curl.bin");
        let tls10 = include_bytes!("clienthello/testdata/openssl-tls10.bin");
        for prefix_len in 1..=curl.len() {
            assert_eq!(sniff(&curl[..prefix_len]), Sniff::Tls);
        }
        assert_eq!(sniff(tls10), Sniff::Tls);
    }

    #[test]
    fn sslv2_hello_is_decided_at_byte_four() {
        let hello = include_bytes!("clienthello/testdata/sslv2-compat.bin");
        for prefix_len in 0..4 {
            assert_eq!(
                sniff(&hello[..prefix_len]),
                Sniff::NeedMore,
                "prefix {prefix_len}"
            );
        }
        for prefix_len in 4..=hello.len() {
            assert_eq!(
                sniff(&hello[..prefix_len]),
                Sniff::Sslv2,
                "prefix {prefix_len}"
            );
        }
    }

    #[test]
    fn high_bit_garbage_is_not_tls_once_ruled_out() {
        assert_eq!(sniff(&[0xff, 0xff]), Sniff::NeedMore);
        assert_eq!(sniff(&[0xff, 0xff, 0xff]), Sniff::NotTls);
        assert_eq!(sniff(&[0x80, 0x25, 0x01, 0x02]), Sniff::NotTls); // pure SSLv2
    }

    #[test]
    fn every_method_with_a_space_is_plaintext_http() {
        for method in HTTP_METHODS {
            let request = [method, b"/ HTTP/1.1\r\n\r\n".as_slice()].concat();
            assert_eq!(sniff(&request), Sniff::PlaintextHttp, "{method:?}");
            assert_eq!(sniff(method), Sniff::PlaintextHttp, "{method:?}");
        }
        assert_eq!(
            sniff(b"GET / HTTP/1.1\r\nHost: gw.example.com\r\n\r\n"),
            Sniff::PlaintextHttp
        );
        assert_eq!(
            sniff(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
            Sniff::PlaintextHttp
        );
    }

    #[test]
    fn every_strict_prefix_of_options_needs_more() {
        let method = b"OPTIONS ";
        for prefix_len in 1..method.len() {
            assert_eq!(
                sniff(&method[..prefix_len]),
                Sniff::NeedMore,
                "prefix {prefix_len}"
            );
        }
        assert_eq!(sniff(method), Sniff::PlaintextHttp);
    }

    #[test]
    fn method_without_space_or_lowercase_is_not_http() {
        assert_eq!(sniff(b"GETX"), Sniff::NotTls);
        assert_eq!(sniff(b"GET\t/"), Sniff::NotTls);
        assert_eq!(sniff(b"get / HTTP/1.1"), Sniff::NotTls);
        assert_eq!(sniff(b"POSTS"), Sniff::NotTls);
    }

    #[test]
    fn ssh_banner_is_not_tls_at_the_first_byte() {
        assert_eq!(sniff(b"S"), Sniff::NotTls);
        assert_eq!(
            sniff(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"),
            Sniff::NotTls
        );
    }

    #[test]
    fn garbage_and_other_records_are_not_tls_at_the_first_byte() {
        assert_eq!(sniff(&[0x00]), Sniff::NotTls);
        assert_eq!(sniff(&[0x42, 0x13, 0x37]), Sniff::NotTls);
        // TLS application data and alert records are not a ClientHello.
        assert_eq!(sniff(&[0x17, 0x03, 0x03, 0x00, 0x28]), Sniff::NotTls);
        assert_eq!(sniff(&[0x15, 0x03, 0x03, 0x00, 0x02]), Sniff::NotTls);
    }
}
