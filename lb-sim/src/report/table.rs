//! The terminal table: per run, expected and observed verdicts, one line per
//! hop (what it saw, the alert or error), the thumbprint checks and one
//! sentence of explanation. Pure: returns text.

use std::fmt::Write as _;

use crate::observe::{CertSeen, HopRecord, Leg};
use crate::run::{AddrCheck, AttemptResult, Report, ScenarioResult};

/// The whole table: one row per run (scenario, path, expected, observed,
/// result), then per run what each hop saw and why.
pub fn render(report: &Report) -> String {
    let header = [
        "SCENARIO",
        "RUN",
        "BALANCER",
        "EXPECTED",
        "OBSERVED (where: why)",
        "ALERTS / ERRORS BY HOP",
        "RESULT",
    ];
    let mut rows: Vec<[String; 7]> = Vec::new();
    for scenario in &report.scenarios {
        for (i, attempt) in scenario.attempts.iter().enumerate() {
            rows.push([
                if i == 0 {
                    scenario.name.clone()
                } else {
                    String::new()
                },
                attempt.label.clone(),
                attempt.balancer.clone(),
                attempt.expected.short(),
                attempt.observed.short(),
                alerts(&attempt.records),
                result(attempt).to_string(),
            ]);
        }
    }
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w.saturating_sub(c.chars().count()))))
            .collect();
        let _ = writeln!(out, "{}", padded.join("  ").trim_end());
    };
    line(&mut out, &header.map(str::to_string));
    for row in &rows {
        line(&mut out, row);
    }
    let _ = writeln!(out);
    for scenario in &report.scenarios {
        for attempt in &scenario.attempts {
            render_details(&mut out, &scenario.name, attempt);
        }
    }
    let runs = rows.len();
    let failed = report
        .scenarios
        .iter()
        .flat_map(|s| &s.attempts)
        .filter(|a| !a.passed && a.skipped.is_none())
        .count();
    let skipped = match report.skipped {
        0 => String::new(),
        n => format!("; {n} run(s) SKIPPED (not passed): see above"),
    };
    let _ = writeln!(
        out,
        "{} scenarios, {runs} runs: {}{skipped} (lab PKI generated for {})",
        report.scenarios.len(),
        if failed == 0 {
            "every observed outcome matches its expectation".to_string()
        } else {
            format!("{failed} run(s) DIFFER from their expectation")
        },
        report.lab_now
    );
    out
}

/// The progress line printed when a scenario finishes.
pub fn progress_line(result: &ScenarioResult) -> String {
    let millis: u64 = result.attempts.iter().map(|a| a.millis).sum();
    let verdicts: Vec<String> = result.attempts.iter().map(|a| a.observed.label()).collect();
    format!(
        "[{}] {:<28} {:>5} ms  {}",
        if !result.passed {
            "DIFF"
        } else if result.attempts.iter().any(|a| a.skipped.is_some()) {
            "SKIP"
        } else {
            " ok "
        },
        result.name,
        millis,
        verdicts.join("; ")
    )
}

/// "gateway logged client 127.0.0.11:40000 = agent (127.0.0.11) ✓".
pub fn logged_text(logged: &AddrCheck) -> String {
    format!(
        "gateway logged client {} = {} ({}) {}",
        logged.observed.as_deref().unwrap_or("(none)"),
        format!("{:?}", logged.expected_party).to_lowercase(),
        logged.expected,
        if logged.ok { "✓" } else { "✗" }
    )
}

fn result(attempt: &AttemptResult) -> &'static str {
    if attempt.skipped.is_some() {
        return "SKIPPED";
    }
    match (attempt.passed, attempt.settled) {
        (true, _) => "ok",
        (false, false) => "DIFFERS (a hop never reported)",
        (false, true) => "DIFFERS",
    }
}

