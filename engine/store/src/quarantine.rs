//! `k2 history recover` on a database that SQLite calls healthy: finding the values it cannot
//! read (bytes that are not UTF-8 in a TEXT column) and quarantining just those. The original
//! bytes go to the `quarantine` table (migration 0007) and the row keeps a readable copy (each
//! bad byte becomes U+FFFD), in one transaction, so nothing is lost and the rest of the
//! history is never set aside for one bad row.
//!
//! Every table is scanned, as the schema lists them, so a table added by a later migration is
//! covered without a change here.

use serde::Serialize;
use sqlx::{Row, SqliteConnection};

use crate::clock::now_ms;
use crate::error::Result;
use crate::Store;

/// Tables never scanned: SQLite's and sqlx's bookkeeping, and the quarantine itself.
const NOT_SCANNED: [&str; 2] = ["_sqlx_migrations", "quarantine"];

/// One value moved to the quarantine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Quarantined {
    pub table: String,
    /// The row's key: `7`, or `run_id 3, seq 5`.
    pub key: String,
    pub column: String,
    /// How many bytes were kept in the `quarantine` table.
    pub bytes: usize,
}

/// A table to scan: its name, the columns that identify a row, and every column.
struct Table {
    name: String,
    key: Vec<String>,
    columns: Vec<String>,
}

impl Store {
    /// Finds every stored text value that is not valid UTF-8, keeps its bytes in the
    /// quarantine table and repairs it in place. Returns what was quarantined (empty when
    /// every value reads).
    pub async fn quarantine_unreadable(&self) -> Result<Vec<Quarantined>> {
        let mut conn = self.pool.acquire().await?;
        let mut found = Vec::new();
        for table in tables(&mut conn).await? {
            for column in &table.columns {
                found.extend(bad_values(&mut conn, &table, column).await?);
            }
        }
        drop(conn);
        if found.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let mut quarantined = Vec::with_capacity(found.len());
        for bad in found {
            sqlx::query(
                "INSERT INTO quarantine (table_name, row_key, column_name, original, \
                 quarantined_at) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(&bad.table)
            .bind(bad.key_text())
            .bind(&bad.column)
            .bind(&bad.original)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let matches: Vec<String> = bad
                .key
                .iter()
                .map(|(c, _)| format!("{} = ?", quoted(c)))
                .collect();
            let sql = format!(
                "UPDATE {} SET {} = ? WHERE {}",
                quoted(&bad.table),
                quoted(&bad.column),
                matches.join(" AND ")
            );
            let mut update =
                sqlx::query(&sql).bind(String::from_utf8_lossy(&bad.original).into_owned());
            for (_, value) in &bad.key {
                update = update.bind(*value);
            }
            update.execute(&mut *tx).await?;
            tracing::warn!(table = %bad.table, key = %bad.key_text(), column = %bad.column,
                "quarantined a value that is not UTF-8");
            quarantined.push(Quarantined {
                key: bad.key_text(),
                bytes: bad.original.len(),
                table: bad.table,
                column: bad.column,
            });
        }
        tx.commit().await?;
        Ok(quarantined)
    }
}

/// A value found unreadable, with what is needed to repair it.
struct BadValue {
    table: String,
    key: Vec<(String, i64)>,
    column: String,
    original: Vec<u8>,
}

impl BadValue {
    fn key_text(&self) -> String {
        match self.key.as_slice() {
            [(column, id)] if column == "rowid" => id.to_string(),
            key => key
                .iter()
                .map(|(column, value)| format!("{column} {value}"))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// Every table of the schema but SQLite's, sqlx's, the quarantine and the inner tables of
/// virtual tables (full-text search keeps its text in them; the virtual table itself is
/// scanned and repaired through).
async fn tables(conn: &mut SqliteConnection) -> Result<Vec<Table>> {
    let rows = sqlx::query(
        "SELECT name, sql LIKE 'CREATE VIRTUAL TABLE%' AS virtual FROM sqlite_master \
         WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut named = Vec::new();
    for row in &rows {
        // Names come from our own schema; one that does not read is not ours to scan.
        let (Ok(name), Ok(virtual_table)) = (
            row.try_get::<String, _>("name"),
            row.try_get::<bool, _>("virtual"),
        ) else {
            continue;
        };
        named.push((name, virtual_table));
    }
    let virtual_names: Vec<String> = named
        .iter()
        .filter(|(_, v)| *v)
        .map(|(n, _)| format!("{n}_"))
        .collect();
    let mut tables = Vec::new();
    for (name, _) in named {
        if NOT_SCANNED.contains(&name.as_str())
            || virtual_names.iter().any(|v| name.starts_with(v.as_str()))
        {
            continue;
        }
        let info = sqlx::query("SELECT name, pk FROM pragma_table_info(?) ORDER BY cid")
            .bind(&name)
            .fetch_all(&mut *conn)
            .await?;
        let mut columns = Vec::new();
        let mut primary = Vec::new();
        for row in &info {
            let (Ok(column), Ok(pk)) = (
                row.try_get::<String, _>("name"),
                row.try_get::<i64, _>("pk"),
            ) else {
                continue;
            };
            if pk > 0 {
                primary.push((pk, column.clone()));
            }
            columns.push(column);
        }
        primary.sort();
        // A WITHOUT ROWID table (the event log) has no rowid: its primary key names a row.
        let has_rowid = sqlx::query(&format!("SELECT rowid FROM {} LIMIT 0", quoted(&name)))
            .execute(&mut *conn)
            .await
            .is_ok();
        let key = if has_rowid {
            vec!["rowid".to_owned()]
        } else {
            primary.into_iter().map(|(_, c)| c).collect()
        };
        tables.push(Table { name, key, columns });
    }
    Ok(tables)
}

/// The values of one column that are text but not UTF-8, read as bytes (a cast to BLOB keeps
/// them as stored).
async fn bad_values(
    conn: &mut SqliteConnection,
    table: &Table,
    column: &str,
) -> Result<Vec<BadValue>> {
    let keys: Vec<String> = table.key.iter().map(|k| quoted(k)).collect();
    let sql = format!(
        "SELECT {}, CAST({col} AS BLOB) AS value FROM {} WHERE typeof({col}) = 'text'",
        keys.join(", "),
        quoted(&table.name),
        col = quoted(column),
    );
    let rows = sqlx::query(&sql).fetch_all(&mut *conn).await?;
    let mut bad = Vec::new();
    for row in &rows {
        let Ok(value) = row.try_get::<Vec<u8>, _>("value") else {
            continue;
        };
        if std::str::from_utf8(&value).is_ok() {
            continue;
        }
        let key: Option<Vec<(String, i64)>> = table
            .key
            .iter()
            .enumerate()
            .map(|(i, name)| row.try_get::<i64, _>(i).ok().map(|v| (name.clone(), v)))
            .collect();
        let Some(key) = key else {
            tracing::warn!(table = %table.name, column, "an unreadable value whose row has no integer key was left as is");
            continue;
        };
        bad.push(BadValue {
            table: table.name.clone(),
            key,
            column: column.to_owned(),
            original: value,
        });
    }
    Ok(bad)
}

/// An identifier quoted for SQL (names come from the schema, but are never trusted to be
/// plain).
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
