//! The access log: one line per finished connection on stdout, as text
//! (`key=value` pairs) or JSON. Each line is formatted into a reused
//! per-thread buffer and appended to a shared batch that a writer thread
//! writes at once (`access_log/writer.rs`), so a slow stdout never stalls
//! the data path; when too much waits, the line is dropped and counted.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::mpsc::UnboundedSender;

use crate::clienthello::Groups;
use crate::observe::Handshake;
use crate::refusal::Outcome;

mod writer;

use writer::Writer;

/// Access-log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `key=value` pairs on one line.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Everything known about a finished connection.
#[derive(Debug, Clone, Serialize)]
pub struct AccessRecord {
    /// When the connection was accepted (RFC 3339, UTC).
    #[serde(serialize_with = "rfc3339")]
    pub time: SystemTime,
    /// Listener name.
    pub listener: String,
    /// The client's address (the peer's, until PROXY protocol says otherwise).
    pub client: SocketAddr,
    /// The TCP peer's address.
    pub peer: SocketAddr,
    /// SNI as sent.
    pub sni: Option<String>,
    /// ALPN protocols offered.
    pub alpn: Vec<String>,
    /// Highest TLS version offered ("TLSv1.3", …).
    pub tls_version: Option<&'static str>,
    /// JA4 fingerprint of the ClientHello (FoxIO's definition, transport `t`).
    pub ja4: Option<String>,
    /// Key-share groups offered, by name (`x25519mlkem768`, `x25519`, …).
    #[serde(serialize_with = "group_names")]
    pub key_shares: Option<Groups>,
    /// `route[N]` or `default` (shared with the routing table).
    pub route: Option<Arc<str>>,
    /// Backend name (shared with the backend).
    pub backend: Option<Arc<str>>,
    /// Server that got the connection (shared with the backend).
    pub server: Option<Arc<str>>,
    /// The `via` CONNECT hop (host:port, never credentials).
    pub via: Option<String>,
    /// Bytes client → server (ClientHello included).
    pub bytes_up: u64,
    /// Bytes server → client.
    pub bytes_down: u64,
    /// Time from accept to close.
    #[serde(serialize_with = "seconds")]
    pub duration: Duration,
    /// `ok`, the refusal reason, `client_closed` or `stopped`.
    pub outcome: Outcome,
    /// How a forwarded connection ended (`closed`, `idle_timeout`, …).
    pub end: Option<&'static str>,
    /// Extra detail for refusals (e.g. offload headers seen).
    pub detail: Option<String>,
    /// What handshake observation saw (`observe_handshake = true`).
    pub handshake: Option<Box<Observed>>,
}

/// Handshake observation, as logged.
#[derive(Debug, Clone, Serialize)]
pub struct Observed {
    /// What the observer learned.
    #[serde(flatten)]
    pub report: Handshake,
    /// From the start of forwarding to the end of the handshake, when it ended.
    pub duration_ms: Option<u64>,
}

impl AccessRecord {
    /// A record for a connection just accepted.
    pub fn new(listener: &str, peer: SocketAddr) -> AccessRecord {
        AccessRecord {
            time: SystemTime::now(),
            listener: listener.to_string(),
            client: peer,
            peer,
            sni: None,
            alpn: Vec::new(),
            tls_version: None,
            ja4: None,
            key_shares: None,
            route: None,
            backend: None,
            server: None,
            via: None,
            bytes_up: 0,
            bytes_down: 0,
            duration: Duration::ZERO,
            outcome: Outcome::Forwarded,
            end: None,
            detail: None,
            handshake: None,
        }
    }

    /// The text form: `key=value` pairs, values with spaces or quotes quoted.
    pub fn to_text(&self) -> String {
        let mut line = String::with_capacity(320);
        self.write_text(&mut line);
        line
    }

