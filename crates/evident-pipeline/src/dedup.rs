//! Deduplication: repeats of an event within a window are stored once.
//!
//! The first event of a fingerprint is stored and opens a window; repeats within the
//! window are *folded* into it: a durable fold record (folded id → stored id) replaces
//! the event, and the sender is told which stored id its event was folded into. When
//! the window closes (or the service stops), a summary event records how many events
//! were folded into which stored event; counting, storing the summary and closing the
//! folds happen in one store transaction, so the count is exact and never lost (windows
//! left open by a crash are summarized at the next start). Critical events are never
//! deduplicated, nor are failures (outcome `failure`): repeated failures are what
//! detection counts (failed logins, access denied, failed quality checks), so each one
//! is stored and detected as it comes.
//!
//! The default fingerprint is the event's canonical encoding without its id and times:
//! equal in everything else. The configuration can narrow it per type to chosen fields.

use evident_model::{EncodedEvent, Event, Outcome, Priority, Severity};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use uuid::Uuid;

/// Deduplication settings.
#[derive(Debug, Clone, PartialEq)]
pub struct DedupConfig {
    /// How long after the first event repeats are folded; zero turns deduplication off.
    pub window: Duration,
    /// Per event type, the fields (`type`, `source`, `actor.user_id`, `data.station_id`, ...)
    /// that make two events repeats; types not listed compare everything but id and times.
    pub fingerprints: HashMap<String, Vec<String>>,
    /// Most open windows; past it new fingerprints are stored without a window.
    pub max_windows: usize,
}

impl Default for DedupConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(60),
            fingerprints: HashMap::new(),
            max_windows: 100_000,
        }
    }
}

/// What to do with one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Store it (it may have opened a window).
    Store,
    /// Fold it into this stored event, which is committed.
    Fold(Uuid),
    /// A repeat of this event, which is not committed yet: it may be folded into it only
    /// once that commit succeeds (the caller decides; see [`Dedup::settle`]).
    FoldIfCommitted(Uuid),
}

struct Window {
    into: Uuid,
    /// When the event it folds into arrived.
    opened: Instant,
    /// That event's own time: a repeat must lie within the window of it too, so a
    /// backlog replayed late is not folded across hours of event time.
    time: OffsetDateTime,
    /// Whether the event it folds into is committed: only then can it absorb repeats.
    committed: bool,
}

/// The open windows.
pub(crate) struct Dedup {
    config: DedupConfig,
    windows: HashMap<[u8; 16], Window>,
    /// Fingerprints of windows whose event is not committed yet, by that event's id.
    pending: HashMap<Uuid, [u8; 16]>,
    /// Stored ids with at least one committed fold (their windows need a summary).
    folded: HashSet<Uuid>,
    /// Stored ids with folds whose windows were replaced before they expired.
    retired: Vec<Uuid>,
}

impl Dedup {
    pub(crate) fn new(config: DedupConfig) -> Self {
        Self {
            config,
            windows: HashMap::new(),
            pending: HashMap::new(),
            folded: HashSet::new(),
            retired: Vec::new(),
        }
    }

    /// Decides for `event` received at `now`.
    pub(crate) fn decide(&mut self, event: &EncodedEvent, now: Instant) -> Decision {
        let e = &event.event;
        if self.config.window.is_zero()
            || e.priority == Priority::Critical
            || e.severity == Severity::Critical
            || e.outcome == Outcome::Failure
            || e.service_record
        {
            return Decision::Store;
        }
        let fp = self.fingerprint(event);
        if let Some(w) = self.windows.get(&fp)
            && now.duration_since(w.opened) < self.config.window
            && (e.time - w.time).unsigned_abs() < self.config.window
        {
            return if w.into == e.id {
                Decision::Store
            } else if w.committed {
                Decision::Fold(w.into)
            } else {
                Decision::FoldIfCommitted(w.into)
            };
        }
        if self.windows.len() < self.config.max_windows || self.windows.contains_key(&fp) {
            let replaced = self.windows.insert(
                fp,
                Window {
                    into: e.id,
                    opened: now,
                    time: e.time,
                    committed: false,
                },
            );
            if let Some(old) = replaced
                && self.folded.contains(&old.into)
            {
                self.retired.push(old.into);
            }
            self.pending.insert(e.id, fp);
        }
        Decision::Store
    }

