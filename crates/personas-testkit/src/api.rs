//! [`ScriptedApi`]: a scripted imitation of the Anthropic Messages API on 127.0.0.1, built for the
//! real Claude Code CLI 2.1.197 (see `shared/fixtures/claude-code/README.md`, sections 4 and 6).
//!
//! It owns the wire format the CLI accepts (SSE with `event:` lines, the non-streaming JSON
//! fallback, error bodies), the per-session scripts that decide each answer, and a log of every
//! `POST /v1/messages` for assertions.
//!
//! # Scripts and sessions
//! Requests are grouped by the `x-claude-code-session-id` header. The first request of a session
//! picks the registered script whose key occurs in the request's `messages` text (the longest key
//! wins; the empty key is the default). The session then walks its own copy of the steps, one
//! step per request, so many CLIs can share a script and `--resume` (same session id) continues
//! where the previous run stopped. When the steps run out, or no script matched at all, the
//! answer is the text `"default answer"`. A request without the header is its own one-request
//! session.
//!
//! # Why hyper and not axum's `serve`
//! [`Step::Drop`] must close one TCP connection without an answer and the hang steps must hold a
//! connection open until the server is dropped. axum's `serve` hides the connections, so this
//! module runs its own accept loop: every connection is a task in a [`JoinSet`] owned by the
//! accept task, with a [`Notify`] the request handler can fire to drop that connection.
//! Dropping [`ScriptedApi`] aborts the accept task, which drops the `JoinSet`, which aborts every
//! connection task and so closes every socket; `Drop` itself never waits.

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt, stream};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::{JoinHandle, JoinSet};

/// Text answered when a session has no (more) scripted steps.
pub const DEFAULT_ANSWER: &str = "default answer";

/// The model echoed when a request body carries none (the CLI always sends one).
const FALLBACK_MODEL: &str = "claude-opus-4-8";

/// Where a [`Step::Hang`] stops talking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HangPoint {
    /// The request is read; response headers are never sent.
    Headers,
    /// Headers and `message_start` are sent, then nothing.
    MessageStart,
    /// Like `MessageStart`, plus `content_block_start` and one text delta.
    TextDelta,
}

/// One tool call inside a [`Step::ToolUse`] answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// The `tool_use` id; the CLI echoes it as `tool_use_id` in the next request.
    pub id: String,
    /// Tool name as the CLI knows it, e.g. `Bash`, `Write`.
    pub name: String,
    /// The tool input object.
    pub input: Value,
}

impl ToolCall {
    /// Any tool call.
    pub fn new(id: impl Into<String>, name: impl Into<String>, input: Value) -> ToolCall {
        ToolCall {
            id: id.into(),
            name: name.into(),
            input,
        }
    }

    /// A Bash tool call running `command`.
    pub fn bash(id: impl Into<String>, command: impl Into<String>) -> ToolCall {
        let command: String = command.into();
        ToolCall::new(
            id,
            "Bash",
            json!({"command": command, "description": "run command"}),
        )
    }
}

/// What the imitation answers to one `POST /v1/messages` of a session.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A complete text answer (`stop_reason: end_turn`).
    Text(String),
    /// An optional text block followed by one `tool_use` block per call (`stop_reason: tool_use`).
    ToolUse {
        text: Option<String>,
        calls: Vec<ToolCall>,
    },
    /// An HTTP error with the API's JSON error body, for `times` consecutive requests of the
    /// session (`u32::MAX` = forever). `headers` are extra response headers such as
    /// `retry-after` or `x-should-retry`.
    Error {
        status: u16,
        error_type: String,
        message: String,
        headers: Vec<(String, String)>,
        times: u32,
    },
    /// A 200 stream that sends `message_start`, then `event: error` (overloaded), then ends; for
    /// `times` consecutive requests. A non-streaming request gets HTTP 529 JSON instead.
    SseError { times: u32 },
    /// Never completes; the connection stays open until the [`ScriptedApi`] is dropped.
    Hang { after: HangPoint },
    /// A text answer delivered in `chunks` text deltas, `delay` apart.
    Slow {
        text: String,
        chunks: usize,
        delay: Duration,
    },
    /// Closes the TCP connection without any HTTP answer.
    Drop,
    /// A 200 `text/event-stream` with no events (the CLI then retries without streaming). A
    /// non-streaming request gets a JSON text message [`DEFAULT_ANSWER`].
    EmptySse,
}

