//! Reading rows back without trusting them. SQLite stores whatever bytes it is given in a TEXT
//! column (its integrity check accepts invalid UTF-8), so every value is decoded fallibly: a
//! row that cannot be read becomes an [`UnreadableRow`] naming its table, its key and the
//! column, never a panic. Lists skip such rows and report them ([`Store::take_unreadable`], for
//! the front end to tell its user); a single row asked for by id is an error naming it.
//! `k2 history recover` repairs them (`quarantine.rs`).

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;
use sqlx::sqlite::SqliteRow;
use sqlx::{Decode, Row, Sqlite, Type};

use crate::Store;

/// At most this many unreadable rows are remembered between two [`Store::take_unreadable`]
/// (a long-running server that never asks would otherwise grow the list forever).
const REMEMBERED: usize = 100;

/// A stored row that cannot be read back.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct UnreadableRow {
    /// The table the row comes from (`runs`, `sessions`, `events`, ...).
    pub table: &'static str,
    /// Its key: the id, or `run 3, seq 5` for an event.
    pub key: String,
    /// The column that failed.
    pub column: String,
    /// Why, in SQLite's or the decoder's words.
    pub reason: String,
}

impl fmt::Display for UnreadableRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} row {}: its {} cannot be read ({})",
            self.table, self.key, self.column, self.reason
        )
    }
}

/// One row being read: knows which table and key to name when a column fails.
pub(crate) struct Fields<'r> {
    row: &'r SqliteRow,
    table: &'static str,
    key: String,
}

impl<'r> Fields<'r> {
    /// A row keyed by its `id` column.
    pub(crate) fn new(row: &'r SqliteRow, table: &'static str) -> Self {
        let key = row
            .try_get::<i64, _>("id")
            .map_or_else(|_| "?".to_owned(), |id| id.to_string());
        Fields { row, table, key }
    }

    /// A row with a key of its own (an event's run and seq).
    pub(crate) fn keyed(row: &'r SqliteRow, table: &'static str, key: String) -> Self {
        Fields { row, table, key }
    }

    /// The value of `column`, or which row and column could not be read.
    pub(crate) fn get<T>(&self, column: &str) -> Result<T, UnreadableRow>
    where
        T: Decode<'r, Sqlite> + Type<Sqlite>,
    {
        self.row.try_get(column).map_err(|error| {
            let reason = match error {
                sqlx::Error::ColumnDecode { source, .. } => source.to_string(),
                other => other.to_string(),
            };
            self.unreadable(column, reason)
        })
    }

    /// Names this row as unreadable for a reason found after decoding (bad JSON, say).
    pub(crate) fn unreadable(&self, column: &str, reason: String) -> UnreadableRow {
        UnreadableRow {
            table: self.table,
            key: self.key.clone(),
            column: column.to_owned(),
            reason,
        }
    }
}

/// The unreadable rows met since the last [`Store::take_unreadable`].
#[derive(Debug, Default)]
pub(crate) struct UnreadableLog(std::sync::Mutex<BTreeSet<UnreadableRow>>);

impl Store {
    /// Decodes every row, skipping (and reporting) those that cannot be read: one bad row
    /// never hides the rest of a list.
    pub(crate) fn readable<T>(
        &self,
        rows: &[SqliteRow],
        decode: impl Fn(&SqliteRow) -> Result<T, UnreadableRow>,
    ) -> Vec<T> {
        rows.iter()
            .filter_map(|row| match decode(row) {
                Ok(item) => Some(item),
                Err(bad) => {
                    self.report_unreadable(bad);
                    None
                }
            })
            .collect()
    }

    pub(crate) fn report_unreadable(&self, bad: UnreadableRow) {
        // Debug only: each front end tells its user once, from `take_unreadable`.
        tracing::debug!(row = %bad, "skipped an unreadable row of the session database");
        let mut log = self
            .unreadable
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if log.len() < REMEMBERED {
            log.insert(bad);
        }
    }

    /// The rows skipped because they could not be read since the last call (each once), for
    /// a front end to tell its user; `k2 history recover` repairs them.
    pub fn take_unreadable(&self) -> Vec<UnreadableRow> {
        let mut log = self
            .unreadable
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        std::mem::take(&mut *log).into_iter().collect()
    }
}
