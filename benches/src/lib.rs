//! passthru-benches: how fast and how small passthru is, measured against
//! a direct connection, HAProxy and nginx on the same machine in the same
//! run. The criterion micro-benchmarks (`benches/*.rs`) time the pure code;
//! this library is the load generator behind `src/bin/loadgen.rs`, which
//! times whole paths with real processes. See `docs/benchmarking.md`.
//!
//! # Layout
//!
//! - [`configs`]: the config files of the nginx TLS backend, passthru,
//!   HAProxy and nginx stream, as text. No I/O.
//! - [`lab`]: the temporary directory (PKI as PEM, sparse bulk file) and
//!   the rustls client configuration.
//! - [`daemon`]: a peer as a child process: start, readiness, stop by PID.
//! - [`procfs`]: CPU time and RSS of a process tree from `/proc`.
//! - [`topology`]: the four targets (direct, passthru, haproxy, nginx) and
//!   starting the processes behind them.
//! - [`client`]: TLS connections and the minimal HTTP/1.1 exchange.
//! - [`workload`]: one measurement of one metric against one target.
//! - [`rounds`]: rounds of every metric, targets interleaved, progress lines.
//! - [`report`]: medians, per-round ratios to direct, the table, the JSON file.
//! - [`idle`]: memory per idle connection with thousands held open.
//! - [`tools`]: wrk and curl as clients, and the parsers of their output.
//! - [`compare`]: `loadgen compare`, the comparison made with wrk and curl
//!   against the goals, one table.
//! - [`syscalls`]: `loadgen syscalls`, system calls per keep-alive request.
//! - [`session`]: one invocation from start to stop.
#![warn(missing_docs)]

pub mod client;
pub mod compare;
pub mod configs;
pub mod daemon;
pub mod idle;
pub mod lab;
pub mod procfs;
pub mod report;
pub mod rounds;
pub mod session;
pub mod syscalls;
pub mod tools;
pub mod topology;
pub mod workload;
