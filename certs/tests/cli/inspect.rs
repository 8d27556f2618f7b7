//! `passthru-certs inspect` against `openssl x509` on the lab and on
//! certificates with unusual serial numbers, `--match`, stdin, bad input.

use std::path::Path;
use std::time::Duration;

use rcgen::{CertificateParams, KeyPair, SerialNumber};
use serde_json::Value;

use crate::support::{fixed_lab, openssl, run, run_with};

/// What `openssl x509 -noout` says about `file`: (sha1 colon, sha256
/// colon, serial, notBefore RFC 3339, notAfter RFC 3339).
fn openssl_view(file: &str) -> (String, String, String, String, String) {
    let one = openssl(&[
        "x509",
        "-in",
        file,
        "-noout",
        "-fingerprint",
        "-sha1",
        "-serial",
        "-dates",
    ]);
    assert_eq!(one.code(), 0, "{}", one.stderr);
    let two = openssl(&["x509", "-in", file, "-noout", "-fingerprint", "-sha256"]);
    let field = |text: &str, key: &str| -> String {
        // OpenSSL 3.0 writes "sha1 Fingerprint=", 1.1 "SHA1 Fingerprint=".
        text.lines()
            .find_map(|l| {
                l.get(..key.len())
                    .filter(|p| p.eq_ignore_ascii_case(key))
                    .map(|_| &l[key.len()..])
            })
            .unwrap_or_else(|| panic!("no {key} in {text}"))
            .to_owned()
    };
    (
        field(&one.stdout, "SHA1 Fingerprint="),
        field(&two.stdout, "SHA256 Fingerprint="),
        field(&one.stdout, "serial="),
        openssl_date(&field(&one.stdout, "notBefore=")),
        openssl_date(&field(&one.stdout, "notAfter=")),
    )
}

/// "May 27 20:26:40 2026 GMT" → "2026-05-27T20:26:40Z".
fn openssl_date(text: &str) -> String {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = months.iter().position(|m| *m == parts[0]).unwrap() + 1;
    let day: u32 = parts[1].parse().unwrap();
    format!("{}-{month:02}-{day:02}T{}Z", parts[3], parts[2])
}

fn inspect_json(file: &str) -> Value {
    let out = run(&["inspect", "--json", file]);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    out.json()
}

fn assert_same_as_openssl(file: &str) -> Value {
    let (sha1, sha256, serial, not_before, not_after) = openssl_view(file);
    let json = inspect_json(file);
    let cert = &json["certificates"][0];
    assert_eq!(
        cert["thumbprints"]["sha1"]["colon"],
        sha1.as_str(),
        "{file}"
    );
    assert_eq!(
        cert["thumbprints"]["sha256"]["colon"],
        sha256.as_str(),
        "{file}"
    );
    assert_eq!(cert["serial"]["openssl"], serial.as_str(), "{file}");
    assert_eq!(
        cert["validity"]["not_before"],
        not_before.as_str(),
        "{file}"
    );
    assert_eq!(cert["validity"]["not_after"], not_after.as_str(), "{file}");
    // Every rendering of the serial and thumbprints is recognised by --match.
    for value in [
        sha1.clone(),
        sha1.replace(':', "").to_lowercase(),
        sha256,
        serial.clone(),
        format!("serial={serial}"),
        cert["serial"]["spaced"].as_str().unwrap().to_owned(),
        cert["serial"]["reversed"].as_str().unwrap().to_owned(),
        cert["serial"]["base64"].as_str().unwrap().to_owned(),
        cert["serial"]["decimal"].as_str().unwrap().to_owned(),
        cert["thumbprints"]["sha1"]["base64"]
            .as_str()
            .unwrap()
            .to_owned(),
        cert["thumbprints"]["sha256"]["base64"]
            .as_str()
            .unwrap()
            .to_owned(),
    ] {
        let out = run(&["inspect", file, "--match", &value]);
        assert_eq!(
            out.code(),
            0,
            "--match {value:?} on {file}:\n{}",
            out.stdout
        );
    }
    cert.clone()
}

#[test]
fn thumbprints_serials_and_dates_match_openssl_on_every_lab_certificate() {
    let lab = fixed_lab();
    let mut files: Vec<_> = std::fs::read_dir(&lab.dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.to_string_lossy().ends_with(".pem") && !p.to_string_lossy().ends_with(".chain.pem")
        })
        .collect();
    files.sort();
    assert_eq!(files.len(), 14);
    for file in files {
        assert_same_as_openssl(&file.display().to_string());
    }
}

fn self_signed_with_serial(dir: &Path, name: &str, serial: &[u8]) -> String {
    let mut params = CertificateParams::new(vec![format!("{name}.example.com")]).unwrap();
    params.serial_number = Some(SerialNumber::from_slice(serial));
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let path = dir.join(format!("{name}.pem"));
    std::fs::write(&path, cert.pem()).unwrap();
    path.display().to_string()
}

