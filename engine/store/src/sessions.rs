//! Sessions: a student's or teacher's working session, listed most recently used first.

use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use crate::clock::now_ms;
use crate::decode::{Fields, UnreadableRow};
use crate::error::{Result, StoreError};
use crate::types::{Cursor, Page, PageRequest, Session, SessionId};
use crate::Store;

const SESSION_COLUMNS: &str = "s.id, s.title, s.created_at, s.updated_at, s.archived, \
     (SELECT count(*) FROM runs WHERE runs.session_id = s.id) AS runs";

impl Store {
    pub async fn create_session(&self, title: &str) -> Result<SessionId> {
        let now = now_ms();
        let id =
            sqlx::query("INSERT INTO sessions (title, created_at, updated_at) VALUES (?, ?, ?)")
                .bind(title)
                .bind(now)
                .bind(now)
                .execute(&self.pool)
                .await?
                .last_insert_rowid();
        Ok(id)
    }

    /// The most recent unarchived session with this title, created if there is none (the
    /// command line files its runs under one such session).
    pub async fn session_titled(&self, title: &str) -> Result<SessionId> {
        let existing: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM sessions WHERE title = ? AND archived = 0 \
             ORDER BY updated_at DESC, id DESC LIMIT 1",
        )
        .bind(title)
        .fetch_optional(&self.pool)
        .await?;
        match existing {
            Some(id) => Ok(id),
            None => self.create_session(title).await,
        }
    }

    pub async fn session(&self, id: SessionId) -> Result<Session> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions s WHERE s.id = ?");
        sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound {
                what: "session",
                id,
            })
            .and_then(|row| session_from_row(&row).map_err(StoreError::Unreadable))
    }

    pub async fn rename_session(&self, id: SessionId, title: &str) -> Result<()> {
        let query = sqlx::query("UPDATE sessions SET title = ?, updated_at = ? WHERE id = ?")
            .bind(title.to_owned());
        self.update_session(id, query).await
    }

    pub async fn archive_session(&self, id: SessionId, archived: bool) -> Result<()> {
        let query = sqlx::query("UPDATE sessions SET archived = ?, updated_at = ? WHERE id = ?")
            .bind(archived);
        self.update_session(id, query).await
    }

    /// Runs an update whose first parameter is already bound; binds the time and the id.
    async fn update_session<'q>(
        &self,
        id: SessionId,
        query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    ) -> Result<()> {
        let changed = query
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if changed == 0 {
            return Err(StoreError::NotFound {
                what: "session",
                id,
            });
        }
        Ok(())
    }

    /// Sessions, most recently used first, one page at a time.
    pub async fn list_sessions(
        &self,
        page: PageRequest,
        include_archived: bool,
    ) -> Result<Page<Session>> {
        let after = page.after.unwrap_or(Cursor {
            key: i64::MAX,
            id: i64::MAX,
        });
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions s \
             WHERE (s.archived = 0 OR ?) AND (s.updated_at, s.id) < (?, ?) \
             ORDER BY s.updated_at DESC, s.id DESC LIMIT ?"
        );
        let limit = page.clamped_limit();
        let rows = sqlx::query(&sql)
            .bind(include_archived)
            .bind(after.key)
            .bind(after.id)
            .bind(limit + 1)
            .fetch_all(&self.pool)
            .await?;
        Ok(Page::from_overfetched(
            &rows,
            limit,
            |row| {
                Some(Cursor {
                    key: row.try_get("updated_at").ok()?,
                    id: row.try_get("id").ok()?,
                })
            },
            |kept| self.readable(kept, session_from_row),
        ))
    }
}

fn session_from_row(row: &SqliteRow) -> Result<Session, UnreadableRow> {
    let fields = Fields::new(row, "sessions");
    Ok(Session {
        id: fields.get("id")?,
        title: fields.get("title")?,
        created_at: fields.get("created_at")?,
        updated_at: fields.get("updated_at")?,
        archived: fields.get("archived")?,
        runs: fields.get("runs")?,
    })
}
