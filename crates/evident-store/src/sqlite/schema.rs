//! Opening SQLite connections with the settings acknowledgements depend on, and migrations.

use crate::error::StoreError;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::time::Duration;

/// Migrations in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/sqlite/0001_init.sql"),
    include_str!("../../migrations/sqlite/0002_dead_letters.sql"),
    include_str!("../../migrations/sqlite/0003_folds.sql"),
    include_str!("../../migrations/sqlite/0004_retention.sql"),
    include_str!("../../migrations/sqlite/0005_filter_indexes.sql"),
    include_str!("../../migrations/sqlite/0006_data_terms.sql"),
    include_str!("../../migrations/sqlite/0007_drop_data_terms.sql"),
    include_str!("../../migrations/sqlite/0008_term_segments.sql"),
    include_str!("../../migrations/sqlite/0009_packed_terms.sql"),
    include_str!("../../migrations/sqlite/0010_findings.sql"),
    include_str!("../../migrations/sqlite/0011_integrity_log.sql"),
    include_str!("../../migrations/sqlite/0012_personal_keys.sql"),
    include_str!("../../migrations/sqlite/0013_retention_log.sql"),
    include_str!("../../migrations/sqlite/0014_side_records.sql"),
];

/// How long a connection waits for another's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// WAL pages after which the writer checkpoints by itself when a background checkpointer
/// runs (64 MiB of 4 KiB pages); a backstop, normally never reached.
const BACKSTOP_AUTOCHECKPOINT: i64 = 16_384;

/// Opens the writer connection: WAL, `synchronous=FULL` (checked, not assumed), migrated.
/// With `background_checkpoints` the writer leaves checkpoints to
/// [`super::checkpoint::Checkpointer`] up to a backstop threshold.
pub(crate) fn open_writer(
    path: &Path,
    background_checkpoints: bool,
) -> Result<Connection, StoreError> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    conn.execute_batch(
        "PRAGMA synchronous = FULL;
         PRAGMA cache_size = -65536;
         PRAGMA temp_store = MEMORY;
         PRAGMA journal_size_limit = 67108864;",
    )?;
    let sync: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0))?;
    assert_durable(&mode, sync)?;
    if background_checkpoints {
        conn.pragma_update(None, "wal_autocheckpoint", BACKSTOP_AUTOCHECKPOINT)?;
    }
    migrate(&mut conn)?;
    Ok(conn)
}

/// Refuses to run unless every commit is fsynced: WAL with `synchronous=FULL` (2) or
/// EXTRA (3). NORMAL can lose committed transactions on power loss.
fn assert_durable(journal_mode: &str, synchronous: i64) -> Result<(), StoreError> {
    if !journal_mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::NotDurable(format!(
            "journal_mode is {journal_mode}, expected wal"
        )));
    }
    if synchronous < 2 {
        return Err(StoreError::NotDurable(format!(
            "synchronous is {synchronous}, expected 2 (FULL) or 3 (EXTRA)"
        )));
    }
    Ok(())
}

/// Opens the connection background checkpoints run on (it writes the database file, so
/// it syncs as the writer does).
pub(crate) fn open_checkpointer(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 0;")?;
    Ok(conn)
}

/// Opens a read-only connection for queries.
pub(crate) fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.execute_batch("PRAGMA cache_size = -16384;")?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::SchemaTooNew {
            found: version,
            supported: known,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durability_is_checked_not_assumed() {
        assert!(assert_durable("wal", 2).is_ok());
        assert!(assert_durable("WAL", 3).is_ok());
        assert!(assert_durable("wal", 1).is_err());
        assert!(assert_durable("delete", 2).is_err());
    }
}
