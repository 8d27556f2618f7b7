//! `passthru-certs verify` against `openssl verify` on every lab fault
//! variant: the same verdict, and our reason text exactly.

use crate::support::{fixed_lab, openssl, run};

const ROOT: &str = "O=passthru lab, CN=Lab Root CA";

struct Case {
    chain: &'static str,
    ca: &'static str,
    purpose: &'static str,
    name: Option<&'static str>,
    /// `None`: valid.
    reason: Option<String>,
}

fn case(
    chain: &'static str,
    ca: &'static str,
    purpose: &'static str,
    reason: Option<String>,
) -> Case {
    Case {
        chain,
        ca,
        purpose,
        name: None,
        reason,
    }
}

fn cases() -> Vec<Case> {
    vec![
        case("agent-01.chain.pem", "root-ca.pem", "client", None),
        case("agent-02.chain.pem", "root-ca.pem", "client", None),
        case("agent-01-rotated.chain.pem", "root-ca.pem", "client", None),
        case("balancer.pem", "root-ca.pem", "client", None),
        case(
            "agent-expired.chain.pem",
            "root-ca.pem",
            "client",
            Some(
                "O=passthru lab, CN=agent-expired: expired: valid until 2026-04-23T20:26:40Z, \
                 checked at 2026-05-28T20:26:40Z (35 days late)"
                    .to_owned(),
            ),
        ),
        case(
            "agent-not-yet-valid.chain.pem",
            "root-ca.pem",
            "client",
            Some(
                "O=passthru lab, CN=agent-not-yet-valid: not valid yet: valid from 2026-05-28T22:26:40Z, \
                 checked at 2026-05-28T20:26:40Z (2 h early)"
                    .to_owned(),
            ),
        ),
        case(
            "agent-untrusted.pem",
            "root-ca.pem",
            "client",
            Some(format!(
                "issuer O=passthru lab, CN=Rogue CA not in --ca bundle (which holds {ROOT}); \
                 O=passthru lab, CN=agent-01 names it"
            )),
        ),
        case(
            "agent-01.pem",
            "root-ca.pem",
            "client",
            Some(format!(
                "issuer O=passthru lab, CN=Lab Agent CA not in --ca bundle (which holds {ROOT}); \
                 O=passthru lab, CN=agent-01 names it"
            )),
        ),
        case(
            "agent-server-eku.chain.pem",
            "root-ca.pem",
            "client",
            Some(
                "O=passthru lab, CN=agent-server-eku: EKU is serverAuth, --purpose client needs clientAuth"
                    .to_owned(),
            ),
        ),
        Case {
            name: Some("backend.example.com"),
            ..case(
                "server-wrong-name.pem",
                "root-ca.pem",
                "server",
                Some(
                    "name mismatch: backend.example.com is not among the certificate's names \
                     (DNS:wrong.example.com)"
                        .to_owned(),
                ),
            )
        },
        Case { name: Some("backend.example.com"), ..case("backend.pem", "root-ca.pem", "server", None) },
        case(
            "gateway.pem",
            "root-ca.pem",
            "server",
            Some(format!(
                "O=passthru lab, CN=gw.example.com is self-signed and not in --ca bundle (which holds {ROOT})"
            )),
        ),
        Case { name: Some("gw.example.com"), ..case("gateway.pem", "gateway.pem", "server", None) },
    ]
}

#[test]
fn verdicts_match_openssl_verify_and_reasons_are_exact() {
    let lab = fixed_lab();
    let attime = lab.now_epoch().to_string();
    for c in cases() {
        let chain = lab.file(c.chain);
        let ca = lab.file(c.ca);
        let mut args = vec![
            "verify",
            "--ca",
            ca.as_str(),
            chain.as_str(),
            "--at",
            lab.now.as_str(),
        ];
        args.extend(["--purpose", c.purpose]);
        if let Some(name) = c.name {
            args.extend(["--name", name]);
        }
        let ours = run(&args);
        let openssl_purpose = if c.purpose == "client" {
            "sslclient"
        } else {
            "sslserver"
        };
        let mut theirs_args = vec![
            "verify",
            "-CAfile",
            ca.as_str(),
            "-untrusted",
            chain.as_str(),
            "-purpose",
            openssl_purpose,
            "-attime",
            attime.as_str(),
        ];
        if let Some(name) = c.name {
            theirs_args.extend(["-verify_hostname", name]);
        }
        theirs_args.push(chain.as_str());
        let theirs = openssl(&theirs_args);
        let valid = c.reason.is_none();
        assert_eq!(
            theirs.code() == 0,
            valid,
            "openssl on {}: {}{}",
            c.chain,
            theirs.stdout,
            theirs.stderr
        );
        assert_eq!(
            ours.code(),
            if valid { 0 } else { 1 },
            "{}: {}{}",
            c.chain,
            ours.stdout,
            ours.stderr
        );
        match &c.reason {
            None => assert!(ours.stdout.contains(": valid for "), "{}", ours.stdout),
            Some(reason) => assert!(
                ours.stdout.contains(&format!("\n  reason: {reason}\n")),
                "{}: expected reason {reason:?} in\n{}",
                c.chain,
                ours.stdout
            ),
        }
    }
}

#[test]
fn json_carries_the_numbers() {
    let lab = fixed_lab();
    let out = run(&[
        "verify",
        "--ca",
        &lab.file("root-ca.pem"),
        &lab.file("agent-not-yet-valid.chain.pem"),
        "--at",
        "2026-05-28T22:24:40Z",
        "--json",
    ]);
    assert_eq!(out.code(), 1);
    let json = out.json();
    assert_eq!(json["valid"], false);
    assert_eq!(json["error"]["kind"], "not_yet_valid");
    assert_eq!(json["error"]["early_secs"], 120);
    assert!(json["reason"].as_str().unwrap().ends_with("(2 min early)"));
    assert_eq!(json["chain"].as_array().unwrap().len(), 2);
    assert_eq!(json["purpose"], "client");
}

#[test]
fn usage_errors_exit_2_naming_the_file() {
    let lab = fixed_lab();
    let key = lab.file("root-ca.key");
    let out = run(&["verify", "--ca", &key, &lab.file("agent-01.chain.pem")]);
    assert_eq!(out.code(), 2);
    assert!(
        out.stderr.contains(&format!("{key} is not a certificate")),
        "{}",
        out.stderr
    );
    let out = run(&[
        "verify",
        "--ca",
        &lab.file("root-ca.pem"),
        "/nonexistent/chain.pem",
    ]);
    assert_eq!(out.code(), 2);
    assert!(
        out.stderr.contains("/nonexistent/chain.pem"),
        "{}",
        out.stderr
    );
    let out = run(&[
        "verify",
        "--ca",
        &lab.file("root-ca.pem"),
        &lab.file("agent-01.chain.pem"),
        "--purpose",
        "both",
    ]);
    assert_eq!(out.code(), 2);
}
