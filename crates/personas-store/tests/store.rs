//! Store behaviour against a real SQLite file in a temp dir.

use personas_core::{
    ErrorClass, ExecutionOutcome, ExecutionStatus, LineKind, PersonaSpec, TriggerKind,
};
use personas_store::{ExecutionFilter, NewExecution, NewLine, Store, StoreError};
use std::collections::HashSet;
use std::sync::Arc;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_in_dir(dir.path()).expect("open store");
    (dir, store)
}

fn spec(name: &str, max_concurrent: u32) -> PersonaSpec {
    let mut s = PersonaSpec::new(name, "Do the thing.");
    s.max_concurrent = max_concurrent;
    s
}

#[test]
fn opens_in_wal_mode_and_reopens_without_remigrating() {
    let (dir, store) = store();
    let h = store.health().expect("health");
    assert!(h.ok, "{h:?}");
    assert_eq!(h.journal_mode, "wal");
    assert!(
        h.schema_version >= 4,
        "migrated to at least V4 (bus, vault, review): {h:?}"
    );
    store.personas().create(&spec("A", 1)).expect("create");
    drop(store);
    let again = Store::open_in_dir(dir.path()).expect("reopen");
    assert_eq!(again.personas().list().expect("list").len(), 1);
}

#[test]
fn persona_crud_with_prompt_versions() {
    let (_d, store) = store();
    let p = store
        .personas()
        .create(&spec("Release notes writer", 2))
        .expect("create");
    assert_eq!(p.prompt_version, 1);
    assert_eq!(
        store
            .personas()
            .find("release NOTES writer")
            .expect("by name")
            .id,
        p.id
    );
    assert_eq!(
        store.personas().find(p.id.as_str()).expect("by id").name,
        p.name
    );

    // A limit change is not a prompt change.
    let mut s = PersonaSpec::from(&p);
    s.timeout_secs = 30;
    let p2 = store.personas().update(&p.name, &s).expect("update");
    assert_eq!((p2.prompt_version, p2.timeout_secs), (1, 30));

    s.instructions = "Do the other thing.".into();
    let p3 = store
        .personas()
        .update(p.id.as_str(), &s)
        .expect("update prompt");
    assert_eq!(p3.prompt_version, 2);
    let versions = store.personas().prompt_versions(&p.id).expect("versions");
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(versions[0].instructions, "Do the thing.");
    assert_eq!(versions[1].instructions, "Do the other thing.");

    store
        .personas()
        .delete("Release notes writer")
        .expect("delete");
    assert!(matches!(
        store.personas().find(p.id.as_str()),
        Err(StoreError::NotFound {
            what: "persona",
            ..
        })
    ));
}

#[test]
fn duplicate_names_conflict_case_insensitively_and_nothing_changes() {
    let (_d, store) = store();
    store.personas().create(&spec("Triage", 1)).expect("create");
    let err = store
        .personas()
        .create(&spec("TRIAGE", 1))
        .expect_err("duplicate");
    assert!(
        matches!(&err, StoreError::Conflict { field, .. } if field == "name"),
        "{err}"
    );
    assert!(err.to_string().contains("already exists"));
    assert_eq!(store.personas().list().expect("list").len(), 1);
}

#[test]
fn invalid_specs_are_rejected_before_storage() {
    let (_d, store) = store();
    let err = store.personas().create(&spec("X", 0)).expect_err("invalid");
    assert!(matches!(err, StoreError::Invalid(ref v) if v.field == "max_concurrent"));
    assert!(store.personas().list().expect("list").is_empty());
}

