//! `loadgen compare`: the comparison made with the standard tools, so that
//! anyone can check it without trusting this crate's client. wrk for
//! keep-alive requests and new TLS connections, curl for bulk downloads and
//! handshake timing, against the nginx backend directly and through each
//! proxy; every proxy measured right next to a direct run of the same test
//! (a pair), ratios taken per pair, medians over rounds. Proxy CPU per unit
//! of work from `/proc/PID/stat`, peak RSS under keep-alive load, then the
//! memory per idle mutual-TLS connection at two connection counts. One
//! table: figure | haproxy | nginx | passthru | goal met?

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::Agent;
use crate::daemon::Daemon;
use crate::idle::{self, IdleResult};
use crate::lab::Lab;
use crate::report::{self, RunInfo, median};
use crate::session;
use crate::tools::{self, CurlIdentity};
use crate::topology::{Plan, Target, Topology, find_tool};

/// Options of `loadgen compare`.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// Rounds; each runs every test against every proxy, each paired with a direct run.
    pub rounds: usize,
    /// Length of each wrk run.
    pub wrk_duration: Duration,
    /// Bytes each of the [`BULK_PARALLEL`] parallel downloads fetches.
    pub bulk_parallel_bytes: u64,
    /// Bytes the single download fetches.
    pub bulk_single_bytes: u64,
    /// Sequential handshakes timed per run.
    pub handshakes: usize,
    /// Idle connection counts (each measured with freshly started peers).
    pub idle_counts: Vec<usize>,
    /// Which proxies.
    pub plan: Plan,
    /// JSON output file.
    pub out: Option<PathBuf>,
}

/// One test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Test {
    /// wrk -t2 -c50 on kept-alive connections, 64-byte answers: requests/s.
    KeepAlive,
    /// wrk -t2 -c50 with `Connection: close`: new TLS connections/s.
    NewConns,
    /// [`BULK_PARALLEL`] curl downloads at once: bytes/s, all together.
    BulkParallel,
    /// One curl download: bytes/s.
    BulkSingle,
    /// Sequential curl: p50 of TCP connect + TLS handshake, seconds.
    Handshake,
}

impl Test {
    /// Every test, in run order.
    pub const ALL: [Test; 5] = [
        Test::KeepAlive,
        Test::NewConns,
        Test::BulkParallel,
        Test::BulkSingle,
        Test::Handshake,
    ];
}

/// One run of one test against one target.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// Round, from 0.
    pub round: usize,
    /// Which direct/proxy pair it belongs to (the same for both runs of a pair).
    pub pair: usize,
    /// Which test.
    pub test: Test,
    /// Which path.
    pub target: Target,
    /// Requests/s, connections/s, bytes/s, or the p50 handshake in seconds.
    pub value: f64,
    /// Requests, connections, bytes or handshakes done.
    pub work: f64,
    /// Wall-clock seconds of the run.
    pub seconds: f64,
    /// utime + stime of the proxy (all its processes) during the run.
    pub proxy_cpu_s: Option<f64>,
    /// Peak RSS of the proxy during the run (keep-alive only), KiB.
    pub proxy_peak_rss_kib: Option<u64>,
    /// Errors the tool reported.
    pub errors: u64,
}

/// The tools and files every run needs.
struct Kit {
    wrk: PathBuf,
    curl: PathBuf,
    id: CurlIdentity,
    options: CompareOptions,
}