impl Step {
    /// A text answer.
    pub fn text(text: impl Into<String>) -> Step {
        Step::Text(text.into())
    }

    /// Tool calls without a leading text block.
    pub fn tool_use(calls: Vec<ToolCall>) -> Step {
        Step::ToolUse { text: None, calls }
    }

    /// One Bash call running `command`.
    pub fn bash(id: impl Into<String>, command: impl Into<String>) -> Step {
        Step::tool_use(vec![ToolCall::bash(id, command)])
    }

    /// An HTTP error with the `error.type` the real API uses for `status`, for `times` requests.
    pub fn error(status: u16, times: u32) -> Step {
        let (error_type, message) = match status {
            400 => ("invalid_request_error", "scripted invalid request"),
            401 => ("authentication_error", "invalid x-api-key"),
            403 => ("permission_error", "scripted permission error"),
            404 => ("not_found_error", "scripted not found"),
            413 => ("request_too_large", "scripted request too large"),
            429 => ("rate_limit_error", "scripted rate limit"),
            529 => ("overloaded_error", "Overloaded"),
            _ => ("api_error", "Internal server error"),
        };
        Step::Error {
            status,
            error_type: error_type.to_owned(),
            message: message.to_owned(),
            headers: Vec::new(),
            times,
        }
    }

    /// A hang at `after`.
    pub fn hang(after: HangPoint) -> Step {
        Step::Hang { after }
    }

    /// How many consecutive requests this step answers before the cursor moves on.
    fn times(&self) -> u32 {
        match self {
            Step::Error { times, .. } | Step::SseError { times } => *times,
            _ => 1,
        }
    }
}

/// One `POST /v1/messages` the imitation received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// The `x-claude-code-session-id` header.
    pub session_id: Option<String>,
    /// Key of the script this request's session follows: `Some("")` for the default script,
    /// `None` when no script was registered that could apply.
    pub script_key: Option<String>,
    /// All request headers, names lower-case, in wire order.
    pub headers: Vec<(String, String)>,
    /// The parsed JSON body.
    pub body: Value,
}

impl RecordedRequest {
    /// Every text in the system blocks and the messages (text blocks, string contents and
    /// `tool_result` contents), joined by newlines, for `contains` assertions.
    pub fn all_text(&self) -> String {
        let mut parts = Vec::new();
        if let Some(system) = self.body.get("system") {
            collect_content_text(system, &mut parts);
        }
        collect_messages_text(self.messages(), &mut parts);
        parts.join("\n")
    }

    /// The `messages` array (empty when absent).
    pub fn messages(&self) -> &[Value] {
        self.body
            .get("messages")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }

    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the CLI asked for SSE (`"stream": true`); `false` is its non-streaming fallback.
    pub fn is_streaming(&self) -> bool {
        self.body.get("stream").and_then(Value::as_bool) == Some(true)
    }
}

/// Text of a `messages` array: what script keys are matched against.
fn collect_messages_text(messages: &[Value], out: &mut Vec<String>) {
    for message in messages {
        if let Some(content) = message.get("content") {
            collect_content_text(content, out);
        }
    }
}

