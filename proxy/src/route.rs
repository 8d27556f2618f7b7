//! Server-name patterns and the route table: exact names before wildcards,
//! longest wildcard first, then the ALPN constraint, then `[default]`.
//! A lookup costs one hash probe for the exact name and one per distinct
//! wildcard suffix length configured, whatever the name's number of labels:
//! linear in the name's length. No I/O.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// One route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConfig {
    /// `name`, or `route[N]` (its position) when the file gives none: the
    /// route's name in the access log and the `route` metric label.
    pub name: String,
    /// Server-name patterns (exact or one leading `*.` label).
    pub server_names: Vec<ServerNamePattern>,
    /// ALPN protocols of which the client must offer one; empty means any.
    pub alpn: Vec<String>,
    /// Index of the backend in the configuration.
    pub backend: usize,
}

/// A `server_names` entry: an exact name, or `*.` followed by a suffix.
/// Stored lower-case without a trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ServerNamePattern {
    /// Matches this name only.
    Exact(String),
    /// `*.suffix`: matches any name that ends in `.suffix` (one or more labels before it).
    Wildcard(String),
}

/// Why a `server_names` entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// Empty, or only a dot.
    #[error("the name is empty")]
    Empty,
    /// Longer than 253 characters.
    #[error("longer than 253 characters")]
    TooLong,
    /// `*` anywhere but as the whole first label.
    #[error("`*` is only allowed as the whole first label, as in \"*.example.com\"")]
    MisplacedWildcard,
    /// An empty label (`a..b`) or a label over 63 characters.
    #[error("labels must be 1 to 63 characters")]
    BadLabel,
    /// A character outside letters, digits, `-`, `_`, `.`, `:`.
    #[error("only letters, digits, '-', '_', '.' and ':' are allowed")]
    BadCharacter,
}

impl FromStr for ServerNamePattern {
    type Err = PatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.strip_suffix('.').unwrap_or(s).to_ascii_lowercase();
        let (wildcard, name) = match s.strip_prefix("*.") {
            Some(rest) => (true, rest.to_string()),
            None => (false, s),
        };
        if name.is_empty() {
            return Err(PatternError::Empty);
        }
        if name.len() > 253 {
            return Err(PatternError::TooLong);
        }
        if name.contains('*') {
            return Err(PatternError::MisplacedWildcard);
        }
        if !name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':'))
        {
            return Err(PatternError::BadCharacter);
        }
        if name.split('.').any(|l| l.is_empty() || l.len() > 63) {
            return Err(PatternError::BadLabel);
        }
        Ok(if wildcard {
            ServerNamePattern::Wildcard(name)
        } else {
            ServerNamePattern::Exact(name)
        })
    }
}

impl fmt::Display for ServerNamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerNamePattern::Exact(n) => f.write_str(n),
            ServerNamePattern::Wildcard(s) => write!(f, "*.{s}"),
        }
    }
}

/// How a connection was matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    /// An exact server name.
    Exact,
    /// A wildcard pattern.
    Wildcard,
    /// No route matched; `[default]` applies.
    Default,
}

/// The result of a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routed {
    /// Index of the route in the file (`None` for `[default]`).
    pub route: Option<usize>,
    /// Index of the backend.
    pub backend: usize,
    /// Which rule matched.
    pub kind: MatchKind,
}

/// All routes of a configuration, indexed for lookup.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    exact: HashMap<String, Vec<usize>>,
    wildcard: HashMap<String, Vec<usize>>,
    /// Lengths of the wildcard suffixes, distinct, longest first.
    wildcard_lens: Vec<usize>,
    alpn: Vec<Vec<String>>,
    backend: Vec<usize>,
    default: Option<usize>,
}

impl RouteTable {
    /// Index `routes` (in file order); `default` is the `[default]`
    /// backend's index.
    pub fn from_routes(routes: &[RouteConfig], default: Option<usize>) -> RouteTable {
        let mut table = RouteTable {
            default,
            ..RouteTable::default()
        };
        for (i, route) in routes.iter().enumerate() {
            for name in &route.server_names {
                let (map, key) = match name {
                    ServerNamePattern::Exact(n) => (&mut table.exact, n),
                    ServerNamePattern::Wildcard(s) => (&mut table.wildcard, s),
                };
                let list = map.entry(key.clone()).or_default();
                if !list.contains(&i) {
                    list.push(i);
                }
            }
            table.alpn.push(route.alpn.clone());
            table.backend.push(route.backend);
        }
        table.wildcard_lens = table.wildcard.keys().map(String::len).collect();
        table.wildcard_lens.sort_unstable_by(|a, b| b.cmp(a));
        table.wildcard_lens.dedup();
        table
    }

