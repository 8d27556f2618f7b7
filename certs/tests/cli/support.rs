//! Helpers for the process-level tests: run the binary with a deadline,
//! shared lab directories, `openssl s_server` and `tinyproxy` on port 0 /
//! a free port, a listener that never answers. Every wait is bounded.

use std::io::{BufRead as _, BufReader, Read, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// The binary under test.
pub(crate) fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_passthru-certs")
}

/// What a finished process left.
#[derive(Debug)]
pub(crate) struct Output {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Output {
    pub(crate) fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\nstderr: {}", self.stdout, self.stderr))
    }
}

/// Runs `passthru-certs args…`, feeding `stdin`, killed after `limit`.
pub(crate) fn run_with(args: &[&str], stdin: &[u8], limit: Duration) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args);
    run_command(cmd, stdin, limit)
}

/// Runs `passthru-certs args…` with a 30 s limit and no stdin.
pub(crate) fn run(args: &[&str]) -> Output {
    run_with(args, b"", Duration::from_secs(30))
}

/// Runs any command with piped stdio, killed by PID after `limit`.
pub(crate) fn run_command(mut cmd: Command, stdin: &[u8], limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let stdout = collect(child.stdout.take().unwrap());
    let stderr = collect(child.stderr.take().unwrap());
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {limit:?}");
        }
        pause();
    };
    let _ = writer.join();
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

fn collect(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// A lab written by `passthru-certs lab`, and the "now" it was made for.
pub(crate) struct LabDir {
    _tmp: tempfile::TempDir,
    pub(crate) dir: PathBuf,
    /// RFC 3339.
    pub(crate) now: String,
}

impl LabDir {
    /// `dir/name` as a string.
    pub(crate) fn file(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// The lab's "now" in seconds since the epoch (for `openssl -attime`).
    pub(crate) fn now_epoch(&self) -> u64 {
        humantime::parse_rfc3339(&self.now)
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }
}

fn write_lab(now: Option<&str>) -> LabDir {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lab");
    let out = dir.display().to_string();
    let mut args = vec!["lab", "--out", out.as_str(), "--json"];
    if let Some(now) = now {
        args.extend(["--now", now]);
    }
    let output = run(&args);
    assert_eq!(output.code(), 0, "lab failed: {}", output.stderr);
    let now = output.json()["now"].as_str().unwrap().to_owned();
    LabDir {
        _tmp: tmp,
        dir,
        now,
    }
}

/// A lab made for 2026-05-28T20:26:40Z (for checks at a fixed time).
pub(crate) fn fixed_lab() -> &'static LabDir {
    static LAB: OnceLock<LabDir> = OnceLock::new();
    LAB.get_or_init(|| write_lab(Some(FIXED_NOW)))
}

/// A lab made for the real "now" (for live handshakes).
pub(crate) fn live_lab() -> &'static LabDir {
    static LAB: OnceLock<LabDir> = OnceLock::new();
    LAB.get_or_init(|| write_lab(None))
}

pub(crate) const FIXED_NOW: &str = "2026-05-28T20:26:40Z";

/// Lines a child printed, collected as they come.
#[derive(Clone, Default)]
pub(crate) struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    fn follow(&self, pipe: impl Read + Send + 'static, tx: Option<mpsc::Sender<String>>) {
        let lines = self.clone();
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(tx) = &tx {
                    let _ = tx.send(line.clone());
                }
                lines.0.lock().unwrap().push(line);
            }
        });
    }

    pub(crate) fn text(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }

    /// Waits (bounded) until some line contains `needle`.
    pub(crate) fn wait_for(&self, needle: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.text().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "{needle:?} never appeared within {limit:?} in:\n{}",
                self.text()
            );
            pause();
        }
    }
}

/// A child process killed by its PID on drop.
pub(crate) struct Running {
    child: Child,
    _stdin: ChildStdin,
    pub(crate) port: u16,
    pub(crate) output: Lines,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `openssl s_server -accept 127.0.0.1:0 args…` in `dir`, once it printed
/// its port. Stdin stays open (s_server quits on EOF).
pub(crate) fn s_server(dir: &Path, args: &[&str]) -> Running {
    let mut child = Command::new("openssl")
        .arg("s_server")
        .args(["-accept", "127.0.0.1:0"])
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl is needed (apt-get install openssl)");
    let (tx, rx) = mpsc::channel();
    let output = Lines::default();
    output.follow(child.stdout.take().unwrap(), Some(tx));
    output.follow(child.stderr.take().unwrap(), None);
    let stdin = child.stdin.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let port = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("s_server printed no ACCEPT line:\n{}", output.text()));
        if let Some(addr) = line.strip_prefix("ACCEPT ") {
            break addr.rsplit_once(':').unwrap().1.parse().unwrap();
        }
    };
    Running {
        child,
        _stdin: stdin,
        port,
        output,
    }
}

/// `tinyproxy` on a free loopback port, allowing CONNECT to `connect_port`
/// only, once it accepts connections.
pub(crate) fn tinyproxy(dir: &Path, connect_port: u16) -> Running {
    // tinyproxy has no "port 0": take a free port and hand it over.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.join(format!("tinyproxy-{port}.conf"));
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 30\nAllow 127.0.0.1\n\
             ConnectPort {connect_port}\nMaxClients 20\nLogLevel Info\n"
        ),
    )
    .unwrap();
    let mut child = Command::new("tinyproxy")
        .arg("-d")
        .arg("-c")
        .arg(&config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tinyproxy is needed (apt-get install tinyproxy)");
    let output = Lines::default();
    output.follow(child.stdout.take().unwrap(), None);
    output.follow(child.stderr.take().unwrap(), None);
    let stdin = child.stdin.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("tinyproxy exited with {status}:\n{}", output.text());
        }
        assert!(
            Instant::now() < deadline,
            "tinyproxy never accepted on {port}:\n{}",
            output.text()
        );
        pause();
    }
    Running {
        child,
        _stdin: stdin,
        port,
        output,
    }
}

/// A port that accepts TCP connections and never writes a byte.
pub(crate) fn silent_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    port
}

/// A loopback port nothing listens on.
pub(crate) fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `openssl args…` (30 s limit).
pub(crate) fn openssl(args: &[&str]) -> Output {
    let mut cmd = Command::new("openssl");
    cmd.args(args);
    run_command(cmd, b"", Duration::from_secs(30))
}

/// One step of a bounded poll (a child's exit, a port, a line of output).
#[allow(clippy::disallowed_methods)] // plain test threads, no async runtime to block
fn pause() {
    thread::sleep(Duration::from_millis(10));
}
