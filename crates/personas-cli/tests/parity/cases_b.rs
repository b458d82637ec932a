//! Parity cases for the trigger, event, credential, vault, tool, channel, healing and data
//! commands (see `tests/parity.rs`).

use super::harness::Case;
use serde_json::json;

const PERSONA: &[&str] = &[
    "persona", "create", "--name", "Greeter", "--prompt", "Say hi",
];
/// A credential type without a health check: `credential test` answers `unsupported` without
/// reaching any service.
const CREDENTIAL: &[&str] = &[
    "credential",
    "add",
    "hook",
    "--type",
    "slack_webhook",
    "--field",
    "url=https://hooks.slack.com/services/T0/B0/parity",
];
/// A schedule whose next fires are the same whenever the test runs within a year.
const CRON: &[&str] = &[
    "trigger",
    "add",
    "Greeter",
    "--cron",
    "0 9 1 1 *",
    "--tz",
    "UTC",
];
const WEBHOOK: &[&str] = &["trigger", "add", "Greeter", "--webhook"];
const TOOL: &[&str] = &[
    "tool",
    "add",
    "greet",
    "--description",
    "Says hello",
    "--command",
    "echo hello",
];
const CHANNEL: &[&str] = &[
    "channel", "add", "Greeter", "--name", "desk", "--type", "desktop",
];
/// An event nobody subscribes to: a runtime marks it skipped; without one it stays pending.
const EVENT: &[&str] = &[
    "event",
    "emit",
    "parity.checked",
    "--payload",
    r#"{"n": 1}"#,
];
/// What a runtime changes on an event after it is stored (dispatching it).
const DISPATCHED: &[&str] = &[
    "status",
    "attempts",
    "error",
    "processed_at",
    "next_attempt_at",
    "deliveries",
    "executions",
];
/// Where a webhook is called depends on the port the runtime serves on.
const WEBHOOK_VOLATILE: &[&str] = &["url", "secret"];

fn trigger_id(case: Case) -> Case {
    case.lookup("{trigger}", &["trigger", "list"], "/triggers/0/trigger/id")
}

