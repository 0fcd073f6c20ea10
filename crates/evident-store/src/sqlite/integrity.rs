//! The integrity log in the embedded store: signing checkpoints of it, and handing its
//! events to a verifier.

use super::SqliteStore;
use crate::columns::Columns;
use crate::error::StoreError;
use crate::{IntegrityLog, LogVerification, Proved};
use evident_integrity::merkle::PrunedTree;
use evident_integrity::verify::Verifier;
use evident_integrity::{Checkpoint, EventProof, Frontier, Hash, Signed, Signer};
use rusqlite::{Connection, OptionalExtension, params};

/// Events handed from the reading thread to the verifying one at a time.
const BATCH: usize = 4096;

/// Bytes of the database the log walk maps into memory at most.
const WALK_MMAP_BYTES: i64 = 2 << 30;

impl SqliteStore {
    /// Signs the integrity log's head with `signer` and stores the checkpoint, unless
    /// nothing was committed since the last one (then `None`).
    pub async fn sign_checkpoint(
        &self,
        signer: std::sync::Arc<Signer>,
        origin: String,
    ) -> Result<Option<Signed>, StoreError> {
        self.with_writer(move |w| {
            let log = w.log().clone();
            let conn = w.conn();
            let last: Option<i64> = conn
                .query_row("SELECT MAX(size) FROM checkpoints", [], |r| r.get(0))
                .optional()?
                .flatten();
            let size = log.size();
            if size == 0 || last.is_some_and(|l| l as u64 >= size) {
                return Ok(None);
            }
            let checkpoint = Checkpoint {
                origin,
                size,
                root: log.root(),
                time: evident_model::unix_micros(time::OffsetDateTime::now_utc()),
            };
            let signed = signer
                .sign(checkpoint)
                .map_err(|e| StoreError::Database(format!("checkpoint: {e}")))?;
            conn.execute(
                "INSERT INTO checkpoints (size, root, time, origin, key_id, signature)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    signed.checkpoint.size as i64,
                    signed.checkpoint.root.as_slice(),
                    signed.checkpoint.time,
                    signed.checkpoint.origin,
                    signed.key_id,
                    signed.signature.as_slice(),
                ],
            )?;
            Ok(Some(signed))
        })
        .await
    }

    /// Walks the integrity log for a verifier, on the calling thread: `start` gets the
    /// log's first sequence number, its checkpoints, how many entries follow, and the
    /// frontier standing in for the events retention folded away at its start, and makes
    /// the walker; `visit` then gets every later entry in sequence order as `(seq, stored
    /// bytes, recorded leaf hash)` (no bytes for an event retention removed: its kept
    /// hash stands in) and returns false to stop. Returns the walker.
    pub fn walk_log<V>(
        &self,
        start: impl FnOnce(i64, Vec<Signed>, u64, Frontier) -> V,
        mut visit: impl FnMut(&mut V, i64, Option<&[u8]>, &Hash) -> bool,
    ) -> Result<V, StoreError> {
        let conn = super::schema::open_reader(self.db_path())?;
        // The walk reads the table once, in order: mapped, its pages are not copied in
        // one system call each (mapped pages are file cache the system can take back).
        conn.pragma_update(None, "mmap_size", WALK_MMAP_BYTES)?;
        let start_seq = start_seq(&conn)?;
        let base = base(&conn)?;
        let first = start_seq + base.size() as i64;
        let count = |table: &str| -> Result<i64, StoreError> {
            Ok(conn.query_row(
                &format!("SELECT COUNT(*) FROM {table} WHERE seq >= ?1"),
                [first],
                |r| r.get(0),
            )?)
        };
        let entries = count("events")? + count("pruned_leaves")?;
        let mut walker = start(start_seq, checkpoints(&conn)?, entries.max(0) as u64, base);
        let mut pruned_stmt =
            conn.prepare("SELECT seq, leaf FROM pruned_leaves WHERE seq >= ?1 ORDER BY seq")?;
        let mut pruned = pruned_stmt.query_map([first], |r| {
            let leaf = r
                .get_ref(1)?
                .as_bytes()
                .ok()
                .and_then(|l| l.try_into().ok());
            Ok((r.get::<_, i64>(0)?, leaf.unwrap_or([0u8; 32])))
        })?;
        let mut next_pruned = pruned.next().transpose()?;
        let mut stmt = conn.prepare(
            "SELECT seq, body, leaf, id, time, received_at, type, category, severity, priority,
                    outcome, source, agent_id, user_id, source_ip, facility, correlation_id
             FROM events WHERE seq >= ?1 ORDER BY seq",
        )?;
        // Rows before `first` have no place in the log: folded away by retention, or,
        // on a store whose log began with it, never there. Visited, they are reported as
        // inserted. (A store that had events before the log existed keeps those below
        // `start_seq`, outside the log.)
        let low = if start_seq <= 1 { i64::MIN } else { start_seq };
        let mut rows = stmt.query([low])?;
        while let Some(row) = rows.next()? {
            let seq: i64 = row.get(0)?;
            while let Some((removed, leaf)) = next_pruned.filter(|(p, _)| *p < seq) {
                if !visit(&mut walker, removed, None, &leaf) {
                    return Ok(walker);
                }
                next_pruned = pruned.next().transpose()?;
            }
            // Read in place: no copy, no text check (the hash covers the bytes as stored).
            // A value of another type is no stored event: it hashes as nothing and fails.
            let body = row.get_ref(1)?.as_bytes().unwrap_or_default();
            let mut leaf: Hash = row
                .get_ref(2)?
                .as_bytes()
                .ok()
                .and_then(|l| l.try_into().ok())
                .unwrap_or([0; 32]);
            // Queries filter on copies of the body's fields: a copy that disagrees with
            // the bytes is tampering too, reported as the event altered.
            if !columns_agree(row, body) {
                leaf = [0; 32];
            }
            if !visit(&mut walker, seq, Some(body), &leaf) {
                return Ok(walker);
            }
        }
        while let Some((removed, leaf)) = next_pruned {
            if !visit(&mut walker, removed, None, &leaf) {
                break;
            }
            next_pruned = pruned.next().transpose()?;
        }
        Ok(walker)
    }

    /// The signed checkpoints, smallest first.
    pub async fn checkpoints(&self) -> Result<Vec<Signed>, StoreError> {
        self.with_reader(checkpoints).await
    }
}

