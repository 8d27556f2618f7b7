//! The ClientHello itself: [`parse`] over the bytes read so far, and the
//! extensions passthru keeps (SNI, ALPN, versions, groups, ECH).

use std::collections::BTreeSet;

use super::error::{Error, Invalid, need};
use super::groups::{GroupSet, Groups};
use super::reader::Reader;
use super::record::{Framed, reassemble};
use super::wire::{
    EXT_ALPN, EXT_ECH, EXT_KEY_SHARE, EXT_SERVER_NAME, EXT_SUPPORTED_GROUPS,
    EXT_SUPPORTED_VERSIONS, HANDSHAKE_CLIENT_HELLO, HANDSHAKE_HEADER_LEN, MAX_RECORD_LEN,
    RECORD_HEADER_LEN, is_grease,
};

/// What passthru needs from a ClientHello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello {
    /// SNI host_name exactly as sent (lossy UTF-8 for non-UTF-8 bytes), not
    /// lowercased, trailing dot kept. None when absent.
    pub server_name: Option<String>,
    /// ALPN protocols offered, in order (lossy UTF-8): the first
    /// [`MAX_ALPN_KEPT`] only, so that a hostile list costs little memory.
    pub alpn: Vec<String>,
    /// How many ALPN protocols were offered beyond those kept in `alpn`.
    pub alpn_more: usize,
    /// Record-layer version of the first record (0x0301 etc.); for
    /// SSLv2-compatible hellos, 0x0002.
    pub record_version: u16,
    /// legacy_version / client_version field of the hello.
    pub legacy_version: u16,
    /// supported_versions extension, GREASE values (0x?a?a) removed; empty
    /// when absent.
    pub supported_versions: Vec<u16>,
    /// encrypted_client_hello extension (0xfe0d) present: the SNI above is
    /// the outer one.
    pub ech: bool,
    /// SSLv2-compatible CLIENT-HELLO (record header with high bit set).
    pub sslv2: bool,
    /// Groups of the key_share extension's entries, in order, GREASE skipped.
    pub key_shares: Groups,
    /// supported_groups extension, GREASE skipped.
    pub supported_groups: GroupSet,
    /// TLS records the hello spanned (1 for SSLv2-compatible hellos).
    pub records: usize,
    /// Number of bytes of `buf` the hello occupied (all records carrying it,
    /// headers included).
    pub len: usize,
}

impl ClientHello {
    /// A hello with no extensions read yet.
    pub(super) fn bare(record_version: u16, legacy_version: u16, sslv2: bool, len: usize) -> Self {
        Self {
            server_name: None,
            alpn: Vec::new(),
            alpn_more: 0,
            record_version,
            legacy_version,
            supported_versions: Vec::new(),
            ech: false,
            sslv2,
            key_shares: Groups::default(),
            supported_groups: GroupSet::default(),
            records: 1,
            len,
        }
    }

    /// Highest version offered: max of supported_versions if present, else
    /// legacy_version.
    #[must_use]
    pub fn offered_version(&self) -> u16 {
        self.supported_versions
            .iter()
            .copied()
            .max()
            .unwrap_or(self.legacy_version)
    }

    /// "TLSv1.3", "TLSv1.2", "TLSv1.1", "TLSv1.0", "SSLv3", or "unknown"
    /// (from [`offered_version`](Self::offered_version)).
    #[must_use]
    pub fn offered_version_name(&self) -> &'static str {
        match self.offered_version() {
            0x0304 => "TLSv1.3",
            0x0303 => "TLSv1.2",
            0x0302 => "TLSv1.1",
            0x0301 => "TLSv1.0",
            0x0300 => "SSLv3",
            _ => "unknown",
        }
    }
}

/// Parse a ClientHello from the start of `buf` (TLS records, or an
/// SSLv2-compatible hello). Trailing bytes after the hello are ignored.
///
/// # Errors
///
/// [`Error::Incomplete`] for every strict prefix of a valid hello, however
/// it is split into records; [`Error::Invalid`] as soon as the bytes can no
/// longer become one.
pub fn parse(buf: &[u8]) -> Result<ClientHello, Error> {
    match buf.first() {
        None => Err(need(RECORD_HEADER_LEN)),
        Some(b0) if b0 & 0x80 != 0 => parse_sslv2(buf),
        Some(_) => {
            let framed = reassemble(buf)?;
            Ok(parse_message(&framed)?)
        }
    }
}