    /// Append the text form to `line`, allocating nothing else. Numbers
    /// and addresses are written digit by digit and names pushed as they
    /// are: one line costs a few thousand instructions, not the `fmt`
    /// machinery's per field.
    pub fn write_text(&self, line: &mut String) {
        line.push_str("time=");
        push_time(line, self.time);
        pair_str(line, "listener", &self.listener);
        pair_plain(line, "client", |line| push_addr(line, self.client));
        pair_plain(line, "peer", |line| push_addr(line, self.peer));
        pair_str(line, "sni", self.sni.as_deref().unwrap_or("-"));
        pair(line, "alpn", |line| {
            push_joined(line, self.alpn.iter().map(String::as_str));
        });
        pair_str(line, "tls", self.tls_version.unwrap_or("-"));
        pair_str(line, "ja4", self.ja4.as_deref().unwrap_or("-"));
        pair(line, "key_shares", |line| match &self.key_shares {
            Some(groups) => push_joined(line, groups.iter().map(|group| group.name())),
            None => line.push('-'),
        });
        pair_str(line, "route", self.route.as_deref().unwrap_or("-"));
        pair_str(line, "backend", self.backend.as_deref().unwrap_or("-"));
        pair_str(line, "server", self.server.as_deref().unwrap_or("-"));
        pair_str(line, "via", self.via.as_deref().unwrap_or("-"));
        pair_plain(line, "bytes_up", |line| push_u64(line, self.bytes_up));
        pair_plain(line, "bytes_down", |line| push_u64(line, self.bytes_down));
        pair_plain(line, "duration", |line| push_seconds(line, self.duration));
        pair_str(line, "outcome", self.outcome.as_str());
        pair_str(line, "end", self.end.unwrap_or("-"));
        if let Some(d) = &self.detail {
            pair_str(line, "detail", d);
        }
        if let Some(h) = &self.handshake {
            observed_fields(h, &mut |k, v| pair_str(line, k, v));
        }
    }

    /// The JSON form: one object.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

fn observed_fields(h: &Observed, push: &mut impl FnMut(&str, &str)) {
    let r = &h.report;
    push("hs_version", r.version.unwrap_or("-"));
    push("hs_cipher", r.cipher.as_deref().unwrap_or("-"));
    let outcome = match (&r.alert, r.completed) {
        (Some(_), _) => "failed",
        (None, true) => "completed",
        (None, false) => "incomplete",
    };
    push("hs", outcome);
    if let Some((side, name)) = &r.alert {
        let side = match side {
            crate::observe::Side::Client => "client",
            crate::observe::Side::Server => "server",
        };
        push("hs_alert", &format!("{side}:{name}"));
    }
    if let Some(ms) = h.duration_ms {
        push("hs_ms", &ms.to_string());
    }
    if r.certificates_encrypted {
        push("certs", "encrypted");
    }
    if let Some(asked) = r.client_cert_requested {
        push("client_cert_requested", if asked { "yes" } else { "no" });
    }
    if r.client_cert_empty {
        push("client_cert", "none");
    }
    if let Some(c) = &r.client_cert {
        push("client_cert_subject", &c.subject);
        push("client_cert_issuer", &c.issuer);
        push("client_cert_serial", &c.serial_hex);
        push("client_cert_sha1", &c.sha1);
        push("client_cert_sha256", &c.sha256);
        push("client_cert_not_after", &c.not_after);
    }
    if let Some(c) = &r.server_cert {
        push("server_cert_sha256", &c.sha256);
    }
    if r.truncated {
        push("hs_truncated", "yes");
    }
}

/// Append ` key=value` to `line`, the value written by `value`: as it
/// is when it is printable ASCII without quotes or backslashes, else quoted
/// and escaped.
fn pair(line: &mut String, key: &str, value: impl FnOnce(&mut String)) {
    push_key(line, key);
    let start = line.len();
    value(line);
    if !plain(&line.as_bytes()[start..]) {
        // Rare (hostile names, details with spaces): quote what was written.
        let raw = line.split_off(start);
        let _ = write!(line, "{raw:?}");
    }
}

/// [`pair`] for a value that is already a string.
fn pair_str(line: &mut String, key: &str, value: &str) {
    pair(line, key, |line| line.push_str(value));
}

/// [`pair`] for a value that is plain by construction (digits, addresses).
fn pair_plain(line: &mut String, key: &str, value: impl FnOnce(&mut String)) {
    push_key(line, key);
    value(line);
}

/// ` key=`
fn push_key(line: &mut String, key: &str) {
    line.push(' ');
    line.push_str(key);
    line.push('=');
}

/// Whether a value needs no quotes: not empty, printable ASCII, no quote
/// and no backslash.
fn plain(value: &[u8]) -> bool {
    !value.is_empty()
        && value
            .iter()
            .all(|&c| c.is_ascii_graphic() && c != b'"' && c != b'\\')
}

/// Names joined by commas, `-` when there are none.
fn push_joined<'a>(line: &mut String, names: impl Iterator<Item = &'a str>) {
    let mut none = true;
    for name in names {
        if !none {
            line.push(',');
        }
        line.push_str(name);
        none = false;
    }
    if none {
        line.push('-');
    }
}

fn push_u64(line: &mut String, n: u64) {
    line.push_str(itoa::Buffer::new().format(n));
}

