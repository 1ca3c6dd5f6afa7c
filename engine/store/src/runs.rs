//! Runs: starting one, listing them newest first a page at a time, and reading one back.

use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use crate::clock::now_ms;
use crate::decode::{Fields, UnreadableRow};
use crate::error::{Result, StoreError};
use crate::problems::{problem_from_row, PROBLEM_COLUMNS};
use crate::types::{
    Cursor, NewProblem, Page, PageRequest, ProblemId, RunConfig, RunDetail, RunId, RunOrigin,
    RunOwner, RunStatus, RunSummary, SessionId, StudentId,
};
use crate::Store;

pub(crate) const SUMMARY_COLUMNS: &str = "r.id, r.session_id, s.title AS session_title, \
     r.problem_id, substr(p.text, 1, 200) AS problem, r.status, r.started_at, r.finished_at, \
     r.answer, r.owner_id, st.name AS owner_name, r.student_mode, r.revealed_at";
/// The tables [`SUMMARY_COLUMNS`] come from, run `r` joined to its session, problem and owner.
pub(crate) const SUMMARY_JOINS: &str = "JOIN sessions s ON s.id = r.session_id \
     JOIN problems p ON p.id = r.problem_id LEFT JOIN students st ON st.id = r.owner_id";

impl Store {
    /// Starts a run of a problem someone typed, in the session titled `session` (created
    /// when new): what every front end (terminal, desktop app, classroom server) records.
    pub async fn start_typed_run(
        &self,
        session: &str,
        problem: &str,
        config: &RunConfig,
        origin: RunOrigin,
    ) -> Result<RunId> {
        let session = self.session_titled(session).await?;
        let problem = self.add_problem(&NewProblem::typed(problem)).await?;
        self.start_run(session, problem, config, origin).await
    }

