//! The runtime shape: single-threaded tokio runtimes, one per thread, and
//! where each accepted connection runs.
//!
//! The main thread's runtime runs the server (admin port, health checks,
//! reloads, drain) and every accept loop; [`Workers`] adds one thread per
//! extra core. No work stealing: a connection's sockets and timers are on
//! one thread's event loop at a time, no wake-up crosses threads, no lock
//! is shared by the connections of different threads.
//!
//! [`Placement`] keeps a new connection on the accepting thread unless
//! another thread has [`SPREAD_MARGIN`] fewer open connections: a handshake
//! there waits for no other thread, and a light load costs what one thread
//! costs. A connection that lasts (a keep-alive client, an agent) moves,
//! at a quiet moment, to the thread with the fewest open connections when
//! its own has [`MOVE_MARGIN`] more ([`Placement::move_from`]): long-lived
//! connections spread over every thread.
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
use tokio_util::task::{TaskTracker, task_tracker::TaskTrackerToken};

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

/// Where connections run: new ones on the accepting thread or a worker,
/// by open connections; lasting ones moved to a less busy thread.
#[derive(Debug, Clone)]
pub struct Placement(Arc<Threads>);

#[derive(Debug)]
struct Threads {
    /// The accepting thread.
    here: Thread,
    /// The workers.
    others: Box<[Thread]>,
    /// Counts every connection task, moved ones included (drain waits on it).
    tracker: TaskTracker,
}

#[derive(Debug)]
struct Thread {
    /// The thread's runtime (`None` only for an accepting thread outside
    /// any runtime: tests).
    runtime: Option<Handle>,
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

/// A lasting connection's new thread (see [`Placement::move_from`]).
#[derive(Debug)]
pub struct Moved {
    /// The runtime to continue on.
    pub runtime: Handle,
    /// Counts it as open there (the old count goes when this replaces it).
    pub open: Open,
    /// The stop token its connection watches there.
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

impl Thread {
    fn count(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}

impl Placement {
    /// The accepting thread (the runtime this is called on) and `workers`;
    /// `stop` ends every connection; `tracker` counts their tasks.
    pub fn new(workers: &[Handle], stop: &CancellationToken, tracker: &TaskTracker) -> Placement {
        let thread = |runtime| Thread {
            runtime,
            open: Arc::default(),
            stop: stop.child_token(),
        };
        Placement(Arc::new(Threads {
            here: thread(Handle::try_current().ok()),
            others: workers.iter().map(|h| thread(Some(h.clone()))).collect(),
            tracker: tracker.clone(),
        }))
    }

    /// The thread for a new connection: the accepting one, unless another
    /// has at least [`SPREAD_MARGIN`] fewer open connections.
    pub fn pick(&self) -> Placed {
        let threads = &*self.0;
        let here = &threads.here;
        let fewest = threads
            .others
            .iter()
            .min_by_key(|t| t.count())
            .unwrap_or(here);
        let chosen = if here.count() >= fewest.count() + SPREAD_MARGIN {
            fewest
        } else {
            here
        };
        chosen.open.fetch_add(1, Ordering::Relaxed);
        Placed {
            // The accepting thread spawns its own connections.
            handle: if std::ptr::eq(chosen, here) {
                None
            } else {
                chosen.runtime.clone()
            },
            open: Open(Some(Arc::clone(&chosen.open))),
            stop: chosen.stop.clone(),
        }
    }

    /// The thread with the fewest open connections, when the one `open`
    /// counts on has at least [`MOVE_MARGIN`] more.
    fn lighter(&self, open: &Open) -> Option<&Thread> {
        let open = open.0.as_ref()?;
        let threads = &*self.0;
        let all = || std::iter::once(&threads.here).chain(threads.others.iter());
        let mine = all().find(|t| Arc::ptr_eq(&t.open, open))?;
        let fewest = all().min_by_key(|t| t.count())?;
        (mine.count() >= fewest.count() + MOVE_MARGIN && fewest.runtime.is_some()).then_some(fewest)
    }

    /// How many threads run connections (the accepting one included).
    pub fn threads(&self) -> usize {
        1 + self.0.others.len()
    }