/// `loadgen compare`.
pub async fn compare(options: CompareOptions) -> Result<()> {
    let started = Instant::now();
    let wrk = find_tool("wrk").ok_or_else(|| {
        anyhow!("wrk is not installed (Debian: apt-get install wrk, or `make deps`)")
    })?;
    let curl = find_tool("curl")
        .ok_or_else(|| anyhow!("curl is not installed (Debian: apt-get install curl)"))?;
    let lab = Lab::new()?;
    let kit = Kit {
        wrk,
        curl,
        id: CurlIdentity::in_dir(&lab.path().join("pki")),
        options: options.clone(),
    };
    let topology = Topology::start(&lab, &options.plan).await?;
    eprintln!(
        "loadgen compare: {} round(s); wrk {:?} per run; bulk {} × {} MiB and 1 × {} MiB; {} handshakes",
        options.rounds,
        options.wrk_duration,
        BULK_PARALLEL,
        options.bulk_parallel_bytes >> 20,
        options.bulk_single_bytes >> 20,
        options.handshakes
    );
    let result = rounds(&topology, &kit, started).await;
    let info = session::run_info(&topology, format!("{options:?}"), started);
    topology.stop().await;
    let runs = result?;
    let log_lines = lab.access_log_lines();

    let agent = Agent::new(lab.client_config()?)?;
    let mut idle_results = Vec::new();
    for &count in &options.idle_counts {
        idle_results.push(idle_at(&lab, &agent, &options.plan, count).await?);
    }

    let rows = figures(&runs, &idle_results);
    let table = render(&rows);
    let path = options
        .out
        .clone()
        .unwrap_or_else(|| session::default_out("compare"));
    write_json(&path, &info, &rows, &table, &runs, &idle_results)?;
    println!("{}", session::header(&info));
    for (t, why) in &info.skipped {
        println!("{t}: not run: {why}");
    }
    println!("\n{table}");
    println!("{}", render_rounds(&runs));
    println!(
        "passthru wrote {log_lines} access-log lines to a file during the rounds (its log was on)."
    );
    let errors: u64 = runs.iter().map(|r| r.errors).sum();
    if errors > 0 {
        println!("The tools reported {errors} errors in all; see the JSON file.");
    }
    println!("Every run: {}", path.display());
    Ok(())
}

/// Every round: for each test, each proxy (in an order rotated every round)
/// runs right after or right before a direct run, alternating.
async fn rounds(topology: &Topology, kit: &Kit, started: Instant) -> Result<Vec<Run>> {
    let proxies: Vec<Target> = topology
        .targets()
        .into_iter()
        .filter(|t| *t != Target::Direct)
        .collect();
    if proxies.is_empty() {
        bail!("no proxy to compare: every one was skipped");
    }
    warm_up(topology, kit, started).await?;
    let rounds = kit.options.rounds;
    let mut runs = Vec::new();
    let mut pair = 0;
    for round in 0..rounds {
        for test in Test::ALL {
            for i in 0..proxies.len() {
                let proxy = proxies[(i + round) % proxies.len()];
                let order = if (round + i) % 2 == 0 {
                    [Target::Direct, proxy]
                } else {
                    [proxy, Target::Direct]
                };
                for target in order {
                    let addr = topology
                        .addr(target)
                        .ok_or_else(|| anyhow!("{target} has no address"))?;
                    let run = measure(
                        kit,
                        test,
                        target,
                        addr,
                        topology.daemon(target),
                        round,
                        pair,
                    )
                    .await
                    .with_context(|| format!("{test:?} through {target}"))?;
                    eprintln!(
                        "[{:>5.1}s] round {}/{rounds} {:<13} {:<8} {}",
                        started.elapsed().as_secs_f64(),
                        round + 1,
                        format!("{test:?}"),
                        target.as_str(),
                        progress(&run)
                    );
                    runs.push(run);
                }
                pair += 1;
            }
        }
    }
    Ok(runs)
}

/// Before the first round: one direct download of the bulk file's range
/// that the downloads will read, not counted. The backend reads that range
/// from the page cache afterwards; without this, the first direct download
/// read it from the file system at about a third of the cached rate, and
/// the proxy paired with it in round 1 got a ratio of about 2.
async fn warm_up(topology: &Topology, kit: &Kit, started: Instant) -> Result<()> {
    let o = &kit.options;
    let bytes = o.bulk_single_bytes.max(o.bulk_parallel_bytes);
    let addr = topology
        .addr(Target::Direct)
        .ok_or_else(|| anyhow!("direct has no address"))?;
    let (rate, _, _) = bulk(kit, addr, 1, bytes)
        .await
        .context("warm-up download (direct)")?;
    eprintln!(
        "[{:>5.1}s] warm-up: the bulk file's first {} MiB read once through direct ({:.1} MB/s), not counted",
        started.elapsed().as_secs_f64(),
        bytes >> 20,
        rate / 1e6
    );
    Ok(())
}

