//! Background WAL checkpoints, off the commit path.
//!
//! SQLite's automatic checkpoint runs inside the committing connection, so every few
//! thousand pages one commit also copies the WAL back into the database and fsyncs it,
//! and every request waiting on that commit waits too. A serving store instead runs
//! PASSIVE checkpoints from a thread of its own: they copy what they can without blocking
//! the writer, and pages rewritten many times between checkpoints are copied once. The
//! writer keeps a high automatic threshold as a backstop.

use super::schema;
use crate::error::StoreError;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the background checkpoint runs.
pub(crate) const INTERVAL: Duration = Duration::from_millis(250);

/// The running checkpoint thread; stopped and joined on drop.
pub(crate) struct Checkpointer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts checkpointing the database at `path` every [`INTERVAL`].
    pub(crate) fn start(path: PathBuf) -> Result<Self, StoreError> {
        let conn = schema::open_checkpointer(&path)?;
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = stop.clone();
        let thread = std::thread::Builder::new()
            .name("evident-checkpoint".into())
            .spawn(move || {
                let (lock, wake) = &*signal;
                let mut stopped = lock.lock().unwrap_or_else(PoisonError::into_inner);
                while !*stopped {
                    stopped = wake.wait_timeout(stopped, INTERVAL).unwrap_or_else(PoisonError::into_inner).0;
                    let result = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                    if let Err(error) = result {
                        tracing::warn!(%error, "background checkpoint failed; the writer's automatic checkpoint still bounds the WAL");
                    }
                }
            })
            .map_err(|e| StoreError::Task(e.to_string()))?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let (lock, wake) = &*self.stop;
        *lock.lock().unwrap_or_else(PoisonError::into_inner) = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("checkpoint thread panicked");
        }
    }
}
