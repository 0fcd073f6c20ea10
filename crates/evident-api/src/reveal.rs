//! Findings as a caller sees them: the group key with clear values for callers allowed to
//! see personal data, with pseudonyms for everyone else.
//!
//! Detection groups sealed events by their pseudonyms, so a stored finding names its group
//! as `actor.ip=ps_…`. Nothing maps a pseudonym back to its value, but a finding's evidence
//! events carry the clear values of the very fields it was grouped by, encrypted. For a
//! caller with the permission, each distinct pseudonym of a page of findings is resolved by
//! opening one of its evidence events (another only when that one is gone or lacks the
//! field); every value so found is checked against its pseudonym before it is shown.

use crate::error::ApiError;
use crate::privacy::View;
use evident_model::Event;
use evident_privacy::{Privacy, Pseudonyms};
use evident_store::{EventReader, Finding, Scope};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use uuid::Uuid;

/// Evidence events read at most to resolve one pseudonym (when earlier ones are gone or do
/// not hold it).
const TRIES_PER_PSEUDONYM: usize = 3;

/// What became of a pseudonym.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// Its clear value, as detection saw it before sealing (a string as it is, anything
    /// else as compact JSON).
    Clear(String),
    /// The subject's key was destroyed: the value can never be read again.
    Erased,
}

/// Pseudonyms and what they stand for, learned from opened events.
#[derive(Debug, Default)]
pub struct Resolutions {
    known: HashMap<String, Resolved>,
}

impl Resolutions {
    /// What `pseudonym` stands for, if known.
    pub fn get(&self, pseudonym: &str) -> Option<&Resolved> {
        self.known.get(pseudonym)
    }

    /// Learns the pseudonyms of one stored event (its canonical bytes): opens it and keeps,
    /// for each sealed field, the clear value under the pseudonym the event stores, or
    /// that it was erased. A clear value is kept only if it gives that very pseudonym.
    pub fn learn(&mut self, privacy: &Privacy, bytes: &[u8]) {
        let (Ok(stored), Ok(mut event)) = (
            serde_json::from_slice::<Value>(bytes),
            serde_json::from_slice::<Event>(bytes),
        ) else {
            tracing::warn!("a finding's evidence event could not be read");
            return;
        };
        let Some(sealed) = &event.sealed else {
            return;
        };
        let pseudonyms: Vec<(String, String)> = sealed
            .fields
            .keys()
            .filter_map(|path| {
                let value = lookup(&stored, path)?.as_str()?;
                Pseudonyms::is_pseudonym(value).then(|| (path.clone(), value.to_owned()))
            })
            .collect();
        if let Err(error) = privacy.open(&mut event) {
            tracing::warn!(%error, id = %event.id, "a finding's evidence event could not be opened");
            return;
        }
        if event.sealed.as_ref().is_some_and(|s| s.erased) {
            for (_, pseudonym) in pseudonyms {
                self.known.entry(pseudonym).or_insert(Resolved::Erased);
            }
            return;
        }
        let Ok(opened) = serde_json::to_value(&event) else {
            return;
        };
        for (path, pseudonym) in pseudonyms {
            let Some(value) = lookup(&opened, &path) else {
                continue;
            };
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if privacy.pseudonym(&text) == pseudonym {
                self.known.insert(pseudonym, Resolved::Clear(text));
            }
        }
    }

    /// The finding as JSON, shown as [`Resolutions::reveal`] puts it.
    pub fn show(&self, finding: &Finding) -> Value {
        let mut value = serde_json::to_value(finding).unwrap_or(Value::Null);
        self.reveal(&mut value);
        value
    }

    /// Rewrites an object with a `group_key` (a finding, a backtest's firing): every
    /// `field=ps_…` part of the key that is known gets the clear value, and a `personal`
    /// object names the fields shown in the clear (`revealed`), those whose subject was
    /// erased (`erased`) and those whose value could not be found among the evidence
    /// (`unavailable`). Without pseudonyms in the group key, the object is left as it is.
    pub fn reveal(&self, object: &mut Value) {
        let Some(map) = object.as_object_mut() else {
            return;
        };
        let Some(Value::String(group_key)) = map.get("group_key") else {
            return;
        };
        let parts = parts(group_key);
        if parts.iter().all(|(_, p)| p.is_none()) {
            return;
        }
        let mut revealed = Vec::new();
        let mut erased = Vec::new();
        let mut unavailable = Vec::new();
        let key: Vec<String> = parts
            .into_iter()
            .map(|(text, personal)| {
                let Some((field, pseudonym)) = personal else {
                    return text.to_owned();
                };
                match self.get(pseudonym) {
                    Some(Resolved::Clear(clear)) => {
                        revealed.push(field.to_owned());
                        format!("{field}={clear}")
                    }
                    Some(Resolved::Erased) => {
                        erased.push(field.to_owned());
                        text.to_owned()
                    }
                    None => {
                        unavailable.push(field.to_owned());
                        text.to_owned()
                    }
                }
            })
            .collect();
        let mut personal = Map::new();
        for (name, fields) in [
            ("revealed", revealed),
            ("erased", erased),
            ("unavailable", unavailable),
        ] {
            if !fields.is_empty() {
                personal.insert(name.into(), fields.into());
            }
        }
        map.insert("group_key".into(), Value::String(key.join(", ")));
        map.insert("personal".into(), Value::Object(personal));
    }
}

