//! Tests of the lab PKI: names, serials, SANs, EKUs, validity windows,
//! what rustls's verifiers say about each identity, and the files on disk.

use std::collections::HashSet;
use std::fs;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, Error, ExtendedKeyPurpose, RootCertStore};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use super::*;

/// A fixed "now" with a sub-second part, so truncation is exercised too.
fn lab() -> LabPki {
    let now =
        OffsetDateTime::from_unix_timestamp(1_780_000_000).unwrap() + Duration::milliseconds(250);
    LabPki::generate(now).unwrap()
}

fn parse(identity: &Identity) -> X509Certificate<'_> {
    let (rest, cert) = x509_parser::parse_x509_certificate(&identity.cert_der).unwrap();
    assert!(
        rest.is_empty(),
        "{}: trailing bytes after the certificate",
        identity.name
    );
    cert
}

fn common_name(cert: &X509Certificate<'_>) -> String {
    let cns: Vec<_> = cert
        .subject()
        .iter_common_name()
        .map(|cn| cn.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(cns.len(), 1, "exactly one CN in {}", cert.subject());
    cns[0].clone()
}

/// SANs rendered as "dns:NAME" / "ip:A.B.C.D".
fn sans(cert: &X509Certificate<'_>) -> Vec<String> {
    let Some(ext) = cert.subject_alternative_name().unwrap() else {
        return Vec::new();
    };
    ext.value
        .general_names
        .iter()
        .map(|name| match name {
            GeneralName::DNSName(dns) => format!("dns:{dns}"),
            GeneralName::IPAddress(ip) => {
                let octets: [u8; 4] = (*ip).try_into().unwrap();
                format!("ip:{}", std::net::Ipv4Addr::from(octets))
            }
            other => panic!("unexpected SAN {other:?}"),
        })
        .collect()
}

/// An identity, its SANs as rendered by [`sans`] and its EKU as by [`eku`].
type Expected<'a> = (&'a Identity, &'a [&'a str], Option<(bool, bool)>);

/// (serverAuth, clientAuth), or None without an EKU extension.
fn eku(cert: &X509Certificate<'_>) -> Option<(bool, bool)> {
    let ext = cert.extended_key_usage().unwrap()?;
    Some((ext.value.server_auth, ext.value.client_auth))
}

fn at(pki: &LabPki) -> UnixTime {
    UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        u64::try_from(pki.now.unix_timestamp()).unwrap(),
    ))
}

fn roots(anchors: &[&Identity]) -> Arc<RootCertStore> {
    let mut store = RootCertStore::empty();
    for anchor in anchors {
        store
            .add(CertificateDer::from(anchor.cert_der.clone()))
            .unwrap();
    }
    Arc::new(store)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Verifies `client` as a TLS server whose client-certificate roots are `anchor`.
fn verify_client(pki: &LabPki, anchor: &Identity, client: &Identity) -> Result<(), Error> {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(&[anchor]), provider())
        .build()
        .unwrap();
    let (chain, _key) = client.rustls_chain();
    verifier
        .verify_client_cert(&chain[0], &chain[1..], at(pki))
        .map(|_| ())
}

/// Verifies `server` for `name` as a TLS client whose roots are `anchor`.
fn verify_server(
    pki: &LabPki,
    anchor: &Identity,
    server: &Identity,
    name: &str,
) -> Result<(), Error> {
    let verifier = WebPkiServerVerifier::builder_with_provider(roots(&[anchor]), provider())
        .build()
        .unwrap();
    let (chain, _key) = server.rustls_chain();
    let name = ServerName::try_from(name.to_owned()).unwrap();
    verifier
        .verify_server_cert(&chain[0], &chain[1..], &name, &[], at(pki))
        .map(|_| ())
}

