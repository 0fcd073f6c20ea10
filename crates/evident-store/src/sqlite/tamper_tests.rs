//! Randomised tamper trials on the embedded store: a log with signed checkpoints is
//! edited behind the store's back, one random mutation per trial, and the walk must catch
//! every one, naming the first bad sequence number for single-row edits. Each trial is
//! undone before the next (the rows and checkpoints it touched are restored), and the
//! log is checked clean again now and then, so one store serves every trial.
//!
//! Defaults keep the suite quick; the full recipe (100,000 events, 100 checkpoints,
//! 1,000 trials) runs with `EVIDENT_TAMPER_EVENTS=100000 EVIDENT_TAMPER_TRIALS=1000`
//! (scripts/tamper-trials.sh).

use super::SqliteStore;
use crate::IntegrityLog;
use crate::roles::*;
use crate::testsuite::event;
use evident_integrity::verify::{Problem, Report};
use evident_integrity::{Hash, Signer};
use evident_model::{EncodedEvent, Severity};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use rusqlite::types::Value;
use rusqlite::{Connection, params};
use std::sync::Arc;

#[allow(clippy::disallowed_methods)] // test support: the recipe's size comes from the environment
fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Columns of an event row, in table order.
const COLUMNS: [&str; 17] = [
    "seq",
    "id",
    "time",
    "received_at",
    "type",
    "category",
    "severity",
    "priority",
    "outcome",
    "source",
    "agent_id",
    "user_id",
    "source_ip",
    "facility",
    "correlation_id",
    "body",
    "leaf",
];

/// What a trial expects the walk to report.
#[derive(Debug)]
enum Expect {
    /// This exact problem.
    Exactly(Problem),
    /// A head mismatch whose range holds this sequence number.
    RangeHolding(i64),
    /// Any problem (checkpoint and key mutations).
    AnyProblem,
    /// No problem, but an unverified tail of this many events (a forged row appended
    /// after the last checkpoint: only chain continuity covers it).
    UnverifiedTail(u64),
}

/// What a trial changed, to put back.
struct Undo {
    rows: Vec<Vec<Value>>,
    forged: Vec<i64>,
    checkpoints: Option<Vec<Vec<Value>>>,
}