/// The parts of a group key (`field=value` pairs joined by `, `), each with its field and
/// pseudonym when its value is one.
fn parts(group_key: &str) -> Vec<(&str, Option<(&str, &str)>)> {
    if group_key.is_empty() {
        return Vec::new();
    }
    group_key
        .split(", ")
        .map(|part| {
            let personal = part
                .split_once('=')
                .filter(|(_, value)| Pseudonyms::is_pseudonym(value));
            (part, personal)
        })
        .collect()
}

/// The value at a dotted field path (`actor.ip`, `data.customer.email`) of an event as JSON.
fn lookup<'a>(event: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(event, |value, segment| value.get(segment))
}

/// `findings` as `view`'s caller sees them: as stored for a caller without the
/// personal-data permission; otherwise with clear values in their group keys, read from
/// their evidence events in `scope` (see [`resolve`]).
pub async fn present(
    findings: Vec<Finding>,
    view: &View,
    events: &Arc<dyn EventReader>,
    scope: &Scope,
) -> Result<Vec<Value>, ApiError> {
    let groups = findings
        .iter()
        .map(|f| (f.group_key.as_str(), f.evidence.as_slice()));
    let resolutions = resolve(view, groups, events, scope).await?;
    Ok(findings
        .iter()
        .map(|f| match &resolutions {
            Some(resolutions) => resolutions.show(f),
            None => serde_json::to_value(f).unwrap_or(Value::Null),
        })
        .collect())
}

