//! Desktop notifications for what happens while nobody watches the window: runs that finish or
//! fail, reviews waiting for a person, messages from personas (and a persona's `desktop`
//! notification channel). Fed by the same numbered event stream the window gets.

use crate::runtime::Runtime;
use personas_api::{ApiEvent, StreamFrame};
use personas_core::{ExecutionStatus, ReviewStatus};
use tauri::{AppHandle, Manager};
use tauri_plugin_notification::NotificationExt;

/// The notification one event deserves, if any: (title, body).
pub fn notice_for(event: &ApiEvent) -> Option<(String, String)> {
    match event {
        ApiEvent::Execution { execution } => {
            let verb = match execution.status {
                ExecutionStatus::Completed => "finished",
                ExecutionStatus::Failed => "failed",
                ExecutionStatus::TimedOut => "timed out",
                ExecutionStatus::Incomplete => "stopped incomplete",
                _ => return None,
            };
            let body = execution
                .error_message
                .clone()
                .or_else(|| execution.outcome_summary.clone())
                .or_else(|| execution.result_text.clone())
                .unwrap_or_default();
            Some((format!("{} {verb}", execution.persona_name), clip(&body)))
        }
        ApiEvent::Review { review } if review.status == ReviewStatus::Pending => Some((
            "A run waits for your review".to_string(),
            clip(&review.title),
        )),
        ApiEvent::Message { message } => Some((
            format!("Message from {}", message.persona_name),
            clip(message.title.as_deref().unwrap_or(&message.content)),
        )),
        // A desktop channel's notification is about a message or a review (`NoticeKind`), both
        // shown above; showing it too would notify twice.
        _ => None,
    }
}

fn clip(s: &str) -> String {
    let s = s.trim();
    match s.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Forwards events to desktop notifications (and keeps the tray's recent runs current) until
/// the runtime stops.
pub fn start(app: &AppHandle) {
    let rt = app.state::<Runtime>();
    let Some(state) = rt.state() else {
        return;
    };
    let (_, mut sub) = state.hub.join(None, None);
    let stop = state.stop.clone();
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        loop {
            let batch = tokio::select! {
                b = sub.next_batch() => match b {
                    Some(b) => b,
                    None => return,
                },
                _ = stop.cancelled() => return,
            };
            let mut runs_changed = false;
            for frame in batch {
                let StreamFrame::Event { event, .. } = frame else {
                    continue;
                };
                if let ApiEvent::Execution { execution } = &event {
                    runs_changed |= execution.status.is_terminal()
                        || execution.status == ExecutionStatus::Running;
                }
                if let Some((title, body)) = notice_for(&event) {
                    show(&app, &title, &body);
                }
            }
            if runs_changed {
                crate::tray::refresh(&app);
            }
        }
    });
}

/// Shows one notification. The log line is what tests and support read: a session without a
/// notification service (a bare X server) still records what would have been shown.
pub fn show(app: &AppHandle, title: &str, body: &str) {
    tracing::info!(target: "personas_desktop::notify", %title, %body, "notification");
    if let Err(e) = app.notification().builder().title(title).body(body).show() {
        tracing::warn!(error = %e, "cannot show a desktop notification");
    }
}
