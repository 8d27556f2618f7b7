//! Diagnostics: a tracing subscriber writing to stderr, filtered by
//! `RUST_LOG` (default `info`), as text or JSON. The access log is not
//! here: see [`crate::access_log`].

use tracing_subscriber::EnvFilter;

use crate::access_log::LogFormat;

/// Install the global subscriber. Safe to call more than once (later calls
/// are ignored).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(false).try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
