//! `loadgen syscalls`: system calls per keep-alive request, by call, for
//! each proxy. wrk keeps 50 connections busy with `GET /small`; after a
//! second of it, `perf stat -e syscalls:sys_enter_NAME,…,raw_syscalls:sys_enter
//! -p PIDS` counts the calls the proxy's threads enter, one by one for the
//! calls a proxy makes and together for the rest, for a fixed window (`strace -c -f` when
//! perf cannot, at a much higher cost to the proxy); the requests in that
//! window are wrk's rate × the window (the load is steady around it).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use tokio::process::Command;
use tokio::time::{sleep, timeout};

use crate::compare::{WRK_CONNS, WRK_THREADS};
use crate::lab::Lab;
use crate::procfs;
use crate::tools;
use crate::topology::{Plan, Target, Topology, find_tool};

/// Calls per syscall name over a window.
pub type Counts = BTreeMap<String, f64>;

/// `perf stat -x,` output: `COUNT,UNIT,EVENT,…` lines; the
/// `syscalls:sys_enter_` prefix is dropped, `raw_syscalls:sys_enter`
/// becomes [`ALL_KEY`]; zero and uncounted lines are left out.
pub fn parse_perf(text: &str) -> Counts {
    let mut counts = Counts::new();
    for line in text.lines() {
        let mut fields = line.split(',');
        let (Some(count), Some(_), Some(event)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let event = event.trim();
        let name = if event == ALL_CALLS {
            Some(ALL_KEY)
        } else if event == SWITCHES {
            Some(SWITCHES_KEY)
        } else {
            event.strip_prefix("syscalls:sys_enter_")
        };
        let (Ok(n), Some(name)) = (count.trim().parse::<f64>(), name) else {
            continue;
        };
        if n > 0.0 {
            *counts.entry(name.to_string()).or_default() += n;
        }
    }
    counts
}

/// `strace -c` output: rows `% time  seconds  usecs/call  calls  [errors]  syscall`.
pub fn parse_strace(text: &str) -> Counts {
    let mut counts = Counts::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if !(5..=6).contains(&cols.len()) || cols[0].parse::<f64>().is_err() {
            continue;
        }
        let name = cols[cols.len() - 1];
        if name == "total" {
            continue;
        }
        if let Ok(n) = cols[3].parse::<f64>() {
            *counts.entry(name.to_string()).or_default() += n;
        }
    }
    counts
}

/// The table: one row per syscall that any proxy makes at least
/// [`SHOWN_FROM`] times per request, sorted by passthru's count, then a total.
pub fn render(per_request: &[(Target, Counts)]) -> String {
    let mut names: Vec<&String> = per_request
        .iter()
        .flat_map(|(_, c)| c.iter().filter(|(_, v)| **v >= SHOWN_FROM).map(|(k, _)| k))
        .filter(|k| *k != SWITCHES_KEY)
        .collect();
    names.sort();
    names.dedup();
    let key = |n: &String| {
        per_request
            .iter()
            .find(|(t, _)| *t == Target::Passthru)
            .or(per_request.first())
            .and_then(|(_, c)| c.get(n).copied())
            .unwrap_or(0.0)
    };
    names.sort_by(|a, b| key(b).total_cmp(&key(a)).then(a.cmp(b)));
    let mut out = String::from("| syscalls per request |");
    for (t, _) in per_request {
        let _ = write!(out, " {t} |");
    }
    out.push_str("\n|---|");
    for _ in per_request {
        out.push_str("---|");
    }
    out.push('\n');
    for name in names {
        let _ = write!(out, "| {name} |");
        for (_, c) in per_request {
            let _ = write!(out, " {:.2} |", c.get(name).copied().unwrap_or(0.0));
        }
        out.push('\n');
    }
    out.push_str("| **total** |");
    for (_, c) in per_request {
        let _ = write!(out, " {:.2} |", calls(c));
    }
    out.push('\n');
    if per_request
        .iter()
        .any(|(_, c)| c.contains_key(SWITCHES_KEY))
    {
        out.push_str("| context switches (not a call) |");
        for (_, c) in per_request {
            let _ = write!(out, " {:.2} |", c.get(SWITCHES_KEY).copied().unwrap_or(0.0));
        }
        out.push('\n');
    }
    out
}

