//! Engine overhead against running the real Claude Code CLI directly on the same scripted
//! answer: median wall time of N sequential runs each way. Run with
//! `cargo bench -p personas-engine --bench overhead` (after `make test-deps`).

use personas_core::{ExecutionStatus, PersonaSpec};
use personas_engine::{Engine, EngineConfig, EngineEvent};
use personas_store::{NewExecution, Store};
use personas_testkit::api::{ScriptedApi, Step};
use personas_testkit::claude::{claude_bin, isolated_env, run_claude};
use std::time::{Duration, Instant};

const RUNS: usize = 15;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let api = ScriptedApi::start().await;
    api.script("", vec![Step::text("Hello from the benchmark.")]);
    let env = isolated_env(&api);

    // Through the engine: enqueue → terminal event (prompt assembly, spawn, parse, store, finish).
    let dir = tempfile::tempdir().expect("dir");
    let mut config = EngineConfig::for_data_dir(dir.path());
    config.claude_path = Some(claude_bin());
    config.env = env.vars.iter().cloned().collect();
    let store = Store::open_in_dir(dir.path()).expect("store");
    let persona = store
        .personas()
        .create(&PersonaSpec::new("Bench", "Say hello."))
        .expect("persona");
    let engine = Engine::new(config, store);
    engine.start().await.expect("start");
    let mut events = engine.subscribe();
    let cwd = tempfile::tempdir().expect("cwd");

    // Alternate the two so drift in machine load hits both equally.
    let (mut direct, mut via_engine) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        // Direct: the CLI as a script would run it.
        let t = Instant::now();
        let run = run_claude(
            &env,
            cwd.path(),
            &["-p", "--output-format", "stream-json", "--verbose"],
            "Say hello.",
            Duration::from_secs(60),
        )
        .await;
        assert!(run.status.success(), "direct run failed: {}", run.stderr);
        direct.push(t.elapsed().as_secs_f64() * 1000.0);

        let t = Instant::now();
        let exec = engine
            .enqueue(NewExecution::manual(persona.id.clone(), None))
            .await
            .expect("enqueue");
        loop {
            if let Ok(EngineEvent::Execution { execution }) = events.recv().await
                && execution.id == exec.id
                && execution.status.is_terminal()
            {
                assert_eq!(
                    execution.status,
                    ExecutionStatus::Completed,
                    "{:?}",
                    execution.error_message
                );
                break;
            }
        }
        via_engine.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    engine.shutdown().await;

    let (d, e) = (median(direct), median(via_engine));
    println!("direct CLI: median {d:.0} ms over {RUNS} runs");
    println!("via engine: median {e:.0} ms over {RUNS} runs");
    println!(
        "engine overhead: {:+.1} % ({:+.0} ms)",
        (e - d) / d * 100.0,
        e - d
    );
}