#[test]
fn every_identity_parses_with_its_name_serial_and_common_name() {
    let pki = lab();
    let expected = [
        ("root-ca", 0x1001_u16, "Lab Root CA"),
        ("agent-ca", 0x2002, "Lab Agent CA"),
        ("agent-01", 0x3001, "agent-01"),
        ("agent-02", 0x3002, "agent-02"),
        ("gateway", 0x4001, "gw.example.com"),
        ("backend", 0x5001, "backend.example.com"),
        ("balancer", 0x5002, "lb.example.com"),
        ("rogue-ca", 0x6001, "Rogue CA"),
        ("agent-expired", 0x3003, "agent-expired"),
        ("agent-not-yet-valid", 0x3004, "agent-not-yet-valid"),
        ("agent-untrusted", 0x6002, "agent-01"),
        ("agent-01-rotated", 0x3005, "agent-01"),
        ("agent-server-eku", 0x3006, "agent-server-eku"),
        ("server-wrong-name", 0x5003, "wrong.example.com"),
    ];
    let identities = pki.identities();
    assert_eq!(identities.len(), expected.len());
    for (identity, (name, serial, cn)) in identities.iter().zip(expected) {
        assert_eq!(identity.name, name);
        let cert = parse(identity);
        assert_eq!(cert.raw_serial(), serial.to_be_bytes(), "serial of {name}");
        assert_eq!(common_name(&cert), cn, "CN of {name}");
        assert!(!identity.purpose.is_empty(), "purpose of {name}");
    }
    let sha1s: HashSet<_> = identities.iter().map(|i| i.sha1_hex()).collect();
    assert_eq!(
        sha1s.len(),
        identities.len(),
        "every certificate is distinct"
    );
}

#[test]
fn subject_alt_names_and_ekus_are_as_specified() {
    let pki = lab();
    let both = Some((true, true));
    let client = Some((false, true));
    let server = Some((true, false));
    let cases: [Expected<'_>; 14] = [
        (&pki.root_ca, &[], None),
        (&pki.agent_ca, &[], None),
        (&pki.agent, &["dns:agent-01.agents.example.com"], client),
        (&pki.agent2, &["dns:agent-02.agents.example.com"], client),
        (
            &pki.gateway,
            &["dns:gw.example.com", "dns:localhost", "ip:127.0.0.1"],
            server,
        ),
        (
            &pki.backend,
            &["dns:backend.example.com", "dns:localhost", "ip:127.0.0.1"],
            server,
        ),
        (
            &pki.balancer,
            &["dns:lb.example.com", "dns:gw.example.com", "ip:127.0.0.1"],
            both,
        ),
        (&pki.rogue_ca, &[], None),
        (
            &pki.agent_expired,
            &["dns:agent-expired.agents.example.com"],
            client,
        ),
        (
            &pki.agent_not_yet_valid,
            &["dns:agent-not-yet-valid.agents.example.com"],
            client,
        ),
        (
            &pki.agent_untrusted,
            &["dns:agent-01.agents.example.com"],
            client,
        ),
        (
            &pki.agent_duplicate_cn,
            &["dns:agent-01.agents.example.com"],
            client,
        ),
        (
            &pki.agent_server_only,
            &["dns:agent-server-eku.agents.example.com"],
            server,
        ),
        (&pki.server_wrong_name, &["dns:wrong.example.com"], server),
    ];
    for (identity, want_sans, want_eku) in cases {
        let cert = parse(identity);
        assert_eq!(sans(&cert), want_sans, "SANs of {}", identity.name);
        assert_eq!(eku(&cert), want_eku, "EKU of {}", identity.name);
    }
}

#[test]
fn cas_have_basic_constraints_and_issue_the_right_leaves() {
    let pki = lab();
    let root = parse(&pki.root_ca);
    let bc = root.basic_constraints().unwrap().unwrap().value;
    assert!(bc.ca);
    assert_eq!(bc.path_len_constraint, None);
    assert_eq!(root.issuer(), root.subject());

    let agent_ca = parse(&pki.agent_ca);
    let bc = agent_ca.basic_constraints().unwrap().unwrap().value;
    assert!(bc.ca);
    assert_eq!(bc.path_len_constraint, Some(0));
    assert_eq!(agent_ca.issuer(), root.subject());
    assert!(pki.agent_ca.intermediates_der.is_empty());

    assert!(parse(&pki.rogue_ca).is_ca());
    for leaf in [&pki.agent, &pki.agent_expired, &pki.agent_server_only] {
        assert_eq!(parse(leaf).issuer(), agent_ca.subject(), "{}", leaf.name);
        assert_eq!(leaf.intermediates_der, vec![pki.agent_ca.cert_der.clone()]);
    }
    for leaf in [&pki.backend, &pki.balancer, &pki.server_wrong_name] {
        assert_eq!(parse(leaf).issuer(), root.subject(), "{}", leaf.name);
        assert!(leaf.intermediates_der.is_empty(), "{}", leaf.name);
    }
    assert_eq!(
        parse(&pki.agent_untrusted).issuer(),
        parse(&pki.rogue_ca).subject()
    );
}