/// Run one test against one target, reading the proxy's CPU around it.
async fn measure(
    kit: &Kit,
    test: Test,
    target: Target,
    addr: SocketAddr,
    proxy: Option<&Daemon>,
    round: usize,
    pair: usize,
) -> Result<Run> {
    if let (Test::KeepAlive, Some(p)) = (test, proxy) {
        p.reset_peak()?;
    }
    let before = proxy.map(Daemon::usage).transpose()?;
    let t = Instant::now();
    let o = &kit.options;
    let (value, work, errors) = match test {
        Test::KeepAlive | Test::NewConns => {
            let cmd = tools::wrk_command(
                &kit.wrk,
                addr,
                WRK_THREADS,
                WRK_CONNS,
                o.wrk_duration,
                test == Test::NewConns,
            );
            let r = tools::run_wrk(cmd, o.wrk_duration).await?;
            (r.rate, r.requests as f64, r.errors)
        }
        Test::BulkParallel => bulk(kit, addr, BULK_PARALLEL, o.bulk_parallel_bytes).await?,
        Test::BulkSingle => bulk(kit, addr, 1, o.bulk_single_bytes).await?,
        Test::Handshake => {
            let deadline = Instant::now() + HANDSHAKES_WITHIN;
            let mut times = Vec::with_capacity(o.handshakes);
            let mut errors = 0;
            while times.len() + (errors as usize) < o.handshakes && Instant::now() < deadline {
                match tools::curl_handshake(&kit.curl, &kit.id, addr, CURL_SMALL_MAX).await {
                    Ok(s) => times.push(s),
                    Err(_) => errors += 1,
                }
            }
            if times.is_empty() {
                bail!("no handshake with {addr} succeeded");
            }
            (median(times.clone()), times.len() as f64, errors)
        }
    };
    let seconds = t.elapsed().as_secs_f64();
    let after = proxy.map(Daemon::usage).transpose()?;
    let (proxy_cpu_s, proxy_peak_rss_kib) = match (before, after) {
        (Some(b), Some(a)) => (
            Some(a.cpu_s - b.cpu_s),
            (test == Test::KeepAlive).then_some(a.hwm_kib),
        ),
        _ => (None, None),
    };
    Ok(Run {
        round,
        pair,
        test,
        target,
        value,
        work,
        seconds,
        proxy_cpu_s,
        proxy_peak_rss_kib,
        errors,
    })
}

/// `parallel` curl downloads of `bytes` each, started together: (bytes/s
/// over the wall time until the last one finished, bytes, errors).
async fn bulk(kit: &Kit, addr: SocketAddr, parallel: usize, bytes: u64) -> Result<(f64, f64, u64)> {
    // Bounded by a floor rate far below any loopback figure.
    let max = Duration::from_secs(30 + bytes / BULK_FLOOR_RATE);
    let t = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..parallel {
        let (curl, id) = (kit.curl.clone(), kit.id.clone());
        set.spawn(async move { tools::curl_download(&curl, &id, addr, bytes, max).await });
    }
    let mut total = 0.0;
    while let Some(joined) = set.join_next().await {
        let (got, _) = joined.map_err(|e| anyhow!("curl task: {e}"))??;
        total += got;
    }
    let wall = t.elapsed().as_secs_f64();
    Ok((total / wall, total, 0))
}