/// Parse a ClientHello handshake message (header included, already checked).
fn parse_message(framed: &Framed<'_>) -> Result<ClientHello, Invalid> {
    let mut r = Reader::new(&framed.message);
    r.take(HANDSHAKE_HEADER_LEN, "handshake header")?;
    let legacy_version = r.u16("legacy_version")?;
    r.take(32, "random")?;
    let session_id = r.u8("session_id")?;
    if session_id > 32 {
        return Err(Invalid::BadLength("session_id"));
    }
    r.take(usize::from(session_id), "session_id")?;
    if r.prefixed_u16("cipher_suites")?.remaining() % 2 != 0 {
        return Err(Invalid::BadLength("cipher_suites"));
    }
    if r.prefixed_u8("compression_methods")?.is_empty() {
        return Err(Invalid::BadLength("compression_methods"));
    }
    let mut hello = ClientHello::bare(framed.record_version, legacy_version, false, framed.len);
    hello.records = framed.records;
    if r.is_empty() {
        return Ok(hello); // old hellos may omit the extensions block
    }
    let mut extensions = r.prefixed_u16("extensions")?;
    r.finish("extensions")?;
    let mut seen = SeenExtensions::default();
    while !extensions.is_empty() {
        let kind = extensions.u16("extension")?;
        let data = extensions.prefixed_u16("extension")?;
        seen.insert(kind)?;
        match kind {
            EXT_SERVER_NAME => {
                let name = server_name(data).map_err(|_| Invalid::BadExtension("server_name"));
                hello.server_name = name?;
            }
            EXT_ALPN => {
                (hello.alpn, hello.alpn_more) =
                    alpn(data).map_err(|_| Invalid::BadExtension("alpn"))?;
            }
            EXT_KEY_SHARE => {
                hello.key_shares =
                    key_shares(data).map_err(|_| Invalid::BadExtension("key_share"))?;
            }
            EXT_SUPPORTED_GROUPS => {
                let groups = supported_groups(data);
                hello.supported_groups =
                    groups.map_err(|_| Invalid::BadExtension("supported_groups"))?;
            }
            EXT_SUPPORTED_VERSIONS => {
                let versions = supported_versions(data);
                hello.supported_versions =
                    versions.map_err(|_| Invalid::BadExtension("supported_versions"))?;
            }
            EXT_ECH => hello.ech = true,
            _ => {}
        }
    }
    Ok(hello)
}

/// server_name (RFC 6066): the first host_name entry of the list. A
/// host_name that is empty, longer than [`MAX_HOST_NAME`] bytes or holds a
/// NUL byte makes the extension malformed, as BoringSSL reads it.
fn server_name(mut data: Reader<'_>) -> Result<Option<String>, Invalid> {
    let mut list = data.prefixed_u16("server_name")?;
    data.finish("server_name")?;
    let mut host_name = None;
    while !list.is_empty() {
        let kind = list.u8("server_name")?;
        let name = list.prefixed_u16("server_name")?;
        if kind == SNI_HOST_NAME && host_name.is_none() {
            let bytes = name.rest();
            if bytes.is_empty() || bytes.len() > MAX_HOST_NAME || bytes.contains(&0) {
                return Err(Invalid::BadLength("server_name"));
            }
            host_name = Some(lossy(name));
        }
    }
    Ok(host_name)
}

/// application_layer_protocol_negotiation (RFC 7301): non-empty names, in
/// order, the first [`MAX_ALPN_KEPT`] kept, with the count of the others.
fn alpn(mut data: Reader<'_>) -> Result<(Vec<String>, usize), Invalid> {
    let mut list = data.prefixed_u16("alpn")?;
    data.finish("alpn")?;
    let mut names = Vec::with_capacity(4);
    let mut more = 0;
    while !list.is_empty() {
        let name = list.prefixed_u8("alpn")?;
        if name.is_empty() {
            return Err(Invalid::BadLength("alpn"));
        }
        if names.len() < MAX_ALPN_KEPT {
            names.push(lossy(name));
        } else {
            more += 1;
        }
    }
    Ok((names, more))
}

/// key_share (RFC 8446 4.2.8): the group of each KeyShareEntry.
fn key_shares(mut data: Reader<'_>) -> Result<Groups, Invalid> {
    let mut list = data.prefixed_u16("key_share")?;
    data.finish("key_share")?;
    let mut groups = Groups::default();
    while !list.is_empty() {
        let group = list.u16("key_share")?;
        list.prefixed_u16("key_share")?;
        groups.push(group);
    }
    Ok(groups)
}

/// supported_groups (RFC 8446 4.2.7).
fn supported_groups(mut data: Reader<'_>) -> Result<GroupSet, Invalid> {
    let mut list = data.prefixed_u16("supported_groups")?;
    data.finish("supported_groups")?;
    if list.remaining() % 2 != 0 {
        return Err(Invalid::BadLength("supported_groups"));
    }
    let mut groups = GroupSet::default();
    while !list.is_empty() {
        groups.insert(list.u16("supported_groups")?);
    }
    Ok(groups)
}

