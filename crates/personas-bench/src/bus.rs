//! `personas bench bus`: what the durable event bus costs, on a throwaway store on this disk
//! (WAL, `synchronous=FULL`: every number is for durable events).
//!
//! 1. **Latency**: with N subscriptions (exact and `*` patterns), events are published one at a
//!    time the way a run publishes `emit_event` (store insert, then the in-process wake-up); the
//!    time is from the start of the insert until the dispatcher has committed the matching
//!    execution (its `EventDelivered` broadcast). Reported as p50/p90/p99/max.
//! 2. **Throughput**: a burst of events from many concurrent publishers through the
//!    group-committing publisher, each matching one subscription; the time until every one is
//!    delivered (its execution committed). Reported as events/s published, and published and
//!    matched.
//! 3. **Memory**: the process's resident set sampled every 20 ms during the burst, with one
//!    subscriber draining the engine's broadcast channel as a UI would; and the CPU time the
//!    process spent per event (load-independent, unlike the rates on a shared machine).
//! 4. **Each side alone**: the same number of events published in batches of 1 000 with the
//!    dispatcher stopped, then matched by a fresh dispatcher from that backlog.
//!
//! The queue is not started: executions are created, not run (running them is the runner's
//! cost, measured elsewhere).

use crate::{BenchError, BenchResult};
use clap::Args;
use personas_core::PersonaSpec;
use personas_core::trigger::{SourceKind, TriggerConfig};
use personas_engine::bus::{Dispatcher, Publisher};
use personas_engine::events::EventBus;
use personas_engine::{EngineConfig, EngineEvent};
use personas_store::{NewEvent, NewTrigger, Store};
use serde::Serialize;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

#[derive(Args, Debug, Clone)]
pub struct BusBenchArgs {
    /// Subscriptions to match against (one in ten a `*` pattern); each event matches one.
    #[arg(long, default_value_t = 1_000)]
    pub subscriptions: usize,
    /// Events published one at a time for the latency measurement.
    #[arg(long, default_value_t = 2_000)]
    pub latency_events: usize,
    /// Events in the throughput burst.
    #[arg(long, default_value_t = 100_000)]
    pub burst: usize,
    /// Concurrent publishers during the burst.
    #[arg(long, default_value_t = 64)]
    pub publishers: usize,
    /// Where to put the throwaway store (default: the system temp dir). Deleted afterwards.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct BusReport {
    pub subscriptions: usize,
    pub latency_events: usize,
    pub latency_ms: Percentiles,
    pub burst_events: usize,
    pub publishers: usize,
    pub publish_per_sec: f64,
    pub published_and_matched_per_sec: f64,
    pub burst_secs: f64,
    pub executions_created: u64,
    pub rss_before_mib: f64,
    pub rss_peak_mib: f64,
    pub rss_after_mib: f64,
    /// CPU time (user + system) of the whole process during the burst, per event.
    pub burst_cpu_us_per_event: f64,
    pub backlog_publish_per_sec: f64,
    pub backlog_match_per_sec: f64,
    /// Load average when the run finished (the machine may be shared).
    pub load_average: String,
}

#[derive(Debug, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

fn percentiles(mut v: Vec<f64>) -> Percentiles {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        v.get(i).copied().unwrap_or(f64::NAN)
    };
    Percentiles {
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        max: v.last().copied().unwrap_or(f64::NAN),
    }
}

/// Resident set size of this process in MiB (Linux), 0 elsewhere.
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// CPU time (user + system) this process has used, in seconds (Linux; 0 elsewhere).
fn cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesised command name: utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // USER_HZ is 100 on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

fn event_type(j: usize) -> String {
    if j % 10 == 9 {
        format!("bench.wild.{j}.fired")
    } else {
        format!("bench.type.{j}")
    }
}

fn bench_err(e: impl std::fmt::Display) -> BenchError {
    BenchError::runtime(format!("bench failed: {e}"))
}

