//! The scenario table: for each scenario, the runs it makes (path, agent
//! certificate, how the agent trusts the gateway, what the gateway checks)
//! and, for each run, the expected verdict and which certificate each hop
//! must have seen. Data only; `run.rs` executes it.

use passthru_certs::{Identity, LabPki};
use serde::Serialize;

use crate::observe::Hop;
use crate::real::Implementation;
use crate::topology::Path;
use crate::verdict::{Reason, Verdict};

/// One scenario: a question an operator asks, answered by one or more runs.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Its name (`--scenario`).
    pub name: &'static str,
    /// What it shows, one line.
    pub title: &'static str,
    /// The runs.
    pub attempts: Vec<Attempt>,
}

/// One agent connection through one topology, with its expectation.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// What distinguishes this run, e.g. "agent pins the gateway".
    pub label: &'static str,
    /// The path.
    pub path: Path,
    /// The certificate the agent presents.
    pub agent: AgentCert,
    /// How the agent trusts the outer certificate.
    pub trust: AgentTrust,
    /// What the gateway checks after the chain.
    pub check: Check,
    /// Request/answer exchanges.
    pub exchanges: usize,
    /// Idle time between exchanges, milliseconds.
    pub idle_ms: u64,
    /// The expected verdict.
    pub expect: Verdict,
    /// Which certificate each vantage point must have seen (`None`: none).
    pub seen: Vec<(Sight, Option<Party>)>,
    /// The software playing the offloading balancer.
    pub implementation: Implementation,
    /// Where this balancer behaves differently from the built-in relay, one
    /// sentence.
    pub note: Option<&'static str>,
    /// The layer-4 balancer in front of passthru drops flows idle longer
    /// than this (milliseconds).
    pub idle_timeout_ms: Option<u64>,
    /// passthru's listener `tcp_keepalive` (milliseconds).
    pub tcp_keepalive_ms: Option<u64>,
    /// PROXY v2 from the layer-4 balancer, and `send_proxy_protocol = "v2"`.
    pub proxy_v2: bool,
    /// The agent connects from this loopback address.
    pub source: Option<[u8; 4]>,
    /// Whose address the gateway must log.
    pub logged: Option<Logged>,
}

/// Whose address the gateway logs for the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Logged {
    /// The agent's own address.
    Agent,
    /// The balancer's (127.0.0.1, the address it dials from).
    Balancer,
}

/// Which lab certificate the agent presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgentCert {
    /// agent-01.
    Agent01,
    /// agent-02 (valid, but not the pinned host).
    Agent02,
    /// agent-01-rotated (same CN as agent-01, other key).
    Rotated,
    /// agent-expired.
    Expired,
    /// agent-not-yet-valid.
    NotYetValid,
    /// agent-untrusted (issued by rogue-ca).
    Untrusted,
}

impl AgentCert {
    /// The lab identity.
    pub fn identity(self, pki: &LabPki) -> &Identity {
        match self {
            AgentCert::Agent01 => &pki.agent,
            AgentCert::Agent02 => &pki.agent2,
            AgentCert::Rotated => &pki.agent_duplicate_cn,
            AgentCert::Expired => &pki.agent_expired,
            AgentCert::NotYetValid => &pki.agent_not_yet_valid,
            AgentCert::Untrusted => &pki.agent_untrusted,
        }
    }
}

/// How the agent trusts the certificate of the outer session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgentTrust {
    /// Pins the gateway's self-signed certificate by SHA-1 (as deployed).
    PinGateway,
    /// Pin switched off: any certificate for gw.example.com from the lab root.
    LabRoot,
    /// Trusts the inspecting proxy's CA (as managed corporate machines do).
    ProxyCa,
}

/// What the gateway checks once the chain is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    /// Nothing more.
    ChainOnly,
    /// Only agent-01, pinned by thumbprint (one trusted management host).
    PinAgent01,
    /// agent-01 and agent-01-rotated registered, matched by thumbprint.
    RegistryByThumbprint,
    /// The same registry, matched by subject CN.
    RegistryByCn,
}

/// A vantage point: who saw which certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sight {
    /// The server certificate of the agent's outer session.
    AgentOuterServer,
    /// The client certificate the gateway received.
    GatewayClient,
    /// The server certificate of the agent's inner session.
    AgentInnerServer,
    /// The client certificate the backend received.
    BackendClient,
}

impl Sight {
    /// Words for reports.
    pub fn describe(self) -> &'static str {
        match self {
            Sight::AgentOuterServer => "agent saw (outer server cert)",
            Sight::GatewayClient => "gateway saw (client cert)",
            Sight::AgentInnerServer => "agent saw (inner server cert)",
            Sight::BackendClient => "backend saw (client cert)",
        }
    }
}

