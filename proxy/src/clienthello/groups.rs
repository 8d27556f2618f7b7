//! Named groups (IANA "TLS Supported Groups") of the key_share and
//! supported_groups extensions, kept inline and small (the parsed hello is
//! returned by value on every parse): key shares in order up to
//! [`Groups::CAPACITY`], the others counted; supported groups as a set.

use std::fmt;

use super::wire::is_grease;

/// A named group, by its IANA code point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group(pub u16);

/// The groups passthru names, in IANA code point order; their index is
/// their bit in a [`GroupSet`].
const NAMED: [(u16, &str); 20] = [
    (0x0017, "secp256r1"),
    (0x0018, "secp384r1"),
    (0x0019, "secp521r1"),
    (0x001a, "brainpoolp256r1tls13"),
    (0x001b, "brainpoolp384r1tls13"),
    (0x001c, "brainpoolp512r1tls13"),
    (0x001d, "x25519"),
    (0x001e, "x448"),
    (0x0100, "ffdhe2048"),
    (0x0101, "ffdhe3072"),
    (0x0102, "ffdhe4096"),
    (0x0103, "ffdhe6144"),
    (0x0104, "ffdhe8192"),
    (0x0200, "mlkem512"),
    (0x0201, "mlkem768"),
    (0x0202, "mlkem1024"),
    (0x11eb, "secp256r1mlkem768"),
    (0x11ec, "x25519mlkem768"),
    (0x11ed, "secp384r1mlkem1024"),
    (0x6399, "x25519kyber768draft00"),
];

impl Group {
    /// Index in [`NAMED`], for the groups passthru names.
    #[inline]
    fn index(self) -> Option<usize> {
        // Ranges of consecutive code points in NAMED, and their first index.
        let i = match self.0 {
            code @ 0x0017..=0x001e => code - 0x0017,
            code @ 0x0100..=0x0104 => code - 0x0100 + 8,
            code @ 0x0200..=0x0202 => code - 0x0200 + 13,
            code @ 0x11eb..=0x11ed => code - 0x11eb + 16,
            0x6399 => 19,
            _ => return None,
        };
        Some(usize::from(i))
    }

    /// The IANA name, lower-case (`x25519mlkem768`, `x25519`, `secp256r1`,
    /// …), or `other` for a code point passthru does not name.
    #[must_use]
    pub fn name(self) -> &'static str {
        self.index()
            .and_then(|i| NAMED.get(i))
            .map_or("other", |&(_, name)| name)
    }

    /// Whether the group is a post-quantum (ML-KEM or Kyber) hybrid or KEM.
    #[must_use]
    pub fn post_quantum(self) -> bool {
        matches!(self.0, 0x0200..=0x0202 | 0x11eb..=0x11ed | 0x6399)
    }
}

/// A set of groups (the supported_groups extension): a bit per named
/// group and a count of the others, GREASE skipped. Order is not kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupSet {
    named: u32,
    /// Groups offered that passthru does not name.
    pub other: u16,
}

impl GroupSet {
    /// Add `code` unless it is GREASE.
    pub(super) fn insert(&mut self, code: u16) {
        if is_grease(code) {
            return;
        }
        match Group(code).index() {
            Some(i) => self.named |= 1 << i,
            None => self.other = self.other.saturating_add(1),
        }
    }

    /// Whether `group` is in the set (for `other` groups: whether any was).
    #[must_use]
    pub fn contains(&self, group: Group) -> bool {
        match group.index() {
            Some(i) => self.named & (1 << i) != 0,
            None => self.other > 0,
        }
    }

    /// The named groups in the set, in code point order.
    pub fn iter(&self) -> impl Iterator<Item = Group> + '_ {
        NAMED
            .iter()
            .enumerate()
            .filter(|&(i, _)| self.named & (1 << i) != 0)
            .map(|(_, &(code, _))| Group(code))
    }
}

impl FromIterator<u16> for GroupSet {
    fn from_iter<I: IntoIterator<Item = u16>>(codes: I) -> Self {
        let mut set = GroupSet::default();
        for code in codes {
            set.insert(code);
        }
        set
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
    pub const CAPACITY: usize = 4;

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
