//! The [`Tap`] that feeds an [`Observer`] from the forwarding loop, and the
//! time the handshake took. The lock is taken only while the handshake is
//! being followed; once the observer is done, the loop stops calling it.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::handshake::{Direction, Handshake};
use super::observer::{DEFAULT_BUDGET, Observer};
use crate::forward::Tap;

/// An observer shared by both directions of one connection.
#[derive(Debug)]
pub struct ObserverTap {
    state: Mutex<(Observer, Option<Duration>)>,
    started: Instant,
}

impl ObserverTap {
    /// A tap that starts the handshake clock now, with the default budget.
    pub fn new() -> ObserverTap {
        ObserverTap {
            state: Mutex::new((Observer::new(DEFAULT_BUDGET), None)),
            started: Instant::now(),
        }
    }

    /// Feed bytes passthru itself moved outside the forwarding loop (the
    /// buffered ClientHello, a hop's leftover bytes).
    pub fn feed_direction(&self, dir: Direction, bytes: &[u8]) {
        let _ = self.feed(dir == Direction::ClientToServer, bytes);
    }

    /// What was learned, and how long the handshake took (when it ended).
    pub fn finish(&self) -> (Handshake, Option<Duration>) {
        match self.state.lock() {
            Ok(state) => (state.0.report().clone(), state.1),
            Err(poisoned) => {
                let state = poisoned.into_inner();
                (state.0.report().clone(), state.1)
            }
        }
    }
}

impl Default for ObserverTap {
    fn default() -> Self {
        ObserverTap::new()
    }
}

impl Tap for ObserverTap {
    fn feed(&self, upstream: bool, bytes: &[u8]) -> bool {
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        let dir = if upstream {
            Direction::ClientToServer
        } else {
            Direction::ServerToClient
        };
        state.0.feed(dir, bytes);
        if state.0.done() {
            if state.1.is_none() {
                state.1 = Some(self.started.elapsed());
            }
            return false;
        }
        true
    }
}
