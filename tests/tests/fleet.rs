//! The fleet: three real passthru processes behind a real HAProxy, a
//! rolling upgrade (`--takeover`) and a rolling restart under continuous
//! agent load, with zero failed handshakes and zero broken persistent
//! connections (see `passthru_tests::fleet`). A test binary of its own: its
//! load would otherwise disturb the in-process measurements of `it` (the
//! storm's RSS between waves).

// Tests unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use passthru_tests::binary::passthru_binary;
use passthru_tests::fleet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_upgrade_and_a_rolling_restart_fail_no_agent() {
    let bin = passthru_binary();
    let report = fleet::run(&bin, |line| eprintln!("{line}")).await.unwrap();
    for (name, c) in [
        ("rolling upgrade", &report.rolling_upgrade),
        ("rolling restart", &report.rolling_restart),
    ] {
        eprintln!("{name}: {c:?}");
        assert!(c.attempted > 0, "{name}: no short connection was made");
        assert_eq!(c.failed, 0, "{name}: {:?}", c.first_error);
        assert_eq!(c.persistent_broken, 0, "{name}: {:?}", c.first_error);
        assert!(
            c.persistent_kept > 0,
            "{name}: no persistent connection was open across a step"
        );
    }
}
