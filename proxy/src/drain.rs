//! The server's lifecycle phase, published on a `watch` channel: the admin
//! endpoint reads it (`/healthz` turns 503 from `Draining` on), the server
//! advances it. [`Monitors`]: who polls `/healthz` and how many 503
//! answers each has had, for `monitor_fall`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Where the server is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Configuration loaded, listeners not yet bound.
    Starting,
    /// Every listener bound and accepting.
    Serving,
    /// Shutdown requested: still accepting for `drain_delay`, `/healthz` says 503.
    Draining,
    /// Listeners closed; waiting up to `drain_timeout` for open connections.
    Stopping,
    /// Done.
    Stopped,
}

impl Phase {
    /// Lower-case name, for logs and the admin endpoint.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Serving => "serving",
            Phase::Draining => "draining",
            Phase::Stopping => "stopping",
            Phase::Stopped => "stopped",
        }
    }
}

/// Who polls `/healthz`, and how many 503 answers each has had since the
/// drain began: with `monitor_fall = N` the listeners close as soon as
/// every monitor seen in the last minute has had N of them. Monitors are
/// told apart by IP address (a balancer's checks come from one address,
/// each from a new port). Bounded: beyond [`MAX_MONITORS`] addresses, new
/// ones are not tracked.
#[derive(Debug, Default)]
pub struct Monitors {
    seen: Mutex<HashMap<IpAddr, Seen>>,
    changed: Notify,
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    last: Instant,
    draining_answers: u32,
}

/// Most monitor addresses tracked at once.
pub const MAX_MONITORS: usize = 1024;
/// How recently a monitor must have polled to count.
pub const MONITOR_WINDOW: Duration = Duration::from_secs(60);

impl Monitors {
    /// Record one `/healthz` answer to `peer`; `draining` when it was the
    /// drain's 503.
    pub fn record(&self, peer: IpAddr, draining: bool) {
        let now = Instant::now();
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        if !seen.contains_key(&peer) && seen.len() >= MAX_MONITORS {
            seen.retain(|_, s| now.duration_since(s.last) < MONITOR_WINDOW);
            if seen.len() >= MAX_MONITORS {
                return;
            }
        }
        let entry = seen.entry(peer).or_insert(Seen {
            last: now,
            draining_answers: 0,
        });
        entry.last = now;
        if draining {
            entry.draining_answers = entry.draining_answers.saturating_add(1);
        }
        drop(seen);
        self.changed.notify_waiters();
    }

    /// The monitors seen in the last minute and the fewest 503 answers any
    /// of them has had; `None` when no monitor was seen.
    pub fn fewest(&self) -> Option<(usize, u32)> {
        let now = Instant::now();
        let seen = self.seen.lock().ok()?;
        let recent = seen
            .values()
            .filter(|s| now.duration_since(s.last) < MONITOR_WINDOW);
        let (count, fewest) = recent.fold((0, u32::MAX), |(n, f), s| {
            (n + 1, f.min(s.draining_answers))
        });
        (count > 0).then_some((count, fewest))
    }

    /// Resolves once every monitor seen in the last minute has had `fall`
    /// answers of 503, returning how many monitors that was. Never resolves
    /// while no monitor has been seen.
    pub async fn fallen(&self, fall: u32) -> usize {
        loop {
            let changed = self.changed.notified();
            if let Some((count, fewest)) = self.fewest()
                && fewest >= fall
            {
                return count;
            }
            // A monitor may also leave the window without a new answer.
            let _ = tokio::time::timeout(RECHECK, changed).await;
        }
    }
}

const RECHECK: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_drain_ends_when_every_recent_monitor_has_had_fall_503s() {
        let monitors = Monitors::default();
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        assert_eq!(monitors.fewest(), None);
        monitors.record(a, false);
        monitors.record(b, false);
        for _ in 0..3 {
            monitors.record(a, true);
        }
        assert_eq!(monitors.fewest(), Some((2, 0)));
        let waiting = monitors.fallen(3);
        tokio::pin!(waiting);
        assert!(
            tokio::time::timeout(Duration::from_secs(5), &mut waiting)
                .await
                .is_err()
        );
        for _ in 0..3 {
            monitors.record(b, true);
        }
        assert_eq!(waiting.await, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_monitor_silent_for_a_minute_no_longer_counts() {
        let monitors = Monitors::default();
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        monitors.record(a, false);
        tokio::time::advance(Duration::from_secs(30)).await;
        monitors.record(b, true);
        assert_eq!(monitors.fewest(), Some((2, 0)));
        assert_eq!(monitors.fallen(1).await, 1);
    }

    #[test]
    fn at_most_max_monitors_are_tracked() {
        let monitors = Monitors::default();
        for i in 0..(MAX_MONITORS as u32 + 10) {
            monitors.record(IpAddr::from(i.to_be_bytes()), false);
        }
        assert_eq!(monitors.fewest(), Some((MAX_MONITORS, 0)));
    }
}
