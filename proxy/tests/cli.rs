//! The `passthru` binary as operators run it: exit codes, `check`
//! summaries and refusals, `--help`, and `run` serving, reloading on SIGHUP
//! and stopping on SIGTERM. Children are killed by their PID.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// Blocking process-level tests without a runtime: std's clock is the right one.
#![allow(clippy::disallowed_types)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

mod support;
use support::*;

fn check(text: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), text);
    let out = passthru(&["check", "--config", path.to_str().unwrap()]);
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

const VALID: &str = r#"
[[listener]]
name = "public"
bind = "127.0.0.1:0"

[[route]]
server_names = ["gw.example.com", "*.agents.example.com"]
backend = "gateway"

[[backend]]
name = "gateway"
servers = ["127.0.0.1:9", "127.0.0.1:10"]
"#;

#[test]
fn check_accepts_the_example_and_prints_a_summary() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/passthru.toml");
    let out = passthru(&["check", "--config", example.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.contains("ok: 1 listener (public on 0.0.0.0:8443), 3 routes (3 server names), default backend gateway, 2 backends (3 servers)"), "{stdout}");
}

#[test]
fn check_warns_about_unreachable_routes_but_passes() {
    let text =
        format!("{VALID}\n[[route]]\nserver_names = [\"gw.example.com\"]\nbackend = \"gateway\"\n");
    let (code, stdout, stderr) = check(&text);
    assert_eq!(code, 0);
    assert!(stdout.contains("ok: 1 listener"), "{stdout}");
    assert!(
        stderr.contains("warning") && stderr.contains("route[1].server_names[0]"),
        "{stderr}"
    );
}

#[test]
fn invalid_configs_exit_2_naming_file_key_and_value() {
    let cases = [
        (
            VALID.replace("backend = \"gateway\"\n\n", "backend = \"gw\"\n\n"),
            "route[0].backend",
            "\"gw\"",
        ),
        (
            VALID.replace("127.0.0.1:10", "127.0.0.1:99999"),
            "backend[0].servers[1]",
            "127.0.0.1:99999",
        ),
        (
            VALID.replace("bind = \"127.0.0.1:0\"", "bind = \"localhost\""),
            "listener[0].bind",
            "localhost",
        ),
        (
            format!("{VALID}balance = \"fastest\"\n"),
            "backend[0].balance",
            "fastest",
        ),
        (
            format!("{VALID}\n[[backend]]\nname = \"gateway\"\nservers = [\"127.0.0.1:1\"]\n"),
            "backend[1].name",
            "gateway",
        ),
        (
            VALID.replace("name = \"public\"", "name = \"public\"\nlisten_backlog = 5"),
            "listen_backlog",
            "",
        ),
        (
            VALID.replace(
                "name = \"public\"",
                "name = \"public\"\nproxy_protocol = \"v9\"",
            ),
            "listener[0].proxy_protocol",
            "v9",
        ),
    ];
    for (text, key, value) in cases {
        let (code, stdout, stderr) = check(&text);
        assert_eq!(code, 2, "{key}: {stderr}");
        assert!(stdout.is_empty());
        assert_eq!(stderr.lines().count(), 1, "one sentence: {stderr}");
        assert!(stderr.contains("passthru.toml"), "{stderr}");
        assert!(stderr.contains(key), "{key}: {stderr}");
        assert!(stderr.contains(value), "{value}: {stderr}");
    }
}

#[test]
fn offload_keys_are_refused_by_check_and_run() {
    for (table, line) in [
        ("listener", "tls_cert = \"/etc/gw.pem\""),
        ("listener", "tls_key = \"/etc/gw.key\""),
        ("listener", "certificate = \"/etc/gw.pem\""),
        ("listener", "key = \"/etc/gw.key\""),
        ("listener", "mode = \"offload\""),
        ("backend", "mode = \"terminate\""),
        ("backend", "mode = \"bridge\""),
    ] {
        let text = match table {
            "listener" => VALID.replace("name = \"public\"", &format!("name = \"public\"\n{line}")),
            _ => format!("{VALID}{line}\n"),
        };
        let key = line.split(' ').next().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(dir.path(), &text);
        for cmd in ["check", "run"] {
            let out = passthru(&[cmd, "--config", path.to_str().unwrap()]);
            let stderr = String::from_utf8(out.stderr).unwrap();
            assert_eq!(out.status.code(), Some(2), "{cmd} {line}: {stderr}");
            assert!(stderr.contains(&format!("{table}[0].{key}")), "{stderr}");
            assert!(stderr.contains("never does"), "{stderr}");
            assert!(
                stderr.contains("client certificate") && stderr.contains("pinned"),
                "{stderr}"
            );
        }
    }
}

