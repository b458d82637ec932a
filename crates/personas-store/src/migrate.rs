//! Schema migrations under SQLite's write lock.
//!
//! refinery reads the applied versions and applies the missing ones in separate transactions
//! (its rusqlite driver opens a deferred transaction for each). Two processes opening a new data
//! dir at once then both read "nothing applied" and both run V1; the second fails with `table
//! personas already exists` (5 of 32 concurrent first opens did, measured). Here the whole run —
//! reading the history, applying, recording — happens inside one `BEGIN IMMEDIATE` transaction
//! we hold: refinery drives a [`Locked`] connection whose "transactions" are statements inside
//! ours. Whoever comes second waits on the busy handler, then finds everything applied. A crash
//! (even SIGKILL) mid-migration rolls the whole run back.

use crate::StoreError;
use refinery::Migration;
use refinery_core::traits::sync::{Migrate, Query, Transaction};
use rusqlite::Connection;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// The newest schema version this build knows.
pub fn latest_version() -> i64 {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| i64::from(m.version()))
        .max()
        .unwrap_or(0)
}

/// Brings the schema up to date (or to `target`), holding the write lock throughout.
pub(crate) fn run(conn: &mut Connection, target: Option<i32>) -> Result<(), StoreError> {
    let tx = rusqlite::Transaction::new(conn, rusqlite::TransactionBehavior::Immediate)?;
    let target = target.map_or(refinery::Target::Latest, refinery::Target::Version);
    embedded::migrations::runner()
        .set_grouped(true)
        .set_target(target)
        .run(&mut Locked(&tx))
        .map_err(|e| StoreError::Migration(e.to_string()))?;
    tx.commit()?;
    Ok(())
}

/// A connection already inside our `BEGIN IMMEDIATE` transaction, as refinery sees it.
struct Locked<'c>(&'c rusqlite::Transaction<'c>);

impl Transaction for Locked<'_> {
    type Error = rusqlite::Error;

    fn execute<'a, T: Iterator<Item = &'a str>>(
        &mut self,
        queries: T,
    ) -> Result<usize, Self::Error> {
        let mut count = 0;
        for q in queries {
            self.0.execute_batch(q)?;
            count += 1;
        }
        Ok(count)
    }
}

impl Query<Vec<Migration>> for Locked<'_> {
    fn query(&mut self, query: &str) -> Result<Vec<Migration>, Self::Error> {
        let mut stmt = self.0.prepare(query)?;
        let mut rows = stmt.query([])?;
        let mut applied = Vec::new();
        while let Some(row) = rows.next()? {
            let version: i32 = row.get(0)?;
            let name: String = row.get(1)?;
            let on: String = row.get(2)?;
            let checksum: String = row.get(3)?;
            let bad = |what: &str, value: &str| {
                rusqlite::Error::InvalidColumnType(
                    0,
                    format!("refinery_schema_history {what} {value:?}"),
                    rusqlite::types::Type::Text,
                )
            };
            let on = OffsetDateTime::parse(&on, &Rfc3339).map_err(|_| bad("applied_on", &on))?;
            let checksum = checksum
                .parse::<u64>()
                .map_err(|_| bad("checksum", &checksum))?;
            applied.push(Migration::applied(version, name, on, checksum));
        }
        Ok(applied)
    }
}

impl Migrate for Locked<'_> {}