/// Memory per idle connection at `count`, with freshly started peers.
async fn idle_at(lab: &Lab, agent: &Agent, plan: &Plan, count: usize) -> Result<Vec<IdleResult>> {
    let n = session::connections_allowed(count);
    let mut plan = plan.clone();
    plan.connections = n;
    let topology = Topology::start(lab, &plan).await?;
    let mut results = Vec::new();
    let mut failure = None;
    for target in topology.targets() {
        let (Some(addr), Some(daemon)) = (topology.addr(target), topology.daemon(target)) else {
            continue;
        };
        eprintln!("loadgen compare: holding {n} idle mutual-TLS connections through {target}");
        match idle::measure(target, addr, daemon, agent, n, idle::AFTER_CLOSE).await {
            Ok(r) => results.push(r),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    topology.stop().await;
    match failure {
        Some(e) => Err(e),
        None => Ok(results),
    }
}

/// What a row of the table wants of passthru.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Goal {
    /// Above both others.
    Above,
    /// Below both others.
    Below,
    /// Not above either other.
    NotAbove,
    /// At most [`BACK_NEAR_START`] × its own value before the connections.
    BackNearStart,
}

impl Goal {
    fn text(self) -> &'static str {
        match self {
            Goal::Above => "> both",
            Goal::Below => "< both",
            Goal::NotAbove => "≤ both",
            Goal::BackNearStart => "≤ 1.25 × start",
        }
    }
}

/// One row: a figure for each proxy.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// What the figure is.
    pub figure: String,
    /// (proxy, value) for every proxy that ran; `None` when it has no value.
    pub values: Vec<(Target, Option<f64>)>,
    /// Cells as printed, in the order of `values`.
    pub cells: Vec<String>,
    /// What passthru must do.
    pub goal: Goal,
    /// Whether it does (`None`: passthru or both others missing).
    pub met: Option<bool>,
}

/// Whether `mine` meets `goal` against `others` (missing values ignored).
/// For [`Goal::BackNearStart`], `others` holds passthru's own start value.
pub fn goal_met(goal: Goal, mine: Option<f64>, others: &[Option<f64>]) -> Option<bool> {
    let mine = mine.filter(|v| v.is_finite())?;
    let others: Vec<f64> = others
        .iter()
        .flatten()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    if others.is_empty() {
        return None;
    }
    Some(others.iter().all(|&o| match goal {
        Goal::Above => mine > o,
        Goal::Below => mine < o,
        Goal::NotAbove => mine <= o,
        Goal::BackNearStart => mine <= BACK_NEAR_START * o,
    }))
}

/// The per-pair ratios proxy ÷ direct of `test` for `proxy`.
pub fn pair_ratios(runs: &[Run], test: Test, proxy: Target) -> Vec<f64> {
    runs.iter()
        .filter(|r| r.test == test && r.target == proxy)
        .filter_map(|r| {
            let direct = runs
                .iter()
                .find(|d| d.pair == r.pair && d.target == Target::Direct)?;
            (direct.value > 0.0).then(|| r.value / direct.value)
        })
        .collect()
}

/// Median over rounds of the proxy's CPU seconds per unit of `tests`' work
/// (summed over the tests of a round).
fn cpu_per_unit(runs: &[Run], tests: &[Test], proxy: Target) -> Option<f64> {
    let rounds: Vec<usize> = runs.iter().map(|r| r.round).collect();
    let last = rounds.iter().max().copied()?;
    let per_round: Vec<f64> = (0..=last)
        .filter_map(|round| {
            let mine: Vec<&Run> = runs
                .iter()
                .filter(|r| r.round == round && r.target == proxy && tests.contains(&r.test))
                .collect();
            let cpu: f64 = mine.iter().filter_map(|r| r.proxy_cpu_s).sum();
            let work: f64 = mine.iter().map(|r| r.work).sum();
            (work > 0.0 && !mine.is_empty()).then(|| cpu / work)
        })
        .collect();
    (!per_round.is_empty()).then(|| median(per_round))
}

