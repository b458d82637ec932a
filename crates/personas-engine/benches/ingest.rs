//! Output ingest: a run whose CLI writes N stream-json lines at R lines/s goes through the real
//! engine (runner → sink → writer → store → event channel) while one subscriber follows it.
//! Reports lines/s stored and delivered, how long the subscriber trailed the CLI, and fails on
//! any loss: every line must be stored once, and the subscriber must see every one, in order,
//! without lagging. The CLI is the stand-in `personas-fake-claude` (the real one cannot be
//! paced), so this measures Personas only.
//!
//! `cargo bench -p personas-engine --bench ingest` runs two passes: paced (default 100 000
//! lines at 10 000 lines/s: ten seconds) and unpaced (as fast as the stand-in writes: the
//! engine's ceiling). Knobs: `PERSONAS_BENCH_LINES`, `PERSONAS_BENCH_RATE` (0: unpaced only).

use personas_core::{ExecutionStatus, PersonaSpec};
use personas_engine::metrics::Counter;
use personas_engine::{Engine, EngineConfig, EngineEvent};
use personas_store::{NewExecution, Store};
use personas_testkit::claude::fake_claude_bin;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::RecvError;

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// The recorded init line, `lines` assistant text lines, the recorded result (as the UI stream
/// benchmark builds it).
fn transcript(dir: &Path, lines: u64) -> PathBuf {
    let fixture = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/claude-code/01-text.stdout.jsonl"),
    )
    .expect("fixture");
    let parsed: Vec<Value> = fixture
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    let of_type = |t: &str| {
        parsed
            .iter()
            .find(|l| l["type"] == t)
            .cloned()
            .expect("line type")
    };
    let (init, assistant, result) = (of_type("system"), of_type("assistant"), of_type("result"));
    let mut out = String::new();
    out.push_str(&init.to_string());
    out.push('\n');
    for i in 1..=lines {
        let mut a = assistant.clone();
        a["message"]["id"] = Value::String(format!("msg_bench_{i}"));
        a["message"]["content"] = serde_json::json!([{
            "type": "text",
            "text": format!("Line {i} of {lines}: the quick brown fox jumps over the lazy dog."),
        }]);
        out.push_str(&a.to_string());
        out.push('\n');
    }
    out.push_str(&result.to_string());
    out.push('\n');
    let path = dir.join("transcript.jsonl");
    std::fs::write(&path, out).expect("write transcript");
    path
}

struct Pass {
    /// Lines the CLI wrote (stdout lines of the transcript).
    written: u64,
    stored: u64,
    delivered: u64,
    /// First to last output line the subscriber received.
    span: Duration,
    /// Enqueue to the subscriber's last line.
    total: Duration,
    /// Writer transactions (from the engine's own counters).
    batches: u64,
}

async fn pass(lines: u64, rate: u64) -> Pass {
    let dir = tempfile::tempdir().expect("dir");
    let transcript = transcript(dir.path(), lines);
    let mut config = EngineConfig::for_data_dir(dir.path());
    config.claude_path = Some(fake_claude_bin());
    // 100 000 lines of stream-json are more than the default 64 MiB per run.
    config.output_total_cap_bytes = 1 << 30;
    config.env = [
        (
            "PERSONAS_FAKE_TRANSCRIPT".to_string(),
            transcript.display().to_string(),
        ),
        ("PERSONAS_FAKE_LINES_PER_SEC".to_string(), rate.to_string()),
    ]
    .into_iter()
    .filter(|(_, v)| v != "0")
    .collect();
    let store = Store::open_in_dir(dir.path()).expect("store");
    let persona = store
        .personas()
        .create(&PersonaSpec::new("Streamer", "Stream a lot."))
        .expect("persona");
    let engine = Engine::new(config, store.clone());
    engine.start().await.expect("start");
    let mut events = engine.subscribe();

    let started = Instant::now();
    let exec = engine
        .enqueue(NewExecution::manual(persona.id.clone(), None))
        .await
        .expect("enqueue");
    let (mut delivered, mut last_seq) = (0u64, 0i64);
    let (mut first_at, mut last_at) = (None, started);
    loop {
        match events.recv().await {
            Ok(EngineEvent::Output { line }) if line.execution_id == exec.id => {
                assert_eq!(
                    line.seq,
                    last_seq + 1,
                    "lines arrive in order, none missing"
                );
                last_seq = line.seq;
                delivered += 1;
                last_at = Instant::now();
                first_at.get_or_insert(last_at);
            }
            Ok(EngineEvent::Execution { execution })
                if execution.id == exec.id && execution.status.is_terminal() =>
            {
                assert_eq!(
                    execution.status,
                    ExecutionStatus::Completed,
                    "{:?}",
                    execution.error_message
                );
                break;
            }
            Ok(_) => {}
            Err(RecvError::Lagged(n)) => panic!("the subscriber fell behind and lost {n} events"),
            Err(RecvError::Closed) => panic!("event channel closed"),
        }
    }
    let batches = engine.metrics().get(Counter::WriterBatchesCommitted, None);
    engine.shutdown().await;
    let stored = store.executions().get(&exec.id).expect("get").output_lines;
    Pass {
        written: lines + 2,
        stored,
        delivered,
        span: last_at - first_at.unwrap_or(started),
        total: last_at - started,
        batches,
    }
}

fn report(label: &str, lines: u64, rate: u64, p: &Pass) {
    let per_sec = |d: Duration| p.delivered as f64 / d.as_secs_f64().max(1e-9);
    println!(
        "{label}: {lines} lines{}: stored {} (the CLI wrote {}, plus engine notes), delivered {}; \
         {:.0} lines/s first-to-last line, {:.0} lines/s enqueue-to-last line ({:.2} s)",
        if rate > 0 {
            format!(" at {rate} lines/s")
        } else {
            " unpaced".into()
        },
        p.stored,
        p.written,
        p.delivered,
        per_sec(p.span),
        per_sec(p.total),
        p.total.as_secs_f64(),
    );
    println!(
        "{label}: {} writer transactions, {:.0} lines each on average",
        p.batches,
        p.stored as f64 / p.batches.max(1) as f64
    );
    if rate > 0 {
        let scheduled = lines as f64 / rate as f64;
        println!(
            "{label}: the subscriber's last line came {:.3} s after the CLI's schedule ended",
            p.span.as_secs_f64() - scheduled
        );
    }
    assert!(
        p.stored >= p.written,
        "lines lost before the store: {} < {}",
        p.stored,
        p.written
    );
    assert_eq!(p.delivered, p.stored, "every stored line is streamed once");
}

#[tokio::main]
async fn main() {
    let lines = knob("PERSONAS_BENCH_LINES", 100_000);
    let rate = knob("PERSONAS_BENCH_RATE", 10_000);
    if rate > 0 {
        let p = pass(lines, rate).await;
        report("paced", lines, rate, &p);
    }
    let p = pass(lines, 0).await;
    report("unpaced", lines, 0, &p);
}
