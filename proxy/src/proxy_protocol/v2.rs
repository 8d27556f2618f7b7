//! PROXY protocol v2: the binary header (12-byte signature, version and
//! command, family and transport, length, addresses, TLVs), parsed with
//! every length bounded and encoded; and the CRC32C its TLV 0x03 carries.
//! No I/O.
//!
//! Accepted families: with the PROXY command, TCP over IPv4 (0x11) or IPv6
//! (0x21), and AF_UNSPEC (0x00, parsed as not proxied). UNIX and DGRAM
//! families carry no address passthru could use for a TCP client, so they
//! are `BadFamily`. With the LOCAL command the family is ignored, as the
//! protocol requires, but it must be one the protocol defines: its address
//! block is skipped so the TLVs after it are still bounded and checked.
//! TLVs: AUTHORITY (0x02) is kept, CRC32C (0x03) is verified, every other
//! type is skipped; each must fit inside the header.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use super::header::{Error, Invalid, MAX_AUTHORITY_LEN, MAX_V2_LEN, ProxyHeader, TcpPair, Version};

/// v2 PROXY header for a TCP connection from `source` to `destination`
/// (IPv4-mapped IPv6 when the families differ), with an AUTHORITY TLV when
/// `authority` is `Some` and at most [`MAX_AUTHORITY_LEN`] bytes long (a
/// longer name is left out rather than cut). No CRC32C TLV: the header is
/// what HAProxy sends by default, TCP already checksums it, and receivers
/// that verify CRC32C verify it only when present.
#[must_use]
pub fn encode_v2(source: SocketAddr, destination: SocketAddr, authority: Option<&str>) -> Vec<u8> {
    let authority = authority
        .map(str::as_bytes)
        .and_then(|name| u8::try_from(name.len()).ok().map(|len| (name, len)));
    let authority_len = authority.map_or(0, |(_, len)| TLV_HEADER_LEN + u16::from(len));
    let mut out = Vec::with_capacity(FIXED_LEN + 36 + 3 + MAX_AUTHORITY_LEN);
    out.extend_from_slice(&SIGNATURE);
    out.push(VERSION_2 | CMD_PROXY);
    match TcpPair::new(source, destination) {
        TcpPair::V4(s, d) => {
            out.push(TCP4);
            out.extend_from_slice(&(12 + authority_len).to_be_bytes());
            out.extend_from_slice(&s.ip().octets());
            out.extend_from_slice(&d.ip().octets());
            out.extend_from_slice(&s.port().to_be_bytes());
            out.extend_from_slice(&d.port().to_be_bytes());
        }
        TcpPair::V6(s, d) => {
            out.push(TCP6);
            out.extend_from_slice(&(36 + authority_len).to_be_bytes());
            out.extend_from_slice(&s.ip().octets());
            out.extend_from_slice(&d.ip().octets());
            out.extend_from_slice(&s.port().to_be_bytes());
            out.extend_from_slice(&d.port().to_be_bytes());
        }
    }
    if let Some((name, len)) = authority {
        out.push(TLV_AUTHORITY);
        out.extend_from_slice(&u16::from(len).to_be_bytes());
        out.extend_from_slice(name);
    }
    out
}

/// v2 LOCAL header (AF_UNSPEC, no addresses, no TLVs): what a balancer's
/// health check sends. For tests and tools.
#[must_use]
pub fn encode_v2_local() -> Vec<u8> {
    let mut out = Vec::with_capacity(FIXED_LEN);
    out.extend_from_slice(&SIGNATURE);
    out.extend_from_slice(&[VERSION_2 | CMD_LOCAL, UNSPEC, 0, 0]);
    out
}

