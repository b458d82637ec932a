//! The bus, triggers and scheduler end to end: the real Claude Code CLI against the scripted
//! API, a real store, real file-system notifications. Waits are on engine events.

use super::{Harness, WAIT, wait_terminal};
use chrono::{TimeDelta, Utc};
use personas_core::trigger::{ChainOn, MissedPolicy, TriggerConfig, TriggerType};
use personas_core::{Execution, ExecutionId, ExecutionStatus, Persona, PersonaSpec, TriggerKind};
use personas_engine::{Engine, EngineConfig, EngineEvent};
use personas_store::{EventRow, NewExecution, NewTrigger, Store};
use personas_testkit::api::{ScriptedApi, Step};
use personas_testkit::claude::{claude_bin, isolated_env};
use serde_json::json;
use std::collections::HashMap;
use tokio::sync::broadcast;

fn trigger(h: &Harness, persona: &Persona, config: TriggerConfig) -> personas_store::TriggerRow {
    let t = h
        .store()
        .triggers()
        .create(
            &NewTrigger {
                persona_id: persona.id.clone(),
                config,
                enabled: true,
            },
            Utc::now(),
        )
        .expect("create trigger");
    h.engine.triggers_changed();
    t
}

fn subscribe(h: &Harness, persona: &Persona, pattern: &str) {
    trigger(
        h,
        persona,
        TriggerConfig::Event {
            pattern: pattern.into(),
            source: None,
        },
    );
}

fn chain(h: &Harness, persona: &Persona, after: &Persona, on: ChainOn) {
    trigger(
        h,
        persona,
        TriggerConfig::Chain {
            after_persona_id: after.id.clone(),
            on,
        },
    );
}

