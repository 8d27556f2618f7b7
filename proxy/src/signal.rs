//! Process signals: SIGTERM/SIGINT become a shutdown future, SIGHUP a
//! stream of reload requests. Handlers are installed by `install`, before
//! the listeners report that they are up, so that a signal sent right after
//! the `listening` line is never lost (or, for SIGHUP, fatal).

use std::io;

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;

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
    /// Resolves on the next SIGTERM or SIGINT, naming it.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }

    /// Resolves on the first SIGTERM or SIGINT.
    pub async fn recv(mut self) {
        let name = self.next().await;
        tracing::info!("{name} received; shutting down");
    }

    /// Two tokens: the first is cancelled by the first SIGTERM or SIGINT
    /// (start the drain), the second by the next one (end the drain at
    /// once). Spawns the task that waits for them.
    pub fn tokens(mut self) -> (CancellationToken, CancellationToken) {
        let (first, again) = (CancellationToken::new(), CancellationToken::new());
        let (f, a) = (first.clone(), again.clone());
        tokio::spawn(async move {
            let name = self.next().await;
            tracing::info!("{name} received; shutting down");
            f.cancel();
            let name = self.next().await;
            tracing::info!("{name} received again; ending the drain now");
            a.cancel();
        });
        (first, again)
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
