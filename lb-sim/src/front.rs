//! A layer-4 balancer in front of passthru, as a relay that never looks at
//! the bytes: what an F5 FastL4 virtual server or any source-NATting TCP
//! balancer does to a flow.
//!
//! - Source NAT: it dials passthru from its own address, so everything
//!   behind it sees the balancer, not the agent; with `proxy_v2` it first
//!   writes a PROXY v2 header carrying the agent's address.
//! - Idle timeout: a flow with no packet in either direction for longer
//!   than `idle_timeout` is dropped from its table without telling either
//!   side; the next bytes from either end are answered with a reset. A
//!   packet is anything TCP carries, keepalive probes included: the relay
//!   cannot read probes (the kernel answers them), so it counts the
//!   segments its sockets received (`ss -tin`, `segs_in`) as FastL4 counts
//!   packets.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use passthru::proxy_protocol::encode_v2;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::observe::{Failure, FailureKind, Hop, HopRecord, Ledger};
use crate::wire::{accept_each, connect_within, listen};

/// What the layer-4 balancer is configured with.
#[derive(Debug, Clone, Copy)]
pub struct FrontPlan {
    /// Where to listen.
    pub listen: SocketAddr,
    /// passthru's listener.
    pub passthru: SocketAddr,
    /// Drop flows idle longer than this (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// Send a PROXY v2 header with the agent's address first.
    pub proxy_v2: bool,
    /// Bound of connecting and of the whole flow.
    pub step_limit: Duration,
}

/// Start the balancer; returns its address.
pub async fn spawn(
    plan: FrontPlan,
    ledger: Ledger,
    stop: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let listener = listen("layer-4 balancer", plan.listen).await?;
    let addr = listener.local_addr()?;
    let plan = Arc::new(plan);
    accept_each(listener, stop, move |tcp| {
        let plan = Arc::clone(&plan);
        let ledger = ledger.clone();
        async move {
            let record = relay(&plan, &ledger, tcp).await;
            ledger.report(record);
        }
    });
    Ok(addr)
}

/// The component name for reports.
pub fn component(plan: &FrontPlan) -> String {
    let mut name = "layer-4 balancer (source NAT".to_string();
    if plan.proxy_v2 {
        name.push_str(", sends PROXY v2");
    }
    if let Some(idle) = plan.idle_timeout {
        name.push_str(&format!(", drops flows idle > {idle:?}"));
    }
    name.push(')');
    name
}

async fn relay(plan: &FrontPlan, ledger: &Ledger, mut agent: TcpStream) -> HopRecord {
    let mut record = HopRecord::new(Hop::Front, &component(plan));
    let started = Instant::now();
    let at = |record: &mut HopRecord, what: String| {
        record.notes.push(format!(
            "t={:.1} s: {what}",
            started.elapsed().as_secs_f64()
        ));
    };
    let agent_addr = agent.peer_addr().ok();
    let dialed = connect_within(
        plan.passthru,
        plan.step_limit,
        "connect to passthru timed out",
    );
    let mut upstream = match dialed.await {
        Ok(socket) => socket,
        Err(failure) => {
            record.error = Some(failure);
            return record;
        }
    };
    ledger.dialed(Hop::Balancer);
    let own = upstream.local_addr().ok();
    at(
        &mut record,
        format!(
            "flow from {} forwarded to passthru from the balancer's own address {}",
            agent_addr.map_or("?".to_string(), |a| a.to_string()),
            own.map_or("?".to_string(), |a| a.to_string()),
        ),
    );
    if plan.proxy_v2
        && let (Some(source), Ok(destination)) = (agent_addr, agent.local_addr())
    {
        let header = encode_v2(source, destination, None);
        if let Err(e) = upstream.write_all(&header).await {
            record.error = Some(Failure::from_io(&e));
            return record;
        }
        at(
            &mut record,
            format!("sent PROXY v2 naming the agent {source}"),
        );
    }
    let counter = SegmentCounter::new(&agent, &upstream);
    let (up, down) = copy_until_idle(
        plan,
        &mut agent,
        &mut upstream,
        counter,
        &mut record,
        started,
    )
    .await;
    record.bytes_up = up;
    record.bytes_down = down;
    record
}