#[test]
fn a_missing_file_exits_2_and_names_it() {
    let out = passthru(&["check", "--config", "/nonexistent/passthru.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("/nonexistent/passthru.toml") && stderr.contains("cannot read"),
        "{stderr}"
    );
}

#[test]
fn usage_errors_exit_2_and_help_explains_every_flag() {
    assert_eq!(passthru(&[]).status.code(), Some(2));
    assert_eq!(passthru(&["run"]).status.code(), Some(2));
    assert_eq!(
        passthru(&["run", "--config", "x", "--log-format", "xml"])
            .status
            .code(),
        Some(2)
    );
    let help = String::from_utf8(passthru(&["--help"]).stdout).unwrap();
    for word in ["run", "check", "never", "Exit codes"] {
        assert!(help.contains(word), "{word} missing from --help: {help}");
    }
    let help = String::from_utf8(passthru(&["run", "--help"]).stdout).unwrap();
    for word in [
        "--config",
        "--log-format",
        "text",
        "json",
        "SIGHUP",
        "RUST_LOG",
    ] {
        assert!(
            help.contains(word),
            "{word} missing from run --help: {help}"
        );
    }
    // `passthru 0.1.0 (commit 0123456789ab)`, or the note that the build
    // had no git checkout to name a commit from.
    let version = String::from_utf8(passthru(&["--version"]).stdout).unwrap();
    let build = version
        .trim()
        .strip_prefix(&format!("passthru {} (", env!("CARGO_PKG_VERSION")))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("unexpected --version: {version}"));
    let commit_named = build
        .strip_prefix("commit ")
        .is_some_and(|hash| hash.len() >= 7 && hash.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(
        commit_named || build == "built outside a git checkout, commit unknown",
        "{version}"
    );
}

#[test]
fn run_serves_logs_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), VALID);
    let proc = Running::start(&path, &[]);
    let addr = proc.listening_addr();
    let reply = http_get(addr);
    assert!(reply.starts_with("HTTP/1.1 400 Bad Request"), "{reply}");
    assert!(reply.contains("X-Forwarded-Proto"), "{reply}");
    let line = Running::wait_line(&proc.stdout, "access-log line", |l| l.contains("outcome="));
    assert!(line.contains("listener=public"), "{line}");
    assert!(line.contains("outcome=plaintext_http"), "{line}");
    assert!(line.contains("peer=127.0.0.1:"), "{line}");
    proc.signal("-TERM");
    assert_eq!(proc.wait_exit(), 0);
}

#[test]
fn run_writes_json_access_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), VALID);
    let proc = Running::start(&path, &["--log-format", "json"]);
    let addr = proc.listening_addr();
    let _ = http_get(addr);
    let line = Running::wait_line(&proc.stdout, "JSON access line", |l| l.starts_with('{'));
    assert!(line.contains("\"outcome\":\"plaintext_http\""), "{line}");
    assert!(line.contains("\"listener\":\"public\""), "{line}");
    proc.signal("-INT");
    assert_eq!(proc.wait_exit(), 0);
}

