//! The embedded SQLite store: one file under the data dir, shared safely by the daemon, the
//! desktop app and one-shot CLI commands.
//!
//! - WAL journal, foreign keys on, a busy timeout, `synchronous=FULL` by default so a committed
//!   write survives a crash (see [`Durability`]).
//! - Schema through append-only refinery migrations in `migrations/`, applied under the write
//!   lock (`migrate`), so concurrent first opens of a new data dir all succeed.
//! - The data dir and the database files are private (`files`); `backup` copies the live
//!   database with SQLite's online backup API and restores one; `retention` prunes old rows.
//! - Repositories ([`Store::personas`], [`Store::executions`], [`Store::protocol`],
//!   [`Store::credentials`] (sealed values only; the vault lives in the engine), [`Store::tools`],
//!   [`Store::stats`], [`Store::bus`], [`Store::triggers`]) are thin views over the connection
//!   pool; every multi-statement change runs in one `BEGIN IMMEDIATE` transaction so concurrent
//!   processes never interleave half-done updates.
//! - Review, delivery, healing and budgets ([`Store::reviews`], [`Store::deliveries`],
//!   [`Store::healing`], [`Store::policies`], [`Store::memories`]; admission
//!   in `admission`) own the V4 tables.
#![forbid(unsafe_code)]

pub mod admission;
pub mod backup;
pub mod bus;
pub mod cloud;
pub mod credentials;
pub mod delivery;
mod error;
pub mod executions;
pub mod files;
pub mod healing;
mod lookup;
pub mod memories;
mod migrate;
pub mod personas;
pub mod policies;
pub mod protocol;
pub mod retention;
pub mod review;
pub mod stats;
mod time;
pub mod tools;

pub use credentials::{
    CheckRecord, CredentialRepo, CredentialRow, NewCredential, Resealed, SealedValue, StoredField,
    VaultRecord,
};
pub mod triggers;

pub use bus::{
    BusRepo, Decision, Delivered, DeliveryRow as EventDeliveryRow, EventFilter, EventRow, NewEvent,
    Recipient, RetryPolicy, SubscriptionRow,
};
pub use error::StoreError;
pub use executions::{ExecutionFilter, ExecutionRepo, NewExecution, NewLine};
pub use personas::{PersonaLinks, PersonaRepo};
pub use protocol::{MessageRow, ProtocolRepo};
pub use stats::{DayStats, PersonaStats, RunStats, StatsRepo};
pub use tools::{NewTool, ToolCall, ToolDefinition, ToolRepo};
pub use triggers::{NewTrigger, TriggerRepo, TriggerRow};
pub mod webhooks;
pub use webhooks::{Claim, SealedSecret, SealedWebhookSecret, WebhookRepo};

pub use admission::{Admitted, GlobalCaps};
pub use delivery::{ChannelRow, DeliveryRepo, DeliveryRow, DueDelivery, Notice};
pub use healing::{Advice, BreakerRow, HealingDefaults, HealingRepo, HealingReport, IssueRow};
pub use memories::{MemoryEdit, MemoryRepo, MemoryRow};
pub use policies::{PersonaPolicy, PolicyRepo};
pub use review::{Decided, DecidedBy, Effect, ReviewRepo, ReviewRow};

use r2d2::{Pool, PooledConnection};
use r2d2_sqlite::SqliteConnectionManager;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

pub use migrate::latest_version as latest_schema_version;
pub use retention::{GcReport, RetentionPolicy};

/// How hard a commit tries to reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=FULL`: a committed transaction survives process crash and power loss.
    #[default]
    Full,
    /// `synchronous=NORMAL`: survives a process crash; the last commits may roll back on power
    /// loss. Faster; for benchmarks and throwaway data.
    Normal,
}

/// Options for opening a store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub durability: Durability,
    pub pool_size: u32,
    pub busy_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            durability: Durability::Full,
            pool_size: 8,
            busy_timeout: Duration::from_secs(10),
        }
    }
}

pub(crate) type Conn = PooledConnection<SqliteConnectionManager>;

