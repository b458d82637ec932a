//! `get_metrics`: the engine's counters and gauges as series, plus the store's count of
//! queued executions (shared by every process on the data dir, so read at scrape time).

use super::Api;
use crate::error::ApiError;
use crate::ops::{Empty, MetricKind, MetricSeries, Metrics};
use personas_core::ExecutionStatus;
use std::collections::BTreeMap;

impl Api {
    pub async fn get_metrics(&self, _: Empty) -> Result<Metrics, ApiError> {
        let engine = self.engine();
        let mut series: Vec<MetricSeries> = engine
            .metrics()
            .counters()
            .into_iter()
            .map(|c| MetricSeries {
                name: c.counter.name().into(),
                help: c.counter.help().into(),
                kind: MetricKind::Counter,
                labels: c
                    .label
                    .map(|(k, v)| BTreeMap::from([(k.to_string(), v.to_string())]))
                    .unwrap_or_default(),
                value: c.value as f64,
            })
            .collect();
        let queued = self
            .store(|s| s.executions().count(ExecutionStatus::Queued))
            .await?;
        let g = engine.gauges();
        for (name, help, value) in [
            (
                "personas_executions_running",
                "Executions this runtime is running now.",
                g.running_executions,
            ),
            (
                "personas_executions_queued",
                "Executions waiting in the queue (every process on this data dir).",
                queued,
            ),
            (
                "personas_writer_queue_depth",
                "Output lines waiting for the writer.",
                g.writer_queue_depth,
            ),
            (
                "personas_event_subscribers",
                "Subscribers of the runtime's event channel (UI streams, internal listeners).",
                g.subscribers,
            ),
        ] {
            series.push(MetricSeries {
                name: name.into(),
                help: help.into(),
                kind: MetricKind::Gauge,
                labels: BTreeMap::new(),
                value: value as f64,
            });
        }
        Ok(Metrics { series })
    }
}