/// Parse a v2 header at the start of `buf` (whose first byte is `\r`). Each
/// fixed field is checked as soon as it arrives; the length field is
/// checked against [`MAX_V2_LEN`] before any more is read.
pub(super) fn parse(buf: &[u8]) -> Result<ProxyHeader, Error> {
    let seen = buf.len().min(SIGNATURE.len());
    if buf.get(..seen) != SIGNATURE.get(..seen) {
        return Err(Invalid::NoSignature.into());
    }
    let need_fixed = Error::Incomplete { needed: FIXED_LEN };
    let Some(&version_command) = buf.get(VERSION_COMMAND_AT) else {
        return Err(need_fixed);
    };
    if version_command & 0xf0 != VERSION_2 {
        return Err(Invalid::BadVersion.into());
    }
    let local = match version_command & 0x0f {
        CMD_LOCAL => true,
        CMD_PROXY => false,
        _ => return Err(Invalid::BadCommand.into()),
    };
    let Some(&family) = buf.get(FAMILY_AT) else {
        return Err(need_fixed);
    };
    let address_len = address_len(family, local)?;
    let Some(&[high, low]) = buf
        .get(LENGTH_AT..)
        .and_then(|rest| rest.first_chunk::<2>())
    else {
        return Err(need_fixed);
    };
    let len = FIXED_LEN + usize::from(u16::from_be_bytes([high, low]));
    if len > MAX_V2_LEN {
        return Err(Invalid::V2TooLong.into());
    }
    if len < FIXED_LEN + address_len {
        return Err(Invalid::AddressTruncated.into());
    }
    let Some(header) = buf.get(..len) else {
        return Err(Error::Incomplete { needed: len });
    };
    let block = header
        .get(FIXED_LEN..)
        .and_then(|body| body.split_at_checked(address_len));
    let Some((addresses, tlvs)) = block else {
        return Err(Invalid::AddressTruncated.into());
    };
    let proxied = !local && family != UNSPEC;
    let (source, destination) = if proxied {
        let (source, destination) = tcp_addresses(family, addresses)?;
        (Some(source), Some(destination))
    } else {
        (None, None)
    };
    let tlvs = Tlvs::parse(tlvs)?;
    if let Some((offset, expected)) = tlvs.crc32c {
        verify_crc32c(header, FIXED_LEN + address_len + offset, expected)?;
    }
    Ok(ProxyHeader {
        version: Version::V2,
        proxied,
        source,
        destination,
        authority: tlvs
            .authority
            .map(|name| String::from_utf8_lossy(name).into_owned()),
        tls_terminated: tlvs.ssl_client,
        len,
    })
}

/// Bytes of the address block for `family`, or `BadFamily` (see the module
/// doc for which families each command accepts).
fn address_len(family: u8, local: bool) -> Result<usize, Invalid> {
    match family {
        UNSPEC => Ok(0),
        TCP4 => Ok(12),
        TCP6 => Ok(36),
        UDP4 if local => Ok(12),
        UDP6 if local => Ok(36),
        UNIX_STREAM | UNIX_DGRAM if local => Ok(216),
        _ => Err(Invalid::BadFamily),
    }
}

/// Source and destination of a TCP4 or TCP6 address block.
fn tcp_addresses(family: u8, block: &[u8]) -> Result<(SocketAddr, SocketAddr), Invalid> {
    let pair = match family {
        TCP4 => addresses::<4>(block).map(|(s, d, sp, dp)| {
            (
                SocketAddr::new(Ipv4Addr::from(s).into(), sp),
                SocketAddr::new(Ipv4Addr::from(d).into(), dp),
            )
        }),
        TCP6 => addresses::<16>(block).map(|(s, d, sp, dp)| {
            (
                SocketAddr::new(Ipv6Addr::from(s).into(), sp),
                SocketAddr::new(Ipv6Addr::from(d).into(), dp),
            )
        }),
        _ => None,
    };
    pair.ok_or(Invalid::AddressTruncated)
}

/// Source address, destination address, source port, destination port.
fn addresses<const N: usize>(block: &[u8]) -> Option<([u8; N], [u8; N], u16, u16)> {
    let (source, rest) = block.split_first_chunk::<N>()?;
    let (destination, rest) = rest.split_first_chunk::<N>()?;
    let (&[sp_high, sp_low, dp_high, dp_low], _) = rest.split_first_chunk::<4>()?;
    Some((
        *source,
        *destination,
        u16::from_be_bytes([sp_high, sp_low]),
        u16::from_be_bytes([dp_high, dp_low]),
    ))
}

/// The TLVs passthru reads.
#[derive(Debug, Clone, Copy, Default)]
struct Tlvs<'a> {
    /// PP2_TYPE_AUTHORITY value.
    authority: Option<&'a [u8]>,
    /// PP2_TYPE_CRC32C: offset of the value within the TLV area, and the value.
    crc32c: Option<(usize, u32)>,
    /// PP2_TYPE_SSL with the PP2_CLIENT_SSL bit set.
    ssl_client: bool,
}

