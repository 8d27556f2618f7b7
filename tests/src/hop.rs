//! HTTP proxies for tests of the `via` hop and inbound CONNECT: a scripted
//! fake hop that records the request and answers as told, and real
//! tinyproxy on 127.0.0.1.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// What the fake hop does after reading the CONNECT request head.
#[derive(Debug, Clone)]
pub enum HopScript {
    /// Answer this (e.g. `HTTP/1.1 200 OK\r\n\r\nEXTRA`), then relay to the target.
    Tunnel(Vec<u8>),
    /// Answer this and close.
    Refuse(Vec<u8>),
    /// Read the request, then say nothing and keep the connection open.
    Silence,
}

/// A fake HTTP proxy.
pub struct FakeHop;

/// A running [`FakeHop`].
pub struct RunningHop {
    /// Where it listens.
    pub addr: SocketAddr,
    requests: mpsc::UnboundedReceiver<HopRequest>,
}

/// What the fake hop received before answering.
#[derive(Debug, Clone)]
pub struct HopRequest {
    /// The request head, blank line included.
    pub head: Vec<u8>,
    /// Bytes that had already arrived after the head when it was read
    /// (must be empty: nothing may be sent before the answer).
    pub early: Vec<u8>,
}

impl FakeHop {
    /// Bind 127.0.0.1:0 and serve every connection with `script`.
    pub async fn spawn(script: HopScript) -> RunningHop {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, requests) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let tx = tx.clone();
                let script = script.clone();
                tokio::spawn(async move { serve(tcp, script, tx).await });
            }
        });
        RunningHop { addr, requests }
    }
}

async fn serve(mut tcp: TcpStream, script: HopScript, tx: mpsc::UnboundedSender<HopRequest>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_len = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        match tcp.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let mut early = buf.split_off(head_len);
    // Anything already queued behind the head was sent before our answer.
    while let Ok(n) = tcp.try_read(&mut chunk) {
        if n == 0 {
            break;
        }
        early.extend_from_slice(&chunk[..n]);
    }
    let target = String::from_utf8_lossy(&buf)
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let _ = tx.send(HopRequest {
        head: buf,
        early: early.clone(),
    });
    match script {
        HopScript::Silence => {
            let _ = tcp.read(&mut chunk).await;
        }
        HopScript::Refuse(answer) => {
            let _ = tcp.write_all(&answer).await;
        }
        HopScript::Tunnel(answer) => {
            let Ok(mut server) = TcpStream::connect(target.as_str()).await else {
                return;
            };
            if tcp.write_all(&answer).await.is_err() || server.write_all(&early).await.is_err() {
                return;
            }
            let _ = tokio::io::copy_bidirectional(&mut tcp, &mut server).await;
        }
    }
}

impl RunningHop {
    /// The next request the hop received.
    pub async fn next_request(&mut self) -> HopRequest {
        crate::wait::within("a CONNECT request at the hop", self.requests.recv())
            .await
            .expect("hop task ended")
    }
}

/// Real tinyproxy in the foreground, killed when dropped.
pub struct Tinyproxy {
    /// Where it listens.
    pub addr: SocketAddr,
    _child: Child,
    _dir: tempfile::TempDir,
}

impl Tinyproxy {
    /// Start tinyproxy allowing CONNECT to `allowed_port` only, with
    /// `BasicAuth user pass` when `auth` is given.
    pub async fn start(allowed_port: u16, auth: Option<(&str, &str)>) -> Tinyproxy {
        let dir = tempfile::tempdir().expect("temp dir");
        // tinyproxy cannot report a kernel-chosen port: take a free one.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut conf = format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 60\nAllow 127.0.0.1\nConnectPort {allowed_port}\nMaxClients 50\nLogLevel Info\n"
        );
        if let Some((user, pass)) = auth {
            conf.push_str(&format!("BasicAuth {user} {pass}\n"));
        }
        let path = dir.path().join("tinyproxy.conf");
        std::fs::write(&path, conf).expect("write tinyproxy.conf");
        let child = tinyproxy_command(&path)
            .spawn()
            .expect("tinyproxy is not installed: run `make deps`");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut up = false;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::time::Instant::now() < deadline {
            if TcpStream::connect(addr).await.is_ok() {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(up, "tinyproxy did not listen on {addr} within 10 s");
        Tinyproxy {
            addr,
            _child: child,
            _dir: dir,
        }
    }
}

fn tinyproxy_command(conf: &Path) -> Command {
    let mut cmd = Command::new("tinyproxy");
    cmd.arg("-d")
        .arg("-c")
        .arg(conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    cmd
}
