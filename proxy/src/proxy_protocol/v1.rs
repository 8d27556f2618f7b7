//! PROXY protocol v1: the text line `PROXY TCP4|TCP6 src dst sport dport\r\n`
//! or `PROXY UNKNOWN …\r\n`, parsed strictly within [`MAX_V1_LEN`] bytes and
//! encoded. No I/O.
//!
//! Strict means: fields separated by exactly one space, addresses of the
//! stated family in their canonical text form (no leading zeros in IPv4
//! octets, no IPv6 zone), ports of one to five ASCII digits up to 65535 (no
//! sign), nothing between the destination port and the CRLF. Fields are
//! checked as they arrive, so garbage is refused before the CRLF, while any
//! strict prefix of a valid line is `Incomplete`.

use std::net::{IpAddr, SocketAddr};

use super::header::{Error, Invalid, MAX_V1_LEN, ProxyHeader, TcpPair, Version};

/// v1 text header for a TCP connection from `source` to `destination`. If
/// the families differ, the IPv4 address is sent as IPv4-mapped IPv6 so
/// both are TCP6. At most 104 bytes.
#[must_use]
pub fn encode_v1(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let line = match TcpPair::new(source, destination) {
        TcpPair::V4(s, d) => format!(
            "PROXY TCP4 {} {} {} {}\r\n",
            s.ip(),
            d.ip(),
            s.port(),
            d.port()
        ),
        TcpPair::V6(s, d) => format!(
            "PROXY TCP6 {} {} {} {}\r\n",
            s.ip(),
            d.ip(),
            s.port(),
            d.port()
        ),
    };
    line.into_bytes()
}

/// Parse a v1 header at the start of `buf` (whose first byte is `P`).
pub(super) fn parse(buf: &[u8]) -> Result<ProxyHeader, Error> {
    let seen = buf.len().min(PREFIX.len());
    if buf.get(..seen) != PREFIX.get(..seen) {
        return Err(Invalid::NoSignature.into());
    }
    let Some(rest) = buf.get(PREFIX.len()..) else {
        return Err(Error::Incomplete { needed: MIN_LEN });
    };
    // The CR must leave room for the LF within MAX_V1_LEN bytes.
    let max_line = MAX_V1_LEN - PREFIX.len() - CRLF_LEN;
    let Some(cr) = rest.iter().take(max_line + 1).position(|&b| b == b'\r') else {
        if rest.len() > max_line {
            return Err(Invalid::V1TooLong.into());
        }
        line(rest, false)?;
        return Err(Error::Incomplete {
            needed: (buf.len() + 1).max(MIN_LEN),
        });
    };
    let (text, end) = rest
        .split_at_checked(cr)
        .ok_or(Invalid::V1Syntax("line end"))?;
    let addresses = line(text, true)?;
    let len = PREFIX.len() + cr + CRLF_LEN;
    match end.get(1) {
        None => Err(Error::Incomplete { needed: len }),
        Some(b'\n') => {
            let (proxied, source, destination) = match addresses {
                Line::Tcp(source, destination) => (true, Some(source), Some(destination)),
                Line::Unknown | Line::Partial => (false, None, None),
            };
            Ok(ProxyHeader {
                version: Version::V1,
                proxied,
                source,
                destination,
                authority: None,
                tls_terminated: false,
                len,
            })
        }
        Some(_) => Err(Invalid::V1Syntax("line end").into()),
    }
}

/// What the text after `"PROXY "` says so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// `TCP4`/`TCP6` with both addresses and ports.
    Tcp(SocketAddr, SocketAddr),
    /// `UNKNOWN`, whatever follows it.
    Unknown,
    /// A valid prefix of a line (only when the CR has not arrived yet).
    Partial,
}

/// Check the fields of `text` (the line after `"PROXY "`, without CRLF).
/// When `complete` is false the CR has not arrived, so the last field may
/// still grow: it only has to be a valid prefix.
fn line(text: &[u8], complete: bool) -> Result<Line, Invalid> {
    let fields = Fields::split(text, complete);
    let family = match fields.value(0, "protocol", protocol)? {
        Piece::Final(b"TCP4") => Family::V4,
        Piece::Final(b"TCP6") => Family::V6,
        Piece::Final(b"UNKNOWN") => return Ok(Line::Unknown),
        Piece::Final(_) => return Err(Invalid::V1Syntax("protocol")),
        Piece::Growing => return Ok(Line::Partial),
    };
    let address = |field: &[u8], is_final| family.address(field, is_final);
    let Piece::Final(src) = fields.value(1, "source address", address)? else {
        return Ok(Line::Partial);
    };
    let Piece::Final(dst) = fields.value(2, "destination address", address)? else {
        return Ok(Line::Partial);
    };
    let Piece::Final(sport) = fields.value(3, "source port", port)? else {
        return Ok(Line::Partial);
    };
    let Piece::Final(dport) = fields.value(4, "destination port", port)? else {
        return Ok(Line::Partial);
    };
    if fields.count > 5 {
        return Err(Invalid::V1Syntax("line end"));
    }
    Ok(Line::Tcp(
        SocketAddr::new(src, sport),
        SocketAddr::new(dst, dport),
    ))
}

