//! The TLS record layer under a ClientHello: reassembles the handshake
//! message from one or more records, borrowing when it fits one.

use std::borrow::Cow;

use super::error::{Error, Invalid, need};
use super::reader::Reader;
use super::wire::{
    CONTENT_HANDSHAKE, HANDSHAKE_CLIENT_HELLO, HANDSHAKE_HEADER_LEN, MAX_RECORD_LEN,
    RECORD_HEADER_LEN,
};

/// The whole ClientHello handshake message (header included), with where
/// it came from.
pub(super) struct Framed<'a> {
    pub(super) message: Cow<'a, [u8]>,
    pub(super) record_version: u16,
    pub(super) len: usize,
    pub(super) records: usize,
}

/// Walk the handshake records until the whole ClientHello message is
/// present; borrow it when it sits in the first record, else join payloads.
pub(super) fn reassemble(buf: &[u8]) -> Result<Framed<'_>, Error> {
    if let Some(framed) = single_record(buf) {
        return Ok(framed);
    }
    let mut pos = 0;
    let mut records = 0;
    let mut have = 0; // handshake bytes in the records before `pos`
    let mut header = [0u8; HANDSHAKE_HEADER_LEN];
    let mut total = None; // the whole message length, once its header is known
    loop {
        // The rest of the message needs at least one more record header and
        // all of its missing bytes (at least one: else we would have returned).
        let missing = total.unwrap_or(HANDSHAKE_HEADER_LEN).saturating_sub(have);
        let record_len = record_header(buf, pos, pos + RECORD_HEADER_LEN + missing)?;
        let record_end = pos + RECORD_HEADER_LEN + record_len;
        let payload = buf.get(pos + RECORD_HEADER_LEN..record_end.min(buf.len()));
        let payload = payload.unwrap_or_default();
        // Collect the handshake header as its bytes arrive, whatever the framing.
        for (slot, &b) in header.iter_mut().skip(have).zip(payload) {
            *slot = b;
        }
        let known = have + payload.len();
        if known >= 1 && header[0] != HANDSHAKE_CLIENT_HELLO {
            return Err(Invalid::NotClientHello.into());
        }
        if total.is_none() && known >= HANDSHAKE_HEADER_LEN {
            let body_len = Reader::new(&header[1..]).u24("handshake length")?;
            total = Some(HANDSHAKE_HEADER_LEN + body_len);
        }
        have += record_len;
        records += 1;
        if payload.len() < record_len {
            let rest = total.unwrap_or(HANDSHAKE_HEADER_LEN).saturating_sub(have);
            let more = if rest == 0 {
                0
            } else {
                RECORD_HEADER_LEN + rest
            };
            return Err(need(record_end + more));
        }
        pos = record_end;
        if let Some(total) = total.filter(|&total| have >= total) {
            let message = Cow::Owned(join_records(buf.get(..pos).unwrap_or_default(), total)?);
            let version = buf.get(1..3).and_then(|v| v.try_into().ok());
            let record_version = version.map_or(0, u16::from_be_bytes);
            return Ok(Framed {
                message,
                record_version,
                len: pos,
                records,
            });
        }
    }
}

/// Check the record header at `pos` as far as its bytes have arrived and
/// return its length. While it is incomplete, ask for at least `floor` bytes.
pub(super) fn record_header(buf: &[u8], pos: usize, floor: usize) -> Result<usize, Error> {
    let rest = buf.get(pos..).unwrap_or_default();
    if rest.first().is_some_and(|&kind| kind != CONTENT_HANDSHAKE) {
        return Err(Invalid::NotHandshake.into());
    }
    if rest.get(1).is_some_and(|&major| major != 3) {
        return Err(Invalid::BadRecordVersion.into());
    }
    let Some(&[_, _, _, hi, lo]) = rest.first_chunk() else {
        return Err(need(floor.max(pos + RECORD_HEADER_LEN)));
    };
    match usize::from(u16::from_be_bytes([hi, lo])) {
        0 => Err(Invalid::EmptyRecord.into()),
        len if len > MAX_RECORD_LEN => Err(Invalid::RecordTooLarge.into()),
        len => Ok(len),
    }
}

/// The common case, checked without the general walk: one complete record
/// holding the whole ClientHello message, borrowed. Whatever it accepts, the
/// walk in [`reassemble`] accepts with the same result; anything else
/// (split, incomplete or invalid) goes there.
pub(super) fn single_record(buf: &[u8]) -> Option<Framed<'_>> {
    let [kind, major, minor, hi, lo, msg_type, a, b, c] = *buf.first_chunk::<9>()?;
    let record_len = usize::from(u16::from_be_bytes([hi, lo]));
    let body_len = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
    let message_len = HANDSHAKE_HEADER_LEN + body_len;
    let framed = kind == CONTENT_HANDSHAKE && major == 3 && msg_type == HANDSHAKE_CLIENT_HELLO;
    if !framed || record_len > MAX_RECORD_LEN {
        return None;
    }
    let payload = buf.get(RECORD_HEADER_LEN..RECORD_HEADER_LEN + record_len)?;
    let message = Cow::Borrowed(payload.get(..message_len)?);
    let record_version = u16::from_be_bytes([major, minor]);
    Some(Framed {
        message,
        record_version,
        len: RECORD_HEADER_LEN + record_len,
        records: 1,
    })
}

/// The first `total` handshake bytes of the (already checked) records in
/// `records`, joined. Only for split hellos: [`single_record`] has already
/// borrowed any hello that fits one record.
pub(super) fn join_records(records: &[u8], total: usize) -> Result<Vec<u8>, Invalid> {
    let mut r = Reader::new(records);
    let mut joined = Vec::with_capacity(records.len());
    while !r.is_empty() {
        r.take(3, "record")?;
        joined.extend_from_slice(r.prefixed_u16("record")?.rest());
    }
    joined.truncate(total);
    Ok(joined)
}
