//! Turns the file mirror into a typed [`Config`]: defaults, parsing of
//! addresses and patterns, cross-checks, and the refusal of SSL-offloading
//! keys. Every error names the file, the key path, the value and what is
//! allowed.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use passthru_net::addr::split_host_port;
use passthru_net::{ServerAddr, ViaUrl};

use super::file::{FileAdmin, FileBackend, FileConfig, FileListener, FileRoute};
use super::model::{
    AdminConfig, BackendConfig, Balance, ClientLimit, Config, ExpectProxy, Forwarding, HealthCheck,
    ListenerConfig, SendProxy, ServerLimits,
};
use crate::route::{RouteConfig, ServerNamePattern};
use crate::trust::TrustedProxies;

/// Why a configuration was refused. Every variant names the file (`origin`).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{origin}: cannot read the configuration file: {source}")]
    Read {
        /// File path.
        origin: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// TOML syntax, a wrong type or an unknown key, as reported by the parser.
    #[error("{origin}:{line}:{column}: {message}")]
    Syntax {
        /// File path.
        origin: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message (names the key for unknown keys).
        message: String,
    },
    /// An SSL-offloading key: passthru never terminates TLS.
    #[error(
        "{origin}: {key} asks passthru to terminate TLS, which it never does: \
         a proxy that terminates TLS strips the agent's client certificate and \
         replaces the gateway's pinned certificate with its own, so mutual TLS \
         fails (\"Authentication Required\"); remove {key} and let the gateway \
         hold its certificate and key"
    )]
    OffloadRefused {
        /// File path.
        origin: String,
        /// Key path, e.g. `listener[0].tls_cert` or `backend[1].mode = "offload"`.
        key: String,
    },
    /// A required key is absent.
    #[error("{origin}: {key} is required{hint}")]
    Missing {
        /// File path.
        origin: String,
        /// Key path.
        key: String,
        /// Extra guidance, starting with "; " or empty.
        hint: String,
    },
    /// A value outside what is allowed.
    #[error("{origin}: {key} = {value} is not {allowed}")]
    Invalid {
        /// File path.
        origin: String,
        /// Key path.
        key: String,
        /// The value as written.
        value: String,
        /// What is allowed.
        allowed: String,
    },
    /// A name or address used twice.
    #[error("{origin}: {key} = {value} is already used by {first}")]
    Duplicate {
        /// File path.
        origin: String,
        /// Key path of the second use.
        key: String,
        /// The duplicated value.
        value: String,
        /// Key path of the first use.
        first: String,
    },
}

impl ConfigError {
    /// The key path the error is about, when it is about one key.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::OffloadRefused { key, .. }
            | ConfigError::Missing { key, .. }
            | ConfigError::Invalid { key, .. }
            | ConfigError::Duplicate { key, .. } => Some(key),
            ConfigError::Read { .. } | ConfigError::Syntax { .. } => None,
        }
    }
}

pub(super) fn from_toml(text: &str, origin: &str) -> Result<Config, ConfigError> {
    let raw: toml::Table = toml::from_str(text).map_err(|e| syntax(text, origin, &e))?;
    refuse_offload(&raw, origin)?;
    let file: FileConfig = toml::from_str(text).map_err(|e| syntax(text, origin, &e))?;
    Validator { origin }.config(&file)
}

const OFFLOAD_KEYS: [&str; 4] = ["tls_cert", "tls_key", "certificate", "key"];
const OFFLOAD_MODES: [&str; 3] = ["offload", "terminate", "bridge"];

