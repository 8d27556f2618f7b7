//! Diagnostics: a tracing subscriber writing to stderr, filtered by
//! `RUST_LOG` (default `info`), as text or JSON. The access log is not
//! here: see [`crate::access_log`].
//!
//! Diagnostics never block forwarding: a worker formats its line and hands
//! it to a writer thread over a bounded queue ([`QUEUE`] lines); when the
//! queue is full (stderr not read, a slow terminal) the line is dropped and
//! counted, and the next line written says how many were dropped. Warnings
//! that repeat for every connection (a dead server) go through [`allow`]:
//! at most one line per key every [`EVERY`], with the count of the lines
//! suppressed since.

use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::access_log::LogFormat;

/// Install the global subscriber. Safe to call more than once (later calls
/// are ignored).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let writer = Lines::stderr();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(false).try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Diagnostic lines dropped so far because stderr did not keep up.
pub fn dropped() -> u64 {
    COUNTS.dropped.load(Ordering::Relaxed)
}

/// Wait (at most `limit`) until the lines queued so far are written: called
/// once at exit, so that the last lines are not lost. Blocks: only for the
/// main thread after the runtime has stopped.
#[allow(clippy::disallowed_methods)]
pub fn flush(limit: Duration) {
    let until = Instant::now() + limit;
    let queued = COUNTS.queued.load(Ordering::Relaxed);
    while COUNTS.written.load(Ordering::Relaxed) < queued && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether a repeating warning keyed `key` (e.g. `backend/server`) may be
/// written now: `Some(suppressed)` (the lines left out since the last one)
/// at most once per [`EVERY`] per key, `None` otherwise. The keys kept are
/// bounded ([`MAX_KEYS`]; past it the table starts over).
pub fn allow(key: &str) -> Option<u64> {
    static SEEN: OnceLock<Mutex<HashMap<String, (Instant, u64)>>> = OnceLock::new();
    let seen = SEEN.get_or_init(Mutex::default);
    let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
    let now = Instant::now();
    if let Some((last, suppressed)) = seen.get_mut(key) {
        if now.duration_since(*last) < EVERY {
            *suppressed += 1;
            return None;
        }
        let count = *suppressed;
        *last = now;
        *suppressed = 0;
        return Some(count);
    }
    if seen.len() >= MAX_KEYS {
        seen.clear();
    }
    seen.insert(key.to_owned(), (now, 0));
    Some(0)
}

/// A repeating warning is written at most this often per key.
pub const EVERY: Duration = Duration::from_secs(10);
/// Keys [`allow`] remembers at most.
pub const MAX_KEYS: usize = 4096;
/// Diagnostic lines waiting for stderr at most.
pub const QUEUE: usize = 4096;

#[derive(Default)]
struct Counts {
    queued: AtomicU64,
    written: AtomicU64,
    dropped: AtomicU64,
}

static COUNTS: Counts = Counts {
    queued: AtomicU64::new(0),
    written: AtomicU64::new(0),
    dropped: AtomicU64::new(0),
};

/// The subscriber's writer: one [`Line`] per event, queued when complete.
struct Lines {
    tx: Option<SyncSender<Vec<u8>>>,
}

impl Lines {
    /// Lines to stderr through a writer thread; if no thread can be had,
    /// lines are dropped (and counted) rather than written by workers.
    fn stderr() -> Lines {
        let (tx, rx) = sync_channel::<Vec<u8>>(QUEUE);
        let spawned = std::thread::Builder::new()
            .name("diagnostics".into())
            .spawn(move || write_lines(&rx, &mut io::stderr()));
        Lines {
            tx: spawned.ok().map(|_| tx),
        }
    }
}

fn write_lines(rx: &Receiver<Vec<u8>>, out: &mut impl Write) {
    let mut reported = 0;
    while let Ok(line) = rx.recv() {
        let dropped = COUNTS.dropped.load(Ordering::Relaxed);
        if dropped > reported {
            let _ = writeln!(
                out,
                "{} diagnostic lines dropped: stderr did not keep up",
                dropped - reported
            );
            reported = dropped;
        }
        let _ = out.write_all(&line);
        COUNTS.written.fetch_add(1, Ordering::Relaxed);
    }
}

impl<'a> MakeWriter<'a> for Lines {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line {
            buf: Vec::new(),
            tx: self.tx.as_ref(),
        }
    }
}

/// One event's bytes, queued when dropped (never blocking).
struct Line<'a> {
    buf: Vec<u8>,
    tx: Option<&'a SyncSender<Vec<u8>>>,
}

impl Write for Line<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Line<'_> {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let line = std::mem::take(&mut self.buf);
        match self.tx.map(|tx| tx.try_send(line)) {
            Some(Ok(())) => {
                COUNTS.queued.fetch_add(1, Ordering::Relaxed);
            }
            Some(Err(TrySendError::Disconnected(_))) => {}
            Some(Err(TrySendError::Full(_))) | None => {
                COUNTS.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeating_warning_is_written_once_per_period_with_the_count() {
        assert_eq!(allow("test-backend/10.0.0.1:443"), Some(0));
        for _ in 0..5 {
            assert_eq!(allow("test-backend/10.0.0.1:443"), None);
        }
        // Another key is independent.
        assert_eq!(allow("test-backend/10.0.0.2:443"), Some(0));
    }

    #[test]
    fn a_full_queue_drops_lines_without_waiting() {
        let (tx, rx) = sync_channel::<Vec<u8>>(2);
        let lines = Lines { tx: Some(tx) };
        let before = dropped();
        for _ in 0..10 {
            let mut line = lines.make_writer();
            line.write_all(b"x\n").unwrap();
        }
        assert!(dropped() >= before + 8);
        drop(lines);
        let mut out = Vec::new();
        write_lines(&rx, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("diagnostic lines dropped"), "{text}");
        assert!(text.ends_with("x\nx\n"), "{text}");
    }
}
