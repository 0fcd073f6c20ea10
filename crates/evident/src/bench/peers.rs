//! `evident bench-pg-baselines`: the seeds' way of storing events in PostgreSQL, measured
//! on the same workload evident is measured on: the `security_events` table with the
//! seeds' six indexes (GIN on the JSONB data included), loaded by
//! - psql `\copy` of a CSV file (the naive ceiling),
//! - multi-row INSERT statements of 1000 rows, one after another,
//! - one INSERT per event from a pool of connections (the seeds' design; the floor).
//!
//! It also writes the workload as NDJSON in the reference row format, for
//! `evident bench --input` to send the same events to evident.

use super::workload::{IdKind, WorkEvent, generate};
use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tokio_postgres::NoTls;

/// The seeds' table and indexes (implementation plan, "Create security_events table").
const SCHEMA: &str = "
SET client_min_messages TO warning;
DROP TABLE IF EXISTS security_events;
CREATE TABLE security_events (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  event_type VARCHAR(100) NOT NULL,
  event_data JSONB NOT NULL,
  context JSONB,
  timestamp TIMESTAMPTZ DEFAULT NOW(),
  correlation_id VARCHAR(100),
  user_id VARCHAR(100),
  source_ip INET,
  severity VARCHAR(20) DEFAULT 'info',
  processed BOOLEAN DEFAULT FALSE,
  created_at TIMESTAMPTZ DEFAULT NOW()
);
CREATE INDEX idx_security_events_type ON security_events(event_type);
CREATE INDEX idx_security_events_timestamp ON security_events(timestamp);
CREATE INDEX idx_security_events_user ON security_events(user_id);
CREATE INDEX idx_security_events_severity ON security_events(severity);
CREATE INDEX idx_security_events_correlation ON security_events(correlation_id);
CREATE INDEX idx_security_events_data ON security_events USING GIN(event_data);
";

const COLUMNS: &str =
    "id, event_type, event_data, context, timestamp, correlation_id, user_id, source_ip, severity";

/// `evident bench-pg-baselines`.
#[derive(Debug, clap::Args)]
pub struct PeersArgs {
    /// PostgreSQL database to create the `security_events` table in (dropped first).
    #[arg(long)]
    pub database_url: String,
    /// Events in the workload.
    #[arg(long, default_value_t = 200_000)]
    pub events: usize,
    /// Workload seed (the same seed gives the same events as `evident bench`).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Connections in the pool of the one-INSERT-per-event baseline.
    #[arg(long, default_value_t = 16)]
    pub pool: usize,
    /// Directory for the workload files (workload.ndjson, security_events.csv).
    #[arg(long, default_value = ".bench-data")]
    pub dir: PathBuf,
    /// Only (re)create the empty table and exit (for other writers, such as syslog daemons).
    #[arg(long)]
    pub reset_table: bool,
}

