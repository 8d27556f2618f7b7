//! The human text of every report (`lab`, `inspect`, `verify`, `probe`)
//! and the JSON form (serde, pretty-printed). Pure: strings in, strings out.

use std::fmt::Write as _;

use serde::Serialize;

use crate::inspect::{CertificateReport, InspectReport};
use crate::lab::LabReport;
use crate::probe::{ProbeReport, Step};
use crate::verify::VerifyReport;

/// Pretty JSON with a trailing newline.
pub fn json<T: Serialize>(report: &T) -> String {
    match serde_json::to_string_pretty(report) {
        Ok(text) => text + "\n",
        // Our reports are plain data; serialising cannot fail.
        Err(e) => format!("{{\"error\": \"{e}\"}}\n"),
    }
}

/// `lab`: where the files went and each identity's SHA-1.
pub fn lab(report: &LabReport) -> String {
    let files: usize = report.identities.iter().map(|i| i.files.len()).sum();
    let mut out = format!(
        "wrote {} files to {} (validity relative to {}); {} describes each\n",
        files + 1,
        report.dir,
        report.now,
        report.readme
    );
    for entry in &report.identities {
        line(
            &mut out,
            &format!("  {:<20} sha1 {}", entry.name, entry.sha1),
        );
    }
    out
}

/// `inspect`: one block per certificate, then the notes.
pub fn inspect(report: &InspectReport) -> String {
    let mut out = String::new();
    for (i, cert) in report.certificates.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        certificate(&mut out, cert, &report.checked_at);
    }
    for note in &report.notes {
        line(&mut out, &format!("\nnote: {note}"));
    }
    out
}

fn certificate(out: &mut String, c: &CertificateReport, checked_at: &str) {
    let list = |items: &[String]| {
        if items.is_empty() {
            "(none)".to_owned()
        } else {
            items.join(", ")
        }
    };
    line(out, &format!("{} #{}", c.source, c.index));
    let ca = match (c.ca, c.path_len) {
        (true, Some(n)) => format!("yes, path length {n}"),
        (true, None) => "yes".to_owned(),
        (false, _) => "no".to_owned(),
    };
    let issuer = if c.self_signed {
        format!("{} (self-signed)", c.issuer)
    } else {
        c.issuer.clone()
    };
    let status = match c.validity.status {
        crate::inspect::ValidityStatus::Valid => "valid",
        crate::inspect::ValidityStatus::NotYetValid => "NOT VALID YET",
        crate::inspect::ValidityStatus::Expired => "EXPIRED",
    };
    let s = &c.serial;
    let t = &c.thumbprints;
    let rows: Vec<(&str, String)> = vec![
        ("subject", c.subject.clone()),
        ("issuer", issuer),
        ("SANs", list(&c.subject_alt_names)),
        ("key", c.key.clone()),
        ("key usage", list(&c.key_usage)),
        ("EKU", list(&c.extended_key_usage)),
        ("CA", ca),
        ("not before", c.validity.not_before.clone()),
        ("not after", c.validity.not_after.clone()),
        (
            "at",
            format!("{checked_at}: {status}, {}", c.validity.summary),
        ),
        ("serial", s.spaced.clone()),
        ("serial reversed", s.reversed.clone()),
        ("serial (openssl)", s.openssl.clone()),
        ("serial base64", s.base64.clone()),
        ("serial decimal", s.decimal.clone()),
        ("SHA-1", t.sha1.hex.clone()),
        ("SHA-1 colon", t.sha1.colon.clone()),
        ("SHA-1 base64", t.sha1.base64.clone()),
        ("SHA-256", t.sha256.hex.clone()),
        ("SHA-256 colon", t.sha256.colon.clone()),
        ("SHA-256 base64", t.sha256.base64.clone()),
    ];
    for (label, value) in rows {
        line(out, &format!("  {label:<17} {value}"));
    }
    if let Some(m) = &c.matched {
        let verdict = match &m.result {
            Some(found) => format!("{:?} is {found}", m.value),
            None => format!(
                "{:?} is not this certificate's serial or SHA-1/SHA-256 thumbprint \
                 (tried hex, base64 and decimal, forwards and byte-reversed)",
                m.value
            ),
        };
        line(out, &format!("  {:<17} {verdict}", "match"));
    }
}

