//! What both copy loops (read/write in `forward.rs`, splice in
//! `splice.rs`) share: the last-activity clock, which socket of a pump
//! failed, and passing a FIN on. No waiting.

use std::net::Shutdown;
use std::sync::atomic::{AtomicU64, Ordering};

use socket2::SockRef;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Which socket of a pump failed.
#[derive(Debug)]
pub(super) enum Failed {
    /// Reading from the source failed.
    Reader,
    /// Writing to the destination failed.
    Writer,
}

/// The last-activity clock shared by both directions.
#[derive(Clone, Copy)]
pub(super) struct Activity<'a> {
    pub(super) last: &'a AtomicU64,
    pub(super) epoch: Instant,
}

impl Activity<'_> {
    /// Something moved now.
    pub(super) fn touch(&self) {
        self.last
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

/// Pass the FIN on: no more bytes this way; the other direction goes on.
pub(super) fn half_close(to: &TcpStream) {
    let _ = SockRef::from(to).shutdown(Shutdown::Write);
}
