//! The committed log: the store seen as the stream it is.

use crate::hub::CommittedEvent;
use async_trait::async_trait;

/// A read of the committed log that failed (the store is down, say); the follower tries
/// again.
#[derive(Debug, thiserror::Error)]
#[error("reading committed events after seq {after}: {reason}")]
pub struct LogError {
    /// The sequence number the read started after.
    pub after: i64,
    /// What went wrong.
    pub reason: String,
}

/// Committed events by sequence number, as the store holds them; both stores implement
/// it. Followers read it when the hub no longer holds what they need.
#[async_trait]
pub trait CommittedLog: Send + Sync + 'static {
    /// The committed events after sequence number `seq`, in order, at most `limit`. An
    /// event whose stored bytes no longer decode is left out, and said so in the log.
    async fn committed_after(
        &self,
        seq: i64,
        limit: usize,
    ) -> Result<Vec<CommittedEvent>, LogError>;

    /// The sequence number of the newest committed event (0 when there is none): where
    /// a follower that wants only what is committed from now on starts.
    async fn last_seq(&self) -> Result<i64, LogError>;
}
