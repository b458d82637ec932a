//! One shape per noun: `personas <noun> <verb> --json` prints exactly the JSON body
//! `POST /api/<operation>` answers for the same request, and the CLI answers the same whether a
//! runtime holds the data dir (its calls go over HTTP) or not (they run in process).
//!
//! Each [`Case`] names an operation, the CLI command that performs it, and the HTTP request
//! that command must amount to. For every case, in fresh data dirs (real `personas up`
//! processes, real store):
//! 1. runtime up: the setup commands, then the command with `--json`, and — for a read — the
//!    HTTP request on the same state: the two bodies are equal, byte for byte as JSON values;
//!    for a change, the same setup in a second data dir and the HTTP request there: equal once
//!    ids and times are masked ([`mask`]);
//! 2. no runtime: the same setup and command in a third data dir: equal to (1) once masked.
//!
//! [`every_operation_is_covered_or_exempt`] fails when an operation of the table has neither a
//! case nor a written reason to be exempt — so a new operation cannot skip the CLI silently.

#[path = "parity/harness.rs"]
mod harness;

#[path = "parity/cases_a.rs"]
mod cases_a;
#[path = "parity/cases_b.rs"]
mod cases_b;

use harness::{Case, mask};
use std::collections::BTreeSet;

/// Operations the CLI does not expose, each with the reason.
const EXEMPT: &[(&str, &str)] = &[
    (
        "get_canvas",
        "the team canvas layout is a UI preference; the CLI has no canvas",
    ),
    (
        "save_canvas",
        "the team canvas layout is a UI preference; the CLI has no canvas",
    ),
    (
        "get_dashboard",
        "the UI's home screen in one round trip; the CLI's lists show the same rows",
    ),
    (
        "retry_event",
        "only an event a runtime's dispatcher dead-lettered, failed or skipped can be retried, \
         and without a runtime no event reaches those states, so the two sides share no state \
         to compare; `personas event retry` is checked against a runtime in tests/bus",
    ),
    (
        "resolve_issue",
        "healing issues are raised only by failed runs a runtime classifies; `personas healing \
         resolve` prints the operation's answer like every other command here",
    ),
    (
        "get_settings",
        "the UI's settings page; `personas config` prints the configuration this process \
         resolves (defaults, config.toml, PERSONAS_* variables) locally — see docs/architecture.md",
    ),
    (
        "update_settings",
        "the UI's settings page; from the CLI, config.toml is edited by hand",
    ),
    (
        "list_templates",
        "the UI's template gallery; the CLI creates personas from flags or from a persona file",
    ),
    (
        "create_from_template",
        "the UI's template gallery; the CLI creates personas from flags or from a persona file",
    ),
    (
        "resume_persona",
        "`personas persona resume` calls it, but it answers only for a persona its circuit breaker \
         paused, which needs failing runs this table's data dirs do not script; tests/review \
         checks the CLI's answer for a persona that is not paused",
    ),
    (
        "decide_review",
        "`personas review approve|reject` calls it, but a pending review needs a run paused by a \
         scripted Messages API turn, which this table's data dirs do not script; tests/review \
         decides reviews through the CLI with and without a runtime",
    ),
    (
        "cloud_connect",
        "`personas cloud connect` calls it, but it answers only after a real orchestrator accepted \
         the token, which this table's data dirs do not start; tests/cli/cloud.rs checks the \
         refusals (bad URL, unreachable) and tests/cloud.rs the whole path against a CloudStack",
    ),
    (
        "cloud_status",
        "`personas cloud status --json` prints its answer; its connected side needs a real \
         orchestrator (tests/cloud.rs), its disconnected side is checked in tests/cli/cloud.rs",
    ),
    (
        "cloud_disconnect",
        "`personas cloud disconnect --json` prints its answer; checked with and without a \
         connection in tests/cli/cloud.rs and tests/cloud.rs",
    ),
    (
        "push_persona",
        "`personas persona push` calls it; it needs a real orchestrator (tests/cloud.rs)",
    ),
    (
        "cloud_execute",
        "`personas run --cloud` calls it; it needs a real orchestrator and worker (tests/cloud.rs)",
    ),
    (
        "list_cloud_executions",
        "`personas execution list --cloud --json` prints its answer; it needs a real \
         orchestrator (tests/cloud.rs)",
    ),
];

fn all_cases() -> Vec<Case> {
    let mut cases = cases_a::cases();
    cases.extend(cases_b::cases());
    cases
}

#[test]
fn every_operation_is_covered_or_exempt() {
    let covered: BTreeSet<&str> = all_cases().iter().map(|c| c.op).collect();
    let exempt: BTreeSet<&str> = EXEMPT.iter().map(|(op, _)| *op).collect();
    let mut missing = Vec::new();
    for op in personas_api::OPERATIONS {
        assert!(
            !(covered.contains(op.name) && exempt.contains(op.name)),
            "{} is both covered and exempt",
            op.name
        );
        if !covered.contains(op.name) && !exempt.contains(op.name) {
            missing.push(op.name);
        }
    }
    assert!(
        missing.is_empty(),
        "operations with neither a CLI case nor an exemption: {missing:?}"
    );
    let known: BTreeSet<&str> = personas_api::OPERATIONS.iter().map(|o| o.name).collect();
    for op in covered.iter().chain(exempt.iter()) {
        assert!(known.contains(op), "{op} is not an operation of the table");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_json_is_the_http_body_with_and_without_a_runtime() {
    let cases = all_cases();
    assert!(!cases.is_empty());
    let mut failures = Vec::new();
    for case in &cases {
        if let Err(e) = harness::check(case).await {
            failures.push(format!("{} ({:?}): {e}", case.op, case.argv));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn masking_hides_ids_and_times_only() {
    let v = serde_json::json!({
        "id": "0193a5c2-7d4e-7cc1-9a3b-3f1d2e4c5b6a",
        "persona_id": "0193a5c2-7d4e-7cc1-9a3b-3f1d2e4c5b6b",
        "created_at": "2026-12-03T10:00:00Z",
        "updated_at": 1764755000000_i64,
        "name": "Greeter",
        "nested": [{"execution_id": "abc", "count": 3}],
    });
    let m = mask(&v);
    assert_eq!(m["id"], "<id>");
    assert_eq!(m["persona_id"], "<id>");
    assert_eq!(m["created_at"], "<time>");
    assert_eq!(m["updated_at"], "<time>");
    assert_eq!(m["name"], "Greeter");
    assert_eq!(m["nested"][0]["execution_id"], "<id>");
    assert_eq!(m["nested"][0]["count"], 3);
}
