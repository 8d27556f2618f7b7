//! Runs scenarios: for each run of a scenario, start its topology, let the
//! agent connect, wait (bounded) until every hop reported, judge, and check
//! the thumbprints each hop saw against the lab's.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use passthru_certs::LabPki;
use serde::Serialize;

use crate::agent::GATEWAY_NAME;
use crate::agent::{self, AgentPlan};
use crate::gateway::{ClientCheck, IdentifyBy, KnownClient};
use crate::observe::{CertSeen, Hop, HopRecord, Layer};
use crate::post_quantum::{self, Crossing};
use crate::scenario::{AgentTrust, Attempt, Check, Logged, Party, Scenario, Sight};
use crate::tls::{ServerTrust, cert_seen, roots};
use crate::topology::{Knobs, Path, Ports, Topology};
use crate::verdict::{Reason, Verdict, judge};

/// Everything the reports need about a whole invocation.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The "now" the lab PKI was generated for (UTC).
    pub lab_now: String,
    /// Whether every run that ran matched its expectation.
    pub passed: bool,
    /// How many runs were skipped (a program they need is missing).
    pub skipped: usize,
    /// One entry per scenario.
    pub scenarios: Vec<ScenarioResult>,
}

/// The result of one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    /// Its name.
    pub name: String,
    /// What it shows.
    pub title: String,
    /// Whether every run matched.
    pub passed: bool,
    /// Its runs.
    pub attempts: Vec<AttemptResult>,
}

/// The result of one run.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptResult {
    /// What distinguishes it.
    pub label: String,
    /// The path.
    pub path: Path,
    /// The path in words.
    pub path_text: String,
    /// The hops on the path, agent first.
    pub hops: Vec<Hop>,
    /// The agent's certificate (lab file stem).
    pub agent_cert: String,
    /// Expected verdict.
    pub expected: Verdict,
    /// Observed verdict.
    pub observed: Verdict,
    /// One sentence saying why.
    pub explanation: String,
    /// Thumbprint checks.
    pub checks: Vec<SeenCheck>,
    /// What each hop recorded.
    pub records: Vec<HopRecord>,
    /// Whether every hop reported before the deadline.
    pub settled: bool,
    /// Verdict and every check matched.
    pub passed: bool,
    /// Wall time, milliseconds.
    pub millis: u64,
    /// The software playing the balancer: "built-in", or the real
    /// program's name and version ("HAProxy 2.6.12").
    pub balancer: String,
    /// The real balancer's configuration (template filled in), if any.
    pub balancer_config: Option<String>,
    /// Where this balancer behaves differently from the built-in relay.
    pub note: Option<String>,
    /// Why the run was skipped (a program is missing), if it was.
    pub skipped: Option<String>,
    /// The client address the gateway logged, against the expected one.
    pub logged: Option<AddrCheck>,
    /// post-quantum: the hello's size, key shares, segments and reads.
    pub hello: Option<Crossing>,
}

/// "Whose address did the gateway log" check.
#[derive(Debug, Clone, Serialize)]
pub struct AddrCheck {
    /// Whose address it must be.
    pub expected_party: Logged,
    /// That address (IP).
    pub expected: String,
    /// What the gateway logged (IP:port).
    pub observed: Option<String>,
    /// Same IP?
    pub ok: bool,
}

/// One "who saw which certificate" check.
#[derive(Debug, Clone, Serialize)]
pub struct SeenCheck {
    /// The vantage point.
    pub sight: Sight,
    /// Whose certificate should be there (`None`: none).
    pub expected_party: Option<Party>,
    /// Its SHA-1.
    pub expected: Option<String>,
    /// What was there.
    pub observed: Option<CertSeen>,
    /// Equal?
    pub ok: bool,
}

/// Bounds of one run.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Each step (connect, handshake, answer).
    pub step: Duration,
    /// Waiting for every hop to report after the agent finished.
    pub settle: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            step: Duration::from_secs(5),
            settle: Duration::from_secs(10),
        }
    }
}

/// Run `scenarios` against a lab generated now; `progress` is called as
/// each scenario finishes.
pub async fn run_all(
    scenarios: &[Scenario],
    limits: Limits,
    mut progress: impl FnMut(&ScenarioResult),
) -> anyhow::Result<Report> {
    let pki = Arc::new(LabPki::generate(time::OffsetDateTime::now_utc()).context("lab PKI")?);
    let mut results = Vec::with_capacity(scenarios.len());
    for scenario in scenarios {
        let result = run_scenario(scenario, &pki, limits).await?;
        progress(&result);
        results.push(result);
    }
    Ok(Report {
        lab_now: crate::verdict::utc(u64::try_from(pki.now.unix_timestamp()).unwrap_or(0)),
        passed: results.iter().all(|r| r.passed),
        skipped: results
            .iter()
            .flat_map(|r| &r.attempts)
            .filter(|a| a.skipped.is_some())
            .count(),
        scenarios: results,
    })
}

