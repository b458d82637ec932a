//! Stopping a run: what asks it to stop (cancel, shutdown, its timeout, inactivity), and what
//! is cleaned up after the CLI has gone (processes left behind). The staged signals themselves
//! are [`super::process::Stopper`]'s.

use super::outcome::StopReason;
use super::sink::Sink;
use super::{StopSignals, blocking, process};
use crate::metrics::Event;
use crate::reaper;
use personas_core::{Execution, LineKind};
use std::time::Duration;
use tokio::time::Instant;

/// When the watch loop must ask the CLI to stop unless something happens first.
pub(super) struct Limits {
    pub deadline: Instant,
    pub timeout: Duration,
    pub inactivity: Duration,
}

/// Resolves with the reason and note once the run must be stopped: a cancel or shutdown
/// request, the run's deadline, or `inactivity` without output after `last_activity` (not
/// while tools are running: `idle` is false then).
pub(super) async fn requested(
    stops: &StopSignals,
    limits: &Limits,
    last_activity: Instant,
    idle: bool,
) -> (StopReason, String) {
    let idle_at = idle.then_some(last_activity + limits.inactivity);
    tokio::select! {
        _ = stops.cancel.cancelled() => (StopReason::Cancelled, "cancel requested".into()),
        _ = stops.shutdown.cancelled() => {
            (StopReason::Shutdown, "the runtime is shutting down".into())
        }
        _ = tokio::time::sleep_until(limits.deadline) => (
            StopReason::Timeout,
            format!("timeout of {} s reached", limits.timeout.as_secs()),
        ),
        _ = sleep_until_opt(idle_at) => (
            StopReason::Inactivity,
            format!("no output for {} s", limits.inactivity.as_secs()),
        ),
    }
}

/// The CLI has exited but something still holds its pipes: kill what it left behind.
pub(super) async fn reap_while_draining(
    cli: &mut process::CliProcess,
    execution: &Execution,
    sink: &mut Sink<'_>,
) {
    cli.kill_container();
    let n = reap(execution, sink).await;
    sink.emit(
        LineKind::Engine,
        format!("the CLI exited but its output stayed open; killed {n} leftover process(es)"),
    )
    .await;
}

/// After the CLI has gone: kills processes the run left behind (tools run in process groups of
/// their own and may outlive the CLI, on abnormal ends too), and says so.
pub(super) async fn reap_leftovers(execution: &Execution, sink: &mut Sink<'_>) {
    let n = reap(execution, sink).await;
    if n > 0 {
        sink.emit(
            LineKind::Engine,
            format!("killed {n} process(es) the run left behind"),
        )
        .await;
    }
}

/// Kills the execution's marked processes; counts them.
async fn reap(execution: &Execution, sink: &Sink<'_>) -> usize {
    let id = execution.id.to_string();
    let n = blocking(move || reaper::reap(&[&id])).await;
    if n > 0 {
        sink.rt
            .bus
            .metrics()
            .record(Event::ReapedProcesses { count: n as u64 });
    }
    n
}

pub(super) fn describe_exit(s: std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = s.signal() {
            return format!("killed by signal {sig}");
        }
    }
    match s.code() {
        Some(c) => format!("exit code {c}"),
        None => "unknown exit".into(),
    }
}

pub(super) async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