impl<'a> Tlvs<'a> {
    /// Walk the TLV area (everything after the address block), each TLV
    /// bounded by what is left of it.
    fn parse(area: &'a [u8]) -> Result<Self, Invalid> {
        let mut tlvs = Self::default();
        let mut rest = area;
        let mut offset = 0;
        while !rest.is_empty() {
            let (&[kind, high, low], tail) =
                rest.split_first_chunk::<3>().ok_or(Invalid::TlvTruncated)?;
            let value_len = usize::from(u16::from_be_bytes([high, low]));
            let (value, tail) = tail
                .split_at_checked(value_len)
                .ok_or(Invalid::TlvTruncated)?;
            let value_offset = offset + usize::from(TLV_HEADER_LEN);
            match kind {
                TLV_AUTHORITY if value.len() > MAX_AUTHORITY_LEN => {
                    return Err(Invalid::TlvLength(kind));
                }
                TLV_AUTHORITY if tlvs.authority.replace(value).is_some() => {
                    return Err(Invalid::DuplicateTlv(kind));
                }
                TLV_SSL => {
                    tlvs.ssl_client |= value.first().is_some_and(|c| c & PP2_CLIENT_SSL != 0)
                }
                TLV_CRC32C => {
                    let sum: [u8; 4] = value.try_into().map_err(|_| Invalid::TlvLength(kind))?;
                    let crc = (value_offset, u32::from_be_bytes(sum));
                    if tlvs.crc32c.replace(crc).is_some() {
                        return Err(Invalid::DuplicateTlv(kind));
                    }
                }
                _ => {}
            }
            offset = value_offset + value_len;
            rest = tail;
        }
        Ok(tlvs)
    }
}

/// Check the CRC32C TLV whose value sits at `at` in `header`: the checksum
/// of the whole header with those four bytes zeroed must equal `expected`.
fn verify_crc32c(header: &[u8], at: usize, expected: u32) -> Result<(), Invalid> {
    let (before, value_and_after) = header.split_at_checked(at).ok_or(Invalid::TlvTruncated)?;
    let after = value_and_after.get(4..).ok_or(Invalid::TlvTruncated)?;
    if crc32c(&[before, &[0; 4], after]) == expected {
        Ok(())
    } else {
        Err(Invalid::Crc32cMismatch)
    }
}

/// CRC32C (Castagnoli, the iSCSI polynomial, reflected) of `parts` joined.
pub(super) fn crc32c(parts: &[&[u8]]) -> u32 {
    let mut crc = !0u32;
    for &byte in parts.iter().copied().flatten() {
        // The index is a u8, so always inside the 256-entry table.
        let index = usize::from(crc.to_le_bytes()[0] ^ byte);
        crc = (crc >> 8) ^ CRC32C_TABLE[index];
    }
    !crc
}

/// Byte-at-a-time table for [`crc32c`], computed at compile time.
const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut index = 0;
    while index < 256 {
        let mut crc = index as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[index] = crc;
        index += 1;
    }
    table
};

/// What every v2 header starts with.
pub(super) const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Signature, version/command, family, length.
const FIXED_LEN: usize = 16;
/// Offsets of the fixed fields after the signature.
const VERSION_COMMAND_AT: usize = 12;
const FAMILY_AT: usize = 13;
const LENGTH_AT: usize = 14;
/// Type (1 byte) and length (2 bytes) before each TLV value.
const TLV_HEADER_LEN: u16 = 3;

const VERSION_2: u8 = 0x20;
const CMD_LOCAL: u8 = 0x0;
const CMD_PROXY: u8 = 0x1;

const UNSPEC: u8 = 0x00;
const TCP4: u8 = 0x11;
const UDP4: u8 = 0x12;
const TCP6: u8 = 0x21;
const UDP6: u8 = 0x22;
const UNIX_STREAM: u8 = 0x31;
const UNIX_DGRAM: u8 = 0x32;

const TLV_AUTHORITY: u8 = 0x02;
const TLV_CRC32C: u8 = 0x03;
const TLV_SSL: u8 = 0x20;
const PP2_CLIENT_SSL: u8 = 0x01;