/// supported_versions (RFC 8446 4.2.1), GREASE values removed.
fn supported_versions(mut data: Reader<'_>) -> Result<Vec<u16>, Invalid> {
    let mut list = data.prefixed_u8("supported_versions")?;
    data.finish("supported_versions")?;
    if list.remaining() % 2 != 0 {
        return Err(Invalid::BadLength("supported_versions"));
    }
    let mut versions = Vec::with_capacity(list.remaining() / 2);
    while !list.is_empty() {
        let version = list.u16("supported_versions")?;
        if !is_grease(version) {
            versions.push(version);
        }
    }
    Ok(versions)
}

/// An SSLv2-compatible CLIENT-HELLO (RFC 5246 appendix E.2): 2-byte header
/// with the high bit set, then type, version and three lengths.
fn parse_sslv2(buf: &[u8]) -> Result<ClientHello, Error> {
    let Some(&[hi, lo]) = buf.first_chunk() else {
        return Err(need(2));
    };
    let len = match usize::from(hi & 0x7f) << 8 | usize::from(lo) {
        0 => return Err(Invalid::EmptyRecord.into()),
        len if len > MAX_RECORD_LEN => return Err(Invalid::RecordTooLarge.into()),
        len => len,
    };
    let message = buf.get(2..buf.len().min(2 + len)).unwrap_or_default();
    // Decide on the type and version bytes as soon as they arrive.
    if message
        .first()
        .is_some_and(|&t| t != HANDSHAKE_CLIENT_HELLO)
    {
        return Err(Invalid::NotClientHello.into());
    }
    if message.get(1).is_some_and(|&major| major != 3) {
        return Err(Invalid::Sslv2WithoutTls.into());
    }
    if message.len() < len {
        return Err(need(2 + len));
    }
    let mut r = Reader::new(message);
    r.u8("msg_type")?;
    let legacy_version = r.u16("version")?;
    let cipher_specs = usize::from(r.u16("cipher_spec_length")?);
    let session_id = usize::from(r.u16("session_id_length")?);
    let challenge = usize::from(r.u16("challenge_length")?);
    if cipher_specs == 0 || cipher_specs % 3 != 0 {
        return Err(Invalid::BadLength("cipher_specs").into());
    }
    if session_id > 32 {
        return Err(Invalid::BadLength("session_id").into());
    }
    if !(16..=32).contains(&challenge) {
        return Err(Invalid::BadLength("challenge").into());
    }
    r.take(cipher_specs, "cipher_specs")?;
    r.take(session_id, "session_id")?;
    r.take(challenge, "challenge")?;
    r.finish("challenge")?;
    Ok(ClientHello::bare(0x0002, legacy_version, true, 2 + len))
}

/// Extension types seen so far, to refuse duplicates without allocating for
/// real hellos: a bit per type below 64 (kept in a register), a short list
/// for the rarer types above, and a set only for hellos with many of those.
#[derive(Default)]
struct SeenExtensions {
    low: u64,
    high: SeenHighTypes,
}

#[derive(Default)]
struct SeenHighTypes {
    list: [u16; 16],
    count: usize,
    overflow: BTreeSet<u16>,
}

impl SeenExtensions {
    #[inline]
    fn insert(&mut self, kind: u16) -> Result<(), Invalid> {
        let fresh = match 1u64.checked_shl(u32::from(kind)) {
            Some(bit) => {
                let fresh = self.low & bit == 0;
                self.low |= bit;
                fresh
            }
            None => self.high.insert(kind),
        };
        if fresh {
            Ok(())
        } else {
            Err(Invalid::DuplicateExtension(kind))
        }
    }
}

impl SeenHighTypes {
    /// Whether `kind` is new.
    #[inline(never)]
    fn insert(&mut self, kind: u16) -> bool {
        if self
            .list
            .get(..self.count)
            .unwrap_or_default()
            .contains(&kind)
        {
            return false;
        }
        match self.list.get_mut(self.count) {
            Some(slot) => {
                *slot = kind;
                self.count += 1;
                true
            }
            None => self.overflow.insert(kind),
        }
    }
}

/// The bytes as a String, replacing invalid UTF-8 (fast path for valid).
fn lossy(bytes: Reader<'_>) -> String {
    let bytes = bytes.rest();
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

const SNI_HOST_NAME: u8 = 0;

/// Longest SNI host_name accepted (a DNS name is at most 253 characters).
pub const MAX_HOST_NAME: usize = 255;

/// ALPN names kept from a hello; the rest are only counted.
pub const MAX_ALPN_KEPT: usize = 16;
