//! What can go wrong with the session store, worded for the person who has to act on it.

use std::path::PathBuf;

use crate::decode::UnreadableRow;
use crate::problem_set::LineError;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the session database {path} was written by a newer K2 Tutor (schema version {found}; \
         this version knows up to {known}). Update K2 Tutor or choose another database \
         (--db or K2_DB); the file was left untouched"
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error(
        "the session database {path} is damaged or is not a K2 Tutor database ({reason}). \
         Start a new one with `k2 history recover`, which keeps the old file next to it"
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "{path} is not a K2 Tutor session database: {reason}. It was left untouched (no tables \
         added, journal mode unchanged); choose another file with --db or K2_DB"
    )]
    Foreign { path: PathBuf, reason: String },
    #[error(
        "the session database {path} was upgraded by a different build of K2 Tutor: its schema \
         step {version} is not the one this build has (a development build wrote it). Open it \
         with the build that wrote it, or start a new database with `k2 history recover`, \
         which keeps this file next to it"
    )]
    SchemaMismatch { path: PathBuf, version: i64 },
    #[error(
        "an upgrade of the session database {path} to schema version {version} stopped half \
         way. Start a new database with `k2 history recover`, which keeps this file next to it"
    )]
    InterruptedUpgrade { path: PathBuf, version: i64 },
    #[error(
        "a row of the session database cannot be read: {0}. `k2 history recover` repairs such \
         rows and keeps their original bytes"
    )]
    Unreadable(UnreadableRow),
    #[error("cannot open the session database {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: sqlx::Error,
    },
    #[error("there is no {what} {id} in the session database")]
    NotFound { what: &'static str, id: i64 },
    #[error("{} malformed line(s) in the problem set, nothing was imported (import with partial \
             to skip them):\n{}", .0.len(), LineError::list(.0))]
    MalformedProblemSet(Vec<LineError>),
    #[error("the configuration of run {run} in the session database cannot be read: {source}")]
    BadConfig {
        run: i64,
        #[source]
        source: serde_json::Error,
    },
    #[error("checked work {id} in the session database cannot be read: {source}")]
    BadWorkCheck {
        id: i64,
        #[source]
        source: serde_json::Error,
    },
    #[error("upgrading the session database failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("session database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl StoreError {
    /// Whether the database file itself is unusable (the app offers to start a new one).
    pub fn is_corrupt(&self) -> bool {
        matches!(
            self,
            StoreError::Corrupt { .. }
                | StoreError::SchemaMismatch { .. }
                | StoreError::InterruptedUpgrade { .. }
        )
    }
}

/// SQLite's primary result codes for "this is not (or no longer) a valid database file".
pub(crate) fn is_corruption(error: &sqlx::Error) -> bool {
    const SQLITE_CORRUPT: i64 = 11;
    const SQLITE_NOTADB: i64 = 26;
    match error {
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|code| code.parse::<i64>().ok())
            .is_some_and(|code| matches!(code & 0xff, SQLITE_CORRUPT | SQLITE_NOTADB)),
        _ => false,
    }
}
