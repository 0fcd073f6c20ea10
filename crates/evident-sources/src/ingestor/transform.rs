//! What changes admitted events before they are encoded: sealing personal data today,
//! enrichment later.

use evident_model::Event;
use evident_privacy::Privacy;
use std::sync::Arc;

/// A transform failed; nothing of the input is queued.
#[derive(Debug, thiserror::Error)]
#[error("{transform} failed: {message}")]
pub struct TransformError {
    /// What the transform does, as a user reads it.
    pub transform: &'static str,
    /// What went wrong.
    pub message: String,
}

/// Changes admitted events before their one canonical encoding.
pub trait Transform: Send + Sync {
    /// Whether `event` gives this transform work (events that give none skip the
    /// blocking thread).
    fn applies_to(&self, event: &Event) -> bool;

    /// Changes `events` in place, leaving those it does not apply to as they are. May
    /// block (it runs on a blocking thread); on an error no event may be half changed.
    fn apply(&self, events: &mut [Event]) -> Result<(), TransformError>;
}

/// Seals personal fields: each value encrypted under its subject's key and replaced by
/// its pseudonym, so the queue, the journal, the store and everything downstream see
/// only pseudonyms and ciphertext.
pub struct Sealing(pub Arc<Privacy>);

impl Transform for Sealing {
    fn applies_to(&self, event: &Event) -> bool {
        self.0.applies_to(event)
    }

    fn apply(&self, events: &mut [Event]) -> Result<(), TransformError> {
        self.0.seal(events).map_err(|e| TransformError {
            transform: "sealing personal data",
            message: e.to_string(),
        })
    }
}
