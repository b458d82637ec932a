//! The run's output sink: numbers each line, applies the run's redactor, enforces the total
//! output cap (essential lines are always kept), and hands lines to the writer.

use super::{Runtime, blocking};
use personas_core::redact::Redactor;
use personas_core::{Execution, LineKind};
use personas_store::NewLine;
use std::sync::Arc;

/// Numbers, caps, redacts and hands lines of one execution to the writer.
pub(super) struct Sink<'r> {
    pub(super) rt: &'r Runtime,
    execution_id: personas_core::ExecutionId,
    seq: i64,
    stored_bytes: usize,
    truncated: bool,
    /// Every secret value of this run; applied to every line before it is stored or broadcast.
    pub(super) redactor: Arc<Redactor>,
    /// The host's copy of every stored line ([`super::RunOptions::line_tap`]).
    pub(super) tap: Option<super::LineTap>,
}

impl<'r> Sink<'r> {
    pub(super) fn new(rt: &'r Runtime, execution: &Execution) -> Self {
        Self {
            rt,
            execution_id: execution.id.clone(),
            // A resumed execution continues its numbering.
            seq: execution.output_lines as i64,
            stored_bytes: 0,
            truncated: false,
            redactor: Arc::new(Redactor::none()),
            tap: None,
        }
    }

    /// Redacts `text` and stores it as the run's next line.
    pub(super) async fn emit(&mut self, kind: LineKind, mut text: String) {
        self.redactor.redact_string(&mut text);
        self.emit_redacted(kind, text).await;
    }

    /// Stores `text`, which already passed this sink's redactor (the CLI's stdout lines are
    /// redacted before they are parsed; a second pass over every line would be wasted).
    pub(super) async fn emit_redacted(&mut self, kind: LineKind, text: String) {
        // Results, protocol, warnings and engine notes are always kept: they explain the run.
        let essential = matches!(
            kind,
            LineKind::Result | LineKind::Protocol | LineKind::Warning | LineKind::Engine
        );
        if !essential && self.stored_bytes + text.len() > self.rt.config.output_total_cap_bytes {
            if !self.truncated {
                self.truncated = true;
                let store = self.rt.store.clone();
                let id = self.execution_id.clone();
                if let Err(e) = blocking(move || store.executions().set_output_truncated(&id)).await
                {
                    tracing::warn!(error = %e, "cannot mark output truncated");
                }
                let note = format!(
                    "output truncated: more than {} bytes; later lines are not stored",
                    self.rt.config.output_total_cap_bytes
                );
                Box::pin(self.emit(LineKind::Engine, note)).await;
            }
            return;
        }
        self.stored_bytes += text.len();
        self.seq += 1;
        let line = NewLine {
            execution_id: self.execution_id.clone(),
            seq: self.seq,
            kind,
            text,
            at_ms: chrono::Utc::now().timestamp_millis(),
        };
        if let Some(tap) = &self.tap {
            tap(&line);
        }
        self.rt.writer.line(line).await;
    }
}
