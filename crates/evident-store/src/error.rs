//! Store errors.

/// What can go wrong in a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused an operation.
    #[error("database error: {0}")]
    Database(String),
    /// The store's durability settings are not what acknowledgements promise.
    #[error("store is not durable: {0}")]
    NotDurable(String),
    /// The data directory cannot be used.
    #[error("data directory {path}: {reason}")]
    DataDir {
        /// The directory.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The database was written by a newer evident.
    #[error(
        "database schema version {found} is newer than this evident understands ({supported}); upgrade evident"
    )]
    SchemaTooNew {
        /// Version in the file.
        found: i64,
        /// Newest version this build knows.
        supported: i64,
    },
    /// A blocking task died.
    #[error("store task failed: {0}")]
    Task(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Database(e.to_string())
    }
}