#[test]
fn claims_respect_priority_fifo_and_both_limits() {
    let (_d, store) = store();
    let a = store.personas().create(&spec("A", 1)).expect("A");
    let b = store.personas().create(&spec("B", 2)).expect("B");
    let ex = store.executions();
    let a1 = ex
        .enqueue(&NewExecution {
            trigger: TriggerKind::Event,
            ..NewExecution::manual(a.id.clone(), None)
        })
        .expect("a1");
    let a2 = ex
        .enqueue(&NewExecution::manual(a.id.clone(), None))
        .expect("a2");
    let b1 = ex
        .enqueue(&NewExecution {
            trigger: TriggerKind::Event,
            ..NewExecution::manual(b.id.clone(), None)
        })
        .expect("b1");
    let b2 = ex
        .enqueue(&NewExecution {
            trigger: TriggerKind::Event,
            ..NewExecution::manual(b.id.clone(), None)
        })
        .expect("b2");
    let b3 = ex
        .enqueue(&NewExecution {
            trigger: TriggerKind::Event,
            ..NewExecution::manual(b.id.clone(), None)
        })
        .expect("b3");

    // Manual (a2) first despite being newer; then A is at its limit of 1, so B's in FIFO order.
    let order: Vec<_> = std::iter::from_fn(|| ex.claim_next(10, "me").expect("claim"))
        .map(|e| e.id)
        .collect();
    assert_eq!(order, vec![a2.id.clone(), b1.id.clone(), b2.id.clone()]);

    // Finishing one B lets b3 in; A still blocked until a2 ends.
    ex.finish(
        &b1.id,
        &ExecutionOutcome::ended(ExecutionStatus::Completed, None, None),
    )
    .expect("finish");
    assert_eq!(
        ex.claim_next(10, "me").expect("claim").map(|e| e.id),
        Some(b3.id)
    );
    assert_eq!(ex.claim_next(10, "me").expect("claim"), None);
    ex.finish(
        &a2.id,
        &ExecutionOutcome::ended(ExecutionStatus::Completed, None, None),
    )
    .expect("finish");
    // Global limit: 3 running (b2, b3 + a1 would make 3); limit 2 refuses.
    assert_eq!(ex.claim_next(2, "me").expect("claim"), None);
    assert_eq!(
        ex.claim_next(3, "me").expect("claim").map(|e| e.id),
        Some(a1.id)
    );
}

#[test]
fn concurrent_claimers_never_share_or_exceed_limits() {
    let (_d, store) = store();
    let p = store.personas().create(&spec("P", 3)).expect("P");
    for _ in 0..40 {
        store
            .executions()
            .enqueue(&NewExecution::manual(p.id.clone(), None))
            .expect("enqueue");
    }
    let store = Arc::new(store);
    let claimed: Vec<_> = (0..8)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                for _ in 0..20 {
                    if let Some(e) = store
                        .executions()
                        .claim_next(100, &format!("t{t}"))
                        .expect("claim")
                    {
                        mine.push(e.id);
                    }
                }
                mine
            })
        })
        .flat_map(|h| h.join().expect("thread"))
        .collect();
    assert_eq!(
        claimed.len(),
        3,
        "max_concurrent 3 caps the claims: {claimed:?}"
    );
    assert_eq!(
        claimed.iter().collect::<HashSet<_>>().len(),
        3,
        "no execution claimed twice"
    );
}

#[test]
fn idempotency_key_yields_one_execution() {
    let (_d, store) = store();
    let p = store.personas().create(&spec("P", 1)).expect("P");
    let new = NewExecution {
        idempotency_key: Some("ev1:sub1".into()),
        ..NewExecution::manual(p.id.clone(), None)
    };
    let first = store.executions().enqueue(&new).expect("first");
    let second = store.executions().enqueue(&new).expect("second");
    assert_eq!(first.id, second.id);
    assert_eq!(
        store
            .executions()
            .list(&ExecutionFilter::default())
            .expect("list")
            .len(),
        1
    );
}

#[test]
fn disabled_and_unknown_personas_cannot_be_queued() {
    let (_d, store) = store();
    let mut s = spec("Off", 1);
    s.enabled = false;
    let p = store.personas().create(&s).expect("P");
    let err = store
        .executions()
        .enqueue(&NewExecution::manual(p.id.clone(), None))
        .expect_err("disabled");
    assert!(err.to_string().contains("disabled"), "{err}");
    let ghost = personas_core::PersonaId::new();
    assert!(matches!(
        store
            .executions()
            .enqueue(&NewExecution::manual(ghost, None)),
        Err(StoreError::NotFound { .. })
    ));
}

