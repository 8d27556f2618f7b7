//! `loadgen syscalls`: system calls per keep-alive request, by call, for
//! each proxy. wrk keeps 50 connections busy with `GET /small`; after a
//! second of it, `perf stat -e 'syscalls:sys_enter_*' -p PIDS` counts every
//! call the proxy's threads enter for a fixed window (`strace -c -f` when
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
/// `syscalls:sys_enter_` prefix is dropped; zero and uncounted lines too.
pub fn parse_perf(text: &str) -> Counts {
    let mut counts = Counts::new();
    for line in text.lines() {
        let mut fields = line.split(',');
        let (Some(count), Some(_), Some(event)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let (Ok(n), Some(name)) = (
            count.trim().parse::<f64>(),
            event.trim().strip_prefix("syscalls:sys_enter_"),
        ) else {
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
        let _ = write!(out, " {:.2} |", c.values().sum::<f64>());
    }
    out.push('\n');
    out
}

/// How the calls are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counter {
    Perf,
    Strace,
}

/// `loadgen syscalls`.
pub async fn syscalls(plan: Plan, window: Duration) -> Result<()> {
    let wrk = find_tool("wrk").ok_or_else(|| {
        anyhow!("wrk is not installed (Debian: apt-get install wrk, or `make deps`)")
    })?;
    let (counter, tool) = pick_counter()?;
    let lab = Lab::new()?;
    let topology = Topology::start(&lab, &plan).await?;
    let result = count_all(&topology, &lab, &wrk, counter, &tool, window).await;
    topology.stop().await;
    let per_request = result?;
    println!(
        "System calls per keep-alive request (wrk -t{WRK_THREADS} -c{WRK_CONNS}, 64-byte answers), counted with {} over {:?}:\n",
        match counter {
            Counter::Perf => "perf stat -e 'syscalls:sys_enter_*'",
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
) -> Result<Vec<(Target, Counts)>> {
    let mut out = Vec::new();
    for target in topology.targets() {
        let (Some(addr), Some(daemon)) = (topology.addr(target), topology.daemon(target)) else {
            continue;
        };
        let duration = window + 2 * LEAD;
        let load = tokio::spawn(tools::run_wrk(
            tools::wrk_command(wrk, addr, WRK_THREADS, WRK_CONNS, duration, false),
            duration,
        ));
        sleep(LEAD).await;
        let pids = procfs::tree(daemon.pid());
        let file = lab.path().join(format!("syscalls-{target}.txt"));
        let counts = count(counter, tool, &pids, window, &file)
            .await
            .with_context(|| format!("counting the system calls of {target}"))?;
        let r = load.await.map_err(|e| anyhow!("wrk task: {e}"))??;
        let requests = r.rate * window.as_secs_f64();
        if requests <= 0.0 {
            bail!("no request went through {target}");
        }
        eprintln!(
            "loadgen syscalls: {target}: {:.0} req/s while counted, {} calls in all",
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
            cmd.args(["stat", "-x", ",", "-e", "syscalls:sys_enter_*", "-o"])
                .arg(file)
                .args(["-p", &pid_list, "--", "sleep"])
                .arg(format!("{}", window.as_secs_f64()));
            let status = timeout(window + LEAD * 10, cmd.status())
                .await
                .map_err(|_| anyhow!("perf did not finish"))??;
            if !status.success() {
                bail!("perf stat failed ({status})");
            }
            Ok(parse_perf(&std::fs::read_to_string(file)?))
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
            if timeout(LEAD * 10, child.wait()).await.is_err() {
                let _ = child.start_kill();
                bail!("strace did not stop on SIGINT");
            }
            Ok(parse_strace(&std::fs::read_to_string(file)?))
        }
    }
}

/// Load before and after the counted window.
const LEAD: Duration = Duration::from_secs(1);
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
                    <not counted>,,syscalls:sys_enter_write,0,0.00,,\n";
        let c = parse_perf(text);
        assert_eq!(c.len(), 2);
        assert_eq!(c["recvfrom"], 40000.0);
        assert_eq!(c["sendto"], 20000.0);
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
        let t = render(&[(Target::Passthru, p), (Target::Haproxy, h)]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "| syscalls per request | passthru | haproxy |");
        assert_eq!(lines[2], "| recvfrom | 4.00 | 2.00 |");
        assert_eq!(lines[3], "| sendto | 2.00 | 0.00 |");
        assert_eq!(lines[4], "| **total** | 6.00 | 2.00 |");
        assert_eq!(lines.len(), 5);
    }
}
