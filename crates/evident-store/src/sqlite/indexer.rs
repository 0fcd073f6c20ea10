//! The data-term index follows the commits on a thread of its own.
//!
//! The writer hands each commit's new events over (a shared pointer, nothing copied) and
//! goes on to the next commit. This thread takes their terms, builds the segments
//! ([`crate::postings`]) and writes them, holding the writer's connection only for the
//! inserts. Events committed but not yet in a segment are searched directly (see
//! `term_search`), so the index's lag costs query time, never an answer.
//!
//! Nothing is skipped and nothing is indexed twice: the thread takes events in sequence
//! order, and whatever it did not get from the writer (a full hand-over queue, events
//! committed before a crash and not yet in a segment) it reads back from the store by
//! sequence number, after the last segment. A segment is written in one transaction,
//! so after a crash the index ends exactly where its last segment does. Merges are read
//! and encoded on this thread's own read connection and written in a transaction of
//! their own (a crash between leaves a full level that the next merge takes).

use super::schema;
use super::term_segments::{self, TermIndex};
use super::write::WriterLock;
use crate::error::StoreError;
use evident_model::EncodedEvent;
use rusqlite::{Connection, params};
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;

/// Commits the hand-over queue holds; past them the thread reads events back instead.
#[cfg(not(test))]
const QUEUE: usize = 256;
/// One in unit tests, so that concurrent commits overflow it and take the read-back path.
#[cfg(test)]
const QUEUE: usize = 1;

/// Metric: events committed whose data terms are not yet in a segment (searched
/// directly meanwhile).
pub const PENDING_METRIC: &str = "evident_term_index_pending_events";

enum Work {
    /// A commit's events and the sequence number each got (0: not stored).
    Committed(Arc<[EncodedEvent]>, Vec<i64>),
    /// Answer once everything handed over before is in the buffer or a segment.
    Settle(SyncSender<()>),
    Stop,
}

/// The writer's end: hands committed events to the indexer.
pub(crate) struct Feed {
    send: SyncSender<Work>,
    /// Highest sequence number handed over or skipped (read back by the indexer).
    committed: Arc<AtomicI64>,
}

impl Feed {
    /// Hands over the events of one commit. Never waits: when the indexer is far
    /// behind, it reads these back from the store later.
    pub(crate) fn committed(&self, batch: Arc<[EncodedEvent]>, seqs: Vec<i64>) {
        let Some(&last) = seqs.iter().max() else {
            return;
        };
        if last <= 0 {
            return;
        }
        self.committed.fetch_max(last, Ordering::Relaxed);
        match self.send.try_send(Work::Committed(batch, seqs)) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {
                tracing::debug!("the term indexer is behind; it reads the events back");
            }
        }
    }
}

/// The running indexer thread; stopped and joined on drop.
pub(crate) struct Indexer {
    send: SyncSender<Work>,
    thread: Option<JoinHandle<()>>,
}

impl Indexer {
    /// The writer's feed, and a function that starts the thread once the writer it
    /// writes through exists.
    pub(crate) fn channel() -> (Feed, Pending) {
        let (send, recv) = sync_channel(QUEUE);
        let committed = Arc::new(AtomicI64::new(0));
        (
            Feed {
                send: send.clone(),
                committed: committed.clone(),
            },
            Pending {
                send,
                recv,
                committed,
            },
        )
    }

    /// Waits until everything committed so far is indexed or buffered (for tests and
    /// tools that look at the segments themselves).
    pub(crate) fn settle(&self) {
        let (done, wait) = sync_channel(1);
        if self.send.send(Work::Settle(done)).is_ok() {
            wait.recv().ok();
        }
    }
}

impl Drop for Indexer {
    fn drop(&mut self) {
        self.send.send(Work::Stop).ok();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("term indexer thread panicked");
        }
    }
}

/// An indexer not yet started.
pub(crate) struct Pending {
    send: SyncSender<Work>,
    recv: Receiver<Work>,
    committed: Arc<AtomicI64>,
}

impl Pending {
    /// Starts the thread on the database at `path`, writing through `writer`.
    pub(crate) fn start(
        self,
        path: &Path,
        writer: Weak<WriterLock>,
    ) -> Result<Indexer, StoreError> {
        let reader = schema::open_reader(path)?;
        let indexed = term_segments::indexed(&reader)?;
        let mut follower = Follower {
            index: TermIndex::new(indexed),
            through: indexed,
            reader,
            writer,
            committed: self.committed,
        };
        let recv = self.recv;
        let thread = std::thread::Builder::new()
            .name("evident-terms".into())
            .spawn(move || follower.run(&recv))
            .map_err(|e| StoreError::Task(e.to_string()))?;
        Ok(Indexer {
            send: self.send,
            thread: Some(thread),
        })
    }
}