#[test]
fn sighup_swaps_routes_and_keeps_the_old_ones_on_a_bad_file() {
    let backend = TcpListener::bind("127.0.0.1:0").unwrap();
    let backend_addr = backend.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), VALID);
    let proc = Running::start(&path, &[]);
    let addr = proc.listening_addr();
    // An open connection on the old configuration (to an echo server).
    let echo = echo_server();
    std::fs::write(&path, format!("{VALID}\n[[route]]\nserver_names = [\"old.example.com\"]\nbackend = \"old\"\n[[backend]]\nname = \"old\"\nservers = [\"{echo}\"]\n")).unwrap();
    proc.signal("-HUP");
    Running::wait_line(&proc.stderr, "first reload", |l| {
        l.contains("configuration reloaded")
    });
    let mut old = TcpStream::connect(addr).unwrap();
    old.set_read_timeout(Some(WAIT)).unwrap();
    let old_hello = hello_for("old.example.com");
    old.write_all(&old_hello).unwrap();
    let mut back = vec![0u8; old_hello.len()];
    old.read_exact(&mut back).unwrap();

    // A broken file is refused and the running configuration kept.
    std::fs::write(&path, "[[listener]]\nbind = \n").unwrap();
    proc.signal("-HUP");
    let line = Running::wait_line(&proc.stderr, "reload failure", |l| {
        l.contains("reload failed")
    });
    assert!(line.contains("passthru.toml"), "{line}");

    // A new route for new.example.com to our listener.
    let text = format!(
        "{VALID}\n[[route]]\nserver_names = [\"new.example.com\"]\nbackend = \"new\"\n\
         [[backend]]\nname = \"new\"\nservers = [\"{backend_addr}\"]\n"
    );
    std::fs::write(&path, text).unwrap();
    proc.signal("-HUP");
    Running::wait_line(&proc.stderr, "reload line", |l| {
        l.contains("configuration reloaded")
    });

    let hello = hello_for("new.example.com");
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.write_all(&hello).unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        if let Ok((mut conn, _)) = backend.accept() {
            conn.set_read_timeout(Some(WAIT)).unwrap();
            let mut got = vec![0u8; hello.len()];
            let _ = conn.read_exact(&mut got);
            let _ = tx.send(got);
        }
    });
    let got = rx
        .recv_timeout(WAIT)
        .expect("the new route's backend got no connection");
    assert_eq!(got, hello_for("new.example.com"));
    drop(tcp);
    // The old connection kept flowing through both reloads.
    old.write_all(b"after reloads").unwrap();
    let mut echo_back = [0u8; 13];
    old.read_exact(&mut echo_back).unwrap();
    assert_eq!(&echo_back, b"after reloads");
    drop(old);
    proc.signal("-TERM");
    assert_eq!(proc.wait_exit(), 0);
}

#[test]
fn sigterm_drains_healthz_first_then_closes_and_lets_transfers_finish() {
    let backend = echo_server();
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &drain_config(backend, "1s", "10s"));
    let proc = Running::start(&path, &[]);
    let addr = proc.listening_addr();
    let admin = admin_addr(&proc);
    assert!(get(admin, "/healthz").starts_with("HTTP/1.1 200"));
    let mut open = routed(addr);
    let started = std::time::Instant::now();

    proc.signal("-TERM");
    // 503 at once, while the listener still accepts.
    let deadline = std::time::Instant::now() + WAIT;
    while !get(admin, "/healthz").starts_with("HTTP/1.1 503") {
        assert!(
            std::time::Instant::now() < deadline,
            "/healthz never turned 503"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "503 must come before drain_delay ends"
    );
    let during = routed(addr);
    drop(during);
    // After drain_delay the listener closes.
    let deadline = std::time::Instant::now() + WAIT;
    while TcpStream::connect(addr).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the listener never closed"
        );
        let _ = proc.stderr.recv_timeout(Duration::from_millis(20));
    }
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "closed before drain_delay"
    );
    // The open connection still flows, and passthru exits once it ends.
    open.write_all(b"still here").unwrap();
    let mut echo = [0u8; 10];
    open.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"still here");
    drop(open);
    let stop = std::time::Instant::now();
    assert_eq!(proc.wait_exit(), 0);
    assert!(
        stop.elapsed() < Duration::from_secs(5),
        "must not wait for drain_timeout when nothing is open"
    );
}

#[test]
fn a_stuck_connection_is_cut_at_drain_delay_plus_drain_timeout() {
    let backend = echo_server();
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &drain_config(backend, "300ms", "700ms"));
    let proc = Running::start(&path, &[]);
    let addr = proc.listening_addr();
    let _stuck = routed(addr);
    let started = std::time::Instant::now();
    proc.signal("-INT");
    Running::wait_line(&proc.stderr, "drain timeout line", |l| {
        l.contains("drain timeout reached")
    });
    assert_eq!(proc.wait_exit(), 0);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1000),
        "exited after {took:?}, before drain_delay + drain_timeout"
    );
    assert!(
        took < Duration::from_secs(4),
        "exited after {took:?}: far later than drain_delay + drain_timeout"
    );
}

#[test]
fn the_systemd_units_verify() {
    let contrib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib");
    let service = std::fs::read_to_string(contrib.join("passthru.service")).unwrap();
    let socket = std::fs::read_to_string(contrib.join("passthru.socket")).unwrap();
    for line in [
        "ExecStartPre=/usr/bin/passthru check --config /etc/passthru/passthru.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "KillSignal=SIGTERM",
        "TimeoutStopSec=90s",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "LimitNOFILE=1048576",
    ] {
        assert!(
            service.lines().any(|l| l == line),
            "{line} missing from passthru.service"
        );
    }
    assert!(socket.lines().any(|l| l == "Service=passthru.service"));
    let Ok(status) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!(
            "systemd-analyze is not installed here: the units were only checked for their key lines"
        );
        return;
    };
    assert!(status.status.success());
    let dir = tempfile::tempdir().unwrap();
    // The man pages `Documentation=` names exist once the package is
    // installed; the package test verifies the units as installed.
    let local = |text: &str| -> String {
        text.replace("/usr/bin/passthru", BIN)
            .lines()
            .filter(|line| !line.starts_with("Documentation=man:"))
            .map(|line| format!("{line}\n"))
            .collect()
    };
    let units = [
        dir.path().join("passthru.service"),
        dir.path().join("passthru.socket"),
    ];
    std::fs::write(&units[0], local(&service)).unwrap();
    std::fs::write(&units[1], local(&socket)).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}

