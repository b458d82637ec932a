//! `personas-bench`: `personas bench`, measurements of the runtime's own overhead on this
//! machine.
//!
//! A crate of its own because it measures the runtime in process: it builds stores, engines
//! and dispatchers directly in throwaway data dirs, which the `personas` CLI — a client of the
//! operations only — must not. The CLI parses `personas bench …` with [`BenchArgs`] and calls
//! [`run`].
//!
//! - `parse`: stream-json parser throughput over the recorded CLI transcripts.
//! - `pipeline`: executions/s through queue → runner → store with the stand-in CLI
//!   (`personas-fake-claude`, built next to `personas`), and the claim → spawn overhead.
//! - `startup`: `personas up` time to ready and idle memory.
//! - `bus`: the event bus — emit → enqueue latency, durable events/s, memory under a burst
//!   (not part of the default set: it publishes 100 000 events).
//! - `admission`: the admission transaction's latency (claiming one queued execution) over a
//!   store with history, without and with budget caps (which sum the day's and month's spend),
//!   and the time to read 30 days of metrics.
//! - `redact`: redaction throughput with 100 secrets, the run environment's allow-list build,
//!   and a tool call over a run's tool channel (see `bench_redact`).
//! - `retention`: a simulated year of hourly runs of 10 personas under the default retention
//!   policy: database size and daily gc time (not part of the default set: it writes 17.5
//!   million output lines).
//!
//! Each runs in a throwaway data dir and prints what it measured (JSON with `--json`).

#![forbid(unsafe_code)]

mod bus;
mod error;
mod redact;
mod retention;

pub use bus::BusBenchArgs;
use clap::{Args, ValueEnum};
pub use error::{BenchError, BenchResult};
use personas_core::{ExecutionStatus, LineKind, PersonaSpec};
use personas_engine::{Engine, EngineConfig, EngineEvent};
use personas_store::{Durability, NewExecution, Store, StoreOptions};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Which benchmarks to run (all by default).
    #[arg(value_enum)]
    pub which: Vec<Which>,
    /// Folder of recorded `*.stdout.jsonl` transcripts for `parse`.
    #[arg(long, default_value = "fixtures/claude-code")]
    pub fixtures: PathBuf,
    /// Executions for `pipeline`.
    #[arg(long, default_value_t = 2000)]
    pub executions: usize,
    /// Concurrency for `pipeline`.
    #[arg(long, default_value_t = 16)]
    pub concurrency: u32,
    /// Store durability for `pipeline`: full (the default everywhere) or normal.
    #[arg(long, default_value = "full")]
    pub durability: String,
    #[command(flatten)]
    pub bus: BusBenchArgs,
    /// Ended executions in the store for `admission` (all within the current month).
    #[arg(long, default_value_t = 20_000)]
    pub history: usize,
    /// Simulated days for `retention`.
    #[arg(long, default_value_t = 365)]
    pub days: u32,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    Parse,
    Pipeline,
    Startup,
    Bus,
    Admission,
    Retention,
    Redact,
}

#[derive(Serialize, Default)]
struct Report {
    #[serde(skip_serializing_if = "Option::is_none")]
    parse: Option<ParseReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pipeline: Option<PipelineReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    startup: Option<StartupReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bus: Option<bus::BusReport>,
    admission: Option<AdmissionReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retention: Option<retention::RetentionReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    redact: Option<redact::RedactReport>,
}

