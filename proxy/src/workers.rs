//! The runtime shape: one single-threaded tokio runtime per thread, each
//! accepting on every listening socket and running the connections it
//! accepted to their end.
//!
//! The main thread's runtime runs the server (admin port, health checks,
//! reloads, drain) and accepts too; [`Workers`] adds one thread per extra
//! core. A connection never moves between threads: no work stealing, no
//! wake-up of another thread when a socket becomes ready, no lock shared by
//! the connections of different threads. This is the shape of HAProxy's
//! and nginx's workers; measured against tokio's multi-thread runtime on the
//! same machine it costs less CPU per request and per connection (see
//! docs/benchmarking.md).
//!
//! Every thread accepts on a duplicate of the *same* listening socket (not
//! one `SO_REUSEPORT` socket each): a connection waiting in the backlog
//! is taken by whichever thread is free, and a handoff or socket activation
//! passes one socket per listener, whose backlog no closing process can
//! drop.

use std::io;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::runtime::{Builder, Handle};
use tokio_util::sync::CancellationToken;

/// Threads, each with its own single-threaded runtime, that run the accept
/// loops and connections the server spreads over them.
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

    /// The runtimes to spread accept loops over.
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

/// How many threads serve connections when `--threads` is not given: one
/// per CPU this process may use (its affinity and cgroup quota included).
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// Longest wait for a worker's blocking tasks at exit.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(1);