/// Text of a `content`/`system` value: a plain string or an array of blocks.
fn collect_content_text(content: &Value, out: &mut Vec<String>) {
    match content {
        Value::String(s) => out.push(s.clone()),
        Value::Array(blocks) => {
            for block in blocks {
                match block.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        if let Some(text) = block.get("text").and_then(Value::as_str) {
                            out.push(text.to_owned());
                        }
                    }
                    Some("tool_result") => {
                        if let Some(inner) = block.get("content") {
                            collect_content_text(inner, out);
                        }
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

/// A session's position in its own copy of a script.
#[derive(Debug)]
struct Session {
    key: Option<String>,
    steps: Vec<Step>,
    pos: usize,
    /// How many requests the step at `pos` has answered already (for `times`).
    used: u32,
    /// The script is shared: every session walks the one cursor in `State::shared`.
    shared: bool,
}

impl Session {
    /// The step answering the next request; advances the cursor.
    fn next_step(&mut self) -> Step {
        loop {
            let Some(step) = self.steps.get(self.pos) else {
                return Step::Text(DEFAULT_ANSWER.to_owned());
            };
            let times = step.times();
            if times == 0 {
                // A step scripted to answer zero requests is simply skipped.
                self.pos += 1;
                self.used = 0;
                continue;
            }
            let step = step.clone();
            if times != u32::MAX {
                self.used += 1;
                if self.used >= times {
                    self.pos += 1;
                    self.used = 0;
                }
            }
            return step;
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// Registered scripts in registration order; a key registered again replaces its steps.
    scripts: Vec<(String, Vec<Step>)>,
    sessions: HashMap<String, Session>,
    /// Cursors of scripts registered with [`ScriptedApi::script_shared`], by key.
    shared: HashMap<String, Session>,
    requests: Vec<RecordedRequest>,
}

impl State {
    /// A fresh session for a first request whose messages text is `text`.
    fn new_session(&self, text: &str) -> Session {
        // The empty key matches every text, so it only wins when nothing longer does: that is
        // exactly "default script".
        let best = self
            .scripts
            .iter()
            .filter(|(key, _)| text.contains(key.as_str()))
            .max_by_key(|(key, _)| key.len());
        match best {
            Some((key, steps)) => Session {
                key: Some(key.clone()),
                steps: steps.clone(),
                pos: 0,
                used: 0,
                shared: self.shared.contains_key(key),
            },
            None => Session {
                key: None,
                steps: Vec::new(),
                pos: 0,
                used: 0,
                shared: false,
            },
        }
    }

    /// The next step for session `id` (its own copy, or the shared cursor of its script).
    fn step_for(&mut self, id: &str) -> (Step, Option<String>) {
        let Some(session) = self.sessions.get_mut(id) else {
            return (Step::Text(DEFAULT_ANSWER.to_owned()), None);
        };
        let key = session.key.clone();
        if session.shared
            && let Some(cursor) = key.as_ref().and_then(|k| self.shared.get_mut(k))
        {
            return (cursor.next_step(), key);
        }
        (session.next_step(), key)
    }
}

struct Shared {
    state: Mutex<State>,
    /// Number of recorded requests; `wait_for_requests` waits on it.
    count: watch::Sender<usize>,
    next_id: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock can only come from a bug in this module; the state is
        // still usable for the assertions that follow, so ignore the poison.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn fresh_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// A scripted Anthropic Messages API on `127.0.0.1`, serving in a background task until dropped.
pub struct ScriptedApi {
    shared: Arc<Shared>,
    port: u16,
    server: JoinHandle<()>,
}

impl std::fmt::Debug for ScriptedApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedApi")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl ScriptedApi {
    /// Binds `127.0.0.1:0` and starts serving. Must be called inside a tokio runtime.
    pub async fn start() -> ScriptedApi {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("ScriptedApi: cannot bind 127.0.0.1:0");
        let port = listener
            .local_addr()
            .expect("ScriptedApi: listener has no local address")
            .port();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            count: watch::Sender::new(0),
            next_id: AtomicU64::new(1),
        });
        let server = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        ScriptedApi {
            shared,
            port,
            server,
        }
    }

    /// The bare origin for `ANTHROPIC_BASE_URL`, e.g. `http://127.0.0.1:41234` (no `/v1`).
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Registers (or replaces) the script selected by `key`; `""` is the default script.
    /// Sessions that already started keep the steps they copied.
    pub fn script(&self, key: &str, steps: Vec<Step>) {
        let mut state = self.shared.lock();
        match state.scripts.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = steps,
            None => state.scripts.push((key.to_owned(), steps)),
        }
    }

    /// Registers (or replaces) a script whose steps are shared by every session that selects
    /// it: the n-th request of any such session, across CLI runs, gets step n. Models an API
    /// that fails for a while and then recovers, whichever run asks.
    pub fn script_shared(&self, key: &str, steps: Vec<Step>) {
        let mut state = self.shared.lock();
        state.shared.insert(
            key.to_owned(),
            Session {
                key: Some(key.to_owned()),
                steps: steps.clone(),
                pos: 0,
                used: 0,
                shared: true,
            },
        );
        match state.scripts.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = steps,
            None => state.scripts.push((key.to_owned(), steps)),
        }
    }

    /// Every `POST /v1/messages` received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Waits until at least `n` requests were recorded and returns all of them.
    ///
    /// # Panics
    /// When `timeout` passes first, with a summary of what did arrive.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<RecordedRequest> {
        let mut rx = self.shared.count.subscribe();
        let reached = tokio::time::timeout(timeout, async {
            // The sender lives in `self.shared`, so it cannot be dropped while we wait.
            let _ = rx.wait_for(|count| *count >= n).await;
        })
        .await;
        let requests = self.requests();
        if reached.is_err() {
            let sessions: Vec<_> = requests.iter().map(|r| r.session_id.clone()).collect();
            panic!(
                "ScriptedApi: expected at least {n} POST /v1/messages within {timeout:?}, got {} \
                 (session ids: {sessions:?})",
                requests.len()
            );
        }
        requests
    }
}

impl Drop for ScriptedApi {
    fn drop(&mut self) {
        // Aborting the accept task drops its JoinSet, which aborts every connection task and
        // closes their sockets (hanging ones included). Nothing here waits.
        self.server.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, Arc::clone(&shared)));
                }
                // Typically EMFILE; back off briefly instead of spinning on the error.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
            // Reap finished connections so the set does not grow for the server's lifetime.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let kill = Arc::new(Notify::new());
    let handler_kill = Arc::clone(&kill);
    let service = hyper::service::service_fn(move |req| {
        handle(req, Arc::clone(&shared), Arc::clone(&handler_kill))
    });
    let connection =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        // Errors here are the client going away mid-answer; nothing to report.
        _ = connection => {}
        // Step::Drop: returning drops the connection and with it the socket, before any byte of
        // an answer was written.
        () = kill.notified() => {}
    }
}

