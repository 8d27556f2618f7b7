//! Named groups (IANA "TLS Supported Groups") of the key_share and
//! supported_groups extensions, kept inline: a hello's groups never
//! allocate, and a hostile list is cut at [`Groups::CAPACITY`] and counted.

use std::fmt;

use super::is_grease;

/// A named group, by its IANA code point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group(pub u16);

impl Group {
    /// The IANA name, lower-case (`x25519mlkem768`, `x25519`, `secp256r1`,
    /// …), or `other` for a code point passthru does not name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self.0 {
            0x0017 => "secp256r1",
            0x0018 => "secp384r1",
            0x0019 => "secp521r1",
            0x001a => "brainpoolp256r1tls13",
            0x001b => "brainpoolp384r1tls13",
            0x001c => "brainpoolp512r1tls13",
            0x001d => "x25519",
            0x001e => "x448",
            0x0100 => "ffdhe2048",
            0x0101 => "ffdhe3072",
            0x0102 => "ffdhe4096",
            0x0103 => "ffdhe6144",
            0x0104 => "ffdhe8192",
            0x0200 => "mlkem512",
            0x0201 => "mlkem768",
            0x0202 => "mlkem1024",
            0x11eb => "secp256r1mlkem768",
            0x11ec => "x25519mlkem768",
            0x11ed => "secp384r1mlkem1024",
            0x6399 => "x25519kyber768draft00",
            _ => "other",
        }
    }

    /// Whether the group is a post-quantum (ML-KEM or Kyber) hybrid or KEM.
    #[must_use]
    pub fn post_quantum(self) -> bool {
        matches!(self.0, 0x0200..=0x0202 | 0x11eb..=0x11ed | 0x6399)
    }
}

/// Groups in the order sent, GREASE skipped: the first [`Groups::CAPACITY`]
/// kept, the others only counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Groups {
    list: [u16; Groups::CAPACITY],
    len: u8,
    /// Groups beyond the kept ones.
    pub more: u16,
}

impl Groups {
    /// Groups kept per extension.
    pub const CAPACITY: usize = 16;

    /// Add `code` unless it is GREASE.
    pub(super) fn push(&mut self, code: u16) {
        if is_grease(code) {
            return;
        }
        match self.list.get_mut(usize::from(self.len)) {
            Some(slot) => {
                *slot = code;
                self.len += 1;
            }
            None => self.more = self.more.saturating_add(1),
        }
    }

    /// The groups kept, in order.
    pub fn iter(&self) -> impl Iterator<Item = Group> + '_ {
        self.list
            .get(..usize::from(self.len))
            .unwrap_or_default()
            .iter()
            .map(|&code| Group(code))
    }

    /// Whether no group was kept.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl FromIterator<u16> for Groups {
    fn from_iter<I: IntoIterator<Item = u16>>(codes: I) -> Self {
        let mut groups = Groups::default();
        for code in codes {
            groups.push(code);
        }
        groups
    }
}

/// Comma-separated names, as in the access log (`x25519mlkem768,x25519`).
impl fmt::Display for Groups {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, group) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(group.name())?;
        }
        Ok(())
    }
}
