//! End-to-end checks of `ScriptedApi` against the real pinned Claude Code CLI, raw-HTTP checks of
//! the steps the CLI cannot easily show, and a check of the `personas-fake-claude` binary.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use personas_testkit::{
    HangPoint, IsolatedEnv, ScriptedApi, Step, claude_bin, isolated_env, run_claude,
};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Child;
use tokio::time::timeout;

/// Generous bound for anything that should take about a second.
const BOUND: Duration = Duration::from_secs(60);
const STREAM_JSON: [&str; 4] = ["-p", "--output-format", "stream-json", "--verbose"];

fn workdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("personas-claude-cwd-")
        .tempdir()
        .unwrap()
}

fn args_with(extra: &[&'static str]) -> Vec<&'static str> {
    STREAM_JSON
        .iter()
        .copied()
        .chain(extra.iter().copied())
        .collect()
}

/// Spawns the CLI with the prompt written to stdin and stdin closed; stdout stays piped.
async fn spawn_claude(env: &IsolatedEnv, cwd: &Path, args: &[&str], prompt: &str) -> Child {
    let mut child = env
        .command(claude_bin())
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(prompt.as_bytes()).await.unwrap();
    drop(stdin);
    child
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_answer_reaches_result() {
    let api = ScriptedApi::start().await;
    api.script("", vec![Step::text("Hello from ScriptedApi.")]);
    let env = isolated_env(&api);
    let cwd = workdir();

    let run = run_claude(&env, cwd.path(), &STREAM_JSON, "say hello", BOUND).await;

    let result = run.result();
    assert_eq!(result["is_error"], false, "{result}");
    assert_eq!(result["result"], "Hello from ScriptedApi.");
    assert!(
        run.status.success(),
        "exit {:?}, stderr {}",
        run.status,
        run.stderr
    );
    let requests = api.requests();
    assert_eq!(requests.len(), 1, "exactly one POST /v1/messages");
    let session = requests[0].session_id.as_deref().expect("session header");
    assert_eq!(result["session_id"], session);
    assert_eq!(requests[0].script_key.as_deref(), Some(""));
    assert!(requests[0].is_streaming());
    assert!(requests[0].all_text().contains("say hello"));
    assert_eq!(requests[0].header("x-api-key"), Some("test-key"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bash_tool_use_then_text() {
    let api = ScriptedApi::start().await;
    api.script(
        "",
        vec![Step::bash("toolu_test_1", "echo hi"), Step::text("ran it")],
    );
    let env = isolated_env(&api);
    let cwd = workdir();

    let args = args_with(&["--allowedTools", "Bash"]);
    let run = run_claude(&env, cwd.path(), &args, "run echo", BOUND).await;

    let tool_result = run
        .of_type("user")
        .flat_map(|l| {
            l["message"]["content"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .find(|b| b["type"] == "tool_result")
        .unwrap_or_else(|| panic!("no tool_result line in {:#?}", run.lines));
    assert_eq!(tool_result["tool_use_id"], "toolu_test_1");
    assert!(
        tool_result["content"].as_str().unwrap().contains("hi"),
        "{tool_result}"
    );
    assert_eq!(run.result()["result"], "ran it");

    let requests = api.requests();
    assert_eq!(requests.len(), 2);
    let sent_back = requests[1]
        .messages()
        .iter()
        .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
        .find(|b| b["type"] == "tool_result")
        .expect("second request carries the tool_result");
    assert_eq!(sent_back["tool_use_id"], "toolu_test_1");
    assert!(requests[1].all_text().contains("hi"));
    // The assistant turn we streamed comes back with the parsed input.
    let tool_use = requests[1]
        .messages()
        .iter()
        .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
        .find(|b| b["type"] == "tool_use")
        .expect("second request carries our tool_use");
    assert_eq!(tool_use["input"]["command"], "echo hi");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sessions_follow_their_own_scripts() {
    let api = ScriptedApi::start().await;
    api.script("ALPHA-7731", vec![Step::text("answer for alpha")]);
    api.script("BRAVO-4410", vec![Step::text("answer for bravo")]);
    let (env_a, env_b) = (isolated_env(&api), isolated_env(&api));
    let (cwd_a, cwd_b) = (workdir(), workdir());

    let (run_a, run_b) = tokio::join!(
        run_claude(
            &env_a,
            cwd_a.path(),
            &STREAM_JSON,
            "task ALPHA-7731 please",
            BOUND
        ),
        run_claude(
            &env_b,
            cwd_b.path(),
            &STREAM_JSON,
            "task BRAVO-4410 please",
            BOUND
        ),
    );

    assert_eq!(run_a.result()["result"], "answer for alpha");
    assert_eq!(run_b.result()["result"], "answer for bravo");
    let requests = api.requests();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        let key = request.script_key.as_deref().unwrap();
        assert!(request.all_text().contains(key));
    }
    assert_ne!(requests[0].session_id, requests[1].session_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_continues_the_session_cursor() {
    let api = ScriptedApi::start().await;
    api.script(
        "",
        vec![Step::text("first answer"), Step::text("second answer")],
    );
    let env = isolated_env(&api);
    let cwd = workdir();

    let first = run_claude(&env, cwd.path(), &STREAM_JSON, "one", BOUND).await;
    assert_eq!(first.result()["result"], "first answer");
    let session = first.result()["session_id"].as_str().unwrap().to_owned();

    let mut args = STREAM_JSON.to_vec();
    args.extend(["--resume", session.as_str()]);
    let second = run_claude(&env, cwd.path(), &args, "two", BOUND).await;
    assert_eq!(second.result()["result"], "second answer");
    assert_eq!(second.result()["session_id"], session.as_str());
    assert_eq!(api.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_400_is_a_final_error() {
    let api = ScriptedApi::start().await;
    api.script("", vec![Step::error(400, 1)]);
    let env = isolated_env(&api);
    let cwd = workdir();

    let run = run_claude(&env, cwd.path(), &STREAM_JSON, "fail please", BOUND).await;

    let result = run.result();
    assert_eq!(result["is_error"], true, "{result}");
    assert_eq!(result["api_error_status"], 400);
    assert!(
        result["result"]
            .as_str()
            .unwrap()
            .contains("scripted invalid request"),
        "{result}"
    );
    assert_eq!(run.status.code(), Some(1));
    assert_eq!(api.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_500_once_is_retried() {
    let api = ScriptedApi::start().await;
    api.script("", vec![Step::error(500, 1), Step::text("after retry")]);
    let mut env = isolated_env(&api);
    env.set("CLAUDE_CODE_MAX_RETRIES", "1");
    let cwd = workdir();

    let run = run_claude(&env, cwd.path(), &STREAM_JSON, "retry please", BOUND).await;

    let result = run.result();
    assert_eq!(result["is_error"], false, "{result}");
    assert_eq!(result["result"], "after retry");
    let retry = run
        .of_type("system")
        .find(|l| l["subtype"] == "api_retry")
        .expect("api_retry");
    assert_eq!(retry["error_status"], 500);
    let requests = api.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].session_id, requests[1].session_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hang_after_message_start_produces_no_result() {
    let api = ScriptedApi::start().await;
    api.script("", vec![Step::hang(HangPoint::MessageStart)]);
    let env = isolated_env(&api);
    let cwd = workdir();
    let mut child = spawn_claude(&env, cwd.path(), &STREAM_JSON, "hang please").await;
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();

    api.wait_for_requests(1, BOUND).await;
    let saw_result = timeout(Duration::from_secs(3), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let line: Value = serde_json::from_str(&line).unwrap();
            if line["type"] == "result" {
                return true;
            }
        }
        false
    })
    .await;
    assert!(
        saw_result.is_err(),
        "the CLI should still be waiting, got {saw_result:?}"
    );

    child.kill().await.unwrap();
    let started = Instant::now();
    drop(api);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "dropping ScriptedApi blocked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_api_ends_a_hanging_cli() {
    let api = ScriptedApi::start().await;
    api.script("", vec![Step::hang(HangPoint::TextDelta)]);
    let env = isolated_env(&api);
    let cwd = workdir();
    let mut child = spawn_claude(&env, cwd.path(), &STREAM_JSON, "hang please").await;
    let mut stdout = child.stdout.take().unwrap();

    api.wait_for_requests(1, BOUND).await;
    drop(api);

    // With its connection closed (and the port gone) the CLI must give up by itself.
    let mut out = String::new();
    timeout(BOUND, stdout.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    let status = timeout(BOUND, child.wait()).await.unwrap().unwrap();
    let result: Value = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l["type"] == "result")
        .unwrap_or_else(|| panic!("no result after the API went away: {out}"));
    assert_eq!(result["is_error"], true, "{result}");
    // Observed with 2.1.197 and CLAUDE_CODE_MAX_RETRIES=0: the CLI reconnects once anyway (the
    // partial text is not printed) and reports the refused connection.
    assert!(
        result["result"].as_str().unwrap().starts_with("API Error"),
        "{result}"
    );
    assert!(!status.success());
}

// ---- Raw HTTP checks (no CLI): the answers the CLI only sees in failure paths ----

/// Sends one HTTP/1.1 request with `connection: close` and returns everything read until EOF.
async fn raw_post(api: &ScriptedApi, path: &str, session: &str, body: &Value) -> String {
    let addr = api.base_url().trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let body = body.to_string();
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         x-claude-code-session-id: {session}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    // A reset (Step::Drop) counts as "nothing more"; what was read so far is the answer.
    let _ = timeout(BOUND, stream.read_to_end(&mut out)).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

fn prompt_body(text: &str, stream: bool) -> Value {
    let mut body = serde_json::json!({
        "model": "claude-test-model",
        "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}],
    });
    if stream {
        body["stream"] = Value::Bool(true);
    }
    body
}

#[tokio::test]
async fn raw_steps_have_the_documented_shapes() {
    let api = ScriptedApi::start().await;
    api.script(
        "raw",
        vec![
            Step::Drop,
            Step::SseError { times: 1 },
            Step::SseError { times: 1 },
            Step::EmptySse,
            Step::Slow {
                text: "abcdef".into(),
                chunks: 3,
                delay: Duration::from_millis(20),
            },
            Step::error(529, 2),
            Step::text("plain"),
            Step::bash("toolu_x", "echo x"),
        ],
    );
    let s = "raw-session";

    let dropped = raw_post(&api, "/v1/messages?beta=true", s, &prompt_body("raw", true)).await;
    assert_eq!(dropped, "", "Drop answers nothing");

    let sse_error = raw_post(&api, "/v1/messages", s, &prompt_body("raw", true)).await;
    assert!(sse_error.starts_with("HTTP/1.1 200"), "{sse_error}");
    assert!(sse_error.contains("event: message_start\n"));
    assert!(sse_error.contains("event: error\ndata: "));
    assert!(sse_error.contains("overloaded_error"));
    assert!(!sse_error.contains("message_stop"));

    let sse_error_json = raw_post(&api, "/v1/messages", s, &prompt_body("raw", false)).await;
    assert!(
        sse_error_json.starts_with("HTTP/1.1 529"),
        "{sse_error_json}"
    );

    let empty = raw_post(&api, "/v1/messages", s, &prompt_body("raw", true)).await;
    assert!(empty.starts_with("HTTP/1.1 200"), "{empty}");
    assert!(empty.contains("text/event-stream"));
    assert!(!empty.contains("event:"));

    let started = Instant::now();
    let slow = raw_post(&api, "/v1/messages", s, &prompt_body("raw", true)).await;
    assert!(started.elapsed() >= Duration::from_millis(40));
    assert_eq!(slow.matches("\"text_delta\"").count(), 3, "{slow}");
    assert!(
        slow.contains("claude-test-model"),
        "message_start echoes the model"
    );

    for _ in 0..2 {
        let overloaded = raw_post(&api, "/v1/messages", s, &prompt_body("raw", true)).await;
        assert!(overloaded.starts_with("HTTP/1.1 529"), "{overloaded}");
        assert!(overloaded.contains(r#""type":"overloaded_error""#));
    }

    let plain_json = raw_post(&api, "/v1/messages", s, &prompt_body("raw", false)).await;
    assert!(plain_json.contains("application/json"), "{plain_json}");
    let json_body: Value =
        serde_json::from_str(plain_json.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(json_body["content"][0]["text"], "plain");
    assert_eq!(json_body["stop_reason"], "end_turn");

    let tool_json = raw_post(&api, "/v1/messages", s, &prompt_body("raw", false)).await;
    let tool_body: Value =
        serde_json::from_str(tool_json.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(tool_body["content"][0]["input"]["command"], "echo x");
    assert_eq!(tool_body["stop_reason"], "tool_use");

    let exhausted = raw_post(&api, "/v1/messages", s, &prompt_body("raw", true)).await;
    assert!(exhausted.contains("default answer"));

    // Another session without a matching key and no default script gets the default answer.
    let other = raw_post(&api, "/v1/messages", "other", &prompt_body("nothing", true)).await;
    assert!(other.contains("default answer"));

    let requests = api.wait_for_requests(11, BOUND).await;
    assert_eq!(requests.len(), 11);
    assert_eq!(requests[0].script_key.as_deref(), Some("raw"));
    assert_eq!(requests[10].script_key, None);

    let not_found = raw_post(&api, "/v1/other", s, &prompt_body("raw", true)).await;
    assert!(not_found.starts_with("HTTP/1.1 404"), "{not_found}");
    assert_eq!(api.requests().len(), 11, "unknown paths are not recorded");
}

#[tokio::test]
async fn head_root_is_ok_and_hangs_close_on_drop() {
    let api = ScriptedApi::start().await;
    api.script("", vec![Step::hang(HangPoint::Headers)]);
    let addr = api.base_url().trim_start_matches("http://").to_owned();

    let mut head = TcpStream::connect(&addr).await.unwrap();
    head.write_all(b"HEAD / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    timeout(BOUND, head.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(
        out.to_ascii_lowercase().contains("content-length: 0"),
        "{out}"
    );

    let mut hanging = TcpStream::connect(&addr).await.unwrap();
    let body = prompt_body("x", true).to_string();
    let request = format!(
        "POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    hanging.write_all(request.as_bytes()).await.unwrap();
    api.wait_for_requests(1, BOUND).await;
    drop(api);
    let mut rest = Vec::new();
    // EOF (or a reset) must arrive once the server is gone, with no response bytes.
    let read = timeout(BOUND, hanging.read_to_end(&mut rest))
        .await
        .expect("connection closed");
    assert!(read.is_err() || rest.is_empty(), "{rest:?}");
}

// ---- The fake CLI ----

#[tokio::test]
async fn fake_claude_replays_with_fresh_ids_and_injected_text() {
    const FIXTURE_SESSION: &str = "c1dc9179-c8f3-4e18-9b30-6dda737c35c1";
    let text = r#"done {"emit_event":{"type":"x"}}"#;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_personas-fake-claude"))
        .args(["-p", "--output-format", "stream-json", "--verbose"])
        .env("PERSONAS_FAKE_TEXT", text)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"the prompt").await.unwrap();
    drop(stdin);
    let output = timeout(BOUND, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(output.status.success());

    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["subtype"], "init");
    assert_eq!(lines[1]["message"]["content"][0]["text"], text);
    let result = lines
        .iter()
        .find(|l| l["type"] == "result")
        .expect("result line");
    assert_eq!(result["result"], text);
    let session = lines[0]["session_id"].as_str().unwrap();
    assert_ne!(session, FIXTURE_SESSION);
    assert!(uuid::Uuid::parse_str(session).is_ok());
    assert!(lines.iter().all(|l| l["session_id"] == session));
    assert!(!stdout.contains(FIXTURE_SESSION));
}