type Body = UnsyncBoxBody<Bytes, Infallible>;
type FrameStream = Pin<Box<dyn Stream<Item = Result<Frame<Bytes>, Infallible>> + Send>>;

async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    kill: Arc<Notify>,
) -> Result<Response<Body>, Infallible> {
    let is_messages = req.uri().path() == "/v1/messages";
    if req.method() == Method::HEAD && req.uri().path() == "/" {
        return Ok(response(
            StatusCode::OK,
            &[(CONTENT_LENGTH.as_str(), "0")],
            empty(),
        ));
    }
    if req.method() != Method::POST || !is_messages {
        return Ok(json_response(
            StatusCode::NOT_FOUND,
            &[],
            &error_body("not_found_error", "Not found"),
        ));
    }

    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let session_id = req
        .headers()
        .get("x-claude-code-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Ok(collected) = req.into_body().collect().await else {
        // The client went away while sending; there is nobody to answer.
        return Ok(response(StatusCode::BAD_REQUEST, &[], empty()));
    };
    let Ok(body) = serde_json::from_slice::<Value>(&collected.to_bytes()) else {
        return Ok(json_response(
            StatusCode::BAD_REQUEST,
            &[],
            &error_body("invalid_request_error", "request body is not JSON"),
        ));
    };

    let step = {
        let mut state = shared.lock();
        let mut text = Vec::new();
        if let Some(messages) = body.get("messages").and_then(Value::as_array) {
            collect_messages_text(messages, &mut text);
        }
        let text = text.join("\n");
        let (step, script_key) = match &session_id {
            Some(id) => {
                if !state.sessions.contains_key(id) {
                    let session = state.new_session(&text);
                    state.sessions.insert(id.clone(), session);
                }
                state.step_for(id)
            }
            // Without a session header every request starts over; the CLI always sends one.
            None => {
                let mut session = state.new_session(&text);
                (session.next_step(), session.key.clone())
            }
        };
        state.requests.push(RecordedRequest {
            session_id,
            script_key,
            headers,
            body: body.clone(),
        });
        shared.count.send_replace(state.requests.len());
        step
    };

    let ctx = AnswerCtx {
        model: body
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or(FALLBACK_MODEL)
            .to_owned(),
        message_id: format!("msg_scripted_{}", uuid::Uuid::new_v4().simple()),
        request_id: format!("req_scripted_{}", shared.fresh_id()),
    };
    let streaming = body.get("stream").and_then(Value::as_bool) == Some(true);
    Ok(answer(step, streaming, &ctx, &kill).await)
}

/// Per-answer identifiers.
struct AnswerCtx {
    model: String,
    message_id: String,
    request_id: String,
}