#[test]
fn check_explain_says_where_a_name_goes_and_why() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/passthru.toml");
    let explain = |name: &str, alpn: &[&str]| {
        let mut args = vec![
            "check",
            "--config",
            example.to_str().unwrap(),
            "--explain",
            name,
        ];
        for a in alpn {
            args.extend(["--alpn", a]);
        }
        let out = passthru(&args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let out = explain("gw.example.com", &[]);
    assert!(
        out.contains("gw (route[0]), exact name gw.example.com"),
        "{out}"
    );
    assert!(
        out.contains("backend:  gateway (least_conn, 2 servers: 10.0.1.10:443, 10.0.1.11:443)"),
        "{out}"
    );
    let out = explain("a1.agents.example.com", &[]);
    assert!(out.contains("wildcard *.agents.example.com"), "{out}");
    let out = explain("console.example.com", &["http/1.1"]);
    assert!(
        out.contains("skipped route[2] (console.example.com): it requires ALPN h2"),
        "{out}"
    );
    assert!(out.contains("[default]: no route matches"), "{out}");
    let out = explain("console.example.com", &["h2"]);
    assert!(
        out.contains("route[2], exact name console.example.com"),
        "{out}"
    );
    assert_eq!(
        passthru(&["check", "--config", "x", "--alpn", "h2"])
            .status
            .code(),
        Some(2),
        "--alpn needs --explain"
    );
}

/// utime + stime of a process, in clock ticks (100 per second on Linux).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may contain spaces) in parentheses.
    let after = stat.rsplit_once(") ").unwrap().1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn out_of_descriptors_it_neither_crashes_nor_spins_and_recovers() {
    let backend = echo_server();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[[listener]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\nclient_hello_timeout = \"30s\"\n\
         [[route]]\nserver_names = [\"gw.example.com\"]\nbackend = \"gw\"\n\
         [[backend]]\nname = \"gw\"\nservers = [\"{backend}\"]\n"
    );
    let path = write_config(dir.path(), &config);
    // A low descriptor limit for passthru alone.
    let proc = Running::spawn(Command::new("sh").arg("-c").arg(format!(
        "ulimit -n 48 && exec {BIN} run --config {}",
        path.display()
    )));
    let addr = proc.listening_addr();
    let pid = proc.child.id();

    // Flood: far more idle connections than descriptors.
    let flood: Vec<TcpStream> = (0..120)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    Running::wait_line(&proc.stderr, "the accept failure line", |l| {
        l.contains("accept failed")
    });
    let before = cpu_ticks(pid);
    let started = std::time::Instant::now();
    // Watch for a second: accept keeps failing, and must not burn the CPU
    // nor log every attempt.
    let mut repeated = 0;
    while started.elapsed() < Duration::from_secs(1) {
        if let Ok(line) = proc.stderr.recv_timeout(Duration::from_millis(100))
            && line.contains("accept failed")
        {
            repeated += 1;
        }
    }
    let used = cpu_ticks(pid) - before;
    assert!(
        used < 30,
        "passthru used {used} ticks of CPU in 1 s while out of descriptors: spinning"
    );
    assert_eq!(
        repeated, 0,
        "accept failures must be logged once per interval, not per attempt"
    );

    // Descriptors free up: service resumes.
    drop(flood);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let attempt = std::panic::catch_unwind(|| {
            let mut tcp = TcpStream::connect(addr).unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let hello = hello_for("gw.example.com");
            tcp.write_all(&hello).unwrap();
            let mut echo = vec![0u8; hello.len()];
            tcp.read_exact(&mut echo)
                .map(|_| echo == hello)
                .unwrap_or(false)
        });
        if attempt.unwrap_or(false) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "service did not resume after descriptors were freed"
        );
    }
    proc.signal("-TERM");
    assert_eq!(proc.wait_exit(), 0);
}
