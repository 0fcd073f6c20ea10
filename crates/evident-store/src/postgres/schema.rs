//! Versioned migrations, applied at start under an advisory lock, and the durability
//! check: acknowledgements promise that a commit is on disk.

use crate::error::StoreError;
use tokio_postgres::Client;

/// `(version, SQL)`, oldest first.
pub(super) const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("../../migrations/postgres/0001_init.sql")),
    (
        2,
        include_str!("../../migrations/postgres/0002_filter_order.sql"),
    ),
    (
        3,
        include_str!("../../migrations/postgres/0003_data_terms.sql"),
    ),
    (
        4,
        include_str!("../../migrations/postgres/0004_term_segments.sql"),
    ),
    (
        5,
        include_str!("../../migrations/postgres/0005_packed_terms.sql"),
    ),
    (
        6,
        include_str!("../../migrations/postgres/0006_findings.sql"),
    ),
    (
        7,
        include_str!("../../migrations/postgres/0007_personal_keys.sql"),
    ),
    (
        8,
        include_str!("../../migrations/postgres/0008_integrity_log.sql"),
    ),
    (
        9,
        include_str!("../../migrations/postgres/0009_retention_log.sql"),
    ),
    (
        10,
        include_str!("../../migrations/postgres/0010_side_records.sql"),
    ),
    (
        11,
        include_str!("../../migrations/postgres/0011_drop_data_gin.sql"),
    ),
];

/// Key of the advisory lock that keeps two starting servers from migrating at once.
const MIGRATION_LOCK: i64 = 0x6576_6964_656e_7401;

/// Brings the schema to the newest version this build knows, in one transaction;
/// returns the version it found.
pub(crate) async fn migrate(client: &mut Client) -> Result<i32, StoreError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS evident_schema (
             version    integer     PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await?;
    let current: i32 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM evident_schema", &[])
        .await?
        .get(0);
    let newest = MIGRATIONS.last().map_or(0, |(v, _)| *v);
    if current > newest {
        return Err(StoreError::SchemaTooNew {
            found: current.into(),
            supported: newest.into(),
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO evident_schema (version) VALUES ($1)",
            &[version],
        )
        .await?;
        tracing::info!(version, "applied PostgreSQL schema migration");
    }
    tx.commit().await?;
    Ok(current)
}

/// Fails unless a commit on this connection waits for its WAL flush (`fsync` on and
/// `synchronous_commit` not `off`): otherwise a 202 could be lost in a crash.
pub(crate) async fn check_durable(client: &Client) -> Result<(), StoreError> {
    let fsync: String = client.query_one("SHOW fsync", &[]).await?.get(0);
    let sync_commit: String = client
        .query_one("SHOW synchronous_commit", &[])
        .await?
        .get(0);
    if fsync != "on" || sync_commit == "off" {
        return Err(StoreError::NotDurable(format!(
            "PostgreSQL has fsync={fsync}, synchronous_commit={sync_commit}; evident needs fsync=on and synchronous_commit on"
        )));
    }
    Ok(())
}
