//! Exact reasons for every lab fault variant, at the lab's fixed "now".

use rustls::pki_types::CertificateDer;

use super::*;
use crate::{Identity, LabPki, clock};

/// 2026-05-28T20:26:40Z.
fn lab() -> LabPki {
    LabPki::generate(clock::from_timestamp(1_780_000_000)).unwrap()
}

fn anchors(ids: &[&Identity]) -> TrustAnchors {
    let certs: Vec<_> = ids
        .iter()
        .map(|i| CertificateDer::from(i.cert_der.clone()))
        .collect();
    TrustAnchors::new("ca.pem", &certs).unwrap()
}

fn reason(
    pki: &LabPki,
    anchor: &Identity,
    id: &Identity,
    purpose: Purpose,
    name: Option<&str>,
) -> Option<String> {
    let report = verify(
        &anchors(&[anchor]),
        &id.rustls_chain().0,
        pki.now,
        purpose,
        name,
    )
    .unwrap();
    assert_eq!(report.valid, report.reason.is_none());
    report.reason
}

const ROOT: &str = "O=passthru lab, CN=Lab Root CA";

#[test]
fn good_chains_are_valid() {
    let pki = lab();
    for agent in [
        &pki.agent,
        &pki.agent2,
        &pki.agent_duplicate_cn,
        &pki.balancer,
    ] {
        assert_eq!(
            reason(&pki, &pki.root_ca, agent, Purpose::Client, None),
            None,
            "{}",
            agent.name
        );
    }
    let backend = Some("backend.example.com");
    assert_eq!(
        reason(&pki, &pki.root_ca, &pki.backend, Purpose::Server, backend),
        None
    );
    let gw = Some("gw.example.com");
    assert_eq!(
        reason(&pki, &pki.gateway, &pki.gateway, Purpose::Server, gw),
        None
    );
    let agent_name = Some("agent-01.agents.example.com");
    assert_eq!(
        reason(&pki, &pki.root_ca, &pki.agent, Purpose::Client, agent_name),
        None
    );
}

#[test]
fn expired_says_until_when_and_how_late() {
    let pki = lab();
    assert_eq!(
        reason(
            &pki,
            &pki.root_ca,
            &pki.agent_expired,
            Purpose::Client,
            None
        )
        .unwrap(),
        "O=passthru lab, CN=agent-expired: expired: valid until 2026-04-23T20:26:40Z, \
         checked at 2026-05-28T20:26:40Z (35 days late)"
    );
}

#[test]
fn not_yet_valid_says_from_when_and_how_early() {
    let pki = lab();
    assert_eq!(
        reason(
            &pki,
            &pki.root_ca,
            &pki.agent_not_yet_valid,
            Purpose::Client,
            None
        )
        .unwrap(),
        "O=passthru lab, CN=agent-not-yet-valid: not valid yet: valid from 2026-05-28T22:26:40Z, \
         checked at 2026-05-28T20:26:40Z (2 h early)"
    );
    // Two minutes of clock skew.
    let at = pki.now + time::Duration::minutes(118);
    let report = verify(
        &anchors(&[&pki.root_ca]),
        &pki.agent_not_yet_valid.rustls_chain().0,
        at,
        Purpose::Client,
        None,
    )
    .unwrap();
    assert_eq!(
        report.error,
        Some(VerifyError::NotYetValid {
            subject: "O=passthru lab, CN=agent-not-yet-valid".to_owned(),
            not_before: "2026-05-28T22:26:40Z".to_owned(),
            at: "2026-05-28T22:24:40Z".to_owned(),
            early_secs: 120,
        })
    );
    assert!(report.reason.unwrap().ends_with("(2 min early)"));
}

