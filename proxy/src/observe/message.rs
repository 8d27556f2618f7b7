//! The two handshake messages the observer reads in full: the ServerHello
//! (version, cipher, HelloRetryRequest) and a TLS 1.2-style Certificate
//! (the leaf). Walked with a checked cursor; a short or inconsistent body is
//! [`Malformed`] naming the field, never a panic. No I/O.

/// A handshake message body that does not parse; names the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Malformed(pub(super) &'static str);

/// What the observer keeps from a ServerHello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ServerHello {
    /// `supported_versions` when present, else `legacy_version`.
    pub(super) version: u16,
    /// The selected cipher suite.
    pub(super) cipher: u16,
    /// The random is the HelloRetryRequest constant: a second ClientHello
    /// and a second ServerHello follow.
    pub(super) retry: bool,
}

/// Parses a ServerHello body (after the 4-byte handshake header).
pub(super) fn server_hello(body: &[u8]) -> Result<ServerHello, Malformed> {
    let mut r = Reader::new(body);
    let legacy_version = r.u16("legacy_version")?;
    let random = r.take(32, "random")?;
    r.prefixed_u8("legacy_session_id")?;
    let cipher = r.u16("cipher_suite")?;
    r.u8("legacy_compression_method")?;
    let mut version = legacy_version;
    // Extensions are optional before TLS 1.3.
    if !r.is_empty() {
        let mut extensions = r.prefixed_u16("extensions")?;
        while !extensions.is_empty() {
            let kind = extensions.u16("extension_type")?;
            let mut data = extensions.prefixed_u16("extension_data")?;
            if kind == SUPPORTED_VERSIONS {
                version = data.u16("selected_version")?;
            }
        }
    }
    Ok(ServerHello {
        version,
        cipher,
        retry: random == HELLO_RETRY_RANDOM,
    })
}

/// The first (leaf) certificate of a TLS 1.0–1.2 Certificate body: `None`
/// for an empty list (a client with no certificate to offer).
pub(super) fn leaf_certificate(body: &[u8]) -> Result<Option<&[u8]>, Malformed> {
    let mut r = Reader::new(body);
    let mut list = r.prefixed_u24("certificate_list")?;
    if list.is_empty() {
        return Ok(None);
    }
    let len = list.u24("certificate")?;
    list.take(len, "certificate").map(Some)
}

/// A forward-only cursor over a borrowed byte slice; every read names the
/// field it was reading.
#[derive(Debug, Clone, Copy)]
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { rest: buf }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], Malformed> {
        let (head, tail) = self.rest.split_at_checked(n).ok_or(Malformed(field))?;
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], Malformed> {
        let (head, tail) = self.rest.split_first_chunk::<N>().ok_or(Malformed(field))?;
        self.rest = tail;
        Ok(*head)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, Malformed> {
        self.array::<1>(field).map(|[b]| b)
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, Malformed> {
        self.array(field).map(u16::from_be_bytes)
    }

    fn u24(&mut self, field: &'static str) -> Result<usize, Malformed> {
        self.array(field).map(u24)
    }

    fn prefixed_u8(&mut self, field: &'static str) -> Result<Self, Malformed> {
        let len = self.u8(field)?;
        self.take(usize::from(len), field).map(Self::new)
    }

    fn prefixed_u16(&mut self, field: &'static str) -> Result<Self, Malformed> {
        let len = self.u16(field)?;
        self.take(usize::from(len), field).map(Self::new)
    }

    fn prefixed_u24(&mut self, field: &'static str) -> Result<Self, Malformed> {
        let len = self.u24(field)?;
        self.take(len, field).map(Self::new)
    }
}

/// A big-endian 24-bit length, widened.
pub(super) fn u24([a, b, c]: [u8; 3]) -> usize {
    usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c)
}

/// Extension 43, `supported_versions`.
const SUPPORTED_VERSIONS: u16 = 0x002b;

/// SHA-256 of "HelloRetryRequest": the random of a HelloRetryRequest
/// (RFC 8446 section 4.1.3).
const HELLO_RETRY_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];
