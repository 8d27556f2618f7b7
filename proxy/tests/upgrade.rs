//! Upgrades without refusing a connection, with the real binary: a second
//! passthru takes the listening sockets over (`--takeover`) under load, a
//! failed takeover changes nothing, and systemd socket activation serves on
//! the inherited socket. Children are killed by their PID.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// Blocking process-level tests without a runtime: std's clock is the right one.
#![allow(clippy::disallowed_types)]

mod support;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;

use support::{
    BIN, Running, WAIT, admin_addr, echo_server, get, logged_addr, routed, try_routed, write_config,
};

fn handoff_config(backend: SocketAddr, socket: &Path, extra_listener: bool) -> String {
    let extra = if extra_listener {
        "[[listener]]\nname = \"extra\"\nbind = \"127.0.0.1:0\"\n"
    } else {
        ""
    };
    format!(
        "[[listener]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\n{extra}\
         [[route]]\nserver_names = [\"gw.example.com\"]\nbackend = \"gw\"\n\
         [[backend]]\nname = \"gw\"\nservers = [\"{backend}\"]\n\
         [admin]\nbind = \"127.0.0.1:0\"\ndrain_delay = \"0s\"\ndrain_timeout = \"10s\"\n\
         handoff = \"{}\"\n",
        socket.display()
    )
}

/// Short routed connections back to back until `stop`, and `/healthz`
/// requests between them: (connections made, connections failed, health
/// answers other than 200, the first failure).
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    unhealthy: Arc<AtomicU64>,
    thread: thread::JoinHandle<Option<String>>,
}

impl Load {
    fn start(addr: SocketAddr, admin: SocketAddr) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let unhealthy = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, ok, failed, unhealthy) = (
                Arc::clone(&stop),
                Arc::clone(&ok),
                Arc::clone(&failed),
                Arc::clone(&unhealthy),
            );
            thread::spawn(move || {
                let mut first = None;
                // Bounded: the test stops it long before.
                for i in 0..1_000_000u32 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    match try_routed(addr) {
                        Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            first.get_or_insert(e.to_string());
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                    if i % 8 == 0 && !healthy(admin) {
                        unhealthy.fetch_add(1, Ordering::Relaxed);
                    }
                }
                first
            })
        };
        Load {
            stop,
            ok,
            failed,
            unhealthy,
            thread,
        }
    }

    /// Stop; (made, failed, unhealthy, first failure).
    fn finish(self) -> (u64, u64, u64, Option<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let first = self.thread.join().unwrap();
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.unhealthy.load(Ordering::Relaxed),
            first,
        )
    }
}

fn healthy(admin: SocketAddr) -> bool {
    let Ok(mut tcp) = TcpStream::connect(admin) else {
        return false;
    };
    let _ = tcp.set_read_timeout(Some(WAIT));
    if tcp
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut reply = String::new();
    let _ = tcp.read_to_string(&mut reply);
    reply.starts_with("HTTP/1.1 200")
}

fn echo_round_trip(tcp: &mut TcpStream, message: &[u8]) {
    tcp.write_all(message).unwrap();
    let mut echo = vec![0u8; message.len()];
    tcp.read_exact(&mut echo).unwrap();
    assert_eq!(echo, message);
}