/// Run every attempt of one scenario.
pub async fn run_scenario(
    scenario: &Scenario,
    pki: &LabPki,
    limits: Limits,
) -> anyhow::Result<ScenarioResult> {
    let mut attempts = Vec::with_capacity(scenario.attempts.len());
    for attempt in &scenario.attempts {
        let result = run_attempt(attempt, pki, limits)
            .await
            .with_context(|| format!("scenario {} / {}", scenario.name, attempt.label))?;
        attempts.push(result);
    }
    Ok(ScenarioResult {
        name: scenario.name.to_string(),
        title: scenario.title.to_string(),
        passed: attempts.iter().all(|a| a.passed || a.skipped.is_some()),
        attempts,
    })
}

async fn run_attempt(
    attempt: &Attempt,
    pki: &LabPki,
    limits: Limits,
) -> anyhow::Result<AttemptResult> {
    let started = tokio::time::Instant::now();
    let identity = attempt.agent.identity(pki);
    if attempt.path == Path::PostQuantum {
        if let Some(reason) = post_quantum::unavailable() {
            return Ok(AttemptResult {
                balancer: "passthru".into(),
                ..skipped(attempt, "(none)".into(), reason)
            });
        }
        let crossing = post_quantum::run_isolated().await?;
        let (observed, explanation) = judge_crossing(&crossing);
        return Ok(AttemptResult {
            passed: observed == attempt.expect,
            millis: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            records: post_quantum::records(&crossing),
            settled: true,
            observed,
            explanation,
            hello: Some(crossing),
            balancer: "passthru".into(),
            skipped: None,
            ..skipped(
                attempt,
                "(none: Chromium presents no certificate)".into(),
                String::new(),
            )
        });
    }
    if let Some(reason) = attempt.implementation.unavailable() {
        return Ok(skipped(attempt, identity.name.clone(), reason));
    }
    let knobs = Knobs {
        implementation: attempt.implementation,
        idle_timeout: attempt.idle_timeout_ms.map(Duration::from_millis),
        proxy_v2: attempt.proxy_v2,
        tcp_keepalive: attempt.tcp_keepalive_ms.map(Duration::from_millis),
    };
    let mut topology = Topology::start_with(
        attempt.path,
        knobs,
        pki,
        gateway_check(attempt.check, pki),
        limits.step,
        Ports::any(),
    )
    .await?;
    let minted = topology.proxy.as_ref().and_then(|p| p.minted.clone());
    let outer_trust = match attempt.trust {
        AgentTrust::PinGateway => ServerTrust::Pinned(pki.gateway.sha1_hex()),
        AgentTrust::LabRoot => ServerTrust::Roots(roots(&[&pki.root_ca.cert_der])?),
        AgentTrust::ProxyCa => {
            let ca = topology
                .proxy
                .as_ref()
                .and_then(|p| p.ca.as_ref())
                .context("this path has no inspecting proxy CA to trust")?;
            ServerTrust::Roots(roots(&[&ca.cert_der])?)
        }
    };
    let plan = AgentPlan {
        identity: identity.clone(),
        outer_trust,
        inner_roots: roots(&[&pki.root_ca.cert_der])?,
        entry: topology.entry.clone(),
        first_hop: topology.first_hop,
        exchanges: attempt.exchanges,
        idle: Duration::from_millis(attempt.idle_ms),
        step_limit: limits.step,
        source: attempt.source.map(IpAddr::from),
    };
    let agent_record = agent::run(&plan, &topology.ledger).await;
    let real = topology.real.take();
    if let Some(real) = &real {
        let outer = agent_record.leg(Layer::Outer);
        topology.ledger.report(real.record(
            attempt.path == Path::OffloadReencrypt,
            &pki.balancer,
            outer,
        ));
    }
    topology.ledger.report(agent_record);
    let settled = topology.ledger.settled(limits.settle).await;
    topology.stop();
    let mut records = topology.ledger.records();
    if real.is_some() {
        crate::real::mirror_upstream(&mut records);
    }
    let (balancer, balancer_config) = match real {
        Some(real) => {
            let described = (real.version.clone(), Some(real.config.clone()));
            real.stop().await;
            described
        }
        None => (attempt.implementation.name().to_string(), None),
    };

    let (observed, explanation) = judge(&records, attempt.exchanges);
    let party_sha1 = |party: Party| -> Option<String> {
        match party {
            Party::Agent => Some(identity.sha1_hex()),
            Party::Gateway => Some(pki.gateway.sha1_hex()),
            Party::Backend => Some(pki.backend.sha1_hex()),
            Party::Balancer => Some(pki.balancer.sha1_hex()),
            Party::ProxyMinted => minted.as_ref().map(|m| m.sha1_hex()),
        }
    };
    let checks: Vec<SeenCheck> = attempt
        .seen
        .iter()
        .map(|(sight, party)| {
            let expected = party.and_then(party_sha1);
            let observed = seen(&records, *sight);
            SeenCheck {
                sight: *sight,
                expected_party: *party,
                ok: observed.as_ref().map(|c| &c.sha1) == expected.as_ref(),
                expected,
                observed,
            }
        })
        .collect();
    let logged = attempt.logged.map(|party| {
        let expected = match party {
            Logged::Agent => attempt
                .source
                .map_or(IpAddr::from([127, 0, 0, 1]), IpAddr::from),
            Logged::Balancer => IpAddr::from([127, 0, 0, 1]),
        };
        let observed = records
            .iter()
            .find(|r| r.hop == Hop::Gateway)
            .and_then(|r| r.client_addr.clone());
        AddrCheck {
            expected_party: party,
            expected: expected.to_string(),
            ok: observed
                .as_deref()
                .and_then(|o| o.parse::<SocketAddr>().ok())
                .is_some_and(|o| o.ip() == expected),
            observed,
        }
    });
    let passed = settled
        && observed == attempt.expect
        && checks.iter().all(|c| c.ok)
        && logged.as_ref().is_none_or(|l| l.ok);
    Ok(AttemptResult {
        label: attempt.label.to_string(),
        path: attempt.path,
        path_text: match &balancer_config {
            Some(_) => attempt
                .path
                .describe()
                .replace("offload LB", &balancer)
                .replace("re-encrypting LB", &format!("{balancer} (re-encrypting)")),
            None => attempt.path.describe().to_string(),
        },
        hops: attempt.path.hops(),
        agent_cert: identity.name.clone(),
        expected: attempt.expect,
        observed,
        explanation,
        checks,
        records,
        settled,
        passed,
        millis: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        balancer,
        balancer_config,
        note: attempt.note.map(str::to_string),
        skipped: None,
        logged,
        hello: None,
    })
}

