//! `personas-scripted-api`: the scripted Messages API ([`ScriptedApi`]) as its own process, for
//! end-to-end tests that drive the whole product (the browser tests of the UI start it, then
//! `personas up` with `ANTHROPIC_BASE_URL` pointing at it).
//!
//! `personas-scripted-api --script FILE` binds 127.0.0.1 on a free port, prints
//! `listening http://127.0.0.1:PORT` on stdout, and serves until killed or until its stdin
//! closes. The script file is JSON:
//!
//! ```json
//! {"scripts": [{"key": "", "steps": [
//!   {"tool_use": {"text": "Looking.", "calls": [{"id": "toolu_1", "name": "Glob", "input": {"pattern": "*"}}]}},
//!   {"slow": {"text": "Done.", "chunks": 5, "delay_ms": 100}},
//!   {"text": "plain answer"}
//! ]}]}
//! ```
//!
//! `key` selects the script by text in the request (the empty key is the default), as in
//! [`ScriptedApi::script`].

use personas_testkit::api::{ScriptedApi, Step, ToolCall};
use serde_json::Value;
use std::process::ExitCode;
use std::time::Duration;
use tokio::io::AsyncReadExt;

fn step(v: &Value) -> Result<Step, String> {
    if let Some(t) = v.get("text").and_then(Value::as_str) {
        return Ok(Step::text(t));
    }
    if let Some(t) = v.get("tool_use") {
        let calls = t
            .get("calls")
            .and_then(Value::as_array)
            .ok_or("tool_use.calls must be a list")?
            .iter()
            .map(|c| {
                Ok(ToolCall::new(
                    c.get("id")
                        .and_then(Value::as_str)
                        .ok_or("tool call needs an id")?,
                    c.get("name")
                        .and_then(Value::as_str)
                        .ok_or("tool call needs a name")?,
                    c.get("input")
                        .cloned()
                        .unwrap_or(Value::Object(Default::default())),
                ))
            })
            .collect::<Result<Vec<_>, String>>()?;
        return Ok(Step::ToolUse {
            text: t.get("text").and_then(Value::as_str).map(str::to_string),
            calls,
        });
    }
    if let Some(s) = v.get("slow") {
        return Ok(Step::Slow {
            text: s
                .get("text")
                .and_then(Value::as_str)
                .ok_or("slow.text is required")?
                .to_string(),
            chunks: s.get("chunks").and_then(Value::as_u64).unwrap_or(5) as usize,
            delay: Duration::from_millis(s.get("delay_ms").and_then(Value::as_u64).unwrap_or(100)),
        });
    }
    if let Some(status) = v.get("error").and_then(Value::as_u64) {
        return Ok(Step::error(status as u16, 1));
    }
    Err(format!(
        "unknown step {v}; expected text, tool_use, slow or error"
    ))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args
        .iter()
        .position(|a| a == "--script")
        .and_then(|i| args.get(i + 1))
    else {
        eprintln!("usage: personas-scripted-api --script FILE");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("personas-scripted-api: cannot read {path}: {e}");
            return ExitCode::from(2);
        }
    };
    let doc: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("personas-scripted-api: {path} is not JSON: {e}");
            return ExitCode::from(2);
        }
    };
    let api = ScriptedApi::start().await;
    for s in doc
        .get("scripts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = s.get("key").and_then(Value::as_str).unwrap_or("");
        let steps: Result<Vec<Step>, String> = s
            .get("steps")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(step)
            .collect();
        match steps {
            Ok(steps) => api.script(key, steps),
            Err(e) => {
                eprintln!("personas-scripted-api: script {key:?}: {e}");
                return ExitCode::from(2);
            }
        }
    }
    println!("listening {}", api.base_url());
    // Serve until stdin closes (the parent went away) or a signal ends the process.
    let mut sink = Vec::new();
    let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    ExitCode::SUCCESS
}
