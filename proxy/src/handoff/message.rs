//! The handoff protocol's messages, as bytes: pure encoding and decoding,
//! no I/O.
//!
//! 1. The running process sends an offer: `passthru-handoff 1`, one line per
//!    passed descriptor (`listener ADDR` or `admin ADDR`, ADDR being the
//!    `bind` of the configuration it was bound for), then `end`; the
//!    descriptors travel with it as `SCM_RIGHTS`, in the same order. A
//!    refused peer gets `refused REASON` instead.
//! 2. The new process, once it accepts on them, sends `switch`.
//! 3. The running process, once it has stopped accepting, answers `stopped`.

use std::net::SocketAddr;

pub use crate::inherited::Kind;

/// Most descriptors one offer carries.
pub const MAX_SOCKETS: usize = 64;
/// Largest message, in bytes.
pub const MAX_MESSAGE: usize = 8 * 1024;

const MAGIC: &str = "passthru-handoff 1";
/// The new process's go-ahead.
pub const SWITCH: &[u8] = b"switch\n";
/// The running process's answer once it no longer accepts.
pub const STOPPED: &[u8] = b"stopped\n";

/// The running process's first message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer {
    /// These sockets, in the order of the passed descriptors.
    Sockets(Vec<(Kind, SocketAddr)>),
    /// The peer is not served, and why.
    Refused(String),
}

/// Encode an offer.
pub fn encode(offer: &Offer) -> Vec<u8> {
    let mut out = String::new();
    match offer {
        Offer::Sockets(sockets) => {
            out.push_str(MAGIC);
            out.push('\n');
            for (kind, addr) in sockets {
                out.push_str(&format!("{} {addr}\n", kind.as_str()));
            }
            out.push_str("end\n");
        }
        Offer::Refused(reason) => {
            let reason: String = reason.chars().filter(|c| !c.is_control()).collect();
            out.push_str(&format!("refused {reason}\n"));
        }
    }
    out.into_bytes()
}

/// Decode an offer; `Err` says what is wrong with it.
pub fn decode(bytes: &[u8]) -> Result<Offer, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "the offer is not UTF-8".to_string())?;
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default();
    if let Some(reason) = first.strip_prefix("refused ") {
        return Ok(Offer::Refused(reason.to_string()));
    }
    if first != MAGIC {
        return Err(format!(
            "unexpected greeting {first:?} (not a passthru handoff socket, or another version)"
        ));
    }
    let mut sockets = Vec::new();
    for line in lines {
        if line == "end" {
            return Ok(Offer::Sockets(sockets));
        }
        if sockets.len() == MAX_SOCKETS {
            return Err(format!("more than {MAX_SOCKETS} sockets offered"));
        }
        let (kind, addr) = line
            .split_once(' ')
            .ok_or_else(|| format!("malformed line {line:?}"))?;
        let kind = match kind {
            "listener" => Kind::Listener,
            "admin" => Kind::Admin,
            _ => return Err(format!("unknown socket kind in {line:?}")),
        };
        let addr = addr
            .parse()
            .map_err(|_| format!("bad address in {line:?}"))?;
        sockets.push((kind, addr));
    }
    Err("the offer ends without \"end\"".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_round_trip() {
        let offer = Offer::Sockets(vec![
            (Kind::Listener, "0.0.0.0:443".parse().unwrap()),
            (Kind::Listener, "[::]:443".parse().unwrap()),
            (Kind::Admin, "127.0.0.1:9901".parse().unwrap()),
        ]);
        assert_eq!(decode(&encode(&offer)), Ok(offer));
        let refused = Offer::Refused("uid 65534 is not 0".to_string());
        assert_eq!(decode(&encode(&refused)), Ok(refused));
        assert_eq!(
            decode(&encode(&Offer::Sockets(Vec::new()))),
            Ok(Offer::Sockets(Vec::new()))
        );
    }

    #[test]
    fn a_refusal_reason_stays_on_one_line() {
        let bytes = encode(&Offer::Refused("a\nb".to_string()));
        assert_eq!(bytes, b"refused ab\n");
    }

    #[test]
    fn malformed_offers_are_errors() {
        for bad in [
            &b"HTTP/1.1 200 OK\r\n"[..],
            b"passthru-handoff 2\nend\n",
            b"passthru-handoff 1\nlistener 1.2.3.4:5\n",
            b"passthru-handoff 1\nlistener nowhere\nend\n",
            b"passthru-handoff 1\nsocket 1.2.3.4:5\nend\n",
            b"passthru-handoff 1\nlistener\nend\n",
            b"\xff\xfe",
            b"",
        ] {
            assert!(decode(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let many: String = std::iter::once("passthru-handoff 1\n".to_string())
            .chain((0..=MAX_SOCKETS).map(|i| format!("listener 127.0.0.1:{}\n", i + 1)))
            .chain(std::iter::once("end\n".to_string()))
            .collect();
        assert!(decode(many.as_bytes()).is_err());
    }
}