/// A handle to the store; cheap to clone and share across threads.
#[derive(Clone)]
pub struct Store {
    pool: Pool<SqliteConnectionManager>,
    path: PathBuf,
    durability: Durability,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

/// The database file name inside the data dir.
pub const DB_FILE: &str = "personas.db";

impl Store {
    /// Opens (creating if needed) the store in `data_dir` and brings its schema up to date.
    pub fn open_in_dir(data_dir: &Path) -> Result<Store, StoreError> {
        Self::open(&data_dir.join(DB_FILE), StoreOptions::default())
    }

    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &Path, opts: StoreOptions) -> Result<Store, StoreError> {
        Self::open_at(path, opts, None)
    }

    /// Opens the database at `path` migrated only up to schema `version`: for tests of
    /// upgrades (an old store migrated by a newer build).
    #[doc(hidden)]
    pub fn open_at_version(path: &Path, version: i32) -> Result<Store, StoreError> {
        Self::open_at(path, StoreOptions::default(), Some(version))
    }

    fn open_at(path: &Path, opts: StoreOptions, target: Option<i32>) -> Result<Store, StoreError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { path, source }
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            files::create_private_dir(dir).map_err(io(dir))?;
        }
        // Created 0600 before SQLite sees it: SQLite would create it 0644 (less the umask), and
        // it gives the WAL and SHM files the database file's mode.
        files::create_private_file(path).map_err(io(path))?;
        let sync = match opts.durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        BUSY_LIMIT_US.fetch_max(
            u64::try_from(opts.busy_timeout.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        let manager = SqliteConnectionManager::file(path).with_init(move |c| {
            // auto_vacuum takes effect on a new database (before the first table) and at the
            // next VACUUM of an old one: pruned pages can then be handed back to the file
            // system a few at a time (`retention`) instead of by a full rewrite.
            c.execute_batch(&format!(
                "PRAGMA auto_vacuum = INCREMENTAL;
                 PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = {sync};
                 PRAGMA foreign_keys = ON;
                 PRAGMA temp_store = MEMORY;
                 PRAGMA cache_size = -8000;"
            ))?;
            c.busy_handler(Some(busy_wait))
        });
        let pool = Pool::builder()
            .max_size(opts.pool_size)
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(30))
            .build(manager)
            .map_err(|e| StoreError::Open {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        let store = Store {
            pool,
            path: path.to_path_buf(),
            durability: opts.durability,
        };
        let mut conn = store.conn()?;
        migrate::run(&mut conn, target)?;
        drop(conn);
        Ok(store)
    }

    /// The `synchronous` setting writes normally use.
    pub(crate) fn synchronous(&self) -> &'static str {
        match self.durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn conn(&self) -> Result<Conn, StoreError> {
        self.pool.get().map_err(StoreError::from)
    }

    pub fn personas(&self) -> PersonaRepo<'_> {
        PersonaRepo::new(self)
    }

    pub fn executions(&self) -> ExecutionRepo<'_> {
        ExecutionRepo::new(self)
    }

    pub fn protocol(&self) -> ProtocolRepo<'_> {
        ProtocolRepo::new(self)
    }

    pub fn reviews(&self) -> ReviewRepo<'_> {
        ReviewRepo::new(self)
    }

    pub fn policies(&self) -> PolicyRepo<'_> {
        PolicyRepo::new(self)
    }

    pub fn healing(&self) -> HealingRepo<'_> {
        HealingRepo::new(self)
    }

    pub fn deliveries(&self) -> DeliveryRepo<'_> {
        DeliveryRepo::new(self)
    }

    pub fn memories(&self) -> MemoryRepo<'_> {
        MemoryRepo::new(self)
    }

    pub fn credentials(&self) -> CredentialRepo<'_> {
        CredentialRepo::new(self)
    }

    pub fn tools(&self) -> ToolRepo<'_> {
        ToolRepo::new(self)
    }

    pub fn stats(&self) -> StatsRepo<'_> {
        StatsRepo::new(self)
    }

    pub fn bus(&self) -> BusRepo<'_> {
        BusRepo::new(self)
    }

    pub fn triggers(&self) -> TriggerRepo<'_> {
        TriggerRepo::new(self)
    }

    pub fn retention(&self) -> retention::RetentionRepo<'_> {
        retention::RetentionRepo::new(self)
    }

    pub fn cloud(&self) -> cloud::CloudRepo<'_> {
        cloud::CloudRepo::new(self)
    }

    pub fn webhooks(&self) -> WebhookRepo<'_> {
        WebhookRepo::new(self)
    }

    /// Integrity check and schema version, for `personas doctor`.
    pub fn health(&self) -> Result<StoreHealth, StoreError> {
        let conn = self.conn()?;
        let integrity: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        let journal: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
        let schema_version: i64 = conn
            .query_row(
                "SELECT COALESCE(MAX(version), 0) FROM refinery_schema_history",
                [],
                |r| r.get(0),
            )
            .unwrap_or(0);
        let personas: i64 = conn.query_row("SELECT COUNT(*) FROM personas", [], |r| r.get(0))?;
        let executions: i64 =
            conn.query_row("SELECT COUNT(*) FROM executions", [], |r| r.get(0))?;
        let size_bytes = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        Ok(StoreHealth {
            ok: integrity == "ok",
            integrity,
            journal_mode: journal,
            schema_version,
            personas,
            executions,
            size_bytes,
        })
    }
}