/// Runs the benchmarks `args` names and prints what they measured: a line each, or one JSON
/// report with `json`. `config` is the effective configuration (the bus bench's runtime
/// settings).
pub async fn run(args: BenchArgs, config: &EngineConfig, json: bool) -> BenchResult<()> {
    let which = if args.which.is_empty() {
        vec![
            Which::Parse,
            Which::Pipeline,
            Which::Startup,
            Which::Admission,
            Which::Redact,
        ]
    } else {
        args.which.clone()
    };
    let mut report = Report::default();
    for w in which {
        match w {
            Which::Parse => {
                let r = parse(&args.fixtures)?;
                if !json {
                    println!(
                        "parse: {:.0} MB/s ({} lines, {:.1} MB per pass, {} passes)",
                        r.mb_per_s,
                        r.lines,
                        r.bytes as f64 / 1e6,
                        r.passes
                    );
                }
                report.parse = Some(r);
            }
            Which::Pipeline => {
                let r = pipeline(&args).await?;
                if !json {
                    println!(
                        "pipeline: {:.0} executions/s ({} runs, concurrency {}, {} durability); claim→spawn p50 {:.1} ms, p99 {:.1} ms",
                        r.executions_per_s,
                        r.executions,
                        r.concurrency,
                        r.durability,
                        r.claim_to_spawn_ms_p50,
                        r.claim_to_spawn_ms_p99
                    );
                }
                report.pipeline = Some(r);
            }
            Which::Startup => {
                let r = startup().await?;
                if !json {
                    println!(
                        "startup: ready in {:.0} ms (median of {}), idle RSS {:.1} MB",
                        r.ready_ms_median, r.runs, r.idle_rss_mb
                    );
                }
                report.startup = Some(r);
            }
            Which::Redact => {
                let r = redact::run(transcript_lines(&args.fixtures)?).await?;
                if !json {
                    println!(
                        "redact: {} secrets ({:.1} ms to build): {:.0} MB/s on clean lines, {:.0} MB/s with a secret in one line of ten ({:.1} MB corpus); run environment {:.1} µs + redactor {:.0} µs; tool call over the run's channel p50 {:.0} µs, p99 {:.0} µs",
                        r.secrets,
                        r.patterns_build_ms,
                        r.clean_mb_per_s,
                        r.with_secrets_mb_per_s,
                        r.corpus_bytes as f64 / 1e6,
                        r.env_build_us,
                        r.env_redactor_us,
                        r.tool_call_us_p50,
                        r.tool_call_us_p99
                    );
                }
                report.redact = Some(r);
            }
            Which::Bus => report.bus = Some(bus::run(config, args.bus.clone()).await?),
            Which::Admission => {
                let r = admission(args.history)?;
                if !json {
                    println!(
                        "admission: {} claims over {} ended executions: p50 {:.0} µs, p99 {:.0} µs without caps; p50 {:.0} µs, p99 {:.0} µs with daily+monthly caps (persona and global); 30 days of metrics read in {:.2} ms",
                        r.admissions,
                        r.history,
                        r.plain_us_p50,
                        r.plain_us_p99,
                        r.capped_us_p50,
                        r.capped_us_p99,
                        r.metrics_read_ms
                    );
                }
                report.admission = Some(r);
            }
            Which::Retention => {
                let days = args.days;
                let r = tokio::task::spawn_blocking(move || retention::run(days))
                    .await
                    .map_err(|e| BenchError::runtime(e.to_string()))??;
                if !json {
                    println!(
                        "retention: {} days of hourly runs of {} personas ({} lines of {} B each): database {:.0} MB at the end (peak {:.0} MB), {} executions and {} output lines kept; daily gc p50 {:.0} ms, max {:.0} ms (generated in {:.0} s)",
                        r.days,
                        r.personas,
                        r.lines_per_run,
                        r.line_bytes,
                        r.final_db_mb,
                        r.peak_db_mb,
                        r.executions_kept,
                        r.output_lines_kept,
                        r.gc_ms_median,
                        r.gc_ms_max,
                        r.generate_s
                    );
                }
                report.retention = Some(r);
            }
        }
    }
    if json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| BenchError::runtime(format!("cannot encode the report: {e}")))?;
        println!("{text}");
    }
    Ok(())
}

#[derive(Serialize)]
struct ParseReport {
    bytes: usize,
    lines: usize,
    passes: usize,
    mb_per_s: f64,
}

fn parse(dir: &Path) -> BenchResult<ParseReport> {
    let lines = transcript_lines(dir)?;
    let bytes: usize = lines.iter().map(Vec::len).sum();
    // Warm up, then parse for about two seconds.
    let mut parsed = 0usize;
    for l in &lines {
        parsed += usize::from(personas_core::stream::parse_line(l).is_ok());
    }
    let start = Instant::now();
    let mut passes = 0;
    while start.elapsed() < Duration::from_secs(2) {
        for l in &lines {
            parsed += usize::from(
                std::hint::black_box(personas_core::stream::parse_line(std::hint::black_box(l)))
                    .is_ok(),
            );
        }
        passes += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    std::hint::black_box(parsed);
    Ok(ParseReport {
        bytes,
        lines: lines.len(),
        passes,
        mb_per_s: (bytes * passes) as f64 / secs / 1e6,
    })
}

/// Every line of the recorded `*.stdout.jsonl` transcripts in `dir`.
fn transcript_lines(dir: &Path) -> BenchResult<Vec<Vec<u8>>> {
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| {
        BenchError::usage(format!("cannot read fixtures at {}: {e}", dir.display()))
            .with_hint("run from the repository root, or pass --fixtures DIR")
    })?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.to_string_lossy().ends_with(".stdout.jsonl") {
            let text = std::fs::read(&path)
                .map_err(|e| BenchError::runtime(format!("{}: {e}", path.display())))?;
            lines.extend(
                text.split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(<[u8]>::to_vec),
            );
        }
    }
    if lines.is_empty() {
        return Err(BenchError::usage(format!(
            "no *.stdout.jsonl transcripts in {}",
            dir.display()
        )));
    }
    Ok(lines)
}