    /// Settles the windows of events whose fate is known: a committed event can absorb
    /// repeats from now on; the window of one that was refused or failed is dropped, so
    /// that nothing is ever folded into an event that is not stored and a retry of it is
    /// stored, not folded.
    pub(crate) fn settle(&mut self, settled: impl IntoIterator<Item = (Uuid, bool)>) {
        if self.pending.is_empty() {
            return;
        }
        for (id, committed) in settled {
            let Some(fp) = self.pending.remove(&id) else {
                continue;
            };
            if committed {
                if let Some(w) = self.windows.get_mut(&fp)
                    && w.into == id
                {
                    w.committed = true;
                }
            } else if self.windows.get(&fp).is_some_and(|w| w.into == id) {
                self.windows.remove(&fp);
            }
        }
    }

    /// Notes that a fold into `into` is committed.
    pub(crate) fn folded_into(&mut self, into: Uuid) {
        self.folded.insert(into);
    }

    /// Closes windows older than the window length (all of them with `all`), returning
    /// the stored ids whose windows had folds.
    pub(crate) fn close_expired(&mut self, now: Instant, all: bool) -> Vec<Uuid> {
        let window = self.config.window;
        let mut closed = std::mem::take(&mut self.retired);
        let pending = &mut self.pending;
        self.windows.retain(|_, w| {
            let keep = !all && now.duration_since(w.opened) < window;
            if !keep {
                pending.remove(&w.into);
                closed.push(w.into);
            }
            keep
        });
        closed
            .into_iter()
            .filter(|id| self.folded.remove(id))
            .collect()
    }

    fn fingerprint(&self, encoded: &EncodedEvent) -> [u8; 16] {
        let e = &encoded.event;
        let mut hasher = Sha256::new();
        match self.config.fingerprints.get(&e.event_type) {
            Some(fields) => {
                let value = serde_json::to_value(e).unwrap_or(Value::Null);
                hasher.update(e.event_type.as_bytes());
                for field in fields {
                    let at = field.split('.').fold(&value, |v, key| &v[key]);
                    hasher.update([0]);
                    hasher.update(field.as_bytes());
                    hasher.update([0]);
                    hasher.update(at.to_string().as_bytes());
                }
            }
            None => {
                hasher.update(without_id_and_times(encoded));
                hasher.update([u8::from(e.service_record)]);
            }
        }
        let digest = hasher.finalize();
        let mut fp = [0u8; 16];
        fp.copy_from_slice(&digest[..16]);
        fp
    }
}

/// The canonical bytes of `encoded` from its `type` on, up to its `sealed` object:
/// everything but the id, the time, the receipt time (which the encoding puts first) and
/// the ciphertexts of sealed personal fields (which differ between two events of the same
/// subject; their pseudonyms, in the fields themselves, do not). The id and times hold no
/// `"` (a UUID and two RFC 3339 times), so the first `,"type":` is where the rest begins;
/// `sealed` comes after every field a client can fill, and strings escape their quotes, so
/// the last `,"sealed":{` is the real one. Only a service record can carry a field after
/// it, so the caller hashes that flag apart.
fn without_id_and_times(encoded: &EncodedEvent) -> &[u8] {
    const TYPE: &[u8] = b",\"type\":";
    const SEALED: &[u8] = b",\"sealed\":{";
    let bytes = encoded.bytes.as_slice();
    let from = bytes
        .windows(TYPE.len())
        .position(|w| w == TYPE)
        .unwrap_or(0);
    let to = if encoded.event.sealed.is_some() {
        bytes
            .windows(SEALED.len())
            .rposition(|w| w == SEALED)
            .filter(|&at| at >= from)
            .unwrap_or(bytes.len())
    } else {
        bytes.len()
    };
    &bytes[from..to]
}

