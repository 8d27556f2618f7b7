//! The drain as operators meet it: the `passthru` binary behind a real
//! HAProxy (TCP mode, `option httpchk GET /healthz`, `check port` on the
//! admin endpoint, `send-proxy-v2`) while a client loop runs through it;
//! cut connections that keep their access line and byte counts; a second
//! signal; drain settings and restart-only keys on reload; named routes.
//! HAProxy runs in the foreground in a temporary directory on loopback
//! ports; every child is killed by its PID.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// Blocking process-level tests without a runtime: std's clock is the right one.
#![allow(clippy::disallowed_types)]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use support::*;

/// A port free on 127.0.0.1 a moment ago (for configurations that must
/// name it before the process that binds it starts).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// passthru behind HAProxy: PROXY v2 from 127.0.0.1, one route to `backend`.
fn behind_haproxy(listen: u16, admin: u16, backend: SocketAddr, admin_extra: &str) -> String {
    format!(
        "[[listener]]\nname = \"public\"\nbind = \"127.0.0.1:{listen}\"\n\
         proxy_protocol = \"v2\"\ntrusted_proxies = [\"127.0.0.1\"]\n\
         [[route]]\nserver_names = [\"gw.example.com\"]\nbackend = \"gw\"\n\
         [[backend]]\nname = \"gw\"\nservers = [\"{backend}\"]\n\
         [admin]\nbind = \"127.0.0.1:{admin}\"\n{admin_extra}\n"
    )
}

/// One passthru node: its ports, its configuration file, its process.
struct Node {
    listen: u16,
    admin: u16,
    dir: tempfile::TempDir,
    config: String,
}

impl Node {
    fn new(backend: SocketAddr, admin_extra: &str) -> Node {
        let (listen, admin) = (free_port(), free_port());
        Node {
            listen,
            admin,
            dir: tempfile::tempdir().unwrap(),
            config: behind_haproxy(listen, admin, backend, admin_extra),
        }
    }

    fn start(&self) -> Running {
        let path = write_config(self.dir.path(), &self.config);
        let proc = Running::start(&path, &[]);
        proc.listening_addr();
        admin_addr(&proc);
        proc
    }
}

