//! The [`Observer`]: follows each direction record by record and fills a
//! [`Handshake`] until the handshake is over or observation ends.

use super::handshake::{Direction, Handshake, Side};
use super::message::Malformed;
use super::record::{
    APPLICATION_DATA, CHANGE_CIPHER_SPEC, Event, Framer, MAX_MESSAGE, Stop, Verdict,
};
use super::{cert, message, names};

/// Follows one connection's handshake from the bytes forwarded each way.
#[derive(Debug)]
pub struct Observer {
    pub(super) client: Framer,
    pub(super) server: Framer,
    pub(super) state: State,
}

impl Observer {
    /// An observer that examines at most `budget` bytes per direction.
    pub fn new(budget: usize) -> Observer {
        Observer {
            client: Framer::new(&[CERTIFICATE]),
            server: Framer::new(&[SERVER_HELLO, CERTIFICATE]),
            state: State {
                report: Handshake::default(),
                budget,
                client: Progress::default(),
                server: Progress::default(),
                version: None,
                server_hello_done: false,
                finished: false,
                stop: None,
            },
        }
    }

    /// Takes the next bytes forwarded in `dir`, in order, split anyhow
    /// (the ClientHello included). The two directions are followed
    /// independently: how their calls interleave does not change the
    /// report (unless a direction spends its budget before the ServerHello
    /// is fed). Once [`done`](Self::done), returns at once. Never panics;
    /// input that is not a TLS handshake only ends observation.
    pub fn feed(&mut self, dir: Direction, bytes: &[u8]) {
        let state = &mut self.state;
        if state.finished {
            return;
        }
        let budget = state.budget;
        let progress = state.progress(dir);
        if progress.stopped {
            return;
        }
        let room = budget.saturating_sub(progress.examined);
        let (now, over) = bytes.split_at(room.min(bytes.len()));
        progress.examined += now.len();
        let framer = match dir {
            Direction::ClientToServer => &mut self.client,
            Direction::ServerToClient => &mut self.server,
        };
        if let Err(stop) = framer.feed(now, &mut |event| state.on_event(dir, event)) {
            state.stop(stop);
        } else if !over.is_empty() && !state.finished {
            let version = state.version;
            let failed = state.client.fatal_alert || state.server.fatal_alert;
            let progress = state.progress(dir);
            progress.stopped = true;
            if !progress.part_done(version) && !failed {
                state.stop(Stop::Budget);
            }
        }
    }

    /// Whether nothing more will be learned: the handshake is over (or
    /// encrypted), a fatal alert was seen, or observation stopped early.
    pub fn done(&self) -> bool {
        self.state.finished
    }

    /// What was learned so far.
    pub fn report(&self) -> &Handshake {
        &self.state.report
    }
}

/// Everything but the framers, so a framer's sink can borrow it.
#[derive(Debug)]
pub(super) struct State {
    pub(super) report: Handshake,
    pub(super) budget: usize,
    pub(super) client: Progress,
    pub(super) server: Progress,
    /// Negotiated version number (last ServerHello or HelloRetryRequest).
    pub(super) version: Option<u16>,
    /// TLS 1.2 and below: the server's first flight is over and it waits
    /// for the client's.
    pub(super) server_hello_done: bool,
    pub(super) finished: bool,
    /// Why observation stopped early.
    pub(super) stop: Option<Stop>,
}

/// What one direction has sent so far.
#[derive(Debug, Default)]
pub(super) struct Progress {
    /// Bytes examined (counted against the budget).
    pub(super) examined: usize,
    /// Sent ChangeCipherSpec.
    pub(super) change_cipher_spec: bool,
    /// Records sent after ChangeCipherSpec (TLS 1.2: Finished and later).
    pub(super) after_change_cipher_spec: u32,
    /// application_data records sent (TLS 1.3: encrypted handshake and later).
    pub(super) encrypted: u32,
    /// Sent a fatal alert in clear.
    pub(super) fatal_alert: bool,
    /// Budget spent after its part of the handshake was over (or after a
    /// fatal alert): no longer followed, and no truncation.
    pub(super) stopped: bool,
}

impl Progress {
    /// This side's part of the handshake is over for `version`.
    fn part_done(&self, version: Option<u16>) -> bool {
        match version {
            Some(TLS13) => self.encrypted > 0,
            Some(_) => self.after_change_cipher_spec > 0,
            None => false,
        }
    }
}

impl State {
    fn progress(&mut self, dir: Direction) -> &mut Progress {
        match dir {
            Direction::ClientToServer => &mut self.client,
            Direction::ServerToClient => &mut self.server,
        }
    }

    /// Ends observation early.
    fn stop(&mut self, stop: Stop) {
        self.stop = Some(stop);
        self.report.truncated = true;
        self.finished = true;
    }

