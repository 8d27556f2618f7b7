//! The fleet: three real passthru processes behind a real HAProxy, a
//! rolling upgrade (`--takeover`) and a rolling restart under continuous
//! agent load, with zero failed handshakes and zero broken persistent
//! connections (see `passthru_tests::fleet`).

use std::path::PathBuf;
use std::process::Command;

use passthru_tests::fleet;

/// The passthru binary of this build profile, built if needed.
fn passthru_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/PROFILE/deps/it-HASH
    let profile_dir = exe.parent().and_then(|d| d.parent()).unwrap().to_path_buf();
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let mut cargo = Command::new(env!("CARGO"));
    cargo.args(["build", "--quiet", "-p", "passthru", "--bin", "passthru"]);
    if release {
        cargo.arg("--release");
    }
    let status = cargo.status().unwrap();
    assert!(status.success(), "cannot build the passthru binary");
    profile_dir.join("passthru")
}

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
