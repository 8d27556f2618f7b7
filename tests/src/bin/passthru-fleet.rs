//! `make demo-fleet`: three passthru instances behind a real HAProxy, a
//! mutual-TLS gateway behind them, agents connecting continuously; a
//! rolling upgrade (`--takeover`) and a rolling restart (drain, stop,
//! start), with the counts of each. Exit 1 when any agent failed.

// A demo program: a failed step ends it with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use passthru_tests::fleet::{self, Counts};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let bin = match (args.next().as_deref(), args.next()) {
        (Some("--passthru"), Some(path)) => PathBuf::from(path),
        _ => {
            eprintln!("usage: passthru-fleet --passthru PATH-TO-PASSTHRU-BINARY");
            std::process::exit(2);
        }
    };
    let report = match fleet::run(&bin, |line| println!("{line}")).await {
        Ok(report) => report,
        Err(e) => {
            eprintln!("passthru-fleet: {e:#}");
            std::process::exit(1);
        }
    };
    println!();
    let ok = summary("rolling upgrade", &report.rolling_upgrade)
        & summary("rolling restart", &report.rolling_restart);
    std::process::exit(if ok { 0 } else { 1 });
}

/// Print one procedure's line; whether nothing failed.
fn summary(name: &str, c: &Counts) -> bool {
    println!(
        "{name}: {} short connections attempted, {} failed; {} persistent connections completed, {} kept through a takeover or restart, {} broken",
        c.attempted, c.failed, c.persistent_completed, c.persistent_kept, c.persistent_broken
    );
    if let Some(e) = &c.first_error {
        println!("  first failure: {e}");
    }
    c.failed == 0 && c.persistent_broken == 0
}