/// A run that could not start here: never passed.
fn skipped(attempt: &Attempt, agent_cert: String, reason: String) -> AttemptResult {
    AttemptResult {
        label: attempt.label.to_string(),
        path: attempt.path,
        path_text: attempt.path.describe().to_string(),
        hops: attempt.path.hops(),
        agent_cert,
        expected: attempt.expect,
        observed: Verdict::Skipped,
        explanation: format!("skipped: {reason}"),
        checks: Vec::new(),
        records: Vec::new(),
        settled: false,
        passed: false,
        millis: 0,
        balancer: attempt.implementation.name().to_string(),
        balancer_config: None,
        note: attempt.note.map(str::to_string),
        skipped: Some(reason),
        logged: None,
        hello: None,
    }
}

/// post-quantum works when Chromium offered X25519MLKEM768, the hello
/// crossed in two or more segments, passthru routed it and the page came
/// back. The reads are reported, not judged: how many segments one read
/// collects depends on scheduling.
fn judge_crossing(c: &Crossing) -> (Verdict, String) {
    let facts = format!(
        "ClientHello {} B (key shares {}), MSS {}: {} data segments, {} reads at the relay",
        c.hello_bytes,
        c.key_shares.join(", "),
        c.mss,
        c.segments,
        c.reads
    );
    let broke = |why: String| {
        (
            Verdict::Fails {
                hop: Hop::Balancer,
                reason: Reason::Other,
            },
            format!("{why}; {facts}"),
        )
    };
    if let Some(error) = &c.error {
        return broke(format!("the probe failed: {error}"));
    }
    if !post_quantum::offers_post_quantum(c) {
        return broke("Chromium offered no X25519MLKEM768 key share".into());
    }
    if c.segments < 2 {
        return broke("the hello was not split (the path did not lower the MTU)".into());
    }
    if !(c.routed && c.handshake && c.page) {
        return broke(format!(
            "routed {}, handshake {}, page {}",
            c.routed, c.handshake, c.page
        ));
    }
    (
        Verdict::Works,
        format!(
            "{facts}; passthru reassembled it, routed on SNI {GATEWAY_NAME} and Chromium got the page"
        ),
    )
}

/// The gateway's identity check for `check`.
pub fn gateway_check(check: Check, pki: &LabPki) -> ClientCheck {
    let registry = |by| ClientCheck::Registry {
        by,
        known: vec![
            KnownClient {
                label: "agent-01 (current)".to_string(),
                cert: cert_seen(&pki.agent.cert_der),
            },
            KnownClient {
                label: "agent-01 (rotated)".to_string(),
                cert: cert_seen(&pki.agent_duplicate_cn.cert_der),
            },
        ],
    };
    match check {
        Check::ChainOnly => ClientCheck::ChainOnly,
        Check::PinAgent01 => ClientCheck::Pinned {
            sha1: pki.agent.sha1_hex(),
        },
        Check::RegistryByThumbprint => registry(IdentifyBy::Thumbprint),
        Check::RegistryByCn => registry(IdentifyBy::SubjectCn),
    }
}

/// The certificate seen at `sight`, from the records.
pub fn seen(records: &[HopRecord], sight: Sight) -> Option<CertSeen> {
    let (hop, layer) = match sight {
        Sight::AgentOuterServer => (Hop::Agent, Layer::Outer),
        Sight::AgentInnerServer => (Hop::Agent, Layer::Inner),
        Sight::GatewayClient => (Hop::Gateway, Layer::Outer),
        Sight::BackendClient => (Hop::Backend, Layer::Inner),
    };
    records
        .iter()
        .filter(|r| r.hop == hop)
        .find_map(|r| r.leg(layer).and_then(|l| l.peer_cert.clone()))
}