/// HAProxy in the foreground; its stderr lines with the time each arrived.
struct Haproxy {
    child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    /// A TCP frontend on `front` balancing over `nodes` (server names
    /// p1, p2, …), each checked with `GET /healthz` on its admin port and
    /// sent PROXY v2; `check` is appended to every server line.
    fn start(front: u16, nodes: &[&Node], check: &str) -> Haproxy {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = format!(
            "defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n\
             frontend fe\n    bind 127.0.0.1:{front}\n    default_backend be\n\
             backend be\n    option httpchk GET /healthz\n"
        );
        for (i, n) in nodes.iter().enumerate() {
            cfg.push_str(&format!(
                "    server p{} 127.0.0.1:{} check port {} send-proxy-v2 {check}\n",
                i + 1,
                n.listen,
                n.admin
            ));
        }
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, cfg).unwrap();
        let mut child = Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(&path)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("haproxy is not installed (make deps)");
        let raw = lines(child.stderr.take().unwrap());
        let (tx, stamped) = mpsc::channel();
        std::thread::spawn(move || {
            while let Ok(line) = raw.recv() {
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        // Ready when its frontend accepts.
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(("127.0.0.1", front)).is_err() {
            assert!(
                Instant::now() < deadline,
                "HAProxy did not listen within {WAIT:?}"
            );
            // Polling a port: no event to wait on.
            let _ = stamped.recv_timeout(Duration::from_millis(20));
        }
        Haproxy {
            child,
            lines: stamped,
            _dir: dir,
        }
    }

    /// When the first line containing `what` arrived.
    fn wait(&self, what: &str, limit: Duration) -> Instant {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((at, line)) if line.contains(what) => return at,
                Ok(_) => {}
                Err(_) => panic!("HAProxy did not log {what:?} within {limit:?}"),
            }
        }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Clients that connect through `addr` one after the other, send a
/// ClientHello and read its echo, until stopped; each thread counts its
/// successes and describes its failures.
struct Clients {
    stop: Vec<mpsc::Sender<()>>,
    threads: Vec<JoinHandle<(u64, Vec<String>)>>,
}

impl Clients {
    fn start(addr: SocketAddr, count: usize) -> Clients {
        let (mut stop, mut threads) = (Vec::new(), Vec::new());
        for _ in 0..count {
            let (tx, rx) = mpsc::channel::<()>();
            stop.push(tx);
            threads.push(std::thread::spawn(move || {
                let hello = hello_for("gw.example.com");
                let (mut ok, mut failed) = (0, Vec::new());
                // Bounded: a test never loops forever. Paced (the wait
                // for the stop message) to a few hundred a second, so as
                // not to load a shared machine.
                for _ in 0..MAX_ROUNDS {
                    if rx.recv_timeout(PACE) != Err(mpsc::RecvTimeoutError::Timeout) {
                        break;
                    }
                    match round_trip(addr, &hello) {
                        Ok(()) => ok += 1,
                        Err(e) => failed.push(e),
                    }
                }
                (ok, failed)
            }));
        }
        Clients { stop, threads }
    }

    fn finish(self) -> (u64, Vec<String>) {
        drop(self.stop);
        let mut all = (0, Vec::new());
        for t in self.threads {
            let (ok, failed) = t.join().unwrap();
            all.0 += ok;
            all.1.extend(failed);
        }
        all
    }
}

const PACE: Duration = Duration::from_millis(2);
const MAX_ROUNDS: usize = 1_000_000;

fn round_trip(addr: SocketAddr, hello: &[u8]) -> Result<(), String> {
    let mut tcp = TcpStream::connect_timeout(&addr, WAIT).map_err(|e| format!("connect: {e}"))?;
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    tcp.write_all(hello).map_err(|e| format!("write: {e}"))?;
    let mut echo = vec![0u8; hello.len()];
    tcp.read_exact(&mut echo)
        .map_err(|e| format!("read: {e}"))?;
    if echo != hello {
        return Err("echo differs".to_string());
    }
    Ok(())
}

/// Wait until `node` has served a connection of the client loop.
fn wait_served(proc: &Running) {
    Running::wait_line_within(&proc.stdout, "a routed connection", LONG, |l| {
        l.contains("outcome=ok")
    });
}

const LONG: Duration = Duration::from_secs(60);

/// `after=1.234s` of the "listeners closed" line, in seconds, and its `why=`.
fn listeners_closed(stderr: &[String]) -> (f64, String) {
    let line = stderr
        .iter()
        .find(|l| l.contains("listeners closed"))
        .unwrap_or_else(|| panic!("no 'listeners closed' line in {stderr:#?}"));
    let field = |k: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .unwrap_or_else(|| panic!("no {k} in {line}"))
            .to_string()
    };
    let after = field("after=");
    let after: f64 = after.trim_end_matches('s').parse().unwrap();
    (after, field("why="))
}

/// SIGTERM `proc` while the clients run: HAProxy's mark-down time and
/// passthru's listener-close time (seconds after the signal), the reason,
/// and the exit code.
fn drain_one(proc: Running, haproxy: &Haproxy, server: &str) -> (f64, f64, String, i32) {
    let signalled = Instant::now();
    proc.signal("-TERM");
    let down = haproxy.wait(&format!("Server be/{server} is DOWN"), LONG);
    let exited = proc.wait_exit_collect(LONG);
    let (closed, why) = listeners_closed(&exited.stderr);
    (
        down.duration_since(signalled).as_secs_f64(),
        closed,
        why,
        exited.code,
    )
}

#[test]
fn behind_haproxy_with_default_checks_a_sigterm_refuses_no_connection() {
    let backend = echo_server();
    let (p1, p2) = (Node::new(backend, ""), Node::new(backend, ""));
    let (mut first, _second) = (p1.start(), p2.start());
    let front = free_port();
    let haproxy = Haproxy::start(front, &[&p1, &p2], "");
    let clients = Clients::start(SocketAddr::from(([127, 0, 0, 1], front)), 2);
    let mut report = Vec::new();
    for cycle in 1..=CYCLES {
        wait_served(&first);
        let (down, closed, why, code) = drain_one(first, &haproxy, "p1");
        println!(
            "cycle {cycle}: HAProxy (inter 2s, fall 3) marked p1 down {down:.1}s after SIGTERM; passthru (drain_delay 20s) closed its listeners at {closed:.1}s (why={why})"
        );
        report.push((down, closed, why, code));
        // Back up for the next cycle: HAProxy must see it rise again.
        first = p1.start();
        haproxy.wait("Server be/p1 is UP", LONG);
    }
    let (ok, failed) = clients.finish();
    println!("{ok} connections through HAProxy, {} failed", failed.len());
    assert!(
        failed.is_empty(),
        "{} failed connections, the first: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(ok > 0);
    for (down, closed, why, code) in report {
        assert_eq!(code, 0);
        assert_eq!(why, "drain_delay");
        assert!(
            down < closed,
            "HAProxy marked the node down at {down:.1}s, after the listeners closed at {closed:.1}s"
        );
    }
}

/// Drain cycles of the default-timing test (each takes drain_delay, 20 s).
const CYCLES: usize = 2;

#[test]
fn with_monitor_fall_the_listeners_close_once_haproxy_has_marked_the_node_down() {
    let backend = echo_server();
    let p1 = Node::new(backend, "drain_delay = \"30s\"\nmonitor_fall = 3\n");
    let p2 = Node::new(backend, "");
    let (first, _second) = (p1.start(), p2.start());
    let front = free_port();
    let haproxy = Haproxy::start(front, &[&p1, &p2], "inter 300ms fall 3");
    let clients = Clients::start(SocketAddr::from(([127, 0, 0, 1], front)), 2);
    wait_served(&first);
    let (down, closed, why, code) = drain_one(first, &haproxy, "p1");
    let (ok, failed) = clients.finish();
    println!(
        "monitor_fall = 3: HAProxy (inter 300ms, fall 3) marked p1 down {down:.1}s after SIGTERM; passthru (drain_delay 30s) closed its listeners at {closed:.1}s (why={why}); {ok} connections, {} failed",
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "{} failed connections, the first: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert_eq!(code, 0);
    // Closed because the monitor had its three 503s, not at drain_delay.
    assert_eq!(why, "monitor_fall");
    assert!(down < closed, "down at {down:.1}s, closed at {closed:.1}s");
}

/// The access line of the one connection that `stdout` logged as cut.
fn stopped_line(stdout: &[String]) -> &str {
    stdout
        .iter()
        .find(|l| l.contains("end=stopped"))
        .unwrap_or_else(|| panic!("no end=stopped line in {stdout:#?}"))
}

/// Open a routed connection to `addr` and move `extra` bytes each way
/// (echoed); returns the connection and the bytes moved each way.
fn busy(addr: SocketAddr, extra: usize) -> (TcpStream, usize) {
    let mut tcp = routed(addr);
    let payload = vec![b'x'; extra];
    tcp.write_all(&payload).unwrap();
    let mut back = vec![0u8; extra];
    tcp.read_exact(&mut back).unwrap();
    (tcp, hello_for("gw.example.com").len() + extra)
}

#[test]
fn a_connection_cut_by_drain_timeout_keeps_its_line_and_byte_counts_ten_times_of_ten() {
    let backend = echo_server();
    let runs: Vec<JoinHandle<()>> = (0..10)
        .map(|i| {
            std::thread::spawn(move || {
                let dir = tempfile::tempdir().unwrap();
                let path = write_config(dir.path(), &drain_config(backend, "0s", "200ms"));
                let proc = Running::start(&path, &[]);
                let addr = proc.listening_addr();
                let (_open, moved) = busy(addr, 1000 + i);
                proc.signal("-TERM");
                let exited = proc.wait_exit_collect(WAIT);
                assert_eq!(exited.code, 0);
                let line = stopped_line(&exited.stdout);
                assert!(line.contains(&format!("bytes_up={moved} ")), "{line}");
                assert!(line.contains(&format!("bytes_down={moved} ")), "{line}");
                assert!(line.contains("outcome=ok"), "{line}");
            })
        })
        .collect();
    for run in runs {
        run.join().unwrap();
    }
}

#[test]
fn a_second_sigterm_ends_the_drain_at_once_and_still_writes_the_lines() {
    let backend = echo_server();
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &drain_config(backend, "60s", "60s"));
    let proc = Running::start(&path, &[]);
    let addr = proc.listening_addr();
    let (_open, moved) = busy(addr, 300);
    proc.signal("-TERM");
    Running::wait_line(&proc.stderr, "draining line", |l| l.contains("draining"));
    proc.signal("-TERM");
    let exited = proc.wait_exit_collect(Duration::from_secs(2));
    assert_eq!(exited.code, 0);
    let (_, why) = listeners_closed(&exited.stderr);
    assert_eq!(why, "second_signal");
    let line = stopped_line(&exited.stdout);
    assert!(line.contains(&format!("bytes_up={moved} ")), "{line}");
}

#[test]
fn a_reload_applies_drain_delay_and_names_the_keys_that_need_a_restart() {
    let backend = echo_server();
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &drain_config(backend, "60s", "5s"));
    let proc = Running::start(&path, &[]);
    proc.listening_addr();
    // The listener and the admin endpoint move (restart-only), the drain
    // delay shortens (applied).
    let text = drain_config(backend, "100ms", "5s")
        .replace(
            "bind = \"127.0.0.1:0\"\n[[route]]",
            &format!("bind = \"127.0.0.1:{}\"\n[[route]]", free_port()),
        )
        .replace(
            "[admin]\nbind = \"127.0.0.1:0\"",
            &format!("[admin]\nbind = \"127.0.0.1:{}\"", free_port()),
        );
    std::fs::write(&path, text).unwrap();
    proc.signal("-HUP");
    let warned = std::cell::RefCell::new(Vec::new());
    Running::wait_line(&proc.stderr, "reload line", |l| {
        if l.contains("changed; it takes effect only after a restart") {
            warned.borrow_mut().push(l.to_string());
        }
        l.contains("configuration reloaded")
    });
    let warned = warned.into_inner().join("\n");
    assert!(warned.contains("listener[0].bind changed"), "{warned}");
    assert!(warned.contains("admin.bind changed"), "{warned}");
    proc.signal("-TERM");
    let exited = proc.wait_exit_collect(WAIT);
    assert_eq!(exited.code, 0);
    let draining = exited
        .stderr
        .iter()
        .find(|l| l.contains("draining"))
        .unwrap();
    assert!(draining.contains("delay=100ms"), "{draining}");
}

/// `passthru COMMAND --config FILE` with `text` in FILE: exit code, stderr.
fn exit_of(command: &str, text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), text);
    let out = passthru(&[command, "--config", path.to_str().unwrap()]);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn admin_without_bind_and_duplicate_route_names_exit_2() {
    let backend: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let no_bind =
        drain_config(backend, "5s", "5s").replace("[admin]\nbind = \"127.0.0.1:0\"\n", "[admin]\n");
    for (code, err) in [exit_of("check", &no_bind), exit_of("run", &no_bind)] {
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("admin.bind is required"), "{err}");
    }
    let dup = drain_config(backend, "5s", "5s").replace(
        "[[route]]\n",
        "[[route]]\nname = \"agents\"\nserver_names = [\"a.example.com\"]\nbackend = \"gw\"\n[[route]]\nname = \"agents\"\n",
    );
    for (code, err) in [exit_of("check", &dup), exit_of("run", &dup)] {
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains("route[1].name = \"agents\" is already used by route[0].name"),
            "{err}"
        );
    }
}

