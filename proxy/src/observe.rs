//! Follows a TLS handshake in clear from both directions' byte streams, as
//! they are forwarded, and reports what a passive observer can learn:
//! negotiated version and cipher; for TLS 1.2 and below, whether the server
//! asked for a client certificate and both parties' leaf certificates; the
//! first plaintext alert and who sent it; whether the handshake completed.
//! No I/O, no tokio: the caller feeds copies of the bytes it forwards.
//!
//! What each version shows:
//!
//! - **TLS 1.2 and below.** Everything up to each side's ChangeCipherSpec
//!   is in clear: ServerHello, both Certificate messages, the
//!   CertificateRequest, and any alert sent before ChangeCipherSpec (a
//!   server rejecting a client certificate sends e.g. `unknown_ca` in clear).
//!   The handshake counts as completed when each side sent ChangeCipherSpec
//!   and one record after it (its encrypted Finished) and no alert was seen.
//! - **TLS 1.3.** Only the ServerHello (and a HelloRetryRequest) is in
//!   clear; certificates, the CertificateRequest and most alerts are
//!   encrypted ([`Handshake::certificates_encrypted`]). Completion is a best
//!   effort: both sides sent an encrypted record after the ServerHello and
//!   no plaintext alert was seen. A server that rejects the client's
//!   certificate does so with an *encrypted* alert, which looks the same as
//!   success from outside: `completed` is then `true` and `alert` is `None`.
//!
//! A fatal alert in clear (e.g. the server's `unknown_ca` in TLS 1.2) ends
//! observation once the other side has nothing left to send either (its
//! part is over, or it is waiting for the alerting side), so the report does
//! not depend on which direction's bytes were fed first.
//!
//! Cost and bounds: each direction is followed record by record until the
//! handshake is over, then [`Observer::feed`] returns at once. At most the
//! budget given to [`Observer::new`] is examined per direction, only the
//! ServerHello and Certificate messages are buffered (each up to
//! [`MAX_MESSAGE`]); anything that is not TLS framing, a larger message or
//! a spent budget ends observation with [`Handshake::truncated`] set.
//! Hostile input can only end observation, never make it panic.

use serde::Serialize;

use message::Malformed;
use record::{APPLICATION_DATA, CHANGE_CIPHER_SPEC, Event, Framer, Stop, Verdict};

mod cert;
mod message;
mod names;
mod record;
mod tap;

pub use tap::ObserverTap;

/// Which way bytes were forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the TLS client to the server (upstream).
    ClientToServer,
    /// From the server to the TLS client (downstream).
    ServerToClient,
}

/// A party of the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The TLS client (serialised as "client").
    Client,
    /// The TLS server (serialised as "server").
    Server,
}

/// What was learned about one handshake.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Handshake {
    /// Negotiated version from the ServerHello ("TLSv1.3", "TLSv1.2",
    /// "TLSv1.1", "TLSv1", "SSLv3"); `supported_versions` wins over
    /// `legacy_version`.
    pub version: Option<&'static str>,
    /// Negotiated cipher suite: the IANA name for common suites
    /// ("TLS_AES_128_GCM_SHA256"), else the number ("0xC0AB").
    pub cipher: Option<String>,
    /// TLS 1.3: certificates travel encrypted and are not visible.
    pub certificates_encrypted: bool,
    /// TLS 1.2 and below: whether the server sent a CertificateRequest
    /// (`Some(false)` once its ServerHelloDone arrived without one). `None`
    /// when unknown: TLS 1.3, a resumed session, or not seen yet.
    pub client_cert_requested: Option<bool>,
    /// TLS 1.2 and below: the client's leaf certificate, if it sent one.
    pub client_cert: Option<CertSummary>,
    /// TLS 1.2 and below: the client answered the CertificateRequest with
    /// an empty Certificate message (it had no certificate to offer).
    pub client_cert_empty: bool,
    /// TLS 1.2 and below: the server's leaf certificate.
    pub server_cert: Option<CertSummary>,
    /// The first plaintext alert: who sent it and its RFC 8446 name
    /// ("unknown_ca", "bad_certificate", "certificate_expired",
    /// "handshake_failure", ...), "alert_N" for numbers without a name.
    pub alert: Option<(Side, String)>,
    /// The handshake completed, as far as can be seen (module docs: exact
    /// for TLS 1.2, best effort for TLS 1.3).
    pub completed: bool,
    /// Observation stopped early: budget spent, a message larger than
    /// [`MAX_MESSAGE`], or input that is not TLS.
    pub truncated: bool,
}

/// A certificate seen in clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertSummary {
    /// Subject distinguished name ("O=passthru test, CN=gw.example.com").
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// Serial number: the DER INTEGER content as lower-case hex pairs with
    /// spaces, a leading 00 kept ("00 8f 12 34 56"), as `passthru-certs
    /// inspect` shows it (`openssl x509 -serial` prints "8F123456").
    pub serial_hex: String,
    /// SHA-1 thumbprint of the DER certificate, lower-case hex.
    pub sha1: String,
    /// SHA-256 thumbprint of the DER certificate, lower-case hex.
    pub sha256: String,
    /// notAfter in RFC 3339, UTC ("2036-11-20T02:57:53Z").
    pub not_after: String,
    /// notAfter in seconds since the Unix epoch.
    pub not_after_unix: i64,
}

/// Follows one connection's handshake from the bytes forwarded each way.
#[derive(Debug)]
pub struct Observer {
    client: Framer,
    server: Framer,
    state: State,
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
struct State {
    report: Handshake,
    budget: usize,
    client: Progress,
    server: Progress,
    /// Negotiated version number (last ServerHello or HelloRetryRequest).
    version: Option<u16>,
    /// TLS 1.2 and below: the server's first flight is over and it waits
    /// for the client's.
    server_hello_done: bool,
    finished: bool,
    /// Why observation stopped early.
    stop: Option<Stop>,
}

/// What one direction has sent so far.
#[derive(Debug, Default)]
struct Progress {
    /// Bytes examined (counted against the budget).
    examined: usize,
    /// Sent ChangeCipherSpec.
    change_cipher_spec: bool,
    /// Records sent after ChangeCipherSpec (TLS 1.2: Finished and later).
    after_change_cipher_spec: u32,
    /// application_data records sent (TLS 1.3: encrypted handshake and later).
    encrypted: u32,
    /// Sent a fatal alert in clear.
    fatal_alert: bool,
    /// Budget spent after its part of the handshake was over (or after a
    /// fatal alert): no longer followed, and no truncation.
    stopped: bool,
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

/// Largest handshake message buffered (a ServerHello or a Certificate
/// chain); a larger one ends observation with `truncated`.
pub const MAX_MESSAGE: usize = 64 * 1024;

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

#[cfg(test)]
mod tests;
