//! Following an execution through the operations: its stored output in `execution_output`
//! pages, and — when a runtime holds the data dir — its event stream (`/api/events`), so new
//! lines and the end of the run arrive as they happen. Used by `run --follow` and
//! `execution logs --follow`; never reads the store directly.

use crate::context::Runtime;
use crate::error::{CliError, CliResult};
use crate::render::{self, Style};
use futures::StreamExt;
use personas_api::ops::{ExecutionOutputRequest, ExecutionRef, ListReviews};
use personas_api::{ApiEvent, Client, Operations, StreamFrame};
use personas_core::{Execution, ExecutionStatus, OutputLine};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// What Ctrl-C does while following.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum OnInterrupt {
    /// Cancel the execution (`cancel_execution`) and keep following until it ends.
    Cancel,
    /// Stop following; the execution goes on.
    Detach,
}

/// Prints lines once each, in order, with a spinner between them on a terminal.
pub struct Follower {
    json: bool,
    style: Style,
    last_seq: i64,
    spinner: bool,
    spun: bool,
    frame: usize,
    started: Instant,
}

const SPIN: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
const PAGE: u32 = 1000;
/// Without a runtime's event stream, how often the stored state is read again (another
/// process — a foreground `run --follow` — writes it).
const POLL: Duration = Duration::from_millis(100);

impl Follower {
    pub fn new(json: bool) -> Self {
        Self {
            json,
            style: Style::detect(),
            last_seq: 0,
            spinner: !json && std::io::stderr().is_terminal(),
            spun: false,
            frame: 0,
            started: Instant::now(),
        }
    }

    fn clear_spinner(&mut self) {
        if self.spun {
            eprint!("\r\x1b[2K");
            let _ = std::io::stderr().flush();
            self.spun = false;
        }
    }

    pub fn spin(&mut self) {
        if !self.spinner {
            return;
        }
        self.frame = (self.frame + 1) % SPIN.len();
        eprint!(
            "\r\x1b[2K{} {}",
            SPIN[self.frame],
            self.style.dim(&format!(
                "working · {:.0} s",
                self.started.elapsed().as_secs_f64()
            ))
        );
        let _ = std::io::stderr().flush();
        self.spun = true;
    }

    pub fn note(&mut self, text: &str) {
        self.clear_spinner();
        eprintln!("{}", self.style.dim(text));
    }

    /// Prints a line unless it was printed already; false when it is not the next one (a gap
    /// the stored pages must fill).
    pub fn line(&mut self, l: &OutputLine) -> bool {
        if l.seq <= self.last_seq {
            return true;
        }
        if l.seq != self.last_seq + 1 {
            return false;
        }
        self.last_seq = l.seq;
        self.clear_spinner();
        if self.json {
            println!("{}", serde_json::to_string(l).unwrap_or_default());
        } else if let Some(text) = render::line(l, self.style) {
            println!("{text}");
        }
        true
    }

    /// Prints every stored line not shown yet, page by page.
    pub async fn catch_up(&mut self, client: &Client, id: &str) -> CliResult<()> {
        loop {
            let page = client
                .execution_output(ExecutionOutputRequest {
                    id: id.to_string(),
                    after: Some(self.last_seq),
                    limit: Some(PAGE),
                })
                .await?;
            for l in &page.lines {
                // Stored lines are numbered without gaps; take them as they come.
                if l.seq > self.last_seq {
                    self.last_seq = l.seq - 1;
                    self.line(l);
                }
            }
            if !page.more {
                return Ok(());
            }
        }
    }

    pub fn finish(&mut self, e: &Execution) {
        self.clear_spinner();
        if self.json {
            println!("{}", serde_json::to_string(e).unwrap_or_default());
        } else {
            println!("{}", render::summary(e, self.style));
        }
    }
}

/// Prints how to decide a paused run's reviews.
pub async fn note_paused(client: &Client, id: &str, follower: &mut Follower) -> CliResult<()> {
    let pending = client
        .list_reviews(ListReviews {
            status: Some(personas_core::ReviewStatus::Pending),
        })
        .await?;
    follower.note("⏸ paused: waiting for a review decision");
    for r in pending
        .reviews
        .iter()
        .filter(|r| r.execution_id.as_str() == id)
    {
        follower.note(&format!(
            "  {} — `personas review approve {} [--note TEXT]` or `personas review reject {}`",
            r.title, r.id, r.id
        ));
    }
    Ok(())
}

/// Follows an execution another process runs until it ends (or, with
/// [`OnInterrupt::Detach`], until Ctrl-C). Through the runtime's event stream when one holds
/// the data dir, else by reading the stored state again every [`POLL`].
pub async fn follow(
    client: &Client,
    runtime: Option<&Runtime>,
    id: &str,
    follower: &mut Follower,
    on_interrupt: OnInterrupt,
) -> CliResult<Option<Execution>> {
    if let Some(rt) = runtime {
        match connect(rt).await {
            Ok(stream) => return follow_stream(client, stream, id, follower, on_interrupt).await,
            Err(e) => follower.note(&format!(
                "cannot open the runtime's event stream ({e}); reading its output instead"
            )),
        }
    }
    // No runtime mirrors cloud runs now: this process does while it follows (a run started
    // with `run --cloud` earlier, followed with `execution logs --follow`).
    if let Some(api) = client.local_api() {
        api.resume_cloud_mirrors();
    }
    follow_polling(client, id, follower, on_interrupt).await
}