/// The system calls counted (context switches are not one).
fn calls(counts: &Counts) -> f64 {
    counts
        .iter()
        .filter(|(k, _)| *k != SWITCHES_KEY)
        .map(|(_, v)| v)
        .sum()
}

/// How the calls are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counter {
    Perf,
    Strace,
}

/// `loadgen syscalls`.
/// With `close`, every request is on a new TLS connection (wrk's
/// `Connection: close`) and the counts are per connection.
pub async fn syscalls(plan: Plan, window: Duration, close: bool) -> Result<()> {
    let wrk = find_tool("wrk").ok_or_else(|| {
        anyhow!("wrk is not installed (Debian: apt-get install wrk, or `make deps`)")
    })?;
    let (counter, tool) = pick_counter()?;
    let lab = Lab::new()?;
    let topology = Topology::start(&lab, &plan).await?;
    let result = count_all(&topology, &lab, &wrk, counter, &tool, window, close).await;
    topology.stop().await;
    let per_request = result?;
    println!(
        "System calls per {} (wrk -t{WRK_THREADS} -c{WRK_CONNS}, 64-byte answers), counted with {} over {:?}:\n",
        if close {
            "new TLS connection (`Connection: close`: handshake with the agent certificate optional, one request)"
        } else {
            "keep-alive request"
        },
        match counter {
            Counter::Perf => "perf stat (syscalls:sys_enter_NAME tracepoints)",
            Counter::Strace => "strace -c -f",
        },
        window
    );
    println!("{}", render(&per_request));
    Ok(())
}

