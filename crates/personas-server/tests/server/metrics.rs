//! `GET /metrics` and `get_metrics`: Prometheus text a maintained parser reads, counters that
//! move when a real run (the real Claude CLI against the scripted API) happens, and the token.

use super::{Server, WAIT, read_until};
use prometheus_parse::{Scrape, Value as Sample};
use serde_json::{Value, json};

/// `get_metrics` answers every series; called from the every-operation round trip.
pub async fn round_trips(s: &Server) {
    let m = s.ok("get_metrics", json!({})).await;
    let series = m["series"].as_array().expect("series");
    assert!(
        series.iter().all(|x| x["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("personas_"))),
        "{m}"
    );
    assert!(
        series
            .iter()
            .any(|x| x["name"] == "personas_executions_started_total"
                && x["kind"] == "counter"
                && x["value"].as_f64() >= Some(1.0))
    );
    assert!(
        series
            .iter()
            .any(|x| x["name"] == "personas_writer_queue_depth" && x["kind"] == "gauge")
    );
}

/// Scrapes `/metrics` with `token` (none: no header); returns the status and body.
async fn scrape_raw(s: &Server, token: Option<&str>) -> (u16, Option<String>, String) {
    let mut req = s.http.get(format!("{}/metrics", s.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = tokio::time::timeout(WAIT, req.send())
        .await
        .expect("response in time")
        .expect("send");
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, content_type, resp.text().await.expect("body"))
}

/// Scrapes and parses `/metrics`, checking every counter is typed, documented and `_total`.
async fn scrape(s: &Server) -> Scrape {
    let (status, content_type, body) = scrape_raw(s, Some(&s.token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        content_type.as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let parsed =
        Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text format");
    assert!(!parsed.samples.is_empty(), "{body}");
    for sample in &parsed.samples {
        assert!(sample.metric.starts_with("personas_"), "{}", sample.metric);
        assert!(
            parsed.docs.contains_key(&sample.metric),
            "no HELP for {}",
            sample.metric
        );
        match &sample.value {
            Sample::Counter(_) => assert!(sample.metric.ends_with("_total"), "{}", sample.metric),
            Sample::Gauge(_) => assert!(!sample.metric.ends_with("_total"), "{}", sample.metric),
            other => panic!("{} is neither counter nor gauge: {other:?}", sample.metric),
        }
    }
    parsed
}

/// The value of one series (`label`: its one label and value).
fn value(scrape: &Scrape, name: &str, label: Option<(&str, &str)>) -> f64 {
    let found = scrape.samples.iter().find(|s| {
        s.metric == name
            && match label {
                Some((k, v)) => s.labels.get(k) == Some(v),
                None => true,
            }
    });
    match found.map(|s| &s.value) {
        Some(Sample::Counter(v) | Sample::Gauge(v)) => *v,
        other => panic!("no series {name} {label:?}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text_and_count_real_runs() {
    let s = Server::start().await;
    let mut ws = s.socket("").await;

    for (token, why) in [(None, "no token"), (Some("wrong"), "a wrong token")] {
        let (status, _, body) = scrape_raw(&s, token).await;
        assert_eq!(status, 401, "{why}: {body}");
        let err: Value = serde_json::from_str(&body).expect("JSON error");
        assert_eq!(err["code"], "unauthorized", "{why}");
    }

    let before = scrape(&s).await;
    let key = "SCRIPT-metrics-run";
    s.api.script(key, vec![super::Step::text("Counted.")]);
    s.ok(
        "create_persona",
        json!({"spec": {"name": "Counter", "instructions": format!("Follow script {key}.")}}),
    )
    .await;
    for _ in 0..2 {
        let exec = s.ok("run_persona", json!({"persona": "Counter"})).await;
        let id = exec["id"].as_str().expect("id").to_string();
        read_until(&mut ws, |f| {
            f["event"]["type"] == "execution"
                && f["event"]["execution"]["id"] == id.as_str()
                && f["event"]["execution"]["status"] == "completed"
        })
        .await;
    }
    let after = scrape(&s).await;

    let moved = |name: &str, label: Option<(&str, &str)>| {
        value(&after, name, label) - value(&before, name, label)
    };
    assert_eq!(moved("personas_executions_queued_total", None), 2.0);
    assert_eq!(moved("personas_executions_started_total", None), 2.0);
    assert_eq!(
        moved(
            "personas_executions_finished_total",
            Some(("status", "completed"))
        ),
        2.0
    );
    assert_eq!(
        moved(
            "personas_executions_finished_total",
            Some(("status", "failed"))
        ),
        0.0
    );
    let page = s.ok("list_executions", json!({"persona": "Counter"})).await;
    let stored: f64 = page["executions"]
        .as_array()
        .expect("executions")
        .iter()
        .filter_map(|e| e["output_lines"].as_f64())
        .sum();
    assert!(stored > 0.0);
    assert_eq!(
        moved("personas_output_lines_stored_total", None),
        stored,
        "every stored line is counted once"
    );
    assert!(moved("personas_writer_batches_committed_total", None) >= 1.0);
    assert_eq!(value(&after, "personas_executions_running", None), 0.0);
    assert_eq!(value(&after, "personas_executions_queued", None), 0.0);
    assert!(
        value(&after, "personas_event_subscribers", None) >= 1.0,
        "the WebSocket hub listens"
    );
}
