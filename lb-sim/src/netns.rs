//! A private network namespace for one child process (`unshare -n`), and
//! the shaping of its loopback: MTU lowered, rate limited with `tc … tbf`
//! so a message larger than one segment arrives in several reads (netem is
//! not needed). Nothing here touches the host's own network.

use std::path::Path;
use std::process::{Command, Stdio};

/// The loopback MTU inside the namespace: IPv6's minimum, which real paths
/// (tunnels, PPPoE, VPNs) come close to.
pub const MTU: u32 = 1280;
/// The `tc` shaping of the loopback: 128 kbit/s, one segment per burst.
pub const TBF: [&str; 6] = ["rate", "128kbit", "burst", "1600", "latency", "1s"];

/// Why a namespace cannot be made here, or `None` when it can.
pub fn unavailable() -> Option<String> {
    for program in ["unshare", "ip", "tc"] {
        if crate::real::find_program(program).is_none() {
            return Some(format!(
                "`{program}` is not installed (Debian: util-linux, iproute2)"
            ));
        }
    }
    let made = Command::new("unshare")
        .args(["-n", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match made {
        Ok(status) if status.success() => None,
        _ => Some("`unshare -n` is not permitted here (it needs root or user namespaces)".into()),
    }
}

/// `program args…` in a new network namespace of its own.
pub fn isolated(program: &Path, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new("unshare");
    command.arg("-n").arg(program).args(args);
    command
}

/// Inside the namespace: bring the loopback up with [`MTU`] and shape it
/// with [`TBF`]. Returns the commands run, for the report.
pub fn shape_loopback() -> Result<Vec<String>, String> {
    let mtu = MTU.to_string();
    let steps: [Vec<&str>; 2] = [
        vec!["ip", "link", "set", "lo", "mtu", &mtu, "up"],
        [
            &["tc", "qdisc", "add", "dev", "lo", "root", "tbf"][..],
            &TBF[..],
        ]
        .concat(),
    ];
    let mut ran = Vec::new();
    for step in steps {
        let out = Command::new(step[0])
            .args(&step[1..])
            .output()
            .map_err(|e| format!("cannot run `{}`: {e}", step.join(" ")))?;
        if !out.status.success() {
            return Err(format!(
                "`{}` failed: {}",
                step.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        ran.push(step.join(" "));
    }
    Ok(ran)
}
