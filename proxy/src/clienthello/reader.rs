//! Checked byte cursor for the ClientHello parser: every read names the
//! field it was reading, so a short buffer becomes `Invalid::Truncated(field)`
//! instead of a panic. No I/O, no allocation.

use super::error::Invalid;

/// A forward-only cursor over a borrowed byte slice.
#[derive(Debug, Clone, Copy)]
pub(super) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A cursor at the start of `buf`.
    #[inline]
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Self { rest: buf }
    }

    /// Whether every byte has been consumed.
    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Number of bytes not yet consumed.
    #[inline]
    pub(super) fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// Every byte not yet consumed, ending the cursor.
    #[inline]
    pub(super) fn rest(self) -> &'a [u8] {
        self.rest
    }

    /// The next `n` bytes.
    #[inline]
    pub(super) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], Invalid> {
        let (head, tail) = self
            .rest
            .split_at_checked(n)
            .ok_or(Invalid::Truncated(field))?;
        self.rest = tail;
        Ok(head)
    }

    /// The next `N` bytes as an array.
    #[inline]
    pub(super) fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], Invalid> {
        let (head, tail) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or(Invalid::Truncated(field))?;
        self.rest = tail;
        Ok(*head)
    }

    /// One byte.
    #[inline]
    pub(super) fn u8(&mut self, field: &'static str) -> Result<u8, Invalid> {
        self.array::<1>(field).map(|[b]| b)
    }

    /// A big-endian u16.
    #[inline]
    pub(super) fn u16(&mut self, field: &'static str) -> Result<u16, Invalid> {
        self.array(field).map(u16::from_be_bytes)
    }

    /// A big-endian u24, widened to usize.
    #[inline]
    pub(super) fn u24(&mut self, field: &'static str) -> Result<usize, Invalid> {
        self.array(field)
            .map(|[a, b, c]| usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c))
    }

    /// A sub-cursor over the next `len` bytes.
    #[inline]
    pub(super) fn sub(&mut self, len: usize, field: &'static str) -> Result<Self, Invalid> {
        self.take(len, field).map(Self::new)
    }

    /// A sub-cursor over a vector with a one-byte length prefix.
    #[inline]
    pub(super) fn prefixed_u8(&mut self, field: &'static str) -> Result<Self, Invalid> {
        let len = self.u8(field)?;
        self.sub(usize::from(len), field)
    }

    /// A sub-cursor over a vector with a two-byte length prefix.
    #[inline]
    pub(super) fn prefixed_u16(&mut self, field: &'static str) -> Result<Self, Invalid> {
        let len = self.u16(field)?;
        self.sub(usize::from(len), field)
    }

    /// Succeeds only when every byte has been consumed.
    #[inline]
    pub(super) fn finish(&self, field: &'static str) -> Result<(), Invalid> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(Invalid::TrailingBytes(field))
        }
    }
}