    /// Find where a connection goes, given the SNI as sent (any case, an
    /// optional trailing dot) and the ALPN protocols offered.
    pub fn lookup(&self, sni: Option<&str>, alpn: &[String]) -> Option<Routed> {
        let allowed = |r: usize| {
            let wanted = &self.alpn[r];
            wanted.is_empty() || wanted.iter().any(|w| alpn.iter().any(|o| o == w))
        };
        if let Some((route, kind)) = sni.and_then(|name| self.find(name, allowed)) {
            return Some(self.routed(route, kind));
        }
        self.default.map(|backend| Routed {
            route: None,
            backend,
            kind: MatchKind::Default,
        })
    }

    /// Whether some route (not `[default]`) names `name`, whatever its ALPN
    /// constraint: what an inbound CONNECT to `name` may open.
    pub fn routes_name(&self, name: &str) -> bool {
        self.find(name, |_| true).is_some()
    }

    /// Hash probes a lookup of `name` makes: 1 for the exact name plus at
    /// most one per distinct wildcard suffix length, whatever the name.
    /// (The fuzz target's cost check.)
    pub fn lookup_probes(&self, name: &str) -> usize {
        let mut probes = 0;
        let _ = self.find_counting(name, |_| false, &mut probes);
        probes
    }

    /// Distinct wildcard suffix lengths configured: the bound on
    /// [`lookup_probes`](Self::lookup_probes) is one more than this.
    pub fn wildcard_lengths(&self) -> usize {
        self.wildcard_lens.len()
    }

    fn find(&self, name: &str, allowed: impl Fn(usize) -> bool) -> Option<(usize, MatchKind)> {
        self.find_counting(name, allowed, &mut 0)
    }

    /// [`find`](Self::find), adding the hash probes it made to `probes`.
    fn find_counting(
        &self,
        name: &str,
        allowed: impl Fn(usize) -> bool,
        probes: &mut usize,
    ) -> Option<(usize, MatchKind)> {
        let mut lower = [0u8; 256];
        let owned;
        let name = name.strip_suffix('.').unwrap_or(name);
        let name: &str = if name.len() <= lower.len() && name.is_ascii() {
            let buf = &mut lower[..name.len()];
            buf.copy_from_slice(name.as_bytes());
            buf.make_ascii_lowercase();
            std::str::from_utf8(buf).unwrap_or(name)
        } else {
            owned = name.to_lowercase();
            &owned
        };
        let first = |list: Option<&Vec<usize>>| list?.iter().copied().find(|&r| allowed(r));
        *probes += 1;
        if let Some(r) = first(self.exact.get(name)) {
            return Some((r, MatchKind::Exact));
        }
        // Longest suffix first, and only suffixes as long as a configured
        // one that start right after a dot: never one probe per label.
        for &len in &self.wildcard_lens {
            let Some(dot) = name.len().checked_sub(len + 1) else {
                continue;
            };
            if name.as_bytes().get(dot) != Some(&b'.') {
                continue;
            }
            *probes += 1;
            if let Some(r) = first(name.get(dot + 1..).and_then(|s| self.wildcard.get(s))) {
                return Some((r, MatchKind::Wildcard));
            }
        }
        None
    }

