//! `passthru-certs probe` against `openssl s_server` (requiring a client
//! certificate or not), directly and through tinyproxy, a closed port and
//! a port that never answers.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{
    Output, closed_port, live_lab, run, run_with, s_server, silent_port, tinyproxy,
};

const ROOT: &str = "O=passthru lab, CN=Lab Root CA";

/// s_server with the gateway certificate, requiring a client certificate
/// from the lab root and failing the handshake when it does not verify.
fn gateway_requiring_client_cert(extra: &[&str]) -> crate::support::Running {
    let mut args = vec![
        "-cert",
        "gateway.pem",
        "-key",
        "gateway.key",
        "-CAfile",
        "root-ca.pem",
        "-Verify",
        "1",
        "-verify_return_error",
    ];
    args.extend(extra);
    s_server(&live_lab().dir, &args)
}

fn probe(port: u16, extra: &[&str]) -> Output {
    let lab = live_lab();
    let target = format!("127.0.0.1:{port}");
    let mut args = vec![
        "probe",
        target.as_str(),
        "--sni",
        "gw.example.com",
        "--json",
    ];
    let files: Vec<String> = extra
        .iter()
        .map(|a| match a.strip_prefix('@') {
            Some(name) => lab.file(name),
            None => (*a).to_owned(),
        })
        .collect();
    args.extend(files.iter().map(String::as_str));
    run(&args)
}

fn step<'a>(json: &'a Value, name: &str) -> &'a Value {
    json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == name)
        .unwrap_or_else(|| panic!("no {name} step in {json:#}"))
}

const AGENT: [&str; 4] = ["--cert", "@agent-01.chain.pem", "--key", "@agent-01.key"];

#[test]
fn accepted_client_certificate_with_tls13() {
    let server = gateway_requiring_client_cert(&[]);
    let out = probe(
        server.port,
        &[&AGENT[..], &["--ca", "@gateway.pem"]].concat(),
    );
    assert_eq!(out.code(), 0, "{}", out.stdout);
    let json = out.json();
    assert_eq!(json["ok"], true);
    assert_eq!(json["session"]["version"], "TLS 1.3");
    assert_eq!(json["client_auth"]["requested"], true);
    assert_eq!(json["client_auth"]["accepted"], true);
    assert_eq!(
        json["client_auth"]["acceptable_ca_names"],
        serde_json::json!([ROOT])
    );
    assert_eq!(json["client_auth"]["sent"], "O=passthru lab, CN=agent-01");
    let gateway_sha1 = run(&["inspect", "--json", &live_lab().file("gateway.pem")]).json()
        ["certificates"][0]["thumbprints"]["sha1"]["hex"]
        .clone();
    assert_eq!(json["server_chain"][0]["sha1"], gateway_sha1);
    assert_eq!(step(&json, "server_certificate")["ok"], true);
    assert!(
        step(&json, "client_certificate")["detail"]
            .as_str()
            .unwrap()
            .contains("accepted")
    );
}

#[test]
fn missing_client_certificate_is_reported_after_a_tls13_handshake() {
    let server = gateway_requiring_client_cert(&[]);
    let out = probe(server.port, &[]);
    assert_eq!(out.code(), 1, "{}", out.stdout);
    let json = out.json();
    assert_eq!(
        step(&json, "tls")["ok"],
        true,
        "the TLS 1.3 handshake itself completes"
    );
    assert_eq!(json["alert"]["name"], "certificate_required");
    assert_eq!(json["alert"]["after_handshake"], true);
    assert_eq!(json["client_auth"]["accepted"], false);
    let client = step(&json, "client_certificate")["detail"]
        .as_str()
        .unwrap();
    assert!(client.contains("we sent none (no --cert)"), "{client}");
}

#[test]
fn client_certificate_from_another_ca_gets_unknown_ca() {
    let server = gateway_requiring_client_cert(&[]);
    let out = probe(
        server.port,
        &[
            "--cert",
            "@agent-untrusted.pem",
            "--key",
            "@agent-untrusted.key",
        ],
    );
    assert_eq!(out.code(), 1, "{}", out.stdout);
    let json = out.json();
    assert_eq!(json["alert"]["name"], "unknown_ca");
    assert_eq!(json["alert"]["code"], 48);
    let client = step(&json, "client_certificate")["detail"]
        .as_str()
        .unwrap();
    assert!(
        client.contains(
            "our chain ends at issuer O=passthru lab, CN=Rogue CA, which is not among the CA names"
        ),
        "{client}"
    );
}

#[test]
fn tls12_rejection_fails_the_handshake_itself() {
    let server = gateway_requiring_client_cert(&["-tls1_2"]);
    let out = probe(
        server.port,
        &[
            "--cert",
            "@agent-expired.chain.pem",
            "--key",
            "@agent-expired.key",
        ],
    );
    assert_eq!(out.code(), 1, "{}", out.stdout);
    let json = out.json();
    assert_eq!(step(&json, "tls")["ok"], false);
    assert_eq!(json["alert"]["name"], "certificate_expired");
    assert_eq!(json["alert"]["after_handshake"], false);
    let accepted = probe(server.port, &AGENT);
    assert_eq!(accepted.code(), 0, "{}", accepted.stdout);
    assert_eq!(accepted.json()["session"]["version"], "TLS 1.2");
}

