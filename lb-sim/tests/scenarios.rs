//! Library level: every scenario's verdict, and the certificate each hop saw
//! compared with the lab's own thumbprints (the right hop failed for the
//! right reason, not merely "it failed").

// Helpers outside #[test] functions panic on purpose: a panic is a test
// failure with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use lb_sim::observe::{FailureKind, Hop, Layer};
use lb_sim::run::{AttemptResult, Limits, ScenarioResult, run_scenario, seen};
use lb_sim::scenario::{self, Sight};
use lb_sim::verdict::{Reason, Verdict};
use passthru_certs::LabPki;

async fn run(name: &str) -> (ScenarioResult, LabPki) {
    let pki = LabPki::generate(time::OffsetDateTime::now_utc()).unwrap();
    let scenario = scenario::find(name).unwrap_or_else(|| panic!("no scenario {name}"));
    let result = run_scenario(&scenario, &pki, Limits::default())
        .await
        .unwrap();
    for attempt in &result.attempts {
        assert!(
            attempt.settled,
            "{name} / {}: a hop never reported",
            attempt.label
        );
        assert!(
            attempt.passed,
            "{name} / {}: expected {:?}, observed {:?} ({}); checks {:?}",
            attempt.label, attempt.expected, attempt.observed, attempt.explanation, attempt.checks
        );
    }
    (result, pki)
}

/// HAProxy and nginx ran (make deps installs them): each run names its
/// program and version and carries the configuration it ran with.
fn assert_real_balancers_ran(runs: &[AttemptResult], names: &[&str]) {
    assert_eq!(runs.len(), names.len());
    for (run, name) in runs.iter().zip(names) {
        assert_eq!(
            run.skipped, None,
            "{}: run `make deps` to install HAProxy and nginx",
            run.label
        );
        assert!(
            run.balancer.starts_with(name),
            "{}: {}",
            run.label,
            run.balancer
        );
        assert!(run.balancer_config.is_some(), "{}", run.label);
        let balancer = run.records.iter().find(|r| r.hop == Hop::Balancer).unwrap();
        assert!(
            balancer.component.starts_with(name),
            "{}",
            balancer.component
        );
    }
}

fn sha1(attempt: &AttemptResult, sight: Sight) -> Option<String> {
    seen(&attempt.records, sight).map(|c| c.sha1)
}

