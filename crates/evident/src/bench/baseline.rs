//! The naive baseline: the seeds' `security_events` table with its five indexes, in SQLite
//! with `synchronous=FULL`, one transaction per 1000 rows, rows inserted one by one.
//! (The seeds' GIN index on `event_data` has no SQLite counterpart and is left out.)

use super::workload::WorkEvent;
use anyhow::Context;
use rusqlite::{Connection, params};
use std::path::Path;
use std::time::{Duration, Instant};

const SCHEMA: &str = "
CREATE TABLE security_events (
  id TEXT PRIMARY KEY,
  event_type VARCHAR(100) NOT NULL,
  event_data TEXT NOT NULL,
  context TEXT,
  timestamp TEXT DEFAULT CURRENT_TIMESTAMP,
  correlation_id VARCHAR(100),
  user_id VARCHAR(100),
  source_ip TEXT,
  severity VARCHAR(20) DEFAULT 'info',
  processed BOOLEAN DEFAULT FALSE,
  created_at TEXT DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX idx_security_events_type ON security_events(event_type);
CREATE INDEX idx_security_events_timestamp ON security_events(timestamp);
CREATE INDEX idx_security_events_user ON security_events(user_id);
CREATE INDEX idx_security_events_severity ON security_events(severity);
CREATE INDEX idx_security_events_correlation ON security_events(correlation_id);
";

/// Rows per transaction.
pub const ROWS_PER_TX: usize = 1000;

/// Inserts `events` into a fresh naive table at `path`; returns the time the inserts took.
pub fn run(path: &Path, events: &[WorkEvent]) -> anyhow::Result<Duration> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).context("cannot remove the old baseline database");
        }
        _ => {}
    }
    let mut conn = Connection::open(path).context("cannot create the baseline database")?;
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    conn.execute_batch("PRAGMA synchronous = FULL;")?;
    conn.execute_batch(SCHEMA)?;
    let rows: Vec<(String, String)> = events
        .iter()
        .map(|e| (e.data.to_string(), e.context.to_string()))
        .collect();
    let started = Instant::now();
    for (chunk, chunk_rows) in events.chunks(ROWS_PER_TX).zip(rows.chunks(ROWS_PER_TX)) {
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO security_events (id, event_type, event_data, context, timestamp, correlation_id, user_id, source_ip, severity)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for (e, (data, context)) in chunk.iter().zip(chunk_rows) {
                stmt.execute(params![
                    e.id,
                    e.event_type,
                    data,
                    context,
                    e.timestamp,
                    e.correlation_id,
                    e.user_id,
                    e.source_ip,
                    e.severity
                ])?;
            }
        }
        tx.commit()?;
    }
    Ok(started.elapsed())
}