/// Writes the workload files, then runs each baseline on a fresh table.
pub async fn run(args: PeersArgs) -> anyhow::Result<std::process::ExitCode> {
    if args.reset_table {
        let (client, connection) = tokio_postgres::connect(&args.database_url, NoTls)
            .await
            .with_context(|| format!("cannot connect to {}", args.database_url))?;
        tokio::spawn(connection);
        client.batch_execute(SCHEMA).await?;
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let events = generate(args.events, args.seed, IdKind::V4);
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let ndjson = args.dir.join("workload.ndjson");
    let csv = args.dir.join("security_events.csv");
    write_files(&events, &ndjson, &csv)?;
    println!("workload: {} events in {}", events.len(), ndjson.display());
    let n = events.len() as f64;
    let mut rates = serde_json::Map::new();

    let (client, connection) = tokio_postgres::connect(&args.database_url, NoTls)
        .await
        .with_context(|| format!("cannot connect to {}", args.database_url))?;
    tokio::spawn(connection);

    client.batch_execute(SCHEMA).await?;
    let took = copy_with_psql(&args.database_url, &csv)?;
    report(&mut rates, "psql COPY (CSV)", n / took);

    client.batch_execute(SCHEMA).await?;
    let started = Instant::now();
    for chunk in events.chunks(1000) {
        client.batch_execute(&multi_row_insert(chunk)).await?;
    }
    report(
        &mut rates,
        "INSERT, 1000 rows per statement",
        n / started.elapsed().as_secs_f64(),
    );

    client.batch_execute(SCHEMA).await?;
    let took = insert_one_by_one(&args.database_url, &events, args.pool).await?;
    report(
        &mut rates,
        &format!("one INSERT per event, pool of {}", args.pool),
        n / took,
    );
    println!("{}", serde_json::Value::Object(rates));
    Ok(std::process::ExitCode::SUCCESS)
}

fn report(rates: &mut serde_json::Map<String, serde_json::Value>, name: &str, rate: f64) {
    println!("{name}: {rate:.0} events/s");
    rates.insert(name.into(), serde_json::json!(rate.round()));
}

fn write_files(events: &[WorkEvent], ndjson: &Path, csv: &Path) -> anyhow::Result<()> {
    let mut rows = std::io::BufWriter::new(std::fs::File::create(ndjson)?);
    let mut table = std::io::BufWriter::new(std::fs::File::create(csv)?);
    for e in events {
        let line = serde_json::json!({
            "id": e.id, "event_type": e.event_type, "severity": e.severity, "timestamp": e.timestamp,
            "user_id": e.user_id, "source_ip": e.source_ip, "correlation_id": e.correlation_id,
            "data": e.data, "context": e.context,
        });
        writeln!(rows, "{line}")?;
        let fields = [
            e.id.clone(),
            e.event_type.clone(),
            e.data.to_string(),
            e.context.to_string(),
            e.timestamp.clone(),
            e.correlation_id.clone(),
            e.user_id.clone(),
            e.source_ip.clone(),
            e.severity.clone(),
        ];
        let quoted: Vec<String> = fields
            .iter()
            .map(|f| format!("\"{}\"", f.replace('"', "\"\"")))
            .collect();
        writeln!(table, "{}", quoted.join(","))?;
    }
    rows.flush()?;
    table.flush()?;
    Ok(())
}

fn copy_with_psql(url: &str, csv: &Path) -> anyhow::Result<f64> {
    let started = Instant::now();
    let status = std::process::Command::new("psql")
        .args(["-q", "-v", "ON_ERROR_STOP=1", url, "-c"])
        .arg(format!(
            "\\copy security_events ({COLUMNS}) FROM '{}' WITH (FORMAT csv)",
            csv.display()
        ))
        .status()
        .context("cannot run psql (PostgreSQL's client)")?;
    anyhow::ensure!(status.success(), "psql COPY failed: {status}");
    Ok(started.elapsed().as_secs_f64())
}

/// SQL literal for `s` (standard_conforming_strings: only quotes are doubled).
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// One INSERT of `events` as literal rows: how a batching client without COPY writes.
fn multi_row_insert(events: &[WorkEvent]) -> String {
    let rows: Vec<String> = events
        .iter()
        .map(|e| {
            format!(
                "({}, {}, {}, {}, {}, {}, {}, {}, {})",
                literal(&e.id),
                literal(&e.event_type),
                literal(&e.data.to_string()),
                literal(&e.context.to_string()),
                literal(&e.timestamp),
                literal(&e.correlation_id),
                literal(&e.user_id),
                literal(&e.source_ip),
                literal(&e.severity)
            )
        })
        .collect();
    format!(
        "INSERT INTO security_events ({COLUMNS}) VALUES {}",
        rows.join(",")
    )
}

/// One parameterised INSERT per event, `pool` connections at once (the seeds' design).
async fn insert_one_by_one(url: &str, events: &[WorkEvent], pool: usize) -> anyhow::Result<f64> {
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let events = std::sync::Arc::new(events.to_vec());
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..pool.max(1) {
        let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
        tokio::spawn(connection);
        let (next, events) = (next.clone(), events.clone());
        workers.push(tokio::spawn(async move {
            let insert = client
                .prepare(&format!(
                    "INSERT INTO security_events ({COLUMNS}) VALUES ($1::text::uuid, $2, $3::text::jsonb, $4::text::jsonb, $5::text::timestamptz, $6, $7, $8::text::inet, $9)"
                ))
                .await?;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(e) = events.get(i) else { break };
                let (data, context) = (e.data.to_string(), e.context.to_string());
                client
                    .execute(
                        &insert,
                        &[&e.id, &e.event_type, &data, &context, &e.timestamp, &e.correlation_id, &e.user_id, &e.source_ip, &e.severity],
                    )
                    .await?;
            }
            anyhow::Ok(())
        }));
    }
    for w in workers {
        w.await??;
    }
    Ok(started.elapsed().as_secs_f64())
}
