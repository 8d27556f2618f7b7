//! `host:port` as configured or asked for: [`ServerAddr`] and the one
//! function that splits such a text. Pure: no I/O, no name resolution.

use std::fmt;

/// A server as configured: a host name or IP literal and a port. The name is
/// resolved at connect time, never at configuration time.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerAddr {
    /// Host name or IP literal (without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Split `host:port` or `[v6]:port` at its last colon into the host (brackets
/// removed) and the port text, unchecked. `None` when there is no port: no
/// colon, or the colon is inside the brackets (`[::1]`). Callers decide
/// which hosts and ports they accept.
pub fn split_host_port(s: &str) -> Option<(&str, &str)> {
    let (host, port) = s.rsplit_once(':')?;
    if host.ends_with(']') && !host.starts_with('[') || port.contains(']') {
        return None;
    }
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_splits() {
        assert_eq!(
            split_host_port("gw.example.com:443"),
            Some(("gw.example.com", "443"))
        );
        assert_eq!(split_host_port("[::1]:8443"), Some(("::1", "8443")));
        assert_eq!(split_host_port("10.0.0.1:x"), Some(("10.0.0.1", "x")));
        assert_eq!(split_host_port("gw.example.com"), None);
        assert_eq!(split_host_port("[::1]"), None);
        assert_eq!(split_host_port("::1]:1"), None);
    }

    #[test]
    fn ipv6_hosts_display_in_brackets() {
        let v6 = ServerAddr {
            host: "::1".into(),
            port: 443,
        };
        assert_eq!(v6.to_string(), "[::1]:443");
        let name = ServerAddr {
            host: "gw".into(),
            port: 443,
        };
        assert_eq!(name.to_string(), "gw:443");
    }
}
