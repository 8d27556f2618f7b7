//! Valid and invalid snippets → the exact config or the exact error.

use std::time::Duration;

use super::*;

const MINIMAL: &str = r#"
[[listener]]
bind = "127.0.0.1:8443"

[[route]]
server_names = ["gw.example.com"]
backend = "gw"

[[backend]]
name = "gw"
servers = ["127.0.0.1:9443"]
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text, "test.toml")
}

fn err(text: &str) -> ConfigError {
    parse(text).expect_err("config should be refused")
}

fn with(extra_listener: &str, extra_backend: &str) -> String {
    format!(
        "[[listener]]\nbind = \"127.0.0.1:8443\"\n{extra_listener}\n\
         [[route]]\nserver_names = [\"gw.example.com\"]\nbackend = \"gw\"\n\
         [[backend]]\nname = \"gw\"\nservers = [\"127.0.0.1:9443\"]\n{extra_backend}\n"
    )
}

#[test]
fn example_config_parses() {
    let text = include_str!("../../examples/passthru.toml");
    let config = Config::from_toml(text, "passthru.toml").unwrap();
    assert_eq!(config.listeners.len(), 1);
    assert_eq!(config.routes.len(), 3);
    assert_eq!(config.backends.len(), 2);
    assert_eq!(config.default_backend, Some(0));
    assert_eq!(config.backends[0].balance, Balance::LeastConn);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn defaults_apply() {
    let c = parse(MINIMAL).unwrap();
    let l = &c.listeners[0];
    assert_eq!(l.name, "127.0.0.1:8443");
    assert_eq!(l.client_hello_timeout, Duration::from_secs(10));
    assert_eq!(l.max_client_hello, 16384);
    assert_eq!(l.max_connections, 100_000);
    assert_eq!(l.max_pending, 10_000);
    assert_eq!(l.tcp_keepalive, Some(Duration::from_secs(60)));
    let b = &c.backends[0];
    assert_eq!(b.balance, Balance::RoundRobin);
    assert_eq!(b.connect_timeout, Duration::from_secs(3));
    assert_eq!(b.idle_timeout, Some(Duration::from_secs(3600)));
    assert_eq!(
        c.summary(),
        "test.toml: ok: 1 listener (127.0.0.1:8443), 1 route (1 server name), no default backend, 1 backend (1 server)"
    );
}

#[test]
fn zero_durations_disable() {
    let c = parse(&with(
        "tcp_keepalive = \"0s\"",
        "idle_timeout = \"0s\"\ntcp_keepalive = \"0s\"",
    ))
    .unwrap();
    assert_eq!(c.listeners[0].tcp_keepalive, None);
    assert_eq!(c.backends[0].idle_timeout, None);
    assert_eq!(c.backends[0].tcp_keepalive, None);
}

#[test]
fn humantime_durations() {
    let c = parse(&with(
        "client_hello_timeout = \"1m 30s\"",
        "connect_timeout = \"250ms\"",
    ))
    .unwrap();
    assert_eq!(c.listeners[0].client_hello_timeout, Duration::from_secs(90));
    assert_eq!(c.backends[0].connect_timeout, Duration::from_millis(250));
}

#[test]
fn offload_keys_are_refused_with_the_reason() {
    for (listener, backend, key) in [
        ("tls_cert = \"gw.pem\"", "", "listener[0].tls_cert"),
        ("tls_key = \"gw.key\"", "", "listener[0].tls_key"),
        ("certificate = \"gw.pem\"", "", "listener[0].certificate"),
        ("key = \"gw.key\"", "", "listener[0].key"),
        ("mode = \"offload\"", "", "listener[0].mode = \"offload\""),
        (
            "mode = \"terminate\"",
            "",
            "listener[0].mode = \"terminate\"",
        ),
        ("", "mode = \"bridge\"", "backend[0].mode = \"bridge\""),
        ("", "tls_cert = \"b.pem\"", "backend[0].tls_cert"),
        ("", "key = \"b.key\"", "backend[0].key"),
    ] {
        let e = err(&with(listener, backend));
        assert!(
            matches!(&e, ConfigError::OffloadRefused { key: k, .. } if k == key),
            "{listener}{backend}: {e:?}"
        );
        let msg = e.to_string();
        assert!(msg.starts_with("test.toml: "), "{msg}");
        assert!(msg.contains("never does"), "{msg}");
        assert!(msg.contains("client certificate"), "{msg}");
        assert!(msg.contains("pinned"), "{msg}");
        assert!(!msg.contains("unknown field"), "{msg}");
    }
}

#[test]
fn unknown_keys_are_named() {
    let e = err(&with("listen_backlog = 5", ""));
    let msg = e.to_string();
    assert!(matches!(e, ConfigError::Syntax { line: 3, .. }), "{e:?}");
    assert!(msg.contains("listen_backlog"), "{msg}");
    let e = err("[[listner]]\nbind = \"1.2.3.4:5\"\n");
    assert!(e.to_string().contains("listner"), "{e}");
}

#[test]
fn off_values_of_every_optional_feature_parse() {
    let c = parse(&with(
        "proxy_protocol = \"off\"\nobserve_handshake = false\naccept_connect = false",
        "send_proxy_protocol = \"off\"",
    ))
    .unwrap();
    assert!(!c.listeners[0].observe_handshake);
    let c = parse(&with("observe_handshake = true", "")).unwrap();
    assert!(c.listeners[0].observe_handshake);
    let e = err(&with("observe_handshake = \"yes\"", ""));
    assert!(matches!(e, ConfigError::Syntax { line: 3, .. }), "{e:?}");
}

#[test]
fn invalid_values_name_key_value_and_allowed() {
    let cases: &[(&str, &str, &str, &str)] = &[
        ("bind = \"nowhere\"", "", "listener[0].bind", "\"nowhere\""),
        (
            "max_client_hello = 10",
            "",
            "listener[0].max_client_hello",
            "10",
        ),
        (
            "max_client_hello = 10000000",
            "",
            "listener[0].max_client_hello",
            "10000000",
        ),
        (
            "max_connections = 0",
            "",
            "listener[0].max_connections",
            "0",
        ),
        (
            "client_hello_timeout = \"0s\"",
            "",
            "listener[0].client_hello_timeout",
            "\"0s\"",
        ),
        ("name = \"\"", "", "listener[0].name", "\"\""),
        (
            "",
            "balance = \"random\"",
            "backend[0].balance",
            "\"random\"",
        ),
        (
            "",
            "connect_timeout = \"0s\"",
            "backend[0].connect_timeout",
            "\"0s\"",
        ),
    ];
    for (listener, backend, key, value) in cases {
        // `bind` appears twice when overridden: put the override in a fresh file.
        let text = if listener.starts_with("bind") {
            MINIMAL.replace("bind = \"127.0.0.1:8443\"", listener)
        } else {
            with(listener, backend)
        };
        let e = err(&text);
        assert_eq!(e.key(), Some(*key), "{e}");
        let msg = e.to_string();
        assert!(msg.contains(value), "{msg}");
        assert!(msg.contains(" is not "), "{msg}");
    }
}

#[test]
fn route_errors() {
    let e = err(&MINIMAL.replace("backend = \"gw\"", "backend = \"nope\""));
    assert_eq!(e.key(), Some("route[0].backend"));
    assert!(e.to_string().contains("defined: gw"), "{e}");
    let e = err(&MINIMAL.replace("[\"gw.example.com\"]", "[\"gw.example.com\", \"a.*.com\"]"));
    assert_eq!(e.key(), Some("route[0].server_names[1]"));
    let e = err(&MINIMAL.replace("[\"gw.example.com\"]", "[]"));
    assert_eq!(e.key(), Some("route[0].server_names"));
    let e = err(&MINIMAL.replace(
        "backend = \"gw\"\n\n[[backend]]",
        "backend = \"gw\"\nalpn = []\n\n[[backend]]",
    ));
    assert_eq!(e.key(), Some("route[0].alpn"));
    let e = err(&format!("{MINIMAL}\n[default]\nbackend = \"zzz\"\n"));
    assert_eq!(e.key(), Some("default.backend"));
}

#[test]
fn server_addresses() {
    for bad in [
        "127.0.0.1",
        "127.0.0.1:0",
        "host:99999",
        ":443",
        "a b:443",
        "[::1]",
        "a..b:1",
    ] {
        let e = err(&MINIMAL.replace("127.0.0.1:9443", bad));
        assert_eq!(e.key(), Some("backend[0].servers[0]"), "{bad}: {e}");
        assert!(e.to_string().contains(bad), "{e}");
    }
    for good in ["[::1]:443", "gw-1.internal:443", "localhost:1"] {
        let c = parse(&MINIMAL.replace("127.0.0.1:9443", good)).unwrap();
        assert_eq!(c.backends[0].servers[0].to_string(), good);
    }
}

#[test]
fn duplicates_are_refused() {
    let e = err(&format!(
        "{MINIMAL}\n[[backend]]\nname = \"gw\"\nservers = [\"127.0.0.1:1\"]\n"
    ));
    assert!(
        matches!(&e, ConfigError::Duplicate { key, first, .. } if key == "backend[1].name" && first == "backend[0].name"),
        "{e:?}"
    );
    let e = err(&format!(
        "{MINIMAL}\n[[listener]]\nbind = \"127.0.0.1:8443\"\nname = \"two\"\n"
    ));
    assert_eq!(e.key(), Some("listener[1].bind"));
}

#[test]
fn missing_pieces() {
    assert_eq!(
        err("[[backend]]\nname = \"a\"\nservers = [\"127.0.0.1:1\"]\n").key(),
        Some("[[listener]]")
    );
    assert_eq!(
        err("[[listener]]\nbind = \"127.0.0.1:1\"\n").key(),
        Some("[[backend]]")
    );
    let e = err(
        "[[listener]]\nbind = \"127.0.0.1:1\"\n[[backend]]\nname = \"a\"\nservers = [\"127.0.0.1:1\"]\n",
    );
    assert_eq!(e.key(), Some("[[route]] or [default]"));
    assert_eq!(
        err(&MINIMAL.replace("bind = \"127.0.0.1:8443\"", "")).key(),
        Some("listener[0].bind")
    );
}

#[test]
fn syntax_errors_carry_line_and_column() {
    let e = err("[[listener]]\nbind = \n");
    assert!(matches!(e, ConfigError::Syntax { line: 2, .. }), "{e:?}");
    let e = err(&with("client_hello_timeout = \"5 parsecs\"", ""));
    assert!(matches!(e, ConfigError::Syntax { line: 3, .. }), "{e:?}");
    let e = err(&with("max_connections = \"many\"", ""));
    assert!(matches!(e, ConfigError::Syntax { line: 3, .. }), "{e:?}");
}

#[test]
fn unreachable_route_is_a_warning() {
    let text =
        format!("{MINIMAL}\n[[route]]\nserver_names = [\"GW.example.com.\"]\nbackend = \"gw\"\n");
    let c = parse(&text).unwrap();
    assert_eq!(c.warnings.len(), 1);
    assert!(
        c.warnings[0].contains("route[1].server_names[0]"),
        "{}",
        c.warnings[0]
    );
    assert!(
        c.warnings[0].contains("route[0].server_names[0]"),
        "{}",
        c.warnings[0]
    );
}

#[test]
fn via_urls() {
    let c = parse(&with(
        "accept_connect = true",
        "via = \"http://agent:s3cret@proxy.corp:3128\"",
    ))
    .unwrap();
    assert!(c.listeners[0].accept_connect);
    let via = c.backends[0].via.as_ref().unwrap();
    assert_eq!(via.to_string(), "http://***:***@proxy.corp:3128");
    assert!(
        !format!("{c:?}").contains("s3cret") && !format!("{c:?}").contains("agent"),
        "Debug output leaks the credentials"
    );
    for (bad, why) in [
        ("https://agent:s3cret@proxy.corp:3128", "only http://"),
        ("http://agent:s3cret@proxy.corp", "port is missing"),
        ("http://agent:s3%zzcret@proxy.corp:3128", "percent-encoding"),
    ] {
        let e = err(&with("", &format!("via = \"{bad}\"")));
        assert_eq!(e.key(), Some("backend[0].via"));
        let msg = e.to_string();
        assert!(msg.contains(why), "{msg}");
        assert!(
            !msg.contains("s3cret") && !msg.contains("s3%zz") && !msg.contains("agent"),
            "credentials leaked: {msg}"
        );
        assert!(msg.contains("***:***@"), "{msg}");
    }
    // No `@`, no credentials: shown as written.
    let e = err(&with("", "via = \"http://proxy.corp\""));
    assert!(e.to_string().contains("\"http://proxy.corp\""), "{e}");
}

#[test]
fn proxy_protocol_keys() {
    let c = parse(&with("proxy_protocol = \"any\"\ntrusted_proxies = [\"10.0.0.0/8\", \"2001:db8::/32\", \"192.0.2.7\"]", "send_proxy_protocol = \"v2\"")).unwrap();
    assert_eq!(c.listeners[0].proxy_protocol, ExpectProxy::Any);
    assert!(
        c.listeners[0]
            .trusted_proxies
            .contains("10.1.2.3".parse().unwrap())
    );
    assert!(
        c.listeners[0]
            .trusted_proxies
            .contains("192.0.2.7".parse().unwrap())
    );
    assert!(
        !c.listeners[0]
            .trusted_proxies
            .contains("192.0.2.8".parse().unwrap())
    );
    assert_eq!(c.backends[0].send_proxy_protocol, SendProxy::V2);

    let e = err(&with("name = \"edge\"\nproxy_protocol = \"v2\"", ""));
    assert_eq!(e.key(), Some("listener[0].trusted_proxies"));
    assert!(e.to_string().contains("\"edge\""), "{e}");
    let e = err(&with(
        "proxy_protocol = \"v3\"\ntrusted_proxies = [\"10.0.0.0/8\"]",
        "",
    ));
    assert_eq!(e.key(), Some("listener[0].proxy_protocol"));
    assert!(e.to_string().contains("one of off, v1, v2, any"), "{e}");
    let e = err(&with(
        "proxy_protocol = \"v1\"\ntrusted_proxies = [\"10.0.0.0/8\", \"10.0.0.0/33\"]",
        "",
    ));
    assert_eq!(e.key(), Some("listener[0].trusted_proxies[1]"));
    assert!(e.to_string().contains("10.0.0.0/33"), "{e}");
    let e = err(&with("proxy_protocol = \"v1\"\ntrusted_proxies = []", ""));
    assert_eq!(e.key(), Some("listener[0].trusted_proxies"));
    let e = err(&with("", "send_proxy_protocol = \"yes\""));
    assert_eq!(e.key(), Some("backend[0].send_proxy_protocol"));
}

#[test]
fn admin_handoff_is_an_absolute_path() {
    let c = parse(&format!(
        "{MINIMAL}\n[admin]\nbind = \"127.0.0.1:9901\"\nhandoff = \"/run/passthru/handoff.sock\"\n"
    ))
    .unwrap();
    assert_eq!(
        c.admin.handoff.as_deref(),
        Some(std::path::Path::new("/run/passthru/handoff.sock"))
    );
    assert_eq!(parse(MINIMAL).unwrap().admin.handoff, None);
    let e = err(&format!(
        "{MINIMAL}\n[admin]\nbind = \"127.0.0.1:9901\"\nhandoff = \"handoff.sock\"\n"
    ));
    assert_eq!(e.key(), Some("admin.handoff"));
}

#[test]
fn admin_and_health_check() {
    let c = parse(&format!(
        "{MINIMAL}\n[admin]\nbind = \"127.0.0.1:9901\"\ndrain_delay = \"2s\"\n"
    ))
    .unwrap();
    assert_eq!(c.admin.bind, Some("127.0.0.1:9901".parse().unwrap()));
    assert_eq!(c.admin.drain_delay, Duration::from_secs(2));
    assert_eq!(c.admin.drain_timeout, Duration::from_secs(30));
    let c = parse(MINIMAL).unwrap();
    assert_eq!((c.admin.bind, c.admin.drain_delay), (None, Duration::ZERO));
    let e = err(&format!("{MINIMAL}\n[admin]\nbind = \"localhost:1\"\n"));
    assert_eq!(e.key(), Some("admin.bind"));
    let e = err(&format!("{MINIMAL}\n[admin]\nbind = \"127.0.0.1:8443\"\n"));
    assert_eq!(e.key(), Some("admin.bind"));
    let e = err(&format!("{MINIMAL}\n[admin]\nport = 1\n"));
    assert!(e.to_string().contains("port"), "{e}");

    let c = parse(&with(
        "",
        "health_check = { interval = \"2s\", timeout = \"500ms\", rise = 1, fall = 2 }",
    ))
    .unwrap();
    let h = c.backends[0].health_check.unwrap();
    assert_eq!(
        (h.interval, h.timeout, h.rise, h.fall),
        (Duration::from_secs(2), Duration::from_millis(500), 1, 2)
    );
    let c = parse(&with("", "health_check = {}")).unwrap();
    let h = c.backends[0].health_check.unwrap();
    assert_eq!(
        (h.interval, h.timeout, h.rise, h.fall),
        (Duration::from_secs(5), Duration::from_secs(1), 2, 3)
    );
    let e = err(&with("", "health_check = { fall = 0 }"));
    assert_eq!(e.key(), Some("backend[0].health_check.fall"));
    let e = err(&with("", "health_check = { interval = \"0s\" }"));
    assert_eq!(e.key(), Some("backend[0].health_check.interval"));
}

#[test]
fn front_idle_timeout_warnings() {
    let c = parse(&with("front_idle_timeout = \"300s\"", "")).unwrap();
    assert_eq!(
        c.listeners[0].front_idle_timeout,
        Some(Duration::from_secs(300))
    );
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(
        c.warnings[0].contains(
            "backend[0].idle_timeout = \"1h\" is above listener[0].front_idle_timeout = \"5m\""
        ),
        "{:?}",
        c.warnings
    );
    let c = parse(&with(
        "front_idle_timeout = \"60s\"",
        "idle_timeout = \"0s\"",
    ))
    .unwrap();
    assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
    assert!(
        c.warnings
            .iter()
            .any(|w| w
                .contains("listener[0].tcp_keepalive = \"1m\" is not below front_idle_timeout"))
    );
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("backend[0].tcp_keepalive"))
    );
    let c = parse(&with(
        "front_idle_timeout = \"300s\"",
        "idle_timeout = \"240s\"",
    ))
    .unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn server_limits_queue_and_slow_start() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.backends[0].limits, ServerLimits::default());
    assert_eq!(c.backends[0].limits.max_per_server, 0);
    assert_eq!(c.backends[0].limits.max_queue, 10_000);
    assert_eq!(c.backends[0].limits.queue_timeout, Duration::from_secs(10));
    let c = parse(&with(
        "",
        "max_connections_per_server = 50\nmax_queue = 3000\nqueue_timeout = \"20s\"\nslow_start = \"1m\"",
    ))
    .unwrap();
    assert_eq!(
        c.backends[0].limits,
        ServerLimits {
            max_per_server: 50,
            max_queue: 3000,
            queue_timeout: Duration::from_secs(20),
            slow_start: Duration::from_secs(60),
        }
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let e = err(&with("", "max_connections_per_server = -1")).to_string();
    assert!(e.contains("backend[0].max_connections_per_server"), "{e}");
    let e = err(&with(
        "",
        "max_connections_per_server = 5\nqueue_timeout = \"0s\"",
    ))
    .to_string();
    assert!(e.contains("backend[0].queue_timeout"), "{e}");
}