/// Whether the row's query columns (from index 3 on, in the walk's column order) say
/// what its body says.
fn columns_agree(row: &rusqlite::Row<'_>, body: &[u8]) -> bool {
    let text = |i: usize| {
        row.get_ref(i)
            .ok()
            .and_then(|v| v.as_str_or_null().ok().flatten())
    };
    let int = |i: usize| row.get_ref(i).ok().and_then(|v| v.as_i64().ok());
    let (Some(id), Some(time), Some(received_at), Some(event_type), Some(category)) = (
        row.get_ref(3).ok().and_then(|v| v.as_bytes().ok()),
        int(4),
        int(5),
        text(6),
        text(7),
    ) else {
        return false;
    };
    let (Some(severity), Some(priority), Some(outcome)) = (int(8), int(9), text(10)) else {
        return false;
    };
    let columns = Columns {
        id,
        time,
        received_at,
        event_type,
        category,
        severity,
        priority,
        outcome,
        source: text(11),
        agent_id: text(12),
        user_id: text(13),
        source_ip: text(14),
        facility: text(15),
        correlation_id: text(16),
    };
    crate::columns::agree(&columns, body)
}

fn checkpoints(conn: &Connection) -> Result<Vec<Signed>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT size, root, time, origin, key_id, signature FROM checkpoints ORDER BY size, time",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, Vec<u8>>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, Vec<u8>>(5)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (size, root, time, origin, key_id, signature) = row?;
        // A malformed row still becomes a checkpoint: its signature then fails, and the
        // verifier says which.
        out.push(Signed {
            checkpoint: Checkpoint {
                origin,
                size: size.max(0) as u64,
                root: root.try_into().unwrap_or([0; 32]),
                time,
            },
            key_id,
            signature: signature.try_into().unwrap_or([0; 64]),
        });
    }
    Ok(out)
}

/// The log's first sequence number (1 on a store made with the log).
fn start_seq(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn
        .query_row(
            "SELECT start_seq FROM integrity_log WHERE one = 1",
            [],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(1))
}

