//! `passthru check --explain NAME`: where a connection for a server name
//! would go, and why, in words an operator can check against the file.

use std::fmt::Write;

use crate::config::{Config, ExpectProxy, SendProxy, ServerLimits};
use crate::route::{MatchKind, RouteTable, ServerNamePattern};

/// A route as the file knows it: `route[N]`, or `NAME (route[N])` when named.
fn label(config: &Config, i: usize) -> String {
    let position = format!("route[{i}]");
    match config.routes.get(i) {
        Some(r) if r.name != position => format!("{} ({position})", r.name),
        _ => position,
    }
}

/// Explain the routing of a connection with SNI `name` offering `alpn`.
pub fn explain(config: &Config, name: &str, alpn: &[String]) -> String {
    let mut out = String::new();
    let offered = if alpn.is_empty() {
        "no ALPN".to_string()
    } else {
        format!("ALPN {}", alpn.join(","))
    };
    let _ = writeln!(out, "{name} ({offered}):");
    let lower = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    // Routes whose names match but whose ALPN constraint the client fails.
    for (i, route) in config.routes.iter().enumerate() {
        if route.alpn.is_empty() || route.alpn.iter().any(|a| alpn.contains(a)) {
            continue;
        }
        if let Some(pattern) = route.server_names.iter().find(|p| matches(p, &lower)) {
            let _ = writeln!(
                out,
                "  skipped {} ({pattern}): it requires ALPN {}, not offered",
                label(config, i),
                route.alpn.join(" or ")
            );
        }
    }
    let table = RouteTable::from_routes(&config.routes, config.default_backend);
    let Some(routed) = table.lookup(Some(name), alpn) else {
        let _ = writeln!(
            out,
            "  refused: no route matches and there is no [default]; the client gets a TLS unrecognized_name alert (reason no_route)"
        );
        return out;
    };
    let why = match (routed.route, routed.kind) {
        (Some(i), MatchKind::Exact) => format!("{}, exact name {lower}", label(config, i)),
        (Some(i), MatchKind::Wildcard) => {
            let pattern = config.routes[i]
                .server_names
                .iter()
                .filter(|p| matches(p, &lower))
                .filter(|p| matches!(p, ServerNamePattern::Wildcard(_)))
                .max_by_key(|p| p.to_string().len())
                .map_or_else(String::new, ToString::to_string);
            format!(
                "{}, wildcard {pattern} (the longest wildcard that matches; no exact name does)",
                label(config, i)
            )
        }
        _ => "[default]: no route matches".to_string(),
    };
    let _ = writeln!(out, "  route:    {why}");
    let Some(backend) = config.backends.get(routed.backend) else {
        return out;
    };
    let servers: Vec<String> = backend.servers.iter().map(ToString::to_string).collect();
    let _ = writeln!(
        out,
        "  backend:  {} ({}, {} server{}: {})",
        backend.name,
        backend.balance.as_str(),
        servers.len(),
        if servers.len() == 1 { "" } else { "s" },
        servers.join(", ")
    );
    let _ = writeln!(
        out,
        "  via:      {}",
        backend.via.as_ref().map_or_else(
            || "none (direct TCP to the servers)".to_string(),
            |v| format!("HTTP CONNECT through {v}")
        )
    );
    let header = match backend.send_proxy_protocol {
        SendProxy::Off => "none".to_string(),
        SendProxy::V1 => "PROXY v1 (client address, listener address)".to_string(),
        SendProxy::V2 => {
            format!("PROXY v2 (client address, listener address, authority TLV \"{lower}\")")
        }
    };
    let _ = writeln!(
        out,
        "  to the servers: {header}, then the ClientHello unchanged"
    );
    let _ = writeln!(out, "  limits:   {}", limits(&backend.limits));
    for l in &config.listeners {
        let front = match l.proxy_protocol {
            ExpectProxy::Off => "no PROXY header expected".to_string(),
            mode => format!(
                "expects a PROXY {} header from trusted_proxies ({} entries)",
                match mode {
                    ExpectProxy::V1 => "v1",
                    ExpectProxy::V2 => "v2",
                    _ => "v1 or v2",
                },
                l.trusted_proxies.len()
            ),
        };
        let per_client = match l.client_limit.max_per_client {
            0 => String::new(),
            n => format!(
                "; at most {n} open per client address ({} exempt CIDRs), beyond: closed (client_limit)",
                l.client_limit.exempt.len()
            ),
        };
        let _ = writeln!(
            out,
            "  listener: {} on {}: {front}{per_client}",
            l.name, l.bind
        );
    }
    out
}