#[test]
fn cancel_queued_running_and_finished() {
    let (_d, store) = store();
    let p = store.personas().create(&spec("P", 2)).expect("P");
    let ex = store.executions();
    let q = ex
        .enqueue(&NewExecution::manual(p.id.clone(), None))
        .expect("q");
    let r = ex
        .enqueue(&NewExecution::manual(p.id.clone(), None))
        .expect("r");
    assert_eq!(
        ex.request_cancel(&q.id).expect("cancel queued").status,
        ExecutionStatus::Cancelled
    );
    let r = ex
        .claim(&r.id, 4, "owner-1")
        .expect("claim")
        .expect("claimed");
    let flagged = ex.request_cancel(&r.id).expect("cancel running");
    assert_eq!(flagged.status, ExecutionStatus::Running);
    assert!(flagged.cancel_requested);
    assert_eq!(
        ex.heartbeat("owner-1").expect("heartbeat"),
        vec![r.id.clone()]
    );
    assert!(ex.heartbeat("owner-2").expect("heartbeat").is_empty());
    ex.finish(
        &r.id,
        &ExecutionOutcome::failed(ErrorClass::Cancelled, "cancelled"),
    )
    .expect("finish");
    let err = ex.request_cancel(&r.id).expect_err("already ended");
    assert!(err.to_string().contains("already ended"), "{err}");
}

#[test]
fn crash_recovery_marks_dead_owners_interrupted_only() {
    let (_d, store) = store();
    let p = store.personas().create(&spec("P", 5)).expect("P");
    let ex = store.executions();
    let dead = ex
        .enqueue(&NewExecution::manual(p.id.clone(), None))
        .expect("dead");
    let alive = ex
        .enqueue(&NewExecution::manual(p.id.clone(), None))
        .expect("alive");
    let queued = ex
        .enqueue(&NewExecution::manual(p.id.clone(), None))
        .expect("queued");
    ex.claim(&dead.id, 9, "gone")
        .expect("claim")
        .expect("claimed");
    ex.claim(&alive.id, 9, "here")
        .expect("claim")
        .expect("claimed");
    let recovered = ex
        .recover_interrupted(&|owner, _| owner == "here")
        .expect("recover");
    assert_eq!(
        recovered.iter().map(|e| &e.id).collect::<Vec<_>>(),
        vec![&dead.id]
    );
    let d = ex.get(&dead.id).expect("get");
    assert_eq!(
        (d.status, d.error_class),
        (ExecutionStatus::Failed, Some(ErrorClass::Interrupted))
    );
    assert_eq!(
        ex.get(&alive.id).expect("get").status,
        ExecutionStatus::Running
    );
    assert_eq!(
        ex.get(&queued.id).expect("get").status,
        ExecutionStatus::Queued
    );
}

