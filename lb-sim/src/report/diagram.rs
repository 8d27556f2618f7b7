//! One SVG sequence diagram per scenario: a lane per hop (agent, balancer or
//! proxy, gateway, backend), arrows for the handshake messages each hop
//! recorded (ClientHello, Certificate, alerts, the inner handshake, the
//! answers), and a red mark where it broke. Derived from the records only;
//! pure: returns SVG text.

use std::fmt::Write as _;

use crate::agent::GATEWAY_NAME;
use crate::observe::{Hop, HopRecord, Layer, Leg, Role};
use crate::report::markup::escape;
use crate::report::table::cert_short;
use crate::run::{AttemptResult, ScenarioResult};

/// The SVG of one scenario: its runs stacked, each with a title row.
pub fn svg(scenario: &ScenarioResult) -> String {
    let hops = lanes(scenario);
    let lane_x = |hop: Hop| -> f32 {
        let i = hops.iter().position(|h| *h == hop).unwrap_or(0);
        MARGIN + i as f32 * (WIDTH - 2.0 * MARGIN) / (hops.len().max(2) - 1) as f32
    };
    let runs: Vec<(&AttemptResult, Vec<Step>)> = scenario
        .attempts
        .iter()
        .map(|a| (a, steps(&a.records)))
        .collect();
    let rows: usize = runs.iter().map(|(_, s)| s.len() + 2).sum();
    let height = TOP + rows as f32 * ROW + 10.0;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="seq" role="img" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" aria-label="sequence diagram of {}">"#,
        escape(&scenario.name)
    );
    out.push_str(r##"<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="context-stroke"/></marker></defs>"##);
    for hop in &hops {
        let x = lane_x(*hop);
        let _ = write!(
            out,
            r#"<rect x="{}" y="4" width="120" height="24" rx="4" class="lanehead"/><text x="{x}" y="21" class="lanename">{}</text><line x1="{x}" y1="28" x2="{x}" y2="{}" class="lane"/>"#,
            x - 60.0,
            hop.as_str(),
            height - 4.0
        );
    }
    let mut y = TOP;
    for (attempt, steps) in &runs {
        let status = if attempt.passed {
            "as expected"
        } else if attempt.skipped.is_some() {
            "skipped"
        } else {
            "DIFFERS from expectation"
        };
        let balancer = match &attempt.balancer_config {
            Some(_) => format!(" · balancer: {}", attempt.balancer),
            None => String::new(),
        };
        let _ = write!(
            out,
            r#"<text x="8" y="{}" class="runtitle">{} — {} ({status}){}</text>"#,
            y + 14.0,
            escape(&attempt.label),
            escape(&attempt.observed.label()),
            escape(&balancer)
        );
        y += ROW;
        for step in steps {
            y += ROW;
            draw(&mut out, step, y, &lane_x);
        }
        y += ROW;
        let _ = write!(
            out,
            r#"<line x1="4" y1="{}" x2="{}" y2="{}" class="sep"/>"#,
            y - 8.0,
            WIDTH - 4.0,
            y - 8.0
        );
    }
    out.push_str("</svg>");
    out
}

/// One row of a diagram.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// A message from one hop to another.
    Arrow {
        from: Hop,
        to: Hop,
        text: String,
        style: Style,
    },
    /// A remark on one lane; `broke` draws it as the red failure mark.
    Note { at: Hop, text: String, broke: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Plain,
    Inner,
    Alert,
    Data,
}

fn lanes(scenario: &ScenarioResult) -> Vec<Hop> {
    let mut hops: Vec<Hop> = scenario
        .attempts
        .iter()
        .flat_map(|a| a.hops.iter().copied())
        .collect();
    hops.sort();
    hops.dedup();
    hops
}