/// `a.b.c.d:port` digit by digit; IPv6 (rarer here) through `Display`.
fn push_addr(line: &mut String, addr: SocketAddr) {
    match addr {
        SocketAddr::V4(v4) => {
            let mut digits = itoa::Buffer::new();
            for (i, octet) in v4.ip().octets().into_iter().enumerate() {
                if i > 0 {
                    line.push('.');
                }
                line.push_str(digits.format(octet));
            }
            line.push(':');
            line.push_str(digits.format(v4.port()));
        }
        SocketAddr::V6(v6) => {
            let _ = write!(line, "{v6}");
        }
    }
}

/// RFC 3339 in UTC with milliseconds (`2026-12-06T14:02:05.042Z`). The
/// part up to the second is formatted once per second by each thread.
fn push_time(line: &mut String, time: SystemTime) {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since.as_secs();
    SECOND.with_borrow_mut(|(formatted, text)| {
        if *formatted != Some(seconds) {
            text.clear();
            let whole = UNIX_EPOCH + Duration::from_secs(seconds);
            let _ = write!(text, "{}", humantime::format_rfc3339_seconds(whole));
            text.pop(); // the `Z`, written after the milliseconds
            *formatted = Some(seconds);
        }
        line.push_str(text);
    });
    push_fraction(line, since.subsec_millis());
    line.push('Z');
}

/// Seconds with three decimals (`0.042s`), rounded to the millisecond.
fn push_seconds(line: &mut String, d: Duration) {
    let millis = (d.as_nanos() + 500_000) / 1_000_000;
    line.push_str(itoa::Buffer::new().format(millis / 1000));
    // Below 1,000, so the cast loses nothing.
    push_fraction(line, (millis % 1000) as u32);
    line.push('s');
}

/// `.mmm`: milliseconds (below 1,000) as three digits after the point.
fn push_fraction(line: &mut String, millis: u32) {
    line.push('.');
    if millis < 100 {
        line.push('0');
    }
    if millis < 10 {
        line.push('0');
    }
    line.push_str(itoa::Buffer::new().format(millis));
}

fn group_names<S: serde::Serializer>(groups: &Option<Groups>, s: S) -> Result<S::Ok, S::Error> {
    match groups {
        Some(groups) => s.collect_seq(groups.iter().map(|group| group.name())),
        None => s.serialize_none(),
    }
}

fn rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_millis(*t))
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e6)
}

/// Where access records go.
#[derive(Debug, Clone)]
pub struct AccessLog {
    sink: Sink,
    dropped: Arc<AtomicU64>,
}

#[derive(Debug, Clone)]
enum Sink {
    Lines {
        writer: Arc<Writer>,
        format: LogFormat,
    },
    Records(UnboundedSender<AccessRecord>),
    Discard,
}

impl AccessLog {
    /// Lines on stdout, written in batches by a dedicated thread.
    pub fn stdout(format: LogFormat) -> AccessLog {
        match Writer::start(std::io::stdout()) {
            Some(writer) => AccessLog {
                sink: Sink::Lines {
                    writer: Arc::new(writer),
                    format,
                },
                dropped: Arc::default(),
            },
            None => AccessLog::discard(),
        }
    }

    /// Records on a channel (tests and embedding).
    pub fn channel() -> (
        AccessLog,
        tokio::sync::mpsc::UnboundedReceiver<AccessRecord>,
    ) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (
            AccessLog {
                sink: Sink::Records(tx),
                dropped: Arc::default(),
            },
            rx,
        )
    }

    /// No access log.
    pub fn discard() -> AccessLog {
        AccessLog {
            sink: Sink::Discard,
            dropped: Arc::default(),
        }
    }

    /// Log one finished connection. `false` when the line was dropped
    /// because stdout did not keep up (the caller counts it).
    pub fn write(&self, record: AccessRecord) -> bool {
        match &self.sink {
            Sink::Lines { writer, format } => {
                let pushed = LINE.with_borrow_mut(|line| {
                    line.clear();
                    match format {
                        LogFormat::Text => record.write_text(line),
                        LogFormat::Json => {
                            // serde_json writes bytes; the line is UTF-8.
                            let mut bytes = std::mem::take(line).into_bytes();
                            let _ = serde_json::to_writer(&mut bytes, &record);
                            *line = String::from_utf8(bytes).unwrap_or_default();
                        }
                    }
                    let pushed = writer.push(line.as_bytes());
                    if line.capacity() > LINE_KEEP {
                        *line = String::new();
                    }
                    pushed
                });
                if !pushed {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    return false;
                }
            }
            Sink::Records(tx) => {
                let _ = tx.send(record);
            }
            Sink::Discard => {}
        }
        true
    }

    /// Wait until every line logged so far is written and stdout flushed,
    /// for at most `limit` (a stdout nobody reads must not hold the exit
    /// forever). Returns whether it finished in time. Blocks the calling
    /// thread: call it once, at exit.
    pub fn flush(&self, limit: Duration) -> bool {
        match &self.sink {
            Sink::Lines { writer, .. } => writer.flush(limit),
            _ => true,
        }
    }

    /// Lines dropped because stdout did not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

