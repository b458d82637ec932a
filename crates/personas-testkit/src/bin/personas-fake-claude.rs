//! `personas-fake-claude`: a stand-in for `claude -p --output-format stream-json --verbose` that
//! needs no network and starts in milliseconds, so benchmarks measure Personas, not the CLI.
//!
//! It ignores its arguments, reads stdin to EOF (the prompt, like the real CLI in `-p` mode),
//! then prints a transcript one JSON line at a time, flushing after each, and exits.
//!
//! The transcript is the recorded `fixtures/claude-code/01-text.stdout.jsonl` unless
//! `PERSONAS_FAKE_TRANSCRIPT` names another `.jsonl`. Every `session_id` becomes one fresh UUID
//! and every top-level `uuid` a fresh one per line, so repeated runs never collide in a store.
//!
//! Knobs:
//! - `PERSONAS_FAKE_TRANSCRIPT=<path>`: replay that file instead (non-JSON lines verbatim).
//! - `PERSONAS_FAKE_TEXT=<text>`: replaces the text of assistant text blocks and the `result`
//!   line's `result` field (to inject persona-protocol lines in benchmarks).
//! - `PERSONAS_FAKE_DELAY_MS=<n>`: sleep n ms before each line.
//! - `PERSONAS_FAKE_EXIT=<code>`: the exit code (default 0).
//! - `PERSONAS_FAKE_LINES_PER_SEC=<n>`: pace the lines at n per second on a fixed schedule
//!   (line i is written at start + i/n; a late writer catches up rather than drifting), for
//!   the UI stream benchmark.
//! - `PERSONAS_FAKE_GATE=<path>`: after the first line, wait until this file exists before
//!   writing the rest (a benchmark opens its viewer first, then creates the file). Polled
//!   every 10 ms; gives up after 120 s.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

const DEFAULT_TRANSCRIPT: &str =
    include_str!("../../../../fixtures/claude-code/01-text.stdout.jsonl");

fn main() -> ExitCode {
    let exit_code = std::env::var("PERSONAS_FAKE_EXIT")
        .ok()
        .and_then(|v| v.trim().parse::<u8>().ok())
        .unwrap_or(0);

    // Like the real CLI: the prompt is all of stdin, so wait for EOF before answering. What it
    // says does not matter here.
    let mut prompt = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut prompt);

    let transcript = match std::env::var_os("PERSONAS_FAKE_TRANSCRIPT") {
        Some(path) => match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => {
                eprintln!(
                    "personas-fake-claude: cannot read {}: {e}",
                    path.to_string_lossy()
                );
                return ExitCode::from(1);
            }
        },
        None => DEFAULT_TRANSCRIPT.to_owned(),
    };
    let text = std::env::var("PERSONAS_FAKE_TEXT").ok();
    let delay = std::env::var("PERSONAS_FAKE_DELAY_MS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_millis);
    let rate = std::env::var("PERSONAS_FAKE_LINES_PER_SEC")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|r| *r > 0.0);
    let gate = std::env::var_os("PERSONAS_FAKE_GATE").map(std::path::PathBuf::from);
    let session_id = uuid::Uuid::new_v4().to_string();

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut start = std::time::Instant::now();
    for (i, line) in transcript
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
    {
        if i == 1
            && let Some(gate) = &gate
        {
            let until = std::time::Instant::now() + Duration::from_secs(120);
            while !gate.exists() && std::time::Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10));
            }
            start = std::time::Instant::now();
        }
        if let Some(delay) = delay {
            std::thread::sleep(delay);
        }
        if let Some(rate) = rate {
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            let now = std::time::Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        let rendered = match serde_json::from_str::<Value>(line) {
            Ok(mut value) => {
                rewrite(&mut value, &session_id, text.as_deref());
                value.to_string()
            }
            Err(_) => line.to_owned(),
        };
        // A reader that went away (EPIPE) ends the run like it would end the real CLI's.
        if writeln!(out, "{rendered}")
            .and_then(|()| out.flush())
            .is_err()
        {
            return ExitCode::from(1);
        }
    }
    ExitCode::from(exit_code)
}

/// Applies the fresh ids and the text override to one transcript line.
fn rewrite(line: &mut Value, session_id: &str, text: Option<&str>) {
    replace_session_ids(line, session_id);
    if let Some(obj) = line.as_object_mut()
        && obj.contains_key("uuid")
    {
        obj.insert(
            "uuid".into(),
            Value::String(uuid::Uuid::new_v4().to_string()),
        );
    }
    let Some(text) = text else { return };
    match line.get("type").and_then(Value::as_str) {
        Some("assistant") => {
            if let Some(blocks) = line
                .pointer_mut("/message/content")
                .and_then(Value::as_array_mut)
            {
                for block in blocks.iter_mut().filter(|b| b["type"] == "text") {
                    block["text"] = Value::String(text.to_owned());
                }
            }
        }
        Some("result") => {
            if let Some(result) = line.get_mut("result") {
                *result = Value::String(text.to_owned());
            }
        }
        _ => {}
    }
}

fn replace_session_ids(value: &mut Value, session_id: &str) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                if key == "session_id" && inner.is_string() {
                    *inner = Value::String(session_id.to_owned());
                } else {
                    replace_session_ids(inner, session_id);
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|v| replace_session_ids(v, session_id)),
        _ => {}
    }
}