struct Follower {
    index: TermIndex,
    /// Highest sequence number whose terms are buffered or in a segment.
    through: i64,
    reader: Connection,
    writer: Weak<WriterLock>,
    committed: Arc<AtomicI64>,
}

impl Follower {
    fn run(&mut self, recv: &Receiver<Work>) {
        // Whatever was committed before a crash or a restart and is in no segment yet.
        if let Err(error) = self.read_back(i64::MAX) {
            tracing::warn!(%error, "term index: events after the last segment not read back yet");
        }
        while let Ok(work) = recv.recv() {
            match work {
                Work::Committed(batch, seqs) => self.take(&batch, &seqs),
                Work::Settle(done) => {
                    // Anything skipped while the queue was full is read back first.
                    let last = self.committed.load(Ordering::Relaxed);
                    if last > self.through
                        && let Err(error) = self.read_back(last)
                    {
                        tracing::warn!(%error, "term index: events not read back");
                    }
                    done.send(()).ok();
                }
                Work::Stop => break,
            }
        }
    }

    /// Adds the newly stored events of a commit, reading back any the queue skipped.
    fn take(&mut self, batch: &[EncodedEvent], seqs: &[i64]) {
        for (event, &seq) in batch.iter().zip(seqs) {
            if seq <= self.through {
                continue;
            }
            if seq > self.through + 1
                && let Err(error) = self.read_back(seq - 1)
            {
                tracing::warn!(%error, "term index: skipped events not read back; retried later");
                return;
            }
            self.index.add(seq, &event.event);
            self.through = seq;
        }
        // Once per commit, not per event: each write waits for the writer's connection,
        // so a commit bigger than a segment makes one bigger segment, not several waits.
        self.flush_if_full();
        self.report();
    }

    /// Reads the stored events after `through` up to `until` back from the store.
    fn read_back(&mut self, until: i64) -> Result<(), StoreError> {
        const PAGE: i64 = 4_096;
        loop {
            let rows: Vec<(i64, i64, Option<String>)> = {
                let mut stmt = self.reader.prepare_cached(
                    "SELECT seq, time, json_extract(body, '$.data') FROM events
                     WHERE seq > ?1 AND seq <= ?2 ORDER BY seq LIMIT ?3",
                )?;
                let rows = stmt.query_map(params![self.through, until, PAGE], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?;
                rows.collect::<Result<_, _>>()?
            };
            for (seq, time, data) in &rows {
                let data = data
                    .as_deref()
                    .and_then(|d| serde_json::from_str(d).ok())
                    .unwrap_or_default();
                self.index.add_terms(*seq, *time, &data);
                self.through = *seq;
            }
            self.flush_if_full();
            self.report();
            if (rows.len() as i64) < PAGE {
                return Ok(());
            }
        }
    }

    /// Writes a segment when enough events are buffered, through the writer's
    /// connection (the store has one writer). A failure keeps the terms buffered for the
    /// next try.
    fn flush_if_full(&mut self) {
        if !self.index.full() {
            return;
        }
        let Some(writer) = self.writer.upgrade() else {
            return;
        };
        let Some(segment) = self.index.segment() else {
            return;
        };
        if let Err(error) = self.index.write(writer.lock().conn(), segment) {
            tracing::warn!(%error, "could not write a data-term segment; will retry");
            return;
        }
        // Merges are read and encoded here, on this thread's own connection; only
        // their writing takes the writer's.
        loop {
            match term_segments::prepare_merge(&self.reader) {
                Ok(Some(merge)) => match term_segments::apply_merge(writer.lock().conn(), &merge) {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(error) => {
                        tracing::warn!(%error, "could not merge data-term segments; will retry");
                        return;
                    }
                },
                Ok(None) => return,
                Err(error) => {
                    tracing::warn!(%error, "could not read data-term segments to merge; will retry");
                    return;
                }
            }
        }
    }

    fn report(&self) {
        let pending = self.committed.load(Ordering::Relaxed) - self.index.indexed();
        metrics::gauge!(PENDING_METRIC).set(pending.max(0) as f64);
    }
}