#[derive(Serialize)]
struct PipelineReport {
    executions: usize,
    concurrency: u32,
    durability: String,
    seconds: f64,
    executions_per_s: f64,
    claim_to_spawn_ms_p50: f64,
    claim_to_spawn_ms_p99: f64,
}

/// The stand-in CLI, expected next to this binary (`cargo build --release` builds both).
fn fake_cli() -> BenchResult<PathBuf> {
    let exe = std::env::current_exe().map_err(|e| BenchError::runtime(e.to_string()))?;
    let path = exe.with_file_name("personas-fake-claude");
    if path.exists() {
        Ok(path)
    } else {
        Err(BenchError::runtime(format!("the stand-in CLI is missing at {}", path.display()))
            .with_hint("build it with `cargo build --release -p personas-testkit --bin personas-fake-claude` (make bench does)"))
    }
}

async fn pipeline(args: &BenchArgs) -> BenchResult<PipelineReport> {
    let fake = fake_cli()?;
    let scratch = tempdir()?;
    let dir = scratch.path().to_path_buf();
    let durability = match args.durability.as_str() {
        "full" => Durability::Full,
        "normal" => Durability::Normal,
        other => {
            return Err(BenchError::usage(format!(
                "--durability: unknown value {other:?}; expected full or normal"
            )));
        }
    };
    let store = Store::open(
        &dir.join(personas_store::DB_FILE),
        StoreOptions {
            durability,
            ..StoreOptions::default()
        },
    )?;
    let mut spec = PersonaSpec::new("Bench", "Say hello.");
    spec.max_concurrent = args.concurrency;
    let persona = store.personas().create(&spec)?;
    let mut config = EngineConfig::for_data_dir(&dir);
    config.claude_path = Some(fake);
    config.max_concurrent = args.concurrency;
    let engine = Engine::new(config, store.clone());
    let mut events = engine.subscribe();
    // Queue everything first so the measurement is the engine draining a backlog.
    for _ in 0..args.executions {
        store
            .executions()
            .enqueue(&NewExecution::manual(persona.id.clone(), None))?;
    }
    let start = Instant::now();
    engine.start().await?;
    let mut done = 0;
    let mut failed = 0;
    while done < args.executions {
        match events.recv().await {
            Ok(EngineEvent::Execution { execution }) if execution.status.is_terminal() => {
                done += 1;
                failed += usize::from(execution.status != ExecutionStatus::Completed);
            }
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(e) => return Err(BenchError::runtime(format!("event channel closed: {e}"))),
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    engine.shutdown().await;
    if failed > 0 {
        return Err(BenchError::runtime(format!(
            "{failed} of {} benchmark executions did not complete",
            args.executions
        )));
    }
    // claim → spawn: from started_at (the claim) to the runner's "started" line.
    let mut gaps: Vec<f64> = Vec::new();
    for e in store.executions().list(&personas_store::ExecutionFilter {
        limit: Some(args.executions as u32),
        ..Default::default()
    })? {
        let first = store.executions().output(&e.id, 0, 1)?;
        if let (Some(started), Some(line)) = (e.started_at, first.first())
            && line.kind == LineKind::Engine
        {
            gaps.push((line.at - started).num_microseconds().unwrap_or(0) as f64 / 1000.0);
        }
    }
    gaps.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        gaps.get(((gaps.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    Ok(PipelineReport {
        executions: args.executions,
        concurrency: args.concurrency,
        durability: args.durability.clone(),
        seconds,
        executions_per_s: args.executions as f64 / seconds,
        claim_to_spawn_ms_p50: pct(0.5),
        claim_to_spawn_ms_p99: pct(0.99),
    })
}

#[derive(Serialize)]
struct StartupReport {
    runs: usize,
    ready_ms_median: f64,
    ready_ms_all: Vec<f64>,
    idle_rss_mb: f64,
}

async fn startup() -> BenchResult<StartupReport> {
    use tokio::io::AsyncBufReadExt;
    let exe = std::env::current_exe().map_err(|e| BenchError::runtime(e.to_string()))?;
    let mut times = Vec::new();
    let mut rss = 0.0;
    let runs = 5;
    for i in 0..runs {
        let scratch = tempdir()?;
        let dir = scratch.path();
        let start = Instant::now();
        let mut child = tokio::process::Command::new(&exe)
            .args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| BenchError::runtime(format!("cannot start personas up: {e}")))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| BenchError::runtime("no stdout"))?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(l)) = lines.next_line().await {
                if l.contains("running at") {
                    return true;
                }
            }
            false
        })
        .await
        .unwrap_or(false);
        if !ready {
            return Err(BenchError::runtime(
                "personas up did not become ready within 30 s",
            ));
        }
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        if i == runs - 1 {
            // Idle memory: let it settle, then read the resident set.
            tokio::time::sleep(Duration::from_secs(3)).await;
            if let Some(pid) = child.id() {
                rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
                    .ok()
                    .and_then(|s| {
                        s.lines()
                            .find(|l| l.starts_with("VmRSS:"))
                            .map(str::to_string)
                    })
                    .and_then(|l| {
                        l.split_whitespace()
                            .nth(1)
                            .and_then(|kb| kb.parse::<f64>().ok())
                    })
                    .map(|kb| kb / 1024.0)
                    .unwrap_or(f64::NAN);
            }
        }
        let _ = child.kill().await;
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(StartupReport {
        runs,
        ready_ms_median: sorted[sorted.len() / 2],
        ready_ms_all: times,
        idle_rss_mb: rss,
    })
}

#[derive(Serialize)]
struct AdmissionReport {
    history: usize,
    admissions: usize,
    plain_us_p50: f64,
    plain_us_p99: f64,
    capped_us_p50: f64,
    capped_us_p99: f64,
    metrics_read_ms: f64,
}

fn admission(history: usize) -> BenchResult<AdmissionReport> {
    use personas_core::ExecutionOutcome;
    use personas_store::{GlobalCaps, PersonaPolicy};
    const PERSONAS: usize = 10;
    const ADMISSIONS: usize = 600;
    let scratch = tempdir()?;
    let path = scratch.path().join(personas_store::DB_FILE);
    let mut ids = Vec::new();
    {
        // History is written fast (NORMAL); the measurement reopens with FULL, the default.
        let setup = Store::open(
            &path,
            StoreOptions {
                durability: Durability::Normal,
                ..StoreOptions::default()
            },
        )?;
        for i in 0..PERSONAS {
            let mut spec = PersonaSpec::new(format!("Bench {i}"), "Say hello.");
            spec.max_concurrent = 64;
            ids.push(setup.personas().create(&spec)?.id);
        }
        let ex = setup.executions();
        for i in 0..history {
            let e = ex.enqueue(&NewExecution::manual(ids[i % PERSONAS].clone(), None))?;
            ex.claim(&e.id, u32::MAX, "setup")?;
            let mut out = ExecutionOutcome::ended(ExecutionStatus::Completed, None, None);
            out.cost_usd = 0.01;
            ex.finish(&e.id, &out)?;
        }
    }
    let store = Store::open(&path, StoreOptions::default())?;
    let pass = |caps: &GlobalCaps| -> BenchResult<Vec<f64>> {
        let ex = store.executions();
        for i in 0..ADMISSIONS {
            ex.enqueue(&NewExecution::manual(ids[i % PERSONAS].clone(), None))?;
        }
        let mut took = Vec::with_capacity(ADMISSIONS);
        let mut started = Vec::with_capacity(ADMISSIONS);
        for _ in 0..ADMISSIONS {
            let t = Instant::now();
            let admitted = ex.admit_next(u32::MAX, "bench", caps)?;
            took.push(t.elapsed().as_secs_f64() * 1e6);
            let e = admitted.started.ok_or_else(|| {
                BenchError::runtime("admission refused or found nothing in the bench")
            })?;
            started.push(e.id);
        }
        for id in started {
            ex.finish(
                &id,
                &ExecutionOutcome::ended(ExecutionStatus::Completed, None, None),
            )?;
        }
        took.sort_by(f64::total_cmp);
        Ok(took)
    };
    let plain = pass(&GlobalCaps::default())?;
    for id in &ids {
        store.policies().set(
            id,
            &PersonaPolicy {
                daily_budget_usd: Some(1e9),
                monthly_budget_usd: Some(1e9),
                ..PersonaPolicy::default()
            },
        )?;
    }
    let capped = pass(&GlobalCaps {
        daily_usd: Some(1e9),
        monthly_usd: Some(1e9),
    })?;
    store.stats().rebuild_spend(30)?;
    let t = Instant::now();
    let stats = store.stats().runs(30, 0, None)?;
    let metrics_read_ms = t.elapsed().as_secs_f64() * 1e3;
    if stats.days.is_empty() {
        return Err(BenchError::runtime(
            "the run statistics are empty after the bench",
        ));
    }
    let p = |v: &[f64], q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
    Ok(AdmissionReport {
        history,
        admissions: ADMISSIONS,
        plain_us_p50: p(&plain, 0.5),
        plain_us_p99: p(&plain, 0.99),
        capped_us_p50: p(&capped, 0.5),
        capped_us_p99: p(&capped, 0.99),
        metrics_read_ms,
    })
}

fn tempdir() -> BenchResult<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("personas-bench-")
        .tempdir()
        .map_err(|e| BenchError::runtime(format!("cannot create a scratch directory: {e}")))
}
