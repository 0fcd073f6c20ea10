//! Personal field configuration, and sealing, opening and erasing personal data in events.

use crate::PrivacyError;
use crate::field::{open_value, seal_value};
use crate::keystore::{KeyStatus, SubjectKeys};
use crate::master::MasterKey;
use crate::pseudonym::Pseudonyms;
use evident_model::{Actor, Event, Sealed};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;

/// What a personal field path may be, for error messages.
const ACCEPTED: &str = "actor.user_id, actor.ip, actor.user_agent, actor.session_id, \
                        or data.<path> with non-empty dot-separated segments (data.email, data.customer.phone)";

/// A field of an event that holds personal data.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PersonalField {
    /// `actor.user_id`.
    UserId,
    /// `actor.ip`.
    Ip,
    /// `actor.user_agent`.
    UserAgent,
    /// `actor.session_id`.
    SessionId,
    /// `data.<segments joined by dots>`: a value inside the event's payload, reached
    /// through nested objects, one key per segment.
    Data(Vec<String>),
}

impl PersonalField {
    /// Parses a field path: `actor.user_id`, `actor.ip`, `actor.user_agent`,
    /// `actor.session_id`, or `data.` followed by one or more non-empty segments separated
    /// by dots.
    pub fn parse(s: &str) -> Result<Self, PrivacyError> {
        match s {
            "actor.user_id" => Ok(Self::UserId),
            "actor.ip" => Ok(Self::Ip),
            "actor.user_agent" => Ok(Self::UserAgent),
            "actor.session_id" => Ok(Self::SessionId),
            _ => {
                let bad = || {
                    PrivacyError::Field(format!(
                        "{s:?} is not a personal field; expected {ACCEPTED}"
                    ))
                };
                let rest = s.strip_prefix("data.").ok_or_else(bad)?;
                let segments: Vec<String> = rest.split('.').map(str::to_string).collect();
                if segments.iter().any(String::is_empty) {
                    return Err(bad());
                }
                Ok(Self::Data(segments))
            }
        }
    }

    /// The field's path as text, the form [`PersonalField::parse`] reads.
    pub fn path(&self) -> String {
        match self {
            Self::UserId => "actor.user_id".into(),
            Self::Ip => "actor.ip".into(),
            Self::UserAgent => "actor.user_agent".into(),
            Self::SessionId => "actor.session_id".into(),
            Self::Data(segments) => format!("data.{}", segments.join(".")),
        }
    }

    /// The fields protected when nothing else is configured: user id, address, user agent.
    pub fn defaults() -> Vec<PersonalField> {
        vec![Self::UserId, Self::Ip, Self::UserAgent]
    }

    fn actor_slot<'a>(&self, actor: &'a mut Actor) -> Option<&'a mut Option<String>> {
        match self {
            Self::UserId => Some(&mut actor.user_id),
            Self::Ip => Some(&mut actor.ip),
            Self::UserAgent => Some(&mut actor.user_agent),
            Self::SessionId => Some(&mut actor.session_id),
            Self::Data(_) => None,
        }
    }

    /// The field's value in `event`, if it is there: an actor field that is set, or a
    /// data path that leads to a value other than null.
    fn value<'a>(&self, event: &'a Event) -> Option<Present<'a>> {
        let actor = &event.actor;
        match self {
            Self::UserId => actor.user_id.as_deref().map(Present::Text),
            Self::Ip => actor.ip.as_deref().map(Present::Text),
            Self::UserAgent => actor.user_agent.as_deref().map(Present::Text),
            Self::SessionId => actor.session_id.as_deref().map(Present::Text),
            Self::Data(segments) => {
                let (first, rest) = segments.split_first()?;
                let mut value = event.data.get(first)?;
                for segment in rest {
                    value = value.as_object()?.get(segment)?;
                }
                (!value.is_null()).then_some(Present::Json(value))
            }
        }
    }

    /// Puts `text` in place of the field's value in `event` (as a JSON string for a data
    /// path). Only called for a field [`PersonalField::value`] found.
    fn replace(&self, event: &mut Event, text: String) {
        if let Some(slot) = self.actor_slot(&mut event.actor) {
            *slot = Some(text);
        } else if let Self::Data(segments) = self
            && let Some(value) = lookup_mut(&mut event.data, segments)
        {
            *value = Value::String(text);
        }
    }

    /// Puts `value` back as the field's value in `actor` or `data`, creating objects on a
    /// data path where they are missing.
    fn restore(
        &self,
        actor: &mut Actor,
        data: &mut Map<String, Value>,
        value: Value,
    ) -> Result<(), PrivacyError> {
        if let Some(slot) = self.actor_slot(actor) {
            let Value::String(text) = value else {
                return Err(PrivacyError::Open { field: self.path() });
            };
            *slot = Some(text);
            return Ok(());
        }
        let Self::Data(segments) = self else {
            return Ok(());
        };
        let Some((last, parents)) = segments.split_last() else {
            return Ok(());
        };
        let mut map = data;
        for segment in parents {
            let next = map
                .entry(segment.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if next.is_null() {
                *next = Value::Object(Map::new());
            }
            map = next.as_object_mut().ok_or_else(|| {
                PrivacyError::Field(format!(
                    "cannot put {} back: {segment} holds a value that is not an object",
                    self.path()
                ))
            })?;
        }
        map.insert(last.clone(), value);
        Ok(())
    }
}