#[test]
fn gateway_is_self_signed_and_not_a_ca() {
    let pki = lab();
    let gateway = parse(&pki.gateway);
    assert_eq!(gateway.issuer(), gateway.subject());
    assert!(!gateway.is_ca());
    if let Some(bc) = gateway.basic_constraints().unwrap() {
        assert!(!bc.value.ca);
    }
    assert!(pki.gateway.intermediates_der.is_empty());
    assert_eq!(pki.gateway.chain_pem, pki.gateway.cert_pem);
}

#[test]
fn validity_windows_are_relative_to_now() {
    let pki = lab();
    assert_eq!(pki.now.nanosecond(), 0, "now is truncated to whole seconds");
    assert_eq!(pki.now.unix_timestamp(), 1_780_000_000);
    let window = |identity: &Identity| {
        let cert = parse(identity);
        let validity = cert.validity();
        (
            validity.not_before.timestamp() - pki.now.unix_timestamp(),
            validity.not_after.timestamp() - pki.now.unix_timestamp(),
        )
    };
    const DAY: i64 = 86_400;
    assert_eq!(window(&pki.agent), (-DAY, 365 * DAY));
    assert_eq!(window(&pki.root_ca), (-DAY, 365 * DAY));
    assert_eq!(window(&pki.agent_expired), (-400 * DAY, -35 * DAY));
    assert_eq!(window(&pki.agent_not_yet_valid), (2 * 3600, 365 * DAY));
}

#[test]
fn client_verifier_accepts_good_agents_with_their_intermediate() {
    let pki = lab();
    for agent in [&pki.agent, &pki.agent2, &pki.agent_duplicate_cn] {
        assert_eq!(agent.rustls_chain().0.len(), 2, "{}", agent.name);
        verify_client(&pki, &pki.root_ca, agent).unwrap();
    }
    // The balancer has clientAuth too: it is what an offload-reencrypt balancer presents.
    verify_client(&pki, &pki.root_ca, &pki.balancer).unwrap();
}

#[test]
fn client_verifier_rejects_the_leaf_without_its_intermediate() {
    let pki = lab();
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(&[&pki.root_ca]), provider())
        .build()
        .unwrap();
    let leaf = CertificateDer::from(pki.agent.cert_der.clone());
    let err = verifier
        .verify_client_cert(&leaf, &[], at(&pki))
        .unwrap_err();
    assert_eq!(
        err,
        Error::InvalidCertificate(CertificateError::UnknownIssuer)
    );
}

#[test]
fn client_verifier_rejects_expired_agent() {
    let pki = lab();
    let err = verify_client(&pki, &pki.root_ca, &pki.agent_expired).unwrap_err();
    let Error::InvalidCertificate(CertificateError::ExpiredContext { time, not_after }) = err
    else {
        panic!("expected ExpiredContext, got {err:?}");
    };
    assert_eq!(
        time.as_secs() - not_after.as_secs(),
        35 * 86_400,
        "expired 35 days ago"
    );
}

#[test]
fn client_verifier_rejects_not_yet_valid_agent() {
    let pki = lab();
    let err = verify_client(&pki, &pki.root_ca, &pki.agent_not_yet_valid).unwrap_err();
    let Error::InvalidCertificate(CertificateError::NotValidYetContext { time, not_before }) = err
    else {
        panic!("expected NotValidYetContext, got {err:?}");
    };
    assert_eq!(
        not_before.as_secs() - time.as_secs(),
        2 * 3600,
        "2 hours early"
    );
}

#[test]
fn client_verifier_rejects_agent_from_rogue_ca() {
    let pki = lab();
    let err = verify_client(&pki, &pki.root_ca, &pki.agent_untrusted).unwrap_err();
    assert_eq!(
        err,
        Error::InvalidCertificate(CertificateError::UnknownIssuer)
    );
    // Trusting the rogue root instead makes it acceptable: only the issuer is wrong.
    verify_client(&pki, &pki.rogue_ca, &pki.agent_untrusted).unwrap();
}

#[test]
fn client_verifier_rejects_agent_with_server_only_eku() {
    let pki = lab();
    let err = verify_client(&pki, &pki.root_ca, &pki.agent_server_only).unwrap_err();
    let Error::InvalidCertificate(CertificateError::InvalidPurposeContext {
        required,
        presented,
    }) = err
    else {
        panic!("expected InvalidPurposeContext, got {err:?}");
    };
    assert_eq!(required, ExtendedKeyPurpose::ClientAuth);
    assert_eq!(presented, vec![ExtendedKeyPurpose::ServerAuth]);
}