    /// Records that a run of `problem` has started in `session`, filed as `origin` says; its
    /// events follow through a [`crate::RunRecorder`]. Its id is above every run id ever used,
    /// deleted ones included (`migrations/0008_classroom.sql`), so a client still holding a
    /// deleted run's id can never reach this one with it.
    pub async fn start_run(
        &self,
        session: SessionId,
        problem: ProblemId,
        config: &RunConfig,
        origin: RunOrigin,
    ) -> Result<RunId> {
        let now = now_ms();
        let config = serde_json::to_string(config).expect("a run configuration serializes");
        let mut tx = self.pool.begin().await?;
        let id = sqlx::query(
            "INSERT INTO runs (id, session_id, problem_id, config, status, started_at, \
                               heartbeat_at, writer_pid, owner_id, student_mode) \
             VALUES (max((SELECT coalesce(max(id), 0) FROM runs), \
                         (SELECT coalesce(max(last), 0) FROM id_floor WHERE tbl = 'runs')) + 1, \
                     ?, ?, ?, 'running', ?, ?, ?, ?, ?)",
        )
        .bind(session)
        .bind(problem)
        .bind(config)
        .bind(now)
        .bind(now)
        .bind(i64::from(std::process::id()))
        .bind(origin.owner)
        .bind(origin.student_mode)
        .execute(&mut *tx)
        .await?
        .last_insert_rowid();
        sqlx::query("UPDATE sessions SET updated_at = ? WHERE id = ?")
            .bind(now)
            .bind(session)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Runs newest first; of one session, or of all.
    pub async fn list_runs(
        &self,
        session: Option<SessionId>,
        page: PageRequest,
    ) -> Result<Page<RunSummary>> {
        self.list_runs_where(RunFilter::Session(session), page)
            .await
    }

    /// One student's runs, newest first: all a student's listing may show (filtered here, so
    /// other students' runs never take a page's places).
    pub async fn list_owned_runs(
        &self,
        owner: StudentId,
        page: PageRequest,
    ) -> Result<Page<RunSummary>> {
        self.list_runs_where(RunFilter::Owner(owner), page).await
    }

    async fn list_runs_where(
        &self,
        filter: RunFilter,
        page: PageRequest,
    ) -> Result<Page<RunSummary>> {
        let before = page.after.map_or(i64::MAX, |c| c.id);
        let limit = page.clamped_limit();
        let (condition, value) = match filter {
            RunFilter::Session(Some(session)) => ("r.session_id = ? AND", Some(session)),
            RunFilter::Session(None) => ("", None),
            RunFilter::Owner(owner) => ("r.owner_id = ? AND", Some(owner)),
        };
        let sql = format!(
            "SELECT {SUMMARY_COLUMNS} FROM runs r {SUMMARY_JOINS} WHERE {condition} r.id < ? \
             ORDER BY r.id DESC LIMIT ?"
        );
        let mut query = sqlx::query(&sql);
        if let Some(value) = value {
            query = query.bind(value);
        }
        let rows = query
            .bind(before)
            .bind(limit + 1)
            .fetch_all(&self.pool)
            .await?;
        Ok(Page::from_overfetched(
            &rows,
            limit,
            |row| {
                let id = row.try_get("id").ok()?;
                Some(Cursor { key: id, id })
            },
            |kept| self.readable(kept, summary_from_row),
        ))
    }

    pub async fn run(&self, id: RunId) -> Result<RunDetail> {
        let sql = format!(
            "SELECT {SUMMARY_COLUMNS}, r.config, r.plan, r.error FROM runs r {SUMMARY_JOINS} \
             WHERE r.id = ?"
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound { what: "run", id })?;
        let summary = summary_from_row(&row).map_err(StoreError::Unreadable)?;
        let fields = Fields::new(&row, "runs");
        let config: String = fields.get("config").map_err(StoreError::Unreadable)?;
        let config: RunConfig = serde_json::from_str(&config)
            .map_err(|source| StoreError::BadConfig { run: id, source })?;
        let problem_sql = format!("SELECT {PROBLEM_COLUMNS} FROM problems WHERE id = ?");
        let problem = sqlx::query(&problem_sql)
            .bind(summary.problem_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(RunDetail {
            problem: problem_from_row(&problem).map_err(StoreError::Unreadable)?,
            config,
            plan: fields.get("plan").map_err(StoreError::Unreadable)?,
            error: fields.get("error").map_err(StoreError::Unreadable)?,
            summary,
        })
    }

    /// Deletes a run and its events, notes and search entry.
    pub async fn delete_run(&self, id: RunId) -> Result<()> {
        let deleted = sqlx::query("DELETE FROM runs WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(StoreError::NotFound { what: "run", id });
        }
        Ok(())
    }

    /// Sets a run's final status by hand (a run whose writer failed before recording its end).
    pub async fn set_run_status(&self, id: RunId, status: RunStatus) -> Result<()> {
        sqlx::query(
            "UPDATE runs SET status = ?, finished_at = coalesce(finished_at, ?) WHERE id = ?",
        )
        .bind(status.as_str())
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// A listed run; every column is checked, those of its session and problem too.
pub(crate) fn summary_from_row(row: &SqliteRow) -> Result<RunSummary, UnreadableRow> {
    let fields = Fields::new(row, "runs");
    Ok(RunSummary {
        id: fields.get("id")?,
        session_id: fields.get("session_id")?,
        session_title: fields.get("session_title")?,
        problem_id: fields.get("problem_id")?,
        problem: fields.get("problem")?,
        status: RunStatus::parse(fields.get("status")?),
        started_at: fields.get("started_at")?,
        finished_at: fields.get("finished_at")?,
        answer: fields.get("answer")?,
        owner: match fields.get::<Option<StudentId>>("owner_id")? {
            Some(id) => Some(RunOwner {
                id,
                name: fields.get("owner_name")?,
            }),
            None => None,
        },
        student_mode: fields.get("student_mode")?,
        revealed_at: fields.get("revealed_at")?,
    })
}

/// Which runs a listing shows.
enum RunFilter {
    /// Of one session, or of all.
    Session(Option<SessionId>),
    /// One student's.
    Owner(StudentId),
}