    fn routed(&self, route: usize, kind: MatchKind) -> Routed {
        Routed {
            route: Some(route),
            backend: self.backend[route],
            kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(names: &[&str], alpn: &[&str], backend: usize) -> RouteConfig {
        RouteConfig {
            name: String::new(),
            server_names: names.iter().map(|n| n.parse().unwrap()).collect(),
            alpn: alpn.iter().map(|s| s.to_string()).collect(),
            backend,
        }
    }

    fn table() -> RouteTable {
        RouteTable::from_routes(
            &[
                route(&["*.example.com"], &[], 0),
                route(&["*.agents.example.com"], &[], 1),
                route(&["gw.example.com"], &["h2"], 2),
                route(&["gw.example.com"], &[], 3),
                route(&["x.agents.example.com"], &[], 4),
            ],
            Some(9),
        )
    }

    fn backend(t: &RouteTable, sni: Option<&str>, alpn: &[&str]) -> (usize, MatchKind) {
        let alpn: Vec<String> = alpn.iter().map(|s| s.to_string()).collect();
        let r = t.lookup(sni, &alpn).unwrap();
        (r.backend, r.kind)
    }

    #[test]
    fn exact_beats_wildcard_and_longest_wildcard_wins() {
        let t = table();
        assert_eq!(
            backend(&t, Some("x.agents.example.com"), &[]),
            (4, MatchKind::Exact)
        );
        assert_eq!(
            backend(&t, Some("y.agents.example.com"), &[]),
            (1, MatchKind::Wildcard)
        );
        assert_eq!(
            backend(&t, Some("a.b.example.com"), &[]),
            (0, MatchKind::Wildcard)
        );
        assert_eq!(
            backend(&t, Some("example.com"), &[]),
            (9, MatchKind::Default)
        );
    }

    #[test]
    fn alpn_constraint_then_next_route() {
        let t = table();
        assert_eq!(
            backend(&t, Some("gw.example.com"), &["h2", "http/1.1"]),
            (2, MatchKind::Exact)
        );
        assert_eq!(
            backend(&t, Some("gw.example.com"), &["http/1.1"]),
            (3, MatchKind::Exact)
        );
        assert_eq!(
            backend(&t, Some("gw.example.com"), &[]),
            (3, MatchKind::Exact)
        );
    }

    #[test]
    fn case_and_trailing_dot_are_ignored() {
        let t = table();
        assert_eq!(
            backend(&t, Some("GW.Example.COM."), &[]),
            (3, MatchKind::Exact)
        );
        assert_eq!(
            backend(&t, Some("Y.AGENTS.example.com"), &[]),
            (1, MatchKind::Wildcard)
        );
    }

    #[test]
    fn no_sni_goes_to_default_or_nowhere() {
        assert_eq!(backend(&table(), None, &[]), (9, MatchKind::Default));
        let t = RouteTable::from_routes(&[route(&["gw.example.com"], &[], 0)], None);
        assert_eq!(t.lookup(None, &[]), None);
        assert_eq!(t.lookup(Some("other.example.com"), &[]), None);
    }

    #[test]
    fn lookup_work_does_not_grow_with_the_labels_of_the_name() {
        let t = table();
        // 8,000 labels: the old walk probed one suffix per dot.
        let long = format!("{}agents.example.com", "a.".repeat(8000));
        let mut probes = 0;
        let found = t.find_counting(&long, |_| true, &mut probes);
        assert_eq!(found, Some((1, MatchKind::Wildcard)));
        // The exact name, then at most one probe per wildcard length.
        assert!(probes <= 1 + 2, "{probes} probes");
        let mut probes = 0;
        assert_eq!(
            t.find_counting(&"b.".repeat(8000), |_| true, &mut probes),
            None
        );
        assert!(probes <= 1 + 2, "{probes} probes");
    }

    #[test]
    fn wildcard_suffix_starts_after_a_dot() {
        let t = table();
        assert_eq!(
            backend(&t, Some("xexample.com"), &[]),
            (9, MatchKind::Default)
        );
        assert_eq!(
            backend(&t, Some("é.agents.example.com"), &[]),
            (1, MatchKind::Wildcard)
        );
    }

    #[test]
    fn routes_name_ignores_alpn_and_default() {
        let t = table();
        assert!(t.routes_name("gw.example.com"));
        assert!(t.routes_name("deep.agents.example.com"));
        assert!(!t.routes_name("example.com"));
        let h2_only = RouteTable::from_routes(&[route(&["gw.example.com"], &["h2"], 0)], Some(1));
        assert!(h2_only.routes_name("GW.example.com."));
        assert!(!h2_only.routes_name("other.example.com"));
    }

    #[test]
    fn patterns_are_checked() {
        assert_eq!(
            "GW.example.com.".parse(),
            Ok(ServerNamePattern::Exact("gw.example.com".into()))
        );
        assert_eq!(
            "*.Example.com".parse(),
            Ok(ServerNamePattern::Wildcard("example.com".into()))
        );
        assert_eq!(
            "a.*.com".parse::<ServerNamePattern>(),
            Err(PatternError::MisplacedWildcard)
        );
        assert_eq!(
            "*".parse::<ServerNamePattern>(),
            Err(PatternError::MisplacedWildcard)
        );
        assert_eq!("".parse::<ServerNamePattern>(), Err(PatternError::Empty));
        assert_eq!(
            "a..b".parse::<ServerNamePattern>(),
            Err(PatternError::BadLabel)
        );
        assert_eq!(
            "a b".parse::<ServerNamePattern>(),
            Err(PatternError::BadCharacter)
        );
        assert_eq!(
            "*.".parse::<ServerNamePattern>(),
            Err(PatternError::MisplacedWildcard)
        );
    }
}
