//! The stdout writer of the access log: connections append their line to
//! one shared buffer (a short lock, no system call, no wake-up); a thread
//! takes the whole buffer every [`BATCH_WAIT`] and writes it with one
//! `write(2)`. While lines keep coming the thread wakes on its own timer,
//! so a connection's thread never makes a call to wake it (nor is it
//! preempted by the writer it woke); once a whole wait passed without a
//! line, the thread sleeps until the next line wakes it. A lone line
//! reaches stdout within [`BATCH_WAIT`]. A stdout that does not keep up
//! stalls only that thread:
//! once [`MAX_PENDING`] bytes wait, further lines are refused (the caller
//! counts them as dropped).

// A plain thread with real-time condition-variable waits: tokio's clock
// (paused in tests) does not apply here.
#![allow(clippy::disallowed_types)]

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The connections' end of the writer. The thread ends when the last
/// clone is dropped (after writing what is pending).
#[derive(Debug)]
pub(super) struct Writer {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<Pending>,
    /// The thread waits on it for lines and flush requests; `flush` waits
    /// on it for the thread's progress.
    changed: Condvar,
}

#[derive(Debug, Default)]
struct Pending {
    /// Lines not yet taken by the thread, each ending in `\n`.
    buf: Vec<u8>,
    /// Flush requests made (a counter, so that waiters can tell theirs).
    asked: u64,
    /// Flush requests the thread has completed.
    done: u64,
    /// Every `Writer` is gone: write what is left, then end.
    closed: bool,
    /// The thread sleeps until woken (no timer): the next line wakes it.
    parked: bool,
}

impl Writer {
    /// Start the thread writing to `out`; `None` when it cannot start.
    pub(super) fn start(out: impl Write + Send + 'static) -> Option<Writer> {
        let shared = Arc::new(Shared::default());
        let theirs = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || run(&theirs, out))
            .ok()?;
        Some(Writer { shared })
    }

    /// Append one line (without its `\n`). `false` when it was refused
    /// because [`MAX_PENDING`] bytes are already waiting.
    pub(super) fn push(&self, line: &[u8]) -> bool {
        let mut state = lock(&self.shared.state);
        let before = state.buf.len();
        if before + line.len() + 1 > MAX_PENDING {
            return false;
        }
        state.buf.extend_from_slice(line);
        state.buf.push(b'\n');
        let wake = (before == 0 && state.parked)
            || (before < BATCH_BYTES && state.buf.len() >= BATCH_BYTES);
        drop(state);
        if wake {
            // A sleeping thread waits for the first line, a ticking one for
            // a full batch: not for every line.
            self.shared.changed.notify_all();
        }
        true
    }

    /// Wait until every line pushed so far is written and `out` flushed,
    /// for at most `limit`. Returns whether it finished in time.
    pub(super) fn flush(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut state = lock(&self.shared.state);
        state.asked += 1;
        let mine = state.asked;
        self.shared.changed.notify_all();
        while state.done < mine {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = match self.shared.changed.wait_timeout(state, left) {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        true
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        lock(&self.shared.state).closed = true;
        self.shared.changed.notify_all();
    }
}

/// The thread: wait for a first line (or a flush), give the batch
/// [`BATCH_WAIT`] to grow, take it all, write it at once.
fn run(shared: &Shared, mut out: impl Write) {
    let mut batch = Vec::new();
    // Whether the last wait brought no line: then sleep until one comes.
    let mut idle = true;
    loop {
        let mut state = lock(&shared.state);
        if idle {
            state.parked = true;
            while state.buf.is_empty() && state.asked == state.done && !state.closed {
                state = wait(&shared.changed, state, None);
            }
            state.parked = false;
        }
        let hurry = |s: &Pending| s.asked != s.done || s.closed || s.buf.len() >= BATCH_BYTES;
        if !hurry(&state) {
            let until = Instant::now() + BATCH_WAIT;
            while !hurry(&state) {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                state = wait(&shared.changed, state, Some(left));
            }
        }
        std::mem::swap(&mut batch, &mut state.buf);
        let (asked, closed) = (state.asked, state.closed);
        drop(state);
        idle = batch.is_empty();
        if !batch.is_empty() {
            let _ = out.write_all(&batch);
        }
        let _ = out.flush();
        batch.clear();
        if batch.capacity() > KEEP_CAPACITY {
            batch = Vec::new();
        }
        let mut state = lock(&shared.state);
        // Only a flush (or the last writer's drop) waits for this.
        let waited = state.done != asked || closed;
        state.done = asked;
        drop(state);
        if waited {
            shared.changed.notify_all();
        }
        if closed {
            return;
        }
    }
}

fn lock(state: &Mutex<Pending>) -> MutexGuard<'_, Pending> {
    // A panic while holding the lock leaves the buffer consistent (plain
    // appends): keep logging.
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn wait<'a>(
    changed: &Condvar,
    state: MutexGuard<'a, Pending>,
    limit: Option<Duration>,
) -> MutexGuard<'a, Pending> {
    match limit {
        None => changed
            .wait(state)
            .unwrap_or_else(std::sync::PoisonError::into_inner),
        Some(limit) => match changed.wait_timeout(state, limit) {
            Ok((state, _)) => state,
            Err(poisoned) => poisoned.into_inner().0,
        },
    }
}