impl fmt::Display for PersonalField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

/// A personal field's value as found in an event.
enum Present<'a> {
    /// An actor field.
    Text(&'a str),
    /// A value in the payload.
    Json(&'a Value),
}

impl Present<'_> {
    /// The text the pseudonym is computed from: a string as it is, anything else as
    /// compact JSON.
    fn text(&self) -> String {
        match self {
            Present::Text(s) => (*s).to_string(),
            Present::Json(Value::String(s)) => s.clone(),
            Present::Json(v) => v.to_string(),
        }
    }

    /// The bytes encrypted: the value as JSON, so its type comes back on opening.
    fn plaintext(&self) -> Vec<u8> {
        // Serializing a string or a JSON value cannot fail.
        match self {
            Present::Text(s) => serde_json::to_vec(s).unwrap_or_default(),
            Present::Json(v) => serde_json::to_vec(v).unwrap_or_default(),
        }
    }
}

fn lookup_mut<'a>(data: &'a mut Map<String, Value>, segments: &[String]) -> Option<&'a mut Value> {
    let (first, rest) = segments.split_first()?;
    let mut value = data.get_mut(first)?;
    for segment in rest {
        value = value.as_object_mut()?.get_mut(segment)?;
    }
    Some(value)
}

/// The result of erasing a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erasure {
    /// The subject's key id (its pseudonym), as found in its events' `sealed.key`.
    pub key: String,
    /// Whether a key was held and has now been deleted; false if the subject had no key
    /// (never seen, or erased before and not seen since).
    pub had_key: bool,
}

/// Personal data protection for events: seals personal fields before storage, opens them
/// for readers allowed to see them, and erases subjects.
#[derive(Debug)]
pub struct Privacy {
    pseudonyms: Pseudonyms,
    keys: SubjectKeys,
    fields: Vec<PersonalField>,
}

impl Privacy {
    /// Protection of `fields` (in this order; repeated fields count once), with pseudonyms
    /// under `master` and subject keys in `keys`.
    pub fn new(master: &MasterKey, keys: SubjectKeys, fields: Vec<PersonalField>) -> Self {
        let mut unique: Vec<PersonalField> = Vec::with_capacity(fields.len());
        for field in fields {
            if !unique.contains(&field) {
                unique.push(field);
            }
        }
        Self {
            pseudonyms: Pseudonyms::new(master),
            keys,
            fields: unique,
        }
    }

    /// Whether [`Privacy::seal`] would change `event`: it is not sealed yet and has at
    /// least one personal field.
    pub fn applies_to(&self, event: &Event) -> bool {
        event.sealed.is_none() && self.fields.iter().any(|f| f.value(event).is_some())
    }

    /// Seals the personal fields of `events`: each value is encrypted under its subject's
    /// key and replaced by its pseudonym, and the ciphertexts are kept in `event.sealed`.
    ///
    /// An event's subject is the value of its first personal field, in configured order.
    /// Keys for new subjects are made and stored in one transaction for the whole batch.
    /// Events already sealed, and events without personal fields, are left as they are.
    /// On an error no event is changed.
    pub fn seal(&self, events: &mut [Event]) -> Result<(), PrivacyError> {
        let key_ids: Vec<Option<String>> = events
            .iter()
            .map(|event| {
                if event.sealed.is_some() {
                    return None;
                }
                let subject = self.fields.iter().find_map(|f| f.value(event))?;
                Some(self.pseudonyms.of(&subject.text()))
            })
            .collect();
        let ids: Vec<&str> = key_ids.iter().flatten().map(String::as_str).collect();
        if ids.is_empty() {
            return Ok(());
        }
        let keys = self.keys.keys_for(&ids)?;
        if let Some(missing) = ids.iter().find(|id| !keys.contains_key(**id)) {
            return Err(PrivacyError::KeyStore(format!(
                "no key was given for subject {missing}"
            )));
        }
        for (event, key_id) in events.iter_mut().zip(key_ids) {
            let Some(key_id) = key_id else {
                continue;
            };
            let key = &keys[&key_id];
            let mut sealed = BTreeMap::new();
            for field in &self.fields {
                let Some(present) = field.value(event) else {
                    continue;
                };
                let path = field.path();
                let text = present.text();
                let ciphertext = seal_value(key, &key_id, event.id, &path, &present.plaintext());
                sealed.insert(path, ciphertext);
                field.replace(event, self.pseudonyms.of(&text));
            }
            event.sealed = Some(Sealed {
                key: key_id,
                fields: sealed,
                erased: false,
            });
        }
        Ok(())
    }