pub async fn run(config: &EngineConfig, args: BusBenchArgs) -> BenchResult<BusReport> {
    if args.subscriptions == 0 || args.publishers == 0 {
        return Err(BenchError::usage(
            "--subscriptions and --publishers must be at least 1",
        ));
    }
    let base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("personas-bench-bus-{}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| BenchError::runtime(format!("cannot create {}: {e}", dir.display())))?;
    let result = measure(config, &args, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn measure(
    base: &EngineConfig,
    args: &BusBenchArgs,
    dir: &std::path::Path,
) -> BenchResult<BusReport> {
    let store = Store::open_in_dir(dir).map_err(bench_err)?;
    eprintln!(
        "bus bench: store {} (WAL, synchronous=FULL); {} subscriptions",
        dir.display(),
        args.subscriptions
    );
    let setup = {
        let (store, n) = (store.clone(), args.subscriptions);
        tokio::task::spawn_blocking(move || -> Result<(), personas_store::StoreError> {
            let personas: Vec<_> = (0..100.min(n))
                .map(|i| {
                    store.personas().create(&PersonaSpec::new(
                        format!("bench-{i}"),
                        "Benchmark persona.",
                    ))
                })
                .collect::<Result<_, _>>()?;
            for j in 0..n {
                let pattern = if j % 10 == 9 {
                    format!("bench.wild.{j}.*")
                } else {
                    format!("bench.type.{j}")
                };
                store.triggers().create(
                    &NewTrigger {
                        persona_id: personas[j % personas.len()].id.clone(),
                        config: TriggerConfig::Event {
                            pattern,
                            source: None,
                        },
                        enabled: true,
                    },
                    chrono::Utc::now(),
                )?;
            }
            Ok(())
        })
    };
    setup.await.map_err(bench_err)?.map_err(bench_err)?;

    let mut config = base.clone();
    config.data_dir = dir.to_path_buf();
    let config = Arc::new(config);
    let events = EventBus::new();
    let wakeup = Arc::new(Notify::new());
    let delivered = Arc::new(Notify::new());
    let shutdown = CancellationToken::new();
    let owner = format!("{}:bench", std::process::id());
    let dispatcher = Dispatcher::new(
        store.clone(),
        events.clone(),
        Arc::clone(&config),
        owner.clone(),
    );
    let dispatching = tokio::spawn(dispatcher.run(
        Arc::clone(&wakeup),
        Arc::clone(&delivered),
        shutdown.clone(),
    ));

    // 1. Latency, one event at a time.
    let mut rx = events.subscribe();
    let mut samples = Vec::with_capacity(args.latency_events);
    for i in 0..args.latency_events {
        let ty = event_type(i % args.subscriptions);
        let started = Instant::now();
        let s = store.clone();
        let row = tokio::task::spawn_blocking(move || {
            s.protocol().insert_event(
                &ty,
                personas_core::trigger::SourceKind::User,
                None,
                None,
                None,
                &json!({"i": i}),
            )
        })
        .await
        .map_err(bench_err)?
        .map_err(bench_err)?;
        wakeup.notify_one();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Ok(EngineEvent::EventDelivered { event, .. })) if event.id == row.id => break,
                Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(e)) => return Err(bench_err(e)),
                Err(_) => {
                    return Err(bench_err(format!(
                        "event {} was not delivered within 30 s",
                        row.id
                    )));
                }
            }
        }
        samples.push(started.elapsed().as_secs_f64() * 1e3);
    }
    drop(rx);
    let latency = percentiles(samples);
    eprintln!(
        "emit → execution enqueued: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} events)",
        latency.p50, latency.p90, latency.p99, latency.max, args.latency_events
    );

    // 2 and 3. A burst from many publishers, with a draining subscriber and an RSS sampler.
    let publisher = Publisher::start(store.clone(), events.clone(), Arc::clone(&wakeup));
    let drained = Arc::new(AtomicU64::new(0));
    let drain = {
        let mut rx = events.subscribe();
        let drained = Arc::clone(&drained);
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(_) => {
                        drained.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        drained.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        })
    };
    let rss_before = rss_mib();
    let peak = Arc::new(AtomicU64::new(rss_before.to_bits()));
    let sampling = CancellationToken::new();
    let sampler = {
        let (peak, stop) = (Arc::clone(&peak), sampling.clone());
        tokio::spawn(async move {
            loop {
                let now = rss_mib();
                if now > f64::from_bits(peak.load(Ordering::Relaxed)) {
                    peak.store(now.to_bits(), Ordering::Relaxed);
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                    _ = stop.cancelled() => return,
                }
            }
        })
    };
    let delivered_before = store
        .bus()
        .count(personas_core::EventStatus::Delivered)
        .map_err(bench_err)?;
    let cpu_before = cpu_secs();
    let started = Instant::now();
    let per = args.burst.div_ceil(args.publishers);
    let mut tasks = Vec::new();
    for p in 0..args.publishers {
        let publisher = publisher.clone();
        let subs = args.subscriptions;
        let (from, to) = (p * per, ((p + 1) * per).min(args.burst));
        tasks.push(tokio::spawn(async move {
            for i in from..to {
                let event = NewEvent::new(event_type(i % subs), SourceKind::User, json!({"i": i}));
                publisher.publish(event).await?;
            }
            Ok::<_, personas_engine::bus::PublishError>(())
        }));
    }
    for t in tasks {
        t.await.map_err(bench_err)?.map_err(bench_err)?;
    }
    let published_in = started.elapsed();
    let target = delivered_before + args.burst as u64;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let s = store.clone();
        let n = tokio::task::spawn_blocking(move || {
            s.bus().count(personas_core::EventStatus::Delivered)
        })
        .await
        .map_err(bench_err)?
        .map_err(bench_err)?;
        if n >= target {
            break;
        }
        if Instant::now() > deadline {
            return Err(bench_err(format!(
                "only {} of {} burst events delivered in 10 minutes",
                n - delivered_before,
                args.burst
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let total = started.elapsed();
    let cpu = cpu_secs() - cpu_before;
    sampling.cancel();
    let _ = sampler.await;
    let rss_peak = f64::from_bits(peak.load(Ordering::Relaxed));
    let rss_after = rss_mib();
    let executions = store
        .executions()
        .count(personas_core::ExecutionStatus::Queued)
        .map_err(bench_err)?;
    shutdown.cancel();
    let _ = dispatching.await;
    drop(publisher);
    drain.abort();

    // 4. Each side alone: a backlog published in batches with nothing dispatching, then matched.
    let batches: Vec<Vec<NewEvent>> = (0..args.burst)
        .collect::<Vec<_>>()
        .chunks(1_000)
        .map(|c| {
            c.iter()
                .map(|&i| {
                    NewEvent::new(
                        event_type(i % args.subscriptions),
                        SourceKind::User,
                        json!({"i": i}),
                    )
                })
                .collect()
        })
        .collect();
    let s = store.clone();
    let backlog_publish = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        for b in &batches {
            s.bus().publish_batch(b)?;
        }
        Ok::<_, personas_store::StoreError>(started.elapsed())
    })
    .await
    .map_err(bench_err)?
    .map_err(bench_err)?;
    let mut fresh = Dispatcher::new(store.clone(), EventBus::new(), Arc::clone(&config), owner);
    let backlog_match = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        while fresh.round()?.claimed > 0 {}
        Ok::<_, personas_store::StoreError>(started.elapsed())
    })
    .await
    .map_err(bench_err)?
    .map_err(bench_err)?;
    let load_average = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let report = BusReport {
        subscriptions: args.subscriptions,
        latency_events: args.latency_events,
        latency_ms: latency,
        burst_events: args.burst,
        publishers: args.publishers,
        publish_per_sec: args.burst as f64 / published_in.as_secs_f64(),
        published_and_matched_per_sec: args.burst as f64 / total.as_secs_f64(),
        burst_secs: total.as_secs_f64(),
        executions_created: executions,
        rss_before_mib: rss_before,
        rss_peak_mib: rss_peak,
        rss_after_mib: rss_after,
        burst_cpu_us_per_event: cpu * 1e6 / args.burst as f64,
        backlog_publish_per_sec: args.burst as f64 / backlog_publish.as_secs_f64(),
        backlog_match_per_sec: args.burst as f64 / backlog_match.as_secs_f64(),
        load_average,
    };
    eprintln!(
        "burst of {} events from {} publishers: published {:.0}/s; published and matched {:.0}/s ({:.2} s); {} executions queued; {} broadcasts drained",
        report.burst_events,
        report.publishers,
        report.publish_per_sec,
        report.published_and_matched_per_sec,
        report.burst_secs,
        report.executions_created,
        drained.load(Ordering::Relaxed)
    );
    eprintln!(
        "memory (RSS): {:.1} MiB before, {:.1} MiB peak during, {:.1} MiB after; CPU {:.1} µs per event",
        report.rss_before_mib,
        report.rss_peak_mib,
        report.rss_after_mib,
        report.burst_cpu_us_per_event
    );
    eprintln!(
        "each side alone ({} events): published in batches of 1 000 at {:.0}/s; matched from the backlog at {:.0}/s",
        args.burst, report.backlog_publish_per_sec, report.backlog_match_per_sec
    );
    eprintln!("load average at the end: {}", report.load_average);
    Ok(report)
}