#[test]
fn a_named_route_is_in_the_access_log_the_metrics_and_check_explain() {
    let backend = echo_server();
    let dir = tempfile::tempdir().unwrap();
    let text =
        drain_config(backend, "0s", "1s").replace("[[route]]\n", "[[route]]\nname = \"agents\"\n");
    let path = write_config(dir.path(), &text);
    let proc = Running::start(&path, &[]);
    let addr = proc.listening_addr();
    let admin = admin_addr(&proc);
    drop(routed(addr));
    let line = Running::wait_line(&proc.stdout, "access line", |l| l.contains("outcome=ok"));
    assert!(line.contains("route=agents "), "{line}");
    let metrics = get(admin, "/metrics");
    assert!(metrics.contains("route=\"agents\""), "{metrics}");
    let out = passthru(&[
        "check",
        "--config",
        path.to_str().unwrap(),
        "--explain",
        "gw.example.com",
    ]);
    let explained = String::from_utf8_lossy(&out.stdout);
    assert!(
        explained.contains("agents (route[0]), exact name"),
        "{explained}"
    );
    proc.signal("-TERM");
    assert_eq!(proc.wait_exit(), 0);
}

#[test]
fn an_unnamed_listener_on_port_0_is_labelled_with_its_port() {
    let dir = tempfile::tempdir().unwrap();
    let text = drain_config(echo_server(), "0s", "1s").replace("name = \"public\"\n", "");
    let path = write_config(dir.path(), &text);
    let proc = Running::start(&path, &[]);
    let addr = proc.listening_addr();
    drop(routed(addr));
    let line = Running::wait_line(&proc.stdout, "access line", |l| l.contains("outcome=ok"));
    assert!(line.contains(&format!("listener={addr} ")), "{line}");
    proc.signal("-TERM");
    assert_eq!(proc.wait_exit(), 0);
}