#[test]
fn server_verifier_accepts_backend_and_rejects_wrong_name() {
    let pki = lab();
    verify_server(&pki, &pki.root_ca, &pki.backend, "backend.example.com").unwrap();
    verify_server(&pki, &pki.root_ca, &pki.backend, "localhost").unwrap();
    verify_server(&pki, &pki.root_ca, &pki.backend, "127.0.0.1").unwrap();
    let err = verify_server(
        &pki,
        &pki.root_ca,
        &pki.server_wrong_name,
        "backend.example.com",
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. })
        ),
        "got {err:?}"
    );
}

#[test]
fn gateway_pinned_as_its_own_anchor_is_accepted() {
    let pki = lab();
    verify_server(&pki, &pki.gateway, &pki.gateway, "gw.example.com").unwrap();
    verify_server(&pki, &pki.gateway, &pki.gateway, "127.0.0.1").unwrap();
    // The lab root does not vouch for it: only the pin does.
    let err = verify_server(&pki, &pki.root_ca, &pki.gateway, "gw.example.com").unwrap_err();
    assert_eq!(
        err,
        Error::InvalidCertificate(CertificateError::UnknownIssuer)
    );
}

#[test]
fn balancer_names_the_gateway_but_fails_the_gateway_pin() {
    let pki = lab();
    // Trusted by the lab root for the gateway's name (an offloading balancer)...
    verify_server(&pki, &pki.root_ca, &pki.balancer, "gw.example.com").unwrap();
    // ...but an agent that pins the gateway refuses it.
    let err = verify_server(&pki, &pki.gateway, &pki.balancer, "gw.example.com").unwrap_err();
    assert_eq!(
        err,
        Error::InvalidCertificate(CertificateError::UnknownIssuer)
    );
}

#[test]
fn rustls_chain_key_matches_its_certificate() {
    let pki = lab();
    for identity in pki.identities() {
        let (chain, key) = identity.rustls_chain();
        assert_eq!(chain.len(), 1 + identity.intermediates_der.len());
        rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap_or_else(|e| panic!("{}: {e}", identity.name));
    }
    let (_, other_key) = pki.agent2.rustls_chain();
    let err = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(pki.agent.rustls_chain().0, other_key)
        .unwrap_err();
    assert_eq!(
        err,
        Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)
    );
}

#[test]
fn duplicate_cn_shares_the_subject_but_not_the_thumbprint() {
    let pki = lab();
    let agent = parse(&pki.agent);
    let rotated = parse(&pki.agent_duplicate_cn);
    assert_eq!(agent.subject().as_raw(), rotated.subject().as_raw());
    assert_ne!(pki.agent.sha1_hex(), pki.agent_duplicate_cn.sha1_hex());
    assert_ne!(agent.raw_serial(), rotated.raw_serial());
    assert_ne!(pki.agent.key_der, pki.agent_duplicate_cn.key_der);
}

#[test]
fn debug_shows_name_and_sha1_but_never_the_key() {
    let pki = lab();
    let shown = format!("{:?}", pki.agent);
    assert!(shown.contains("agent-01"), "{shown}");
    assert!(shown.contains(&pki.agent.sha1_hex()), "{shown}");
    assert!(!shown.contains("PRIVATE"), "{shown}");
    let whole = format!("{pki:?}");
    assert!(!whole.contains("PRIVATE KEY"));
    assert!(!whole.contains(&format!("{:?}", &pki.agent.key_der[..8])));
}

#[test]
fn write_to_writes_every_file_and_a_readme() {
    let pki = lab();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lab");
    let written = pki.write_to(&dir, false).unwrap();

    // 14 certificates, 14 keys, a chain for each agent issued by agent-ca, README.
    let chains = pki
        .identities()
        .iter()
        .filter(|i| !i.intermediates_der.is_empty())
        .count();
    assert_eq!(chains, 6);
    assert_eq!(written.len(), 14 * 2 + chains + 1);
    assert_eq!(written.last().unwrap(), &dir.join("README.txt"));
    let on_disk = fs::read_dir(&dir).unwrap().count();
    assert_eq!(on_disk, written.len());

    let readme = fs::read_to_string(dir.join("README.txt")).unwrap();
    for path in &written {
        assert!(path.exists(), "{}", path.display());
        let file_name = path.file_name().unwrap().to_str().unwrap();
        if file_name != "README.txt" {
            assert!(readme.contains(file_name), "README.txt lacks {file_name}");
        }
    }
    for identity in pki.identities() {
        assert!(
            readme.contains(&identity.sha1_hex()),
            "README.txt lacks sha1 of {}",
            identity.name
        );
        assert!(readme.contains(&identity.purpose));
        let pem = fs::read_to_string(dir.join(format!("{}.pem", identity.name))).unwrap();
        assert_eq!(pem, identity.cert_pem);
    }
    assert!(!dir.join("backend.chain.pem").exists());
    assert!(!dir.join("gateway.chain.pem").exists());
    assert!(
        readme.contains("2026-05-28T20:26:40Z"),
        "README names now:\n{readme}"
    );
}