/// The space-separated fields of a (possibly unterminated) line: protocol,
/// two addresses, two ports, and whatever follows a fifth space.
#[derive(Debug, Clone, Copy)]
struct Fields<'a> {
    parts: [&'a [u8]; 6],
    count: usize,
    complete: bool,
}

impl<'a> Fields<'a> {
    /// Split `text` at single spaces (an empty field marks a doubled one).
    fn split(text: &'a [u8], complete: bool) -> Self {
        let mut parts: [&[u8]; 6] = [&[]; 6];
        let mut count = 0;
        for (slot, part) in parts.iter_mut().zip(text.splitn(6, |&b| b == b' ')) {
            *slot = part;
            count += 1;
        }
        Self {
            parts,
            count,
            complete,
        }
    }

    /// A field is final unless it is the last one of an unterminated line.
    fn is_final(&self, index: usize) -> bool {
        self.complete || index + 1 < self.count
    }

    /// Field `index` checked by `check` (which answers `None` for invalid),
    /// or `Growing` when the unterminated line has not reached it yet; a
    /// missing field of a complete line or an invalid one is `V1Syntax(name)`.
    fn value<T>(
        &self,
        index: usize,
        name: &'static str,
        check: impl Fn(&'a [u8], bool) -> Option<Piece<T>>,
    ) -> Result<Piece<T>, Invalid> {
        match self.parts.get(index) {
            Some(part) if index < self.count => {
                check(part, self.is_final(index)).ok_or(Invalid::V1Syntax(name))
            }
            _ if self.complete => Err(Invalid::V1Syntax(name)),
            _ => Ok(Piece::Growing),
        }
    }
}

/// One field of a line: final and valid, or still growing (a valid prefix
/// at the end of an unterminated line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece<T> {
    Final(T),
    Growing,
}

/// The address family a `TCP4`/`TCP6` line declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    /// A final field must parse as an address of this family; one that may
    /// still grow only has to use the family's characters within its
    /// longest text length. `None`: invalid.
    fn address(self, field: &[u8], is_final: bool) -> Option<Piece<IpAddr>> {
        let (max, allowed): (usize, fn(&u8) -> bool) = match self {
            Self::V4 => (15, |b| b.is_ascii_digit() || *b == b'.'),
            Self::V6 => (45, |b| b.is_ascii_hexdigit() || *b == b':' || *b == b'.'),
        };
        if field.len() > max || !field.iter().all(allowed) {
            return None;
        }
        if !is_final {
            return Some(Piece::Growing);
        }
        let text = std::str::from_utf8(field).ok()?;
        let ip = match self {
            Self::V4 => IpAddr::V4(text.parse().ok()?),
            Self::V6 => IpAddr::V6(text.parse().ok()?),
        };
        Some(Piece::Final(ip))
    }
}

/// A protocol name: `TCP4`, `TCP6` or `UNKNOWN`, or a prefix of one while
/// it may still grow. `None`: invalid.
fn protocol(field: &[u8], is_final: bool) -> Option<Piece<&[u8]>> {
    if is_final {
        PROTOCOLS.contains(&field).then_some(Piece::Final(field))
    } else {
        let prefix = PROTOCOLS.iter().any(|name| name.starts_with(field));
        prefix.then_some(Piece::Growing)
    }
}

/// A port: one to five ASCII digits, at most 65535, or a prefix of one
/// while it may still grow. `None`: invalid.
fn port(field: &[u8], is_final: bool) -> Option<Piece<u16>> {
    if field.len() > 5 || !field.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value = field
        .iter()
        .fold(0u32, |acc, &digit| acc * 10 + u32::from(digit - b'0'));
    let port = u16::try_from(value).ok()?;
    match (is_final, field.is_empty()) {
        (true, true) => None,
        (true, false) => Some(Piece::Final(port)),
        (false, _) => Some(Piece::Growing),
    }
}

/// What every v1 header starts with.
const PREFIX: &[u8] = b"PROXY ";

/// The protocol names a v1 line may declare.
const PROTOCOLS: [&[u8]; 3] = [b"TCP4", b"TCP6", b"UNKNOWN"];

/// The shortest valid v1 header: `"PROXY UNKNOWN\r\n"`.
const MIN_LEN: usize = 15;

/// `"\r\n"`.
const CRLF_LEN: usize = 2;
