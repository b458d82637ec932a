//! Vault and redaction costs: `cargo bench -p personas-engine --bench vault`.
//!
//! A plain timing harness (no criterion: these are a handful of coarse numbers, reported as
//! medians of repeated runs). What it measures:
//! - unlocking a passphrase vault (Argon2id, the stored parameters) — paid once per process;
//! - sealing and opening one value (AES-256-GCM);
//! - resolving a persona's credentials for a run with an unlocked vault;
//! - building a run's redactor, and redacting typical `stream-json` lines with and without a
//!   secret in them (the per-line cost every run pays).

use personas_core::redact::Redactor;
use personas_core::{PersonaSpec, Secret};
use personas_engine::credentials::{self, CredentialInput};
use personas_engine::vault::{Vault, VaultOptions};
use personas_store::Store;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                black_box(f());
                t.elapsed()
            })
            .collect(),
    )
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_in_dir(dir.path()).expect("store");
    let opts = VaultOptions {
        passphrase: Some(Secret::new("correct horse battery staple")),
        ..VaultOptions::default()
    };
    let p = store
        .personas()
        .create(&PersonaSpec::new("Bench", "bench"))
        .expect("persona");
    let mut ids = Vec::new();
    for i in 0..5 {
        let row = credentials::add(
            &store,
            &opts,
            &CredentialInput {
                name: format!("cred{i}"),
                kind: "bearer".into(),
                fields: [(
                    "token".to_string(),
                    Secret::new(format!("tok_{i}_{}", "x".repeat(40))),
                )]
                .into(),
                env_overrides: [("token".to_string(), format!("TOKEN_{i}"))].into(),
            },
        )
        .expect("add");
        ids.push(row.id);
    }
    store
        .credentials()
        .set_persona_credentials(&p.id, &ids)
        .expect("link");

    let unlock = time(5, || Vault::open(&store, &opts).expect("open"));
    println!(
        "vault unlock (Argon2id 64 MiB, t=3, p=1): {:.1} ms",
        unlock.as_secs_f64() * 1e3
    );

    let vault = Arc::new(Vault::open(&store, &opts).expect("open").expect("vault"));
    let value = Secret::new("ghp_".to_string() + &"a".repeat(36));
    let seal = time(2000, || {
        vault.seal("cred-id", "token", &value).expect("seal")
    });
    let sealed = vault.seal("cred-id", "token", &value).expect("seal");
    let open = time(2000, || {
        vault
            .open_value("c", "cred-id", "token", &sealed, vault.generation())
            .expect("open")
    });
    println!(
        "seal one value: {:.1} µs · open one value: {:.1} µs",
        seal.as_secs_f64() * 1e6,
        open.as_secs_f64() * 1e6
    );

    let resolve = time(200, || {
        credentials::for_run(&store, &p.id, &mut || Ok(Arc::clone(&vault))).expect("resolve")
    });
    println!(
        "resolve 5 credentials for a run (vault unlocked): {:.2} ms",
        resolve.as_secs_f64() * 1e3
    );

    let secrets: Vec<(String, Secret)> = (0..5)
        .map(|i| {
            (
                format!("cred{i}.token"),
                Secret::new(format!("tok_{i}_{}", "x".repeat(40))),
            )
        })
        .collect();
    let build = time(200, || {
        Redactor::new(secrets.iter().map(|(l, s)| (l.as_str(), s)))
    });
    let red = Redactor::new(secrets.iter().map(|(l, s)| (l.as_str(), s)));
    println!(
        "build a redactor for 5 secrets: {:.1} µs",
        build.as_secs_f64() * 1e6
    );

    let clean = r#"{"type":"assistant","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-5","content":[{"type":"text","text":"Here are the release notes for version 1.2: fixed the login bug, added dark mode, and improved start-up time by 30 percent."}],"stop_reason":null,"usage":{"input_tokens":10,"output_tokens":25}},"parent_tool_use_id":null,"session_id":"1c61ca83-4765-4956-9664-e1e77fa8116e"}"#;
    let dirty = clean.replace("dark mode", &format!("token tok_3_{}", "x".repeat(40)));
    let big: String = std::iter::repeat_n(clean, 1000)
        .collect::<Vec<_>>()
        .join("\n");
    for (name, line) in [
        ("clean line", clean),
        ("line with a secret", dirty.as_str()),
    ] {
        let t = time(20_000, || red.redact(line).len());
        println!(
            "redact a {}-byte {name}: {:.2} µs ({:.0} MB/s)",
            line.len(),
            t.as_secs_f64() * 1e6,
            line.len() as f64 / t.as_secs_f64() / 1e6
        );
    }
    let t = time(50, || red.redact(&big).len());
    println!(
        "redact {} KiB of clean output: {:.2} ms ({:.0} MB/s)",
        big.len() / 1024,
        t.as_secs_f64() * 1e3,
        big.len() as f64 / t.as_secs_f64() / 1e6
    );
}