type Stream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(rt: &Runtime) -> Result<Stream, String> {
    let url = format!("{}/api/events", rt.url.replacen("http", "ws", 1));
    let mut req = url
        .as_str()
        .into_client_request()
        .map_err(|e| e.to_string())?;
    // The token rides in the subprotocol list: browsers cannot set headers on a WebSocket, so
    // the runtime accepts it there for every client.
    let protocols = format!("personas, personas.token.{}", rt.token);
    req.headers_mut().insert(
        "sec-websocket-protocol",
        protocols.parse().map_err(|_| "bad token".to_string())?,
    );
    let (ws, _) = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::connect_async(req),
    )
    .await
    .map_err(|_| "timed out".to_string())?
    .map_err(|e| e.to_string())?;
    Ok(ws)
}

/// What one look at the stored state found.
async fn check_state(
    client: &Client,
    id: &str,
    follower: &mut Follower,
    paused_noted: &mut bool,
) -> CliResult<Option<Execution>> {
    follower.catch_up(client, id).await?;
    let exec = client
        .get_execution(ExecutionRef { id: id.to_string() })
        .await?;
    if exec.status.is_terminal() {
        follower.catch_up(client, id).await?;
        return Ok(Some(exec));
    }
    if exec.status == ExecutionStatus::AwaitingReview {
        if !*paused_noted {
            note_paused(client, id, follower).await?;
            *paused_noted = true;
        }
    } else {
        *paused_noted = false;
    }
    Ok(None)
}

async fn interrupt(
    client: &Client,
    id: &str,
    follower: &mut Follower,
    on_interrupt: OnInterrupt,
) -> CliResult<bool> {
    match on_interrupt {
        OnInterrupt::Detach => Ok(true),
        OnInterrupt::Cancel => {
            follower.note("cancelling…");
            client
                .cancel_execution(ExecutionRef { id: id.to_string() })
                .await?;
            Ok(false)
        }
    }
}

async fn follow_stream(
    client: &Client,
    mut stream: Stream,
    id: &str,
    follower: &mut Follower,
    on_interrupt: OnInterrupt,
) -> CliResult<Option<Execution>> {
    let mut paused_noted = false;
    // Subscribed first, then caught up: nothing falls between the stored lines and the live
    // ones (a line seen twice is printed once).
    if let Some(done) = check_state(client, id, follower, &mut paused_noted).await? {
        return Ok(Some(done));
    }
    let mut interrupted = false;
    let mut tick = tokio::time::interval(Duration::from_millis(120));
    loop {
        tokio::select! {
            msg = stream.next() => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(_)) => continue,
                    // The runtime stopped: what it stored is still readable.
                    Some(Err(_)) | None => {
                        follower.note("the runtime's event stream closed; reading its output instead");
                        return follow_polling(client, id, follower, on_interrupt).await;
                    }
                };
                let frames: Vec<StreamFrame> = serde_json::from_str(text.as_str())
                    .map_err(|e| CliError::runtime(format!("the runtime sent an unreadable event: {e}")))?;
                let mut look = false;
                for frame in frames {
                    match frame {
                        StreamFrame::Event { event: ApiEvent::Output { line }, .. }
                            if line.execution_id.as_str() == id => {
                            look |= !follower.line(&line);
                        }
                        StreamFrame::Event { event: ApiEvent::Execution { execution }, .. }
                            if execution.id.as_str() == id => look = true,
                        StreamFrame::Resync { .. } => look = true,
                        _ => {}
                    }
                }
                if look && let Some(done) = check_state(client, id, follower, &mut paused_noted).await? {
                    return Ok(Some(done));
                }
            }
            _ = tokio::signal::ctrl_c(), if !interrupted => {
                interrupted = true;
                if interrupt(client, id, follower, on_interrupt).await? {
                    return Ok(None);
                }
            }
            _ = tick.tick() => follower.spin(),
        }
    }
}

async fn follow_polling(
    client: &Client,
    id: &str,
    follower: &mut Follower,
    on_interrupt: OnInterrupt,
) -> CliResult<Option<Execution>> {
    let mut paused_noted = false;
    let mut interrupted = false;
    let mut tick = tokio::time::interval(POLL);
    loop {
        if let Some(done) = check_state(client, id, follower, &mut paused_noted).await? {
            return Ok(Some(done));
        }
        tokio::select! {
            _ = tick.tick() => follower.spin(),
            _ = tokio::signal::ctrl_c(), if !interrupted => {
                interrupted = true;
                if interrupt(client, id, follower, on_interrupt).await? {
                    return Ok(None);
                }
            }
        }
    }
}