/// The summary event of a closed window: `count` events were folded into `original`.
pub(crate) fn summary(original: &Event, count: u64, now: OffsetDateTime) -> EncodedEvent {
    let data = json!({
        "folded_into": original.id,
        "folded": count,
        "event_type": original.event_type,
        "first_time": original.time.format(&time::format_description::well_known::Rfc3339).ok(),
    });
    let mut event = evident_model::service::record(
        evident_model::service::DEDUP_SUMMARY,
        original.severity,
        original.priority,
        data,
        now,
    );
    event.target = json!({"event_id": original.id})
        .as_object()
        .cloned()
        .unwrap_or_default();
    event.facility = original.facility.clone();
    event.correlation_id = Some(original.id.to_string());
    EncodedEvent::new(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use evident_store::testsuite::event;

    fn same(e: &EncodedEvent) -> EncodedEvent {
        let mut copy = e.event.clone();
        copy.id = Uuid::new_v4();
        copy.time += time::Duration::seconds(1);
        EncodedEvent::new(copy)
    }

    #[test]
    fn repeats_fold_into_the_first_until_the_window_closes() {
        let mut d = Dedup::new(DedupConfig::default());
        let now = Instant::now();
        let first = event("equipment.status", 1, Severity::Low);
        assert_eq!(d.decide(&first, now), Decision::Store);
        d.settle([(first.event.id, true)]);
        assert_eq!(d.decide(&same(&first), now), Decision::Fold(first.event.id));
        assert_eq!(
            d.decide(&first, now),
            Decision::Store,
            "a retry of the original is not a fold"
        );
        let later = now + Duration::from_secs(61);
        let next = same(&first);
        assert_eq!(
            d.decide(&next, later),
            Decision::Store,
            "the window closed: stored again"
        );
        d.settle([(next.event.id, true)]);
        assert_eq!(
            d.decide(&same(&first), later),
            Decision::Fold(next.event.id)
        );
    }

    fn sealed(e: &EncodedEvent, pseudonym: &str, ciphertext: &str) -> EncodedEvent {
        let mut copy = e.event.clone();
        copy.actor.user_id = Some(pseudonym.to_owned());
        copy.sealed = Some(evident_model::Sealed {
            key: pseudonym.to_owned(),
            fields: [("actor.user_id".to_owned(), ciphertext.to_owned())].into(),
            erased: false,
        });
        EncodedEvent::new(copy)
    }

    #[test]
    fn sealed_repeats_of_one_subject_fold_whatever_their_ciphertexts() {
        let mut d = Dedup::new(DedupConfig::default());
        let now = Instant::now();
        let plain = event("equipment.status", 1, Severity::Low);
        let first = sealed(&plain, "p-alice", "c1");
        assert_eq!(d.decide(&first, now), Decision::Store);
        d.settle([(first.event.id, true)]);
        let repeat = sealed(&same(&first), "p-alice", "c2");
        assert_eq!(d.decide(&repeat, now), Decision::Fold(first.event.id));
        let other = sealed(&same(&first), "p-bob", "c3");
        assert_eq!(
            d.decide(&other, now),
            Decision::Store,
            "another subject's event is not a repeat"
        );
        let mut data = same(&first).event;
        data.data
            .insert("sealed".into(), serde_json::json!({"key": "x"}));
        let data = sealed(&EncodedEvent::new(data), "p-alice", "c4");
        assert_eq!(
            d.decide(&data, now),
            Decision::Store,
            "a `sealed` key inside data is content, not the seal"
        );
    }

    #[test]
    fn a_repeat_of_an_uncommitted_event_is_folded_only_once_it_commits() {
        let mut d = Dedup::new(DedupConfig::default());
        let now = Instant::now();
        let first = event("equipment.status", 1, Severity::Low);
        assert_eq!(d.decide(&first, now), Decision::Store);
        assert_eq!(
            d.decide(&same(&first), now),
            Decision::FoldIfCommitted(first.event.id)
        );
        d.settle([(first.event.id, true)]);
        assert_eq!(d.decide(&same(&first), now), Decision::Fold(first.event.id));
    }

    #[test]
    fn a_refused_event_leaves_no_window_to_fold_its_retry_into() {
        let mut d = Dedup::new(DedupConfig::default());
        let now = Instant::now();
        let first = event("equipment.status", 1, Severity::Low);
        assert_eq!(d.decide(&first, now), Decision::Store);
        d.settle([(first.event.id, false)]);
        let retry = same(&first);
        assert_eq!(d.decide(&retry, now), Decision::Store, "stored, not folded");
        d.settle([(retry.event.id, true)]);
        assert_eq!(d.decide(&same(&first), now), Decision::Fold(retry.event.id));
    }

    #[test]
    fn repeats_apart_in_event_time_are_stored_each_on_its_own() {
        let mut d = Dedup::new(DedupConfig::default());
        let now = Instant::now();
        let first = event("station.operation", 1, Severity::Low);
        d.decide(&first, now);
        d.settle([(first.event.id, true)]);
        // A backlog replayed at once: the same operation, an hour later in event time.
        let mut later = first.event.clone();
        later.id = Uuid::new_v4();
        later.time += time::Duration::hours(1);
        let later = EncodedEvent::new(later);
        assert_eq!(d.decide(&later, now), Decision::Store);
        d.settle([(later.event.id, true)]);
        assert_eq!(d.decide(&same(&later), now), Decision::Fold(later.event.id));
    }

    #[test]
    fn a_replaced_window_with_folds_is_still_summarized() {
        let mut d = Dedup::new(DedupConfig::default());
        let now = Instant::now();
        let first = event("station.operation", 1, Severity::Low);
        d.decide(&first, now);
        d.settle([(first.event.id, true)]);
        d.folded_into(first.event.id);
        let mut later = first.event.clone();
        later.id = Uuid::new_v4();
        later.time += time::Duration::hours(1);
        d.decide(&EncodedEvent::new(later), now);
        assert_eq!(d.close_expired(now, false), vec![first.event.id]);
    }

    #[test]
    fn critical_events_are_never_folded() {
        let mut d = Dedup::new(DedupConfig::default());
        let now = Instant::now();
        let first = event("safety.override", 1, Severity::Critical);
        assert_eq!(d.decide(&first, now), Decision::Store);
        assert_eq!(d.decide(&same(&first), now), Decision::Store);
    }

    #[test]
    fn failures_are_never_folded_so_detection_counts_each() {
        let mut d = Dedup::new(DedupConfig::default());
        let now = Instant::now();
        let mut first = event("auth.login.failure", 1, Severity::Medium);
        first.event.outcome = Outcome::Failure;
        let first = EncodedEvent::new(first.event);
        assert_eq!(d.decide(&first, now), Decision::Store);
        assert_eq!(d.decide(&same(&first), now), Decision::Store);
    }

    #[test]
    fn a_configured_fingerprint_folds_events_that_differ_elsewhere() {
        let mut fingerprints = HashMap::new();
        fingerprints.insert(
            "equipment.status".to_owned(),
            vec!["type".to_owned(), "source".to_owned()],
        );
        let mut d = Dedup::new(DedupConfig {
            fingerprints,
            ..DedupConfig::default()
        });
        let now = Instant::now();
        let a = event("equipment.status", 1, Severity::Low);
        let mut b = event("equipment.status", 2, Severity::Low).event;
        b.time = a.event.time + time::Duration::seconds(30);
        let b = EncodedEvent::new(b);
        assert_ne!(a.event.data, b.event.data);
        assert_eq!(d.decide(&a, now), Decision::Store);
        d.settle([(a.event.id, true)]);
        assert_eq!(d.decide(&b, now), Decision::Fold(a.event.id));
        let mut plain = Dedup::new(DedupConfig::default());
        assert_eq!(plain.decide(&a, now), Decision::Store);
        assert_eq!(
            plain.decide(&b, now),
            Decision::Store,
            "by default different data is not a repeat"
        );
    }

    #[test]
    fn closing_reports_only_windows_with_folds() {
        let mut d = Dedup::new(DedupConfig::default());
        let now = Instant::now();
        let a = event("a.b", 1, Severity::Low);
        let b = event("a.c", 1, Severity::Low);
        d.decide(&a, now);
        d.decide(&b, now);
        d.folded_into(a.event.id);
        assert!(
            d.close_expired(now, false).is_empty(),
            "nothing expired yet"
        );
        assert_eq!(d.close_expired(now, true), vec![a.event.id]);
    }
}
