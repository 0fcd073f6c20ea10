//! Findings: what detection concluded from events, kept until someone resolves them,
//! and the detection stage's place in the committed stream.
//!
//! A finding is one rule firing for one group (a user, an address, a station: whatever
//! the rule groups by). While it is open or acknowledged, further firings of the same
//! rule and group update it (count, last seen, evidence) instead of adding findings;
//! once resolved, the next firing opens a new one.

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use evident_model::Severity;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::StoreError;
use crate::query::Scope;

/// Event ids kept as a finding's evidence (the first ones); every event that fired it
/// is still linked, and shown by `?include=findings` on the event.
pub const EVIDENCE_LIMIT: usize = 100;

/// Where a finding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FindingStatus {
    /// New; nobody has looked at it.
    Open,
    /// Someone is on it; further firings still update it.
    Acknowledged,
    /// Closed; the next firing opens a new finding.
    Resolved,
}

impl FindingStatus {
    /// The lowercase name used in the API and the stores.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Acknowledged => "acknowledged",
            Self::Resolved => "resolved",
        }
    }
}

impl fmt::Display for FindingStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status name that is not one of `open`, `acknowledged`, `resolved`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown finding status {0:?}; expected open, acknowledged or resolved")]
pub struct UnknownStatus(pub String);

impl FromStr for FindingStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "open" => Ok(Self::Open),
            "acknowledged" => Ok(Self::Acknowledged),
            "resolved" => Ok(Self::Resolved),
            _ => Err(UnknownStatus(s.to_owned())),
        }
    }
}

/// One firing of a rule, as the detection stage hands it to the store.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The rule's id (its title when it has none).
    pub rule_id: String,
    /// The rule's title.
    pub title: String,
    /// The rule's level, on evident's scale.
    pub severity: Severity,
    /// What the rule groups by, as `field=value` pairs joined by `, ` (empty: one group).
    pub group_key: String,
    /// The rule's tags.
    pub tags: Vec<String>,
    /// The facility of the event that fired it.
    pub facility: Option<String>,
    /// The events behind this firing (for a correlation, those in its window).
    pub events: Vec<Uuid>,
    /// How many firings this hit stands for (the stage merges a batch's firings of
    /// one rule and group into one hit).
    pub firings: u64,
    /// Event time of the first firing event.
    pub first: OffsetDateTime,
    /// Event time of the last firing event.
    pub last: OffsetDateTime,
}

/// A finding as stored and served.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// The finding's id.
    pub id: Uuid,
    /// The rule that fired.
    pub rule_id: String,
    /// The rule's title.
    pub title: String,
    /// How bad it is (the rule's level).
    pub severity: Severity,
    /// The group it fired for (`field=value, ...`; empty when the rule does not group).
    pub group_key: String,
    /// The rule's tags (ATT&CK and the like).
    pub tags: Vec<String>,
    /// Facility of the events (of the first, when they differ).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facility: Option<String>,
    /// Ids of the events that fired it, the first [`EVIDENCE_LIMIT`].
    pub evidence: Vec<Uuid>,
    /// Event time of the first firing.
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen: OffsetDateTime,
    /// Event time of the latest firing.
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
    /// How many times the rule fired into it.
    pub count: u64,
    /// Where it stands.
    pub status: FindingStatus,
    /// Who last changed the status (an API key's label or id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_by: Option<String>,
    /// When the status last changed.
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub status_at: Option<OffsetDateTime>,
}

/// A filter over findings, newest first (by when they were opened).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FindingQuery {
    /// In this status.
    pub status: Option<FindingStatus>,
    /// Of this rule.
    pub rule_id: Option<String>,
    /// Exactly this severity.
    pub severity: Option<Severity>,
    /// This severity or worse.
    pub min_severity: Option<Severity>,
    /// Of this facility.
    pub facility: Option<String>,
    /// Last seen at or after this (Unix microseconds).
    pub from: Option<i64>,
    /// First seen before this (Unix microseconds).
    pub to: Option<i64>,
    /// Page size.
    pub limit: usize,
    /// Continue after this finding (its row number).
    pub cursor: Option<FindingCursor>,
    /// Facilities the caller may see.
    pub scope: Scope,
}

/// A position in the newest-first order of findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FindingCursor(pub i64);

impl FindingCursor {
    /// The opaque text form handed to clients.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("f{}", self.0))
    }

    /// Reads a cursor made by [`FindingCursor::encode`].
    pub fn decode(text: &str) -> Option<Self> {
        let raw = URL_SAFE_NO_PAD.decode(text).ok()?;
        let text = std::str::from_utf8(&raw).ok()?;
        text.strip_prefix('f')?.parse().ok().map(Self)
    }
}

