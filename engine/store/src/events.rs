//! The append-only event log: writing batches of events and reading a run's log back.

use k2_protocol::{Event, RunEvent, RunView};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use crate::decode::Fields;
use crate::error::Result;
use crate::types::RunId;
use crate::Store;

/// Rows per INSERT statement (5 parameters each, well under SQLite's 32766).
const ROWS_PER_STATEMENT: usize = 400;

/// Appends events to a run's log, inside the caller's transaction.
pub(crate) async fn append_events(
    conn: &mut SqliteConnection,
    run: RunId,
    events: &[Event],
) -> Result<()> {
    for chunk in events.chunks(ROWS_PER_STATEMENT) {
        let mut insert: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT INTO events (run_id, seq, elapsed_ms, kind, payload) ");
        insert.push_values(chunk, |mut row, event| {
            row.push_bind(run)
                .push_bind(event.seq as i64)
                .push_bind(event.elapsed_ms as i64)
                .push_bind(event.kind.kind_name())
                .push_bind(serde_json::to_string(&event.kind).expect("events serialize"));
        });
        insert.build().execute(&mut *conn).await?;
    }
    Ok(())
}

impl Store {
    /// A run's whole event log, in order.
    pub async fn events(&self, run: RunId) -> Result<Vec<Event>> {
        self.events_from(run, 0, u32::MAX).await
    }

    /// Up to `limit` events of a run starting at `from_seq` (to page through a long log).
    pub async fn events_from(&self, run: RunId, from_seq: u64, limit: u32) -> Result<Vec<Event>> {
        let rows = sqlx::query(
            "SELECT seq, elapsed_ms, payload FROM events WHERE run_id = ? AND seq >= ? \
             ORDER BY seq LIMIT ?",
        )
        .bind(run)
        .bind(from_seq as i64)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        // An event that cannot be read (bytes that are not UTF-8, JSON that is not an event) is
        // skipped and reported: the rest of the log still replays.
        Ok(self.readable(&rows, |row| {
            let seq = row.try_get::<i64, _>("seq").unwrap_or(-1);
            let fields = Fields::keyed(row, "events", format!("run_id {run}, seq {seq}"));
            let payload: &str = fields.get("payload")?;
            let kind: RunEvent = serde_json::from_str(payload)
                .map_err(|e| fields.unreadable("payload", e.to_string()))?;
            Ok(Event {
                seq: seq as u64,
                elapsed_ms: fields.get::<i64>("elapsed_ms")? as u64,
                kind,
            })
        }))
    }

    /// Rebuilds what the run looked like from its event log.
    pub async fn replay(&self, run: RunId) -> Result<RunView> {
        Ok(RunView::replay(&self.events(run).await?))
    }

    pub async fn event_count(&self, run: RunId) -> Result<u64> {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE run_id = ?")
            .bind(run)
            .fetch_one(&self.pool)
            .await?;
        Ok(count as u64)
    }
}