/// What `personas doctor` reports about the store.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoreHealth {
    pub ok: bool,
    pub integrity: String,
    pub journal_mode: String,
    pub schema_version: i64,
    pub personas: i64,
    pub executions: i64,
    pub size_bytes: u64,
}

/// The in-process writer lock of the database at `path`.
fn writer_lock(path: &str) -> Arc<Mutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<String, Arc<Mutex<()>>>>> = OnceLock::new();
    let mut locks = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    Arc::clone(locks.entry(path.to_string()).or_default())
}

/// Longest a connection waits for another writer, in microseconds (the largest `busy_timeout`
/// any store in this process was opened with).
static BUSY_LIMIT_US: AtomicU64 = AtomicU64::new(0);

/// Waits for a locked database: short sleeps first, growing to 5 ms. Writers here hold the
/// lock for about a millisecond; SQLite's own schedule (1, 2, 5, 10, … 100 ms) would make every
/// contended write — a dispatcher behind a publisher — wait far longer than the lock is held.
fn busy_wait(attempt: i32) -> bool {
    const FIRST_US: u64 = 50;
    const MAX_US: u64 = 5_000;
    let n = u64::try_from(attempt).unwrap_or(0);
    // 50, 100, … doubling until 5 ms: 7 doublings (6.35 ms in all), then 5 ms steps.
    let (sleep_us, waited_us) = if n < 7 {
        ((FIRST_US << n).min(MAX_US), FIRST_US * ((1 << n) - 1))
    } else {
        (MAX_US, FIRST_US * 127 + (n - 7) * MAX_US)
    };
    if waited_us >= BUSY_LIMIT_US.load(Ordering::Relaxed) {
        return false;
    }
    std::thread::sleep(Duration::from_micros(sleep_us));
    true
}

/// Runs `f` inside one `BEGIN IMMEDIATE` transaction: commit on `Ok`, roll back on `Err`.
///
/// Writers of one database in this process first queue on an in-process lock: they then hand
/// the write lock to each other as soon as it is free, instead of polling SQLite's busy handler
/// (a busy publisher could otherwise starve the bus dispatcher). Other processes still meet
/// them at SQLite's lock.
pub(crate) fn write_tx<T>(
    conn: &mut Conn,
    f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let lock = writer_lock(conn.path().unwrap_or(""));
    // A panic while holding it cannot leave shared state behind (SQLite rolls back).
    let _writer = lock.lock().unwrap_or_else(|p| p.into_inner());
    let tx = rusqlite::Transaction::new(conn, rusqlite::TransactionBehavior::Immediate)?;
    let out = f(&tx)?;
    tx.commit()?;
    Ok(out)
}
