//! Storage errors: typed, displayable, never carrying token text or secrets.

use std::fmt;

/// A failure of the storage layer. Callers map every variant to a protocol error in one place
/// (`server_error` / `temporarily_unavailable`); none of them carries request data.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum StoreError {
    /// The underlying redb database reported an error (I/O, corruption, full disk).
    Database(String),
    /// A commit failed; nothing of the batch was made durable.
    Commit(String),
    /// A stored record could not be decoded (unknown version or failed validation).
    Corrupt(&'static str),
    /// The committer thread is gone (shutdown in progress).
    Closed,
    /// The data directory or its manifest is unusable.
    Manifest(String),
    /// A file of the store could not be read or written (the write-ahead log).
    Io(String),
    /// Another process (a running server) has the data directory open.
    InUse,
    /// The partition is being reopened after an I/O error; retry later.
    Unavailable,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Database(e) => write!(f, "database error: {e}"),
            StoreError::Commit(e) => write!(f, "commit failed: {e}"),
            StoreError::Corrupt(what) => write!(f, "corrupt record: {what}"),
            StoreError::Closed => f.write_str("store is shutting down"),
            StoreError::Manifest(e) => write!(f, "data directory: {e}"),
            StoreError::Io(e) => write!(f, "i/o error: {e}"),
            StoreError::InUse => f.write_str("the data directory is in use by another process"),
            StoreError::Unavailable => f.write_str("the store is recovering from an I/O error"),
        }
    }
}

impl std::error::Error for StoreError {}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Database(e.to_string())
            }
        }
    )*};
}
from_redb!(redb::Error, redb::DatabaseError, redb::TransactionError, redb::TableError, redb::StorageError);

impl From<redb::CommitError> for StoreError {
    fn from(e: redb::CommitError) -> Self {
        StoreError::Commit(e.to_string())
    }
}
