//! What each lab certificate contains: subject, SANs, key usages, serial and
//! validity window relative to "now". Pure data and `rcgen` parameters; no
//! key generation, no I/O.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyUsagePurpose, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

/// What one lab certificate contains, relative to "now".
pub(super) struct Template {
    pub(super) name: &'static str,
    pub(super) purpose: &'static str,
    serial: u64,
    common_name: &'static str,
    /// DNS names, or IP addresses when they parse as one.
    subject_alt_names: &'static [&'static str],
    role: Role,
    window: Window,
}

#[derive(Clone, Copy)]
enum Role {
    /// A CA; `Some(n)` limits the intermediates below it.
    Ca(Option<u8>),
    Client,
    Server,
    ServerAndClient,
}

#[derive(Clone, Copy)]
enum Window {
    /// now - 1 day .. now + 365 days.
    Normal,
    /// now - 400 days .. now - 35 days.
    Expired,
    /// now + 2 hours .. now + 365 days.
    NotYetValid,
}

impl Template {
    pub(super) fn params(&self, now: OffsetDateTime) -> Result<CertificateParams, rcgen::Error> {
        let mut params = CertificateParams::default();
        let (not_before, not_after) = match self.window {
            Window::Normal => (now - Duration::days(1), now + Duration::days(365)),
            Window::Expired => (now - Duration::days(400), now - Duration::days(35)),
            Window::NotYetValid => (now + Duration::hours(2), now + Duration::days(365)),
        };
        params.not_before = not_before;
        params.not_after = not_after;
        params.serial_number = Some(SerialNumber::from(self.serial));
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, ORGANIZATION);
        params
            .distinguished_name
            .push(DnType::CommonName, self.common_name);
        params.subject_alt_names = self
            .subject_alt_names
            .iter()
            .map(|name| match name.parse() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => Ok(SanType::DnsName((*name).try_into()?)),
            })
            .collect::<Result<_, rcgen::Error>>()?;
        params.use_authority_key_identifier_extension = true;
        let (is_ca, key_usages, extended) = match self.role {
            Role::Ca(path_len) => (
                IsCa::Ca(path_len.map_or(
                    BasicConstraints::Unconstrained,
                    BasicConstraints::Constrained,
                )),
                vec![
                    KeyUsagePurpose::KeyCertSign,
                    KeyUsagePurpose::CrlSign,
                    KeyUsagePurpose::DigitalSignature,
                ],
                vec![],
            ),
            Role::Client => leaf_usages(vec![ExtendedKeyUsagePurpose::ClientAuth]),
            Role::Server => leaf_usages(vec![ExtendedKeyUsagePurpose::ServerAuth]),
            Role::ServerAndClient => leaf_usages(vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ]),
        };
        params.is_ca = is_ca;
        params.key_usages = key_usages;
        params.extended_key_usages = extended;
        Ok(params)
    }
}

fn leaf_usages(
    extended: Vec<ExtendedKeyUsagePurpose>,
) -> (IsCa, Vec<KeyUsagePurpose>, Vec<ExtendedKeyUsagePurpose>) {
    (
        IsCa::ExplicitNoCa,
        vec![KeyUsagePurpose::DigitalSignature],
        extended,
    )
}

const ORGANIZATION: &str = "passthru lab";

