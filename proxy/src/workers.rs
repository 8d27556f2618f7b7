//! The runtime shape: single-threaded tokio runtimes, one per thread, and
//! where each accepted connection runs.
//!
//! The main thread's runtime runs the server (admin port, health checks,
//! reloads, drain) and every accept loop; [`Workers`] adds one thread per
//! extra core. A connection stays on the thread it was placed on until it
//! ends: no work stealing, no wake-up of another thread when one of its
//! sockets becomes ready, no lock shared by the connections of different
//! threads. [`Placement`] keeps a new connection on the accepting thread
//! unless another thread has [`SPREAD_MARGIN`] fewer open connections: a
//! light load stays on one thread, which costs the least CPU per
//! connection (nothing crosses threads), and a heavy one spreads over all.
//!
//! Only one thread accepts. Every thread accepting on the same socket
//! woke all of them for each new connection (all but one then found
//! nothing to accept): on the reference machine that cost more CPU per
//! new connection than one thread alone (docs/benchmarking.md). A
//! connection placed on another thread leaves the accepting thread's event
//! loop and joins its own (one more `epoll_ctl`).

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::runtime::{Builder, Handle};
use tokio_util::sync::CancellationToken;

/// Threads, each with its own single-threaded runtime, that run the
/// connections [`Placement`] puts on them.
#[derive(Debug)]
pub struct Workers {
    handles: Vec<Handle>,
    threads: Vec<JoinHandle<()>>,
    stop: CancellationToken,
}

impl Workers {
    /// Start `count` worker threads (none when `count` is 0).
    pub fn start(count: usize) -> io::Result<Workers> {
        let stop = CancellationToken::new();
        let mut workers = Workers {
            handles: Vec::with_capacity(count),
            threads: Vec::with_capacity(count),
            stop: stop.clone(),
        };
        for n in 1..=count {
            let runtime = Builder::new_current_thread().enable_all().build()?;
            runtime.spawn(tick());
            workers.handles.push(runtime.handle().clone());
            let stop = stop.clone();
            let thread = std::thread::Builder::new()
                .name(format!("passthru-{n}"))
                .spawn(move || {
                    runtime.block_on(stop.cancelled());
                    // Connections are over by now (the server waits for
                    // them); a blocking lookup still running is not waited
                    // for long.
                    runtime.shutdown_timeout(SHUTDOWN_LIMIT);
                });
            match thread {
                Ok(thread) => workers.threads.push(thread),
                Err(e) => {
                    workers.handles.pop();
                    workers.stop();
                    return Err(e);
                }
            }
        }
        Ok(workers)
    }

    /// The runtimes new connections may be placed on.
    pub fn handles(&self) -> Vec<Handle> {
        self.handles.clone()
    }

    /// Stop every worker thread and wait for it.
    pub fn stop(self) {
        self.stop.cancel();
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

/// Keep the thread's next timer wake-up at most [`TICK`] away, forever.
///
/// tokio wakes a runtime's event loop through its eventfd (a `write(2)`,
/// then one more `epoll_wait`) whenever a new timer is due before the
/// wake-up the loop last planned, even from the loop's own thread; with no
/// other timer due soon, every connection's first timer (the connect
/// timeout, the ClientHello deadline) did that, once per connection. With
/// a timer that is never more than a second away, timers of a second or
/// more never do. Run one per runtime.
pub async fn tick() {
    loop {
        tokio::time::sleep(TICK).await;
    }
}

/// The period of [`tick`].
const TICK: Duration = Duration::from_secs(1);

/// Where new connections run: the accepting thread or a worker, by open
/// connections.
#[derive(Debug, Clone)]
pub struct Placement {
    /// The accepting thread.
    here: Arc<Thread>,
    /// The workers.
    others: Arc<[Thread]>,
}

#[derive(Debug)]
struct Thread {
    /// `None`: the accepting thread itself.
    handle: Option<Handle>,
    open: Arc<AtomicUsize>,
    /// The thread's own child of the stop token: checking a token takes a
    /// lock, which then is never shared with another thread's connections.
    stop: CancellationToken,
}

/// A new connection's thread.
#[derive(Debug)]
pub struct Placed {
    /// Where to spawn it; `None`: on the accepting thread.
    pub handle: Option<Handle>,
    /// Counts it as open on that thread until dropped.
    pub open: Open,
    /// The stop token its connection watches.
    pub stop: CancellationToken,
}

/// One open connection on a thread, counted until dropped.
#[derive(Debug)]
pub struct Open(Option<Arc<AtomicUsize>>);

impl Open {
    /// Counted nowhere (tests, embedding).
    pub fn none() -> Open {
        Open(None)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        if let Some(open) = &self.0 {
            open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Placement {
    /// The accepting thread and `workers`; `stop` ends every connection.
    pub fn new(workers: &[Handle], stop: &CancellationToken) -> Placement {
        let thread = |handle| Thread {
            handle,
            open: Arc::default(),
            stop: stop.child_token(),
        };
        Placement {
            here: Arc::new(thread(None)),
            others: workers.iter().map(|h| thread(Some(h.clone()))).collect(),
        }
    }

    /// The thread for a new connection: the accepting one, unless another
    /// has at least [`SPREAD_MARGIN`] fewer open connections.
    pub fn pick(&self) -> Placed {
        let count = |t: &Thread| t.open.load(Ordering::Relaxed);
        let here = &*self.here;
        let fewest = self.others.iter().min_by_key(|t| count(t)).unwrap_or(here);
        let chosen = if count(here) >= count(fewest) + SPREAD_MARGIN {
            fewest
        } else {
            here
        };
        chosen.open.fetch_add(1, Ordering::Relaxed);
        Placed {
            handle: chosen.handle.clone(),
            open: Open(Some(Arc::clone(&chosen.open))),
            stop: chosen.stop.clone(),
        }
    }
}

/// How many more open connections the accepting thread keeps before a new
/// one goes to a less busy thread.
pub const SPREAD_MARGIN: usize = 16;

/// How many threads serve connections when `--threads` is not given: one
/// per two CPUs this process may use (its affinity and cgroup quota
/// included), at least one. Most of a passthrough proxy's CPU is the
/// kernel's (TCP, on every core); a thread per CPU left each thread idle
/// and waking more often than working: on 2 CPUs, 2 threads cost 20 % more
/// CPU per new connection than 1, for no more throughput
/// (docs/benchmarking.md, "The runtime shape").
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .div_ceil(2)
}

/// Longest wait for a worker's blocking tasks at exit.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_stay_on_the_accepting_thread_until_it_is_busier_by_the_margin() {
        let worker = Builder::new_current_thread().build().unwrap();
        let stop = CancellationToken::new();
        let placement = Placement::new(&[worker.handle().clone()], &stop);
        let mut here = Vec::new();
        for _ in 0..SPREAD_MARGIN {
            let placed = placement.pick();
            assert!(placed.handle.is_none(), "light load stays here");
            here.push(placed);
        }
        let moved = placement.pick();
        assert!(moved.handle.is_some(), "the busier thread gives one away");
        // One closes here: the next stays.
        here.pop();
        assert!(placement.pick().handle.is_none());
        // Every thread's token is a child of the one stop token.
        stop.cancel();
        assert!(moved.stop.is_cancelled() && here[0].stop.is_cancelled());
    }

    #[test]
    fn without_workers_everything_runs_here() {
        let placement = Placement::new(&[], &CancellationToken::new());
        let held: Vec<Placed> = (0..100).map(|_| placement.pick()).collect();
        assert!(held.iter().all(|p| p.handle.is_none()));
    }
}