/// For a caller with the personal-data permission (`None` for others), what the
/// pseudonyms in `groups` (group keys, each with its evidence event ids) stand for.
///
/// Reads evidence events in `scope`, in rounds of concurrent reads: in each round at most
/// one event per pseudonym still unknown, and none read twice; usually one round does,
/// and one event often resolves several pseudonyms (a user and an address). A
/// pseudonym's next evidence event is read only when the earlier ones are gone or do not
/// hold it, up to three.
pub async fn resolve<'a>(
    view: &View,
    groups: impl Iterator<Item = (&'a str, &'a [Uuid])>,
    events: &Arc<dyn EventReader>,
    scope: &Scope,
) -> Result<Option<Resolutions>, ApiError> {
    let Some(privacy) = view.opener() else {
        return Ok(None);
    };
    let mut resolutions = Resolutions::default();
    // Each pseudonym's candidate events: the evidence of the groups naming it, in order.
    let mut candidates: HashMap<&str, Vec<Uuid>> = HashMap::new();
    for (group_key, evidence) in groups {
        for (_, personal) in parts(group_key) {
            let Some((_, pseudonym)) = personal else {
                continue;
            };
            let ids = candidates.entry(pseudonym).or_default();
            for id in evidence {
                if ids.len() >= TRIES_PER_PSEUDONYM {
                    break;
                }
                if !ids.contains(id) {
                    ids.push(*id);
                }
            }
        }
    }
    let mut read: HashSet<Uuid> = HashSet::new();
    for _ in 0..TRIES_PER_PSEUDONYM {
        let mut round: Vec<Uuid> = Vec::new();
        for (pseudonym, ids) in &candidates {
            if resolutions.get(pseudonym).is_some() {
                continue;
            }
            if let Some(id) = ids.iter().find(|id| !read.contains(id))
                && !round.contains(id)
            {
                round.push(*id);
            }
        }
        if round.is_empty() {
            break;
        }
        let mut reads = tokio::task::JoinSet::new();
        for id in round {
            read.insert(id);
            let events = events.clone();
            let scope = scope.clone();
            reads.spawn(async move { events.get(id, scope).await });
        }
        while let Some(done) = reads.join_next().await {
            let found = done.map_err(|e| {
                tracing::error!(error = %e, "reading a finding's evidence failed");
                ApiError::Internal
            })??;
            if let Some(stored) = found {
                resolutions.learn(privacy, &stored.bytes);
            }
        }
    }
    Ok(Some(resolutions))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Caller;
    use evident_model::{EncodedEvent, Severity};
    use evident_privacy::{MasterKey, PersonalField, SubjectKeys};
    use evident_store::roles::*;
    use evident_store::{ApiKey, FindingStatus, Role, SqliteStore};
    use serde_json::json;
    use time::macros::datetime;

    /// A store with sealed failed logins of `bob` from 10.0.0.7, under default protection.
    struct Fixture {
        _dir: tempfile::TempDir,
        privacy: Arc<Privacy>,
        events: Arc<dyn EventStore>,
        ids: Vec<Uuid>,
    }

    impl Fixture {
        async fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let master = MasterKey::generate();
            let keys = SubjectKeys::open(&dir.path().join("keys.db"), &master).unwrap();
            let privacy = Arc::new(Privacy::new(&master, keys, PersonalField::defaults()));
            let mut batch: Vec<Event> = (0..2)
                .map(|i| {
                    serde_json::from_value(json!({
                        "id": Uuid::new_v4(),
                        "time": format!("2026-03-01T10:00:0{i}Z"),
                        "received_at": "2026-03-01T10:00:10Z",
                        "type": "auth.login.failure", "category": "authentication",
                        "severity": "medium", "priority": "info", "outcome": "failure",
                        "actor": {"user_id": "bob", "ip": "10.0.0.7"},
                    }))
                    .unwrap()
                })
                .collect();
            privacy.seal(&mut batch).unwrap();
            let ids = batch.iter().map(|e| e.id).collect();
            let store = SqliteStore::open_exclusive(&dir.path().join("store")).unwrap();
            let encoded: Vec<EncodedEvent> = batch.into_iter().map(EncodedEvent::new).collect();
            store.append(encoded.into()).await.unwrap();
            Self {
                _dir: dir,
                privacy,
                events: Arc::new(store),
                ids,
            }
        }

        /// A brute-force finding grouped by user and address, with `evidence`.
        fn finding(&self, evidence: Vec<Uuid>) -> Finding {
            let key = format!(
                "actor.user_id={}, actor.ip={}",
                self.privacy.pseudonym("bob"),
                self.privacy.pseudonym("10.0.0.7")
            );
            finding(&key, evidence)
        }

        async fn shown(&self, finding: Finding, personal: bool) -> Value {
            let caller = Caller {
                key: ApiKey {
                    id: 1,
                    role: Role::Read,
                    facilities: None,
                    personal,
                },
            };
            let view = View::new(Some(&self.privacy), &caller);
            let mut shown = present(
                vec![finding],
                &view,
                &(self.events.clone() as Arc<dyn EventReader>),
                &None,
            )
            .await
            .unwrap();
            shown.pop().unwrap()
        }
    }

    fn finding(group_key: &str, evidence: Vec<Uuid>) -> Finding {
        Finding {
            id: Uuid::new_v4(),
            rule_id: "brute-force".into(),
            title: "Brute force".into(),
            severity: Severity::High,
            group_key: group_key.into(),
            tags: vec![],
            facility: None,
            evidence,
            first_seen: datetime!(2026-03-01 10:00:00 UTC),
            last_seen: datetime!(2026-03-01 10:00:01 UTC),
            count: 1,
            status: FindingStatus::Open,
            status_by: None,
            status_at: None,
        }
    }

    #[tokio::test]
    async fn findings_show_clear_values_to_personal_readers_only() {
        let fx = Fixture::new().await;
        let finding = fx.finding(fx.ids.clone());
        let stored_key = finding.group_key.clone();

        let shown = fx.shown(finding.clone(), true).await;
        assert_eq!(shown["group_key"], "actor.user_id=bob, actor.ip=10.0.0.7");
        assert_eq!(
            shown["personal"],
            json!({"revealed": ["actor.user_id", "actor.ip"]})
        );

        let hidden = fx.shown(finding, false).await;
        assert_eq!(hidden["group_key"], stored_key.as_str());
        assert!(hidden.get("personal").is_none(), "{hidden}");
        let text = hidden.to_string();
        assert!(
            !text.contains("=bob") && !text.contains("10.0.0.7"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn findings_look_past_evidence_that_is_gone() {
        let fx = Fixture::new().await;
        let gone = Uuid::new_v4();
        let shown = fx.shown(fx.finding(vec![gone, fx.ids[1]]), true).await;
        assert_eq!(shown["group_key"], "actor.user_id=bob, actor.ip=10.0.0.7");

        let finding = fx.finding(vec![gone]);
        let stored_key = finding.group_key.clone();
        let shown = fx.shown(finding, true).await;
        assert_eq!(shown["group_key"], stored_key.as_str());
        assert_eq!(
            shown["personal"],
            json!({"unavailable": ["actor.user_id", "actor.ip"]})
        );
    }

    #[tokio::test]
    async fn findings_of_an_erased_subject_keep_pseudonyms_and_say_so() {
        let fx = Fixture::new().await;
        fx.privacy.erase("bob").unwrap();
        let finding = fx.finding(fx.ids.clone());
        let stored_key = finding.group_key.clone();
        let shown = fx.shown(finding, true).await;
        assert_eq!(shown["group_key"], stored_key.as_str());
        assert_eq!(
            shown["personal"],
            json!({"erased": ["actor.user_id", "actor.ip"]})
        );
    }

    #[test]
    fn group_keys_without_pseudonyms_are_left_alone() {
        let mut finding = finding("station=line-1, actor.ip=10.0.0.7", vec![]);
        let shown = Resolutions::default().show(&finding);
        assert_eq!(shown["group_key"], "station=line-1, actor.ip=10.0.0.7");
        assert!(shown.get("personal").is_none());
        finding.group_key = String::new();
        assert!(
            Resolutions::default()
                .show(&finding)
                .get("personal")
                .is_none()
        );
    }
}