/// Every row of the table, from the runs and the idle results.
pub fn figures(runs: &[Run], idle: &[Vec<IdleResult>]) -> Vec<Row> {
    let mut proxies: Vec<Target> = [Target::Haproxy, Target::Nginx, Target::Passthru]
        .into_iter()
        .filter(|t| {
            runs.iter().any(|r| r.target == *t) || idle.iter().flatten().any(|i| i.target == *t)
        })
        .collect();
    proxies.dedup();
    let mut rows = Vec::new();
    let mut push = |figure: String,
                    goal: Goal,
                    f: &dyn Fn(Target) -> Option<f64>,
                    fmt: &dyn Fn(f64) -> String| {
        let values: Vec<(Target, Option<f64>)> = proxies.iter().map(|&p| (p, f(p))).collect();
        rows.push(row(figure, goal, values, fmt));
    };
    let ratio = |test: Test| {
        move |p: Target| {
            let v = pair_ratios(runs, test, p);
            (!v.is_empty()).then(|| median(v))
        }
    };
    let two = |v: f64| format!("{v:.2}");
    push(
        format!(
            "keep-alive req/s, ratio to direct (wrk -t{WRK_THREADS} -c{WRK_CONNS}, 64 B answers)"
        ),
        Goal::Above,
        &ratio(Test::KeepAlive),
        &two,
    );
    push(
        "new TLS connections/s, ratio (wrk, `Connection: close`)".to_string(),
        Goal::Above,
        &ratio(Test::NewConns),
        &two,
    );
    let mib = |b: u64| b >> 20;
    let (par, single) = runs
        .iter()
        .find(|r| r.test == Test::BulkParallel)
        .zip(runs.iter().find(|r| r.test == Test::BulkSingle))
        .map_or((0, 0), |(p, s)| {
            ((p.work as u64 / BULK_PARALLEL as u64), s.work as u64)
        });
    push(
        format!(
            "bulk, {BULK_PARALLEL} connections, ratio ({BULK_PARALLEL} curl, {} MiB each)",
            mib(par)
        ),
        Goal::Above,
        &ratio(Test::BulkParallel),
        &two,
    );
    push(
        format!("bulk, 1 connection, ratio (curl {} MiB)", mib(single)),
        Goal::Above,
        &ratio(Test::BulkSingle),
        &two,
    );
    let handshakes = runs
        .iter()
        .find(|r| r.test == Test::Handshake)
        .map_or(0, |r| r.work as u64);
    push(
        format!("unloaded handshake p50, ratio ({handshakes} sequential curl)"),
        Goal::NotAbove,
        &ratio(Test::Handshake),
        &two,
    );
    push(
        "proxy CPU per keep-alive request, µs".to_string(),
        Goal::Below,
        &|p| cpu_per_unit(runs, &[Test::KeepAlive], p).map(|s| s * 1e6),
        &|v| format!("{v:.1}"),
    );
    push(
        "proxy CPU per new TLS connection, µs".to_string(),
        Goal::Below,
        &|p| cpu_per_unit(runs, &[Test::NewConns], p).map(|s| s * 1e6),
        &|v| format!("{v:.0}"),
    );
    push(
        "proxy CPU per GB relayed (both bulk tests), ms".to_string(),
        Goal::Below,
        &|p| cpu_per_unit(runs, &[Test::BulkParallel, Test::BulkSingle], p).map(|s| s * 1e12),
        &|v| format!("{v:.0}"),
    );
    push(
        format!("peak RSS under keep-alive load ({WRK_CONNS} connections), MiB"),
        Goal::Below,
        &|p| {
            let v: Vec<f64> = runs
                .iter()
                .filter(|r| r.target == p && r.test == Test::KeepAlive)
                .filter_map(|r| r.proxy_peak_rss_kib)
                .map(|k| k as f64 / 1024.0)
                .collect();
            (!v.is_empty()).then(|| median(v))
        },
        &|v| format!("{v:.1}"),
    );
    for results in idle {
        let Some(held) = results.iter().map(|r| r.held).max() else {
            continue;
        };
        let of = |p: Target| results.iter().find(|r| r.target == p);
        push(
            format!(
                "memory per idle mutual-TLS connection ({held} held; RSS growth / connections), KiB"
            ),
            Goal::Below,
            &|p| of(p).map(|r| r.bytes_per_conn / 1024.0),
            &|v| format!("{v:.1}"),
        );
    }
    if let Some(results) = idle.last().filter(|r| !r.is_empty()) {
        let held = results.iter().map(|r| r.held).max().unwrap_or(0);
        let of = |p: Target| results.iter().find(|r| r.target == p);
        let values: Vec<(Target, Option<f64>)> = proxies
            .iter()
            .map(|&p| (p, of(p).map(|r| r.rss_after_kib as f64 / 1024.0)))
            .collect();
        let cells = proxies
            .iter()
            .map(|&p| {
                of(p).map_or_else(
                    || "–".to_string(),
                    |r| {
                        format!(
                            "{:.1} → {:.1} MiB",
                            r.rss_before_kib as f64 / 1024.0,
                            r.rss_after_kib as f64 / 1024.0
                        )
                    },
                )
            })
            .collect();
        let start = of(Target::Passthru).map(|r| r.rss_before_kib as f64 / 1024.0);
        let mine = of(Target::Passthru).map(|r| r.rss_after_kib as f64 / 1024.0);
        rows.push(Row {
            figure: format!(
                "RSS {}s after those {held} close, against before them",
                idle::AFTER_CLOSE.as_secs()
            ),
            values,
            cells,
            goal: Goal::BackNearStart,
            met: goal_met(Goal::BackNearStart, mine, &[start]),
        });
    }
    rows
}