/// Stage 1: refuse SSL-offloading keys before serde would call them unknown.
fn refuse_offload(raw: &toml::Table, origin: &str) -> Result<(), ConfigError> {
    let refused = |key: String| ConfigError::OffloadRefused {
        origin: origin.to_string(),
        key,
    };
    let check = |table: &toml::Table, path: &str| -> Result<(), ConfigError> {
        for key in OFFLOAD_KEYS {
            if table.contains_key(key) {
                return Err(refused(format!("{path}{key}")));
            }
        }
        if let Some(mode) = table.get("mode").and_then(toml::Value::as_str)
            && OFFLOAD_MODES.contains(&mode.to_ascii_lowercase().as_str())
        {
            return Err(refused(format!("{path}mode = \"{mode}\"")));
        }
        Ok(())
    };
    check(raw, "")?;
    for section in ["listener", "backend", "route"] {
        if let Some(toml::Value::Array(items)) = raw.get(section) {
            for (i, item) in items.iter().enumerate() {
                if let toml::Value::Table(t) = item {
                    check(t, &format!("{section}[{i}]."))?;
                }
            }
        }
    }
    if let Some(toml::Value::Table(t)) = raw.get("default") {
        check(t, "default.")?;
    }
    Ok(())
}

fn syntax(text: &str, origin: &str, e: &toml::de::Error) -> ConfigError {
    let (line, column) = match e.span() {
        Some(span) => line_col(text, span.start),
        None => (1, 1),
    };
    ConfigError::Syntax {
        origin: origin.to_string(),
        line,
        column,
        message: e.message().trim().replace('\n', " "),
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

struct Validator<'a> {
    origin: &'a str,
}

impl Validator<'_> {
    fn config(&self, file: &FileConfig) -> Result<Config, ConfigError> {
        if file.listener.is_empty() {
            return Err(self.missing("[[listener]]", "; passthru needs at least one listener"));
        }
        if file.backend.is_empty() {
            return Err(self.missing(
                "[[backend]]",
                "; routes need a backend to send connections to",
            ));
        }

        let mut backends = Vec::with_capacity(file.backend.len());
        let mut backend_index: HashMap<String, usize> = HashMap::new();
        for (i, b) in file.backend.iter().enumerate() {
            let backend = self.backend(i, b)?;
            if let Some(first) = backend_index.get(&backend.name) {
                return Err(self.duplicate(
                    format!("backend[{i}].name"),
                    &backend.name,
                    format!("backend[{first}].name"),
                ));
            }
            backend_index.insert(backend.name.clone(), i);
            backends.push(backend);
        }
        let known = || {
            backends
                .iter()
                .map(|b| b.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let resolve = |key: String, name: &str| -> Result<usize, ConfigError> {
            backend_index
                .get(name)
                .copied()
                .ok_or_else(|| ConfigError::Invalid {
                    origin: self.origin.to_string(),
                    key,
                    value: quote(name),
                    allowed: format!("a defined backend (defined: {})", known()),
                })
        };

        let mut listeners: Vec<ListenerConfig> = Vec::with_capacity(file.listener.len());
        for (i, l) in file.listener.iter().enumerate() {
            let listener = self.listener(i, l)?;
            for (j, other) in listeners.iter().enumerate() {
                if other.name == listener.name {
                    return Err(self.duplicate(
                        format!("listener[{i}].name"),
                        &listener.name,
                        format!("listener[{j}].name"),
                    ));
                }
                if other.bind == listener.bind && listener.bind.port() != 0 {
                    return Err(self.duplicate(
                        format!("listener[{i}].bind"),
                        &listener.bind.to_string(),
                        format!("listener[{j}].bind"),
                    ));
                }
            }
            listeners.push(listener);
        }

        let mut routes = Vec::with_capacity(file.route.len());
        let mut warnings = Vec::new();
        let mut seen: HashMap<(ServerNamePattern, Vec<String>), String> = HashMap::new();
        for (i, r) in file.route.iter().enumerate() {
            let route = self.route(i, r, &resolve)?;
            if let Some(j) = routes
                .iter()
                .position(|other: &RouteConfig| other.name == route.name)
            {
                return Err(self.duplicate(
                    format!("route[{i}].name"),
                    &route.name,
                    format!("route[{j}].name"),
                ));
            }
            for (j, name) in route.server_names.iter().enumerate() {
                let here = format!("route[{i}].server_names[{j}]");
                if let Some(first) = seen.get(&(name.clone(), route.alpn.clone())) {
                    warnings.push(format!(
                        "{}: {here} = \"{name}\" can never match: {first} has the same name and ALPN constraint and comes first",
                        self.origin
                    ));
                } else {
                    seen.insert((name.clone(), route.alpn.clone()), here);
                }
            }
            routes.push(route);
        }
        let default_backend = match file.default.as_ref().map(|d| d.backend.as_deref()) {
            None => None,
            Some(None) => {
                return Err(self.missing(
                    "default.backend",
                    "; remove [default] to refuse unrouted connections",
                ));
            }
            Some(Some(name)) => Some(resolve("default.backend".to_string(), name)?),
        };
        if routes.is_empty() && default_backend.is_none() {
            return Err(self.missing(
                "[[route]] or [default]",
                "; without either, every connection would be refused",
            ));
        }
        let admin = self.admin(file.admin.as_ref(), &listeners)?;
        let forwarding = match file.tuning.as_ref().and_then(|t| t.forwarding.as_deref()) {
            None | Some("auto") => Forwarding::Auto,
            Some("copy") => Forwarding::Copy,
            Some("splice") => Forwarding::Splice,
            Some(other) => {
                return Err(self.invalid(
                    "tuning.forwarding".to_string(),
                    &quote(other),
                    "one of auto, copy, splice",
                ));
            }
        };
        self.front_idle_warnings(&listeners, &backends, &mut warnings);
        self.limit_warnings(&file.backend, &backends, &mut warnings);
        Ok(Config {
            origin: self.origin.to_string(),
            listeners,
            routes,
            default_backend,
            backends,
            admin,
            forwarding,
            warnings,
        })
    }

    /// The balancer in front drops flows idle longer than its timeout:
    /// keepalive probes must come sooner, and passthru's own idle timeout
    /// should not be the longer one.
    fn front_idle_warnings(
        &self,
        listeners: &[ListenerConfig],
        backends: &[BackendConfig],
        warnings: &mut Vec<String>,
    ) {
        let fmt = |d: Duration| humantime::format_duration(d).to_string();
        for (i, l) in listeners.iter().enumerate() {
            let Some(front) = l.front_idle_timeout else {
                continue;
            };
            if let Some(ka) = l.tcp_keepalive.filter(|ka| *ka >= front) {
                warnings.push(format!(
                    "{}: listener[{i}].tcp_keepalive = \"{}\" is not below front_idle_timeout = \"{}\": the balancer may drop idle agent connections before the first probe",
                    self.origin, fmt(ka), fmt(front)
                ));
            }
            for (j, b) in backends.iter().enumerate() {
                if let Some(ka) = b.tcp_keepalive.filter(|ka| *ka >= front) {
                    warnings.push(format!(
                        "{}: backend[{j}].tcp_keepalive = \"{}\" is not below listener[{i}].front_idle_timeout = \"{}\"",
                        self.origin, fmt(ka), fmt(front)
                    ));
                }
                if let Some(idle) = b.idle_timeout.filter(|idle| *idle > front) {
                    warnings.push(format!(
                        "{}: backend[{j}].idle_timeout = \"{}\" is above listener[{i}].front_idle_timeout = \"{}\": the balancer, not passthru, will cut idle connections",
                        self.origin, fmt(idle), fmt(front)
                    ));
                }
            }
        }
    }

    fn admin(
        &self,
        admin: Option<&FileAdmin>,
        listeners: &[ListenerConfig],
    ) -> Result<AdminConfig, ConfigError> {
        let Some(a) = admin else {
            // No admin endpoint: no balancer can be told to move away first,
            // so there is no point in a drain delay.
            return Ok(AdminConfig {
                bind: None,
                drain_delay: Duration::ZERO,
                drain_timeout: DEFAULT_DRAIN_TIMEOUT,
                handoff: None,
                monitor_fall: 0,
            });
        };
        let bind = match &a.bind {
            None => {
                return Err(self.missing(
                    "admin.bind",
                    " in [admin]; e.g. bind = \"127.0.0.1:9901\" (without it there is no /healthz to tell the balancer about a drain: remove [admin] instead)",
                ));
            }
            Some(text) => {
                let addr: SocketAddr = text.parse().map_err(|_| {
                    self.invalid(
                        "admin.bind".to_string(),
                        &quote(text),
                        "an IP address and port such as \"127.0.0.1:9901\"",
                    )
                })?;
                if let Some((j, _)) = listeners
                    .iter()
                    .enumerate()
                    .find(|(_, l)| l.bind == addr && addr.port() != 0)
                {
                    return Err(self.duplicate(
                        "admin.bind".to_string(),
                        text,
                        format!("listener[{j}].bind"),
                    ));
                }
                Some(addr)
            }
        };
        let drain_delay = a.drain_delay.unwrap_or(DEFAULT_DRAIN_DELAY);
        if drain_delay > MAX_TIMEOUT {
            return Err(self.invalid(
                "admin.drain_delay".to_string(),
                &quote(&humantime::format_duration(drain_delay).to_string()),
                "a duration of at most 1 day",
            ));
        }
        let drain_timeout = a.drain_timeout.unwrap_or(DEFAULT_DRAIN_TIMEOUT);
        if drain_timeout > MAX_TIMEOUT {
            return Err(self.invalid(
                "admin.drain_timeout".to_string(),
                &quote(&humantime::format_duration(drain_timeout).to_string()),
                "a duration of at most 1 day",
            ));
        }
        if let Some(path) = &a.handoff
            && !path.is_absolute()
        {
            return Err(self.invalid(
                "admin.handoff".to_string(),
                &quote(&path.display().to_string()),
                "an absolute path such as \"/run/passthru/handoff.sock\"",
            ));
        }
        let monitor_fall = match a.monitor_fall {
            None => 0,
            Some(n) => u32::try_from(n).ok().filter(|n| *n <= 100).ok_or_else(|| {
                self.invalid(
                    "admin.monitor_fall".to_string(),
                    &n.to_string(),
                    "a count from 0 (off) to 100",
                )
            })?,
        };
        Ok(AdminConfig {
            bind,
            drain_delay,
            drain_timeout,
            handoff: a.handoff.clone(),
            monitor_fall,
        })
    }

    fn listener(&self, i: usize, l: &FileListener) -> Result<ListenerConfig, ConfigError> {
        let key = |k: &str| format!("listener[{i}].{k}");
        let bind_text = l
            .bind
            .as_deref()
            .ok_or_else(|| self.missing(&key("bind"), "; e.g. bind = \"0.0.0.0:443\""))?;
        let bind: SocketAddr = bind_text.parse().map_err(|_| {
            self.invalid(
                key("bind"),
                &quote(bind_text),
                "an IP address and port such as \"0.0.0.0:443\" or \"[::]:443\"",
            )
        })?;
        let name = match &l.name {
            Some(n) if n.trim().is_empty() || n.len() > 64 => {
                return Err(self.invalid(
                    key("name"),
                    &quote(n),
                    "a non-empty name of at most 64 characters",
                ));
            }
            Some(n) => n.clone(),
            None => bind.to_string(),
        };

        let proxy_protocol = match l.proxy_protocol.as_deref() {
            None | Some("off") => ExpectProxy::Off,
            Some("v1") => ExpectProxy::V1,
            Some("v2") => ExpectProxy::V2,
            Some("any") => ExpectProxy::Any,
            Some(other) => {
                return Err(self.invalid(
                    key("proxy_protocol"),
                    &quote(other),
                    "one of off, v1, v2, any",
                ));
            }
        };
        let trusted_proxies = match (&l.trusted_proxies, proxy_protocol) {
            (None, ExpectProxy::Off) => TrustedProxies::default(),
            (None, _) => {
                return Err(self.missing(
                    &key("trusted_proxies"),
                    &format!(
                        " when proxy_protocol is not \"off\" (listener \"{name}\"): list the balancers allowed to send a PROXY header, e.g. [\"10.0.0.0/8\"]"
                    ),
                ));
            }
            (Some(list), mode) => {
                if list.is_empty() && mode != ExpectProxy::Off {
                    return Err(self.invalid(
                        key("trusted_proxies"),
                        "[]",
                        "an empty list while proxy_protocol is on (no balancer could connect)",
                    ));
                }
                TrustedProxies::parse(list).map_err(|(pos, reason)| {
                    let value = list.get(pos).map_or(String::new(), |v| quote(v));
                    self.invalid(
                        key(&format!("trusted_proxies[{pos}]")),
                        &value,
                        &format!("a CIDR such as \"10.0.0.0/8\" or \"2001:db8::/32\" ({reason})"),
                    )
                })?
            }
        };
        let client_hello_timeout = l
            .client_hello_timeout
            .unwrap_or(DEFAULT_CLIENT_HELLO_TIMEOUT);
        self.positive(&key("client_hello_timeout"), client_hello_timeout)?;
        let max_client_hello = self.bounded(
            &key("max_client_hello"),
            l.max_client_hello,
            DEFAULT_MAX_CLIENT_HELLO,
            MIN_CLIENT_HELLO..=MAX_CLIENT_HELLO,
        )?;
        let max_pending = self.bounded(
            &key("max_pending"),
            l.max_pending,
            DEFAULT_MAX_PENDING,
            1..=MAX_CONNECTIONS,
        )?;
        let max_connections = self.bounded(
            &key("max_connections"),
            l.max_connections,
            DEFAULT_MAX_CONNECTIONS,
            1..=MAX_CONNECTIONS,
        )?;
        if let Some(d) = l.tcp_keepalive {
            self.at_most(
                &key("tcp_keepalive"),
                d,
                MAX_KEEPALIVE,
                "32767s (about 9 h)",
            )?;
        }
        if let Some(d) = l.front_idle_timeout {
            self.at_most(&key("front_idle_timeout"), d, MAX_TIMEOUT, "1 day")?;
        }
        Ok(ListenerConfig {
            name,
            bind,
            client_hello_timeout,
            max_client_hello,
            max_connections,
            tcp_keepalive: keepalive(l.tcp_keepalive),
            accept_connect: l.accept_connect.unwrap_or(false),
            observe_handshake: l.observe_handshake.unwrap_or(false),
            max_pending,
            front_idle_timeout: l.front_idle_timeout,
            proxy_protocol,
            trusted_proxies,
            client_limit: self.client_limit(i, l)?,
        })
    }

    fn route(
        &self,
        i: usize,
        r: &FileRoute,
        resolve: &dyn Fn(String, &str) -> Result<usize, ConfigError>,
    ) -> Result<RouteConfig, ConfigError> {
        if r.server_names.is_empty() {
            return Err(self.missing(
                &format!("route[{i}].server_names"),
                " and must not be empty; use [default] for connections without a matching name",
            ));
        }
        let mut server_names = Vec::with_capacity(r.server_names.len());
        for (j, n) in r.server_names.iter().enumerate() {
            let pattern: ServerNamePattern = n.parse().map_err(|e| {
                self.invalid(
                    format!("route[{i}].server_names[{j}]"),
                    &quote(n),
                    &format!("a valid server name ({e})"),
                )
            })?;
            server_names.push(pattern);
        }
        let alpn = match &r.alpn {
            None => Vec::new(),
            Some(list) if list.is_empty() => {
                return Err(self.invalid(
                    format!("route[{i}].alpn"),
                    "[]",
                    "an empty list; leave alpn out to accept any",
                ));
            }
            Some(list) => {
                for (j, p) in list.iter().enumerate() {
                    if p.is_empty() || p.len() > 255 {
                        return Err(self.invalid(
                            format!("route[{i}].alpn[{j}]"),
                            &quote(p),
                            "an ALPN protocol name of 1 to 255 bytes",
                        ));
                    }
                }
                list.clone()
            }
        };
        let backend_name = r
            .backend
            .as_deref()
            .ok_or_else(|| self.missing(&format!("route[{i}].backend"), ""))?;
        let backend = resolve(format!("route[{i}].backend"), backend_name)?;
        let name = match &r.name {
            None => format!("route[{i}]"),
            Some(n) if n.trim().is_empty() || n.len() > 64 || n.contains(char::is_whitespace) => {
                return Err(self.invalid(
                    format!("route[{i}].name"),
                    &quote(n),
                    "a non-empty name of at most 64 characters without spaces",
                ));
            }
            Some(n) => n.clone(),
        };
        Ok(RouteConfig {
            name,
            server_names,
            alpn,
            backend,
        })
    }

    fn backend(&self, i: usize, b: &FileBackend) -> Result<BackendConfig, ConfigError> {
        let key = |k: &str| format!("backend[{i}].{k}");
        let name = b
            .name
            .clone()
            .ok_or_else(|| self.missing(&key("name"), ""))?;
        if name.trim().is_empty() || name.len() > 64 {
            return Err(self.invalid(
                key("name"),
                &quote(&name),
                "a non-empty name of at most 64 characters",
            ));
        }
        if b.servers.is_empty() {
            return Err(self.missing(&key("servers"), " and must list at least one \"host:port\""));
        }
        let mut servers = Vec::with_capacity(b.servers.len());
        for (j, s) in b.servers.iter().enumerate() {
            let server = parse_server(s).ok_or_else(|| {
                self.invalid(
                    format!("backend[{i}].servers[{j}]"),
                    &quote(s),
                    "a \"host:port\" address (port 1-65535; IPv6 as \"[::1]:443\")",
                )
            })?;
            servers.push(server);
        }
        let balance = match b.balance.as_deref() {
            None | Some("round_robin") => Balance::RoundRobin,
            Some("least_conn") => Balance::LeastConn,
            Some("source_hash") => Balance::SourceHash,
            Some(other) => {
                return Err(self.invalid(
                    key("balance"),
                    &quote(other),
                    "one of round_robin, least_conn, source_hash",
                ));
            }
        };
        let via = match &b.via {
            None => None,
            Some(url) => Some(url.parse::<ViaUrl>().map_err(|e| {
                self.invalid(
                    key("via"),
                    &quote(&mask_password(url)),
                    &format!("a usable proxy URL: {e}"),
                )
            })?),
        };
        let health_check = match &b.health_check {
            None => None,
            Some(h) => {
                let interval = h.interval.unwrap_or(DEFAULT_HEALTH_INTERVAL);
                self.positive(&key("health_check.interval"), interval)?;
                let timeout = h.timeout.unwrap_or(DEFAULT_HEALTH_TIMEOUT);
                self.positive(&key("health_check.timeout"), timeout)?;
                let rise = self.bounded(&key("health_check.rise"), h.rise, 2, 1..=100)?;
                let fall = self.bounded(&key("health_check.fall"), h.fall, 3, 1..=100)?;
                Some(HealthCheck {
                    interval,
                    timeout,
                    rise: rise as u32,
                    fall: fall as u32,
                })
            }
        };
        let send_proxy_protocol = match b.send_proxy_protocol.as_deref() {
            None | Some("off") => SendProxy::Off,
            Some("v1") => SendProxy::V1,
            Some("v2") => SendProxy::V2,
            Some(other) => {
                return Err(self.invalid(
                    key("send_proxy_protocol"),
                    &quote(other),
                    "one of off, v1, v2",
                ));
            }
        };
        let connect_timeout = b.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        self.positive(&key("connect_timeout"), connect_timeout)?;
        let idle_timeout = match b.idle_timeout {
            None => Some(DEFAULT_IDLE_TIMEOUT),
            Some(d) if d.is_zero() => None,
            Some(d) => Some(self.at_most(&key("idle_timeout"), d, MAX_IDLE_TIMEOUT, "7 days")?),
        };
        if let Some(d) = b.tcp_keepalive {
            self.at_most(
                &key("tcp_keepalive"),
                d,
                MAX_KEEPALIVE,
                "32767s (about 9 h)",
            )?;
        }
        Ok(BackendConfig {
            name,
            servers,
            balance,
            connect_timeout,
            idle_timeout,
            tcp_keepalive: keepalive(b.tcp_keepalive),
            via,
            send_proxy_protocol,
            health_check,
            limits: self.server_limits(i, b)?,
        })
    }

    /// `max_connections_per_client` and `client_limit_exempt` of listener `i`.
    fn client_limit(&self, i: usize, l: &FileListener) -> Result<ClientLimit, ConfigError> {
        let key = |k: &str| format!("listener[{i}].{k}");
        let max_per_client = self.bounded(
            &key("max_connections_per_client"),
            l.max_connections_per_client,
            0,
            0..=MAX_CONNECTIONS,
        )?;
        let exempt = match &l.client_limit_exempt {
            None => TrustedProxies::default(),
            Some(list) => TrustedProxies::parse(list).map_err(|(pos, reason)| {
                let value = list.get(pos).map_or(String::new(), |v| quote(v));
                self.invalid(
                    key(&format!("client_limit_exempt[{pos}]")),
                    &value,
                    &format!("a CIDR such as \"10.9.0.0/24\" or \"2001:db8::/64\" ({reason})"),
                )
            })?,
        };
        Ok(ClientLimit {
            max_per_client,
            exempt,
        })
    }

    /// `max_connections_per_server`, `max_queue`, `queue_timeout` and
    /// `slow_start` of backend `i`.
    fn server_limits(&self, i: usize, b: &FileBackend) -> Result<ServerLimits, ConfigError> {
        let key = |k: &str| format!("backend[{i}].{k}");
        let defaults = ServerLimits::default();
        let max_per_server = self.bounded(
            &key("max_connections_per_server"),
            b.max_connections_per_server,
            0,
            0..=MAX_CONNECTIONS,
        )?;
        let max_queue = self.bounded(
            &key("max_queue"),
            b.max_queue,
            defaults.max_queue,
            0..=MAX_CONNECTIONS,
        )?;
        let queue_timeout = b.queue_timeout.unwrap_or(defaults.queue_timeout);
        self.positive(&key("queue_timeout"), queue_timeout)?;
        let slow_start = b.slow_start.unwrap_or(Duration::ZERO);
        if slow_start > MAX_TIMEOUT {
            return Err(self.invalid(
                key("slow_start"),
                &quote(&humantime::format_duration(slow_start).to_string()),
                "a duration of at most 1 day (\"0s\" = off)",
            ));
        }
        Ok(ServerLimits {
            max_per_server,
            max_queue,
            queue_timeout,
            slow_start,
        })
    }

    /// Queue keys that do nothing, and queue waits longer than an agent's
    /// handshake timeout.
    fn limit_warnings(
        &self,
        file: &[FileBackend],
        backends: &[BackendConfig],
        warnings: &mut Vec<String>,
    ) {
        let fmt = |d: Duration| humantime::format_duration(d).to_string();
        for (j, (f, b)) in file.iter().zip(backends).enumerate() {
            let queue_keys = f.max_queue.is_some() || f.queue_timeout.is_some();
            if b.limits.max_per_server == 0 && queue_keys {
                warnings.push(format!(
                    "{}: backend[{j}] sets max_queue or queue_timeout without max_connections_per_server: no connection ever waits, the keys have no effect",
                    self.origin
                ));
            }
            if b.limits.max_per_server > 0 && b.limits.queue_timeout > CLIENT_HANDSHAKE_TIMEOUT {
                warnings.push(format!(
                    "{}: backend[{j}].queue_timeout = \"{}\" is above {}, the usual client handshake timeout: agents give up and retry before their turn comes",
                    self.origin,
                    fmt(b.limits.queue_timeout),
                    fmt(CLIENT_HANDSHAKE_TIMEOUT)
                ));
            }
        }
    }

    /// `d` itself when it is at most `max` (named `max_text`), else an
    /// error naming the key: an absurd duration is a configuration error,
    /// never an overflow later.
    fn at_most(
        &self,
        key: &str,
        d: Duration,
        max: Duration,
        max_text: &str,
    ) -> Result<Duration, ConfigError> {
        if d > max {
            return Err(self.invalid(
                key.to_string(),
                &quote(&humantime::format_duration(d).to_string()),
                &format!("a duration of at most {max_text}"),
            ));
        }
        Ok(d)
    }

    fn positive(&self, key: &str, d: Duration) -> Result<(), ConfigError> {
        if d.is_zero() || d > MAX_TIMEOUT {
            return Err(self.invalid(
                key.to_string(),
                &quote(&humantime::format_duration(d).to_string()),
                "a duration above 0s and at most 1 day",
            ));
        }
        Ok(())
    }

    fn bounded(
        &self,
        key: &str,
        value: Option<i64>,
        default: usize,
        range: std::ops::RangeInclusive<usize>,
    ) -> Result<usize, ConfigError> {
        let Some(v) = value else { return Ok(default) };
        match usize::try_from(v) {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(self.invalid(
                key.to_string(),
                &v.to_string(),
                &format!("a number from {} to {}", range.start(), range.end()),
            )),
        }
    }

    fn missing(&self, key: &str, hint: &str) -> ConfigError {
        ConfigError::Missing {
            origin: self.origin.to_string(),
            key: key.to_string(),
            hint: hint.to_string(),
        }
    }

    fn invalid(&self, key: String, value: &str, allowed: &str) -> ConfigError {
        ConfigError::Invalid {
            origin: self.origin.to_string(),
            key,
            value: value.to_string(),
            allowed: allowed.to_string(),
        }
    }

    fn duplicate(&self, key: String, value: &str, first: String) -> ConfigError {
        ConfigError::Duplicate {
            origin: self.origin.to_string(),
            key,
            value: quote(value),
            first,
        }
    }
}

/// `host:port`, `[v6]:port`; the host is a name or an IP literal.
fn parse_server(s: &str) -> Option<ServerAddr> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        if addr.port() == 0 {
            return None;
        }
        return Some(ServerAddr {
            host: addr.ip().to_string(),
            port: addr.port(),
        });
    }
    // A bracketed host that is not an IPv6 literal is not a name either.
    if s.starts_with('[') {
        return None;
    }
    let (host, port) = split_host_port(s)?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let valid_name = !host.is_empty()
        && host.len() <= 253
        && host.parse::<IpAddr>().is_err()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        });
    valid_name.then(|| ServerAddr {
        host: host.to_ascii_lowercase(),
        port,
    })
}