fn render_details(out: &mut String, scenario: &str, attempt: &AttemptResult) {
    let _ = writeln!(
        out,
        "{scenario} / {} — {} [{}; agent presents {}]",
        attempt.label,
        attempt.observed.label(),
        attempt.path_text,
        attempt.agent_cert
    );
    for record in &attempt.records {
        let _ = writeln!(
            out,
            "    {:<9} {}",
            format!("{}:", record.hop.as_str()),
            hop_line(record)
        );
    }
    let checks: Vec<String> = attempt
        .checks
        .iter()
        .map(|c| {
            let who = c
                .expected_party
                .map_or("none".to_string(), |p| format!("{p:?}").to_lowercase());
            format!(
                "{} = {who} {}",
                c.sight.describe(),
                if c.ok { "✓" } else { "✗" }
            )
        })
        .collect();
    let mut checks = checks;
    if let Some(logged) = &attempt.logged {
        checks.push(logged_text(logged));
    }
    if !checks.is_empty() {
        let _ = writeln!(out, "    checks:   {}", checks.join(", "));
    }
    let _ = writeln!(out, "    why:      {}", attempt.explanation);
    if let Some(note) = &attempt.note {
        let _ = writeln!(out, "    note:     {note}");
    }
    let _ = writeln!(out);
}

/// The alerts and errors of a run, by hop: `gateway→unknown_ca` (sent),
/// `agent←unknown_ca` (received), `gateway: Authentication Required`.
pub fn alerts(records: &[HopRecord]) -> String {
    let mut parts: Vec<String> = Vec::new();
    for record in records {
        let hop = record.hop.as_str();
        for failure in record.legs.iter().filter_map(|l| l.failure.as_ref()) {
            parts.push(match (&failure.alert_sent, &failure.alert_received) {
                (Some(alert), _) => format!("{hop}→{alert}"),
                (None, Some(alert)) => format!("{hop}←{alert}"),
                (None, None) => format!("{hop}: {}", failure_word(&failure.kind)),
            });
        }
        if record.refused.is_some() {
            parts.push(format!("{hop}: \"Authentication Required\""));
        }
    }
    if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join(", ")
    }
}

fn failure_word(kind: &crate::observe::FailureKind) -> &'static str {
    use crate::observe::FailureKind as K;
    match kind {
        K::Closed => "closed",
        K::Timeout => "timeout",
        K::NotTls => "not TLS",
        K::NoClientCertificate => "no client cert",
        K::AnsweredInClear => "refused in clear",
        _ => "error",
    }
}

/// One line for a hop: each handshake (what it saw, ok or the alert/error),
/// application-level answers, bytes, and any error outside a handshake.
pub fn hop_line(record: &HopRecord) -> String {
    let mut parts: Vec<String> = record.legs.iter().map(leg_text).collect();
    if let Some(refused) = &record.refused {
        parts.push(format!("answered \"Authentication Required\" ({refused})"));
    } else if !record.said.is_empty() {
        let first = record.said.first().map_or("", String::as_str);
        parts.push(if record.said.len() == 1 {
            format!("said \"{first}\"")
        } else {
            format!("{} lines, first \"{first}\"", record.said.len())
        });
    }
    if parts.is_empty() {
        parts.extend(record.notes.iter().cloned());
    }
    if let Some(error) = &record.error {
        parts.push(format!("then: {}", error.summary()));
    }
    if record.bytes_up + record.bytes_down > 0 {
        parts.push(format!(
            "{} B up / {} B down",
            record.bytes_up, record.bytes_down
        ));
    }
    parts.join("; ")
}

fn leg_text(leg: &Leg) -> String {
    let layer = format!("{:?}", leg.layer).to_lowercase();
    let saw = match (&leg.peer_cert, leg.role) {
        (Some(cert), crate::observe::Role::Client) => format!("server {}", cert_short(cert)),
        (Some(cert), crate::observe::Role::Server) => format!("client {}", cert_short(cert)),
        (None, crate::observe::Role::Server) if leg.client_cert_requested => {
            "no client cert".to_string()
        }
        (None, _) => String::new(),
    };
    let status = match &leg.failure {
        Some(failure) => failure.summary(),
        None if leg.completed => "ok".to_string(),
        None => "incomplete".to_string(),
    };
    let sni = leg
        .sni
        .as_deref()
        .map(|s| format!(" sni={s}"))
        .unwrap_or_default();
    format!("{layer}{sni} {saw} → {status}").replace("  ", " ")
}

/// `CN=x [sha1 first 8…]`.
pub fn cert_short(cert: &CertSeen) -> String {
    let sha1 = cert.sha1.get(..8).unwrap_or(&cert.sha1);
    format!("CN={} [{sha1}…]", cert.subject_cn)
}