/// The frontier standing in for the events retention folded away at the log's start
/// (empty when none were).
fn base(conn: &Connection) -> Result<Frontier, StoreError> {
    let bytes: Option<Vec<u8>> = conn
        .query_row(
            "SELECT base_frontier FROM integrity_log WHERE one = 1",
            [],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    match bytes {
        Some(bytes) => Frontier::from_bytes(&bytes)
            .map_err(|e| StoreError::Database(format!("integrity log base: {e}"))),
        None => Ok(Frontier::new()),
    }
}

/// The proof for the event stored at `seq` with `body`: its path in the tree of the
/// newest checkpoint, from the leaf hashes recorded at commit.
fn prove_in(conn: &Connection, seq: i64, body: Vec<u8>) -> Result<Proved, StoreError> {
    let start = start_seq(conn)?;
    if seq < start {
        return Ok(Proved::OutsideLog(seq));
    }
    let index = (seq - start) as u64;
    let Some(checkpoint) = checkpoints(conn)?.pop() else {
        return Ok(Proved::NotYetSigned(seq));
    };
    if checkpoint.checkpoint.size <= index {
        return Ok(Proved::NotYetSigned(seq));
    }
    let base = base(conn)?;
    let size = checkpoint.checkpoint.size;
    let first = start + base.size() as i64;
    let end = start + size as i64;
    // Held events' leaves and removed events' kept ones, in sequence order.
    let mut leaves: Vec<(i64, Hash)> = Vec::with_capacity((size - base.size()) as usize);
    for table in ["events", "pruned_leaves"] {
        let mut stmt = conn.prepare(&format!(
            "SELECT seq, leaf FROM {table} WHERE seq >= ?1 AND seq < ?2 ORDER BY seq"
        ))?;
        let mut rows = stmt.query(params![first, end])?;
        while let Some(row) = rows.next()? {
            let leaf = row
                .get_ref(1)?
                .as_bytes()
                .ok()
                .and_then(|l| l.try_into().ok());
            leaves.push((row.get(0)?, leaf.unwrap_or([0; 32])));
        }
    }
    leaves.sort_unstable_by_key(|(seq, _)| *seq);
    let leaves: Vec<Hash> = leaves.into_iter().map(|(_, leaf)| leaf).collect();
    let tree = PrunedTree::new(&base, &leaves);
    let path = tree
        .inclusion_proof(index)
        .filter(|_| tree.size() == size)
        .ok_or_else(|| {
            StoreError::Database(format!(
                "the log holds {} entries where its checkpoint signs {size}: run evident verify",
                tree.size()
            ))
        })?;
    Ok(Proved::Proof(Box::new(EventProof {
        event: body,
        index,
        checkpoint,
        path,
    })))
}

impl IntegrityLog for SqliteStore {
    fn prove(&self, id: uuid::Uuid) -> Result<Option<Proved>, StoreError> {
        let conn = super::schema::open_reader(self.db_path())?;
        let row: Option<(i64, Vec<u8>)> = conn
            .query_row(
                "SELECT seq, body FROM events WHERE id = ?1",
                [id.as_bytes().as_slice()],
                |r| {
                    let body = r.get_ref(1)?.as_bytes().map(<[u8]>::to_vec);
                    Ok((r.get(0)?, body.unwrap_or_default()))
                },
            )
            .optional()?;
        row.map(|(seq, body)| prove_in(&conn, seq, body))
            .transpose()
    }

    fn verify_log(
        &self,
        public: &[u8; 32],
        witness: Option<(u64, Hash)>,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<LogVerification, StoreError> {
        // Two threads: this one reads the store; the other hashes each event's bytes,
        // rebuilds the tree and checks it against the checkpoints.
        type Rows = Vec<(i64, Option<Vec<u8>>, Hash)>;
        let (send, receive) = std::sync::mpsc::sync_channel::<Rows>(8);
        let mut builder: Option<std::thread::JoinHandle<Verifier>> = None;
        let mut batch = Vec::with_capacity(BATCH);
        let mut done = 0u64;
        let (start_seq, sizes, total) = self.walk_log(
            |start, checkpoints, events, base| {
                let sizes: Vec<u64> = checkpoints.iter().map(|c| c.checkpoint.size).collect();
                let mut verifier = Verifier::new(start, checkpoints, public).with_base(base);
                if let Some((size, root)) = witness {
                    verifier = verifier.with_witness(size, root);
                }
                builder = Some(std::thread::spawn(move || {
                    for rows in receive {
                        for (seq, body, recorded) in rows {
                            match body {
                                Some(body) => verifier.push(seq, &body, &recorded),
                                None => verifier.push_pruned(seq, &recorded),
                            }
                        }
                        if verifier.failed() {
                            break;
                        }
                    }
                    verifier
                }));
                (start, sizes, events)
            },
            |(_, _, total), seq, body, leaf| {
                batch.push((seq, body.map(<[u8]>::to_vec), *leaf));
                if batch.len() == BATCH {
                    done += BATCH as u64;
                    progress(done, *total);
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                    // The verifying thread stops taking batches once it found a problem.
                    return send.send(full).is_ok();
                }
                true
            },
        )?;
        if !batch.is_empty() {
            send.send(batch).ok();
        }
        drop(send);
        progress(total, total);
        let verifier = builder
            .ok_or_else(|| StoreError::Database("the store has no integrity log".into()))?
            .join()
            .map_err(|_| StoreError::Task("the verifying thread failed".into()))?;
        Ok(LogVerification {
            start_seq,
            checkpoint_sizes: sizes,
            report: verifier.finish(),
        })
    }
}
