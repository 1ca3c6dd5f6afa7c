//! Students' checked work ("Check my work"): the work as typed and what `k2_answer::work`
//! found in it. The store knows no mathematics: it keeps the check it is given.

use k2_protocol::{RecordedWorkCheck, WorkCheck};
use serde::{Deserialize, Serialize};
use sqlx::sqlite::SqliteRow;

use crate::clock::now_ms;
use crate::decode::{Fields, UnreadableRow};
use crate::error::{Result, StoreError};
use crate::types::{ProblemId, RunId};
use crate::Store;

/// A kept piece of checked work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredWorkCheck {
    pub id: i64,
    pub problem_id: ProblemId,
    pub run_id: Option<RunId>,
    pub work: String,
    pub check: WorkCheck,
    pub created_at: i64,
}

impl Store {
    /// Keeps a student's work on `problem` (from `run`) with its check.
    pub async fn add_work_check(
        &self,
        problem: ProblemId,
        run: Option<RunId>,
        work: &str,
        check: &WorkCheck,
    ) -> Result<i64> {
        let result = serde_json::to_string(check)
            .map_err(|source| StoreError::BadWorkCheck { id: 0, source })?;
        let wrong = check.first_wrong.as_ref();
        Ok(sqlx::query(
            "INSERT INTO work_checks (problem_id, run_id, work, steps, wrong_step, kind, \
             certainty, final_answer, basis, result, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(problem)
        .bind(run)
        .bind(work)
        .bind(check.steps as i64)
        .bind(wrong.map(|w| w.step as i64))
        .bind(wrong.map(|w| w.kind.as_str()))
        .bind(wrong.map(|w| w.certainty.as_str()))
        .bind(check.final_answer.as_str())
        .bind(check.basis.as_str())
        .bind(result)
        .bind(now_ms())
        .execute(&self.pool)
        .await?
        .last_insert_rowid())
    }

    /// A problem's checked work, newest first.
    pub async fn work_checks(&self, problem: ProblemId) -> Result<Vec<StoredWorkCheck>> {
        let rows = sqlx::query(
            "SELECT id, problem_id, run_id, work, result, created_at FROM work_checks \
             WHERE problem_id = ? ORDER BY id DESC",
        )
        .bind(problem)
        .fetch_all(&self.pool)
        .await?;
        Ok(self.readable(&rows, |row| {
            let (fields, check) = stored_check(row)?;
            Ok(StoredWorkCheck {
                id: fields.get("id")?,
                problem_id: fields.get("problem_id")?,
                run_id: fields.get("run_id")?,
                work: fields.get("work")?,
                check,
                created_at: fields.get("created_at")?,
            })
        }))
    }

    /// The checked work given next to this run, oldest first (for its `StudentRecord`).
    pub async fn run_work_checks(&self, run: RunId) -> Result<Vec<RecordedWorkCheck>> {
        let rows = sqlx::query(
            "SELECT id, work, result, created_at FROM work_checks WHERE run_id = ? ORDER BY id",
        )
        .bind(run)
        .fetch_all(&self.pool)
        .await?;
        Ok(self.readable(&rows, |row| {
            let (fields, check) = stored_check(row)?;
            Ok(RecordedWorkCheck {
                id: fields.get("id")?,
                work: fields.get("work")?,
                check,
                created_at: fields.get("created_at")?,
            })
        }))
    }
}

/// A row's fields and its check, read back from the JSON it was kept as.
fn stored_check(row: &SqliteRow) -> std::result::Result<(Fields<'_>, WorkCheck), UnreadableRow> {
    let fields = Fields::new(row, "work_checks");
    let result: &str = fields.get("result")?;
    let check =
        serde_json::from_str(result).map_err(|e| fields.unreadable("result", e.to_string()))?;
    Ok((fields, check))
}