fn pick_counter() -> Result<(Counter, PathBuf)> {
    if let Some(perf) = find_tool("perf") {
        let works = std::process::Command::new(&perf)
            .args(["stat", "-e", "syscalls:sys_enter_getpid", "--", "true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if works {
            return Ok((Counter::Perf, perf));
        }
    }
    find_tool("strace")
        .map(|s| (Counter::Strace, s))
        .ok_or_else(|| {
            anyhow!(
                "neither a working perf nor strace is installed (Debian: apt-get install strace)"
            )
        })
}

async fn count_all(
    topology: &Topology,
    lab: &Lab,
    wrk: &Path,
    counter: Counter,
    tool: &Path,
    window: Duration,
    close: bool,
) -> Result<Vec<(Target, Counts)>> {
    let mut out = Vec::new();
    for target in topology.targets() {
        let (Some(addr), Some(daemon)) = (topology.addr(target), topology.daemon(target)) else {
            continue;
        };
        // wrk runs until it is interrupted after the count (perf may take
        // seconds to set its counters up before the window starts).
        let mut load = tools::wrk_command(
            wrk,
            addr,
            WRK_THREADS,
            WRK_CONNS,
            window + COUNTER_SETUP * 2,
            close,
        );
        load.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let child = load.spawn().context("cannot start wrk")?;
        let wrk_pid = child.id().ok_or_else(|| anyhow!("wrk exited at once"))?;
        sleep(LEAD).await;
        let pids = procfs::tree(daemon.pid());
        let file = lab.path().join(format!("syscalls-{target}.txt"));
        let counts = count(counter, tool, &pids, window, &file)
            .await
            .with_context(|| format!("counting the system calls of {target}"))?;
        // wrk prints its summary when interrupted.
        let _ = std::process::Command::new("kill")
            .args(["-INT", &wrk_pid.to_string()])
            .status();
        let done = timeout(COUNTER_SETUP, child.wait_with_output())
            .await
            .map_err(|_| anyhow!("wrk did not stop on SIGINT"))??;
        let r = tools::parse_wrk(&String::from_utf8_lossy(&done.stdout))?;
        let requests = r.rate * window.as_secs_f64();
        if requests <= 0.0 {
            bail!("no request went through {target}");
        }
        eprintln!(
            "loadgen syscalls: {target}: {:.0} req/s under load, {} calls counted",
            r.rate,
            counts.values().sum::<f64>()
        );
        out.push((
            target,
            counts.into_iter().map(|(k, v)| (k, v / requests)).collect(),
        ));
    }
    Ok(out)
}

/// The calls perf counts one by one (one tracepoint each: perf needs
/// seconds per hundred tracepoints to set up, so not all of them); every
/// other call is counted together as `(other)` from `raw_syscalls:sys_enter`.
const TRACED: &[&str] = &[
    "read",
    "write",
    "readv",
    "writev",
    "recvfrom",
    "sendto",
    "recvmsg",
    "sendmsg",
    "recvmmsg",
    "sendmmsg",
    "splice",
    "pipe2",
    "epoll_wait",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_ctl",
    "poll",
    "ppoll",
    "futex",
    "accept",
    "accept4",
    "connect",
    "socket",
    "setsockopt",
    "getsockopt",
    "getsockname",
    "getpeername",
    "close",
    "shutdown",
    "mmap",
    "munmap",
    "madvise",
    "mprotect",
    "brk",
    "sched_yield",
    "io_uring_enter",
    "getrandom",
    "ioctl",
    "fcntl",
    "timerfd_settime",
    "clock_nanosleep",
    "nanosleep",
    "rt_sigprocmask",
];

/// `-e` for perf: the [`TRACED`] calls this kernel has a tracepoint for,
/// and the all-calls tracepoint.
fn perf_events() -> String {
    let dir = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .into_iter()
        .map(|d| Path::new(d).join("events/syscalls"))
        .find(|d| d.is_dir());
    let mut events: Vec<String> = TRACED
        .iter()
        .filter(|name| {
            dir.as_ref()
                .is_none_or(|d| d.join(format!("sys_enter_{name}")).is_dir())
        })
        .map(|name| format!("syscalls:sys_enter_{name}"))
        .collect();
    events.push(ALL_CALLS.to_string());
    events.push(SWITCHES.to_string());
    events.join(",")
}

/// Replace the all-calls count by `(other)`: what the named counts miss.
fn fold_other(mut counts: Counts) -> Counts {
    if let Some(all) = counts.remove(ALL_KEY) {
        let named = calls(&counts);
        if all > named {
            counts.insert("(other)".to_string(), all - named);
        }
    }
    counts
}

/// Count the calls of `pids` for `window`, writing the tool's report to `file`.
async fn count(
    counter: Counter,
    tool: &Path,
    pids: &[u32],
    window: Duration,
    file: &Path,
) -> Result<Counts> {
    let pid_list = pids
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let mut cmd = Command::new(tool);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    match counter {
        Counter::Perf => {
            cmd.args(["stat", "-x", ",", "-e", &perf_events(), "-o"])
                .arg(file)
                .args(["-p", &pid_list, "--", "sleep"])
                .arg(format!("{}", window.as_secs_f64()));
            let status = timeout(window + COUNTER_SETUP, cmd.status())
                .await
                .map_err(|_| anyhow!("perf did not finish"))??;
            if !status.success() {
                bail!("perf stat failed ({status})");
            }
            Ok(fold_other(parse_perf(&std::fs::read_to_string(file)?)))
        }
        Counter::Strace => {
            cmd.args(["-c", "-f", "-o"]).arg(file);
            for p in pids {
                cmd.arg("-p").arg(p.to_string());
            }
            let mut child = cmd.spawn().context("cannot start strace")?;
            let pid = child.id().ok_or_else(|| anyhow!("strace exited at once"))?;
            sleep(window).await;
            // strace writes its summary on SIGINT.
            let _ = std::process::Command::new("kill")
                .args(["-INT", &pid.to_string()])
                .status();
            if timeout(COUNTER_SETUP, child.wait()).await.is_err() {
                let _ = child.start_kill();
                bail!("strace did not stop on SIGINT");
            }
            Ok(parse_strace(&std::fs::read_to_string(file)?))
        }
    }
}

/// Load before the counters are set up.
const LEAD: Duration = Duration::from_secs(1);
/// Bound on perf setting its counters up (or strace stopping).
const COUNTER_SETUP: Duration = Duration::from_secs(60);
/// The tracepoint every system call enters.
const ALL_CALLS: &str = "raw_syscalls:sys_enter";
/// The software event that counts the proxy's context switches.
const SWITCHES: &str = "context-switches";
/// Where [`parse_perf`] puts the [`SWITCHES`] count.
pub const SWITCHES_KEY: &str = "(context switches)";
/// Where [`parse_perf`] puts the [`ALL_CALLS`] count.
pub const ALL_KEY: &str = "(all)";
/// Rows below this many calls per request (for every proxy) are left out.
const SHOWN_FROM: f64 = 0.01;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_perf_csv() {
        let text = "# started on Sun Dec  6 05:00:00 2026\n\n\
                    40000,,syscalls:sys_enter_recvfrom,5000000,100.00,,\n\
                    20000,,syscalls:sys_enter_sendto,5000000,100.00,,\n\
                    0,,syscalls:sys_enter_read,5000000,100.00,,\n\
                    <not counted>,,syscalls:sys_enter_write,0,0.00,,\n\
                    61000,,raw_syscalls:sys_enter,5000000,100.00,,\n\
                    900,,context-switches,5000000,100.00,,\n";
        let c = parse_perf(text);
        assert_eq!(c.len(), 4);
        assert_eq!(c["recvfrom"], 40000.0);
        assert_eq!(c["sendto"], 20000.0);
        assert_eq!(c[SWITCHES_KEY], 900.0);
        let c = fold_other(c);
        assert_eq!(c.len(), 4);
        // Context switches are not calls: not in `(other)`, not in the total.
        assert_eq!(c["(other)"], 1000.0);
        assert_eq!(calls(&c), 61000.0);
    }

    #[test]
    fn reads_strace_summary() {
        let text = "% time     seconds  usecs/call     calls    errors syscall\n\
                    ------ ----------- ----------- --------- --------- ----------------\n \
                    60.00    0.600000          15     40000     20000 recvfrom\n \
                    40.00    0.400000          20     20000           sendto\n\
                    ------ ----------- ----------- --------- --------- ----------------\n\
                    100.00    1.000000          16     60000     20000 total\n";
        let c = parse_strace(text);
        assert_eq!(c.len(), 2);
        assert_eq!(c["recvfrom"], 40000.0);
        assert_eq!(c["sendto"], 20000.0);
    }

    #[test]
    fn table_sorts_by_passthru_and_totals() {
        let p: Counts = [("recvfrom".to_string(), 4.0), ("sendto".to_string(), 2.0)].into();
        let h: Counts = [
            ("recvfrom".to_string(), 2.0),
            ("epoll_wait".to_string(), 0.005),
        ]
        .into();
        let t = render(&[(Target::Passthru, p.clone()), (Target::Haproxy, h.clone())]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "| syscalls per request | passthru | haproxy |");
        assert_eq!(lines[2], "| recvfrom | 4.00 | 2.00 |");
        assert_eq!(lines[3], "| sendto | 2.00 | 0.00 |");
        assert_eq!(lines[4], "| **total** | 6.00 | 2.00 |");
        assert_eq!(lines.len(), 5);
        // Context switches get a row of their own after the total.
        let mut p = p;
        p.insert(SWITCHES_KEY.to_string(), 0.25);
        let t = render(&[(Target::Passthru, p), (Target::Haproxy, h)]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[4], "| **total** | 6.00 | 2.00 |");
        assert_eq!(lines[5], "| context switches (not a call) | 0.25 | 0.00 |");
    }
}