#[test]
fn server_that_does_not_ask_and_an_untrusted_server_chain() {
    let server = s_server(
        &live_lab().dir,
        &["-cert", "gateway.pem", "-key", "gateway.key"],
    );
    let out = probe(server.port, &AGENT);
    assert_eq!(out.code(), 0, "{}", out.stdout);
    let json = out.json();
    assert_eq!(json["client_auth"]["requested"], false);
    assert_eq!(
        step(&json, "client_certificate")["detail"],
        "not requested by the server"
    );

    // The lab root does not vouch for the self-signed gateway: only its pin does.
    let out = probe(server.port, &["--ca", "@root-ca.pem"]);
    assert_eq!(out.code(), 1);
    let detail = step(&out.json(), "server_certificate")["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        detail,
        format!(
            "not trusted: O=passthru lab, CN=gw.example.com is self-signed and not in --ca bundle (which holds {ROOT})"
        )
    );
    let text = run(&[
        "probe",
        &format!("127.0.0.1:{}", server.port),
        "--sni",
        "gw.example.com",
    ]);
    assert_eq!(text.code(), 0);
    assert!(
        text.stdout.contains("  ok   tls      TLS 1.3, "),
        "{}",
        text.stdout
    );
    assert!(text.stdout.ends_with("result: ok\n"), "{}", text.stdout);
}

#[test]
fn closed_port_is_connection_refused() {
    let port = closed_port();
    let out = probe(port, &[]);
    assert_eq!(out.code(), 1);
    let detail = step(&out.json(), "tcp")["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        detail.starts_with(&format!("connection refused by 127.0.0.1:{port}")),
        "{detail}"
    );
}

#[test]
fn port_that_never_answers_times_out_within_the_limit() {
    let port = silent_port();
    let started = Instant::now();
    let target = format!("127.0.0.1:{port}");
    let out = run_with(
        &[
            "probe",
            &target,
            "--sni",
            "gw.example.com",
            "--timeout",
            "1s",
            "--json",
        ],
        b"",
        Duration::from_secs(20),
    );
    assert_eq!(out.code(), 1);
    assert!(started.elapsed() < Duration::from_secs(10));
    let json = out.json();
    assert_eq!(step(&json, "tcp")["ok"], true);
    let tls = step(&json, "tls")["detail"].as_str().unwrap();
    assert!(tls.starts_with("no TLS answer within 1s"), "{tls}");
}

#[test]
fn through_tinyproxy_the_connect_answer_is_a_step() {
    let server = gateway_requiring_client_cert(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let proxy = tinyproxy(tmp.path(), server.port);
    let via = format!("http://127.0.0.1:{}", proxy.port);
    let out = probe(
        server.port,
        &[&AGENT[..], &["--via", via.as_str()]].concat(),
    );
    assert_eq!(out.code(), 0, "{}\n{}", out.stdout, proxy.output.text());
    let json = out.json();
    assert_eq!(json["via"], via.as_str());
    let connect = step(&json, "connect")["detail"].as_str().unwrap();
    assert!(connect.contains(" 200 Connection established"), "{connect}");
    assert_eq!(json["client_auth"]["accepted"], true);

    let missing = probe(server.port, &["--via", via.as_str()]);
    assert_eq!(missing.code(), 1);
    assert_eq!(missing.json()["alert"]["name"], "certificate_required");
}

#[test]
fn through_tinyproxy_a_refused_connect_quotes_the_status_line() {
    let server = gateway_requiring_client_cert(&[]);
    let tmp = tempfile::tempdir().unwrap();
    // The proxy allows CONNECT to another port only.
    let proxy = tinyproxy(tmp.path(), closed_port());
    let via = format!("http://127.0.0.1:{}", proxy.port);
    let out = probe(
        server.port,
        &[&AGENT[..], &["--via", via.as_str()]].concat(),
    );
    assert_eq!(out.code(), 1);
    let json = out.json();
    assert_eq!(step(&json, "tcp")["ok"], true);
    let connect = step(&json, "connect")["detail"].as_str().unwrap();
    assert!(connect.contains(" refused: HTTP/1."), "{connect}");
    assert!(connect.contains(" 403 "), "{connect}");

    let dead_proxy = format!("http://127.0.0.1:{}", closed_port());
    let out = probe(server.port, &["--via", dead_proxy.as_str()]);
    assert_eq!(out.code(), 1);
    let tcp = step(&out.json(), "tcp")["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(tcp.contains("connection refused"), "{tcp}");
}

#[test]
fn usage_errors_exit_2() {
    let lab = live_lab();
    let out = run(&["probe", "127.0.0.1", "--sni", "gw.example.com"]);
    assert_eq!(out.code(), 2);
    assert!(
        out.stderr.contains("\"127.0.0.1\" is not HOST:PORT"),
        "{}",
        out.stderr
    );
    let out = run(&["probe", "127.0.0.1:1", "--cert", &lab.file("agent-01.pem")]);
    assert_eq!(out.code(), 2, "--cert needs --key");
    let out = run(&[
        "probe",
        "127.0.0.1:1",
        "--cert",
        &lab.file("agent-01.pem"),
        "--key",
        &lab.file("agent-02.key"),
    ]);
    assert_eq!(out.code(), 2);
    assert!(
        out.stderr.contains("--cert/--key cannot be used"),
        "{}",
        out.stderr
    );
    let out = run(&["probe", "127.0.0.1:1", "--via", "https://proxy:3128"]);
    assert_eq!(out.code(), 2);
}