    /// Handles one event of `dir`'s framer.
    fn on_event(&mut self, dir: Direction, event: Event<'_>) -> Result<Verdict, Stop> {
        let tls13 = self.version == Some(TLS13);
        let verdict = match event {
            Event::Record { content_type } => {
                let progress = self.progress(dir);
                if progress.change_cipher_spec {
                    progress.after_change_cipher_spec =
                        progress.after_change_cipher_spec.saturating_add(1);
                }
                match content_type {
                    // In TLS 1.3 the server's ChangeCipherSpec is only for
                    // middleboxes, and after a HelloRetryRequest the real
                    // ServerHello still follows in clear.
                    CHANGE_CIPHER_SPEC => {
                        progress.change_cipher_spec = true;
                        if dir == Direction::ServerToClient && tls13 {
                            Verdict::Continue
                        } else {
                            Verdict::Opaque
                        }
                    }
                    APPLICATION_DATA => {
                        progress.encrypted = progress.encrypted.saturating_add(1);
                        Verdict::Continue
                    }
                    _ => Verdict::Continue,
                }
            }
            Event::MessageStart { kind } => {
                if dir == Direction::ServerToClient {
                    match kind {
                        CERTIFICATE_REQUEST => self.report.client_cert_requested = Some(true),
                        SERVER_HELLO_DONE => {
                            self.server_hello_done = true;
                            self.report.client_cert_requested.get_or_insert(false);
                        }
                        _ => {}
                    }
                }
                Verdict::Continue
            }
            Event::Message { kind, body } => {
                self.on_message(dir, kind, body)
                    .map_err(|m| Stop::Malformed(m.0))?;
                Verdict::Continue
            }
            Event::Alert { level, description } => {
                let side = match dir {
                    Direction::ClientToServer => Side::Client,
                    Direction::ServerToClient => Side::Server,
                };
                // A two-byte alert record after this side's first encrypted
                // record cannot be a plaintext alert.
                let progress = self.progress(dir);
                if progress.encrypted == 0 {
                    progress.fatal_alert |= level == FATAL;
                    self.report
                        .alert
                        .get_or_insert_with(|| (side, names::alert(description)));
                }
                Verdict::Continue
            }
        };
        Ok(self.settle(verdict))
    }

    /// Reads a kept handshake message: a ServerHello or a Certificate.
    fn on_message(&mut self, dir: Direction, kind: u8, body: &[u8]) -> Result<(), Malformed> {
        match (dir, kind) {
            (Direction::ServerToClient, SERVER_HELLO) => {
                let hello = message::server_hello(body)?;
                let name = names::version(hello.version).ok_or(Malformed("selected_version"))?;
                self.version = Some(hello.version);
                self.report.version = Some(name);
                self.report.cipher = Some(names::cipher(hello.cipher));
                self.report.certificates_encrypted = hello.version == TLS13;
            }
            (Direction::ServerToClient, CERTIFICATE) => {
                self.report.server_cert =
                    message::leaf_certificate(body)?.and_then(cert::summarize);
            }
            (Direction::ClientToServer, CERTIFICATE) => match message::leaf_certificate(body)? {
                Some(der) => self.report.client_cert = cert::summarize(der),
                None => self.report.client_cert_empty = true,
            },
            _ => {}
        }
        Ok(())
    }

    /// Updates `finished` and `completed`; [`Verdict::Done`] once finished.
    ///
    /// After a fatal alert, observation goes on until the other direction
    /// has nothing left to say too, so that the order in which the two
    /// directions are fed does not change the report: a server's
    /// `unknown_ca` may be fed before the client flight that caused it.
    fn settle(&mut self, verdict: Verdict) -> Verdict {
        let (client, server) = (&self.client, &self.server);
        let over = client.part_done(self.version) && server.part_done(self.version);
        if over && self.report.alert.is_none() {
            self.report.completed = true;
        }
        // Quiet: waits for the peer, or has ended its part.
        let client_quiet =
            client.part_done(self.version) || client.fatal_alert || self.version.is_none();
        let server_quiet =
            server.part_done(self.version) || server.fatal_alert || self.server_hello_done;
        let failed = (client.fatal_alert || server.fatal_alert) && client_quiet && server_quiet;
        self.finished = over || failed || self.stop.is_some();
        if self.finished {
            Verdict::Done
        } else {
            verdict
        }
    }
}

/// A per-direction budget that fits a [`MAX_MESSAGE`]-sized certificate
/// chain plus the rest of that direction's TLS 1.2 handshake.
pub const DEFAULT_BUDGET: usize = MAX_MESSAGE + 32 * 1024;

/// Handshake message types (RFC 8446 section 4, RFC 5246 section 7.4).
const SERVER_HELLO: u8 = 2;
const CERTIFICATE: u8 = 11;
const CERTIFICATE_REQUEST: u8 = 13;
const SERVER_HELLO_DONE: u8 = 14;

/// Alert level `fatal`.
const FATAL: u8 = 2;

/// TLS 1.3 on the wire.
const TLS13: u16 = 0x0304;