fn row(
    figure: String,
    goal: Goal,
    values: Vec<(Target, Option<f64>)>,
    fmt: &dyn Fn(f64) -> String,
) -> Row {
    let cells = values
        .iter()
        .map(|(_, v)| v.map_or_else(|| "–".to_string(), fmt))
        .collect();
    let mine = values
        .iter()
        .find(|(t, _)| *t == Target::Passthru)
        .and_then(|(_, v)| *v);
    let others: Vec<Option<f64>> = values
        .iter()
        .filter(|(t, _)| *t != Target::Passthru)
        .map(|(_, v)| *v)
        .collect();
    Row {
        figure,
        met: goal_met(goal, mine, &others),
        values,
        cells,
        goal,
    }
}

/// The Markdown table: figure | one column per proxy | goal | met?
pub fn render(rows: &[Row]) -> String {
    let Some(first) = rows.first() else {
        return String::new();
    };
    let mut out = String::from("| figure |");
    for (t, _) in &first.values {
        let _ = write!(out, " {t} |");
    }
    out.push_str(" goal (passthru) | goal met? |\n|---|");
    for _ in &first.values {
        out.push_str("---|");
    }
    out.push_str("---|---|\n");
    for r in rows {
        let _ = write!(out, "| {} |", r.figure);
        for c in &r.cells {
            let _ = write!(out, " {c} |");
        }
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "–",
        };
        let _ = writeln!(out, " {} | {met} |", r.goal.text());
    }
    out
}

/// Every round's ratio of each ratio figure (the table gives their
/// median), in round order. Where one proxy's rounds overlap another's,
/// the two are level within the noise of the direct runs they were paired
/// with, whatever their medians say.
pub fn render_rounds(runs: &[Run]) -> String {
    let proxies: Vec<Target> = [Target::Haproxy, Target::Nginx, Target::Passthru]
        .into_iter()
        .filter(|t| runs.iter().any(|r| r.target == *t))
        .collect();
    let mut out = report::head("ratio to direct, each round", &proxies);
    for (test, name) in [
        (Test::KeepAlive, "keep-alive".to_string()),
        (Test::NewConns, "new connections".to_string()),
        (
            Test::BulkParallel,
            format!("bulk, {BULK_PARALLEL} connections"),
        ),
        (Test::BulkSingle, "bulk, 1 connection".to_string()),
        (Test::Handshake, "handshake p50".to_string()),
    ] {
        if !runs.iter().any(|r| r.test == test) {
            continue;
        }
        let _ = write!(out, "| {name} |");
        for &p in &proxies {
            let ratios: Vec<String> = pair_ratios(runs, test, p)
                .iter()
                .map(|v| format!("{v:.2}"))
                .collect();
            let cell = if ratios.is_empty() {
                "–".to_string()
            } else {
                ratios.join(" ")
            };
            let _ = write!(out, " {cell} |");
        }
        out.push('\n');
    }
    out
}