/// How long the thread lets a batch grow after its first line.
pub(super) const BATCH_WAIT: Duration = Duration::from_millis(10);

/// A batch this large is written without waiting out [`BATCH_WAIT`].
const BATCH_BYTES: usize = 64 * 1024;

/// Bytes waiting for a stalled stdout before lines are dropped (about
/// 10,000 lines).
pub(super) const MAX_PENDING: usize = 4 * 1024 * 1024;

/// The thread's batch buffer is given back when a burst grew it past this.
const KEEP_CAPACITY: usize = 256 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Write` the test can read back, or hold stalled.
    #[derive(Clone, Default)]
    struct Out {
        bytes: Arc<Mutex<Vec<u8>>>,
        writes: Arc<Mutex<usize>>,
        stall: Arc<Mutex<()>>,
    }

    impl Write for Out {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let _stalled = self.stall.lock().unwrap();
            *self.writes.lock().unwrap() += 1;
            self.bytes.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_arrive_whole_in_order_and_in_few_writes() {
        let out = Out::default();
        let writer = Writer::start(out.clone()).unwrap();
        for n in 0..1000 {
            assert!(writer.push(format!("line {n}").as_bytes()));
        }
        assert!(writer.flush(Duration::from_secs(10)));
        let text = String::from_utf8(out.bytes.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1000);
        assert_eq!(lines[999], "line 999");
        assert!(
            lines
                .iter()
                .enumerate()
                .all(|(n, l)| *l == format!("line {n}"))
        );
        // Pushed faster than one batch wait: far fewer writes than lines.
        assert!(*out.writes.lock().unwrap() < 100);
    }

    #[test]
    fn lines_reach_stdout_whether_the_thread_ticks_or_sleeps() {
        let out = Out::default();
        let writer = Writer::start(out.clone()).unwrap();
        // Waits on the thread's condition variable, a few milliseconds at a
        // time, for at most 10 s.
        let within = |what: &str, done: &dyn Fn(&Pending) -> bool| {
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut state = lock(&writer.shared.state);
            while !done(&state) {
                assert!(Instant::now() < deadline, "{what}");
                state = wait(
                    &writer.shared.changed,
                    state,
                    Some(Duration::from_millis(5)),
                );
            }
        };
        let lines = || {
            out.bytes
                .lock()
                .unwrap()
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
        };
        // One after the other: each after the first comes while the thread
        // ticks, and is written with no wake-up.
        for n in 1..=5 {
            assert!(writer.push(b"tick"));
            within("a line was not written", &|_| lines() == n);
        }
        // Once a wait passed without a line, the thread sleeps; the next
        // line wakes it.
        within("the thread did not go to sleep", &|state| state.parked);
        assert!(writer.push(b"wake"));
        within("the waking line was not written", &|_| lines() == 6);
    }

    #[test]
    fn a_stalled_stdout_refuses_lines_instead_of_blocking() {
        let out = Out::default();
        let stalled = out.stall.lock().unwrap();
        let writer = Writer::start(out.clone()).unwrap();
        let line = vec![b'x'; 1000];
        let mut refused = 0;
        for _ in 0..(2 * MAX_PENDING / 1000 + 10) {
            if !writer.push(&line) {
                refused += 1;
            }
        }
        assert!(refused > 0, "nothing refused");
        // The flush cannot finish while stdout is stalled: bounded.
        assert!(!writer.flush(Duration::from_millis(50)));
        drop(stalled);
        assert!(writer.flush(Duration::from_secs(10)));
        assert!(writer.push(b"after"));
    }

    #[test]
    fn dropping_the_last_writer_writes_what_is_left() {
        let out = Out::default();
        let writer = Writer::start(out.clone()).unwrap();
        assert!(writer.push(b"last"));
        let shared = Arc::clone(&writer.shared);
        drop(writer);
        // The thread notifies after its last write (bounded wait).
        let state = lock(&shared.state);
        let (state, _) = shared
            .changed
            .wait_timeout_while(state, Duration::from_secs(10), |_| {
                out.bytes.lock().unwrap().is_empty()
            })
            .unwrap();
        drop(state);
        assert_eq!(&*out.bytes.lock().unwrap(), b"last\n");
    }
}
