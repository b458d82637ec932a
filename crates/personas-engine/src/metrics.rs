//! Named internal events that both log and count, and the registry that counts them.
//!
//! Every noteworthy thing the engine does is one [`Event`] variant, recorded through
//! [`Metrics::record`]: that one function writes the tracing line (with the event's name as its
//! `event` field) and moves the counter behind it, so the log and the numbers cannot disagree.
//! Labels are closed sets taken from enums (an execution status, a trigger type), never free
//! strings, so the number of series is fixed at compile time.
//!
//! The registry is plain atomics owned by the engine (through its [`crate::events::EventBus`]);
//! there is no global state, and two engines in one process count separately. Hosts read it
//! with [`Metrics::counters`] (the `get_metrics` operation, `GET /metrics`).

use personas_core::ExecutionStatus;
use personas_core::trigger::TriggerType;
use std::sync::atomic::{AtomicU64, Ordering};

/// One counted series family: its name (`personas_`-prefixed, ending `_total`), its help text,
/// and its one label with the closed set of values it can take (if any).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    ExecutionsQueued,
    ExecutionsStarted,
    ExecutionsFinished,
    OutputLinesStored,
    OutputLinesLost,
    WriterBatchesCommitted,
    EventsPublished,
    EventsDelivered,
    EventsFailed,
    EventsDeadLettered,
    DeliveriesSent,
    DeliveriesFailed,
    TriggersFired,
    ReviewsRequested,
    ReviewsTimedOut,
    ProcessesReaped,
    ExecutionsRecovered,
}

impl Counter {
    pub const ALL: &'static [Counter] = &[
        Counter::ExecutionsQueued,
        Counter::ExecutionsStarted,
        Counter::ExecutionsFinished,
        Counter::OutputLinesStored,
        Counter::OutputLinesLost,
        Counter::WriterBatchesCommitted,
        Counter::EventsPublished,
        Counter::EventsDelivered,
        Counter::EventsFailed,
        Counter::EventsDeadLettered,
        Counter::DeliveriesSent,
        Counter::DeliveriesFailed,
        Counter::TriggersFired,
        Counter::ReviewsRequested,
        Counter::ReviewsTimedOut,
        Counter::ProcessesReaped,
        Counter::ExecutionsRecovered,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Counter::ExecutionsQueued => "personas_executions_queued_total",
            Counter::ExecutionsStarted => "personas_executions_started_total",
            Counter::ExecutionsFinished => "personas_executions_finished_total",
            Counter::OutputLinesStored => "personas_output_lines_stored_total",
            Counter::OutputLinesLost => "personas_output_lines_lost_total",
            Counter::WriterBatchesCommitted => "personas_writer_batches_committed_total",
            Counter::EventsPublished => "personas_events_published_total",
            Counter::EventsDelivered => "personas_events_delivered_total",
            Counter::EventsFailed => "personas_events_failed_total",
            Counter::EventsDeadLettered => "personas_events_dead_lettered_total",
            Counter::DeliveriesSent => "personas_deliveries_sent_total",
            Counter::DeliveriesFailed => "personas_deliveries_failed_total",
            Counter::TriggersFired => "personas_triggers_fired_total",
            Counter::ReviewsRequested => "personas_reviews_requested_total",
            Counter::ReviewsTimedOut => "personas_reviews_timed_out_total",
            Counter::ProcessesReaped => "personas_processes_reaped_total",
            Counter::ExecutionsRecovered => "personas_executions_recovered_total",
        }
    }

    pub fn help(self) -> &'static str {
        match self {
            Counter::ExecutionsQueued => "Executions queued (manual, trigger, event, retry).",
            Counter::ExecutionsStarted => "Executions a runner started.",
            Counter::ExecutionsFinished => "Executions that reached a terminal status, by status.",
            Counter::OutputLinesStored => "Output lines committed to the store and broadcast.",
            Counter::OutputLinesLost => "Output lines the writer gave up on after its retries.",
            Counter::WriterBatchesCommitted => "Output transactions the writer committed.",
            Counter::EventsPublished => "Bus events stored.",
            Counter::EventsDelivered => "Bus events the dispatcher turned into executions.",
            Counter::EventsFailed => "Bus event deliveries that failed and will be retried.",
            Counter::EventsDeadLettered => "Bus events that ran out of attempts.",
            Counter::DeliveriesSent => "Notifications a channel accepted.",
            Counter::DeliveriesFailed => "Notification attempts that failed.",
            Counter::TriggersFired => "Triggers that fired, by trigger type.",
            Counter::ReviewsRequested => "Runs that paused for a review.",
            Counter::ReviewsTimedOut => "Reviews decided by their deadline.",
            Counter::ProcessesReaped => "Processes runs left behind that the reaper killed.",
            Counter::ExecutionsRecovered => {
                "Executions of a vanished runtime marked failed/interrupted."
            }
        }
    }

    /// The counter's label and the closed set of values it takes; `None`: no label.
    pub fn label(self) -> Option<(&'static str, Vec<&'static str>)> {
        match self {
            Counter::ExecutionsFinished => Some((
                "status",
                ExecutionStatus::ALL
                    .iter()
                    .filter(|s| s.is_terminal())
                    .map(|s| s.as_str())
                    .collect(),
            )),
            Counter::TriggersFired => Some((
                "type",
                TriggerType::ALL.iter().map(|t| t.as_str()).collect(),
            )),
            _ => None,
        }
    }
}

