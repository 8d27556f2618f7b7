//! Process-level tests of the `passthru-certs` binary: exit codes, `--help`,
//! and every subcommand cross-checked against `openssl` (x509, verify,
//! s_server, s_client) and `tinyproxy` on loopback. One test binary; the
//! modules live in `tests/cli/`.

// Test code: a panic is a test failure with a message.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// Plain threads polling child processes and ports; there is no async
// runtime whose clock these waits could share.
#![allow(clippy::disallowed_types)]

#[path = "cli/support.rs"]
mod support;

#[path = "cli/inspect.rs"]
mod inspect;
#[path = "cli/lab.rs"]
mod lab;
#[path = "cli/probe.rs"]
mod probe;
#[path = "cli/verify.rs"]
mod verify;
