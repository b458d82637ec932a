//! Request and response types of `get_metrics`: the engine's counters (named internal events)
//! and gauges, as the series a Prometheus scrape of `GET /metrics` shows.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use ts_rs::TS;

/// Whether a series only goes up (since the runtime started) or is a value now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    Counter,
    Gauge,
}

/// One series: a `personas_`-prefixed name (counters end `_total`), its labels and value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct MetricSeries {
    pub name: String,
    pub help: String,
    pub kind: MetricKind,
    /// Label values come from closed sets (execution statuses, trigger types).
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Every series of the runtime, counters first (in a stable order), then gauges.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct Metrics {
    pub series: Vec<MetricSeries>,
}