async fn answer(step: Step, streaming: bool, ctx: &AnswerCtx, kill: &Notify) -> Response<Body> {
    match step {
        Step::Text(text) => {
            if streaming {
                sse_response(ctx, stream_of(text_events(ctx, &text)))
            } else {
                message_json(ctx, vec![text_block(&text)], "end_turn")
            }
        }
        Step::ToolUse { text, calls } => {
            if streaming {
                sse_response(
                    ctx,
                    stream_of(tool_use_events(ctx, text.as_deref(), &calls)),
                )
            } else {
                let mut content = Vec::new();
                if let Some(text) = &text {
                    content.push(text_block(text));
                }
                content.extend(calls.iter().map(|call| {
                    json!({"type": "tool_use", "id": call.id, "name": call.name, "input": call.input})
                }));
                message_json(ctx, content, "tool_use")
            }
        }
        Step::Error {
            status,
            error_type,
            message,
            headers,
            ..
        } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut extra: Vec<(&str, &str)> = vec![("request-id", ctx.request_id.as_str())];
            extra.extend(headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            json_response(status, &extra, &error_body(&error_type, &message))
        }
        Step::SseError { .. } => {
            if streaming {
                let events = vec![
                    message_start(ctx),
                    sse_event("error", &error_body("overloaded_error", "Overloaded")),
                ];
                sse_response(ctx, stream_of(events))
            } else {
                let status = StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                json_response(
                    status,
                    &[("request-id", ctx.request_id.as_str())],
                    &error_body("overloaded_error", "Overloaded"),
                )
            }
        }
        Step::Hang { after } => {
            let sent = match after {
                HangPoint::Headers => return std::future::pending().await,
                HangPoint::MessageStart => vec![message_start(ctx)],
                HangPoint::TextDelta => vec![
                    message_start(ctx),
                    content_block_start_text(0),
                    text_delta(0, "Partial answer"),
                ],
            };
            // A non-streaming request gets JSON headers and a body that never arrives.
            let frames = if streaming { sent } else { Vec::new() };
            let body: FrameStream = Box::pin(stream_of(frames).chain(stream::pending()));
            if streaming {
                sse_response(ctx, body)
            } else {
                stream_response(StatusCode::OK, "application/json", ctx, body)
            }
        }
        Step::Slow {
            text,
            chunks,
            delay,
        } => {
            if !streaming {
                return message_json(ctx, vec![text_block(&text)], "end_turn");
            }
            let head = stream_of(vec![message_start(ctx), content_block_start_text(0)]);
            let deltas = stream::iter(split_chunks(&text, chunks).into_iter().enumerate()).then(
                move |(i, piece)| async move {
                    if i > 0 {
                        tokio::time::sleep(delay).await;
                    }
                    Ok(Frame::data(text_delta(0, &piece)))
                },
            );
            let mut tail = vec![content_block_stop(0)];
            tail.extend(message_end("end_turn"));
            let tail = stream_of(tail);
            sse_response(ctx, Box::pin(head.chain(deltas).chain(tail)))
        }
        Step::Drop => {
            kill.notify_one();
            // The connection task drops this future together with the connection.
            std::future::pending().await
        }
        Step::EmptySse => {
            if streaming {
                stream_response(
                    StatusCode::OK,
                    "text/event-stream",
                    ctx,
                    stream_of(Vec::new()),
                )
            } else {
                message_json(ctx, vec![text_block(DEFAULT_ANSWER)], "end_turn")
            }
        }
    }
}

// ---- SSE event builders (README §6.2 and §6.3) ----

fn sse_event(event: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

fn usage_start() -> Value {
    json!({
        "input_tokens": 10,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 1
    })
}

fn message_start(ctx: &AnswerCtx) -> Bytes {
    sse_event(
        "message_start",
        &json!({
            "type": "message_start",
            "message": {
                "id": ctx.message_id,
                "type": "message",
                "role": "assistant",
                "model": ctx.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": usage_start()
            }
        }),
    )
}

fn content_block_start_text(index: usize) -> Bytes {
    sse_event(
        "content_block_start",
        &json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}),
    )
}

fn text_delta(index: usize, text: &str) -> Bytes {
    sse_event(
        "content_block_delta",
        &json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}}),
    )
}

fn content_block_stop(index: usize) -> Bytes {
    sse_event(
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": index}),
    )
}

/// `message_delta` with `stop_reason`, then `message_stop`.
fn message_end(stop_reason: &str) -> Vec<Bytes> {
    vec![
        sse_event(
            "message_delta",
            &json!({
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": null},
                "usage": {"output_tokens": 10}
            }),
        ),
        sse_event("message_stop", &json!({"type": "message_stop"})),
    ]
}