    /// Opens a sealed event for a reader allowed to see personal data: puts the original
    /// values back and removes `sealed`. If the subject's key was erased, the pseudonyms
    /// stay and `sealed` becomes `{key, erased: true}` without ciphertexts. The same holds
    /// for an event sealed before an erasure of a subject who has a new key since: none of
    /// its fields open under the new key, and an erasure is on record. Events that are not
    /// sealed are left as they are.
    ///
    /// Works from the paths recorded in the event, whatever fields are configured now. A
    /// ciphertext that does not decrypt is [`PrivacyError::Open`]; a recorded path that is
    /// not a personal field is [`PrivacyError::Field`]. On an error the event is unchanged.
    pub fn open(&self, event: &mut Event) -> Result<(), PrivacyError> {
        let Some(sealed) = &event.sealed else {
            return Ok(());
        };
        if sealed.erased {
            return Ok(());
        }
        let mut targets = Vec::with_capacity(sealed.fields.len());
        for (path, ciphertext) in &sealed.fields {
            let field = PersonalField::parse(path).map_err(|_| {
                PrivacyError::Field(format!(
                    "event {} has sealed field {path:?}, which is not a personal field; \
                     expected {ACCEPTED}",
                    event.id
                ))
            })?;
            targets.push((field, path, ciphertext));
        }
        let Some(key) = self.keys.get(&sealed.key)? else {
            event.sealed = Some(erased(&sealed.key));
            return Ok(());
        };

        let mut opened = Vec::with_capacity(targets.len());
        let mut failure = None;
        for (field, path, ciphertext) in targets {
            match open_value(&key, &sealed.key, event.id, path, ciphertext) {
                Ok(plain) => opened.push((field, path, plain)),
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        if let Some(failure) = failure {
            // The subject was erased and has a new key since: an event sealed before the
            // erasure fails with the new key in every field. It stays erased.
            if opened.is_empty() && self.keys.erased_at(&sealed.key)?.is_some() {
                event.sealed = Some(erased(&sealed.key));
                return Ok(());
            }
            return Err(failure);
        }

        let mut actor = event.actor.clone();
        let mut data = event.data.clone();
        for (field, path, plain) in opened {
            let value: Value = serde_json::from_slice(&plain).map_err(|_| PrivacyError::Open {
                field: path.clone(),
            })?;
            field.restore(&mut actor, &mut data, value)?;
        }
        event.actor = actor;
        event.data = data;
        event.sealed = None;
        Ok(())
    }

    /// Prepares a sealed event for a reader not allowed to see personal data: drops the
    /// ciphertexts and the key id, leaving the pseudonyms.
    pub fn hide(event: &mut Event) {
        event.sealed = None;
    }

    /// The pseudonym of `value`, as sealing puts it in place of a personal field with that
    /// value; the way to query sealed events by a personal value.
    pub fn pseudonym(&self, value: &str) -> String {
        self.pseudonyms.of(value)
    }

    /// The key store.
    pub fn keys(&self) -> &SubjectKeys {
        &self.keys
    }

    /// The personal fields, in the order the subject is chosen from.
    pub fn fields(&self) -> &[PersonalField] {
        &self.fields
    }

    /// Erases `subject` (the value of an event's first personal field, e.g. a user id):
    /// deletes its key, so the personal fields of every event sealed under it can never
    /// be read again. Events whose subject is another value (say, an address seen without
    /// a user id) are subjects of their own and need their own erasure.
    pub fn erase(&self, subject: &str) -> Result<Erasure, PrivacyError> {
        let key = self.pseudonyms.of(subject);
        let had_key = self.keys.erase(&key)?;
        Ok(Erasure { key, had_key })
    }

    /// The key id (pseudonym) of `subject` and what the key store knows of its key.
    pub fn status(&self, subject: &str) -> Result<(String, KeyStatus), PrivacyError> {
        let key = self.pseudonyms.of(subject);
        let status = self.keys.status(&key)?;
        Ok((key, status))
    }
}

fn erased(key: &str) -> Sealed {
    Sealed {
        key: key.to_string(),
        fields: BTreeMap::new(),
        erased: true,
    }
}