fn select_rows(conn: &Connection, sql: &str, args: &[i64]) -> Vec<Vec<Value>> {
    let mut stmt = conn.prepare_cached(sql).unwrap();
    let n = stmt.column_count();
    stmt.query_map(rusqlite::params_from_iter(args), |r| {
        (0..n).map(|i| r.get::<_, Value>(i)).collect()
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

fn event_rows(conn: &Connection, seqs: &[i64]) -> Vec<Vec<Value>> {
    seqs.iter()
        .flat_map(|s| select_rows(conn, "SELECT * FROM events WHERE seq = ?1", &[*s]))
        .collect()
}

fn insert_row(conn: &Connection, table: &str, row: &[Value]) {
    let marks = vec!["?"; row.len()].join(", ");
    conn.prepare_cached(&format!("INSERT INTO {table} VALUES ({marks})"))
        .unwrap()
        .execute(rusqlite::params_from_iter(row))
        .unwrap();
}

fn undo(conn: &Connection, undo: Undo) {
    for seq in undo.forged {
        conn.execute("DELETE FROM events WHERE seq = ?1", [seq])
            .unwrap();
    }
    // Every touched row goes first (a swap moved ids between them), then the originals.
    for row in &undo.rows {
        conn.execute("DELETE FROM events WHERE seq = ?1", [&row[0]])
            .unwrap();
    }
    for row in &undo.rows {
        insert_row(conn, "events", row);
    }
    if let Some(rows) = undo.checkpoints {
        conn.execute("DELETE FROM checkpoints", []).unwrap();
        for row in &rows {
            insert_row(conn, "checkpoints", row);
        }
    }
}

/// Flips one bit of `value`, keeping its storage class.
fn flip(value: &Value, rng: &mut StdRng) -> Option<Value> {
    match value {
        Value::Integer(i) => Some(Value::Integer(i ^ (1 << rng.random_range(0..40)))),
        Value::Text(t) if !t.is_empty() => {
            let mut bytes = t.clone().into_bytes();
            let at = rng.random_range(0..bytes.len());
            bytes[at] ^= 1 << rng.random_range(0..8);
            Some(Value::Blob(bytes))
        }
        Value::Blob(b) if !b.is_empty() => {
            let mut bytes = b.clone();
            let at = rng.random_range(0..bytes.len());
            bytes[at] ^= 1 << rng.random_range(0..8);
            Some(Value::Blob(bytes))
        }
        _ => None,
    }
}

/// A random checkpoint's position, smallest first (from the trial's seeded generator).
fn pick_checkpoint(conn: &Connection, rng: &mut StdRng) -> i64 {
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM checkpoints", [], |r| r.get(0))
        .unwrap();
    rng.random_range(0..n.max(1))
}

/// Applies one random mutation; returns what to expect and how to undo it.
fn mutate(conn: &Connection, rng: &mut StdRng, n: i64, signer: &Signer) -> (String, Expect, Undo) {
    let none = |rows| Undo {
        rows,
        forged: vec![],
        checkpoints: None,
    };
    let all_checkpoints = || Some(select_rows(conn, "SELECT * FROM checkpoints", &[]));
    let seq = rng.random_range(1..=n);
    match rng.random_range(0..10) {
        0 => loop {
            // One bit of one column of one row.
            let column = rng.random_range(0..COLUMNS.len());
            let row = event_rows(conn, &[seq]);
            let Some(flipped) = flip(&row[0][column], rng) else {
                continue;
            };
            let name = COLUMNS[column];
            if name == "seq" {
                let Value::Integer(to) = flipped else {
                    continue;
                };
                let taken: bool = conn
                    .query_row(
                        "SELECT COUNT(*) > 0 FROM events WHERE seq = ?1",
                        [to],
                        |r| r.get(0),
                    )
                    .unwrap();
                if taken || to < 1 {
                    continue;
                }
                conn.execute(
                    "UPDATE events SET seq = ?1 WHERE seq = ?2",
                    params![to, seq],
                )
                .unwrap();
                let expect = if to > n {
                    Problem::Missing { seq }
                } else {
                    Problem::OutOfOrder {
                        seq: to,
                        expected: seq,
                    }
                };
                return (
                    format!("seq of {seq} to {to}"),
                    Expect::Exactly(expect),
                    Undo {
                        rows: row,
                        forged: vec![to],
                        checkpoints: None,
                    },
                );
            }
            let text_column = matches!(row[0][column], Value::Text(_));
            let set = if text_column {
                format!("UPDATE events SET {name} = CAST(?1 AS TEXT) WHERE seq = ?2")
            } else {
                format!("UPDATE events SET {name} = ?1 WHERE seq = ?2")
            };
            conn.execute(&set, params![flipped, seq]).unwrap();
            return (
                format!("a bit of {name} of {seq}"),
                Expect::Exactly(Problem::Altered { seq }),
                none(row),
            );
        },
        1 => {
            let row = event_rows(conn, &[seq]);
            let mut other = [0u8; 32];
            rng.fill_bytes(&mut other);
            conn.execute(
                "UPDATE events SET leaf = ?1 WHERE seq = ?2",
                params![other.as_slice(), seq],
            )
            .unwrap();
            (
                format!("the hash of {seq}"),
                Expect::Exactly(Problem::Altered { seq }),
                none(row),
            )
        }
        2 => {
            let row = event_rows(conn, &[seq]);
            conn.execute("DELETE FROM events WHERE seq = ?1", [seq])
                .unwrap();
            (
                format!("row {seq} deleted"),
                Expect::Exactly(Problem::Missing { seq }),
                none(row),
            )
        }
        3 => {
            // A forged row with a hash of its own: before the log, or after its end.
            let forged = EncodedEvent::new(event("auth.login.success", 1, Severity::Info).event);
            let leaf: Hash = evident_integrity::merkle::leaf_hash(&forged.bytes);
            let (at, expect) = if rng.random_bool(0.5) {
                (
                    0,
                    Expect::Exactly(Problem::OutOfOrder {
                        seq: 0,
                        expected: 1,
                    }),
                )
            } else {
                (n + 1, Expect::UnverifiedTail(1))
            };
            let e = &forged.event;
            conn.execute(
                "INSERT INTO events (seq, id, time, received_at, type, category, severity, priority, outcome,
                    source, agent_id, user_id, source_ip, facility, correlation_id, body, leaf)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
                params![
                    at,
                    e.id.as_bytes().as_slice(),
                    evident_model::unix_micros(e.time),
                    evident_model::unix_micros(e.received_at),
                    e.event_type,
                    e.category.as_str(),
                    e.severity.rank(),
                    e.priority.rank(),
                    e.outcome.as_str(),
                    e.source,
                    e.agent_id,
                    e.actor.user_id,
                    e.actor.ip,
                    e.facility,
                    e.correlation_id,
                    std::str::from_utf8(&forged.bytes).unwrap(),
                    leaf.as_slice(),
                ],
            )
            .unwrap();
            (
                format!("a forged row at {at}"),
                expect,
                Undo {
                    rows: vec![],
                    forged: vec![at],
                    checkpoints: None,
                },
            )
        }
        4 => {
            // Two rows' contents swapped (each keeps a consistent hash).
            let other = loop {
                let o = rng.random_range(1..=n);
                if o != seq {
                    break o;
                }
            };
            let rows = event_rows(conn, &[seq, other]);
            conn.execute("DELETE FROM events WHERE seq IN (?1, ?2)", [seq, other])
                .unwrap();
            for (row, to) in rows.iter().zip([other, seq]) {
                let mut moved = row.clone();
                moved[0] = Value::Integer(to);
                insert_row(conn, "events", &moved);
            }
            (
                format!("rows {seq} and {other} swapped"),
                Expect::RangeHolding(seq.min(other)),
                none(rows),
            )
        }
        5 => {
            let from = rng.random_range(2..=n);
            let seqs: Vec<i64> = (from..=n).collect();
            let rows = event_rows(conn, &seqs);
            conn.execute("DELETE FROM events WHERE seq >= ?1", [from])
                .unwrap();
            (
                format!("tail from {from} cut"),
                Expect::Exactly(Problem::Missing { seq: from }),
                none(rows),
            )
        }
        6 => {
            // The latest checkpoint replaced by an older one: caught by the witness.
            let saved = all_checkpoints();
            conn.execute(
                "DELETE FROM checkpoints WHERE size = (SELECT MAX(size) FROM checkpoints)",
                [],
            )
            .unwrap();
            (
                "latest checkpoint rolled back".into(),
                Expect::AnyProblem,
                Undo {
                    rows: vec![],
                    forged: vec![],
                    checkpoints: saved,
                },
            )
        }
        7 => {
            let saved = all_checkpoints();
            let which: i64 = conn
                .query_row(
                    "SELECT size FROM checkpoints ORDER BY size LIMIT 1 OFFSET ?1",
                    [pick_checkpoint(conn, rng)],
                    |r| r.get(0),
                )
                .unwrap();
            if rng.random_bool(0.5) {
                conn.execute(
                    "UPDATE checkpoints SET size = size + ?1 WHERE size = ?2",
                    params![rng.random_range(1..5i64), which],
                )
                .unwrap();
            } else {
                let mut root = [0u8; 32];
                rng.fill_bytes(&mut root);
                conn.execute(
                    "UPDATE checkpoints SET root = ?1 WHERE size = ?2",
                    params![root.as_slice(), which],
                )
                .unwrap();
            }
            (
                format!("checkpoint {which} size or root"),
                Expect::AnyProblem,
                Undo {
                    rows: vec![],
                    forged: vec![],
                    checkpoints: saved,
                },
            )
        }
        8 => {
            let saved = all_checkpoints();
            let (which, mut signature): (i64, Vec<u8>) = conn
                .query_row(
                    "SELECT size, signature FROM checkpoints ORDER BY size LIMIT 1 OFFSET ?1",
                    [pick_checkpoint(conn, rng)],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            let at = rng.random_range(0..signature.len());
            signature[at] ^= 1 << rng.random_range(0..8);
            conn.execute(
                "UPDATE checkpoints SET signature = ?1 WHERE size = ?2",
                params![signature, which],
            )
            .unwrap();
            (
                format!("a bit of checkpoint {which}'s signature"),
                Expect::AnyProblem,
                Undo {
                    rows: vec![],
                    forged: vec![],
                    checkpoints: saved,
                },
            )
        }
        _ => {
            // Every checkpoint re-signed with another key.
            let saved = all_checkpoints();
            let mut stmt = conn
                .prepare("SELECT size, root, time, origin FROM checkpoints")
                .unwrap();
            let rows: Vec<(i64, Vec<u8>, i64, String)> = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            for (size, root, time, origin) in rows {
                let signed = signer
                    .sign(evident_integrity::Checkpoint {
                        origin,
                        size: size as u64,
                        root: root.try_into().unwrap(),
                        time,
                    })
                    .unwrap();
                conn.execute(
                    "UPDATE checkpoints SET key_id = ?1, signature = ?2 WHERE size = ?3",
                    params![signed.key_id, signed.signature.as_slice(), size],
                )
                .unwrap();
            }
            (
                "checkpoints re-signed with another key".into(),
                Expect::AnyProblem,
                Undo {
                    rows: vec![],
                    forged: vec![],
                    checkpoints: saved,
                },
            )
        }
    }
}

fn caught(expect: &Expect, report: &Report) -> bool {
    match (expect, &report.problem) {
        (Expect::Exactly(want), Some(found)) => want == found,
        (Expect::RangeHolding(seq), Some(Problem::HeadMismatch { from_seq, to_seq })) => {
            (*from_seq..=*to_seq).contains(seq)
        }
        (Expect::AnyProblem, Some(_)) => true,
        (Expect::UnverifiedTail(n), None) => report.unverified_tail == *n,
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_tampering_is_caught_and_single_row_edits_are_named() {
    let events = setting("EVIDENT_TAMPER_EVENTS", 5_000) as i64;
    let trials = setting("EVIDENT_TAMPER_TRIALS", 200);
    let seed = setting("EVIDENT_TAMPER_SEED", 7) as u64;
    let every = (events / 100).max(1);
    let dir = tempfile::tempdir().unwrap();
    let signer = Arc::new(Signer::generate());
    let public = signer.public_key();
    {
        let store = SqliteStore::open_exclusive(dir.path()).unwrap();
        let kinds = [
            "auth.login.failure",
            "station.operation",
            "quality.check",
            "data.export",
        ];
        let mut made = 0;
        while made < events {
            let batch: Vec<EncodedEvent> = (made..(made + every).min(events))
                .map(|i| {
                    let mut e = event(kinds[i as usize % 4], i, Severity::Info).event;
                    if i % 3 == 0 {
                        e.actor.user_id = Some(format!("ps_user{}", i % 50));
                        e.actor.ip = Some(format!("192.0.2.{}", i % 200));
                        e.facility = Some(format!("plant-{}", i % 3));
                        e.correlation_id = Some(format!("req-{i}"));
                    }
                    EncodedEvent::new(e)
                })
                .collect();
            made += batch.len() as i64;
            store.append(batch.into()).await.unwrap();
            store
                .sign_checkpoint(signer.clone(), "tamper-trials".into())
                .await
                .unwrap();
        }
    }
    let store = SqliteStore::open_shared(dir.path()).unwrap();
    let clean = store.verify_log(&public, None, &|_, _| {}).unwrap().report;
    assert_eq!(clean.problem, None);
    assert_eq!(
        (clean.verified, clean.checkpoints),
        (events as u64, 100.min(events as usize))
    );
    let witness = Some(clean.verified_head);
    let conn = Connection::open(dir.path().join("evident.db")).unwrap();
    // The edits are not what is measured: no flush per statement.
    conn.pragma_update(None, "synchronous", "OFF").unwrap();
    let attacker = Signer::generate();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut missed = Vec::new();
    for trial in 0..trials {
        // Each edit, and its undo, is one transaction.
        conn.execute_batch("BEGIN").unwrap();
        let (what, expect, undo_it) = mutate(&conn, &mut rng, events, &attacker);
        conn.execute_batch("COMMIT").unwrap();
        let report = store
            .verify_log(&public, witness, &|_, _| {})
            .unwrap()
            .report;
        if !caught(&expect, &report) {
            missed.push(format!(
                "trial {trial}: {what}: expected {expect:?}, got {report:?}"
            ));
        }
        conn.execute_batch("BEGIN").unwrap();
        undo(&conn, undo_it);
        conn.execute_batch("COMMIT").unwrap();
        if trial % 50 == 49 {
            let again = store
                .verify_log(&public, witness, &|_, _| {})
                .unwrap()
                .report;
            assert_eq!(again, clean, "trial {trial} ({what}) was not undone");
        }
    }
    eprintln!(
        "{trials} tamper trials on {events} events and {} checkpoints (seed {seed}): {} caught as expected",
        clean.checkpoints,
        trials - missed.len()
    );
    assert!(
        missed.is_empty(),
        "{} missed:\n{}",
        missed.len(),
        missed.join("\n")
    );
}

/// Edits of the side tables behind the store's back (folds, findings' evidence and
/// statuses), each on a store of its own: every one is named by the walk.
#[tokio::test(flavor = "multi_thread")]
async fn side_table_edits_are_caught_and_named() {
    let blob = |id: uuid::Uuid| id.as_bytes().to_vec();
    type Edit = Box<dyn Fn(&Connection, &crate::testsuite::SideTables)>;
    let edits: Vec<(&str, Edit, &str)> = vec![
        (
            "every fold deleted",
            Box::new(|c, _| {
                c.execute("DELETE FROM folds", []).unwrap();
            }),
            "folds table has no such row (removed)",
        ),
        (
            "a fold pointed elsewhere",
            Box::new(move |c, s| {
                c.execute(
                    "UPDATE folds SET into_id = ?1 WHERE id = ?2",
                    params![blob(s.events[2]), blob(s.folded[0])],
                )
                .unwrap();
            }),
            "(altered)",
        ),
        (
            "a fold forged",
            Box::new(move |c, s| {
                c.execute(
                    "INSERT INTO folds (id, into_id, folded_at) VALUES (?1, ?2, (SELECT MAX(folded_at) FROM folds))",
                    params![blob(uuid::Uuid::new_v4()), blob(s.events[0])],
                )
                .unwrap();
            }),
            "no record in the log says so (inserted)",
        ),
        (
            "the finding marked resolved",
            Box::new(|c, _| {
                c.execute(
                    "UPDATE findings SET status = 'resolved', open_key = NULL",
                    [],
                )
                .unwrap();
            }),
            "its status is resolved, but the log records it acknowledged",
        ),
        (
            "the finding's evidence deleted",
            Box::new(|c, _| {
                c.execute("DELETE FROM finding_events", []).unwrap();
            }),
            "finding_events has no such link (removed)",
        ),
        (
            "evidence forged",
            Box::new(move |c, s| {
                c.execute(
                    "INSERT INTO finding_events (event_id, finding) SELECT ?1, row FROM findings",
                    params![blob(s.events[0])],
                )
                .unwrap();
            }),
            "no record in the log says so (inserted)",
        ),
        (
            "the finding deleted",
            Box::new(|c, _| {
                c.execute_batch("DELETE FROM finding_events; DELETE FROM findings;")
                    .unwrap();
            }),
            "the findings table has no such finding (removed)",
        ),
    ];
    let public = Signer::generate().public_key();
    for (what, edit, named) in edits {
        let dir = tempfile::tempdir().unwrap();
        let sides = {
            let store = SqliteStore::open_exclusive(dir.path()).unwrap();
            crate::testsuite::side_tables(&store).await
        };
        let store = SqliteStore::open_shared(dir.path()).unwrap();
        let clean = store.verify_log(&public, None, &|_, _| {}).unwrap();
        assert_eq!(clean.beside, Vec::<String>::new(), "{what}: clean before");
        let conn = Connection::open(dir.path().join("evident.db")).unwrap();
        edit(&conn, &sides);
        let walked = store.verify_log(&public, None, &|_, _| {}).unwrap();
        assert!(
            walked.beside.iter().any(|p| p.contains(named)),
            "{what}: expected a problem naming {named:?}, got {:?}",
            walked.beside
        );
    }
}

/// A store from before records were kept: its side rows are taken into the log once, at
/// the first start that keeps records, and rows forged after that are still caught.
#[tokio::test(flavor = "multi_thread")]
async fn side_rows_from_before_records_are_taken_in_once() {
    let dir = tempfile::tempdir().unwrap();
    let public = Signer::generate().public_key();
    let stored = event("station.operation", 1, Severity::Low);
    {
        let store = SqliteStore::open_exclusive(dir.path()).unwrap();
        store.append(vec![stored.clone()].into()).await.unwrap();
    }
    let conn = Connection::open(dir.path().join("evident.db")).unwrap();
    // What an older version left: a fold with no record, and the baseline still to make.
    conn.execute("UPDATE side_records SET baseline_pending = 1", [])
        .unwrap();
    let old_fold = uuid::Uuid::new_v4();
    conn.execute(
        "INSERT INTO folds (id, into_id, folded_at) VALUES (?1, ?2, 0)",
        params![
            old_fold.as_bytes().as_slice(),
            stored.event.id.as_bytes().as_slice()
        ],
    )
    .unwrap();
    drop(conn);
    {
        let _store = SqliteStore::open_exclusive(dir.path()).unwrap();
    }
    let store = SqliteStore::open_shared(dir.path()).unwrap();
    let walked = store.verify_log(&public, None, &|_, _| {}).unwrap();
    assert_eq!(
        walked.beside,
        Vec::<String>::new(),
        "the old fold is in the baseline"
    );
    let conn = Connection::open(dir.path().join("evident.db")).unwrap();
    conn.execute(
        "INSERT INTO folds (id, into_id, folded_at) VALUES (?1, ?2, 0)",
        params![
            uuid::Uuid::new_v4().as_bytes().as_slice(),
            stored.event.id.as_bytes().as_slice()
        ],
    )
    .unwrap();
    drop(conn);
    {
        // A restart does not take the forged row in.
        let _store = SqliteStore::open_exclusive(dir.path()).unwrap();
    }
    let walked = store.verify_log(&public, None, &|_, _| {}).unwrap();
    assert!(
        walked.beside.iter().any(|p| p.contains("(inserted)")),
        "{:?}",
        walked.beside
    );
    // Setting the flag again to have the forged row taken in is named too, once any
    // record came after the first baseline.
    {
        let store = SqliteStore::open_exclusive(dir.path()).unwrap();
        store
            .append_folds(vec![(uuid::Uuid::new_v4(), stored.event.id)])
            .await
            .unwrap();
    }
    {
        let conn = Connection::open(dir.path().join("evident.db")).unwrap();
        conn.execute("UPDATE side_records SET baseline_pending = 1", [])
            .unwrap();
    }
    {
        let _store = SqliteStore::open_exclusive(dir.path()).unwrap();
    }
    let walked = store.verify_log(&public, None, &|_, _| {}).unwrap();
    assert!(
        walked
            .beside
            .iter()
            .any(|p| p.contains("took rows into the log late")),
        "{:?}",
        walked.beside
    );
}
