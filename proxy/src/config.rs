//! Configuration: the TOML file becomes a typed, validated [`Config`].
//!
//! The pipeline has three stages, each in its own file:
//!
//! 1. `validate::refuse_offload` scans the raw TOML table for SSL-offloading
//!    keys (`mode = "offload"`, `tls_cert`, …) and refuses them with a message
//!    that says why passthru never terminates TLS, before serde could call
//!    them merely "unknown".
//! 2. `file.rs` deserialises the text into structs that mirror the file
//!    exactly (`deny_unknown_fields`, spec key names).
//! 3. `validate.rs` turns those into [`Config`] (the typed model, in
//!    `model.rs`): defaults applied, addresses and patterns parsed, names
//!    resolved to indices, cross-checks done.
//!
//! [`Config::from_toml`] is pure (no binding, no I/O), so `passthru check`,
//! tests and reload all use it.

mod file;
mod model;
#[cfg(test)]
mod tests;
mod validate;

use std::path::Path;

pub use crate::route::RouteConfig;
pub use model::{
    AdminConfig, BackendConfig, Balance, ClientLimit, Config, ExpectProxy, Forwarding, HealthCheck,
    ListenerConfig, SendProxy, ServerLimits,
};
pub use passthru_net::{ServerAddr, ViaUrl};
pub use validate::ConfigError;

impl Config {
    /// Parse and validate TOML text. `origin` names the file in messages.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        validate::from_toml(text, origin)
    }

    /// Read and validate a file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            origin: origin.clone(),
            source,
        })?;
        Config::from_toml(&text, &origin)
    }
}
