//! Serde mirror of the TOML file: field names are the spec's key names,
//! unknown keys are errors. No validation beyond types happens here; see
//! `validate.rs` for the rules.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// The whole file, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    #[serde(default)]
    pub(crate) listener: Vec<FileListener>,
    #[serde(default)]
    pub(crate) route: Vec<FileRoute>,
    pub(crate) default: Option<FileDefault>,
    #[serde(default)]
    pub(crate) backend: Vec<FileBackend>,
    pub(crate) admin: Option<FileAdmin>,
    pub(crate) tuning: Option<FileTuning>,
}

/// One `[[listener]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileListener {
    pub(crate) name: Option<String>,
    pub(crate) bind: Option<String>,
    #[serde(default, with = "humantime_serde")]
    pub(crate) client_hello_timeout: Option<Duration>,
    pub(crate) max_client_hello: Option<i64>,
    pub(crate) max_connections: Option<i64>,
    #[serde(default, with = "humantime_serde")]
    pub(crate) tcp_keepalive: Option<Duration>,
    pub(crate) proxy_protocol: Option<String>,
    pub(crate) trusted_proxies: Option<Vec<String>>,
    pub(crate) max_pending: Option<i64>,
    #[serde(default, with = "humantime_serde")]
    pub(crate) front_idle_timeout: Option<Duration>,
    pub(crate) observe_handshake: Option<bool>,
    pub(crate) accept_connect: Option<bool>,
    pub(crate) max_connections_per_client: Option<i64>,
    pub(crate) client_limit_exempt: Option<Vec<String>>,
}

/// One `[[route]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileRoute {
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) server_names: Vec<String>,
    pub(crate) alpn: Option<Vec<String>>,
    pub(crate) backend: Option<String>,
}

/// The `[default]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileDefault {
    pub(crate) backend: Option<String>,
}

/// One `[[backend]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileBackend {
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) servers: Vec<String>,
    pub(crate) balance: Option<String>,
    #[serde(default, with = "humantime_serde")]
    pub(crate) connect_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(crate) idle_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(crate) tcp_keepalive: Option<Duration>,
    pub(crate) send_proxy_protocol: Option<String>,
    pub(crate) via: Option<String>,
    pub(crate) health_check: Option<FileHealthCheck>,
    pub(crate) max_connections_per_server: Option<i64>,
    pub(crate) max_queue: Option<i64>,
    #[serde(default, with = "humantime_serde")]
    pub(crate) queue_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(crate) slow_start: Option<Duration>,
}

/// The `[admin]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileAdmin {
    pub(crate) bind: Option<String>,
    #[serde(default, with = "humantime_serde")]
    pub(crate) drain_delay: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(crate) drain_timeout: Option<Duration>,
    pub(crate) handoff: Option<PathBuf>,
    pub(crate) monitor_fall: Option<i64>,
}

/// A backend's `health_check = { … }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileHealthCheck {
    #[serde(default, with = "humantime_serde")]
    pub(crate) interval: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(crate) timeout: Option<Duration>,
    pub(crate) rise: Option<i64>,
    pub(crate) fall: Option<i64>,
}

/// The `[tuning]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileTuning {
    pub(crate) forwarding: Option<String>,
}