fn triggers() -> Vec<Case> {
    vec![
        Case::read("list_triggers", &["trigger", "list"], json!({})).after(&[PERSONA, CRON]),
        Case::read(
            "list_triggers",
            &["trigger", "list", "--persona", "Greeter"],
            json!({"persona": "Greeter"}),
        )
        .after(&[PERSONA, CRON]),
        Case::change(
            "add_trigger",
            &["trigger", "add", "Greeter", "--event", "ticket.*"],
            json!({"persona": "Greeter", "trigger": {"kind": "event", "event": "ticket.*"}, "enabled": true}),
        )
        .after(&[PERSONA]),
        Case::change(
            "add_trigger",
            &["trigger", "add", "Greeter", "--webhook"],
            json!({"persona": "Greeter", "trigger": {"kind": "webhook", "github": false}, "enabled": true}),
        )
        .after(&[PERSONA])
        .volatile(WEBHOOK_VOLATILE),
        trigger_id(Case::read(
            "reveal_webhook_secret",
            &["trigger", "reveal", "{trigger}"],
            json!({"id": "{trigger}"}),
        ))
        .after(&[PERSONA, WEBHOOK])
        .volatile(WEBHOOK_VOLATILE),
        trigger_id(Case::change(
            "rotate_webhook_secret",
            &["trigger", "rotate", "{trigger}"],
            json!({"id": "{trigger}"}),
        ))
        .after(&[PERSONA, WEBHOOK])
        .volatile(WEBHOOK_VOLATILE),
        trigger_id(Case::change(
            "set_trigger_enabled",
            &["trigger", "disable", "{trigger}"],
            json!({"id": "{trigger}", "enabled": false}),
        ))
        .after(&[PERSONA, CRON]),
        trigger_id(Case::change(
            "remove_trigger",
            &["trigger", "remove", "{trigger}"],
            json!({"id": "{trigger}"}),
        ))
        .after(&[PERSONA, CRON]),
        trigger_id(Case::change(
            "fire_trigger",
            &["trigger", "fire", "{trigger}", "--payload", r#"{"a": 1}"#],
            json!({"id": "{trigger}", "payload": {"a": 1}}),
        ))
        .after(&[PERSONA, &["trigger", "add", "Greeter", "--manual"]]),
        Case::read(
            "preview_cron",
            &["trigger", "preview", "0 9 1 1 *", "--tz", "UTC", "--count", "3"],
            json!({"cron": "0 9 1 1 *", "tz": "UTC", "count": 3}),
        ),
    ]
}

fn events() -> Vec<Case> {
    vec![
        Case::change(
            "emit_event",
            EVENT,
            json!({"type": "parity.checked", "payload": {"n": 1}}),
        ),
        Case::read(
            "list_events",
            &["event", "list", "--type", "parity.checked", "--limit", "5"],
            json!({"type": "parity.checked", "limit": 5}),
        )
        .after(&[EVENT])
        .volatile(DISPATCHED),
        Case::read(
            "get_event",
            &["event", "show", "{event}"],
            json!({"id": "{event}"}),
        )
        .after(&[EVENT])
        .lookup("{event}", &["event", "list"], "/events/0/event/id")
        .volatile(DISPATCHED),
    ]
}

fn credentials() -> Vec<Case> {
    vec![
        Case::read("list_credential_types", &["credential", "types"], json!({})),
        Case::change(
            "create_credential",
            CREDENTIAL,
            json!({"name": "hook", "kind": "slack_webhook", "fields": {"url": "https://hooks.slack.com/services/T0/B0/parity"}}),
        ),
        Case::change(
            "update_credential",
            &["credential", "update", "hook", "--rename", "alerts"],
            json!({"credential": "hook", "name": "alerts"}),
        )
        .after(&[CREDENTIAL]),
        Case::read("list_credentials", &["credential", "list"], json!({})).after(&[CREDENTIAL]),
        Case::read(
            "get_credential",
            &["credential", "show", "hook"],
            json!({"credential": "hook"}),
        )
        .after(&[CREDENTIAL]),
        Case::change(
            "test_credential",
            &["credential", "test", "hook", "--timeout", "5"],
            json!({"credential": "hook", "timeout_secs": 5.0}),
        )
        .after(&[CREDENTIAL]),
        Case::change(
            "delete_credential",
            &["credential", "remove", "hook"],
            json!({"credential": "hook", "force": false}),
        )
        .after(&[CREDENTIAL]),
        Case::read("vault_status", &["vault", "status"], json!({})).after(&[CREDENTIAL]),
        Case::change("rotate_vault", &["vault", "rotate"], json!({})).after(&[CREDENTIAL]),
    ]
}

fn tools_and_channels() -> Vec<Case> {
    vec![
        Case::change(
            "create_tool",
            TOOL,
            json!({"name": "greet", "description": "Says hello", "call": {"kind": "command", "command": "echo hello"}}),
        ),
        Case::read("list_tools", &["tool", "list"], json!({})).after(&[TOOL]),
        Case::read(
            "get_tool",
            &["tool", "show", "greet"],
            json!({"tool": "greet"}),
        )
        .after(&[TOOL]),
        Case::change(
            "delete_tool",
            &["tool", "remove", "greet"],
            json!({"tool": "greet"}),
        )
        .after(&[TOOL]),
        Case::change(
            "add_channel",
            CHANNEL,
            json!({"persona": "Greeter", "name": "desk", "kind": "desktop", "config": {}}),
        )
        .after(&[PERSONA]),
        Case::read(
            "list_channels",
            &["channel", "list", "--persona", "Greeter"],
            json!({"persona": "Greeter"}),
        )
        .after(&[PERSONA, CHANNEL]),
        Case::change(
            "test_channel",
            &["channel", "test", "Greeter", "desk"],
            json!({"persona": "Greeter", "name": "desk"}),
        )
        .after(&[PERSONA, CHANNEL]),
        Case::change(
            "remove_channel",
            &["channel", "remove", "Greeter", "desk"],
            json!({"persona": "Greeter", "name": "desk"}),
        )
        .after(&[PERSONA, CHANNEL]),
        Case::read(
            "list_healing",
            &["healing", "list", "--all"],
            json!({"all": true, "limit": 50}),
        ),
    ]
}

fn data() -> Vec<Case> {
    // Sizes differ with what each process wrote (a runtime's instance rows, WAL state).
    let sizes = &["path", "bytes", "bytes_before", "bytes_after", "elapsed_ms"];
    vec![
        Case::change(
            "backup_store",
            &["backup", "{dir}/copy.db"],
            json!({"path": "{dir}/copy.db"}),
        )
        .after(&[PERSONA])
        .volatile(sizes),
        Case::change(
            "run_gc",
            &["gc"],
            json!({"dry_run": false, "vacuum": false}),
        )
        .volatile(sizes),
        Case::change(
            "run_gc",
            &["gc", "--dry-run"],
            json!({"dry_run": true, "vacuum": false}),
        )
        .volatile(sizes),
    ]
}

pub fn cases() -> Vec<Case> {
    let mut all = triggers();
    all.extend(events());
    all.extend(credentials());
    all.extend(tools_and_channels());
    all.extend(data());
    all
}
