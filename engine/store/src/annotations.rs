//! What people add to runs: teachers' notes and students' own answers.

use k2_protocol::{AttemptCheck, CheckBasis, CheckVerdict};
use sqlx::sqlite::SqliteRow;

use crate::clock::now_ms;
use crate::decode::{Fields, UnreadableRow};
use crate::error::Result;
use crate::types::{Attempt, Note, ProblemId, RunId};
use crate::Store;

impl Store {
    /// A teacher's note on a run, or on the point of it where event `seq` happened.
    pub async fn add_note(
        &self,
        run: RunId,
        seq: Option<u64>,
        author: Option<&str>,
        text: &str,
    ) -> Result<i64> {
        Ok(sqlx::query(
            "INSERT INTO notes (run_id, seq, author, text, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(run)
        .bind(seq.map(|s| s as i64))
        .bind(author)
        .bind(text)
        .bind(now_ms())
        .execute(&self.pool)
        .await?
        .last_insert_rowid())
    }

    /// A run's notes, in the order of the points they refer to (whole-run notes first).
    pub async fn notes(&self, run: RunId) -> Result<Vec<Note>> {
        let rows = sqlx::query(
            "SELECT id, run_id, seq, author, text, created_at FROM notes WHERE run_id = ? \
             ORDER BY seq IS NOT NULL, seq, id",
        )
        .bind(run)
        .fetch_all(&self.pool)
        .await?;
        Ok(self.readable(&rows, note_from_row))
    }

    /// Records a student's answer with its check (verdict and basis, from `k2_answer::check`:
    /// the store knows no mathematics). `equivalent` is kept for older readers: the verdict
    /// as a yes or no, `NULL` when unsure.
    pub async fn add_attempt(
        &self,
        problem: ProblemId,
        run: Option<RunId>,
        answer: &str,
        check: Option<AttemptCheck>,
        seconds: Option<f64>,
    ) -> Result<i64> {
        let equivalent = check.and_then(|c| match c.verdict {
            CheckVerdict::Right => Some(true),
            CheckVerdict::Wrong => Some(false),
            CheckVerdict::Unsure => None,
        });
        Ok(sqlx::query(
            "INSERT INTO attempts \
             (problem_id, run_id, answer, equivalent, verdict, basis, seconds, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(problem)
        .bind(run)
        .bind(answer)
        .bind(equivalent)
        .bind(check.map(|c| c.verdict.as_str()))
        .bind(check.map(|c| c.basis.as_str()))
        .bind(seconds)
        .bind(now_ms())
        .execute(&self.pool)
        .await?
        .last_insert_rowid())
    }

    /// A problem's attempts, newest first.
    pub async fn attempts(&self, problem: ProblemId) -> Result<Vec<Attempt>> {
        let rows = sqlx::query(
            "SELECT id, problem_id, run_id, answer, equivalent, verdict, basis, seconds, \
             created_at FROM attempts WHERE problem_id = ? ORDER BY id DESC",
        )
        .bind(problem)
        .fetch_all(&self.pool)
        .await?;
        Ok(self.readable(&rows, |row| {
            let fields = Fields::new(row, "attempts");
            Ok(Attempt {
                id: fields.get("id")?,
                problem_id: fields.get("problem_id")?,
                run_id: fields.get("run_id")?,
                answer: fields.get("answer")?,
                equivalent: fields.get("equivalent")?,
                check: attempt_check(&fields)?,
                seconds: fields.get("seconds")?,
                created_at: fields.get("created_at")?,
            })
        }))
    }
}

/// The stored check; `None` for attempts kept before checks had a basis (schema 4).
pub(crate) fn attempt_check(fields: &Fields) -> Result<Option<AttemptCheck>, UnreadableRow> {
    let verdict: Option<String> = fields.get("verdict")?;
    let basis: Option<String> = fields.get("basis")?;
    Ok(verdict.zip(basis).and_then(|(verdict, basis)| {
        Some(AttemptCheck {
            verdict: CheckVerdict::parse(&verdict)?,
            basis: CheckBasis::parse(&basis)?,
        })
    }))
}

fn note_from_row(row: &SqliteRow) -> Result<Note, UnreadableRow> {
    let fields = Fields::new(row, "notes");
    Ok(Note {
        id: fields.get("id")?,
        run_id: fields.get("run_id")?,
        seq: fields.get("seq")?,
        author: fields.get("author")?,
        text: fields.get("text")?,
        created_at: fields.get("created_at")?,
    })
}
