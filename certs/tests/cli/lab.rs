//! `passthru-certs lab`, `--help`, and the lab used by openssl for a
//! mutual-TLS handshake.

use std::time::Duration;

use crate::support::{fixed_lab, live_lab, openssl, run, run_command, s_server};

#[test]
fn help_has_an_example_per_subcommand() {
    let top = run(&["--help"]);
    assert_eq!(top.code(), 0);
    for sub in ["lab", "inspect", "verify", "probe"] {
        assert!(top.stdout.contains(sub), "{}", top.stdout);
        let help = run(&[sub, "--help"]);
        assert_eq!(help.code(), 0, "{sub} --help");
        assert!(
            help.stdout.contains(&format!("passthru-certs {sub} ")),
            "{sub} --help has no example:\n{}",
            help.stdout
        );
    }
    assert_eq!(run(&["--version"]).code(), 0);
    let bad = run(&["inspect"]);
    assert_eq!(bad.code(), 2, "missing FILE is a usage error");
}

#[test]
fn lab_refuses_a_non_empty_dir_with_exit_2_unless_forced() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().display().to_string();
    std::fs::write(tmp.path().join("keep.txt"), "mine").unwrap();
    let refused = run(&["lab", "--out", &out]);
    assert_eq!(refused.code(), 2);
    assert!(
        refused.stderr.contains(&out),
        "names the dir: {}",
        refused.stderr
    );
    assert!(refused.stderr.contains("not empty"), "{}", refused.stderr);
    let forced = run(&["lab", "--out", &out, "--force"]);
    assert_eq!(forced.code(), 0, "{}", forced.stderr);
    assert!(tmp.path().join("agent-01.pem").exists());
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("keep.txt")).unwrap(),
        "mine"
    );
}

#[cfg(unix)]
#[test]
fn lab_writes_every_identity_with_owner_only_keys_and_a_readme() {
    use std::os::unix::fs::PermissionsExt as _;

    let lab = fixed_lab();
    assert_eq!(lab.now, "2026-05-28T20:26:40Z");
    let readme = std::fs::read_to_string(lab.dir.join("README.txt")).unwrap();
    for name in [
        "root-ca",
        "agent-ca",
        "agent-01",
        "agent-02",
        "gateway",
        "backend",
        "balancer",
        "rogue-ca",
        "agent-expired",
        "agent-not-yet-valid",
        "agent-untrusted",
        "agent-01-rotated",
        "agent-server-eku",
        "server-wrong-name",
    ] {
        let key = lab.dir.join(format!("{name}.key"));
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", key.display());
        assert!(
            readme.contains(&format!("{name}.pem")),
            "README lacks {name}"
        );
    }
    let bad_time = run(&["lab", "--out", "/nonexistent/x", "--now", "soon"]);
    assert_eq!(bad_time.code(), 2);
    assert!(
        bad_time.stderr.contains("\"soon\" is not a time"),
        "{}",
        bad_time.stderr
    );
}

#[test]
fn lab_output_works_for_an_openssl_mutual_tls_handshake() {
    let lab = live_lab();
    let server = s_server(
        &lab.dir,
        &[
            "-cert",
            "gateway.pem",
            "-key",
            "gateway.key",
            "-CAfile",
            "root-ca.pem",
            "-Verify",
            "1",
            "-verify_return_error",
        ],
    );
    let port = server.port.to_string();
    let mut client = std::process::Command::new("openssl");
    client
        .current_dir(&lab.dir)
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "gw.example.com",
        ])
        .args([
            "-cert",
            "agent-01.pem",
            "-key",
            "agent-01.key",
            "-cert_chain",
            "agent-ca.pem",
        ])
        .args([
            "-CAfile",
            "gateway.pem",
            "-verify_return_error",
            "-verify_hostname",
            "gw.example.com",
        ]);
    let out = run_command(client, b"hello from agent-01\n", Duration::from_secs(20));
    assert!(
        out.stdout.contains("Verify return code: 0 (ok)"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    server
        .output
        .wait_for("hello from agent-01", Duration::from_secs(10));
    assert!(
        server
            .output
            .text()
            .contains("subject=O = passthru lab, CN = agent-01")
    );

    // The same files pass `openssl verify` as a chain.
    let verified = openssl(&[
        "verify",
        "-CAfile",
        &lab.file("root-ca.pem"),
        "-untrusted",
        &lab.file("agent-ca.pem"),
        "-purpose",
        "sslclient",
        &lab.file("agent-01.pem"),
    ]);
    assert_eq!(verified.code(), 0, "{}{}", verified.stdout, verified.stderr);
}