/// A named internal event: what happened, with the closed label value it is counted under.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    ExecutionQueued {
        execution: &'a str,
    },
    ExecutionStarted {
        execution: &'a str,
    },
    ExecutionFinished {
        execution: &'a str,
        status: ExecutionStatus,
    },
    /// A writer transaction committed these lines.
    WriterBatchCommitted {
        lines: u64,
    },
    /// The writer gave up on a batch.
    OutputLinesLost {
        lines: u64,
    },
    EventPublished {
        event: &'a str,
    },
    EventDelivered {
        event: &'a str,
        executions: u64,
    },
    EventFailed {
        event: &'a str,
    },
    EventDeadLettered {
        event: &'a str,
    },
    DeliverySent {
        delivery: &'a str,
    },
    DeliveryFailed {
        delivery: &'a str,
    },
    TriggerFired {
        trigger: &'a str,
        kind: TriggerType,
    },
    ReviewRequested {
        review: &'a str,
    },
    ReviewTimedOut {
        review: &'a str,
    },
    ReapedProcesses {
        count: u64,
    },
    ExecutionsRecovered {
        count: u64,
    },
}

/// The engine's counters: one atomic per (counter, label value).
#[derive(Debug)]
pub struct Metrics {
    /// Indexed by the position in [`Counter::ALL`], then by the label value's position.
    cells: Vec<Vec<AtomicU64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// One counter series' current value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterValue {
    pub counter: Counter,
    /// `(label, value)` when the counter has a label.
    pub label: Option<(&'static str, &'static str)>,
    pub value: u64,
}

impl Metrics {
    pub fn new() -> Self {
        let cells = Counter::ALL
            .iter()
            .map(|c| {
                let n = c.label().map_or(1, |(_, values)| values.len());
                (0..n).map(|_| AtomicU64::new(0)).collect()
            })
            .collect();
        Metrics { cells }
    }

    /// Logs `event` and counts it.
    pub fn record(&self, event: Event<'_>) {
        match event {
            Event::ExecutionQueued { execution } => {
                tracing::debug!(event = "execution_queued", execution, "execution queued");
                self.add(Counter::ExecutionsQueued, 0, 1);
            }
            Event::ExecutionStarted { execution } => {
                tracing::info!(event = "execution_started", execution, "execution started");
                self.add(Counter::ExecutionsStarted, 0, 1);
            }
            Event::ExecutionFinished { execution, status } => {
                tracing::info!(
                    event = "execution_finished",
                    execution,
                    status = status.as_str(),
                    "execution ended"
                );
                self.add_labelled(Counter::ExecutionsFinished, status.as_str(), 1);
            }
            Event::WriterBatchCommitted { lines } => {
                tracing::trace!(
                    event = "writer_batch_committed",
                    lines,
                    "output batch committed"
                );
                self.add(Counter::WriterBatchesCommitted, 0, 1);
                self.add(Counter::OutputLinesStored, 0, lines);
            }
            Event::OutputLinesLost { lines } => {
                tracing::error!(
                    event = "output_lines_lost",
                    lines,
                    "output lines could not be stored"
                );
                self.add(Counter::OutputLinesLost, 0, lines);
            }
            Event::EventPublished { event } => {
                tracing::debug!(
                    event = "event_published",
                    bus_event = event,
                    "bus event stored"
                );
                self.add(Counter::EventsPublished, 0, 1);
            }
            Event::EventDelivered { event, executions } => {
                tracing::debug!(
                    event = "event_delivered",
                    bus_event = event,
                    executions,
                    "bus event delivered"
                );
                self.add(Counter::EventsDelivered, 0, 1);
            }
            Event::EventFailed { event } => {
                tracing::warn!(
                    event = "event_failed",
                    bus_event = event,
                    "bus event delivery failed; retried later"
                );
                self.add(Counter::EventsFailed, 0, 1);
            }
            Event::EventDeadLettered { event } => {
                tracing::warn!(
                    event = "event_dead_lettered",
                    bus_event = event,
                    "bus event ran out of attempts"
                );
                self.add(Counter::EventsDeadLettered, 0, 1);
            }
            Event::DeliverySent { delivery } => {
                tracing::debug!(event = "delivery_sent", delivery, "notification delivered");
                self.add(Counter::DeliveriesSent, 0, 1);
            }
            Event::DeliveryFailed { delivery } => {
                tracing::warn!(
                    event = "delivery_failed",
                    delivery,
                    "notification attempt failed"
                );
                self.add(Counter::DeliveriesFailed, 0, 1);
            }
            Event::TriggerFired { trigger, kind } => {
                tracing::info!(
                    event = "trigger_fired",
                    trigger,
                    kind = kind.as_str(),
                    "trigger fired"
                );
                self.add_labelled(Counter::TriggersFired, kind.as_str(), 1);
            }
            Event::ReviewRequested { review } => {
                tracing::info!(
                    event = "review_requested",
                    review,
                    "run paused for a review"
                );
                self.add(Counter::ReviewsRequested, 0, 1);
            }
            Event::ReviewTimedOut { review } => {
                tracing::info!(
                    event = "review_timed_out",
                    review,
                    "review decided by its deadline"
                );
                self.add(Counter::ReviewsTimedOut, 0, 1);
            }
            Event::ReapedProcesses { count } => {
                tracing::info!(
                    event = "reaped_process",
                    count,
                    "killed processes a run left behind"
                );
                self.add(Counter::ProcessesReaped, 0, count);
            }
            Event::ExecutionsRecovered { count } => {
                tracing::warn!(
                    event = "executions_recovered",
                    count,
                    "marked executions of a vanished runtime as interrupted"
                );
                self.add(Counter::ExecutionsRecovered, 0, count);
            }
        }
    }

