//! One direction's TLS record framing, followed byte by byte: record
//! headers, handshake messages reassembled across records (only the ones
//! asked for are buffered, each up to [`MAX_MESSAGE`]), and two-byte alert
//! records. It reports what it sees as [`Event`]s and obeys the
//! [`Verdict`] returned for each. No I/O; never more state than one record
//! header, one alert and one kept message.

use super::message::u24;

/// Largest handshake message buffered (a ServerHello or a Certificate
/// chain); a larger one ends observation with `truncated`.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// Record content types (RFC 8446 section 5.1).
pub(super) const CHANGE_CIPHER_SPEC: u8 = 20;
/// Alert record.
pub(super) const ALERT: u8 = 21;
/// Handshake record.
pub(super) const HANDSHAKE: u8 = 22;
/// Application data: in TLS 1.3 also every encrypted handshake record.
pub(super) const APPLICATION_DATA: u8 = 23;

/// Something seen in the byte stream.
#[derive(Debug, Clone, Copy)]
pub(super) enum Event<'a> {
    /// A complete, valid record header.
    Record { content_type: u8 },
    /// A handshake message header, in a direction still in clear.
    MessageStart { kind: u8 },
    /// A whole handshake message of a kind in `keep`, without its header.
    Message { kind: u8, body: &'a [u8] },
    /// A two-byte alert record (level, description).
    Alert { level: u8, description: u8 },
}

/// What the framer does after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Go on.
    Continue,
    /// Handshake records of this direction are opaque from now on (after
    /// ChangeCipherSpec): follow only the record headers.
    Opaque,
    /// Nothing more to learn: stop reading this chunk.
    Done,
}

/// Why a direction stopped being followed before the handshake ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// A record header that is no TLS record (content type, version, length).
    NotTls,
    /// A kept handshake message longer than [`MAX_MESSAGE`].
    MessageTooLarge,
    /// A kept message that does not parse; names the field.
    Malformed(&'static str),
    /// The byte budget of one direction is spent.
    Budget,
}

/// Record framing state of one direction.
#[derive(Debug)]
pub(super) struct Framer {
    /// Handshake message kinds to buffer and report whole.
    keep: &'static [u8],
    header: [u8; 5],
    header_len: usize,
    content_type: u8,
    record_len: usize,
    record_left: usize,
    alert: [u8; 2],
    alert_len: usize,
    /// Handshake records are parsed (false after ChangeCipherSpec).
    clear: bool,
    message: Assembler,
}

impl Framer {
    /// A framer at the start of a stream that keeps messages of `keep`.
    pub(super) fn new(keep: &'static [u8]) -> Self {
        Self {
            keep,
            header: [0; 5],
            header_len: 0,
            content_type: 0,
            record_len: 0,
            record_left: 0,
            alert: [0; 2],
            alert_len: 0,
            clear: true,
            message: Assembler::default(),
        }
    }