pub(super) const ROOT_CA: Template = Template {
    name: "root-ca",
    purpose: "Lab Root CA: anchor for agent certificates (gateway, backend) and for backend and balancer",
    serial: 0x1001,
    common_name: "Lab Root CA",
    subject_alt_names: &[],
    role: Role::Ca(None),
    window: Window::Normal,
};
pub(super) const AGENT_CA: Template = Template {
    name: "agent-ca",
    purpose: "agent-issuing CA (pathlen 0), signed by root-ca; agents send it after their leaf",
    serial: 0x2002,
    common_name: "Lab Agent CA",
    subject_alt_names: &[],
    role: Role::Ca(Some(0)),
    window: Window::Normal,
};
pub(super) const AGENT: Template = Template {
    name: "agent-01",
    purpose: "agent machine certificate (clientAuth), CN=agent-01: the good client",
    serial: 0x3001,
    common_name: "agent-01",
    subject_alt_names: &["agent-01.agents.example.com"],
    role: Role::Client,
    window: Window::Normal,
};
pub(super) const AGENT_2: Template = Template {
    name: "agent-02",
    purpose: "second good agent certificate (clientAuth), CN=agent-02",
    serial: 0x3002,
    common_name: "agent-02",
    subject_alt_names: &["agent-02.agents.example.com"],
    role: Role::Client,
    window: Window::Normal,
};
pub(super) const GATEWAY: Template = Template {
    name: "gateway",
    purpose: "gateway server certificate, self-signed (not a CA): agents pin it by SHA-1 thumbprint",
    serial: 0x4001,
    common_name: "gw.example.com",
    subject_alt_names: &["gw.example.com", "localhost", "127.0.0.1"],
    role: Role::Server,
    window: Window::Normal,
};
pub(super) const BACKEND: Template = Template {
    name: "backend",
    purpose: "backend server certificate (serverAuth) for the inner mutual-TLS handshake",
    serial: 0x5001,
    common_name: "backend.example.com",
    subject_alt_names: &["backend.example.com", "localhost", "127.0.0.1"],
    role: Role::Server,
    window: Window::Normal,
};
pub(super) const BALANCER: Template = Template {
    name: "balancer",
    purpose: "balancer certificate (serverAuth+clientAuth), also names gw.example.com: what an offloading balancer presents",
    serial: 0x5002,
    common_name: "lb.example.com",
    subject_alt_names: &["lb.example.com", "gw.example.com", "127.0.0.1"],
    role: Role::ServerAndClient,
    window: Window::Normal,
};
pub(super) const ROGUE_CA: Template = Template {
    name: "rogue-ca",
    purpose: "rogue root CA that nobody trusts: issuer of agent-untrusted",
    serial: 0x6001,
    common_name: "Rogue CA",
    subject_alt_names: &[],
    role: Role::Ca(None),
    window: Window::Normal,
};
pub(super) const AGENT_EXPIRED: Template = Template {
    name: "agent-expired",
    purpose: "agent certificate that expired 35 days before generation (clock-skew lab)",
    serial: 0x3003,
    common_name: "agent-expired",
    subject_alt_names: &["agent-expired.agents.example.com"],
    role: Role::Client,
    window: Window::Expired,
};
pub(super) const AGENT_NOT_YET_VALID: Template = Template {
    name: "agent-not-yet-valid",
    purpose: "agent certificate valid only from 2 hours after generation (clock-skew lab)",
    serial: 0x3004,
    common_name: "agent-not-yet-valid",
    subject_alt_names: &["agent-not-yet-valid.agents.example.com"],
    role: Role::Client,
    window: Window::NotYetValid,
};
pub(super) const AGENT_UNTRUSTED: Template = Template {
    name: "agent-untrusted",
    purpose: "CN=agent-01 issued by rogue-ca: unknown issuer (untrusted-root lab)",
    serial: 0x6002,
    common_name: "agent-01",
    subject_alt_names: &["agent-01.agents.example.com"],
    role: Role::Client,
    window: Window::Normal,
};
pub(super) const AGENT_ROTATED: Template = Template {
    name: "agent-01-rotated",
    purpose: "same subject as agent-01, new key and serial: rotation in parallel (duplicate-cn lab)",
    serial: 0x3005,
    common_name: "agent-01",
    subject_alt_names: &["agent-01.agents.example.com"],
    role: Role::Client,
    window: Window::Normal,
};
pub(super) const AGENT_SERVER_EKU: Template = Template {
    name: "agent-server-eku",
    purpose: "agent certificate with EKU serverAuth only: wrong purpose for a client",
    serial: 0x3006,
    common_name: "agent-server-eku",
    subject_alt_names: &["agent-server-eku.agents.example.com"],
    role: Role::Server,
    window: Window::Normal,
};
pub(super) const SERVER_WRONG_NAME: Template = Template {
    name: "server-wrong-name",
    purpose: "server certificate for wrong.example.com only (serverAuth): name mismatch",
    serial: 0x5003,
    common_name: "wrong.example.com",
    subject_alt_names: &["wrong.example.com"],
    role: Role::Server,
    window: Window::Normal,
};
pub(super) const INSPECTING_CA: Template = Template {
    name: "inspecting-proxy-ca",
    purpose: "an SSL-inspecting proxy's own CA, minted at proxy start (what managed machines are told to trust)",
    serial: 0x7001,
    common_name: "Inspecting Proxy CA",
    subject_alt_names: &[],
    role: Role::Ca(None),
    window: Window::Normal,
};
pub(super) const INSPECTING_LEAF: Template = Template {
    name: "inspecting-proxy-leaf",
    purpose: "the certificate an SSL-inspecting proxy presents for gw.example.com, issued by its own CA",
    serial: 0x7002,
    common_name: "gw.example.com",
    subject_alt_names: &["gw.example.com"],
    role: Role::Server,
    window: Window::Normal,
};