thread_local! {
    /// Each thread formats its lines here, reusing the allocation.
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
    /// The second the thread's last line was in, and its text up to the
    /// second (see [`push_time`]).
    static SECOND: RefCell<(Option<u64>, String)> = const { RefCell::new((None, String::new())) };
}

/// A line buffer grown past this by one huge line (handshake details) is
/// given back rather than kept by the thread.
const LINE_KEEP: usize = 4096;

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> AccessRecord {
        let mut r = AccessRecord::new("public", "192.0.2.1:5000".parse().unwrap());
        r.sni = Some("gw.example.com".into());
        r.alpn = vec!["h2".into(), "http/1.1".into()];
        r.tls_version = Some("TLSv1.3");
        r.ja4 = Some("t13d1517h2_8daaf6152771_cb7bf5808d99".into());
        r.key_shares = Some([0x0a0a, 0x11ec, 0x001d].into_iter().collect());
        r.route = Some("route[0]".into());
        r.backend = Some("gateway".into());
        r.server = Some("10.0.0.1:443".into());
        r.bytes_up = 517;
        r.bytes_down = 4096;
        r.end = Some("closed");
        r
    }

    #[test]
    fn text_line_has_every_field() {
        let line = record().to_text();
        for part in [
            "listener=public",
            "client=192.0.2.1:5000",
            "peer=192.0.2.1:5000",
            "sni=gw.example.com",
            "alpn=h2,http/1.1",
            "tls=TLSv1.3",
            "ja4=t13d1517h2_8daaf6152771_cb7bf5808d99",
            "key_shares=x25519mlkem768,x25519",
            "route=route[0]",
            "backend=gateway",
            "server=10.0.0.1:443",
            "bytes_up=517",
            "bytes_down=4096",
            "outcome=ok",
            "end=closed",
        ] {
            assert!(line.contains(part), "{part} missing from {line}");
        }
        assert!(!line.contains('\n'));
    }

    #[test]
    fn numbers_and_addresses_match_their_display_forms() {
        let mut r = record();
        for (addr, micros) in [
            ("0.0.0.0:0", 0),
            ("255.255.255.255:65535", 999_499),
            ("10.1.20.255:8443", 1_234_567),
            ("[2001:db8::1]:443", 42_000),
        ] {
            let addr: SocketAddr = addr.parse().unwrap();
            r.client = addr;
            r.duration = Duration::from_micros(micros);
            r.bytes_up = u64::MAX;
            let line = r.to_text();
            let seconds = format!("{:.3}s", r.duration.as_secs_f64());
            for part in [
                format!(" client={addr} "),
                format!(" duration={seconds} "),
                format!(" bytes_up={} ", u64::MAX),
            ] {
                assert!(line.contains(&part), "{part} missing from {line}");
            }
        }
        for (seconds, nanos) in [
            (0, 0),
            (1_796_567_010, 999_999_999),
            (1_796_567_010, 7_000_000),
            (1_796_567_011, 42_500_000),
        ] {
            r.time = UNIX_EPOCH + Duration::new(seconds, nanos);
            let expected = format!("time={} ", humantime::format_rfc3339_millis(r.time));
            assert!(r.to_text().starts_with(&expected), "{expected}");
        }
        r.alpn = vec![String::new()];
        assert!(r.to_text().contains(r#" alpn="" "#));
        r.alpn.clear();
        assert!(r.to_text().contains(" alpn=- "));
    }

    #[test]
    fn hostile_sni_is_quoted() {
        let mut r = record();
        r.sni = Some("a b\"\n".into());
        let line = r.to_text();
        assert!(line.contains(r#"sni="a b\"\n""#), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn json_line_parses() {
        let v: serde_json::Value = serde_json::from_str(&record().to_json()).unwrap();
        assert_eq!(v["sni"], "gw.example.com");
        assert_eq!(v["bytes_up"], 517);
        assert_eq!(v["outcome"], "ok");
        assert_eq!(v["ja4"], "t13d1517h2_8daaf6152771_cb7bf5808d99");
        assert_eq!(
            v["key_shares"],
            serde_json::json!(["x25519mlkem768", "x25519"])
        );
        let bare = AccessRecord::new("public", "192.0.2.1:5000".parse().unwrap());
        let v: serde_json::Value = serde_json::from_str(&bare.to_json()).unwrap();
        assert!(v["ja4"].is_null() && v["key_shares"].is_null());
        assert!(bare.to_text().contains(" ja4=- key_shares=- "));
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
    }
}
