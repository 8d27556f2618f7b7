//! `trusted_proxies`: the set of CIDRs whose peers may send a PROXY header,
//! and the check "may this peer send one". No I/O.
//!
//! A PROXY header is a claim anyone can make, so a listener that expects one
//! accepts it only from a peer inside this set; any other peer is refused
//! before its header is read. Entries are IPv4 or IPv6 CIDRs, or bare
//! addresses (one host). A CIDR with host bits set (`10.1.2.3/8`) is refused
//! rather than silently widened or narrowed: in a trust list a typo must not
//! change who is trusted.

use std::net::IpAddr;

use ipnet::IpNet;

/// The peers allowed to send a PROXY header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    /// Parse CIDRs (`"10.0.0.0/8"`, `"2001:db8::/32"`; a bare address is
    /// `/32` or `/128`). `Err((index, reason))` names the first bad entry by
    /// its position in `cidrs`; `reason` quotes it and says what is wrong.
    pub fn parse<S: AsRef<str>>(cidrs: &[S]) -> Result<TrustedProxies, (usize, String)> {
        let nets = cidrs
            .iter()
            .enumerate()
            .map(|(index, cidr)| net(cidr.as_ref()).map_err(|reason| (index, reason)))
            .collect::<Result<_, _>>()?;
        Ok(Self { nets })
    }

    /// Whether `ip` may send a PROXY header. An IPv4-mapped IPv6 peer
    /// (`::ffff:a.b.c.d`, as a dual-stack socket reports IPv4 clients) is
    /// matched against the IPv4 CIDRs too.
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        let mapped = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        self.nets
            .iter()
            .any(|net| net.contains(&ip) || mapped.is_some_and(|v4| net.contains(&v4)))
    }

    /// Whether the set is empty (no peer may send a header).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// Number of entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.nets.len()
    }
}

/// One entry: a CIDR without host bits, or a bare address.
fn net(entry: &str) -> Result<IpNet, String> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    let net = entry.parse::<IpNet>().map_err(|_| {
        format!("{entry:?} is not an IP address or CIDR (like \"10.0.0.0/8\" or \"2001:db8::/32\")")
    })?;
    if net.trunc() != net {
        return Err(format!(
            "{entry:?} has host bits set: write {:?} for the network, or the address alone for one host",
            net.trunc().to_string()
        ));
    }
    Ok(net)
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ipv4_cidr_contains_its_addresses_only() {
        let trusted = TrustedProxies::parse(&["10.0.0.0/8", "192.168.1.0/24"]).unwrap();
        assert_eq!(trusted.len(), 2);
        assert!(trusted.contains(ip("10.0.0.1")));
        assert!(trusted.contains(ip("10.255.255.255")));
        assert!(trusted.contains(ip("192.168.1.200")));
        assert!(!trusted.contains(ip("11.0.0.1")));
        assert!(!trusted.contains(ip("192.168.2.1")));
        assert!(!trusted.contains(ip("::1")));
    }

    #[test]
    fn ipv6_cidr_contains_its_addresses_only() {
        let trusted = TrustedProxies::parse(&["2001:db8::/32"]).unwrap();
        assert!(trusted.contains(ip("2001:db8::1")));
        assert!(trusted.contains(ip("2001:db8:ffff::1")));
        assert!(!trusted.contains(ip("2001:db9::1")));
        assert!(!trusted.contains(ip("10.0.0.1")));
    }

    #[test]
    fn bare_addresses_are_single_hosts() {
        let trusted = TrustedProxies::parse(&["127.0.0.23", "::1"]).unwrap();
        assert!(trusted.contains(ip("127.0.0.23")));
        assert!(!trusted.contains(ip("127.0.0.24")));
        assert!(!trusted.contains(ip("127.0.0.1")));
        assert!(trusted.contains(ip("::1")));
        assert!(!trusted.contains(ip("::2")));
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_cidrs() {
        let trusted = TrustedProxies::parse(&["10.0.0.0/8"]).unwrap();
        let mapped = Ipv4Addr::new(10, 1, 2, 3).to_ipv6_mapped();
        assert!(trusted.contains(IpAddr::V6(mapped)));
        let outside = Ipv4Addr::new(11, 1, 2, 3).to_ipv6_mapped();
        assert!(!trusted.contains(IpAddr::V6(outside)));
        // IPv4-compatible (::a.b.c.d, deprecated) is not IPv4-mapped.
        let compatible = Ipv4Addr::new(10, 1, 2, 3).to_ipv6_compatible();
        assert!(!trusted.contains(IpAddr::V6(compatible)));
    }

    #[test]
    fn ipv6_cidr_of_mapped_range_matches_mapped_peers() {
        let trusted = TrustedProxies::parse(&["::ffff:10.0.0.0/104"]).unwrap();
        let mapped: Ipv6Addr = Ipv4Addr::new(10, 9, 8, 7).to_ipv6_mapped();
        assert!(trusted.contains(IpAddr::V6(mapped)));
    }

    #[test]
    fn bad_entry_is_named_by_index() {
        let err =
            TrustedProxies::parse(&["10.0.0.0/8", "::1", "10.0.0.0/33", "nonsense"]).unwrap_err();
        assert_eq!(err.0, 2);
        assert!(err.1.contains("\"10.0.0.0/33\""), "{}", err.1);
        assert!(err.1.contains("not an IP address or CIDR"), "{}", err.1);

        let err = TrustedProxies::parse(&["10.0.0.0/8", "example.com"]).unwrap_err();
        assert_eq!(err.0, 1);
        assert!(err.1.contains("\"example.com\""), "{}", err.1);

        let err = TrustedProxies::parse(&[" 10.0.0.0/8"]).unwrap_err();
        assert_eq!(err.0, 0);
    }

    #[test]
    fn host_bits_are_refused_with_the_network_to_write() {
        let err = TrustedProxies::parse(&["192.168.1.1/24"]).unwrap_err();
        assert_eq!(err.0, 0);
        assert!(err.1.contains("host bits"), "{}", err.1);
        assert!(err.1.contains("\"192.168.1.0/24\""), "{}", err.1);
        let err = TrustedProxies::parse(&["::1", "2001:db8::1/32"]).unwrap_err();
        assert_eq!(err.0, 1);
        assert!(err.1.contains("\"2001:db8::/32\""), "{}", err.1);
    }

    #[test]
    fn empty_list_trusts_no_one() {
        let trusted = TrustedProxies::parse::<&str>(&[]).unwrap();
        assert!(trusted.is_empty());
        assert_eq!(trusted.len(), 0);
        assert!(!trusted.contains(ip("127.0.0.1")));
        assert_eq!(trusted, TrustedProxies::default());
    }

    #[test]
    fn accepts_owned_strings() {
        let entries = vec!["0.0.0.0/0".to_owned(), "::/0".to_owned()];
        let trusted = TrustedProxies::parse(&entries).unwrap();
        assert!(trusted.contains(ip("203.0.113.9")));
        assert!(trusted.contains(ip("2001:db8::9")));
    }
}