#[test]
fn output_lines_append_in_order_and_count_warnings() {
    let (_d, store) = store();
    let p = store.personas().create(&spec("P", 1)).expect("P");
    let ex = store.executions();
    let e = ex
        .enqueue(&NewExecution::manual(p.id.clone(), None))
        .expect("e");
    let line = |seq, kind| NewLine {
        execution_id: e.id.clone(),
        seq,
        kind,
        text: format!("line {seq}"),
        at_ms: 0,
    };
    ex.append_output(&[line(1, LineKind::System), line(2, LineKind::Warning)])
        .expect("append");
    ex.append_output(&[
        line(3, LineKind::AssistantText),
        line(3, LineKind::AssistantText),
    ])
    .expect("dup ignored");
    let out = ex.output(&e.id, 0, 100).expect("output");
    assert_eq!(out.iter().map(|l| l.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(ex.output(&e.id, 2, 100).expect("tail").len(), 1);
    let e = ex.get(&e.id).expect("get");
    assert_eq!((e.output_lines, e.parse_warnings), (3, 1));
}

#[test]
fn deleting_a_persona_keeps_history_and_cancels_its_queue() {
    let (_d, store) = store();
    let p = store.personas().create(&spec("P", 1)).expect("P");
    let ex = store.executions();
    let done = ex
        .enqueue(&NewExecution::manual(p.id.clone(), None))
        .expect("done");
    ex.claim(&done.id, 9, "o").expect("claim").expect("claimed");
    let err = store.personas().delete("P").expect_err("running");
    assert!(err.to_string().contains("in progress"), "{err}");
    ex.finish(
        &done.id,
        &ExecutionOutcome::ended(ExecutionStatus::Completed, None, None),
    )
    .expect("finish");
    let queued = ex
        .enqueue(&NewExecution::manual(p.id.clone(), None))
        .expect("queued");
    store.personas().delete("P").expect("delete");
    let q = ex.get(&queued.id).expect("kept");
    assert_eq!(q.status, ExecutionStatus::Cancelled);
    let d = ex.get(&done.id).expect("kept");
    assert_eq!(
        (d.persona_name.as_str(), d.status),
        ("P", ExecutionStatus::Completed)
    );
}

#[test]
fn protocol_rows_link_to_their_execution() {
    let (_d, store) = store();
    let p = store.personas().create(&spec("P", 1)).expect("P");
    let e = store
        .executions()
        .enqueue(&NewExecution::manual(p.id.clone(), None))
        .expect("e");
    let proto = store.protocol();
    proto
        .insert_message(
            Some(&e.id),
            Some(&p.id),
            "P",
            Some("t"),
            "hello",
            personas_core::protocol::Priority::High,
        )
        .expect("message");
    proto
        .insert_event(
            "ticket.created",
            personas_core::trigger::SourceKind::Persona,
            Some(p.id.as_str()),
            Some(&e.id),
            None,
            &serde_json::json!({"id": 42}),
        )
        .expect("event");
    proto
        .insert_memory(&p.id, Some(&e.id), "fact", "water is wet", "general", 4)
        .expect("memory");
    proto
        .insert_review(
            &e.id,
            Some(&p.id),
            "Merge?",
            None,
            personas_core::protocol::Severity::High,
            &["merge".into()],
        )
        .expect("review");
    assert_eq!(
        proto.messages(Some(&e.id), 10).expect("messages")[0].content,
        "hello"
    );
    assert_eq!(proto.events_of(&e.id).expect("events")[0].payload["id"], 42);
    assert_eq!(
        proto.memories(&p.id, 10).expect("memories")[0].importance,
        4
    );
    let reviews = proto
        .reviews(Some(personas_core::ReviewStatus::Pending), Some(&e.id))
        .expect("reviews");
    assert_eq!(reviews[0].suggested_actions, vec!["merge".to_string()]);
}

/// Stored names are read into closed enums: the text written is exactly the wire name, and a
/// name this version does not know (a newer runtime's row, a hand edit; `priority` has no CHECK)
/// is an error naming the column and the value, not a panic or a silent default.
#[test]
fn stored_names_read_as_enums_and_unknown_ones_name_the_column() {
    use personas_core::MessageStatus;
    use personas_core::protocol::Priority;
    let (_d, store) = store();
    let p = store.personas().create(&spec("P", 1)).expect("P");
    let m = store
        .protocol()
        .insert_message(None, Some(&p.id), "P", None, "hello", Priority::Urgent)
        .expect("message");
    assert_eq!(
        (m.priority, m.status),
        (Priority::Urgent, MessageStatus::Unread)
    );
    let conn = rusqlite::Connection::open(store.path()).expect("open");
    let stored: String = conn
        .query_row(
            "SELECT priority FROM messages WHERE id = ?1",
            [&m.id],
            |r| r.get(0),
        )
        .expect("raw read");
    assert_eq!(stored, "urgent");
    conn.execute(
        "UPDATE messages SET priority = 'whenever' WHERE id = ?1",
        [&m.id],
    )
    .expect("hand edit");
    let err = store
        .protocol()
        .messages(None, 10)
        .expect_err("unknown priority");
    let text = err.to_string();
    assert!(
        text.contains("messages.priority")
            && text.contains("\"whenever\"")
            && text.contains("urgent"),
        "{text}"
    );
}

#[test]
fn executions_are_found_by_unique_prefix() {
    let (_d, store) = store();
    let p = store.personas().create(&spec("P", 1)).expect("P");
    let ex = store.executions();
    let a = ex
        .enqueue(&NewExecution::manual(p.id.clone(), None))
        .expect("a");
    let b = ex
        .enqueue(&NewExecution::manual(p.id.clone(), None))
        .expect("b");
    assert_eq!(ex.find(a.id.as_str()).expect("full id").id, a.id);
    // Find the shortest prefix that tells them apart.
    let common =
        a.id.as_str()
            .chars()
            .zip(b.id.as_str().chars())
            .take_while(|(x, y)| x == y)
            .count();
    let prefix = &b.id.as_str()[..(common + 1).max(4)];
    assert_eq!(ex.find(prefix).expect("prefix").id, b.id);
    if common >= 4 {
        let err = ex.find(&a.id.as_str()[..common]).expect_err("ambiguous");
        assert!(err.to_string().contains("more than one"), "{err}");
    }
    assert!(matches!(ex.find("zzzz"), Err(StoreError::NotFound { .. })));
    assert!(matches!(ex.find("01"), Err(StoreError::NotFound { .. })));
}

mod vault_tables {
    use super::*;
    use personas_store::{
        CheckRecord, NewCredential, NewTool, Resealed, StoredField, ToolCall, VaultRecord,
    };
    use std::collections::BTreeMap;

    fn vault_record(generation: i64) -> VaultRecord {
        VaultRecord {
            vault_id: "v1".into(),
            key_source: "passphrase".into(),
            generation,
            kdf: Some("argon2id".into()),
            kdf_params: Some("{}".into()),
            salt: Some(vec![1; 16]),
            wrapped_key: Some(vec![2; 60]),
            key_check: vec![3; 40],
            created_at: chrono::Utc::now(),
            rotated_at: None,
        }
    }

    fn cred(name: &str, generation: i64) -> NewCredential {
        NewCredential {
            id: uuid::Uuid::now_v7().to_string(),
            name: name.into(),
            kind: "github".into(),
            env_overrides: BTreeMap::new(),
            fields: vec![
                StoredField::sealed("token", vec![9; 48], generation),
                StoredField::plain("api_url", "https://api.github.com"),
            ],
        }
    }

    #[test]
    fn credentials_round_trip_without_values_and_a_plaintext_secret_is_unstorable() {
        let (_d, store) = store();
        let repo = store.credentials();
        let err = repo.create(&cred("github", 1)).expect_err("no vault yet");
        assert!(err.to_string().contains("vault"), "{err}");
        repo.create_vault(&vault_record(1)).expect("vault");
        assert!(
            repo.create_vault(&vault_record(1)).is_err(),
            "one vault only"
        );
        let c = repo.create(&cred("github", 1)).expect("create");
        let listed = serde_json::to_string(&repo.list().expect("list")).expect("json");
        assert!(
            listed.contains("github") && !listed.contains("[9,9"),
            "{listed}"
        );
        let fields = repo.fields(&c.id).expect("fields");
        assert_eq!(fields.len(), 2);
        assert_eq!(fields[1].sealed.as_deref(), Some(&[9u8; 48][..]));
        let dup = repo.create(&cred("GitHub", 1)).expect_err("duplicate");
        assert!(dup.to_string().contains("already exists"), "{dup}");

        // The schema itself refuses a secret field with a plaintext value.
        let conn = rusqlite::Connection::open(store.path()).expect("open");
        let r = conn.execute(
            "INSERT INTO credential_fields (credential_id, field, secret, plain) VALUES (?1, 'x', 1, 'plaintext')",
            [&c.id],
        );
        assert!(r.is_err(), "plaintext secret was stored");
    }

    #[test]
    fn a_linked_credential_is_not_removed_without_force() {
        let (_d, store) = store();
        let repo = store.credentials();
        repo.create_vault(&vault_record(1)).expect("vault");
        let c = repo.create(&cred("github", 1)).expect("create");
        let p = store
            .personas()
            .create(&spec("Triage", 1))
            .expect("persona");
        repo.set_persona_credentials(&p.id, std::slice::from_ref(&c.id))
            .expect("link");
        assert_eq!(repo.of_persona(&p.id).expect("of").len(), 1);
        let e = repo.remove("github", false).expect_err("in use");
        assert!(e.to_string().contains("Triage"), "{e}");
        repo.remove("github", true).expect("forced");
        assert!(repo.of_persona(&p.id).expect("of").is_empty());
        assert!(
            repo.fields(&c.id).expect("fields").is_empty(),
            "sealed values deleted"
        );
    }

    #[test]
    fn rotation_is_all_or_nothing() {
        let (_d, store) = store();
        let repo = store.credentials();
        repo.create_vault(&vault_record(1)).expect("vault");
        let c = repo.create(&cred("github", 1)).expect("create");
        // Missing a value: refused, nothing changes.
        let e = repo
            .rotate(1, &vault_record(2), &[])
            .expect_err("incomplete");
        assert!(e.to_string().contains("nothing was changed"), "{e}");
        assert_eq!(repo.vault().expect("v").expect("some").generation, 1);
        // Wrong starting generation: refused.
        let resealed = [Resealed {
            credential_id: c.id.clone(),
            field: "token".into(),
            sealed: vec![7; 48],
        }];
        assert!(repo.rotate(5, &vault_record(6), &resealed).is_err());
        repo.rotate(1, &vault_record(2), &resealed).expect("rotate");
        let f = repo.fields(&c.id).expect("fields");
        assert_eq!(
            (f[1].sealed.as_deref(), f[1].generation),
            (Some(&[7u8; 48][..]), Some(2))
        );
        // A value sealed under the retired key is refused.
        let e = repo.create(&cred("late", 1)).expect_err("old generation");
        assert!(e.to_string().contains("rotated"), "{e}");
    }

    #[test]
    fn health_checks_are_recorded() {
        let (_d, store) = store();
        let repo = store.credentials();
        repo.create_vault(&vault_record(1)).expect("vault");
        let c = repo.create(&cred("github", 1)).expect("create");
        repo.record_check(
            &c.id,
            &CheckRecord {
                ok: false,
                error: Some("HTTP 401".into()),
            },
        )
        .expect("record");
        let c = repo.find("github").expect("find");
        assert_eq!(c.last_check_ok, Some(false));
        assert_eq!(c.last_check_error.as_deref(), Some("HTTP 401"));
        assert!(c.last_checked_at.is_some());
    }

    #[test]
    fn run_tokens_resolve_only_while_the_execution_runs() {
        let (_d, store) = store();
        let p = store
            .personas()
            .create(&spec("Runner", 1))
            .expect("persona");
        let e = store
            .executions()
            .enqueue(&NewExecution::manual(p.id.clone(), None))
            .expect("enqueue");
        let repo = store.credentials();
        repo.issue_run_token(e.id.as_str(), "hash-a")
            .expect("issue");
        assert_eq!(
            repo.run_token_execution("hash-a").expect("q"),
            None,
            "queued"
        );
        store.executions().claim(&e.id, 4, "me").expect("claim");
        assert_eq!(
            repo.run_token_execution("hash-a").expect("q").as_deref(),
            Some(e.id.as_str())
        );
        assert_eq!(repo.run_token_execution("hash-b").expect("q"), None);
        repo.revoke_run_token(e.id.as_str()).expect("revoke");
        assert_eq!(repo.run_token_execution("hash-a").expect("q"), None);
    }

    #[test]
    fn tools_validate_and_attach() {
        let (_d, store) = store();
        let tools = store.tools();
        let t = tools
            .create(&NewTool {
                name: "open-issue".into(),
                description: "Opens a GitHub issue".into(),
                input_schema: serde_json::json!({"type": "object"}),
                call: ToolCall::Http {
                    method: "POST".into(),
                    url: "https://api.github.com/repos/o/r/issues".into(),
                    headers: vec![("Authorization".into(), "Bearer $GITHUB_TOKEN".into())],
                    body: Some("{\"title\": \"...\"}".into()),
                },
            })
            .expect("create");
        let bad = tools.create(&NewTool {
            name: "x".into(),
            description: "d".into(),
            input_schema: serde_json::json!({}),
            call: ToolCall::Http {
                method: "FETCH".into(),
                url: "https://x".into(),
                headers: vec![],
                body: None,
            },
        });
        assert!(bad.expect_err("bad method").to_string().contains("method"));
        let p = store
            .personas()
            .create(&spec("Triage", 1))
            .expect("persona");
        tools
            .set_persona_tools(&p.id, std::slice::from_ref(&t.id))
            .expect("attach");
        let attached = tools.of_persona(&p.id).expect("of");
        assert_eq!(attached[0].name, "open-issue");
        tools.remove("open-issue").expect("remove");
        assert!(tools.of_persona(&p.id).expect("of").is_empty());
    }
}
mod bus;

mod datasafe;

mod review;