fn write_json(
    path: &std::path::Path,
    info: &RunInfo,
    rows: &[Row],
    table: &str,
    runs: &[Run],
    idle: &[Vec<IdleResult>],
) -> Result<()> {
    #[derive(Serialize)]
    struct File<'a> {
        info: &'a RunInfo,
        figures: &'a [Row],
        table: &'a str,
        runs: &'a [Run],
        idle: &'a [Vec<IdleResult>],
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let text = serde_json::to_string_pretty(&File {
        info,
        figures: rows,
        table,
        runs,
        idle,
    })?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn progress(r: &Run) -> String {
    let cpu = |scale: f64, unit: &str| {
        r.proxy_cpu_s
            .filter(|_| r.work > 0.0)
            .map_or_else(String::new, |c| {
                format!(", proxy CPU {:.1} {unit}", c / r.work * scale)
            })
    };
    let line = match r.test {
        Test::KeepAlive => format!("{:8.0} req/s{}", r.value, cpu(1e6, "µs/req")),
        Test::NewConns => format!("{:8.0} conn/s{}", r.value, cpu(1e6, "µs/conn")),
        Test::BulkParallel | Test::BulkSingle => {
            format!("{:8.1} MB/s{}", r.value / 1e6, cpu(1e12, "ms/GB"))
        }
        Test::Handshake => format!("p50 {:.3} ms ({} handshakes)", r.value * 1e3, r.work),
    };
    if r.errors > 0 {
        format!("{line} ({} errors)", r.errors)
    } else {
        line
    }
}

/// wrk threads, as in the reference method.
pub const WRK_THREADS: usize = 2;
/// wrk connections, as in the reference method.
pub const WRK_CONNS: usize = 50;
/// Parallel downloads of the multi-connection bulk test.
pub const BULK_PARALLEL: usize = 8;
/// Bytes per second below which a download is given up (bounds each curl).
const BULK_FLOOR_RATE: u64 = 5_000_000;
/// Bound on one handshake curl.
const CURL_SMALL_MAX: Duration = Duration::from_secs(10);
/// Bound on all the handshakes of one run.
const HANDSHAKES_WITHIN: Duration = Duration::from_secs(120);
/// The RSS goal after the idle connections close: within 25 % of the start.
pub const BACK_NEAR_START: f64 = 1.25;

#[cfg(test)]
mod tests {
    use super::*;

    fn run(pair: usize, target: Target, value: f64, cpu: Option<f64>, work: f64) -> Run {
        Run {
            round: pair / 10,
            pair,
            test: Test::KeepAlive,
            target,
            value,
            work,
            seconds: 1.0,
            proxy_cpu_s: cpu,
            proxy_peak_rss_kib: cpu.map(|_| 2048),
            errors: 0,
        }
    }

    #[test]
    fn ratios_are_taken_within_a_pair() {
        // Round 0: direct 100, passthru 50; round 1 (whole machine slower):
        // direct 10, passthru 6. The direct run of another pair is ignored.
        let runs = vec![
            run(0, Target::Direct, 100.0, None, 0.0),
            run(0, Target::Passthru, 50.0, Some(1.0), 100.0),
            run(1, Target::Direct, 1.0, None, 0.0),
            run(10, Target::Passthru, 6.0, Some(1.0), 200.0),
            run(10, Target::Direct, 10.0, None, 0.0),
        ];
        assert_eq!(
            pair_ratios(&runs, Test::KeepAlive, Target::Passthru),
            vec![0.5, 0.6]
        );
        // CPU per request: 1/100 and 1/200, median of the two rounds.
        let cpu = cpu_per_unit(&runs, &[Test::KeepAlive], Target::Passthru).unwrap();
        assert!((cpu - 0.0075).abs() < 1e-12, "{cpu}");
    }

    #[test]
    fn goals_compare_against_every_present_column() {
        assert_eq!(
            goal_met(Goal::Above, Some(0.7), &[Some(0.66), Some(0.61)]),
            Some(true)
        );
        assert_eq!(
            goal_met(Goal::Above, Some(0.62), &[Some(0.66), Some(0.61)]),
            Some(false)
        );
        assert_eq!(
            goal_met(Goal::Below, Some(3.0), &[Some(3.5), None]),
            Some(true)
        );
        assert_eq!(
            goal_met(Goal::NotAbove, Some(1.09), &[Some(1.13), Some(1.09)]),
            Some(true)
        );
        assert_eq!(
            goal_met(Goal::BackNearStart, Some(7.0), &[Some(5.9)]),
            Some(true)
        );
        assert_eq!(
            goal_met(Goal::BackNearStart, Some(91.6), &[Some(5.9)]),
            Some(false)
        );
        assert_eq!(goal_met(Goal::Below, None, &[Some(1.0)]), None);
        assert_eq!(goal_met(Goal::Below, Some(1.0), &[None, None]), None);
    }

    #[test]
    fn table_has_one_line_per_figure_and_a_verdict() {
        let runs = vec![
            run(0, Target::Direct, 100.0, None, 0.0),
            run(0, Target::Passthru, 70.0, Some(0.5), 70.0),
            run(1, Target::Haproxy, 66.0, Some(0.6), 66.0),
            run(1, Target::Direct, 100.0, None, 0.0),
        ];
        let rows = figures(&runs, &[]);
        let table = render(&rows);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "| figure | haproxy | passthru | goal (passthru) | goal met? |"
        );
        assert_eq!(lines.len(), 2 + rows.len());
        let keep_alive = lines
            .iter()
            .find(|l| l.contains("keep-alive req/s"))
            .unwrap();
        assert!(
            keep_alive.ends_with("| 0.66 | 0.70 | > both | yes |"),
            "{keep_alive}"
        );
        let cpu = lines
            .iter()
            .find(|l| l.contains("per keep-alive request"))
            .unwrap();
        // 0.5 s / 70 requests = 7142.9 µs against 0.6 / 66 = 9090.9 µs.
        assert!(cpu.ends_with("| 9090.9 | 7142.9 | < both | yes |"), "{cpu}");
        let bulk = lines
            .iter()
            .find(|l| l.contains("bulk, 1 connection"))
            .unwrap();
        assert!(bulk.ends_with("| – | – | > both | – |"), "{bulk}");
    }

    #[test]
    fn every_round_s_ratio_is_listed_in_round_order() {
        let runs = vec![
            run(0, Target::Direct, 100.0, None, 0.0),
            run(0, Target::Passthru, 61.0, Some(0.5), 61.0),
            run(1, Target::Haproxy, 64.0, Some(0.6), 64.0),
            run(1, Target::Direct, 100.0, None, 0.0),
            run(10, Target::Direct, 80.0, None, 0.0),
            run(10, Target::Passthru, 52.0, Some(0.5), 52.0),
            run(11, Target::Haproxy, 45.0, Some(0.6), 45.0),
            run(11, Target::Direct, 90.0, None, 0.0),
        ];
        let table = render_rounds(&runs);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines,
            [
                "| ratio to direct, each round | haproxy | passthru |",
                "|---|---|---|",
                "| keep-alive | 0.64 0.50 | 0.61 0.65 |",
            ]
        );
    }
}