/// Waits for the next event `pick` returns something for.
async fn wait_for<T>(
    events: &mut broadcast::Receiver<EngineEvent>,
    what: &str,
    mut pick: impl FnMut(&EngineEvent) -> Option<T>,
) -> T {
    let fut = async {
        loop {
            match events.recv().await {
                Ok(e) => {
                    if let Some(v) = pick(&e) {
                        return v;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event channel closed: {e}"),
            }
        }
    };
    tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}"))
}

/// Waits until `n` executions of these personas have ended; returns them by persona.
async fn wait_runs(
    events: &mut broadcast::Receiver<EngineEvent>,
    personas: &[&Persona],
    n: usize,
) -> Vec<Execution> {
    let mut done: HashMap<ExecutionId, Execution> = HashMap::new();
    while done.len() < n {
        let e = wait_for(events, "execution end", |e| match e {
            EngineEvent::Execution { execution }
                if execution.status.is_terminal()
                    && personas.iter().any(|p| p.id == execution.persona_id) =>
            {
                Some((**execution).clone())
            }
            _ => None,
        })
        .await;
        done.insert(e.id.clone(), e);
    }
    let mut all: Vec<Execution> = done.into_values().collect();
    all.sort_by_key(|e| e.started_at);
    all
}

fn request_of<'a>(
    requests: &'a [personas_testkit::RecordedRequest],
    persona: &Persona,
) -> &'a personas_testkit::RecordedRequest {
    requests
        .iter()
        .find(|r| r.all_text().contains(&persona.instructions))
        .unwrap_or_else(|| panic!("no request for {}", persona.name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emitted_event_runs_its_subscriber_which_sees_the_event_in_its_prompt() {
    let h = Harness::new(|_| {}).await;
    let emitter = h.persona(
        "Intake",
        vec![Step::text(
            "Filed it.\n{\"emit_event\": {\"type\": \"ticket.created\", \"data\": {\"id\": 42, \"title\": \"printer on fire\"}}}",
        )],
        |_| {},
    );
    let triage = h.persona("Triage", vec![Step::text("triaged")], |_| {});
    let other = h.persona("Unrelated", vec![], |_| {});
    subscribe(&h, &triage, "ticket.*");
    subscribe(&h, &other, "deploy.done");
    // The emitter listens to its own event type too; its own events must not restart it.
    subscribe(&h, &emitter, "ticket.created");

    let mut events = h.engine.subscribe();
    let first = h.run(&emitter, None).await;
    assert_eq!(
        first.status,
        ExecutionStatus::Completed,
        "{:?}",
        first.error_message
    );
    let (event, executions) = wait_for(&mut events, "delivery", |e| match e {
        EngineEvent::EventDelivered { event, executions }
            if event.event_type == "ticket.created" =>
        {
            Some((event.clone(), executions.clone()))
        }
        _ => None,
    })
    .await;
    assert_eq!(
        executions.len(),
        1,
        "only Triage: not Unrelated, not Intake itself"
    );
    let run = wait_terminal(&mut events, &executions[0]).await;
    assert_eq!(run.persona_id, triage.id);
    assert_eq!(
        run.status,
        ExecutionStatus::Completed,
        "{:?}",
        run.error_message
    );
    assert_eq!(run.trigger, TriggerKind::Event);
    assert_eq!(run.trigger_ref.as_deref(), Some(event.id.as_str()));
    assert_eq!(
        run.input,
        Some(json!({"id": 42, "title": "printer on fire"})),
        "payload is the input"
    );

    let requests = h.api.requests();
    let prompt = request_of(&requests, &triage).all_text();
    assert!(prompt.contains("## Triggering event"), "{prompt}");
    assert!(prompt.contains("`ticket.created`"), "{prompt}");
    assert!(
        prompt.contains("persona \"Intake\""),
        "source named: {prompt}"
    );
    assert!(
        prompt.contains("\"title\": \"printer on fire\""),
        "payload shown: {prompt}"
    );
    assert!(prompt.contains("event-payload-"), "payload fenced as data");

    let stored = h.store().bus().get(&event.id).expect("event");
    assert_eq!((stored.status.as_str(), stored.depth), ("delivered", 1));
    let deliveries = h.store().bus().deliveries(&event.id).expect("deliveries");
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].execution_id.as_ref(), Some(&run.id));
    let all = h
        .store()
        .executions()
        .list(&Default::default())
        .expect("list");
    assert_eq!(all.len(), 2, "Intake once, Triage once: {all:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persona_action_runs_exactly_its_target() {
    let h = Harness::new(|_| {}).await;
    let worker = h.persona("Worker", vec![Step::text("summary")], |_| {});
    let boss = h.persona(
        "Boss",
        vec![Step::text(
            "{\"persona_action\": {\"target\": \"Worker\", \"action\": \"summarise\", \"input\": {\"doc\": 7}}}",
        )],
        |s| s.permissions.allow_personas = vec!["Worker".into()],
    );
    let bystander = h.persona("Bystander", vec![], |_| {});
    subscribe(&h, &bystander, "*");
    let mut events = h.engine.subscribe();
    h.run(&boss, None).await;
    let runs = wait_runs(&mut events, &[&worker, &bystander], 1).await;
    assert_eq!(runs[0].persona_id, worker.id);
    assert_eq!(
        runs[0].input,
        Some(json!({"action": "summarise", "input": {"doc": 7}}))
    );
    let requests = h.api.requests();
    let prompt = request_of(&requests, &worker).all_text();
    assert!(prompt.contains("`persona_action`"), "{prompt}");
    assert!(
        !requests
            .iter()
            .any(|r| r.all_text().contains(&bystander.instructions)),
        "an addressed action does not fan out to wildcard subscribers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_runs_in_order_with_the_previous_output() {
    let h = Harness::new(|_| {}).await;
    let a = h.persona("Coder", vec![Step::text("patch: fix the printer")], |_| {});
    let b = h.persona("Reviewer", vec![Step::text("review: looks good")], |_| {});
    let c = h.persona("Deployer", vec![Step::text("deployed")], |_| {});
    let never = h.persona("On failure", vec![], |_| {});
    chain(&h, &b, &a, ChainOn::Completed);
    chain(&h, &c, &b, ChainOn::Any);
    chain(&h, &never, &a, ChainOn::Failed);
    let mut events = h.engine.subscribe();
    let first = h.run(&a, None).await;
    assert_eq!(first.status, ExecutionStatus::Completed);
    let runs = wait_runs(&mut events, &[&b, &c], 2).await;
    let (rb, rc) = (&runs[0], &runs[1]);
    assert_eq!(
        (rb.persona_id.clone(), rc.persona_id.clone()),
        (b.id.clone(), c.id.clone())
    );
    assert!(rb.started_at >= first.finished_at, "B starts after A ends");
    assert!(rc.started_at >= rb.finished_at, "C starts after B ends");
    assert_eq!(
        (rb.trigger, rc.trigger),
        (TriggerKind::Chain, TriggerKind::Chain)
    );
    let input = rc.input.clone().expect("input");
    assert_eq!(input["output"], "review: looks good");
    assert_eq!(input["after"]["persona"], "Reviewer");
    assert_eq!(input["after"]["status"], "completed");
    let requests = h.api.requests();
    let prompt = request_of(&requests, &b).all_text();
    assert!(prompt.contains("`chain.completed`"), "{prompt}");
    assert!(
        prompt.contains("patch: fix the printer"),
        "A's output reached B: {prompt}"
    );
    assert_eq!(
        h.store()
            .executions()
            .list(&Default::default())
            .expect("list")
            .len(),
        3,
        "the failure chain did not fire"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_cycle_stops_at_the_depth_limit_with_the_reason_recorded() {
    let h = Harness::new(|c| c.max_chain_depth = 4).await;
    let ping = h.persona("Ping", vec![Step::text("ping")], |_| {});
    let pong = h.persona("Pong", vec![Step::text("pong")], |_| {});
    chain(&h, &pong, &ping, ChainOn::Completed);
    chain(&h, &ping, &pong, ChainOn::Completed);
    let mut events = h.engine.subscribe();
    h.engine
        .enqueue(NewExecution::manual(ping.id.clone(), None))
        .await
        .expect("enqueue");
    let stopped: EventRow = wait_for(&mut events, "a stopped chain", |e| match e {
        EngineEvent::EventSkipped { event } => Some(event.clone()),
        _ => None,
    })
    .await;
    let reason = stopped.error.clone().unwrap_or_default();
    assert!(
        reason.contains("cycle Ping → Pong → Ping → Pong → Ping"),
        "{reason}"
    );
    assert!(reason.contains("depth limit of 4"), "{reason}");
    assert_eq!(stopped.depth, 4);
    let all = h
        .store()
        .executions()
        .list(&Default::default())
        .expect("list");
    let names: Vec<&str> = all.iter().rev().map(|e| e.persona_name.as_str()).collect();
    assert_eq!(
        names,
        ["Ping", "Pong", "Ping", "Pong"],
        "four runs, then stopped"
    );
    assert!(all.iter().all(|e| e.status == ExecutionStatus::Completed));
    let stored = h.store().bus().get(&stopped.id).expect("stored");
    assert_eq!(
        stored.status,
        personas_core::EventStatus::Skipped,
        "the stop is in the bus history"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seconds_schedule_fires_on_time_as_a_durable_event() {
    let h = Harness::new(|_| {}).await;
    let p = h.persona("Ticker", vec![Step::text("tick")], |_| {});
    let mut events = h.engine.subscribe();
    let t = trigger(
        &h,
        &p,
        TriggerConfig::Cron {
            expr: "* * * * * *".into(),
            tz: "Europe/Prague".into(),
            missed: MissedPolicy::Skip,
        },
    );
    let event_id = wait_for(&mut events, "a cron fire", |e| match e {
        EngineEvent::TriggerFired {
            trigger_id,
            kind: TriggerType::Cron,
            event_id,
            ..
        } if trigger_id == &t.id => Some(event_id.clone()),
        _ => None,
    })
    .await;
    // Stop it firing every second.
    h.store()
        .triggers()
        .set_enabled(t.id.as_str(), false, Utc::now())
        .expect("disable");
    h.engine.triggers_changed();
    let event = h.store().bus().get(&event_id).expect("event");
    assert_eq!(
        (event.event_type.as_str(), event.source_kind.as_str()),
        ("schedule.fired", "schedule")
    );
    let scheduled: chrono::DateTime<Utc> = event.payload["scheduled_for"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("scheduled_for");
    let late = event.created_at - scheduled;
    assert!(
        late >= TimeDelta::zero() && late < TimeDelta::milliseconds(1_500),
        "fired {late:?} after its time"
    );
    assert_eq!(event.payload["missed"], false);
    let run = wait_for(&mut events, "the scheduled run", |e| match e {
        EngineEvent::EventDelivered { event, executions } if event.id == event_id => {
            executions.first().cloned()
        }
        _ => None,
    })
    .await;
    let done = wait_terminal(&mut events, &run).await;
    assert_eq!(
        (done.trigger, done.status),
        (TriggerKind::Schedule, ExecutionStatus::Completed)
    );
    let stored = h.store().triggers().get(&t.id).expect("trigger");
    assert!(stored.fire_count >= 1 && stored.last_fired_at.is_some());
}

/// An engine over a store prepared before it starts (as after downtime).
async fn engine_after(setup: impl FnOnce(&Store)) -> (Engine, tempfile::TempDir, ScriptedApi) {
    let api = ScriptedApi::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_in_dir(dir.path()).expect("store");
    setup(&store);
    let mut config = EngineConfig::for_data_dir(dir.path());
    config.claude_path = Some(claude_bin());
    config.env = isolated_env(&api).vars.into_iter().collect();
    let engine = Engine::new(config, store);
    (engine, dir, api)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_runs_after_downtime_follow_each_triggers_policy() {
    let ten_minutes_ago = Utc::now() - TimeDelta::minutes(10);
    let mut ids = Vec::new();
    let (engine, _dir, _api) = engine_after(|store| {
        let mut spec = PersonaSpec::new("Digest", "Summarise.");
        spec.enabled = true;
        let p = store.personas().create(&spec).expect("persona");
        for missed in [
            MissedPolicy::Skip,
            MissedPolicy::Once,
            MissedPolicy::CatchUp(3),
        ] {
            // Created ten minutes ago, with nothing running since: ten runs were missed.
            let t = store
                .triggers()
                .create(
                    &NewTrigger {
                        persona_id: p.id.clone(),
                        config: TriggerConfig::Cron {
                            expr: "* * * * *".into(),
                            tz: "UTC".into(),
                            missed,
                        },
                        enabled: true,
                    },
                    ten_minutes_ago,
                )
                .expect("trigger");
            ids.push(t.id);
        }
    })
    .await;
    let mut events = engine.subscribe();
    let started = Utc::now();
    engine.start().await.expect("start");
    // once (1) + catch-up:3 (3) missed fires; skip fires none.
    let mut fired: HashMap<String, usize> = HashMap::new();
    while fired.values().sum::<usize>() < 4 {
        let t = wait_for(&mut events, "missed-run fires", |e| match e {
            EngineEvent::TriggerFired { trigger_id, .. } => Some(trigger_id.to_string()),
            _ => None,
        })
        .await;
        *fired.entry(t).or_default() += 1;
    }
    let store = engine.store();
    let missed_fires = |id: &personas_core::TriggerId| -> Vec<chrono::DateTime<Utc>> {
        let mut times: Vec<_> = store
            .bus()
            .list(&Default::default())
            .expect("list")
            .into_iter()
            .filter(|e| e.trigger_id.as_deref() == Some(id.as_str()) && e.payload["missed"] == true)
            .map(|e| {
                e.payload["scheduled_for"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .expect("time")
            })
            .collect();
        times.sort();
        times
    };
    assert!(
        missed_fires(&ids[0]).is_empty(),
        "skip fires none of the missed runs"
    );
    let once = missed_fires(&ids[1]);
    assert_eq!(once.len(), 1, "once fires one");
    assert!(
        started - once[0] <= TimeDelta::seconds(65),
        "the latest missed run: {once:?}"
    );
    let catch_up = missed_fires(&ids[2]);
    assert_eq!(catch_up.len(), 3, "catch-up:3 fires three");
    assert_eq!(
        catch_up[1] - catch_up[0],
        TimeDelta::minutes(1),
        "consecutive minutes"
    );
    assert_eq!(catch_up[2], once[0], "up to the latest missed run");
    for id in &ids {
        let t = store.triggers().get(id).expect("trigger");
        assert!(
            t.next_fire_at.is_some_and(|n| n > started),
            "rescheduled into the future"
        );
    }
    engine.shutdown().await;
}

async fn file_event(events: &mut broadcast::Receiver<EngineEvent>) -> EventRow {
    wait_for(events, "a file event", |e| match e {
        EngineEvent::EventPublished { event }
            if event.source_kind == personas_core::trigger::SourceKind::Watcher =>
        {
            Some(event.clone())
        }
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_watcher_fires_on_create_and_modify_matching_its_glob() {
    let watched = tempfile::tempdir().expect("watched dir");
    let root = watched.path().canonicalize().expect("canonical");
    let (engine, _dir, _api) = engine_after(|store| {
        let p = store
            .personas()
            .create(&PersonaSpec::new("Indexer", "Index files."))
            .expect("persona");
        store
            .triggers()
            .create(
                &NewTrigger {
                    persona_id: p.id.clone(),
                    config: TriggerConfig::Watch {
                        path: root.to_string_lossy().into_owned(),
                        glob: Some("*.txt".into()),
                    },
                    enabled: true,
                },
                Utc::now(),
            )
            .expect("trigger");
    })
    .await;
    let mut events = engine.subscribe();
    engine.start().await.expect("start");
    // Not matching the glob: never an event. Written first, so the first event we see proves it.
    std::fs::write(root.join("notes.md"), "ignored").expect("write md");
    std::fs::write(root.join("a.txt"), "hello").expect("write txt");
    let created = file_event(&mut events).await;
    assert_eq!(created.event_type, "file.created");
    assert_eq!(created.payload["relative_path"], "a.txt");
    assert_eq!(created.payload["change"], "created");
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(root.join("a.txt"))
            .expect("open");
        f.write_all(b" again").expect("append");
    }
    let modified = file_event(&mut events).await;
    assert_eq!(
        (
            modified.event_type.as_str(),
            modified.payload["relative_path"].as_str()
        ),
        ("file.modified", Some("a.txt"))
    );
    assert!(
        modified.target_persona_id.is_some(),
        "addressed to the watching persona"
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_scheduler_fires_nothing_until_resumed() {
    let h = Harness::new(|_| {}).await;
    let p = h.persona("Paused ticker", vec![Step::text("tick")], |_| {});
    let mut events = h.engine.subscribe();
    h.engine.set_scheduler_paused(true);
    assert!(h.engine.scheduler_paused());
    let t = trigger(
        &h,
        &p,
        TriggerConfig::Cron {
            expr: "* * * * * *".into(),
            tz: "UTC".into(),
            missed: MissedPolicy::Once,
        },
    );
    // Unpaused, this fires within a second; paused, nothing may fire in 2.5 s.
    let quiet = tokio::time::timeout(std::time::Duration::from_millis(2_500), async {
        loop {
            if let Ok(EngineEvent::TriggerFired { trigger_id, .. }) = events.recv().await
                && trigger_id == t.id
            {
                return;
            }
        }
    })
    .await;
    assert!(quiet.is_err(), "a paused scheduler fired a cron trigger");
    let stored_for = |h: &Harness| {
        h.store()
            .bus()
            .list(&Default::default())
            .expect("list")
            .into_iter()
            .filter(|e| e.trigger_id.as_deref() == Some(t.id.as_str()))
            .count()
    };
    assert_eq!(stored_for(&h), 0, "nothing was stored while paused");
    h.engine.set_scheduler_paused(false);
    assert!(!h.engine.scheduler_paused());
    let event_id = wait_for(&mut events, "a fire after resuming", |e| match e {
        EngineEvent::TriggerFired {
            trigger_id,
            event_id,
            ..
        } if trigger_id == &t.id => Some(event_id.clone()),
        _ => None,
    })
    .await;
    h.store()
        .triggers()
        .set_enabled(t.id.as_str(), false, Utc::now())
        .expect("disable");
    h.engine.triggers_changed();
    let event = h.store().bus().get(&event_id).expect("event");
    assert_eq!(event.event_type, "schedule.fired");
    assert!(stored_for(&h) >= 1, "resumed fires are stored");
}