fn fails(hop: Hop, reason: Reason) -> Verdict {
    Verdict::Fails { hop, reason }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_gateway_and_backend_both_see_the_agent() {
    let (result, pki) = run("passthrough").await;
    let a = &result.attempts[0];
    assert_eq!(a.observed, Verdict::Works);
    assert_eq!(
        sha1(a, Sight::AgentOuterServer),
        Some(pki.gateway.sha1_hex())
    );
    assert_eq!(sha1(a, Sight::GatewayClient), Some(pki.agent.sha1_hex()));
    assert_eq!(
        sha1(a, Sight::AgentInnerServer),
        Some(pki.backend.sha1_hex())
    );
    assert_eq!(sha1(a, Sight::BackendClient), Some(pki.agent.sha1_hex()));
    let balancer = a.records.iter().find(|r| r.hop == Hop::Balancer).unwrap();
    assert!(
        balancer.component.starts_with("passthru"),
        "{}",
        balancer.component
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offload_breaks_the_pin_and_the_gateway_gets_no_client_certificate() {
    let (result, pki) = run("offload").await;
    let [pinned, unpinned, real @ ..] = &result.attempts[..] else {
        panic!("the built-in runs first")
    };
    assert_real_balancers_ran(real, &["HAProxy", "HAProxy", "HAProxy", "nginx"]);
    assert_eq!(pinned.observed, fails(Hop::Agent, Reason::PinMismatch));
    assert_eq!(
        sha1(pinned, Sight::AgentOuterServer),
        Some(pki.balancer.sha1_hex())
    );
    let agent = pinned.records.iter().find(|r| r.hop == Hop::Agent).unwrap();
    let failure = agent.leg(Layer::Outer).unwrap().failure.clone().unwrap();
    assert_eq!(
        failure.kind,
        FailureKind::PinMismatch {
            expected: pki.gateway.sha1_hex(),
            seen: pki.balancer.sha1_hex()
        }
    );
    assert!(pinned.records.iter().all(|r| r.hop != Hop::Gateway));

    assert_eq!(
        unpinned.observed,
        fails(Hop::Gateway, Reason::NoClientCertificate)
    );
    assert_eq!(sha1(unpinned, Sight::GatewayClient), None);
    let gateway = unpinned
        .records
        .iter()
        .find(|r| r.hop == Hop::Gateway)
        .unwrap();
    // What reached the gateway was the agent's inner ClientHello, in clear.
    assert_eq!(
        gateway.leg(Layer::Outer).unwrap().sni.as_deref(),
        Some("backend.example.com")
    );
    assert_eq!(
        sha1(unpinned, Sight::AgentInnerServer),
        Some(pki.gateway.sha1_hex())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offload_reencrypt_shows_the_gateway_the_balancer_identity() {
    let (result, pki) = run("offload-reencrypt").await;
    let [pinned, unpinned, real @ ..] = &result.attempts[..] else {
        panic!("the built-in runs first")
    };
    assert_real_balancers_ran(real, &["HAProxy", "HAProxy", "nginx", "nginx"]);
    // HAProxy with `verify optional` saw the agent's certificate (the agent
    // was asked for it and sent it), yet the gateway saw HAProxy's.
    let verified = &real[1];
    let agent = verified
        .records
        .iter()
        .find(|r| r.hop == Hop::Agent)
        .unwrap();
    let outer = agent.leg(Layer::Outer).unwrap();
    assert!(outer.client_cert_requested);
    assert_eq!(
        outer.presented.as_ref().map(|c| c.sha1.clone()),
        Some(pki.agent.sha1_hex())
    );
    assert_eq!(
        sha1(verified, Sight::GatewayClient),
        Some(pki.balancer.sha1_hex())
    );
    assert_eq!(pinned.observed, fails(Hop::Agent, Reason::PinMismatch));
    assert_eq!(
        unpinned.observed,
        fails(Hop::Gateway, Reason::WrongClientIdentity)
    );
    assert_eq!(
        sha1(unpinned, Sight::GatewayClient),
        Some(pki.balancer.sha1_hex())
    );
    // The inner session still reaches the backend with the agent's own key.
    assert_eq!(
        sha1(unpinned, Sight::BackendClient),
        Some(pki.agent.sha1_hex())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_hop_keeps_a_persistent_connection_across_idle_periods() {
    let (result, pki) = run("connect-hop").await;
    let a = &result.attempts[0];
    assert_eq!(a.observed, Verdict::Works);
    assert_eq!(sha1(a, Sight::GatewayClient), Some(pki.agent.sha1_hex()));
    let backend = a.records.iter().find(|r| r.hop == Hop::Backend).unwrap();
    assert_eq!(backend.said.len(), 3, "three exchanges over one connection");
    let proxy = a.records.iter().find(|r| r.hop == Hop::Proxy).unwrap();
    assert!(
        proxy.notes[0].starts_with("CONNECT gw.example.com:443"),
        "{:?}",
        proxy.notes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspecting_proxy_breaks_it_like_offload() {
    let (result, pki) = run("inspecting-proxy").await;
    let [pinned, trusting] = &result.attempts[..] else {
        panic!("two runs expected")
    };
    assert_eq!(pinned.observed, fails(Hop::Agent, Reason::PinMismatch));
    let shown = sha1(pinned, Sight::AgentOuterServer).unwrap();
    assert_ne!(shown, pki.gateway.sha1_hex());
    assert!(
        pki.identities().iter().all(|id| id.sha1_hex() != shown),
        "a minted certificate, not a lab one"
    );
    assert_eq!(
        trusting.observed,
        fails(Hop::Gateway, Reason::NoClientCertificate)
    );
    let gateway = trusting
        .records
        .iter()
        .find(|r| r.hop == Hop::Gateway)
        .unwrap();
    let failure = gateway.leg(Layer::Outer).unwrap().failure.clone().unwrap();
    assert_eq!(failure.kind, FailureKind::NoClientCertificate);
    assert_eq!(failure.alert_sent.as_deref(), Some("certificate_required"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_root_is_refused_by_the_gateway_with_unknown_ca() {
    let (result, pki) = run("untrusted-root").await;
    let a = &result.attempts[0];
    assert_eq!(a.observed, fails(Hop::Gateway, Reason::UntrustedIssuer));
    assert_eq!(
        sha1(a, Sight::GatewayClient),
        Some(pki.agent_untrusted.sha1_hex())
    );
    let agent = a.records.iter().find(|r| r.hop == Hop::Agent).unwrap();
    let failure = agent.leg(Layer::Outer).unwrap().failure.clone().unwrap();
    assert_eq!(failure.alert_received.as_deref(), Some("unknown_ca"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_thumbprint_mismatch_answers_authentication_required() {
    let (result, pki) = run("pinned-thumbprint-mismatch").await;
    let [other, pinned] = &result.attempts[..] else {
        panic!("two runs expected")
    };
    assert_eq!(
        other.observed,
        fails(Hop::Gateway, Reason::AuthenticationRequired)
    );
    assert_eq!(
        sha1(other, Sight::GatewayClient),
        Some(pki.agent2.sha1_hex())
    );
    let agent = other.records.iter().find(|r| r.hop == Hop::Agent).unwrap();
    assert!(
        agent
            .said
            .iter()
            .any(|l| l.contains("Authentication Required")),
        "{:?}",
        agent.said
    );
    assert_eq!(pinned.observed, Verdict::Works);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_skew_shows_how_early_and_how_late() {
    let (result, pki) = run("clock-skew").await;
    let [early, late] = &result.attempts[..] else {
        panic!("two runs expected")
    };
    assert_eq!(
        early.observed,
        fails(Hop::Gateway, Reason::CertificateNotYetValid)
    );
    assert_eq!(
        late.observed,
        fails(Hop::Gateway, Reason::CertificateExpired)
    );
    let kind = |a: &AttemptResult| {
        let gw = a.records.iter().find(|r| r.hop == Hop::Gateway).unwrap();
        gw.leg(Layer::Outer).unwrap().failure.clone().unwrap().kind
    };
    let FailureKind::NotYetValid {
        not_before,
        checked_at,
    } = kind(early)
    else {
        panic!("{:?}", kind(early))
    };
    assert!(
        (not_before - checked_at).abs_diff(7200) < 120,
        "about 2 h early"
    );
    let FailureKind::Expired {
        not_after,
        checked_at,
    } = kind(late)
    else {
        panic!("{:?}", kind(late))
    };
    assert!(
        (checked_at - not_after).abs_diff(35 * 86_400) < 120,
        "about 35 days late"
    );
    assert!(early.explanation.contains("early"), "{}", early.explanation);
    assert_eq!(
        sha1(early, Sight::GatewayClient),
        Some(pki.agent_not_yet_valid.sha1_hex())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_cn_thumbprints_tell_apart_what_cn_cannot() {
    let (result, pki) = run("duplicate-cn").await;
    let [current, rotated, by_cn] = &result.attempts[..] else {
        panic!("three runs expected")
    };
    assert_eq!(current.observed, Verdict::Works);
    assert_eq!(rotated.observed, Verdict::Works);
    let a = seen(&current.records, Sight::BackendClient).unwrap();
    let b = seen(&rotated.records, Sight::BackendClient).unwrap();
    assert_eq!(a.subject_cn, b.subject_cn, "same CN");
    assert_eq!(a.sha1, pki.agent.sha1_hex());
    assert_eq!(b.sha1, pki.agent_duplicate_cn.sha1_hex());
    assert_ne!(a.sha1, b.sha1, "different thumbprints");
    assert_eq!(
        by_cn.observed,
        fails(Hop::Gateway, Reason::AmbiguousIdentity)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snat_hides_agents_behind_the_balancer_unless_proxy_v2_carries_them() {
    let (result, _) = run("snat").await;
    let logged: Vec<(String, bool)> = result
        .attempts
        .iter()
        .map(|a| {
            let gateway = a.records.iter().find(|r| r.hop == Hop::Gateway).unwrap();
            let ip = gateway
                .client_addr
                .as_deref()
                .unwrap()
                .rsplit_once(':')
                .unwrap()
                .0;
            (ip.to_string(), a.logged.as_ref().unwrap().ok)
        })
        .collect();
    assert_eq!(
        logged,
        [
            ("127.0.0.1".to_string(), true),
            ("127.0.0.1".to_string(), true),
            ("127.0.0.11".to_string(), true),
            ("127.0.0.12".to_string(), true),
        ]
    );
}
