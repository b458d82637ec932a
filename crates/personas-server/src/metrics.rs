//! `GET /metrics`: the `get_metrics` operation rendered in the Prometheus text exposition
//! format 0.0.4 (`# HELP`, `# TYPE`, one sample line per series), behind the API token like
//! every `/api` route.

use personas_api::ops::{MetricKind, Metrics};
use std::fmt::Write;

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders every series; series of one name (one per label value) share their HELP and TYPE.
pub fn render(metrics: &Metrics) -> String {
    let mut out = String::new();
    let mut last_name: Option<&str> = None;
    for s in &metrics.series {
        if last_name != Some(s.name.as_str()) {
            let kind = match s.kind {
                MetricKind::Counter => "counter",
                MetricKind::Gauge => "gauge",
            };
            let _ = writeln!(out, "# HELP {} {}", s.name, escape_help(&s.help));
            let _ = writeln!(out, "# TYPE {} {kind}", s.name);
            last_name = Some(s.name.as_str());
        }
        out.push_str(&s.name);
        if !s.labels.is_empty() {
            let labels: Vec<String> = s
                .labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                .collect();
            let _ = write!(out, "{{{}}}", labels.join(","));
        }
        let _ = writeln!(out, " {}", s.value);
    }
    out
}

/// HELP text escapes backslash and newline.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Label values also escape the double quote.
fn escape_label(text: &str) -> String {
    escape_help(text).replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use personas_api::ops::MetricSeries;
    use std::collections::BTreeMap;

    #[test]
    fn renders_help_type_and_labelled_samples_once_per_family() {
        let series = |labels: &[(&str, &str)], value| MetricSeries {
            name: "personas_executions_finished_total".into(),
            help: "Ended \"runs\"\nby status.".into(),
            kind: MetricKind::Counter,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            value,
        };
        let text = render(&Metrics {
            series: vec![
                series(&[("status", "completed")], 3.0),
                series(&[("status", "a\"b")], 0.0),
            ],
        });
        assert_eq!(
            text,
            "# HELP personas_executions_finished_total Ended \"runs\"\\nby status.\n\
             # TYPE personas_executions_finished_total counter\n\
             personas_executions_finished_total{status=\"completed\"} 3\n\
             personas_executions_finished_total{status=\"a\\\"b\"} 0\n"
        );
    }
}