    /// Whether a connection counted by `open` should move to a less busy
    /// thread (see [`Placement::move_from`]).
    pub fn wants_move(&self, open: &Open) -> bool {
        self.lighter(open).is_some()
    }

    /// Move a lasting connection counted by `open` to the thread with the
    /// fewest open connections, when its own has at least [`MOVE_MARGIN`]
    /// more: counted there from now on.
    ///
    /// New connections stay on the accepting thread ([`Placement::pick`]),
    /// where a handshake waits for no other thread's wake-up; those that
    /// last (keep-alive, agents) spread over every thread, so that a busy
    /// one does not serve them alone.
    pub fn move_from(&self, open: &Open) -> Option<Moved> {
        let to = self.lighter(open)?;
        let runtime = to.runtime.clone()?;
        to.open.fetch_add(1, Ordering::Relaxed);
        Some(Moved {
            runtime,
            open: Open(Some(Arc::clone(&to.open))),
            stop: to.stop.clone(),
        })
    }

    /// Counts a task the drain waits for (the copy of a forwarded
    /// connection, on whichever thread it runs) until dropped.
    pub fn token(&self) -> TaskTrackerToken {
        self.0.tracker.token()
    }
}

/// How many more open connections the accepting thread keeps before a new
/// one goes to a less busy thread: far above a burst of new connections
/// (`wrk -c50 -H "Connection: close"` kept more than 64 open at times).
/// A handshake placed on another thread waits for that thread to wake, and
/// clients that poll during the handshake pay for it: at 64, the few
/// connections placed on the second thread cost about 10 % of new
/// connections per second (docs/benchmarking.md, "The runtime shape").
/// Lasting connections spread anyway ([`Placement::move_from`]).
pub const SPREAD_MARGIN: usize = 256;

/// How many more open connections a thread has before one of its lasting
/// connections moves to the least busy thread (a move narrows the gap by
/// two).
pub const MOVE_MARGIN: usize = 2;

/// How many threads serve connections when `--threads` is not given: one
/// per CPU this process may use (its affinity and cgroup quota included).
/// New connections stay on the accepting thread until it is busier by
/// [`SPREAD_MARGIN`], so a light load of short connections costs what one
/// thread costs; lasting connections spread over all of them
/// ([`Placement::move_from`]; docs/benchmarking.md, "The runtime shape").
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
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
        let placement = Placement::new(&[worker.handle().clone()], &stop, &TaskTracker::new());
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
        let placement = Placement::new(&[], &CancellationToken::new(), &TaskTracker::new());
        assert_eq!(placement.threads(), 1);
        let held: Vec<Placed> = (0..100).map(|_| placement.pick()).collect();
        assert!(held.iter().all(|p| p.handle.is_none()));
    }

    #[test]
    fn a_lasting_connection_moves_to_the_least_busy_thread_until_they_are_level() {
        let home = Builder::new_current_thread().build().unwrap();
        let worker = Builder::new_current_thread().build().unwrap();
        let tracker = TaskTracker::new();
        let placement = home.block_on(async {
            Placement::new(
                &[worker.handle().clone()],
                &CancellationToken::new(),
                &tracker,
            )
        });
        // Six open on the accepting thread (under the spread margin).
        let mut open: Vec<Open> = (0..6).map(|_| placement.pick().open).collect();
        assert!(placement.wants_move(&open[0]));
        let mut moved = Vec::new();
        for conn in &mut open {
            match placement.move_from(conn) {
                Some(to) => {
                    assert_eq!(to.runtime.id(), worker.handle().id());
                    *conn = to.open;
                    moved.push(placement.token());
                }
                None => break,
            }
        }
        // 6 and 0 → 3 and 3: each move narrows the gap by two.
        assert_eq!(moved.len(), 3);
        assert!(open.iter().all(|o| !placement.wants_move(o)));
        assert_eq!(tracker.len(), 3, "tokens count as tasks");
        // The three on the worker close: those left here want to go there.
        drop(open.drain(..3).collect::<Vec<_>>());
        drop(moved);
        assert!(open.iter().all(|o| placement.wants_move(o)));
        let to = placement.move_from(&open[0]).unwrap();
        assert_eq!(to.runtime.id(), worker.handle().id());
        // Not counted anywhere: never moves.
        assert!(placement.move_from(&Open::none()).is_none());
    }
}