#[test]
fn a_takeover_under_load_refuses_nothing_and_the_old_process_drains_its_connections() {
    let backend = echo_server();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("handoff.sock");
    let old_config = write_config(dir.path(), &handoff_config(backend, &socket, false));
    let old = Running::start(&old_config, &[]);
    let addr = old.listening_addr();
    let admin = admin_addr(&old);
    Running::wait_line(&old.stderr, "handoff line", |l| {
        l.contains("handoff socket listening")
    });
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the handoff socket must be 0600");

    let mut persistent: Vec<TcpStream> = (0..5).map(|_| routed(addr)).collect();
    let ports: HashSet<u16> = persistent
        .iter()
        .map(|t| t.local_addr().unwrap().port())
        .collect();
    let load = Load::start(addr, admin);
    Running::wait_line(&old.stdout, "an access line from the old process", |l| {
        l.contains("listener=public")
    });

    // The new configuration adds a listener: bound afresh.
    let new_dir = tempfile::tempdir().unwrap();
    let new_config = write_config(new_dir.path(), &handoff_config(backend, &socket, true));
    let new = Running::start(&new_config, &["--takeover", socket.to_str().unwrap()]);
    let inherited = logged_addr(&new, "inherited listener", |l| {
        l.contains("listening listener=public")
    });
    assert_eq!(inherited, addr, "the listener must be the same socket");
    let extra = logged_addr(&new, "new listener", |l| {
        l.contains("listening listener=extra")
    });
    assert_ne!(extra, addr);
    Running::wait_line(&new.stderr, "took-over line", |l| l.contains("took over"));
    Running::wait_line(&old.stderr, "the old process's switch line", |l| {
        l.contains("stopping accepting and draining")
    });
    Running::wait_line(&new.stdout, "an access line from the new process", |l| {
        l.contains("listener=public")
    });
    let _ = routed(extra);

    // The persistent connections still flow, through the old process.
    for tcp in &mut persistent {
        echo_round_trip(tcp, b"still here after the takeover");
    }
    assert!(
        old.child_running(),
        "the old process must wait for its open connections"
    );
    let (made, failed, unhealthy, first) = load.finish();
    assert_eq!(
        failed, 0,
        "{failed} of {made} connections failed: {first:?}"
    );
    assert!(made > 0);
    assert_eq!(unhealthy, 0, "/healthz must answer 200 throughout");
    assert!(get(admin, "/healthz").starts_with("HTTP/1.1 200"));

    // Closing them: the old process logs each, then exits 0.
    drop(persistent);
    let mut seen = HashSet::new();
    while seen.len() < ports.len() {
        let line = Running::wait_line(&old.stdout, "the persistent connections' lines", |_| true);
        if let Some(port) = ports
            .iter()
            .find(|p| line.contains(&format!("peer=127.0.0.1:{p} ")))
        {
            seen.insert(*port);
        }
    }
    assert_eq!(old.wait_exit(), 0);
    // The new process serves on, and can be taken over in turn.
    let _ = routed(addr);
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn a_failed_takeover_leaves_the_running_process_unchanged() {
    let backend = echo_server();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("handoff.sock");
    let config = write_config(dir.path(), &handoff_config(backend, &socket, false));
    let old = Running::start(&config, &[]);
    let addr = old.listening_addr();
    let admin = admin_addr(&old);
    Running::wait_line(&old.stderr, "handoff line", |l| {
        l.contains("handoff socket listening")
    });
    let sock = socket.to_str().unwrap();

    // An invalid configuration: exit 2, nothing asked of the old process.
    let bad_dir = tempfile::tempdir().unwrap();
    let invalid = handoff_config(backend, &socket, false).replace("127.0.0.1:0", "nowhere");
    let bad = write_config(bad_dir.path(), &invalid);
    let out = Command::new(BIN)
        .args(["run", "--config", bad.to_str().unwrap(), "--takeover", sock])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("listener[0].bind"), "{stderr}");

    // A new listener that cannot be bound (its port is taken): exit 2
    // after receiving the sockets, before the switch.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let unbindable = handoff_config(backend, &socket, true).replace(
        "name = \"extra\"\nbind = \"127.0.0.1:0\"",
        &format!(
            "name = \"extra\"\nbind = \"{}\"",
            taken.local_addr().unwrap()
        ),
    );
    let unbindable = write_config(bad_dir.path(), &unbindable);
    let out = Command::new(BIN)
        .args([
            "run",
            "--config",
            unbindable.to_str().unwrap(),
            "--takeover",
            sock,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("listener extra: cannot listen"), "{stderr}");
    Running::wait_line(&old.stderr, "the aborted takeover warning", |l| {
        l.contains("did not take over; still serving")
    });

    // A second process started without --takeover does not steal the
    // handoff socket of the running one.
    let out = Command::new(BIN)
        .args(["run", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("a running passthru listens there"),
        "{stderr}"
    );

    // No process at the socket: exit 2 with the reason.
    let nowhere = dir.path().join("nobody-here.sock");
    let out = Command::new(BIN)
        .args(["run", "--config", config.to_str().unwrap(), "--takeover"])
        .arg(&nowhere)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no running passthru listens there"),
        "{stderr}"
    );

    // Another user id: refused by SO_PEERCRED on both sides (the socket is
    // opened up to reach that check; its own mode would stop the peer
    // earlier).
    match other_user_can_run() {
        Err(reason) => eprintln!("skipped the other-uid takeover: {reason}"),
        Ok(()) => {
            for p in [dir.path(), config.as_path()] {
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
            std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
            let out = Command::new("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
                .args([
                    "run",
                    "--config",
                    config.to_str().unwrap(),
                    "--takeover",
                    sock,
                ])
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(2));
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains("runs as user id"), "{stderr}");
            // The running process refuses such a peer too (socat as user
            // 65534 reads what it answers).
            let out = Command::new("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .args(["socat", "-t", "5", "-", &format!("UNIX-CONNECT:{sock}")])
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            let answer = String::from_utf8_lossy(&out.stdout);
            assert!(answer.starts_with("refused user id 65534"), "{answer:?}");
            Running::wait_line(&old.stderr, "the refusal warning", |l| {
                l.contains("refused a peer with another user id")
            });
        }
    }

    // Unchanged: serving, healthy, and still ready to hand over.
    let _ = routed(addr);
    assert!(get(admin, "/healthz").starts_with("HTTP/1.1 200"));
    assert!(old.child_running());
    // A connection keeps the old process draining after the takeover; a
    // SIGTERM then ends its drain at once.
    let _held = routed(addr);
    let new = Running::start(&config, &["--takeover", sock]);
    Running::wait_line(&new.stderr, "took-over line", |l| l.contains("took over"));
    Running::wait_line(&old.stderr, "the old process's switch line", |l| {
        l.contains("stopping accepting and draining")
    });
    assert!(old.child_running(), "the held connection keeps it draining");
    old.signal("-TERM");
    Running::wait_line(&old.stderr, "the cut line", |l| {
        l.contains("signal after the handoff; closing the connections still open")
    });
    assert_eq!(old.wait_exit(), 0);
    let _ = routed(addr);
}

/// Whether this test can run passthru as user 65534 (root, setpriv, and
/// the binary reachable by that user), or why not.
fn other_user_can_run() -> Result<(), String> {
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            BIN,
            "--version",
        ])
        .output()
        .map_err(|e| format!("setpriv: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "cannot run passthru as user 65534 (not root, or the binary is not reachable): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[test]
fn socket_activation_serves_on_the_inherited_socket() {
    if Command::new("systemd-socket-activate")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: systemd-socket-activate is not installed (make deps installs systemd)");
        return;
    }
    let backend = echo_server();
    // A free port for systemd-socket-activate to listen on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let activated: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "[[listener]]\nname = \"activated\"\nbind = \"{activated}\"\n\
             [[listener]]\nname = \"own\"\nbind = \"127.0.0.1:0\"\n\
             [[route]]\nserver_names = [\"gw.example.com\"]\nbackend = \"gw\"\n\
             [[backend]]\nname = \"gw\"\nservers = [\"{backend}\"]\n"
        ),
    );
    let mut command = Command::new("systemd-socket-activate");
    command.args(["-l", &activated.to_string(), BIN, "run", "--config"]);
    command.arg(&config);
    let proc = Running::spawn(&mut command);
    // systemd-socket-activate starts passthru on the first connection, as
    // systemd does; that connection waits in the backlog meanwhile.
    Running::wait_line(&proc.stderr, "systemd-socket-activate's line", |l| {
        l.contains("Listening on")
    });
    let _ = routed(activated);
    let inherited = logged_addr(&proc, "inherited socket line", |l| {
        l.contains("using an inherited socket")
    });
    assert_eq!(inherited, activated);
    let own = logged_addr(&proc, "own listener", |l| l.contains("listener=own"));
    assert_ne!(own, activated);
    let _ = routed(own);
    proc.signal("-TERM");
    assert_eq!(proc.wait_exit(), 0);
}
