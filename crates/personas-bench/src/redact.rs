//! `personas bench redact`: what the one redaction gate costs.
//!
//! - Redaction throughput with 100 secrets known (each in all its encodings), over the recorded
//!   CLI transcripts line by line as the runner applies it, and over the same lines with a
//!   secret planted in one line of ten.
//! - Building that redactor (per run).
//! - A run's environment built from the allow-list (`runner::environment::build`, with this
//!   process's real environment, 20 `[env]` entries and 5 credentials), and teaching its values
//!   to the run's redactor — the run-start overhead.
//! - One protocol tool call over a run's tool channel (loopback TCP, token-checked), round
//!   trip, with the runner side answering at once.

use crate::{BenchError, BenchResult};
use personas_core::Secret;
use personas_core::redact::Redactor;
use personas_engine::runner::environment;
use personas_engine::runner::mcp::{CallReply, ToolChannel, forward, new_token};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[derive(Serialize)]
pub struct RedactReport {
    pub secrets: usize,
    pub patterns_build_ms: f64,
    pub corpus_bytes: usize,
    pub clean_mb_per_s: f64,
    pub with_secrets_mb_per_s: f64,
    pub env_build_us: f64,
    pub env_redactor_us: f64,
    pub tool_call_us_p50: f64,
    pub tool_call_us_p99: f64,
}

fn token(i: usize) -> String {
    // Shaped like real credentials: a prefix, then 36 characters of mixed alphabet.
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/+";
    let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let body: String = (0..36)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            alphabet[(x % alphabet.len() as u64) as usize] as char
        })
        .collect();
    format!("tok{i:03}_{body}")
}

fn throughput(r: &Redactor, lines: &[String]) -> f64 {
    let bytes: usize = lines.iter().map(String::len).sum();
    for l in lines {
        std::hint::black_box(r.redact(l));
    }
    let start = Instant::now();
    let mut passes = 0;
    while start.elapsed() < Duration::from_secs(2) {
        for l in lines {
            std::hint::black_box(r.redact(std::hint::black_box(l)));
        }
        passes += 1;
    }
    (bytes * passes) as f64 / start.elapsed().as_secs_f64() / 1e6
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

pub async fn run(lines: Vec<Vec<u8>>) -> BenchResult<RedactReport> {
    let lines: Vec<String> = lines
        .into_iter()
        .map(|l| String::from_utf8_lossy(&l).into_owned())
        .collect();
    if lines.is_empty() {
        return Err(BenchError::usage("no transcript lines to redact"));
    }
    let secrets: Vec<(String, Secret)> = (0..100)
        .map(|i| (format!("cred{i}.token"), Secret::new(token(i))))
        .collect();
    let start = Instant::now();
    let r = Redactor::new(secrets.iter().map(|(l, s)| (l.as_str(), s)));
    let patterns_build_ms = start.elapsed().as_secs_f64() * 1e3;
    let clean_mb_per_s = throughput(&r, &lines);
    let planted: Vec<String> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            if i % 10 == 0 {
                format!("{l} {}", secrets[i % 100].1.expose())
            } else {
                l.clone()
            }
        })
        .collect();
    let with_secrets_mb_per_s = throughput(&r, &planted);

    // The run-start work: the environment from the allow-list, then the redactor learning it.
    let inherited: Vec<(String, String)> = std::env::vars().collect();
    let config: BTreeMap<String, String> = (0..20)
        .map(|i| (format!("CONFIG_VAR_{i}"), token(200 + i)))
        .collect();
    let creds: Vec<(String, Secret)> = (0..5)
        .map(|i| (format!("CRED_VAR_{i}"), Secret::new(token(300 + i))))
        .collect();
    let run_vars = vec![
        ("PERSONAS_EXECUTION_ID".to_string(), "e".repeat(36)),
        ("PERSONAS_PERSONA_ID".to_string(), "p".repeat(36)),
    ];
    let n = 2_000;
    let start = Instant::now();
    let mut env = environment::RunEnv::default();
    for _ in 0..n {
        env = environment::build(
            inherited.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            std::hint::black_box(&config),
            &[],
            &run_vars,
            &creds,
        );
    }
    let env_build_us = start.elapsed().as_secs_f64() * 1e6 / n as f64;
    let base = Redactor::new(creds.iter().map(|(l, s)| (l.as_str(), s)));
    let m = 200;
    let start = Instant::now();
    for _ in 0..m {
        let pairs = env.redaction_pairs();
        std::hint::black_box(base.with_secrets(pairs.iter().map(|(l, v)| (l.as_str(), *v))));
    }
    let env_redactor_us = start.elapsed().as_secs_f64() * 1e6 / m as f64;

    // One tool call through a run's tool channel.
    let tok = Secret::new(new_token().map_err(BenchError::runtime)?);
    let mut ch = ToolChannel::listen(&tok)
        .await
        .map_err(|e| BenchError::runtime(format!("tool channel: {e}")))?;
    let endpoint = ch.addr().to_string();
    let answer = tokio::spawn(async move {
        loop {
            let call = ch.next().await;
            let _ = call.reply.send(CallReply::ok("noted"));
        }
    });
    let mut times = Vec::with_capacity(1000);
    for i in 0..1100 {
        let t = Instant::now();
        forward(
            &endpoint,
            tok.expose(),
            "send_message",
            serde_json::json!({"content": "hello"}),
        )
        .await
        .map_err(BenchError::runtime)?;
        if i >= 100 {
            times.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    answer.abort();
    times.sort_by(f64::total_cmp);
    Ok(RedactReport {
        secrets: secrets.len(),
        patterns_build_ms,
        corpus_bytes: lines.iter().map(String::len).sum(),
        clean_mb_per_s,
        with_secrets_mb_per_s,
        env_build_us,
        env_redactor_us,
        tool_call_us_p50: percentile(&times, 0.5),
        tool_call_us_p99: percentile(&times, 0.99),
    })
}
