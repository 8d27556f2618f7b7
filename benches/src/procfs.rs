//! What the load generator reads about a process from `/proc`: CPU time
//! (utime + stime), resident memory now (`VmRSS`) and at its peak
//! (`VmHWM`), summed over the process and its descendants (nginx runs a
//! master and workers). Also the peak reset (`clear_refs` 5) and the
//! open-files limit. Linux only; no unsafe code, no libc.

use std::fs;
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow};

/// CPU and memory of a process tree at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// utime + stime of every process in the tree, in seconds.
    pub cpu_s: f64,
    /// Sum of `VmRSS` over the tree, KiB.
    pub rss_kib: u64,
    /// Sum of `VmHWM` (peak RSS since start or since [`reset_peak`]) over the tree, KiB.
    pub hwm_kib: u64,
}

/// Read [`Usage`] for `pid` and its descendants.
pub fn usage(pid: u32) -> Result<Usage> {
    usage_of(pid, &tree(pid))
}

/// Read [`Usage`] for `pid` alone (the load generator, whose children are
/// the peers).
pub fn own_usage(pid: u32) -> Result<Usage> {
    usage_of(pid, &[pid])
}

fn usage_of(pid: u32, pids: &[u32]) -> Result<Usage> {
    let mut total = Usage::default();
    for &p in pids {
        // A worker may exit between listing and reading; only the root must be readable.
        let Ok(ticks) = cpu_ticks(p) else {
            if p == pid {
                return Err(anyhow!("process {pid} is gone (no /proc/{pid}/stat)"));
            }
            continue;
        };
        total.cpu_s += ticks as f64 / clock_ticks() as f64;
        total.rss_kib += status_kib(p, "VmRSS:").unwrap_or(0);
        total.hwm_kib += status_kib(p, "VmHWM:").unwrap_or(0);
    }
    Ok(total)
}

/// Reset the peak-RSS mark (`VmHWM`) of every process in the tree to its
/// current RSS (`echo 5 > /proc/PID/clear_refs`; needs the same user or root).
pub fn reset_peak(pid: u32) -> Result<()> {
    for p in tree(pid) {
        fs::write(format!("/proc/{p}/clear_refs"), "5")
            .with_context(|| format!("cannot reset the peak RSS of process {p}"))?;
    }
    Ok(())
}

/// `pid` followed by all its descendants, from `/proc/PID/task/TID/children`.
pub fn tree(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() && out.len() < MAX_TREE {
        let p = out[i];
        if let Ok(tasks) = fs::read_dir(format!("/proc/{p}/task")) {
            for task in tasks.flatten() {
                let path = task.path().join("children");
                if let Ok(text) = fs::read_to_string(path) {
                    out.extend(
                        text.split_whitespace()
                            .filter_map(|c| c.parse::<u32>().ok()),
                    );
                }
            }
        }
        i += 1;
    }
    out
}

/// The soft limit on open files of this process (`Max open files` in
/// `/proc/self/limits`); `None` for "unlimited" or when unreadable.
pub fn open_files_limit() -> Option<u64> {
    let text = fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// CPU seconds the whole machine spent busy in processes (all CPUs: user,
/// nice, system and steal in the `cpu` line of `/proc/stat`) since boot.
pub fn machine_busy_s() -> Result<f64> {
    let text = fs::read_to_string("/proc/stat")?;
    let line = text
        .lines()
        .find(|l| l.starts_with("cpu "))
        .ok_or_else(|| anyhow!("/proc/stat has no cpu line"))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest is inside user).
    // irq and softirq are left out: loopback traffic is processed there,
    // and it belongs to the peers, whose own utime/stime may not include it.
    let busy: u64 = ticks
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| !matches!(i, 3..=6))
        .map(|(_, t)| t)
        .sum();
    Ok(busy as f64 / clock_ticks() as f64)
}

/// Ask for a higher scheduling priority (nice −10) for this process, so
/// that the peers it starts next and the threads it creates next inherit
/// it and other work on the machine disturbs the measurement less. Uses the
/// `renice` utility; returns the niceness in force afterwards.
pub fn raise_priority() -> i64 {
    let pid = std::process::id().to_string();
    let _ = Command::new("renice")
        .args(["-n", "-10", "-p", &pid])
        .output();
    fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|t| {
            t.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(16)?.parse().ok())
        })
        .unwrap_or(0)
}

/// `model name` of the first CPU in `/proc/cpuinfo` and the number of CPUs.
pub fn cpu_model() -> (String, usize) {
    let text = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = text
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or_else(|| "unknown".to_string(), |(_, m)| m.trim().to_string());
    let count = text.lines().filter(|l| l.starts_with("processor")).count();
    (model, count)
}

/// utime + stime of one process, in clock ticks (fields 14 and 15 of
/// `/proc/PID/stat`, counted after the parenthesised command name).
fn cpu_ticks(pid: u32) -> Result<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let (_, rest) = text
        .rsplit_once(')')
        .ok_or_else(|| anyhow!("/proc/{pid}/stat: no command name"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| anyhow!("/proc/{pid}/stat: field {} unreadable", i + 3))
    };
    Ok(field(11)? + field(12)?)
}

/// A `kB` line of `/proc/PID/status`, in KiB.
fn status_kib(pid: u32, key: &str) -> Result<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("/proc/{pid}/status has no {key}"))
}

/// `getconf CLK_TCK` (100 on every mainstream Linux), read once.
fn clock_ticks() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

/// More processes than any peer here runs; bounds the walk.
const MAX_TREE: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_usage_is_readable() {
        let me = usage(std::process::id()).unwrap();
        assert!(me.rss_kib > 0 && me.hwm_kib >= me.rss_kib, "{me:?}");
        assert!(open_files_limit().is_some_and(|n| n > 0));
        assert!(machine_busy_s().unwrap() > 0.0);
    }
}