/// Copy both ways; with an idle timeout, watch the segments received and
/// drop the flow silently once idle, resetting both ends on their next bytes.
async fn copy_until_idle(
    plan: &FrontPlan,
    agent: &mut TcpStream,
    upstream: &mut TcpStream,
    mut counter: SegmentCounter,
    record: &mut HopRecord,
    started: Instant,
) -> (u64, u64) {
    let mut up = 0u64;
    let mut down = 0u64;
    let mut a_buf = vec![0u8; 16 * 1024];
    let mut u_buf = vec![0u8; 16 * 1024];
    let mut last_activity = Instant::now();
    let mut dropped = false;
    let mut probes = 0usize;
    let deadline = Instant::now() + plan.step_limit * FLOW_STEPS;
    let mut tick = tokio::time::interval(TICK);
    let note = |record: &mut HopRecord, what: String| {
        record.notes.push(format!(
            "t={:.1} s: {what}",
            started.elapsed().as_secs_f64()
        ));
    };
    loop {
        tokio::select! {
            read = agent.read(&mut a_buf) => {
                let n = match read { Ok(0) | Err(_) => break, Ok(n) => n };
                if dropped {
                    note(record, format!("{n} B from the agent on a dropped flow: reset both sides"));
                    record.error = Some(Failure::plain(FailureKind::Other, IDLE_RESET));
                    reset(agent);
                    reset(upstream);
                    break;
                }
                if upstream.write_all(&a_buf[..n]).await.is_err() { break; }
                up += n as u64;
                last_activity = Instant::now();
                counter.refresh();
            }
            read = upstream.read(&mut u_buf) => {
                let n = match read { Ok(0) | Err(_) => break, Ok(n) => n };
                if dropped {
                    note(record, format!("{n} B from passthru on a dropped flow: reset both sides"));
                    record.error = Some(Failure::plain(FailureKind::Other, IDLE_RESET));
                    reset(agent);
                    reset(upstream);
                    break;
                }
                if agent.write_all(&u_buf[..n]).await.is_err() { break; }
                down += n as u64;
                last_activity = Instant::now();
                counter.refresh();
            }
            _ = tick.tick() => {
                if Instant::now() >= deadline { break; }
                let Some(idle) = plan.idle_timeout else { continue };
                if dropped { continue; }
                // Growth right after data is its ACKs, not a probe.
                if counter.refresh() && last_activity.elapsed() >= TICK * 2 {
                    probes += 1;
                    if probes <= MAX_PROBE_NOTES {
                        note(record, "segment without data (a TCP keepalive probe): the flow is not idle".to_string());
                    }
                    last_activity = Instant::now();
                }
                if last_activity.elapsed() > idle {
                    dropped = true;
                    note(record, format!("idle for more than {idle:?}: flow dropped from the table, neither side told"));
                }
            }
        }
    }
    if probes > MAX_PROBE_NOTES {
        note(record, format!("{probes} keepalive probes in all"));
    }
    (up, down)
}

/// Close with a reset (SO_LINGER 0), as a balancer answers a packet of a
/// flow it no longer knows.
fn reset(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
    let _ = socket2::SockRef::from(stream).shutdown(std::net::Shutdown::Both);
}

/// Segments received by the relay's two sockets, read from `ss -tin`.
struct SegmentCounter {
    sockets: Vec<(SocketAddr, SocketAddr)>,
    last: u64,
}

impl SegmentCounter {
    fn new(agent: &TcpStream, upstream: &TcpStream) -> SegmentCounter {
        let sockets = [agent, upstream]
            .iter()
            .filter_map(|s| Some((s.local_addr().ok()?, s.peer_addr().ok()?)))
            .collect();
        let mut counter = SegmentCounter { sockets, last: 0 };
        counter.refresh();
        counter
    }

    /// Read the counts again; true when they grew.
    fn refresh(&mut self) -> bool {
        let total: u64 = self
            .sockets
            .iter()
            .map(|(l, p)| socket_counter(*l, *p, "segs_in"))
            .sum();
        let grew = total > self.last;
        self.last = self.last.max(total);
        grew
    }
}

/// A counter of `ss -tin` (`segs_in`, `data_segs_in`) for the socket
/// `local` → `peer`; 0 when `ss` cannot say.
pub fn socket_counter(local: SocketAddr, peer: SocketAddr, name: &str) -> u64 {
    let out = std::process::Command::new("ss")
        .args(["-Htin", "src", &local.to_string(), "dst", &peer.to_string()])
        .output();
    let Ok(out) = out else { return 0 };
    parse_counter(&String::from_utf8_lossy(&out.stdout), name)
}

fn parse_counter(text: &str, name: &str) -> u64 {
    text.split_whitespace()
        .filter_map(|w| w.split_once(':'))
        .find_map(|(key, value)| (key == name).then(|| value.parse().ok()).flatten())
        .unwrap_or(0)
}

/// The error a reset flow records (the verdict looks for it).
pub const IDLE_RESET: &str = "flow dropped while idle; reset on its next packet";
const TICK: Duration = Duration::from_millis(250);
const MAX_PROBE_NOTES: usize = 3;
/// The flow may stay open for this many step limits.
const FLOW_STEPS: u32 = 6;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segs_in_is_read_from_ss_output() {
        let text = "ESTAB 0 0 127.0.0.1:1 127.0.0.1:2\n\t cubic wscale:7,7 rto:204 segs_out:5 segs_in:7 data_segs_out:2\n";
        assert_eq!(parse_counter(text, "segs_in"), 7);
        assert_eq!(parse_counter(text, "segs_out"), 5);
        assert_eq!(parse_counter("", "segs_in"), 0);
    }
}
