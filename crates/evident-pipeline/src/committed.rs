//! The committed stream: what the stages after the commit (detection, live streaming)
//! follow.
//!
//! The store is the stream: every committed event has its sequence number, and a
//! follower reads events after the last one it handled. This hub only says when there
//! is something new (the highest sequence number committed, through a watch channel)
//! and when each recent commit happened, so a follower can tell its delay after the
//! commit. A follower that falls behind loses nothing; it reads further back.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;
use tokio::sync::watch;

/// Commits remembered for [`Commits::committed_at`].
const RECENT: usize = 4096;

/// Where the committed stream stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Head {
    /// Highest sequence number committed by the pipeline (0 before the first commit).
    pub seq: i64,
    /// True once the pipeline has stopped: nothing more will be committed.
    pub closed: bool,
}

/// The committed stream's hub; shared by the commit stage and its followers.
pub struct Commits {
    head: watch::Sender<Head>,
    recent: Mutex<VecDeque<(i64, Instant)>>,
}

impl Default for Commits {
    fn default() -> Self {
        Self {
            head: watch::Sender::new(Head::default()),
            recent: Mutex::new(VecDeque::with_capacity(RECENT)),
        }
    }
}

impl Commits {
    /// Records that events up to `seq` were committed at `at`.
    pub fn record(&self, seq: i64, at: Instant) {
        {
            let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
            if recent.len() == RECENT {
                recent.pop_front();
            }
            recent.push_back((seq, at));
        }
        self.head.send_modify(|head| head.seq = head.seq.max(seq));
    }

    /// Marks the stream closed (the pipeline has drained and stopped).
    pub fn close(&self) {
        self.head.send_modify(|head| head.closed = true);
    }

    /// A receiver that wakes whenever more is committed or the stream closes.
    pub fn subscribe(&self) -> watch::Receiver<Head> {
        self.head.subscribe()
    }

    /// When the event with sequence number `seq` was committed, if that was recent.
    pub fn committed_at(&self, seq: i64) -> Option<Instant> {
        let recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        let i = recent.partition_point(|(last, _)| *last < seq);
        recent.get(i).map(|(_, at)| *at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn commit_times_are_found_by_any_sequence_number_of_the_commit() {
        let commits = Commits::default();
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(5);
        commits.record(10, t0);
        commits.record(25, t1);
        assert_eq!(commits.committed_at(1), Some(t0));
        assert_eq!(commits.committed_at(10), Some(t0));
        assert_eq!(commits.committed_at(11), Some(t1));
        assert_eq!(commits.committed_at(25), Some(t1));
        assert_eq!(commits.committed_at(26), None);
        assert_eq!(commits.subscribe().borrow().seq, 25);
    }

    #[tokio::test]
    async fn followers_wake_on_commits_and_on_close() {
        let commits = Commits::default();
        let mut rx = commits.subscribe();
        commits.record(3, Instant::now());
        rx.changed().await.unwrap();
        assert_eq!(
            *rx.borrow_and_update(),
            Head {
                seq: 3,
                closed: false
            }
        );
        commits.close();
        rx.changed().await.unwrap();
        assert!(rx.borrow().closed);
    }
}