fn text_events(ctx: &AnswerCtx, text: &str) -> Vec<Bytes> {
    let mut events = vec![
        message_start(ctx),
        content_block_start_text(0),
        text_delta(0, text),
        content_block_stop(0),
    ];
    events.extend(message_end("end_turn"));
    events
}

fn tool_use_events(ctx: &AnswerCtx, text: Option<&str>, calls: &[ToolCall]) -> Vec<Bytes> {
    let mut events = vec![message_start(ctx)];
    if let Some(text) = text {
        events.extend([
            content_block_start_text(0),
            text_delta(0, text),
            content_block_stop(0),
        ]);
    }
    let first_tool_index = usize::from(text.is_some());
    for (index, call) in (first_tool_index..).zip(calls) {
        events.push(sse_event(
            "content_block_start",
            &json!({
                "type": "content_block_start",
                "index": index,
                "content_block": {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
            }),
        ));
        // The real API streams tool input in fragments; split it so the CLI's reassembly is
        // exercised, as README §6.3 shows.
        let input = call.input.to_string();
        for fragment in split_in_two(&input) {
            events.push(sse_event(
                "content_block_delta",
                &json!({
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": fragment}
                }),
            ));
        }
        events.push(content_block_stop(index));
    }
    events.extend(message_end("tool_use"));
    events
}

/// Splits `s` at a char boundary near its middle (both halves non-empty when `s` has 2+ chars).
fn split_in_two(s: &str) -> [&str; 2] {
    let mid = s
        .char_indices()
        .map(|(i, _)| i)
        .nth(s.chars().count() / 2)
        .unwrap_or(s.len());
    let (a, b) = s.split_at(mid);
    [a, b]
}

/// Splits `text` into `chunks` (at least one) pieces of near-equal char count.
fn split_chunks(text: &str, chunks: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let chunks = chunks.max(1);
    (0..chunks)
        .map(|i| {
            chars[i * chars.len() / chunks..(i + 1) * chars.len() / chunks]
                .iter()
                .collect()
        })
        .collect()
}

// ---- JSON bodies (README §6.4 and §6.5) ----

fn text_block(text: &str) -> Value {
    json!({"type": "text", "text": text})
}

fn error_body(error_type: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": error_type, "message": message}})
}

fn message_json(ctx: &AnswerCtx, content: Vec<Value>, stop_reason: &str) -> Response<Body> {
    let body = json!({
        "id": ctx.message_id,
        "type": "message",
        "role": "assistant",
        "model": ctx.model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": {
            "input_tokens": 10,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 10
        }
    });
    json_response(
        StatusCode::OK,
        &[("request-id", ctx.request_id.as_str())],
        &body,
    )
}

// ---- Response plumbing ----

fn empty() -> Body {
    Empty::new().boxed_unsync()
}

fn stream_of(events: Vec<Bytes>) -> FrameStream {
    Box::pin(stream::iter(
        events.into_iter().map(|bytes| Ok(Frame::data(bytes))),
    ))
}

