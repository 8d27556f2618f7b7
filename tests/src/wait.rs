//! Bounded waits: every wait on a peer or on state that settles
//! asynchronously gives up after a limit, with a message.

use std::future::Future;
use std::time::Duration;

/// The bound on any single wait in a test.
pub const WAIT: Duration = Duration::from_secs(10);

/// Await `fut` for at most [`WAIT`], panicking with `what` otherwise.
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

/// Poll `check` until it returns `Some`, for at most `limit`.
pub async fn eventually<T>(limit: Duration, mut check: impl FnMut() -> Option<T>, what: &str) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("{what} (gave up after {limit:?})");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