#[test]
fn serials_with_a_leading_zero_byte_and_twenty_bytes_match_openssl() {
    let tmp = tempfile::tempdir().unwrap();
    // High bit set: DER adds a 0x00 sign byte that viewers show and openssl hides.
    let leading_zero =
        self_signed_with_serial(tmp.path(), "leading-zero", &[0x8f, 0x12, 0x34, 0x56]);
    let cert = assert_same_as_openssl(&leading_zero);
    assert_eq!(cert["serial"]["spaced"], "00 8f 12 34 56");
    assert_eq!(cert["serial"]["reversed"], "56 34 12 8f 00");
    assert_eq!(cert["serial"]["openssl"], "8F123456");

    // The RFC 5280 maximum: 20 bytes.
    let twenty: Vec<u8> = (0..20u8).map(|i| 0x70 ^ i.wrapping_mul(37)).collect();
    assert!(twenty[0] < 0x80);
    let twenty_file = self_signed_with_serial(tmp.path(), "twenty", &twenty);
    let cert = assert_same_as_openssl(&twenty_file);
    assert_eq!(
        cert["serial"]["spaced"]
            .as_str()
            .unwrap()
            .split(' ')
            .count(),
        20
    );

    // 20 bytes with the high bit set: 21 DER bytes.
    let mut high = twenty;
    high[0] |= 0x80;
    let high_file = self_signed_with_serial(tmp.path(), "twenty-high", &high);
    let cert = assert_same_as_openssl(&high_file);
    let spaced = cert["serial"]["spaced"].as_str().unwrap();
    assert!(spaced.starts_with("00 "), "{spaced}");
    assert_eq!(spaced.split(' ').count(), 21);
}

#[test]
fn match_says_which_encoding_and_exits_1_when_nothing_matches() {
    let lab = fixed_lab();
    let agent = lab.file("agent-01.pem");
    let hit = run(&["inspect", &agent, "--match", "01 30"]);
    assert_eq!(hit.code(), 0);
    assert!(
        hit.stdout
            .contains("\"01 30\" is the serial number, byte-reversed (hex)"),
        "{}",
        hit.stdout
    );
    let miss = run(&["inspect", &agent, "--match", "de:ad:be:ef"]);
    assert_eq!(miss.code(), 1);
    assert!(
        miss.stdout.contains("is not this certificate's serial"),
        "{}",
        miss.stdout
    );
    let json = run(&["inspect", &agent, "--json", "--match", "MAE="]).json();
    assert_eq!(
        json["certificates"][0]["matched"]["result"],
        serde_json::json!({"field": "serial", "encoding": "base64"})
    );
}

#[test]
fn reads_pem_bundles_and_der_from_stdin_and_notes_shared_cns() {
    let lab = fixed_lab();
    let chain = std::fs::read(lab.dir.join("agent-01.chain.pem")).unwrap();
    let out = run_with(&["inspect", "-", "--json"], &chain, Duration::from_secs(30));
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let json = out.json();
    assert_eq!(json["certificates"].as_array().unwrap().len(), 2);
    assert_eq!(json["certificates"][0]["source"], "stdin");
    assert_eq!(json["certificates"][1]["common_names"][0], "Lab Agent CA");

    let tmp = tempfile::tempdir().unwrap();
    let der_file = tmp.path().join("agent-01.der");
    let der_bytes = {
        let mut cmd = std::process::Command::new("openssl");
        cmd.args([
            "x509",
            "-in",
            &lab.file("agent-01.pem"),
            "-outform",
            "DER",
            "-out",
        ])
        .arg(&der_file);
        assert!(cmd.status().unwrap().success());
        std::fs::read(&der_file).unwrap()
    };
    assert_eq!(der_bytes.first(), Some(&0x30));
    let from_der = inspect_json(&der_file.display().to_string());
    let from_pem = inspect_json(&lab.file("agent-01.pem"));
    assert_eq!(
        from_der["certificates"][0]["thumbprints"],
        from_pem["certificates"][0]["thumbprints"]
    );

    let both = run(&[
        "inspect",
        &lab.file("agent-01.pem"),
        &lab.file("agent-01-rotated.pem"),
    ]);
    assert_eq!(both.code(), 0);
    assert!(
        both.stdout
            .contains("note: CN=agent-01 is shared by 2 certificates"),
        "{}",
        both.stdout
    );
}

#[test]
fn bad_input_exits_2_naming_the_file() {
    let lab = fixed_lab();
    let key = lab.file("agent-01.key");
    let out = run(&["inspect", &key]);
    assert_eq!(out.code(), 2);
    assert_eq!(
        out.stderr.trim(),
        format!(
            "passthru-certs: {key} is not a certificate: no CERTIFICATE block, found PRIVATE KEY"
        )
    );
    assert!(out.stdout.is_empty());
    let missing = run(&["inspect", "/nonexistent/agent.pem"]);
    assert_eq!(missing.code(), 2);
    assert!(
        missing
            .stderr
            .contains("cannot read /nonexistent/agent.pem"),
        "{}",
        missing.stderr
    );
    assert_eq!(missing.stderr.lines().count(), 1);
}

#[test]
fn validity_margin_at_a_given_time() {
    let lab = fixed_lab();
    let out = run(&[
        "inspect",
        &lab.file("agent-not-yet-valid.pem"),
        "--at",
        "2026-05-28T22:24:40Z",
    ]);
    assert!(
        out.stdout
            .contains("NOT VALID YET, not valid for another 2 min"),
        "{}",
        out.stdout
    );
    let out = run(&[
        "inspect",
        &lab.file("agent-expired.pem"),
        "--at",
        lab.now.as_str(),
    ]);
    assert!(
        out.stdout.contains("EXPIRED, expired 35 days ago"),
        "{}",
        out.stdout
    );
}