#[test]
fn queue_keys_without_a_limit_and_long_queue_waits_warn() {
    let c = parse(&with("", "max_queue = 100")).unwrap();
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(
        c.warnings[0].contains("without max_connections_per_server"),
        "{:?}",
        c.warnings
    );
    let c = parse(&with(
        "",
        "max_connections_per_server = 10\nqueue_timeout = \"45s\"",
    ))
    .unwrap();
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(
        c.warnings[0].contains("backend[0].queue_timeout = \"45s\" is above 30s"),
        "{:?}",
        c.warnings
    );
}

#[test]
fn per_client_limit() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.listeners[0].client_limit, ClientLimit::default());
    let c = parse(&with(
        "max_connections_per_client = 20\nclient_limit_exempt = [\"10.9.0.0/24\", \"2001:db8::/64\"]",
        "",
    ))
    .unwrap();
    let limit = &c.listeners[0].client_limit;
    assert_eq!(limit.max_per_client, 20);
    assert!(limit.exempt.contains("10.9.0.44".parse().unwrap()));
    assert!(!limit.exempt.contains("10.9.1.1".parse().unwrap()));
    let e = err(&with("client_limit_exempt = [\"10.9.0.0/33\"]", "")).to_string();
    assert!(e.contains("listener[0].client_limit_exempt[0]"), "{e}");
}

