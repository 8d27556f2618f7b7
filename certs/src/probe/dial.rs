//! Reaching the server for a probe: resolve and connect directly, telling
//! "refused", "timed out" and "name resolution failed" apart; or open a
//! tunnel through an HTTP CONNECT proxy with `passthru-net`'s CONNECT
//! client (the same code the proxy's `via` uses), keeping the bytes the proxy sent
//! after its answer in front of the TLS stream.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use passthru_net::ViaUrl;
use passthru_net::dial::DialError;
use passthru_net::tunnel::{self, HopError};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};

use super::report::Step;

/// A connected stream, with bytes already received for it in front.
pub(super) type Prefixed = passthru_net::Prefixed<TcpStream>;

/// A step that went well or badly, with its one-line detail.
pub(super) type Outcome = (Step, Result<String, String>);

/// How far reaching the server got.
pub(super) struct Reached {
    /// The steps taken, in order (resolve, tcp, connect).
    pub(super) steps: Vec<Outcome>,
    /// The stream when every step worked.
    pub(super) stream: Option<Prefixed>,
}

/// Resolves `host` and connects to `port` on the first address that
/// answers, each step within `limit`.
pub(super) async fn direct(host: &str, port: u16, limit: Duration) -> Reached {
    let mut steps = Vec::new();
    let addrs: Vec<SocketAddr> = match host.parse() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => match timeout(limit, tokio::net::lookup_host((host, port))).await {
            Err(_) => {
                return failed(
                    steps,
                    Step::Resolve,
                    format!(
                        "name resolution for {host} gave no answer within {}",
                        human(limit)
                    ),
                );
            }
            Ok(Err(e)) => {
                return failed(
                    steps,
                    Step::Resolve,
                    format!("name resolution failed for {host}: {e}"),
                );
            }
            Ok(Ok(addrs)) => {
                let addrs: Vec<SocketAddr> = addrs.collect();
                let shown: Vec<String> = addrs.iter().map(ToString::to_string).collect();
                steps.push((Step::Resolve, Ok(format!("{host} is {}", shown.join(", ")))));
                addrs
            }
        },
    };
    let deadline = Instant::now() + limit;
    let started = Instant::now();
    let mut last = None;
    for addr in &addrs {
        match timeout_at(deadline, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                steps.push((
                    Step::Tcp,
                    Ok(format!("connected to {addr} in {}", millis(started))),
                ));
                return Reached {
                    steps,
                    stream: Some(Prefixed::new(Vec::new(), stream)),
                };
            }
            Ok(Err(e)) => last = Some((*addr, e)),
            Err(_) => {
                return failed(
                    steps,
                    Step::Tcp,
                    format!(
                        "timed out: no TCP answer from {addr} within {} (filtered port or host down)",
                        human(limit)
                    ),
                );
            }
        }
    }
    let detail = match last {
        Some((addr, e)) => tcp_error(&addr.to_string(), &e),
        None => format!("{host} resolved to no address"),
    };
    failed(steps, Step::Tcp, detail)
}

/// Opens a tunnel to `target` through `via` within `limit`.
pub(super) async fn via(proxy: &ViaUrl, target: &str, limit: Duration) -> Reached {
    let started = Instant::now();
    match tunnel::tunnel(proxy, target, limit).await {
        Ok(tunnel) => {
            let peer = tunnel
                .stream
                .peer_addr()
                .map_or_else(|_| proxy.proxy.to_string(), |a| a.to_string());
            let steps = vec![
                (
                    Step::Tcp,
                    Ok(format!("connected to proxy {proxy} ({peer})")),
                ),
                (
                    Step::Connect,
                    Ok(format!(
                        "{target} through {proxy}: {} in {}",
                        tunnel.status_line,
                        millis(started)
                    )),
                ),
            ];
            Reached {
                steps,
                stream: Some(Prefixed::new(tunnel.leftover, tunnel.stream)),
            }
        }
        Err(HopError::Dial { via, source }) => {
            let (step, detail) = match &source {
                DialError::Resolve { .. } => (Step::Resolve, format!("proxy {via}: {source}")),
                DialError::Timeout { .. } => {
                    (Step::Tcp, format!("timed out: proxy {via}: {source}"))
                }
                DialError::Connect { addr, source, .. } => (
                    Step::Tcp,
                    format!("proxy {via}: {}", tcp_error(&addr.to_string(), source)),
                ),
            };
            failed(Vec::new(), step, detail)
        }
        Err(e) => failed(
            vec![(Step::Tcp, Ok(format!("connected to proxy {proxy}")))],
            Step::Connect,
            e.to_string(),
        ),
    }
}

fn tcp_error(addr: &str, e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => {
            format!("connection refused by {addr}: nothing listens there (or a firewall rejects)")
        }
        io::ErrorKind::TimedOut => format!("timed out connecting to {addr}: {e}"),
        _ => format!("cannot connect to {addr}: {e}"),
    }
}

fn failed(mut steps: Vec<Outcome>, step: Step, detail: String) -> Reached {
    steps.push((step, Err(detail)));
    Reached {
        steps,
        stream: None,
    }
}

/// Elapsed time since `start` in milliseconds, for step details.
pub(super) fn millis(start: Instant) -> String {
    format!("{:.1} ms", start.elapsed().as_secs_f64() * 1000.0)
}

/// A duration for people ("5s", "1s 500ms").
pub(super) fn human(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refused_is_told_apart() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let reached = direct("127.0.0.1", port, Duration::from_secs(5)).await;
        assert!(reached.stream.is_none());
        let (step, result) = &reached.steps[0];
        assert_eq!(*step, Step::Tcp);
        let detail = result.as_ref().unwrap_err();
        assert!(
            detail.starts_with(&format!("connection refused by 127.0.0.1:{port}")),
            "{detail}"
        );
    }

    #[tokio::test]
    async fn resolution_failure_is_its_own_step() {
        // A name the resolver refuses locally, so no query leaves the host.
        let reached = direct("bad\0name", 443, Duration::from_secs(5)).await;
        assert!(reached.stream.is_none());
        assert_eq!(reached.steps.len(), 1);
        let (step, result) = &reached.steps[0];
        assert_eq!(*step, Step::Resolve);
        let detail = result.as_ref().unwrap_err();
        assert!(
            detail.starts_with("name resolution failed for bad\0name: "),
            "{detail}"
        );
    }
}
