//! What the binary's tests share: running `passthru` and reading its
//! lines, an echo backend, hand-made ClientHellos, the admin endpoint.
//! Children are killed by their PID.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_passthru");
pub(crate) const WAIT: Duration = Duration::from_secs(10);

pub(crate) fn passthru(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

pub(crate) fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("passthru.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A running `passthru run`, its stderr and stdout lines on channels.
pub(crate) struct Running {
    pub(crate) child: Child,
    pub(crate) stderr: mpsc::Receiver<String>,
    pub(crate) stdout: mpsc::Receiver<String>,
}

impl Running {
    pub(crate) fn start(config: &Path, extra: &[&str]) -> Running {
        Running::spawn(
            Command::new(BIN)
                .args(["run", "--config", config.to_str().unwrap()])
                .args(extra),
        )
    }

    /// Spawn `command` (a passthru, possibly wrapped) with `RUST_LOG=info`
    /// and its output on channels.
    pub(crate) fn spawn(command: &mut Command) -> Running {
        let mut child = command
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = lines(child.stderr.take().unwrap());
        let stdout = lines(child.stdout.take().unwrap());
        Running {
            child,
            stderr,
            stdout,
        }
    }

    pub(crate) fn wait_line(
        rx: &mpsc::Receiver<String>,
        what: &str,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        Self::wait_line_within(rx, what, WAIT, pred)
    }

    /// The first line matching `pred` within `limit`.
    pub(crate) fn wait_line_within(
        rx: &mpsc::Receiver<String>,
        what: &str,
        limit: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if pred(&line) => return line,
                Ok(_) => {}
                Err(_) => panic!("no {what} within {limit:?}"),
            }
        }
    }

    /// The address from the "listening" startup line.
    pub(crate) fn listening_addr(&self) -> SocketAddr {
        let line = Self::wait_line(&self.stderr, "listening line", |l| l.contains("listening"));
        // Text: `addr=IP:PORT`; JSON: `"addr":"IP:PORT"`.
        let addr = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("addr="))
            .or_else(|| {
                line.split("\"addr\":\"")
                    .nth(1)
                    .and_then(|rest| rest.split('"').next())
            })
            .unwrap_or_else(|| panic!("no addr in {line}"));
        addr.parse().unwrap()
    }

    /// Whether the child has not exited yet.
    pub(crate) fn child_running(&self) -> bool {
        // try_wait needs &mut; the /proc entry answers without reaping.
        std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .is_ok_and(|stat| !stat.contains(") Z "))
    }

    pub(crate) fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([name, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub(crate) fn wait_exit(self) -> i32 {
        self.wait_exit_within(WAIT)
    }

    /// The exit code, waiting at most `limit` (then kill and panic).
    pub(crate) fn wait_exit_within(self, limit: Duration) -> i32 {
        self.wait_exit_collect(limit).code
    }

    /// The exit code and the lines not read before, waiting at most
    /// `limit` (then kill and panic).
    pub(crate) fn wait_exit_collect(mut self, limit: Duration) -> Exited {
        let deadline = std::time::Instant::now() + limit;
        let mut stderr = Vec::new();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // The pipes close with the process: read both to the end.
                stderr.extend(std::iter::from_fn(|| self.stderr.recv_timeout(WAIT).ok()));
                let stdout = std::iter::from_fn(|| self.stdout.recv_timeout(WAIT).ok()).collect();
                return Exited {
                    code: status.code().unwrap_or(-1),
                    stderr,
                    stdout,
                };
            }
            if std::time::Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("passthru did not exit within {limit:?}");
            }
            // Polling a child's exit status: no event to wait on in std.
            if let Ok(line) = self.stderr.recv_timeout(Duration::from_millis(20)) {
                stderr.push(line);
            }
        }
    }
}

/// A `passthru run` that has exited, and the lines it wrote that were not
/// read before.
#[derive(Debug)]
pub(crate) struct Exited {
    pub(crate) code: i32,
    pub(crate) stderr: Vec<String>,
    pub(crate) stdout: Vec<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn lines(r: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

pub(crate) fn http_get(addr: SocketAddr) -> String {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: gw\r\nX-Forwarded-Proto: https\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    tcp.read_to_string(&mut reply).unwrap();
    reply
}

/// A minimal TLS 1.2 ClientHello with this SNI.
pub(crate) fn hello_for(name: &str) -> Vec<u8> {
    let n = name.len() as u16;
    let mut ext = vec![0, 0];
    ext.extend_from_slice(&(n + 5).to_be_bytes());
    ext.extend_from_slice(&(n + 3).to_be_bytes());
    ext.push(0);
    ext.extend_from_slice(&n.to_be_bytes());
    ext.extend_from_slice(name.as_bytes());
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7; 32]);
    body.push(0);
    body.extend_from_slice(&[0, 2, 0xc0, 0x2f, 1, 0]);
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![1, 0];
    hs.extend_from_slice(&(body.len() as u16).to_be_bytes());
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 3, 1];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

/// An echo server on 127.0.0.1:0 in a thread: each connection is echoed
/// until it closes.
pub(crate) fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { break };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 || conn.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

pub(crate) fn drain_config(backend: SocketAddr, delay: &str, timeout: &str) -> String {
    format!(
        "[[listener]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\n\
         [[route]]\nserver_names = [\"gw.example.com\"]\nbackend = \"gw\"\n\
         [[backend]]\nname = \"gw\"\nservers = [\"{backend}\"]\n\
         [admin]\nbind = \"127.0.0.1:0\"\ndrain_delay = \"{delay}\"\ndrain_timeout = \"{timeout}\"\n"
    )
}

pub(crate) fn admin_addr(proc: &Running) -> SocketAddr {
    let line = Running::wait_line(&proc.stderr, "admin line", |l| {
        l.contains("admin endpoint listening")
    });
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("addr="))
        .unwrap()
        .parse()
        .unwrap()
}

pub(crate) fn get(addr: SocketAddr, path: &str) -> String {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    tcp.write_all(format!("GET {path} HTTP/1.1\r\nHost: admin\r\n\r\n").as_bytes())
        .unwrap();
    let mut reply = String::new();
    let _ = tcp.read_to_string(&mut reply);
    reply
}

/// Open a routed connection and check one echo round trip.
pub(crate) fn routed(addr: SocketAddr) -> TcpStream {
    try_routed(addr).unwrap()
}

/// [`routed`], with the error instead of a panic.
pub(crate) fn try_routed(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let mut tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(WAIT))?;
    let hello = hello_for("gw.example.com");
    tcp.write_all(&hello)?;
    let mut echo = vec![0u8; hello.len()];
    tcp.read_exact(&mut echo)?;
    if echo != hello {
        return Err(std::io::Error::other("the echo differs from what was sent"));
    }
    Ok(tcp)
}

/// The `addr=` field of the first stderr line matching `pred`.
pub(crate) fn logged_addr(proc: &Running, what: &str, pred: impl Fn(&str) -> bool) -> SocketAddr {
    let line = Running::wait_line(&proc.stderr, what, pred);
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("addr="))
        .unwrap_or_else(|| panic!("no addr in {line}"))
        .parse()
        .unwrap()
}