/// An absurd duration is a configuration error naming its key, never a
/// panic (an `Instant` overflow) later.
#[test]
fn absurd_durations_are_refused_with_their_key() {
    for (listener, backend, key) in [
        (
            "",
            "idle_timeout = \"100000 years\"",
            "backend[0].idle_timeout",
        ),
        ("", "idle_timeout = \"8days\"", "backend[0].idle_timeout"),
        ("", "tcp_keepalive = \"10h\"", "backend[0].tcp_keepalive"),
        (
            "",
            "connect_timeout = \"100000 years\"",
            "backend[0].connect_timeout",
        ),
        (
            "tcp_keepalive = \"100000 years\"",
            "",
            "listener[0].tcp_keepalive",
        ),
        (
            "client_hello_timeout = \"100000 years\"",
            "",
            "listener[0].client_hello_timeout",
        ),
        (
            "front_idle_timeout = \"100000 years\"",
            "",
            "listener[0].front_idle_timeout",
        ),
    ] {
        let e = err(&with(listener, backend));
        assert_eq!(e.key(), Some(key), "{e}");
        assert!(e.to_string().contains("at most"), "{e}");
    }
    let c = parse(&with("", "idle_timeout = \"7days\"")).unwrap();
    assert_eq!(
        c.backends[0].idle_timeout,
        Some(std::time::Duration::from_secs(7 * 86_400))
    );
}