    fn add(&self, counter: Counter, label_index: usize, n: u64) {
        if let Some(cell) = self.cells[counter as usize].get(label_index) {
            cell.fetch_add(n, Ordering::Relaxed);
        }
    }

    fn add_labelled(&self, counter: Counter, value: &str, n: u64) {
        let index = counter
            .label()
            .and_then(|(_, values)| values.iter().position(|v| *v == value));
        // A value outside the closed set (a non-terminal status) is not a series of this counter.
        if let Some(i) = index {
            self.add(counter, i, n);
        }
    }

    /// The current value of one series (0 for a label value outside its set).
    pub fn get(&self, counter: Counter, label_value: Option<&str>) -> u64 {
        let index = match (counter.label(), label_value) {
            (Some((_, values)), Some(v)) => values.iter().position(|x| *x == v),
            (None, None) => Some(0),
            _ => None,
        };
        index
            .and_then(|i| self.cells[counter as usize].get(i))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Every series, in [`Counter::ALL`] order, label values in their enum's order.
    pub fn counters(&self) -> Vec<CounterValue> {
        let mut out = Vec::new();
        for &counter in Counter::ALL {
            let cells = &self.cells[counter as usize];
            match counter.label() {
                Some((label, values)) => {
                    for (value, cell) in values.into_iter().zip(cells) {
                        out.push(CounterValue {
                            counter,
                            label: Some((label, value)),
                            value: cell.load(Ordering::Relaxed),
                        });
                    }
                }
                None => out.push(CounterValue {
                    counter,
                    label: None,
                    value: cells[0].load(Ordering::Relaxed),
                }),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_move_their_counters_and_labels_stay_closed() {
        let m = Metrics::new();
        m.record(Event::ExecutionFinished {
            execution: "e1",
            status: ExecutionStatus::Completed,
        });
        m.record(Event::ExecutionFinished {
            execution: "e2",
            status: ExecutionStatus::Running,
        });
        m.record(Event::WriterBatchCommitted { lines: 40 });
        m.record(Event::WriterBatchCommitted { lines: 2 });
        assert_eq!(m.get(Counter::ExecutionsFinished, Some("completed")), 1);
        assert_eq!(
            m.get(Counter::ExecutionsFinished, Some("running")),
            0,
            "not a terminal status: no series"
        );
        assert_eq!(m.get(Counter::OutputLinesStored, None), 42);
        assert_eq!(m.get(Counter::WriterBatchesCommitted, None), 2);
        let all = m.counters();
        let finished: Vec<_> = all
            .iter()
            .filter(|c| c.counter == Counter::ExecutionsFinished)
            .collect();
        assert_eq!(finished.len(), 5, "one series per terminal status");
        assert!(
            all.iter().all(|c| c.counter.name().starts_with("personas_")
                && c.counter.name().ends_with("_total"))
        );
    }
}
