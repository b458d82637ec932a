//! The IPC surface: one Tauri command per operation of the `personas-api` table (generated from
//! `for_each_operation!`, so a new operation is a new command without a line here), the event
//! stream over a channel, and the shell's own few commands.
//!
//! Requests are decoded exactly as the HTTP server decodes them (`schema::parse_request`), so
//! the UI gets the same `{code, message, field}` errors in both hosts.

use crate::runtime::{Mode, Runtime};
use personas_api::{ApiError, Code, Operations, StreamFrame};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use tauri::ipc::Channel;
use tauri::{AppHandle, State};
use tokio_util::sync::CancellationToken;

macro_rules! operation_commands {
    ($( $(#[doc = $doc:literal])* $name:ident : $req:ty => $resp:ty ),* $(,)?) => {
        /// The operations of the table, as commands taking `{ req }`.
        pub mod ops {
            use super::*;
            $(
                $(#[doc = $doc])*
                #[tauri::command]
                pub async fn $name(
                    rt: State<'_, Runtime>,
                    req: Option<serde_json::Value>,
                ) -> Result<$resp, ApiError> {
                    let api = rt.api()?;
                    let req: $req = personas_api::schema::parse_request(
                        req.unwrap_or(serde_json::Value::Null),
                    )?;
                    <personas_api::Api as Operations>::$name(api, req).await
                }
            )*
        }

        /// Every command of the app.
        pub fn handler() -> impl Fn(tauri::ipc::Invoke) -> bool + Send + Sync + 'static {
            tauri::generate_handler![
                $( ops::$name, )*
                subscribe_events,
                unsubscribe_events,
                shell_info,
                set_scheduler_paused,
                check_update,
                install_update,
            ]
        }
    };
}

personas_api::for_each_operation!(operation_commands);

/// Live event subscriptions of the window, by id (a reload drops its channel; the forwarder
/// notices the failed send and ends).
#[derive(Default)]
pub struct Subscriptions {
    next: AtomicU32,
    live: Mutex<HashMap<u32, CancellationToken>>,
}

/// Joins the numbered event stream after `after` of runtime instance `epoch` (what the web
/// backend passes in its WebSocket URL): the first frames are hello and the missed events (or a
/// resync), then every batch as it happens, in order.
#[tauri::command]
pub async fn subscribe_events(
    rt: State<'_, Runtime>,
    subs: State<'_, Subscriptions>,
    after: Option<u64>,
    epoch: Option<String>,
    on_frames: Channel<Vec<StreamFrame>>,
) -> Result<u32, ApiError> {
    let Some(state) = rt.state() else {
        return Err(rt
            .api()
            .err()
            .unwrap_or_else(|| ApiError::internal("no runtime")));
    };
    let (first, mut sub) = state.hub.join(after, epoch.as_deref());
    on_frames
        .send(first)
        .map_err(|e| ApiError::internal(format!("cannot reach the window: {e}")))?;
    let id = subs.next.fetch_add(1, Ordering::Relaxed);
    let stop = CancellationToken::new();
    if let Ok(mut live) = subs.live.lock() {
        live.insert(id, stop.clone());
    }
    let runtime_stop = state.stop.clone();
    tauri::async_runtime::spawn(async move {
        loop {
            let batch = tokio::select! {
                b = sub.next_batch() => match b {
                    Some(b) => b,
                    None => return,
                },
                _ = stop.cancelled() => return,
                _ = runtime_stop.cancelled() => return,
            };
            if !batch.is_empty() && on_frames.send(batch).is_err() {
                return;
            }
        }
    });
    Ok(id)
}

#[tauri::command]
pub fn unsubscribe_events(subs: State<'_, Subscriptions>, id: u32) {
    if let Some(stop) = subs.live.lock().ok().and_then(|mut l| l.remove(&id)) {
        stop.cancel();
    }
}

/// What the window needs to know about its shell.
#[derive(Debug, Serialize)]
pub struct ShellInfo {
    /// `local` (engine in this process), `attached` (to `personas up`) or `failed`.
    pub mode: &'static str,
    pub data_dir: String,
    /// Where the HTTP listener (webhooks, CLI) is, when the engine runs here.
    pub url: Option<String>,
    pub error: Option<String>,
    pub scheduler_paused: bool,
    pub version: &'static str,
    pub os: &'static str,
}

/// The window asks for this as it first renders: the cold-start time is logged then, once.
#[tauri::command]
pub fn shell_info(rt: State<'_, Runtime>) -> ShellInfo {
    static PAINTED: std::sync::Once = std::sync::Once::new();
    PAINTED.call_once(|| {
        tracing::info!(
            ms = crate::STARTED
                .get()
                .map_or(0, |t| t.elapsed().as_millis() as u64),
            "cold start: the window rendered its first page"
        );
    });
    let (mode, url, error, paused) = match &rt.mode {
        Mode::Local { state, url, .. } => (
            "local",
            Some(url.clone()),
            None,
            state.engine.scheduler_paused(),
        ),
        Mode::Attached { info, .. } => ("attached", Some(info.url.clone()), None, false),
        Mode::Failed(e) => ("failed", None, Some(e.clone()), false),
    };
    ShellInfo {
        mode,
        data_dir: rt.data_dir.display().to_string(),
        url,
        error,
        scheduler_paused: paused,
        version: env!("CARGO_PKG_VERSION"),
        os: std::env::consts::OS,
    }
}

/// Pauses or resumes cron firing (the tray offers the same).
#[tauri::command]
pub fn set_scheduler_paused(app: AppHandle, paused: bool) -> Result<bool, ApiError> {
    crate::tray::set_paused(&app, paused)
}

/// An available update, as the window shows it before asking for consent.
#[derive(Debug, Serialize)]
pub struct UpdateOffer {
    pub version: String,
    pub current_version: String,
    pub notes: Option<String>,
}

/// Checks the update feed (a signed manifest); `None` when up to date.
#[tauri::command]
pub async fn check_update(app: AppHandle) -> Result<Option<UpdateOffer>, ApiError> {
    let update = crate::update::check(&app).await?;
    Ok(update.map(|u| UpdateOffer {
        version: u.version.clone(),
        current_version: u.current_version.clone(),
        notes: u.body.clone(),
    }))
}

/// Downloads, verifies (signature against the configured public key) and installs the update
/// the person agreed to, then restarts the app.
#[tauri::command]
pub async fn install_update(app: AppHandle, version: String) -> Result<(), ApiError> {
    crate::update::install(&app, &version).await
}

pub(crate) fn unavailable(what: impl std::fmt::Display) -> ApiError {
    ApiError::new(Code::Unavailable, what.to_string())
}