#[test]
fn admin_needs_bind_and_drains_20s_by_default_with_monitor_fall_off() {
    let c = parse(&format!("{MINIMAL}\n[admin]\nbind = \"127.0.0.1:9901\"\n")).unwrap();
    assert_eq!(c.admin.drain_delay, Duration::from_secs(20));
    assert_eq!(c.admin.monitor_fall, 0);
    let e = err(&format!("{MINIMAL}\n[admin]\ndrain_delay = \"5s\"\n"));
    assert_eq!(e.key(), Some("admin.bind"));
    assert!(e.to_string().contains("admin.bind is required"), "{e}");
    let c = parse(&format!(
        "{MINIMAL}\n[admin]\nbind = \"127.0.0.1:9901\"\nmonitor_fall = 3\n"
    ))
    .unwrap();
    assert_eq!(c.admin.monitor_fall, 3);
    for bad in ["-1", "101"] {
        let e = err(&format!(
            "{MINIMAL}\n[admin]\nbind = \"127.0.0.1:9901\"\nmonitor_fall = {bad}\n"
        ));
        assert_eq!(e.key(), Some("admin.monitor_fall"));
    }
}

#[test]
fn routes_are_named_route_n_unless_named_and_names_are_unique() {
    let two = |a: &str, b: &str| {
        format!(
            "{MINIMAL}\n[[route]]\n{a}\nserver_names = [\"a.example.com\"]\nbackend = \"gw\"\n\
             [[route]]\n{b}\nserver_names = [\"b.example.com\"]\nbackend = \"gw\"\n"
        )
    };
    let c = parse(&two("name = \"agents\"", "")).unwrap();
    let names: Vec<&str> = c.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["route[0]", "agents", "route[2]"]);
    let e = err(&two("name = \"agents\"", "name = \"agents\""));
    assert_eq!(e.key(), Some("route[2].name"));
    assert!(
        e.to_string().contains("already used by route[1].name"),
        "{e}"
    );
    let e = err(&two("name = \"route[0]\"", ""));
    assert_eq!(e.key(), Some("route[1].name"));
    let e = err(&two("name = \"\"", ""));
    assert_eq!(e.key(), Some("route[1].name"));
}
