//! Postgres: the pool (deadpool over tokio-postgres), the embedded migrations (refinery, from
//! `migrations/`), transactions, and how a Postgres failure reads at the wire.
//!
//! Postgres is the source of truth of the cloud: every state change is one transaction here,
//! and what must reach Kafka rides along in the same transaction ([`super::outbox`]).

use deadpool_postgres::{Config, ManagerConfig, PoolConfig, RecyclingMethod, Runtime};
use personas_cloud_api::CloudError;
use tokio_postgres::NoTls;

pub use deadpool_postgres::{GenericClient, Object as Conn, Pool, Transaction};

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// A pool of `size` connections to `url`. Connections are made lazily; [`migrate`] makes the
/// first one, so a wrong URL fails at start-up.
pub fn pool(url: &str, size: usize) -> anyhow::Result<Pool> {
    let mut cfg = Config::new();
    cfg.url = Some(url.to_string());
    cfg.manager = Some(ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    });
    let mut pool_cfg = PoolConfig::new(size.max(2));
    pool_cfg.timeouts.wait = Some(std::time::Duration::from_secs(10));
    pool_cfg.timeouts.create = Some(std::time::Duration::from_secs(10));
    cfg.pool = Some(pool_cfg);
    cfg.create_pool(Some(Runtime::Tokio1), NoTls)
        .map_err(|e| anyhow::anyhow!("the Postgres settings are unusable: {e}"))
}

/// Applies the migrations not yet applied. Peers starting together serialise on an advisory
/// lock, so each migration runs once.
pub async fn migrate(url: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    let (mut client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .context("cannot connect to Postgres (--database-url)")?;
    let conn_task = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!("migration connection ended: {e}");
        }
    });
    // Any constant: the lock only orders personas-cloud's own migrators.
    const LOCK: i64 = 0x7065_7273_6f6e_6173;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK])
        .await
        .context("cannot take the migration lock")?;
    let report = embedded::migrations::runner()
        .run_async(&mut client)
        .await
        .context("the Postgres migrations failed");
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK])
        .await;
    drop(client);
    let _ = conn_task.await;
    for m in report?.applied_migrations() {
        tracing::info!("applied migration {}", m);
    }
    Ok(())
}

/// A connection from the pool; a pool that cannot give one means Postgres is unreachable.
pub async fn conn(pool: &Pool) -> Result<Conn, CloudError> {
    pool.get().await.map_err(|e| {
        tracing::warn!("no Postgres connection: {e}");
        CloudError::unavailable("the database is unavailable; try again")
    })
}

/// Starts a transaction on `conn` (READ COMMITTED: the writers that must serialise lock the
/// rows they change).
pub async fn begin(conn: &mut Conn) -> Result<Transaction<'_>, CloudError> {
    conn.transaction().await.map_err(pg)
}

/// A Postgres error as the wire sees it: connection trouble is `unavailable` (retryable), a
/// statement error is `internal` (a bug: the statements are ours). The detail is logged, not
/// sent: it may name tables and values.
pub fn pg(e: tokio_postgres::Error) -> CloudError {
    if e.is_closed() || e.as_db_error().is_none() {
        tracing::warn!("Postgres unavailable: {e}");
        return CloudError::unavailable("the database is unavailable; try again");
    }
    let db = e
        .as_db_error()
        .map(|d| (d.code().code().to_string(), d.message().to_string()));
    match db {
        // Serialization failure, deadlock, admin shutdown, too many connections.
        Some((code, msg)) if matches!(code.as_str(), "40001" | "40P01" | "57P01" | "53300") => {
            tracing::warn!("Postgres refused transiently ({code}): {msg}");
            CloudError::unavailable("the database is busy; try again")
        }
        Some((code, msg)) => {
            tracing::error!("Postgres error {code}: {msg}");
            CloudError::internal("a database statement failed")
        }
        None => CloudError::internal("a database statement failed"),
    }
}

/// A row's JSON column decoded, or `internal` naming the column (a row we wrote is unreadable).
pub fn json<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
    what: &str,
) -> Result<T, CloudError> {
    serde_json::from_value(value).map_err(|e| {
        tracing::error!("stored {what} does not decode: {e}");
        CloudError::internal(format!("a stored {what} does not decode"))
    })
}

// Statements through the connection's statement cache: each is parsed once per connection,
// then every use is one round trip (an uncached `query(&str)` prepares it every time). Their
// errors are already as the wire sees them ([`pg`]).

type Params<'a> = &'a [&'a (dyn tokio_postgres::types::ToSql + Sync)];

pub async fn query(
    c: &impl GenericClient,
    sql: &str,
    params: Params<'_>,
) -> Result<Vec<tokio_postgres::Row>, CloudError> {
    let st = c.prepare_cached(sql).await.map_err(pg)?;
    c.query(&st, params).await.map_err(pg)
}

pub async fn query_opt(
    c: &impl GenericClient,
    sql: &str,
    params: Params<'_>,
) -> Result<Option<tokio_postgres::Row>, CloudError> {
    let st = c.prepare_cached(sql).await.map_err(pg)?;
    c.query_opt(&st, params).await.map_err(pg)
}

pub async fn query_one(
    c: &impl GenericClient,
    sql: &str,
    params: Params<'_>,
) -> Result<tokio_postgres::Row, CloudError> {
    let st = c.prepare_cached(sql).await.map_err(pg)?;
    c.query_one(&st, params).await.map_err(pg)
}

pub async fn execute(
    c: &impl GenericClient,
    sql: &str,
    params: Params<'_>,
) -> Result<u64, CloudError> {
    let st = c.prepare_cached(sql).await.map_err(pg)?;
    c.execute(&st, params).await.map_err(pg)
}
