//! Shared helpers: the backing services, settings for in-process orchestrators, a tenant with a
//! pushed persona, waiting on a condition with a deadline.

use personas_cloud::config::{JwtSettings, OrchestratorSettings, SecretSetting};
use personas_cloud::orchestrator::{Orchestrator, db};
use personas_testkit::cloud::Postgres;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

pub const SECRET: &str = "test deployment secret";
pub const MASTER_KEY: [u8; 32] = [9u8; 32];
pub const TENANT: &str = "tenant-a";

/// The testkit's Tansu broker (topics in a SQLite file kept across restarts).
pub use personas_testkit::cloud::Broker as TestBroker;

/// Polls `cond` until it holds or `within` passes (then panics naming `what`).
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A fresh, migrated database of a fresh cluster.
pub struct Db {
    pub pg: Postgres,
    pub url: String,
}

impl Db {
    pub async fn start() -> Db {
        let pg = tokio::task::spawn_blocking(|| {
            let pg = Postgres::start_temp();
            pg.create_database("cloud");
            pg
        })
        .await
        .expect("postgres");
        let url = pg.url("cloud");
        db::migrate(&url).await.expect("migrations");
        Db { pg, url }
    }

    pub fn pool(&self) -> db::Pool {
        db::pool(&self.url, 8).expect("pool")
    }

    /// The result of a query, as psql prints it (unaligned, tuples only).
    pub fn sql(&self, sql: &str) -> String {
        self.pg.psql("cloud", sql).trim().to_string()
    }
}

/// Orchestrator settings against `db` and `brokers`, listening on a free loopback port.
pub fn settings(id: &str, db: &Db, brokers: &str, namespace: &str) -> OrchestratorSettings {
    OrchestratorSettings {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        id: id.to_string(),
        advertise_url: "http://127.0.0.1".into(),
        database_url: db.url.clone(),
        database_pool: 8,
        kafka_brokers: brokers.to_string(),
        kafka_namespace: namespace.to_string(),
        kafka_properties: Vec::new(),
        kafka_partitions: 3,
        deployment_secret: SecretSetting(Zeroizing::new(SECRET.to_string())),
        master_key: Zeroizing::new(MASTER_KEY),
        admin_token: Some(SecretSetting(Zeroizing::new("admin-token".into()))),
        jwt: JwtSettings::default(),
        max_attempts: 3,
        worker_timeout_ms: 2_000,
    }
}

/// Shared state over `db` without the broker's tasks (the producer connects lazily): for
/// tests of the Postgres paths.
pub fn offline_state(db: &Db, id: &str) -> Orchestrator {
    let s = settings(id, db, "127.0.0.1:1", "offline");
    let producer = personas_cloud::orchestrator::kafka::producer(&s).expect("producer");
    Orchestrator::new(s, db.pool(), producer)
}

/// A persona file the worker's runner can run.
pub fn persona_text(name: &str, script: &str) -> String {
    format!(
        "format: personas/v1\nname: {name}\ninstructions: Follow script {script}.\npermissions:\n  allow: [Bash]\n"
    )
}

/// Stores a tenant and a pushed persona; returns the persona's id.
pub fn push_persona(db: &Db, tenant: &str, name: &str, text: &str) -> String {
    let id = personas_core::PersonaId::new().to_string();
    let text = text.replace('\'', "''");
    db.sql(&format!(
        "INSERT INTO tenants (id) VALUES ('{tenant}') ON CONFLICT DO NOTHING;
         INSERT INTO personas (tenant_id, id, name, definition) VALUES ('{tenant}', '{id}', '{name}', '{text}');"
    ));
    id
}
