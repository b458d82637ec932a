//! Credentials, the vault, tools and permission templates through the real server: every
//! operation's round trip (called from `every_operation_round_trips_through_the_server`), the
//! refusal without a key store, and the proof that a secret given to the API never comes back
//! out — not in a response, an error, a streamed event, the log, or the database file.

use super::{Server, frames, message_event, read_until};
use personas_engine::vault::VaultOptions;
use personas_testkit::api::{Step, ToolCall};
use personas_testkit::{HttpSink, files_containing};
use serde_json::{Value, json};
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

pub const PASS: &str = "correct horse battery staple";
const TOKEN: &str = "ghp_ApiS3cretThatMustNeverLeave0123456789";

pub fn passphrase() -> VaultOptions {
    VaultOptions {
        passphrase: Some(personas_core::Secret::new(PASS)),
        new_passphrase: None,
        keychain: None,
    }
}

fn field<'a>(credential: &'a Value, name: &str) -> &'a Value {
    credential["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .find(|f| f["field"] == name)
        .unwrap_or_else(|| panic!("no field {name} in {credential}"))
}

async fn refused(s: &Server, op: &str, body: Value, status: u16, want_field: &str) -> Value {
    let (st, e) = s.call(op, body).await;
    assert_eq!(
        (st, e["field"].as_str()),
        (status, Some(want_field)),
        "{op}: {e}"
    );
    e
}

