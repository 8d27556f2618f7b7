//! The real `passthru` binary as a child process: built once by cargo (the
//! same profile and target directory as the tests), started on a written
//! configuration, its listening address read from its log on stderr, its
//! access lines from stdout, its CPU time and memory from `/proc`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdout, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;

use crate::wait::WAIT;

/// Path of the `passthru` binary: `$PASSTHRU_BINARY` when set, else built
/// (once per test process) with `cargo build -p passthru --bin passthru` in
/// the tests' own profile and target directory.
pub fn passthru_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            if let Some(path) = std::env::var_os("PASSTHRU_BINARY") {
                return PathBuf::from(path);
            }
            let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
            let workspace = manifest.parent().expect("workspace root");
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| workspace.join("target"), PathBuf::from);
            let profile = if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            };
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let mut build = Command::new(cargo);
            build
                .current_dir(workspace)
                .args(["build", "-q", "-p", "passthru", "--bin", "passthru"]);
            if profile == "release" {
                build.arg("--release");
            }
            let status = build.status().expect("running cargo build");
            assert!(status.success(), "cargo build -p passthru failed");
            target.join(profile).join("passthru")
        })
        .clone()
}

/// A running `passthru run --config FILE`, killed when dropped.
pub struct BinaryProxy {
    child: Child,
    stderr: mpsc::Receiver<String>,
    stdout: mpsc::Receiver<String>,
    /// The first listener's bound address.
    pub addr: SocketAddr,
    /// The admin endpoint's address, when the configuration has one.
    pub admin_addr: Option<SocketAddr>,
    /// With [`BinaryProxy::start_unread`]: its stdout and stderr, open and
    /// never read again.
    _unread: Option<(BufReader<ChildStderr>, ChildStdout)>,
    _dir: tempfile::TempDir,
}

impl BinaryProxy {
    /// Write `config` to a temporary file and start the binary on it; returns
    /// once its listener (and admin endpoint, when `[admin]` is configured)
    /// reported its address.
    pub fn start(config: &str) -> BinaryProxy {
        BinaryProxy::spawn(config, &[], true)
    }

    /// [`BinaryProxy::start`] with more arguments to `passthru run`.
    pub fn start_with(config: &str, args: &[&str]) -> BinaryProxy {
        BinaryProxy::spawn(config, args, true)
    }

    /// Like [`BinaryProxy::start`], but once the addresses are reported its
    /// stdout and stderr stay connected to pipes nobody reads (a stalled
    /// log collector): they fill up, and passthru must not care.
    pub fn start_unread(config: &str) -> BinaryProxy {
        BinaryProxy::spawn(config, &[], false)
    }

    fn spawn(config: &str, args: &[&str], read_output: bool) -> BinaryProxy {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("passthru.toml");
        std::fs::write(&path, config).expect("writing the configuration");
        let binary = passthru_binary();
        let mut child = Command::new(&binary)
            .args(["run", "--config"])
            .arg(&path)
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let want_admin = config.contains("[admin]");
        let (mut addr, mut admin_addr) = (None, None);
        let (stderr, stdout, unread) = if read_output {
            let stderr = lines(child.stderr.take().expect("stderr"));
            let stdout = lines(child.stdout.take().expect("stdout"));
            (stderr, stdout, None)
        } else {
            // Read stderr here, only until the addresses are reported.
            let mut reader = BufReader::new(child.stderr.take().expect("stderr"));
            let (tx, stderr) = mpsc::channel();
            let (_, stdout) = mpsc::channel();
            let mut line = String::new();
            for _ in 0..100 {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let _ = tx.send(line.trim_end().to_string());
                if line.contains("admin endpoint listening")
                    || !want_admin && line.contains("listening")
                {
                    break;
                }
            }
            let keep = (reader, child.stdout.take().expect("stdout"));
            (stderr, stdout, Some(keep))
        };
        while addr.is_none() || (want_admin && admin_addr.is_none()) {
            let line = stderr
                .recv_timeout(WAIT)
                .unwrap_or_else(|_| panic!("passthru did not report its addresses\n{config}"));
            let reported = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("addr="))
                .and_then(|a| a.parse::<SocketAddr>().ok());
            match reported {
                Some(a) if line.contains("admin endpoint listening") => admin_addr = Some(a),
                Some(a) if line.contains("listening") => addr = addr.or(Some(a)),
                _ => {}
            }
        }
        BinaryProxy {
            child,
            stderr,
            stdout,
            addr: addr.expect("listener address"),
            admin_addr,
            _unread: unread,
            _dir: dir,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next access-log line (stdout), waiting at most [`WAIT`].
    pub fn next_access_line(&self) -> String {
        self.stdout
            .recv_timeout(WAIT)
            .expect("an access-log line from passthru")
    }

    /// Access-log lines already written, without waiting.
    pub fn access_lines_so_far(&self) -> Vec<String> {
        self.stdout.try_iter().collect()
    }

    /// The next diagnostic line (stderr) containing `text`, waiting at most
    /// [`WAIT`] for each line.
    pub fn wait_diagnostic(&self, text: &str) -> String {
        loop {
            let line = self
                .stderr
                .recv_timeout(WAIT)
                .unwrap_or_else(|_| panic!("passthru did not log {text:?}"));
            if line.contains(text) {
                return line;
            }
        }
    }

    /// Wait (at most about [`WAIT`]) for the process to exit; its exit code.
    pub fn wait_exit(mut self) -> i32 {
        // Polled: a child's exit has no event to wait on in std.
        for _ in 0..WAIT.as_millis() / 20 {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code().unwrap_or(-1);
            }
            let poll = std::time::Duration::from_millis(20);
            if let Err(mpsc::RecvTimeoutError::Disconnected) = self.stderr.recv_timeout(poll) {
                // stderr closed: the process is exiting, and nothing is
                // left to wait on but the clock (like every method here,
                // this one blocks its thread).
                #[allow(clippy::disallowed_methods)]
                std::thread::sleep(poll);
            }
        }
        panic!("passthru did not exit within {WAIT:?}");
    }

    /// Diagnostics written so far (stderr), without waiting.
    pub fn diagnostics_so_far(&self) -> Vec<String> {
        self.stderr.try_iter().collect()
    }

    /// User plus system CPU time of the process so far, in clock ticks
    /// (fields 14 and 15 of `/proc/PID/stat`).
    pub fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).expect("stat");
        // The command name (field 2) is in parentheses and may hold spaces.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after.split_whitespace().collect();
        let utime: u64 = fields.get(11).and_then(|v| v.parse().ok()).expect("utime");
        let stime: u64 = fields.get(12).and_then(|v| v.parse().ok()).expect("stime");
        utime + stime
    }

    /// Resident memory of the process, KiB (`VmRSS` of `/proc/PID/status`).
    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS")
    }

    /// The admin endpoint's `/metrics` body (Prometheus text).
    pub fn metrics(&self) -> String {
        let admin = self.admin_addr.expect("an [admin] section");
        let mut tcp = TcpStream::connect(admin).expect("connecting to the admin endpoint");
        tcp.set_read_timeout(Some(WAIT)).expect("timeout");
        tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: passthru\r\nConnection: close\r\n\r\n")
            .expect("writing the request");
        let mut response = String::new();
        tcp.read_to_string(&mut response).expect("reading /metrics");
        response
            .split_once("\r\n\r\n")
            .map_or(response.clone(), |(_, body)| body.to_string())
    }
}

impl Drop for BinaryProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of the sample `series` (name and labels exactly as exposed).
pub fn sample(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        line.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    })
}

/// Lines of `r`, read on a thread, delivered on a channel.
pub fn lines(r: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}