/// `verify`: the verdict, the reason, the chain.
pub fn verify(report: &VerifyReport) -> String {
    let file = report.chain_file.as_deref().unwrap_or("chain");
    let purpose = format!("{} authentication", report.purpose);
    let name = report
        .name
        .as_ref()
        .map(|n| format!(" for name {n}"))
        .unwrap_or_default();
    let mut out = if report.valid {
        format!("{file}: valid for {purpose}{name} at {}\n", report.at)
    } else {
        format!("{file}: INVALID for {purpose}{name} at {}\n", report.at)
    };
    if let Some(reason) = &report.reason {
        line(&mut out, &format!("  reason: {reason}"));
    }
    line(&mut out, "  chain:");
    for (i, c) in report.chain.iter().enumerate() {
        line(
            &mut out,
            &format!(
                "    {i} {}\n      issuer {}, valid {} .. {}, SHA-1 {}",
                c.subject, c.issuer, c.not_before, c.not_after, c.sha1
            ),
        );
    }
    let ca = report.ca_file.as_deref().unwrap_or("--ca");
    line(
        &mut out,
        &format!("  trust anchors ({ca}): {}", report.anchors.join("; ")),
    );
    out
}

/// `probe`: each step, the server's chain, the client-certificate request.
pub fn probe(report: &ProbeReport) -> String {
    let via = report
        .via
        .as_ref()
        .map(|v| format!(" via {v}"))
        .unwrap_or_default();
    let mut out = format!("probe {} (SNI {}){via}\n", report.target, report.sni);
    for step in &report.steps {
        let mark = if step.ok { "ok  " } else { "FAIL" };
        line(
            &mut out,
            &format!("  {mark} {:<8} {}", step_name(step.step), step.detail),
        );
    }
    if !report.server_chain.is_empty() {
        line(&mut out, "server chain:");
        for (i, c) in report.server_chain.iter().enumerate() {
            line(
                &mut out,
                &format!(
                    "  {i} {}\n      issuer  {}\n      expires {}\n      SHA-1   {}\n      SHA-256 {}",
                    c.subject, c.issuer, c.not_after, c.sha1, c.sha256
                ),
            );
        }
    }
    let auth = &report.client_auth;
    if auth.requested {
        line(&mut out, "client certificate requested; CA names accepted:");
        if auth.acceptable_ca_names.is_empty() {
            line(&mut out, "  (none listed: any issuer)");
        }
        for name in &auth.acceptable_ca_names {
            line(&mut out, &format!("  {name}"));
        }
    }
    if let Some(alert) = &report.alert {
        let when = if alert.after_handshake {
            "after the handshake"
        } else {
            "during the handshake"
        };
        line(
            &mut out,
            &format!("alert: {} ({}) {when}", alert.name, alert.code),
        );
    }
    let failed: Vec<&str> = report
        .steps
        .iter()
        .filter(|s| !s.ok)
        .map(|s| step_name(s.step))
        .collect();
    let result = if failed.is_empty() {
        "result: ok".to_owned()
    } else {
        format!("result: FAILED ({})", failed.join(", "))
    };
    line(&mut out, &result);
    out
}

fn step_name(step: Step) -> &'static str {
    match step {
        Step::Resolve => "resolve",
        Step::Tcp => "tcp",
        Step::Connect => "connect",
        Step::Tls => "tls",
        Step::ServerCertificate => "server",
        Step::ClientCertificate => "client",
    }
}

fn line(out: &mut String, text: &str) {
    // Writing to a String cannot fail.
    let _ = writeln!(out, "{text}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LabPki, clock, inspect};

    #[test]
    fn inspect_text_shows_every_encoding() {
        let pki = LabPki::generate(clock::from_timestamp(1_780_000_000)).unwrap();
        let sources = vec![("agent-01.pem".to_owned(), vec![pki.agent.cert_der.clone()])];
        let report = inspect::inspect(&sources, pki.now, Some("MAE=")).unwrap();
        let text = inspect(&report);
        for needle in [
            "agent-01.pem #1",
            "  subject           O=passthru lab, CN=agent-01",
            "  serial            30 01",
            "  serial reversed   01 30",
            "  serial (openssl)  3001",
            "  serial base64     MAE=",
            "  serial decimal    12289",
            "2026-05-28T20:26:40Z: valid, expires in 365 days (valid since 1 day)",
            "  match             \"MAE=\" is the serial number (base64)",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        assert!(text.contains(&pki.agent.sha1_hex()));
    }
}