/// Whose certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Party {
    /// The certificate this run's agent presents.
    Agent,
    /// The gateway's self-signed certificate.
    Gateway,
    /// The backend's certificate.
    Backend,
    /// The balancer's certificate.
    Balancer,
    /// The certificate the inspecting proxy minted for gw.example.com.
    ProxyMinted,
}

/// Every scenario, in the order they run.
pub fn all() -> Vec<Scenario> {
    use AgentCert::*;
    use Party as P;
    use Sight::*;
    let works_seen = vec![
        (AgentOuterServer, Some(P::Gateway)),
        (GatewayClient, Some(P::Agent)),
        (AgentInnerServer, Some(P::Backend)),
        (BackendClient, Some(P::Agent)),
    ];
    let gateway_refuses = |agent, check, reason, backend: Option<Party>| Attempt {
        expect: fails(Hop::Gateway, reason),
        seen: vec![
            (AgentOuterServer, Some(P::Gateway)),
            (GatewayClient, Some(P::Agent)),
            (BackendClient, backend),
        ],
        ..attempt("", Path::Passthrough, agent, check)
    };
    let offload_pinned = Attempt {
        label: "",
        expect: fails(Hop::Agent, Reason::PinMismatch),
        seen: vec![(AgentOuterServer, Some(P::Balancer)), (GatewayClient, None)],
        ..attempt("", Path::Offload, Agent01, Check::ChainOnly)
    };
    let offload_pin_off = Attempt {
        trust: AgentTrust::LabRoot,
        expect: fails(Hop::Gateway, Reason::NoClientCertificate),
        seen: vec![
            (AgentOuterServer, Some(P::Balancer)),
            (GatewayClient, None),
            (AgentInnerServer, Some(P::Gateway)),
            (BackendClient, None),
        ],
        ..offload_pinned
    };
    let reencrypt_pinned = Attempt {
        path: Path::OffloadReencrypt,
        ..offload_pinned.clone()
    };
    let reencrypt_pin_off = Attempt {
        label: "",
        trust: AgentTrust::LabRoot,
        expect: fails(Hop::Gateway, Reason::WrongClientIdentity),
        seen: vec![
            (AgentOuterServer, Some(P::Balancer)),
            (GatewayClient, Some(P::Balancer)),
            (AgentInnerServer, Some(P::Backend)),
            (BackendClient, Some(P::Agent)),
        ],
        ..attempt("", Path::OffloadReencrypt, Agent01, Check::ChainOnly)
    };
    let idle = Attempt {
        label: "",
        exchanges: 2,
        idle_ms: 3_000,
        idle_timeout_ms: Some(2_000),
        ..attempt("", Path::IdleReset, Agent01, Check::ChainOnly)
    };
    let snat = |agent, source, proxy_v2| Attempt {
        source: Some(source),
        proxy_v2,
        logged: Some(if proxy_v2 {
            Logged::Agent
        } else {
            Logged::Balancer
        }),
        seen: works_seen.clone(),
        ..attempt("", Path::Snat, agent, Check::ChainOnly)
    };
    vec![
        Scenario {
            name: "passthrough",
            title: "passthru forwards the handshake untouched: both ends see the real certificates",
            attempts: vec![Attempt {
                label: "agent-01 via passthru",
                exchanges: 2,
                seen: works_seen.clone(),
                ..attempt("", Path::Passthrough, Agent01, Check::ChainOnly)
            }],
        },
        Scenario {
            name: "offload",
            title: "an SSL-offloading balancer: the pin breaks, and the gateway gets no client certificate",
            attempts: vec![
                Attempt {
                    label: "agent pins gateway (as deployed)",
                    ..offload_pinned.clone()
                },
                Attempt {
                    label: "pin off (agent trusts lab root)",
                    ..offload_pin_off.clone()
                },
                Attempt {
                    label: "HAProxy bind ssl crt, agent pins gateway",
                    implementation: HAPROXY,
                    ..offload_pinned
                },
                Attempt {
                    label: "HAProxy bind ssl crt, pin off",
                    implementation: HAPROXY,
                    ..offload_pin_off.clone()
                },
                Attempt {
                    label: "HAProxy + verify optional, pin off",
                    implementation: HAPROXY_VERIFY,
                    note: Some(
                        "HAProxy asks for the agent's certificate and verifies it against the lab root, yet the gateway still gets none: a terminating balancer cannot forward a client certificate it holds no key for",
                    ),
                    ..offload_pin_off.clone()
                },
                Attempt {
                    label: "nginx stream ssl, pin off",
                    implementation: Implementation::Nginx,
                    ..offload_pin_off
                },
            ],
        },
        Scenario {
            name: "offload-reencrypt",
            title: "offload and re-encrypt: the gateway authenticates the balancer, not the agent",
            attempts: vec![
                Attempt {
                    label: "agent pins gateway (as deployed)",
                    ..reencrypt_pinned.clone()
                },
                Attempt {
                    label: "pin off (agent trusts lab root)",
                    ..reencrypt_pin_off.clone()
                },
                Attempt {
                    label: "HAProxy server ssl, pin off",
                    implementation: HAPROXY,
                    ..reencrypt_pin_off.clone()
                },
                Attempt {
                    label: "HAProxy server ssl + verify optional, pin off",
                    implementation: HAPROXY_VERIFY,
                    note: Some(
                        "HAProxy verifies the agent's certificate on its side, but the gateway authenticates HAProxy's own client certificate (`server … ssl crt`), never the agent's",
                    ),
                    ..reencrypt_pin_off.clone()
                },
                Attempt {
                    label: "nginx proxy_ssl on, agent pins gateway",
                    implementation: Implementation::Nginx,
                    ..reencrypt_pinned
                },
                Attempt {
                    label: "nginx proxy_ssl on, pin off",
                    implementation: Implementation::Nginx,
                    ..reencrypt_pin_off
                },
            ],
        },
        Scenario {
            name: "connect-hop",
            title: "passthru reaching the gateway through an HTTP CONNECT proxy; a persistent connection survives idle periods",
            attempts: vec![Attempt {
                label: "3 exchanges, 400 ms idle",
                exchanges: 3,
                idle_ms: 400,
                seen: works_seen.clone(),
                ..attempt("", Path::ConnectHop, Agent01, Check::ChainOnly)
            }],
        },
        Scenario {
            name: "inspecting-proxy",
            title: "a CONNECT proxy doing SSL inspection breaks it like offload",
            attempts: vec![
                Attempt {
                    label: "agent pins gateway (as deployed)",
                    expect: fails(Hop::Agent, Reason::PinMismatch),
                    seen: vec![
                        (AgentOuterServer, Some(P::ProxyMinted)),
                        (GatewayClient, None),
                    ],
                    ..attempt("", Path::InspectingProxy, Agent01, Check::ChainOnly)
                },
                Attempt {
                    label: "agent trusts the proxy CA",
                    trust: AgentTrust::ProxyCa,
                    expect: fails(Hop::Gateway, Reason::NoClientCertificate),
                    seen: vec![
                        (AgentOuterServer, Some(P::ProxyMinted)),
                        (GatewayClient, None),
                    ],
                    ..attempt("", Path::InspectingProxy, Agent01, Check::ChainOnly)
                },
            ],
        },
        Scenario {
            name: "idle-reset",
            title: "a layer-4 balancer silently drops flows idle longer than 2 s (F5 FastL4: 300 s): a persistent agent connection lives only with passthru's tcp_keepalive below it",
            attempts: vec![
                Attempt {
                    label: "tcp_keepalive 10 s (above the 2 s idle timeout), 3 s idle",
                    tcp_keepalive_ms: Some(10_000),
                    expect: fails(Hop::Front, Reason::IdleReset),
                    seen: vec![
                        (AgentOuterServer, Some(P::Gateway)),
                        (GatewayClient, Some(P::Agent)),
                    ],
                    ..idle.clone()
                },
                Attempt {
                    label: "tcp_keepalive 1 s (below the 2 s idle timeout), 3 s idle",
                    tcp_keepalive_ms: Some(1_000),
                    seen: works_seen.clone(),
                    ..idle
                },
            ],
        },
        Scenario {
            name: "snat",
            title: "behind a source-NATting balancer the gateway logs the balancer for every agent, unless PROXY v2 comes in and passthru sends it on",
            attempts: vec![
                Attempt {
                    label: "agent-01 from 127.0.0.11, no PROXY header",
                    ..snat(Agent01, [127, 0, 0, 11], false)
                },
                Attempt {
                    label: "agent-02 from 127.0.0.12, no PROXY header",
                    ..snat(Agent02, [127, 0, 0, 12], false)
                },
                Attempt {
                    label: "agent-01 from 127.0.0.11, PROXY v2 in, send_proxy_protocol out",
                    ..snat(Agent01, [127, 0, 0, 11], true)
                },
                Attempt {
                    label: "agent-02 from 127.0.0.12, PROXY v2 in, send_proxy_protocol out",
                    ..snat(Agent02, [127, 0, 0, 12], true)
                },
            ],
        },
        Scenario {
            name: "post-quantum",
            title: "headless Chromium's X25519MLKEM768 ClientHello (~1.9 KB) crosses an MTU-1280 path in several segments, and passthru still routes it",
            attempts: vec![Attempt {
                label: "Chromium, netns loopback MTU 1280 + tc tbf",
                ..attempt("", Path::PostQuantum, Agent01, Check::ChainOnly)
            }],
        },
        Scenario {
            name: "untrusted-root",
            title: "an agent certificate from a CA the gateway does not trust",
            attempts: vec![Attempt {
                label: "agent-untrusted (rogue CA)",
                ..gateway_refuses(Untrusted, Check::ChainOnly, Reason::UntrustedIssuer, None)
            }],
        },
        Scenario {
            name: "pinned-thumbprint-mismatch",
            title: "a gateway that trusts exactly one host by SHA-1 thumbprint: \"Authentication Required\"",
            attempts: vec![
                Attempt {
                    label: "agent-02 (valid, not pinned)",
                    ..gateway_refuses(
                        Agent02,
                        Check::PinAgent01,
                        Reason::AuthenticationRequired,
                        None,
                    )
                },
                Attempt {
                    label: "agent-01 (the pinned one)",
                    seen: works_seen.clone(),
                    ..attempt("", Path::Passthrough, Agent01, Check::PinAgent01)
                },
            ],
        },
        Scenario {
            name: "clock-skew",
            title: "certificates outside their validity window (clock skew)",
            attempts: vec![
                Attempt {
                    label: "not yet valid (from now + 2 h)",
                    ..gateway_refuses(
                        NotYetValid,
                        Check::ChainOnly,
                        Reason::CertificateNotYetValid,
                        None,
                    )
                },
                Attempt {
                    label: "expired (35 days ago)",
                    ..gateway_refuses(Expired, Check::ChainOnly, Reason::CertificateExpired, None)
                },
            ],
        },
        Scenario {
            name: "duplicate-cn",
            title: "two certificates share CN=agent-01 (rotation): identity by thumbprint works, by CN is ambiguous",
            attempts: vec![
                Attempt {
                    label: "agent-01, by thumbprint",
                    seen: works_seen.clone(),
                    ..attempt("", Path::Passthrough, Agent01, Check::RegistryByThumbprint)
                },
                Attempt {
                    label: "agent-01-rotated, by thumbprint",
                    seen: works_seen,
                    ..attempt("", Path::Passthrough, Rotated, Check::RegistryByThumbprint)
                },
                Attempt {
                    label: "agent-01, by subject CN",
                    ..gateway_refuses(
                        Agent01,
                        Check::RegistryByCn,
                        Reason::AmbiguousIdentity,
                        None,
                    )
                },
            ],
        },
    ]
}