/// The rows of one run, from its records.
fn steps(records: &[HopRecord]) -> Vec<Step> {
    let mut steps = Vec::new();
    let find = |hop: Hop| records.iter().find(|r| r.hop == hop);
    let agent = find(Hop::Agent);
    let outer_server = records.iter().find(|r| {
        r.hop != Hop::Agent && r.leg(Layer::Outer).is_some_and(|l| l.role == Role::Server)
    });
    for relay in records
        .iter()
        .filter(|r| matches!(r.hop, Hop::Balancer | Hop::Proxy))
    {
        if relay.legs.is_empty() {
            let text = relay.notes.first().cloned().unwrap_or_default();
            steps.push(note(relay.hop, short_note(&text), false));
        } else if let Some(connect) = relay.notes.iter().find(|n| n.starts_with("CONNECT")) {
            steps.push(arrow(Hop::Agent, relay.hop, connect.clone(), Style::Plain));
            steps.push(arrow(
                relay.hop,
                Hop::Agent,
                "200 Connection established".into(),
                Style::Plain,
            ));
        }
    }
    // The outer handshake, as the agent and the hop that answered it saw it.
    if let (Some(agent), Some(server)) = (agent, outer_server) {
        if let (Some(client_leg), Some(server_leg)) =
            (agent.leg(Layer::Outer), server.leg(Layer::Outer))
        {
            handshake(
                &mut steps,
                Hop::Agent,
                server.hop,
                client_leg,
                Some(server_leg),
            );
        }
    } else if let Some(leg) = agent.and_then(|a| a.leg(Layer::Outer)) {
        steps.push(arrow(
            Hop::Agent,
            Hop::Gateway,
            "ClientHello".into(),
            Style::Plain,
        ));
        if let Some(f) = &leg.failure {
            steps.push(note(Hop::Agent, f.summary(), true));
        }
    }
    // A relay's own session toward the gateway, or the plaintext it forwards.
    for relay in records
        .iter()
        .filter(|r| matches!(r.hop, Hop::Balancer | Hop::Proxy))
    {
        if let (Some(up), Some(gw)) = (relay.leg(Layer::Upstream), find(Hop::Gateway)) {
            handshake(
                &mut steps,
                relay.hop,
                Hop::Gateway,
                up,
                gw.leg(Layer::Outer),
            );
        } else if relay.notes.iter().any(|n| n.contains("in clear"))
            && let Some(gw_leg) = find(Hop::Gateway).and_then(|g| g.leg(Layer::Outer))
        {
            steps.push(arrow(
                relay.hop,
                Hop::Gateway,
                format!(
                    "decrypted bytes in clear: ClientHello SNI {}",
                    gw_leg.sni.as_deref().unwrap_or("?")
                ),
                Style::Plain,
            ));
            server_answer(&mut steps, relay.hop, Hop::Gateway, gw_leg);
            if let Some(failure) = &gw_leg.failure {
                let text = format!("no client certificate ({})", failure.summary());
                steps.push(note(Hop::Gateway, text, true));
            }
        }
    }
    if let Some(gateway) = find(Hop::Gateway)
        && let Some(refused) = &gateway.refused
    {
        steps.push(arrow(
            Hop::Gateway,
            Hop::Agent,
            "\"Authentication Required\" (in clear)".into(),
            Style::Alert,
        ));
        steps.push(note(Hop::Gateway, refused.to_string(), true));
    }
    // The inner handshake and the answers.
    if let (Some(agent), Some(backend)) = (agent, find(Hop::Backend)) {
        steps.push(note(
            Hop::Gateway,
            "TCP to the backend; copies bytes both ways".into(),
            false,
        ));
        if let Some(inner) = agent.leg(Layer::Inner) {
            handshake(
                &mut steps,
                Hop::Agent,
                Hop::Backend,
                inner,
                backend.leg(Layer::Inner),
            );
        }
        if !backend.said.is_empty() {
            steps.push(arrow(
                Hop::Agent,
                Hop::Backend,
                format!("{} request(s), inside both layers", backend.said.len()),
                Style::Data,
            ));
            steps.push(arrow(
                Hop::Backend,
                Hop::Agent,
                format!("{} answer(s)", agent.said.len()),
                Style::Data,
            ));
        }
    } else if let Some(f) = agent
        .and_then(|a| a.leg(Layer::Inner))
        .and_then(|l| l.failure.as_ref())
    {
        steps.push(note(
            Hop::Agent,
            format!("inner handshake: {}", f.summary()),
            true,
        ));
    }
    // A layer-4 balancer's timeline, and the address the gateway logged.
    for front in records.iter().filter(|r| r.hop == Hop::Front) {
        for text in &front.notes {
            steps.push(note(Hop::Front, short_note(text), text.contains("reset")));
        }
    }
    if let Some(addr) = find(Hop::Gateway)
        .and_then(|g| g.client_addr.as_ref())
        .filter(|_| find(Hop::Front).is_some())
    {
        steps.push(note(Hop::Gateway, format!("logged client {addr}"), false));
    }
    steps
}

