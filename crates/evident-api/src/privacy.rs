//! What a caller sees of personal data: the clear values for keys with the
//! personal-data permission, pseudonyms for everyone else; and query filters on personal
//! fields turned into the pseudonyms the store holds.

use crate::auth::Caller;
use crate::error::ApiError;
use evident_privacy::{PersonalField, Privacy, Pseudonyms};
use evident_store::EventQuery;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

/// How events are shown to one caller.
#[derive(Clone)]
pub struct View {
    privacy: Option<Arc<Privacy>>,
    personal: bool,
}

impl View {
    /// The view of `caller`, under the service's protection (if any).
    pub fn new(privacy: Option<&Arc<Privacy>>, caller: &Caller) -> Self {
        Self {
            privacy: privacy.cloned(),
            personal: caller.key.personal,
        }
    }

    /// The view of a reader with the personal-data permission (what the live stream
    /// renders once for all such subscribers).
    pub fn personal(privacy: Option<&Arc<Privacy>>) -> Self {
        Self {
            privacy: privacy.cloned(),
            personal: true,
        }
    }

    /// The protection to open sealed values with, when the caller may see personal data.
    pub fn opener(&self) -> Option<&Privacy> {
        self.privacy.as_deref().filter(|_| self.personal)
    }

    /// Rewrites a stored event (as JSON) for the caller: with the permission, personal
    /// fields are decrypted in place (or, once the subject's key is erased, the event says
    /// so under `sealed.erased`); without it, the ciphertext is left out and the fields
    /// keep their pseudonyms.
    pub fn show(&self, event: &mut Value) {
        let Some(map) = event.as_object_mut() else {
            return;
        };
        if !map.contains_key("sealed") {
            return;
        }
        let (Some(privacy), true) = (&self.privacy, self.personal) else {
            map.remove("sealed");
            return;
        };
        // Read in place (the `seq` the API adds is not an event field and is skipped).
        let opened = evident_model::Event::deserialize(&*event)
            .map_err(|e| e.to_string())
            .and_then(|mut e| {
                privacy.open(&mut e).map_err(|e| e.to_string())?;
                serde_json::to_value(&e).map_err(|e| e.to_string())
            });
        let Some(map) = event.as_object_mut() else {
            return;
        };
        match opened {
            Ok(Value::Object(mut open)) => {
                if let Some(seq) = map.remove("seq") {
                    open.insert("seq".into(), seq);
                }
                *map = open;
            }
            Ok(_) => {}
            Err(reason) => {
                tracing::warn!(%reason, "a stored event's personal fields could not be opened");
                map.remove("sealed");
                map.insert("personal_unreadable".into(), Value::String(reason));
            }
        }
    }

    /// Turns filters on personal fields into filters on their pseudonyms. A caller without
    /// the permission may filter only by pseudonym (`ps_…`): a clear value would let them
    /// test who is in the data.
    pub fn filters(&self, query: &mut EventQuery) -> Result<(), ApiError> {
        let Some(privacy) = &self.privacy else {
            return Ok(());
        };
        for field in privacy.fields() {
            let value = match field {
                PersonalField::UserId => query.user_id.as_mut(),
                PersonalField::Ip => query.source_ip.as_mut(),
                PersonalField::Data(path) => query
                    .data
                    .iter_mut()
                    .find(|f| &f.path == path)
                    .map(|f| &mut f.value),
                PersonalField::UserAgent | PersonalField::SessionId => None,
            };
            let Some(value) = value else { continue };
            *value = self
                .filter_value(privacy, &field.path(), value)
                .map_err(ApiError::InvalidParameter)?;
        }
        Ok(())
    }

    /// What a filter on the personal field `path` compares with in the store: a
    /// pseudonym as it is, a clear value as its pseudonym for a caller with the
    /// permission; a clear value from any other caller is refused (it would let them test
    /// who is in the data).
    pub fn filter_value(
        &self,
        privacy: &Privacy,
        path: &str,
        value: &str,
    ) -> Result<String, String> {
        if Pseudonyms::is_pseudonym(value) {
            Ok(value.to_owned())
        } else if self.personal {
            Ok(privacy.pseudonym(value))
        } else {
            Err(format!(
                "{path} is personal data: filter by its pseudonym (ps_…), or use a key with the personal-data permission"
            ))
        }
    }
}
