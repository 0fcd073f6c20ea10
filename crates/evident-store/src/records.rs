//! Records that bring the store's side tables under the signed log.
//!
//! Folds (`folds`), findings' evidence (`finding_events`) and findings' statuses live in
//! tables of their own, beside the events. Every change to them is also appended to the
//! event log, in the same transaction, as a record of the service's own
//! ([`evident_model::service`]: `evident.dedup.folded`, `evident.finding.evidence`,
//! `evident.finding.status`), so it is hashed, signed and verified like any event. The
//! walk then checks the tables against the records ([`Beside::check`]): a fold, a link or
//! a status change made, removed or altered behind the service's back is named.

use evident_model::service::{self, FINDING_EVIDENCE, FINDING_STATUS, FOLDS_RECORDED};
use evident_model::{EncodedEvent, Event, Priority, Severity};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use time::OffsetDateTime;
use uuid::Uuid;

/// The record of the folds of `folds` that `fresh` marks new, if any is.
pub(crate) fn new_folds(folds: &[(Uuid, Uuid)], fresh: &[bool]) -> Option<EncodedEvent> {
    let new: Vec<(Uuid, Uuid)> = folds
        .iter()
        .zip(fresh)
        .filter(|(_, new)| **new)
        .map(|(fold, _)| *fold)
        .collect();
    (!new.is_empty()).then(|| self::folds(&new))
}

/// The record of new folds `(folded id, stored id)`.
pub(crate) fn folds(folds: &[(Uuid, Uuid)]) -> EncodedEvent {
    let pairs: Vec<[Uuid; 2]> = folds.iter().map(|(id, into)| [*id, *into]).collect();
    record(FOLDS_RECORDED, json!({ "folds": pairs }))
}

/// New evidence of one finding.
pub(crate) struct Linked {
    /// The finding.
    pub finding: Uuid,
    /// Its rule.
    pub rule: String,
    /// The events newly linked to it.
    pub events: Vec<Uuid>,
}

/// The record of evidence newly linked to findings.
pub(crate) fn evidence(linked: &[Linked]) -> EncodedEvent {
    let findings: Vec<_> = linked
        .iter()
        .map(|l| json!({"finding": l.finding, "rule": l.rule, "events": l.events}))
        .collect();
    record(FINDING_EVIDENCE, json!({ "findings": findings }))
}

/// The record of a finding's status change.
pub(crate) fn status(finding: Uuid, status: &str, by: &str) -> EncodedEvent {
    record(
        FINDING_STATUS,
        json!({"finding": finding, "status": status, "by": by}),
    )
}

/// Most rows one baseline record carries.
const BASELINE_CHUNK: usize = 10_000;

/// The records that bring rows made before records were kept under the log, made once,
/// at the first start after the upgrade: the folds and evidence links as they are, in
/// chunks, and the status of every finding not open; each marked `data.baseline`.
/// None when the tables are empty.
pub(crate) fn baseline(rows: &SideRows) -> Vec<EncodedEvent> {
    let SideRows {
        folds,
        links,
        statuses,
    } = rows;
    let mut out: Vec<EncodedEvent> = folds.chunks(BASELINE_CHUNK).map(self::folds).collect();
    for chunk in links.chunks(BASELINE_CHUNK) {
        let mut by_finding: BTreeMap<Uuid, Linked> = BTreeMap::new();
        for (finding, rule, event) in chunk {
            by_finding
                .entry(*finding)
                .or_insert_with(|| Linked {
                    finding: *finding,
                    rule: rule.clone(),
                    events: Vec::new(),
                })
                .events
                .push(*event);
        }
        out.push(evidence(&by_finding.into_values().collect::<Vec<_>>()));
    }
    for (finding, status) in statuses {
        if status != "open" {
            out.push(self::status(*finding, status, "baseline"));
        }
    }
    out.into_iter()
        .map(|record| {
            let mut event = record.event;
            event.data.insert("baseline".into(), true.into());
            EncodedEvent::new(event)
        })
        .collect()
}

fn record(event_type: &str, data: serde_json::Value) -> EncodedEvent {
    EncodedEvent::new(service::record(
        event_type,
        Severity::Info,
        Priority::Info,
        data,
        OffsetDateTime::now_utc(),
    ))
}

/// What the side tables hold.
#[derive(Debug, Default)]
pub(crate) struct SideRows {
    /// `folds` rows: folded id, stored id.
    pub folds: Vec<(Uuid, Uuid)>,
    /// `finding_events` rows: finding, its rule, event.
    pub links: Vec<(Uuid, String, Uuid)>,
    /// Findings and their statuses.
    pub statuses: Vec<(Uuid, String)>,
}

/// Every query [`SideRows`] is read with, in its fields' order (both stores).
pub(crate) const SIDE_ROWS_SQL: [&str; 3] = [
    "SELECT id, into_id FROM folds",
    "SELECT f.id, f.rule_id, l.event_id FROM finding_events l JOIN findings f ON f.row = l.finding",
    "SELECT id, status FROM findings",
];