/// The scenario called `name`.
pub fn find(name: &str) -> Option<Scenario> {
    all().into_iter().find(|s| s.name == name)
}

/// A run that is expected to work, with one exchange; fields are then
/// overridden with struct-update syntax.
fn attempt(label: &'static str, path: Path, agent: AgentCert, check: Check) -> Attempt {
    Attempt {
        label,
        path,
        agent,
        trust: AgentTrust::PinGateway,
        check,
        exchanges: 1,
        idle_ms: 0,
        expect: Verdict::Works,
        seen: Vec::new(),
        implementation: Implementation::Builtin,
        note: None,
        idle_timeout_ms: None,
        tcp_keepalive_ms: None,
        proxy_v2: false,
        source: None,
        logged: None,
    }
}

const HAPROXY: Implementation = Implementation::Haproxy {
    verify_client: false,
};
const HAPROXY_VERIFY: Implementation = Implementation::Haproxy {
    verify_client: true,
};

fn fails(hop: Hop, reason: Reason) -> Verdict {
    Verdict::Fails { hop, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_covers_the_issue_list_with_unique_names() {
        let names: Vec<&str> = all().iter().map(|s| s.name).collect();
        assert_eq!(
            names,
            [
                "passthrough",
                "offload",
                "offload-reencrypt",
                "connect-hop",
                "inspecting-proxy",
                "idle-reset",
                "snat",
                "post-quantum",
                "untrusted-root",
                "pinned-thumbprint-mismatch",
                "clock-skew",
                "duplicate-cn"
            ]
        );
        for s in all() {
            assert!(!s.attempts.is_empty(), "{}", s.name);
            for a in &s.attempts {
                assert!(!a.label.is_empty(), "{}: unlabelled run", s.name);
                assert!(
                    !a.seen.is_empty() || a.path == Path::PostQuantum,
                    "{} / {}: no thumbprint expectation",
                    s.name,
                    a.label
                );
            }
        }
    }
}