/// `http://user:secret@host` → `http://***:***@host`, for error messages:
/// the user name is masked like the password. A URL without `@` has no
/// credentials and is shown as written.
fn mask_password(url: &str) -> String {
    match url.rsplit_once('@') {
        Some((userinfo, rest)) => match userinfo.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://***:***@{rest}"),
            None => format!("***@{rest}"),
        },
        None => url.to_string(),
    }
}

fn keepalive(d: Option<Duration>) -> Option<Duration> {
    match d {
        None => Some(DEFAULT_TCP_KEEPALIVE),
        Some(d) if d.is_zero() => None,
        Some(d) => Some(d),
    }
}

fn quote(s: &str) -> String {
    format!("{s:?}")
}

const DEFAULT_CLIENT_HELLO_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_MAX_CLIENT_HELLO: usize = 16384;
const MIN_CLIENT_HELLO: usize = 512;
const MAX_CLIENT_HELLO: usize = 262_144;
const DEFAULT_MAX_CONNECTIONS: usize = 100_000;
const DEFAULT_MAX_PENDING: usize = 10_000;
const MAX_CONNECTIONS: usize = 10_000_000;
const DEFAULT_TCP_KEEPALIVE: Duration = Duration::from_secs(60);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
const MAX_TIMEOUT: Duration = Duration::from_secs(86_400);
const MAX_IDLE_TIMEOUT: Duration = Duration::from_secs(7 * 86_400);
/// Linux's largest `TCP_KEEPIDLE`.
const MAX_KEEPALIVE: Duration = Duration::from_secs(32_767);
const DEFAULT_DRAIN_DELAY: Duration = Duration::from_secs(20);
const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
/// What most TLS clients allow a handshake (and so a queued connection).
const CLIENT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