/// The backend's server limits, queue and slow start, in one line.
fn limits(l: &ServerLimits) -> String {
    let fmt = |d| humantime::format_duration(d).to_string();
    let ramp = if l.slow_start.is_zero() {
        String::new()
    } else if l.max_per_server == 0 {
        format!(
            "; slow start: a server that comes up gets 10% to 100% of its share of new connections over {}",
            fmt(l.slow_start)
        )
    } else {
        format!(
            "; slow start: a server that comes up ramps its limit from 10% to 100% over {}",
            fmt(l.slow_start)
        )
    };
    if l.max_per_server == 0 {
        return format!("no max_connections_per_server (no queue){ramp}");
    }
    format!(
        "at most {} open per server; when every usable server is full, wait in a FIFO queue of at most {} (beyond: queue_full) for up to {} (then: queue_timeout){ramp}",
        l.max_per_server,
        l.max_queue,
        fmt(l.queue_timeout)
    )
}

fn matches(pattern: &ServerNamePattern, name: &str) -> bool {
    match pattern {
        ServerNamePattern::Exact(n) => n == name,
        ServerNamePattern::Wildcard(suffix) => {
            name.len() > suffix.len() + 1
                && name.ends_with(suffix.as_str())
                && name[..name.len() - suffix.len()].ends_with('.')
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[[listener]]
name = "public"
bind = "127.0.0.1:8443"
proxy_protocol = "v2"
trusted_proxies = ["10.0.0.0/8"]

[[route]]
server_names = ["gw.example.com"]
alpn = ["h2"]
backend = "h2"

[[route]]
server_names = ["gw.example.com", "*.agents.example.com"]
backend = "gateway"

[[route]]
server_names = ["*.example.com"]
backend = "gateway"

[[backend]]
name = "gateway"
servers = ["10.0.1.10:443", "10.0.1.11:443"]
balance = "least_conn"
via = "http://agent:secret@proxy.corp:3128"
send_proxy_protocol = "v2"
max_connections_per_server = 50
max_queue = 2000
queue_timeout = "15s"

[[backend]]
name = "h2"
servers = ["10.0.2.1:443"]
"#;

    fn config(extra: &str) -> Config {
        Config::from_toml(&format!("{CONFIG}{extra}"), "t.toml").unwrap()
    }

    #[test]
    fn limits_and_queue_are_shown() {
        let c = config("");
        let out = explain(&c, "a.agents.example.com", &[]);
        assert!(
            out.contains("limits:   at most 50 open per server; when every usable server is full, wait in a FIFO queue of at most 2000 (beyond: queue_full) for up to 15s (then: queue_timeout)"),
            "{out}"
        );
        let out = explain(&c, "gw.example.com", &["h2".to_string()]);
        assert!(
            out.contains("limits:   no max_connections_per_server (no queue)"),
            "{out}"
        );
    }

    #[test]
    fn exact_wildcard_default_and_refused() {
        let c = config("");
        let out = explain(&c, "GW.example.com", &["h2".to_string()]);
        assert!(out.contains("route[0], exact name gw.example.com"), "{out}");
        assert!(
            out.contains("backend:  h2 (round_robin, 1 server: 10.0.2.1:443)"),
            "{out}"
        );

        let out = explain(&c, "gw.example.com", &[]);
        assert!(
            out.contains("skipped route[0] (gw.example.com): it requires ALPN h2, not offered"),
            "{out}"
        );
        assert!(out.contains("route[1], exact name"), "{out}");
        assert!(
            out.contains("HTTP CONNECT through http://***:***@proxy.corp:3128"),
            "{out}"
        );
        assert!(!out.contains("secret"), "{out}");
        assert!(
            out.contains(
                "PROXY v2 (client address, listener address, authority TLV \"gw.example.com\")"
            ),
            "{out}"
        );
        assert!(
            out.contains("expects a PROXY v2 header from trusted_proxies (1 entries)"),
            "{out}"
        );

        let out = explain(&c, "a.agents.example.com", &[]);
        assert!(
            out.contains("route[1], wildcard *.agents.example.com"),
            "{out}"
        );
        let out = explain(&c, "console.example.com", &[]);
        assert!(out.contains("route[2], wildcard *.example.com"), "{out}");

        let out = explain(&c, "other.org", &[]);
        assert!(
            out.contains("refused: no route matches and there is no [default]"),
            "{out}"
        );
        let out = explain(&config("\n[default]\nbackend = \"h2\"\n"), "other.org", &[]);
        assert!(
            out.contains("route:    [default]: no route matches"),
            "{out}"
        );
    }
}