#[test]
fn unknown_issuer_names_the_issuer_and_the_bundle() {
    let pki = lab();
    assert_eq!(
        reason(
            &pki,
            &pki.root_ca,
            &pki.agent_untrusted,
            Purpose::Client,
            None
        )
        .unwrap(),
        format!(
            "issuer O=passthru lab, CN=Rogue CA not in --ca bundle (which holds {ROOT}); \
             O=passthru lab, CN=agent-01 names it"
        )
    );
    // The leaf alone, without its intermediate: the agent CA is missing.
    let leaf = vec![CertificateDer::from(pki.agent.cert_der.clone())];
    let report = verify(
        &anchors(&[&pki.root_ca]),
        &leaf,
        pki.now,
        Purpose::Client,
        None,
    )
    .unwrap();
    assert_eq!(
        report.reason.unwrap(),
        format!(
            "issuer O=passthru lab, CN=Lab Agent CA not in --ca bundle (which holds {ROOT}); \
             O=passthru lab, CN=agent-01 names it"
        )
    );
    // The self-signed gateway is not vouched for by the lab root.
    assert_eq!(
        reason(&pki, &pki.root_ca, &pki.gateway, Purpose::Server, None).unwrap(),
        format!(
            "O=passthru lab, CN=gw.example.com is self-signed and not in --ca bundle (which holds {ROOT})"
        )
    );
}

#[test]
fn wrong_eku_says_what_it_is_and_what_is_needed() {
    let pki = lab();
    assert_eq!(
        reason(
            &pki,
            &pki.root_ca,
            &pki.agent_server_only,
            Purpose::Client,
            None
        )
        .unwrap(),
        "O=passthru lab, CN=agent-server-eku: EKU is serverAuth, --purpose client needs clientAuth"
    );
    assert_eq!(
        reason(&pki, &pki.root_ca, &pki.agent, Purpose::Server, None).unwrap(),
        "O=passthru lab, CN=agent-01: EKU is clientAuth, --purpose server needs serverAuth"
    );
}

#[test]
fn name_mismatch_lists_the_sans() {
    let pki = lab();
    let name = Some("backend.example.com");
    assert_eq!(
        reason(
            &pki,
            &pki.root_ca,
            &pki.server_wrong_name,
            Purpose::Server,
            name
        )
        .unwrap(),
        "name mismatch: backend.example.com is not among the certificate's names (DNS:wrong.example.com)"
    );
    let report = verify(
        &anchors(&[&pki.root_ca]),
        &pki.backend.rustls_chain().0,
        pki.now,
        Purpose::Server,
        Some("10.0.0.1"),
    )
    .unwrap();
    assert_eq!(
        report.error,
        Some(VerifyError::NameMismatch {
            name: "10.0.0.1".to_owned(),
            presented: vec![
                "DNS:backend.example.com".to_owned(),
                "DNS:localhost".to_owned(),
                "IP:127.0.0.1".to_owned()
            ],
        })
    );
}

#[test]
fn a_regenerated_root_with_the_same_name_is_a_bad_signature() {
    let pki = lab();
    let other = LabPki::generate(pki.now).unwrap();
    let error = verify(
        &anchors(&[&other.root_ca]),
        &pki.agent.rustls_chain().0,
        pki.now,
        Purpose::Client,
        None,
    )
    .unwrap()
    .error
    .unwrap();
    assert_eq!(
        error.to_string(),
        format!(
            "signature of O=passthru lab, CN=Lab Agent CA does not verify with the key of {ROOT} \
             (the --ca bundle has a certificate with that name but another key: a regenerated CA?)"
        )
    );
}

#[test]
fn setup_errors_are_usage_errors() {
    let pki = lab();
    let a = anchors(&[&pki.root_ca]);
    assert_eq!(
        verify(&a, &[], pki.now, Purpose::Client, None).unwrap_err(),
        SetupError::EmptyChain
    );
    assert_eq!(
        verify(
            &a,
            &pki.backend.rustls_chain().0,
            pki.now,
            Purpose::Server,
            Some("bad name!")
        )
        .unwrap_err()
        .to_string(),
        "\"bad name!\" is not a DNS name or IP address"
    );
    let junk = vec![CertificateDer::from(vec![1, 2, 3])];
    assert!(matches!(
        TrustAnchors::new("junk.pem", &junk),
        Err(SetupError::NoAnchors { .. })
    ));
}

#[test]
fn report_lists_the_chain_and_serialises() {
    let pki = lab();
    let report = verify(
        &anchors(&[&pki.root_ca]),
        &pki.agent_expired.rustls_chain().0,
        pki.now,
        Purpose::Client,
        None,
    )
    .unwrap();
    assert_eq!(report.chain.len(), 2);
    assert_eq!(report.chain[0].sha1, pki.agent_expired.sha1_hex());
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["valid"], false);
    assert_eq!(json["error"]["kind"], "expired");
    assert_eq!(json["error"]["late_secs"], 35 * 86_400);
    assert_eq!(json["purpose"], "client");
}