/// ClientHello, the server's certificate, the client's answer, and alerts.
fn handshake(
    steps: &mut Vec<Step>,
    client: Hop,
    server: Hop,
    client_leg: &Leg,
    server_leg: Option<&Leg>,
) {
    let style = if client_leg.layer == Layer::Inner {
        Style::Inner
    } else {
        Style::Plain
    };
    let sni = client_leg.sni.as_deref().unwrap_or("(none)");
    steps.push(arrow(
        client,
        server,
        format!("ClientHello SNI {sni}"),
        style,
    ));
    if let Some(server_leg) = server_leg {
        server_answer(steps, client, server, server_leg);
    }
    if let Some(failure) = client_leg
        .failure
        .as_ref()
        .filter(|f| f.alert_received.is_none())
    {
        if let Some(alert) = &failure.alert_sent {
            steps.push(arrow(
                client,
                server,
                format!("alert {alert}"),
                Style::Alert,
            ));
        }
        steps.push(note(client, failure.message.clone(), true));
        return;
    }
    let presented = client_leg
        .presented
        .as_ref()
        .map_or("no Certificate".to_string(), |c| {
            format!("Certificate {}", cert_short(c))
        });
    steps.push(arrow(
        client,
        server,
        format!("{presented}, Finished"),
        style,
    ));
    if let Some(failure) = server_leg.and_then(|l| l.failure.as_ref()) {
        if let Some(alert) = &failure.alert_sent {
            steps.push(arrow(
                server,
                client,
                format!("alert {alert}"),
                Style::Alert,
            ));
        }
        steps.push(note(server, failure.message.clone(), true));
    } else if let Some(failure) = &client_leg.failure {
        steps.push(note(client, failure.summary(), true));
    }
}

fn server_answer(steps: &mut Vec<Step>, client: Hop, server: Hop, leg: &Leg) {
    let style = if leg.layer == Layer::Inner {
        Style::Inner
    } else {
        Style::Plain
    };
    let cert = leg.presented.as_ref().map_or("?".to_string(), cert_short);
    let request = if leg.client_cert_requested {
        ", CertificateRequest"
    } else {
        ""
    };
    steps.push(arrow(
        server,
        client,
        format!("ServerHello, Certificate {cert}{request}"),
        style,
    ));
    if leg.sni.as_deref().is_some_and(|s| s != GATEWAY_NAME) && server == Hop::Gateway {
        steps.push(note(
            Hop::Gateway,
            "got a ClientHello for another name: the agent's inner one".into(),
            false,
        ));
    }
}

fn arrow(from: Hop, to: Hop, text: String, style: Style) -> Step {
    Step::Arrow {
        from,
        to,
        text,
        style,
    }
}

fn note(at: Hop, text: String, broke: bool) -> Step {
    Step::Note { at, text, broke }
}

fn short_note(text: &str) -> String {
    text.split(';').next().unwrap_or(text).to_string()
}

fn draw(out: &mut String, step: &Step, y: f32, lane_x: &dyn Fn(Hop) -> f32) {
    match step {
        Step::Arrow {
            from,
            to,
            text,
            style,
        } => {
            let (x1, x2) = (lane_x(*from), lane_x(*to));
            let kind = match style {
                Style::Plain => "plain",
                Style::Inner => "inner",
                Style::Alert => "alert",
                Style::Data => "data",
            };
            let mid = (x1 + x2) / 2.0;
            let _ = write!(
                out,
                r#"<line x1="{x1}" y1="{y}" x2="{x2}" y2="{y}" class="msg {kind}" marker-end="url(#arrow)"/><text x="{mid}" y="{}" class="label l-{kind}">{}</text>"#,
                y - 4.0,
                escape(&clip(text, 80))
            );
        }
        Step::Note { at, text, broke } => {
            let x = lane_x(*at);
            let right = x > WIDTH / 2.0;
            let (tx, anchor) = if right {
                (x - 14.0, "end")
            } else {
                (x + 14.0, "start")
            };
            let text = clip(text, if right { 100 } else { 110 });
            if *broke {
                let _ = write!(
                    out,
                    r#"<g class="broke"><circle cx="{x}" cy="{}" r="9"/><path d="M{} {} l10 10 M{} {} l-10 10"/></g><text x="{tx}" y="{y}" text-anchor="{anchor}" class="note broke-text">{}</text>"#,
                    y - 4.0,
                    x - 5.0,
                    y - 9.0,
                    x + 5.0,
                    y - 9.0,
                    escape(&text)
                );
            } else {
                let _ = write!(
                    out,
                    r#"<text x="{tx}" y="{y}" text-anchor="{anchor}" class="note">{}</text>"#,
                    escape(&text)
                );
            }
        }
    }
}

/// At most `max` characters, "…" when cut.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

const WIDTH: f32 = 1100.0;
const MARGIN: f32 = 90.0;
const TOP: f32 = 36.0;
const ROW: f32 = 24.0;