fn response(status: StatusCode, headers: &[(&str, &str)], body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    for (name, value) in headers {
        // Scripted header names/values are test input; skip ones HTTP cannot carry rather than
        // failing the whole answer.
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

fn json_response(status: StatusCode, headers: &[(&str, &str)], body: &Value) -> Response<Body> {
    let mut all = vec![(CONTENT_TYPE.as_str(), "application/json")];
    all.extend_from_slice(headers);
    response(
        status,
        &all,
        Full::new(Bytes::from(body.to_string())).boxed_unsync(),
    )
}

fn stream_response(
    status: StatusCode,
    content_type: &str,
    ctx: &AnswerCtx,
    frames: FrameStream,
) -> Response<Body> {
    let headers = [
        (CONTENT_TYPE.as_str(), content_type),
        ("cache-control", "no-cache"),
        ("request-id", ctx.request_id.as_str()),
    ];
    response(status, &headers, StreamBody::new(frames).boxed_unsync())
}

fn sse_response(ctx: &AnswerCtx, frames: FrameStream) -> Response<Body> {
    stream_response(StatusCode::OK, "text/event-stream", ctx, frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_times_then_advance() {
        let mut s = Session {
            key: None,
            steps: vec![Step::error(500, 2), Step::text("ok")],
            pos: 0,
            used: 0,
            shared: false,
        };
        assert!(matches!(s.next_step(), Step::Error { status: 500, .. }));
        assert!(matches!(s.next_step(), Step::Error { status: 500, .. }));
        assert_eq!(s.next_step(), Step::text("ok"));
        assert_eq!(s.next_step(), Step::text(DEFAULT_ANSWER));
    }

    #[test]
    fn a_shared_script_has_one_cursor_for_every_session() {
        let mut state = State::default();
        state
            .scripts
            .push(("KEY".into(), vec![Step::error(429, 1), Step::text("ok")]));
        state.shared.insert(
            "KEY".into(),
            Session {
                key: Some("KEY".into()),
                steps: vec![Step::error(429, 1), Step::text("ok")],
                pos: 0,
                used: 0,
                shared: true,
            },
        );
        for id in ["s1", "s2"] {
            let session = state.new_session("follow KEY");
            state.sessions.insert(id.into(), session);
        }
        assert!(matches!(
            state.step_for("s1").0,
            Step::Error { status: 429, .. }
        ));
        assert_eq!(
            state.step_for("s2").0,
            Step::text("ok"),
            "s2 continues where s1 left off"
        );
        assert_eq!(state.step_for("s1").0, Step::text(DEFAULT_ANSWER));
    }

    #[test]
    fn forever_never_advances_and_zero_is_skipped() {
        let mut s = Session {
            key: None,
            steps: vec![Step::SseError { times: 0 }, Step::error(529, u32::MAX)],
            pos: 0,
            used: 0,
            shared: false,
        };
        for _ in 0..5 {
            assert!(matches!(s.next_step(), Step::Error { status: 529, .. }));
        }
    }

    #[test]
    fn longest_key_wins_and_empty_is_default() {
        let state = State {
            scripts: vec![
                ("".into(), vec![Step::text("d")]),
                ("alpha".into(), vec![Step::text("a")]),
                ("alpha beta".into(), vec![Step::text("ab")]),
            ],
            ..State::default()
        };
        assert_eq!(
            state.new_session("say alpha beta now").key.as_deref(),
            Some("alpha beta")
        );
        assert_eq!(
            state.new_session("say alpha now").key.as_deref(),
            Some("alpha")
        );
        assert_eq!(state.new_session("nothing").key.as_deref(), Some(""));
        assert_eq!(State::default().new_session("x").key, None);
    }

    #[test]
    fn splits() {
        assert_eq!(split_in_two("{}"), ["{", "}"]);
        assert_eq!(split_in_two("héllo").concat(), "héllo");
        assert_eq!(split_chunks("abcdef", 3), vec!["ab", "cd", "ef"]);
        assert_eq!(split_chunks("ab", 0), vec!["ab"]);
    }

    #[test]
    fn tool_use_events_are_well_formed() {
        let ctx = AnswerCtx {
            model: "m".into(),
            message_id: "msg".into(),
            request_id: "r".into(),
        };
        let events = tool_use_events(
            &ctx,
            Some("hi"),
            &[
                ToolCall::bash("t1", "echo a"),
                ToolCall::bash("t2", "echo b"),
            ],
        );
        let text: String = events
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect();
        let starts = text.matches("event: content_block_start").count();
        let stops = text.matches("event: content_block_stop").count();
        assert_eq!((starts, stops), (3, 3));
        let fragments: String = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .filter(|v| v["index"] == 2 && v["delta"]["type"] == "input_json_delta")
            .map(|v| {
                v["delta"]["partial_json"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        let input: Value = serde_json::from_str(&fragments).expect("fragments form JSON");
        assert_eq!(input["command"], "echo b");
        assert!(text.contains(r#""stop_reason":"tool_use""#));
    }

    #[test]
    fn all_text_collects_system_messages_and_tool_results() {
        let r = RecordedRequest {
            session_id: None,
            script_key: None,
            headers: vec![],
            body: json!({
                "system": [{"type": "text", "text": "SYS"}],
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "USER"}]},
                    {"role": "system", "content": "MIDSYS"},
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "Bash", "input": {}}]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "OUT"}]}
                ]
            }),
        };
        let all = r.all_text();
        for needle in ["SYS", "USER", "MIDSYS", "OUT"] {
            assert!(all.contains(needle), "{needle} missing from {all}");
        }
        assert_eq!(r.messages().len(), 4);
    }
}