/// The credential, vault, tool and permission operations, each through the real server.
pub async fn round_trips(s: &Server) {
    let types = s.ok("list_credential_types", json!({})).await;
    let github = types["types"]
        .as_array()
        .expect("types")
        .iter()
        .find(|t| t["kind"] == "github")
        .expect("github type")
        .clone();
    let token_field = &github["fields"][0];
    assert_eq!(
        (
            token_field["name"].as_str(),
            token_field["secret"].as_bool(),
            token_field["env"].as_str(),
            token_field["required"].as_bool()
        ),
        (Some("token"), Some(true), Some("GITHUB_TOKEN"), Some(true))
    );
    assert_eq!(
        github["fields"][1]["required"], false,
        "api_url has a default"
    );
    assert_eq!(github["check"], "GET {api_url}/user");

    // The bus round trip before this one sealed a webhook secret, which created the vault.
    let vault = s.ok("vault_status", json!({})).await;
    assert_eq!(
        (&vault["mode"], &vault["created"], &vault["can_store"]),
        (&json!("passphrase"), &json!(true), &json!(true)),
        "{vault}"
    );

    let github = HttpSink::github_like(TOKEN).await;
    let url = github.base_url();
    // Bad input names its field; nothing is stored.
    refused(
        s,
        "create_credential",
        json!({"name": "github", "kind": "github", "fields": {"api_url": url}}),
        400,
        "fields.token",
    )
    .await;
    let e = refused(
        s,
        "create_credential",
        json!({"name": "github", "kind": "gitlab", "fields": {"token": TOKEN}}),
        400,
        "kind",
    )
    .await;
    assert!(
        e["message"].as_str().unwrap_or("").contains("known types"),
        "{e}"
    );
    refused(
        s,
        "create_credential",
        json!({"name": "github", "kind": "github", "fields": {"token": TOKEN}, "env": {"token": "PATH"}}),
        400,
        "env.token",
    )
    .await;
    refused(
        s,
        "create_credential",
        json!({"name": "git hub", "kind": "github", "fields": {"token": TOKEN}}),
        400,
        "name",
    )
    .await;
    assert_eq!(
        s.ok("list_credentials", json!({})).await["credentials"],
        json!([])
    );

    let c = s
        .ok(
            "create_credential",
            json!({"name": "github", "kind": "github", "fields": {"token": TOKEN, "api_url": url}}),
        )
        .await;
    assert_eq!(c["label"], "GitHub token");
    assert_eq!(
        field(&c, "token"),
        &json!({"field": "token", "description": "a personal access token (ghp_… or github_pat_…)",
            "variable": "GITHUB_TOKEN", "secret": true, "required": true, "set": true, "value": null, "default": false})
    );
    assert_eq!(field(&c, "api_url")["value"], url.as_str());
    refused(
        s,
        "create_credential",
        json!({"name": "GitHub", "kind": "github", "fields": {"token": TOKEN}}),
        409,
        "name",
    )
    .await;
    let listed = s.ok("list_credentials", json!({})).await;
    assert_eq!(listed["credentials"].as_array().map(Vec::len), Some(1));
    let got = s
        .ok("get_credential", json!({"credential": "GITHUB"}))
        .await;
    assert_eq!(got["id"], c["id"]);
    let (st, _) = s
        .call("get_credential", json!({"credential": "nope"}))
        .await;
    assert_eq!(st, 404);

    // The health check runs against the local server and is recorded.
    let t = s
        .ok("test_credential", json!({"credential": "github"}))
        .await;
    assert_eq!(t["status"], "ok", "{t}");
    assert_eq!(t["credential"]["last_check"]["ok"], true);
    refused(
        s,
        "test_credential",
        json!({"credential": "github", "timeout_secs": 0}),
        400,
        "timeout_secs",
    )
    .await;

    // A new (wrong) token replaces the stored one: the check now fails with 401, recorded.
    let u = s
        .ok(
            "update_credential",
            json!({"credential": "github", "fields": {"token": "ghp_wrongwrongwrong", "api_url": url}}),
        )
        .await;
    assert_eq!(
        u["last_check"],
        Value::Null,
        "an update clears the old check"
    );
    let t = s
        .ok("test_credential", json!({"credential": "github"}))
        .await;
    assert_eq!(t["status"], "failed", "{t}");
    assert!(t["detail"].as_str().unwrap_or("").contains("401"), "{t}");
    assert_eq!(t["credential"]["last_check"]["ok"], false);
    s.ok(
        "update_credential",
        json!({"credential": "github", "fields": {"token": TOKEN, "api_url": url}}),
    )
    .await;
    // Leaving the secret out keeps it: only the URL changes, and the check still passes.
    let u = s
        .ok(
            "update_credential",
            json!({"credential": "github", "fields": {"api_url": format!("{url}/")}}),
        )
        .await;
    assert_eq!(field(&u, "token")["set"], true);
    let t = s
        .ok("test_credential", json!({"credential": "github"}))
        .await;
    assert_eq!(t["status"], "failed", "{url}/ + /user is //user: {t}");
    let u = s
        .ok(
            "update_credential",
            json!({"credential": "github", "fields": {"api_url": url, "token": ""}}),
        )
        .await;
    assert_eq!(field(&u, "api_url")["value"], url.as_str());
    let t = s
        .ok("test_credential", json!({"credential": "github"}))
        .await;
    assert_eq!(t["status"], "ok", "the kept token still works: {t}");
    refused(
        s,
        "update_credential",
        json!({"credential": "github", "fields": {}, "clear": ["token"]}),
        400,
        "fields.token",
    )
    .await;

    let vault = s.ok("vault_status", json!({})).await;
    assert_eq!(
        (
            &vault["created"],
            &vault["generation"],
            &vault["credentials"]
        ),
        (&json!(true), &json!(1), &json!(1)),
        "{vault}"
    );

    // Tools.
    let tool = s
        .ok(
            "create_tool",
            json!({"name": "open-issue", "description": "Opens an issue",
                "call": {"kind": "http", "method": "POST", "url": "https://api.github.com/repos/o/r/issues",
                    "headers": [["Authorization", "Bearer $GITHUB_TOKEN"]], "body": null}}),
        )
        .await;
    assert!(
        tool["usage"]
            .as_str()
            .unwrap_or("")
            .starts_with("curl -sS -X POST"),
        "{tool}"
    );
    refused(
        s,
        "create_tool",
        json!({"name": "bad", "description": "x", "call": {"kind": "http", "method": "GET", "url": "ftp://x", "headers": [], "body": null}}),
        400,
        "url",
    )
    .await;
    refused(
        s,
        "create_tool",
        json!({"name": "open-issue", "description": "x", "call": {"kind": "command", "command": "gh issue create"}}),
        409,
        "name",
    )
    .await;
    assert_eq!(
        s.ok("list_tools", json!({})).await["tools"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    // Permission templates and persona links.
    let templates = s.ok("list_permission_templates", json!({})).await;
    let ids: Vec<&str> = templates["templates"]
        .as_array()
        .expect("templates")
        .iter()
        .filter_map(|t| t["id"].as_str())
        .collect();
    assert_eq!(ids, ["read-only", "edit-in-workspace", "full-trust"]);
    assert!(templates["templates"][2]["warning"].is_string());
    assert_eq!(
        templates["templates"][2]["policy"]["mode"],
        "bypassPermissions"
    );

    let before = s.ok("list_personas", json!({})).await["personas"]
        .as_array()
        .map(Vec::len);
    let spec = json!({"name": "Vaulted", "instructions": "Use the GitHub API.",
        "permissions": {"mode": "default", "allow": ["Bash(gh *)"], "deny": []}});
    refused(
        s,
        "create_persona",
        json!({"spec": spec, "credentials": ["nope"]}),
        400,
        "credentials",
    )
    .await;
    assert_eq!(
        s.ok("list_personas", json!({})).await["personas"]
            .as_array()
            .map(Vec::len),
        before,
        "a bad link stores no persona"
    );
    let p = s
        .ok(
            "create_persona",
            json!({"spec": spec, "credentials": ["github"], "tools": ["open-issue"], "permissions_template": "read-only"}),
        )
        .await;
    assert_eq!(p["permissions"]["mode"], "dontAsk");
    assert_eq!(
        p["permissions"]["allow"],
        json!(["Read", "Glob", "Grep", "LS", "Bash(gh *)"])
    );
    let links = s
        .ok("get_persona_links", json!({"persona": "Vaulted"}))
        .await;
    assert_eq!(
        (&links["credentials"], &links["tools"]),
        (&json!(["github"]), &json!(["open-issue"]))
    );
    assert_eq!(
        s.ok("get_credential", json!({"credential": "github"}))
            .await["personas"],
        json!(["Vaulted"])
    );
    let mut spec2 = p.clone();
    for k in ["id", "prompt_version", "created_at", "updated_at"] {
        spec2.as_object_mut().expect("object").remove(k);
    }
    s.ok(
        "update_persona",
        json!({"persona": "Vaulted", "spec": spec2, "tools": []}),
    )
    .await;
    let links = s
        .ok("get_persona_links", json!({"persona": "Vaulted"}))
        .await;
    assert_eq!(
        (&links["credentials"], &links["tools"]),
        (&json!(["github"]), &json!([])),
        "only the given set changes"
    );

    // Deleting a linked credential needs force, and unlinks it.
    refused(
        s,
        "delete_credential",
        json!({"credential": "github"}),
        409,
        "force",
    )
    .await;
    let gone = s
        .ok(
            "delete_credential",
            json!({"credential": "github", "force": true}),
        )
        .await;
    assert_eq!(gone["name"], "github");
    assert_eq!(
        s.ok("get_persona_links", json!({"persona": "Vaulted"}))
            .await["credentials"],
        json!([])
    );
    // One tool by name, and the data dir's upkeep: a backup, gc (vacuum is refused while the
    // runtime serves), and a vault key rotation.
    let tool = s.ok("get_tool", json!({"tool": "open-issue"})).await;
    assert_eq!(tool["name"], "open-issue");
    let copy = s.data_dir().join("round-trip.backup");
    let b = s
        .ok("backup_store", json!({"path": copy.display().to_string()}))
        .await;
    assert!(b["bytes"].as_u64() > Some(0), "{b}");
    assert_eq!(
        s.ok("run_gc", json!({"dry_run": true})).await["dry_run"],
        true
    );
    let (status, e) = s.call("run_gc", json!({"vacuum": true})).await;
    assert_eq!((status, e["field"].as_str()), (409, Some("vacuum")), "{e}");
    let rotated = s.ok("rotate_vault", json!({})).await;
    assert!(rotated["generation"].as_i64() > Some(1), "{rotated}");
    s.ok("delete_tool", json!({"tool": "open-issue"})).await;
    assert_eq!(s.ok("list_tools", json!({})).await["tools"], json!([]));
    s.ok("delete_persona", json!({"persona": "Vaulted"})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_key_store_storing_is_refused_with_the_fix() {
    let s = Server::start_opts(None, VaultOptions::default()).await;
    let v = s.ok("vault_status", json!({})).await;
    assert_eq!(
        (&v["mode"], &v["can_store"]),
        (&json!("none"), &json!(false))
    );
    assert!(
        v["hint"]
            .as_str()
            .unwrap_or("")
            .contains("PERSONAS_VAULT_PASSPHRASE"),
        "{v}"
    );
    let e = refused(
        &s,
        "create_credential",
        json!({"name": "github", "kind": "github", "fields": {"token": TOKEN}}),
        503,
        "vault",
    )
    .await;
    assert_eq!(e["code"], "unavailable");
    let msg = e["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("refusing to store secrets") && msg.contains("PERSONAS_VAULT_PASSPHRASE"),
        "{msg}"
    );
    assert!(!msg.contains(TOKEN));
    assert_eq!(
        s.ok("list_credentials", json!({})).await["credentials"],
        json!([])
    );
    let report = s.ok("system_check", json!({})).await;
    let check = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["check"] == "vault")
        .expect("vault check")
        .clone();
    assert_eq!(check["status"], "warn", "{check}");
    assert!(check["hint"].is_string());
}

/// Everything the process logs through `tracing`, at every level.
fn captured_log() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&buf);
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || Sink(Arc::clone(&sink)))
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        buf
    })
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_given_to_the_api_never_comes_back_out() {
    use base64::Engine as _;
    let log = captured_log();
    let s = Server::start().await;
    let mut ws = s.socket("").await;
    let mut seen: Vec<Value> = frames(&mut ws).await;
    let mut bodies: Vec<String> = Vec::new();
    let github = HttpSink::github_like(TOKEN).await;
    let url = github.base_url();
    let b64 = base64::engine::general_purpose::STANDARD.encode(TOKEN);

    // Wrong-shaped requests carrying the secret: refused without repeating it.
    for body in [
        json!({"name": "github", "kind": "github", "fields": TOKEN}),
        json!({"name": "github", "kind": TOKEN, "fields": {"token": TOKEN}}),
        json!({"name": "github", "kind": "github", "fields": {"tokn": TOKEN}}),
        json!({"name": "github", "kind": "github", "fields": {"token": 12345}, "env": TOKEN}),
        json!({"name": "github", "kind": "github", "fields": {"token": [TOKEN]}}),
    ] {
        let (st, e) = s.call("create_credential", body).await;
        assert_eq!(st, 400, "{e}");
        bodies.push(e.to_string());
    }

    let c = s
        .ok(
            "create_credential",
            json!({"name": "github", "kind": "github", "fields": {"token": TOKEN, "api_url": url}}),
        )
        .await;
    bodies.push(c.to_string());
    let (st, e) = s
        .call(
            "update_credential",
            json!({"credential": "github", "fields": {"token": TOKEN, "api_url": "not a url"}}),
        )
        .await;
    bodies.push(e.to_string());
    assert_eq!(st, 200, "a URL is not checked when stored: {e}");
    let t = s
        .call(
            "update_credential",
            json!({"credential": "github", "fields": {"token": TOKEN, "api_url": url}}),
        )
        .await;
    bodies.push(t.1.to_string());
    let t = s
        .ok("test_credential", json!({"credential": "github"}))
        .await;
    assert_eq!(t["status"], "ok", "{t}");
    bodies.push(t.to_string());

    // A run whose tool prints the variable, and whose agent repeats it.
    s.api.script(
        "SCRIPT-leak",
        vec![
            Step::tool_use(vec![ToolCall::bash(
                "toolu_leak",
                "printenv GITHUB_TOKEN; printenv GITHUB_TOKEN | base64",
            )]),
            Step::text(format!("The token is {TOKEN}.")),
        ],
    );
    let p = s
        .ok(
            "create_persona",
            json!({"spec": {"name": "Leaky", "instructions": "Follow script SCRIPT-leak.",
                "permissions": {"mode": "default", "allow": ["Bash"], "deny": []}},
                "credentials": ["github"]}),
        )
        .await;
    bodies.push(p.to_string());
    let exec = s.ok("run_persona", json!({"persona": "Leaky"})).await;
    let id = exec["id"].as_str().expect("id").to_string();
    seen.extend(
        read_until(&mut ws, |f| {
            f["event"]["type"] == "execution"
                && f["event"]["execution"]["id"] == id.as_str()
                && f["event"]["execution"]["finished_at"].is_string()
        })
        .await,
    );
    let done = s.ok("get_execution", json!({"id": id})).await;
    assert_eq!(done["status"], "completed", "{done}");
    let out = s
        .ok("execution_output", json!({"id": id, "limit": 5000}))
        .await;
    let tool_result = out["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .find(|l| l["kind"] == "tool_result")
        .expect("a tool result")
        .to_string();
    assert!(
        tool_result.contains("[redacted:github.token]"),
        "the tool really printed the value: {tool_result}"
    );
    assert!(
        done["result_text"]
            .as_str()
            .unwrap_or("")
            .contains("[redacted:github.token]"),
        "{done}"
    );

    // Every operation's answer, with requests that reach this test's data.
    let reqs: Vec<(&str, Value)> = vec![
        ("system_check", json!({})),
        ("get_settings", json!({})),
        ("list_personas", json!({})),
        ("get_persona", json!({"persona": "Leaky"})),
        ("list_prompt_versions", json!({"persona": "Leaky"})),
        ("list_templates", json!({})),
        ("list_executions", json!({})),
        ("get_execution", json!({"id": id})),
        ("execution_output", json!({"id": id, "limit": 5000})),
        ("list_messages", json!({})),
        ("list_memories", json!({})),
        ("list_reviews", json!({})),
        (
            "decide_review",
            json!({"id": "0000ffff", "decision": "approve", "note": TOKEN}),
        ),
        ("get_stats", json!({})),
        ("get_dashboard", json!({})),
        ("get_canvas", json!({})),
        ("list_credential_types", json!({})),
        ("list_credentials", json!({})),
        ("get_credential", json!({"credential": "github"})),
        ("test_credential", json!({"credential": "github"})),
        ("vault_status", json!({})),
        ("list_tools", json!({})),
        ("get_persona_links", json!({"persona": "Leaky"})),
        ("list_permission_templates", json!({})),
        ("list_triggers", json!({})),
        ("preview_cron", json!({"cron": "0 8 * * *", "tz": "UTC"})),
        ("list_events", json!({})),
        ("get_event", json!({"id": "none"})),
        // Operations that change something, answered last.
        ("update_settings", json!({})),
        ("mark_messages_read", json!({})),
        ("save_canvas", json!({"nodes": []})),
        ("cancel_execution", json!({"id": id})),
        (
            "update_persona",
            json!({"persona": "Leaky", "spec": {"name": "Leaky", "instructions": "Follow script SCRIPT-leak.", "permissions": {"mode": "default", "allow": ["Bash"], "deny": []}}}),
        ),
        (
            "create_from_template",
            json!({"template_id": "docs-checker"}),
        ),
        (
            "create_persona",
            json!({"spec": {"name": "Other", "instructions": "x"}, "credentials": ["github"]}),
        ),
        (
            "add_memory",
            json!({"persona": "Leaky", "title": "t", "content": "c"}),
        ),
        (
            "update_memory",
            json!({"id": "none", "title": "t", "content": "c", "category": "fact", "importance": 3}),
        ),
        ("delete_memory", json!({"id": "none"})),
        ("run_persona", json!({"persona": "Nobody"})),
        (
            "create_tool",
            json!({"name": "t1", "description": "d", "call": {"kind": "command", "command": "true"}}),
        ),
        ("get_tool", json!({"tool": "t1"})),
        ("delete_tool", json!({"tool": "t1"})),
        ("run_gc", json!({"dry_run": true})),
        ("rotate_vault", json!({})),
        (
            "backup_store",
            json!({"path": s.data_dir().join("leak.backup").display().to_string()}),
        ),
        (
            "update_credential",
            json!({"credential": "github", "name": "github2", "fields": {"api_url": url}}),
        ),
        (
            "create_credential",
            json!({"name": "github2", "kind": "github", "fields": {"token": TOKEN}}),
        ),
        (
            "delete_credential",
            json!({"credential": "github2", "force": true}),
        ),
        (
            "add_trigger",
            json!({"persona": "Leaky", "trigger": {"kind": "event", "event": "leak.check"}, "enabled": false}),
        ),
        (
            "set_trigger_enabled",
            json!({"id": "none", "enabled": true}),
        ),
        ("fire_trigger", json!({"id": "none"})),
        ("reveal_webhook_secret", json!({"id": "none"})),
        ("rotate_webhook_secret", json!({"id": "none"})),
        ("remove_trigger", json!({"id": "none"})),
        ("emit_event", json!({"type": "leak.check", "payload": {}})),
        ("retry_event", json!({"id": "none"})),
        ("list_channels", json!({})),
        (
            "add_channel",
            json!({"persona": "Leaky", "name": "desk", "kind": "desktop"}),
        ),
        ("test_channel", json!({"persona": "Leaky", "name": "desk"})),
        (
            "remove_channel",
            json!({"persona": "Leaky", "name": "desk"}),
        ),
        ("get_policy", json!({"persona": "Leaky"})),
        (
            "update_policy",
            json!({"persona": "Leaky", "policy": {"daily_budget_usd": 5.0}}),
        ),
        ("resume_persona", json!({"persona": "Leaky"})),
        ("list_healing", json!({"all": true})),
        ("resolve_issue", json!({"id": "0000ffff"})),
        ("get_metrics", json!({})),
        ("export_persona", json!({"persona": "Leaky"})),
        (
            "import_persona",
            json!({"text": format!("name: Imported\ninstructions: keep {TOKEN} safe\n")}),
        ),
        // The cloud: nothing to reach (port 9 is discard), so each answers an error that
        // must not echo what it was given.
        (
            "cloud_connect",
            json!({"url": "http://127.0.0.1:9", "token": TOKEN}),
        ),
        ("cloud_status", json!({})),
        ("push_persona", json!({"persona": "Leaky"})),
        (
            "cloud_execute",
            json!({"persona": "Leaky", "input": {"t": TOKEN}}),
        ),
        ("list_cloud_executions", json!({"persona": "Leaky"})),
        ("cloud_disconnect", json!({})),
        ("delete_persona", json!({"persona": "Leaky"})),
    ];
    let covered: std::collections::BTreeSet<&str> = reqs.iter().map(|(op, _)| *op).collect();
    let missing: Vec<&str> = personas_api::OPERATIONS
        .iter()
        .map(|o| o.name)
        .filter(|n| !covered.contains(n))
        .collect();
    assert!(missing.is_empty(), "operations not read back: {missing:?}");
    for (op, body) in reqs {
        let (_, v) = s.call(op, body).await;
        bodies.push(v.to_string());
    }
    // Everything broadcast up to now: a marker event sent last arrives after all of it.
    s.engine.bus().send(message_event(424242));
    seen.extend(
        read_until(&mut ws, |f| {
            f["event"]["message"]["content"] == "message 424242"
        })
        .await,
    );

    let frames_text: Vec<String> = seen.iter().map(Value::to_string).collect();
    assert!(
        frames_text
            .iter()
            .any(|f| f.contains("[redacted:github.token]")),
        "the streamed output carries the marker"
    );
    let log_text = String::from_utf8_lossy(&log.lock().expect("log lock")).into_owned();
    assert!(
        log_text.contains("credential stored") && log_text.contains("credential=github"),
        "the log is captured: {}",
        &log_text[..log_text.len().min(2000)]
    );
    for needle in [TOKEN, b64.as_str(), &TOKEN[4..24]] {
        for b in &bodies {
            assert!(!b.contains(needle), "a response holds the secret: {b}");
        }
        for f in &frames_text {
            assert!(
                !f.contains(needle),
                "a streamed event holds the secret: {f}"
            );
        }
        assert!(!log_text.contains(needle), "the log holds the secret");
    }
    // Nor does anything the server wrote to disk (database, WAL, run files).
    let hits = files_containing(s.data_dir(), TOKEN.as_bytes());
    assert!(hits.is_empty(), "files holding the secret: {hits:?}");
    drop(ws);
}