    /// Follows `bytes`, the next bytes of the stream, reporting to `sink`.
    /// Returns early (`Ok`) on [`Verdict::Done`].
    pub(super) fn feed<F>(&mut self, mut bytes: &[u8], sink: &mut F) -> Result<(), Stop>
    where
        F: FnMut(Event<'_>) -> Result<Verdict, Stop>,
    {
        while !bytes.is_empty() {
            if self.header_len < self.header.len() {
                let n = (self.header.len() - self.header_len).min(bytes.len());
                let (head, tail) = bytes.split_at(n);
                if let Some(slot) = self.header.get_mut(self.header_len..self.header_len + n) {
                    slot.copy_from_slice(head);
                }
                self.header_len += n;
                bytes = tail;
                if self.header_len == self.header.len() && self.start_record(sink)? {
                    return Ok(());
                }
                continue;
            }
            let n = self.record_left.min(bytes.len());
            let (body, tail) = bytes.split_at(n);
            bytes = tail;
            self.record_left -= n;
            if self.record_left == 0 {
                self.header_len = 0;
            }
            if self.body(body, sink)? == Verdict::Done {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Checks a complete header and reports it; `true` when done.
    fn start_record<F>(&mut self, sink: &mut F) -> Result<bool, Stop>
    where
        F: FnMut(Event<'_>) -> Result<Verdict, Stop>,
    {
        let [content_type, major, _minor, hi, lo] = self.header;
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if !(CHANGE_CIPHER_SPEC..=HEARTBEAT).contains(&content_type)
            || major != 3
            || len > MAX_RECORD
        {
            return Err(Stop::NotTls);
        }
        self.content_type = content_type;
        self.record_len = len;
        self.record_left = len;
        self.alert_len = 0;
        if len == 0 {
            self.header_len = 0;
        }
        match sink(Event::Record { content_type })? {
            Verdict::Continue => Ok(false),
            Verdict::Opaque => {
                self.clear = false;
                self.message = Assembler::default();
                Ok(false)
            }
            Verdict::Done => Ok(true),
        }
    }

    /// Handles `body`, the next bytes of the current record's content.
    fn body<F>(&mut self, body: &[u8], sink: &mut F) -> Result<Verdict, Stop>
    where
        F: FnMut(Event<'_>) -> Result<Verdict, Stop>,
    {
        match self.content_type {
            HANDSHAKE if self.clear => self.message.push(body, self.keep, sink),
            ALERT if self.record_len == self.alert.len() => {
                for &b in body {
                    if let Some(slot) = self.alert.get_mut(self.alert_len) {
                        *slot = b;
                        self.alert_len += 1;
                    }
                }
                if self.alert_len == self.alert.len() {
                    self.alert_len = 0;
                    let [level, description] = self.alert;
                    return sink(Event::Alert { level, description });
                }
                Ok(Verdict::Continue)
            }
            _ => Ok(Verdict::Continue),
        }
    }
}

/// Reassembles handshake messages from the handshake records' content.
#[derive(Debug, Default)]
struct Assembler {
    header: [u8; 4],
    header_len: usize,
    /// Handshake type of the current message.
    kind: u8,
    /// Body bytes of the current message still to come.
    left: usize,
    /// The current message is kept: its body goes to `buf`.
    keep: bool,
    buf: Vec<u8>,
}

impl Assembler {
    /// Takes the next handshake bytes.
    fn push<F>(&mut self, mut bytes: &[u8], keep: &[u8], sink: &mut F) -> Result<Verdict, Stop>
    where
        F: FnMut(Event<'_>) -> Result<Verdict, Stop>,
    {
        while !bytes.is_empty() {
            if self.header_len < self.header.len() {
                let n = (self.header.len() - self.header_len).min(bytes.len());
                let (head, tail) = bytes.split_at(n);
                if let Some(slot) = self.header.get_mut(self.header_len..self.header_len + n) {
                    slot.copy_from_slice(head);
                }
                self.header_len += n;
                bytes = tail;
                if self.header_len < self.header.len() {
                    break;
                }
                let [kind, a, b, c] = self.header;
                self.kind = kind;
                self.left = u24([a, b, c]);
                self.keep = keep.contains(&kind);
                if self.keep && self.left > MAX_MESSAGE {
                    return Err(Stop::MessageTooLarge);
                }
                if sink(Event::MessageStart { kind })? == Verdict::Done {
                    return Ok(Verdict::Done);
                }
            } else {
                let n = self.left.min(bytes.len());
                let (body, tail) = bytes.split_at(n);
                if self.keep {
                    self.buf.extend_from_slice(body);
                }
                self.left -= n;
                bytes = tail;
            }
            if self.header_len == self.header.len() && self.left == 0 {
                let verdict = self.finish(sink)?;
                if verdict == Verdict::Done {
                    return Ok(verdict);
                }
            }
        }
        Ok(Verdict::Continue)
    }

    /// Reports the message just completed (if kept) and resets.
    fn finish<F>(&mut self, sink: &mut F) -> Result<Verdict, Stop>
    where
        F: FnMut(Event<'_>) -> Result<Verdict, Stop>,
    {
        self.header_len = 0;
        if !self.keep {
            return Ok(Verdict::Continue);
        }
        let body = std::mem::take(&mut self.buf);
        sink(Event::Message {
            kind: self.kind,
            body: &body,
        })
    }
}

/// Largest record a peer may send: 2^14 plus the 2048 bytes of expansion
/// TLS 1.2 allows for ciphertext (RFC 5246 section 6.2.3).
const MAX_RECORD: usize = 16_384 + 2_048;

/// Content type 24 (RFC 6520), the last one a record header may carry.
const HEARTBEAT: u8 = 24;
