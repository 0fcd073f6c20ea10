//! Both stores as the committed log ([`evident_stream::CommittedLog`]): what they share.

use crate::StoreError;
use evident_model::{EncodedEvent, Event};
use evident_stream::{CommittedEvent, LogError};

/// Stored `(seq, canonical bytes)` rows as committed events; a row that does not decode
/// is left out and said so, as no follower can use it (`evident verify` names it).
pub(crate) fn decode(stored: Vec<(i64, Vec<u8>)>) -> Vec<CommittedEvent> {
    stored
        .into_iter()
        .filter_map(|(seq, bytes)| match serde_json::from_slice::<Event>(&bytes) {
            Ok(event) => Some(CommittedEvent::new(seq, EncodedEvent { event, bytes })),
            Err(error) => {
                tracing::error!(seq, %error, "a stored event does not decode; followers skip it");
                None
            }
        })
        .collect()
}

/// A store error met reading the log after `seq`.
pub(crate) fn log_error(seq: i64, error: &StoreError) -> LogError {
    LogError {
        after: seq,
        reason: error.to_string(),
    }
}
