//! Process signals: SIGTERM/SIGINT become a shutdown future, SIGHUP a
//! stream of reload requests. Handlers are installed by `install`, before
//! the listeners report that they are up, so that a signal sent right after
//! the `listening` line is never lost (or, for SIGHUP, fatal).

use std::io;

use tokio::signal::unix::{Signal, SignalKind, signal};

/// Installed SIGTERM and SIGINT handlers.
#[derive(Debug)]
pub struct Shutdown {
    term: Signal,
    int: Signal,
}

/// Installed SIGHUP handler.
#[derive(Debug)]
pub struct Reloads {
    hup: Signal,
}

/// Install the handlers. Must be called inside a tokio runtime.
pub fn install() -> io::Result<(Shutdown, Reloads)> {
    Ok((
        Shutdown {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        },
        Reloads {
            hup: signal(SignalKind::hangup())?,
        },
    ))
}

impl Shutdown {
    /// Resolves on the first SIGTERM or SIGINT.
    pub async fn recv(mut self) {
        tokio::select! {
            _ = self.term.recv() => tracing::info!("SIGTERM received; shutting down"),
            _ = self.int.recv() => tracing::info!("SIGINT received; shutting down"),
        }
    }
}

impl Reloads {
    /// Calls `on_reload` for every SIGHUP, until the process ends.
    pub async fn run(mut self, mut on_reload: impl FnMut()) {
        while self.hup.recv().await.is_some() {
            on_reload();
        }
    }
}
