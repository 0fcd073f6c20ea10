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
    /// The store refused particular events (a constraint or a value it cannot hold);
    /// other events may still be stored.
    #[error("store refused the event: {0}")]
    Rejected(String),
    /// The disk or the database's size limit is full.
    #[error("store is full: {0}")]
    Full(String),
    /// The database cannot be written (read-only file system, permissions).
    #[error("store is read-only: {0}")]
    ReadOnly(String),
}

impl StoreError {
    /// True when the error is about the events written rather than the store: then
    /// splitting the batch can isolate the events at fault and store the others.
    pub fn is_event_specific(&self) -> bool {
        matches!(self, StoreError::Rejected(_))
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        let text = e.to_string();
        match e.sqlite_error_code() {
            Some(ErrorCode::ConstraintViolation | ErrorCode::TooBig | ErrorCode::TypeMismatch) => {
                StoreError::Rejected(text)
            }
            Some(ErrorCode::DiskFull) => StoreError::Full(text),
            Some(ErrorCode::ReadOnly) => StoreError::ReadOnly(text),
            _ => StoreError::Database(text),
        }
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        use tokio_postgres::error::SqlState;
        let text = match e.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => e.to_string(),
        };
        let Some(code) = e.code() else {
            // No SQLSTATE: the connection failed or closed; worth retrying.
            return StoreError::Database(text);
        };
        match code.code().get(..2) {
            // Data exceptions and integrity violations are about the events sent.
            Some("22" | "23") => StoreError::Rejected(text),
            _ if *code == SqlState::DISK_FULL => StoreError::Full(text),
            _ if *code == SqlState::READ_ONLY_SQL_TRANSACTION => StoreError::ReadOnly(text),
            _ => StoreError::Database(text),
        }
    }
}