#[cfg(unix)]
#[test]
fn write_to_makes_keys_owner_only_even_when_overwriting() {
    use std::os::unix::fs::PermissionsExt as _;

    let pki = lab();
    let tmp = tempfile::tempdir().unwrap();
    let stale = tmp.path().join("agent-01.key");
    fs::write(&stale, "old").unwrap();
    fs::set_permissions(&stale, fs::Permissions::from_mode(0o644)).unwrap();

    let written = pki.write_to(tmp.path(), true).unwrap();
    // Other files follow the umask, so only the keys are checked.
    let mut keys = 0;
    for path in written
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "key"))
    {
        keys += 1;
        let mode = fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", path.display());
    }
    assert_eq!(keys, 14);
    assert_eq!(fs::read_to_string(&stale).unwrap(), pki.agent.key_pem);
}

#[test]
fn write_to_refuses_a_non_empty_dir_unless_forced() {
    let pki = lab();
    let tmp = tempfile::tempdir().unwrap();
    pki.write_to(tmp.path(), false).unwrap();

    let err = pki.write_to(tmp.path(), false).unwrap_err();
    let LabError::NotEmpty { dir } = &err else {
        panic!("expected NotEmpty, got {err:?}");
    };
    assert_eq!(dir, tmp.path());
    assert!(
        err.to_string().contains(&tmp.path().display().to_string()),
        "{err}"
    );

    let again = LabPki::generate(pki.now).unwrap();
    again.write_to(tmp.path(), true).unwrap();
    let pem = fs::read_to_string(tmp.path().join("agent-01.pem")).unwrap();
    assert_eq!(pem, again.agent.cert_pem, "force overwrote the files");
}

#[test]
fn write_to_reports_the_path_it_cannot_create() {
    let pki = lab();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    fs::write(&file, "x").unwrap();
    let err = pki.write_to(&file.join("lab"), false).unwrap_err();
    let LabError::Io { path, .. } = &err else {
        panic!("expected Io, got {err:?}");
    };
    assert_eq!(path, &file.join("lab"));
    assert!(err.to_string().starts_with("cannot write "), "{err}");
}

#[test]
fn written_chain_and_key_read_back_with_pem_object() {
    let pki = lab();
    let tmp = tempfile::tempdir().unwrap();
    pki.write_to(tmp.path(), false).unwrap();

    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(tmp.path().join("agent-01.chain.pem"))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
    let (expected_chain, expected_key) = pki.agent.rustls_chain();
    assert_eq!(chain, expected_chain);
    assert_eq!(chain[1].as_ref(), pki.agent_ca.cert_der.as_slice());

    let key = PrivateKeyDer::from_pem_file(tmp.path().join("agent-01.key")).unwrap();
    assert!(matches!(key, PrivateKeyDer::Pkcs8(_)));
    assert_eq!(key.secret_der(), expected_key.secret_der());

    let gateway: Vec<_> = CertificateDer::pem_file_iter(tmp.path().join("gateway.pem"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(gateway.len(), 1);
    assert_eq!(gateway[0].as_ref(), pki.gateway.cert_der.as_slice());
}

#[test]
fn inspecting_proxy_leaf_chains_to_its_own_ca_only() {
    let pki = lab();
    let (ca, leaf) = pki.inspecting_proxy().unwrap();
    verify_server(&pki, &ca, &leaf, "gw.example.com").unwrap();
    let err = verify_server(&pki, &pki.root_ca, &leaf, "gw.example.com").unwrap_err();
    assert_eq!(
        err,
        Error::InvalidCertificate(CertificateError::UnknownIssuer)
    );
    // A new CA each time, as a proxy mints at start.
    let (again, _) = pki.inspecting_proxy().unwrap();
    assert_ne!(ca.sha1_hex(), again.sha1_hex());
}
