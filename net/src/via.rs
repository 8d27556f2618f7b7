//! A `via` URL (`http://[user:pass@]host:port`): parsed, validated, and
//! shown with its password masked. Pure: no I/O.

use std::fmt;
use std::str::FromStr;

use base64::Engine;

use crate::addr::{ServerAddr, split_host_port};

/// A `via = "http://[user:pass@]host:port"` URL. `Display` and `Debug` never
/// show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct ViaUrl {
    /// The proxy's address.
    pub proxy: ServerAddr,
    credentials: Option<(String, String)>,
}

/// Why a `via` URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ViaUrlError {
    /// Not `http://`.
    #[error("only http:// proxies are supported (the CONNECT request itself is not encrypted)")]
    Scheme,
    /// No `:port`.
    #[error("the port is missing, as in \"http://proxy.corp:3128\"")]
    MissingPort,
    /// A host or port that cannot be used.
    #[error("the host or port is not valid")]
    BadAddress,
    /// `%` not followed by two hex digits, or not UTF-8 once decoded.
    #[error("the user name or password has bad percent-encoding")]
    BadPercentEncoding,
    /// A path, query or fragment after the authority.
    #[error("a proxy URL has no path, query or fragment")]
    Path,
}

impl FromStr for ViaUrl {
    type Err = ViaUrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s
            .strip_prefix("http://")
            .or_else(|| {
                s.get(..7)
                    .filter(|p| p.eq_ignore_ascii_case("http://"))
                    .map(|_| &s[7..])
            })
            .ok_or(ViaUrlError::Scheme)?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#']) {
            return Err(ViaUrlError::Path);
        }
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let credentials = match userinfo {
            None => None,
            Some(u) => {
                let (user, pass) = u.split_once(':').unwrap_or((u, ""));
                Some((percent_decode(user)?, percent_decode(pass)?))
            }
        };
        let (host, port) = split_host_port(hostport).ok_or(ViaUrlError::MissingPort)?;
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or(ViaUrlError::BadAddress)?;
        let host_ok = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b':'));
        if !host_ok {
            return Err(ViaUrlError::BadAddress);
        }
        Ok(ViaUrl {
            proxy: ServerAddr {
                host: host.to_ascii_lowercase(),
                port,
            },
            credentials,
        })
    }
}

impl ViaUrl {
    /// The `Proxy-Authorization` value, when credentials are configured.
    pub fn authorization(&self) -> Option<String> {
        self.credentials.as_ref().map(|(user, pass)| {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            format!("Basic {token}")
        })
    }
}

impl fmt::Display for ViaUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.credentials {
            // The user name is a credential too (half of a guess).
            Some(_) => write!(f, "http://***:***@{}", self.proxy),
            None => write!(f, "http://{}", self.proxy),
        }
    }
}

impl fmt::Debug for ViaUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ViaUrl({self})")
    }
}

fn percent_decode(s: &str) -> Result<String, ViaUrlError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .ok_or(ViaUrlError::BadPercentEncoding)?;
            let hex = std::str::from_utf8(hex).map_err(|_| ViaUrlError::BadPercentEncoding)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| ViaUrlError::BadPercentEncoding)?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ViaUrlError::BadPercentEncoding)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_never_show_the_password() {
        let v: ViaUrl = "http://alice:s%40cret@proxy.corp:3128".parse().unwrap();
        assert_eq!(v.proxy.to_string(), "proxy.corp:3128");
        assert_eq!(v.to_string(), "http://***:***@proxy.corp:3128");
        assert_eq!(format!("{v:?}"), "ViaUrl(http://***:***@proxy.corp:3128)");
        assert_eq!(
            v.authorization().unwrap(),
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("alice:s@cret")
            )
        );
        let v: ViaUrl = "http://[::1]:8080/".parse().unwrap();
        assert_eq!(v.proxy.host, "::1");
        assert_eq!(v.authorization(), None);
        assert_eq!(v.to_string(), "http://[::1]:8080");
    }

    #[test]
    fn bad_urls_say_why() {
        assert_eq!("https://p:1".parse::<ViaUrl>(), Err(ViaUrlError::Scheme));
        assert_eq!("socks5://p:1".parse::<ViaUrl>(), Err(ViaUrlError::Scheme));
        assert_eq!(
            "http://proxy".parse::<ViaUrl>(),
            Err(ViaUrlError::MissingPort)
        );
        assert_eq!(
            "http://proxy:0".parse::<ViaUrl>(),
            Err(ViaUrlError::BadAddress)
        );
        assert_eq!(
            "http://proxy:99999".parse::<ViaUrl>(),
            Err(ViaUrlError::BadAddress)
        );
        assert_eq!(
            "http://u:%zz@proxy:1".parse::<ViaUrl>(),
            Err(ViaUrlError::BadPercentEncoding)
        );
        assert_eq!(
            "http://u:%4@proxy:1".parse::<ViaUrl>(),
            Err(ViaUrlError::BadPercentEncoding)
        );
        assert_eq!(
            "http://proxy:1/path".parse::<ViaUrl>(),
            Err(ViaUrlError::Path)
        );
        assert_eq!(
            "http://[::1]".parse::<ViaUrl>(),
            Err(ViaUrlError::MissingPort)
        );
    }
}