/// What the side tables hold, and what the log's records say they should.
#[derive(Debug, Default)]
pub(crate) struct Beside {
    /// Records, in log order (their stored bytes, already verified by the walk).
    pub records: Vec<Vec<u8>>,
    /// The tables.
    pub rows: SideRows,
}

impl Beside {
    /// Every difference between the tables and the records, named; at most `limit`.
    /// Rows made before records were kept are in the log's baseline ([`baseline`]).
    /// Once retention removed events from the log (and perhaps records with them), rows
    /// that have no record are not judged.
    pub(crate) fn check(&self, pruned: bool, limit: usize) -> Vec<String> {
        let mut logged_folds: BTreeMap<Uuid, Uuid> = BTreeMap::new();
        let mut logged_links: BTreeMap<Uuid, BTreeSet<Uuid>> = BTreeMap::new();
        let mut logged_status: BTreeMap<Uuid, String> = BTreeMap::new();
        let mut problems = Vec::new();
        let mut recording = false;
        for bytes in &self.records {
            let Ok(event) = serde_json::from_slice::<Event>(bytes) else {
                continue;
            };
            // Only the service's own records count; a client could never store one.
            if !event.service_record {
                continue;
            }
            let data = serde_json::Value::Object(event.data);
            // A baseline is made once, before any other record: one after them took
            // rows into the log that no record vouches for.
            if data["baseline"] == true {
                if recording {
                    problems.push(format!(
                        "record {}: a baseline made after records began took rows into the log late (the baseline flag was set again behind the service's back)",
                        event.id
                    ));
                }
            } else {
                recording = true;
            }
            match event.event_type.as_str() {
                FOLDS_RECORDED => {
                    for pair in data["folds"].as_array().into_iter().flatten() {
                        if let (Some(id), Some(into)) = (uuid_at(&pair[0]), uuid_at(&pair[1])) {
                            logged_folds.insert(id, into);
                        }
                    }
                }
                FINDING_EVIDENCE => {
                    for f in data["findings"].as_array().into_iter().flatten() {
                        let Some(finding) = uuid_at(&f["finding"]) else {
                            continue;
                        };
                        logged_links.entry(finding).or_default().extend(
                            f["events"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .filter_map(uuid_at),
                        );
                    }
                }
                FINDING_STATUS => {
                    if let (Some(finding), Some(status)) =
                        (uuid_at(&data["finding"]), data["status"].as_str())
                    {
                        logged_status.insert(finding, status.to_owned());
                    }
                }
                _ => {}
            }
        }
        // Folds.
        let stored_folds: BTreeMap<Uuid, Uuid> = self.rows.folds.iter().copied().collect();
        for (id, into) in &logged_folds {
            match stored_folds.get(id) {
                None => problems.push(format!(
                    "folds: the log records event {id} folded into {into}, but the folds table has no such row (removed)"
                )),
                Some(stored) if stored != into => problems.push(format!(
                    "folds: the log records event {id} folded into {into}, but the folds table says into {stored} (altered)"
                )),
                Some(_) => {}
            }
        }
        if !pruned {
            for (id, into) in &stored_folds {
                if !logged_folds.contains_key(id) {
                    problems.push(format!(
                        "folds: the folds table says event {id} was folded into {into}, but no record in the log says so (inserted)"
                    ));
                }
            }
        }
        // Findings' evidence.
        let mut stored_links: BTreeMap<Uuid, BTreeSet<Uuid>> = BTreeMap::new();
        for (finding, _, event) in &self.rows.links {
            stored_links.entry(*finding).or_default().insert(*event);
        }
        let empty = BTreeSet::new();
        for (finding, logged) in &logged_links {
            let stored = stored_links.get(finding).unwrap_or(&empty);
            for event in logged.difference(stored) {
                problems.push(format!(
                    "finding {finding}: the log records event {event} as its evidence, but finding_events has no such link (removed)"
                ));
            }
            if !pruned {
                for event in stored.difference(logged) {
                    problems.push(format!(
                        "finding {finding}: finding_events links event {event}, but no record in the log says so (inserted)"
                    ));
                }
            }
        }
        // Findings' statuses: what the last record says, or open.
        for (finding, status) in &self.rows.statuses {
            if !logged_links.contains_key(finding) {
                continue;
            }
            let logged = logged_status.get(finding).map_or("open", String::as_str);
            if logged != status {
                problems.push(format!(
                    "finding {finding}: its status is {status}, but the log records it {logged} (changed behind the service's back)"
                ));
            }
        }
        let known: BTreeSet<Uuid> = self.rows.statuses.iter().map(|(f, _)| *f).collect();
        for finding in logged_links.keys() {
            if !known.contains(finding) {
                problems.push(format!(
                    "finding {finding}: the log records its evidence, but the findings table has no such finding (removed)"
                ));
            }
        }
        if problems.len() > limit {
            let more = problems.len() - limit;
            problems.truncate(limit);
            problems.push(format!("... and {more} more"));
        }
        problems
    }
}

fn uuid_at(v: &serde_json::Value) -> Option<Uuid> {
    v.as_str().and_then(|s| Uuid::parse_str(s).ok())
}