/// One page of findings.
#[derive(Debug, Clone, PartialEq)]
pub struct FindingPage {
    /// The findings, newest first.
    pub findings: Vec<Finding>,
    /// Where the next page starts, if there may be one.
    pub next: Option<FindingCursor>,
}

impl FindingPage {
    /// The page of `limit` findings from `found`: `(row, finding)` newest first, fetched
    /// with one more than `limit` to tell whether another page follows.
    pub(crate) fn from_rows(mut found: Vec<(i64, Finding)>, limit: usize) -> Self {
        let more = found.len() > limit;
        found.truncate(limit);
        FindingPage {
            next: more
                .then(|| found.last().map(|(row, _)| FindingCursor(*row)))
                .flatten(),
            findings: found.into_iter().map(|(_, f)| f).collect(),
        }
    }
}

/// A change of a finding's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    /// The new status.
    pub status: FindingStatus,
    /// Who made it.
    pub by: String,
    /// When (Unix microseconds).
    pub at: i64,
}

/// Where the detection stage stands in the committed stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DetectionCheckpoint {
    /// Findings are recorded for every event up to this sequence number.
    pub done_seq: i64,
    /// Correlation state as of `state_seq` (serialized by the detection stage), if saved.
    pub state: Option<(i64, Vec<u8>)>,
}

/// Findings storage, and what the detection stage reads and records.
#[async_trait]
pub trait FindingStore: Send + Sync + 'static {
    /// Where detection stopped (zero and no state on a new store).
    async fn detection_checkpoint(&self) -> Result<DetectionCheckpoint, StoreError>;

    /// In one transaction: folds `hits` into findings (updating the open finding of the
    /// same rule and group, or opening one), links each hit's events to its finding, and
    /// records that events up to `done_seq` are done. Returns the touched finding ids.
    async fn record_hits(&self, hits: Vec<Hit>, done_seq: i64) -> Result<Vec<Uuid>, StoreError>;

    /// Saves the correlation state as of `seq`.
    async fn save_detection_state(&self, seq: i64, state: Vec<u8>) -> Result<(), StoreError>;

    /// The finding with this id, if it exists and is in `scope`.
    async fn finding(&self, id: Uuid, scope: Scope) -> Result<Option<Finding>, StoreError>;

    /// One page of findings matching `query`, newest first.
    async fn findings(&self, query: FindingQuery) -> Result<FindingPage, StoreError>;

    /// Changes a finding's status; the updated finding, or `None` if it does not exist
    /// or is out of `scope`.
    async fn set_finding_status(
        &self,
        id: Uuid,
        change: StatusChange,
        scope: Scope,
    ) -> Result<Option<Finding>, StoreError>;

    /// The findings this event is evidence of.
    async fn findings_for_event(
        &self,
        event: Uuid,
        scope: Scope,
    ) -> Result<Vec<Finding>, StoreError>;
}

/// The key that keeps one unresolved finding per rule and group: the rule id and the
/// group key joined by U+001F, which the stores also build in SQL (`char(31)`, `chr(31)`).
pub(crate) fn open_key(rule_id: &str, group_key: &str) -> String {
    format!("{rule_id}\u{1f}{group_key}")
}

/// Adds `new` ids to `evidence`, skipping ones already there, up to [`EVIDENCE_LIMIT`].
pub(crate) fn extend_evidence(evidence: &mut Vec<Uuid>, new: &[Uuid]) {
    for id in new {
        if evidence.len() >= EVIDENCE_LIMIT {
            break;
        }
        if !evidence.contains(id) {
            evidence.push(*id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        let c = FindingCursor(42);
        assert_eq!(FindingCursor::decode(&c.encode()), Some(c));
        assert_eq!(FindingCursor::decode("nope"), None);
        assert_eq!(FindingCursor::decode(""), None);
    }

    #[test]
    fn evidence_is_bounded_and_without_repeats() {
        let ids: Vec<Uuid> = (0..150).map(Uuid::from_u128).collect();
        let mut evidence = vec![ids[0]];
        extend_evidence(&mut evidence, &ids[..3]);
        assert_eq!(evidence, ids[..3].to_vec());
        extend_evidence(&mut evidence, &ids);
        assert_eq!(evidence.len(), EVIDENCE_LIMIT);
        assert_eq!(evidence, ids[..EVIDENCE_LIMIT].to_vec());
    }

    #[test]
    fn statuses_parse_by_name_only() {
        for s in [
            FindingStatus::Open,
            FindingStatus::Acknowledged,
            FindingStatus::Resolved,
        ] {
            assert_eq!(s.as_str().parse::<FindingStatus>().unwrap(), s);
        }
        let err = "closed".parse::<FindingStatus>().unwrap_err();
        assert!(err.to_string().contains("closed"));
    }
}
