//! Parity cases for the persona, run, execution, message, memory, review, stats and system
//! commands (see `tests/parity.rs`).

use super::harness::Case;
use chrono::Offset;
use serde_json::{Value, json};

const GREETER: &[&str] = &[
    "persona", "create", "--name", "Greeter", "--prompt", "Say hi",
];
/// A finished run of Greeter (its execution's id is `$id` in the case after it).
const RUN_DONE: &[&str] = &["run", "Greeter", "--follow", "--json"];
const MEMORY: &[&str] = &[
    "memory",
    "add",
    "Greeter",
    "--title",
    "Tone",
    "--content",
    "Friendly",
    "--json",
];

/// A persona file to import, written once per test process.
fn import_file() -> (String, String) {
    let text = "format: personas/v1\nname: Imported\ninstructions: Summarise the day\n".to_string();
    let path = std::env::temp_dir().join(format!("parity-import-{}.yaml", std::process::id()));
    std::fs::write(&path, &text).expect("write the import file");
    (path.to_string_lossy().into_owned(), text)
}

fn spec(name: &str, instructions: &str, extra: Value) -> Value {
    let mut s = json!({"name": name, "instructions": instructions});
    if let (Some(s), Value::Object(extra)) = (s.as_object_mut(), extra) {
        s.extend(extra);
    }
    s
}

pub fn cases() -> Vec<Case> {
    let (import_path, import_text) = import_file();
    let tz = chrono::Local::now().offset().fix().local_minus_utc() / 60;
    vec![
        // ---- personas ----
        Case::read("list_personas", &["persona", "list"], json!({})).after(&[GREETER]),
        Case::read("list_permission_templates", &["persona", "templates"], json!({})),
        // The counters of whichever engine answers: the runtime's, or a fresh one in process.
        Case::read("get_metrics", &["metrics"], json!({})).volatile(&["value"]),
        Case::read("get_persona", &["persona", "show", "greeter"], json!({"persona": "greeter"}))
            .after(&[GREETER]),
        Case::change(
            "create_persona",
            &["persona", "create", "--name", "Greeter", "--prompt", "Say hi", "--model", "sonnet",
              "--allow-tool", "Read"],
            json!({"spec": spec("Greeter", "Say hi",
                json!({"model": "sonnet", "permissions": {"allow": ["Read"]}}))}),
        ),
        Case::change(
            "update_persona",
            &["persona", "update", "Greeter", "--prompt", "Say hello", "--max-turns", "3"],
            json!({"persona": "Greeter", "spec": spec("Greeter", "Say hello", json!({"max_turns": 3}))}),
        )
        .after(&[GREETER]),
        Case::change("delete_persona", &["persona", "delete", "Greeter"], json!({"persona": "Greeter"}))
            .after(&[GREETER]),
        Case::read("list_prompt_versions", &["persona", "versions", "Greeter"],
            json!({"persona": "Greeter"}))
            .after(&[GREETER, &["persona", "update", "Greeter", "--prompt", "Say hello"]]),
        Case::read("get_persona_links", &["persona", "links", "Greeter"], json!({"persona": "Greeter"}))
            .after(&[GREETER]),
        Case::read("export_persona", &["persona", "export", "Greeter"],
            json!({"persona": "Greeter", "syntax": "yaml"}))
            .after(&[GREETER]),
        Case::change(
            "import_persona",
            &["persona", "import", import_path.as_str()],
            json!({"text": import_text, "replace": false, "grant": false}),
        ),
        Case::read("get_policy", &["persona", "policy", "Greeter"], json!({"persona": "Greeter"}))
            .after(&[GREETER]),
        Case::change(
            "update_policy",
            &["persona", "policy", "Greeter", "--daily-budget-usd", "5", "--on-reject", "end"],
            json!({"persona": "Greeter", "policy": {
                "review_timeout_secs": null, "review_timeout_action": null, "on_reject": "end",
                "daily_budget_usd": 5.0, "monthly_budget_usd": null, "failure_threshold": null,
                "max_retries": null}}),
        )
        .after(&[GREETER]),
        // ---- runs and executions ----
        Case::change("run_persona", &["run", "Greeter", "--input", r#"{"day":"monday"}"#],
            json!({"persona": "Greeter", "input": {"day": "monday"}}))
            .after(&[GREETER]),
        Case::read("list_executions", &["execution", "list", "--persona", "Greeter", "--limit", "5"],
            json!({"persona": "Greeter", "limit": 5}))
            .after(&[GREETER, RUN_DONE])
            .volatile(&["duration_api_ms"]),
        Case::read("get_execution", &["execution", "show", "$id"], json!({"id": "$id"}))
            .after(&[GREETER, RUN_DONE])
            .volatile(&["duration_api_ms"]),
        Case::read("execution_output", &["execution", "logs", "$id"], json!({"id": "$id"}))
            .after(&[GREETER, RUN_DONE])
            .volatile(&["text", "cwd", "duration_ms", "duration_api_ms", "cost_usd"]),
        // With a runtime the queued run may have started by the time it is cancelled: the
        // outcome (cancelled now, or cancel requested) is a race, the shape is not.
        Case::change("cancel_execution", &["execution", "cancel", "$id"], json!({"id": "$id"}))
            .after(&[GREETER, &["run", "Greeter", "--json"]])
            .volatile(&["status", "error_class", "error_message", "cancel_requested", "model",
                "num_turns", "tokens", "cost_usd", "output_lines", "result_text", "session_id",
                "started_at", "finished_at", "heartbeat_at"]),
        // ---- inbox, memories, reviews, stats, system ----
        Case::read("list_messages", &["message", "list"], json!({"limit": 50})),
        Case::change("mark_messages_read", &["message", "read"], json!({})),
        Case::read("list_memories", &["memory", "list"], json!({"limit": 100}))
            .after(&[GREETER, MEMORY]),
        Case::change("add_memory", &["memory", "add", "Greeter", "--title", "Tone", "--content", "Friendly"],
            json!({"persona": "Greeter", "title": "Tone", "content": "Friendly",
                "category": "general", "importance": 3}))
            .after(&[GREETER]),
        Case::change("update_memory", &["memory", "edit", "$id", "--importance", "5"],
            json!({"id": "$id", "importance": 5}))
            .after(&[GREETER, MEMORY]),
        Case::change("delete_memory", &["memory", "delete", "$id"], json!({"id": "$id"}))
            .after(&[GREETER, MEMORY]),
        Case::read("list_reviews", &["review", "list", "--status", "all"], json!({})),
        Case::read("get_stats", &["stats", "--days", "3"], json!({"days": 3, "tz_offset_minutes": tz}))
            .after(&[GREETER, RUN_DONE])
            .volatile(&["duration_p50_ms", "duration_p95_ms"]),
        // Which process answers (the runtime, or this one) is in the runtime check's detail, and
        // a runtime makes the data dir private when it starts (the permissions check may warn
        // before): the checks made, in order, are what must agree.
        Case::read("system_check", &["doctor"], json!({})).volatile(&["detail", "status", "ok"]),
    ]
}
