//! What people did with a run after it was made: a teacher's corrections of its answer, the
//! hints a student opened, and, with the attempts kept by `annotations` and the checked work
//! kept by `work_checks`, the run's [`StudentRecord`].

use k2_protocol::{Correction, OpenedHint, RecordedAttempt, StudentRecord};

use crate::annotations::attempt_check;
use crate::clock::now_ms;
use crate::decode::Fields;
use crate::error::Result;
use crate::types::RunId;
use crate::Store;

impl Store {
    /// Keeps a teacher's correction of the run's answer; it replaces the one in force.
    pub async fn add_correction(
        &self,
        run: RunId,
        answer: &str,
        author: Option<&str>,
        note: Option<&str>,
    ) -> Result<i64> {
        Ok(sqlx::query(
            "INSERT INTO corrections (run_id, answer, author, note, created_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(run)
        .bind(answer)
        .bind(author)
        .bind(note)
        .bind(now_ms())
        .execute(&self.pool)
        .await?
        .last_insert_rowid())
    }

    /// The run's corrections, newest (the one in force) first.
    pub async fn corrections(&self, run: RunId) -> Result<Vec<Correction>> {
        let rows = sqlx::query(
            "SELECT id, answer, author, note, created_at FROM corrections WHERE run_id = ? \
             ORDER BY id DESC",
        )
        .bind(run)
        .fetch_all(&self.pool)
        .await?;
        Ok(self.readable(&rows, |row| {
            let fields = Fields::new(row, "corrections");
            Ok(Correction {
                answer: fields.get("answer")?,
                author: fields.get("author")?,
                note: fields.get("note")?,
                created_at: fields.get("created_at")?,
            })
        }))
    }

    /// The correction in force, if any.
    pub async fn correction(&self, run: RunId) -> Result<Option<Correction>> {
        Ok(self.corrections(run).await?.into_iter().next())
    }

    /// Keeps that a student opened hint `level` of the run's ladder, now.
    pub async fn add_opened_hint(&self, run: RunId, level: u32) -> Result<()> {
        sqlx::query("INSERT INTO hints_opened (run_id, level, created_at) VALUES (?, ?, ?)")
            .bind(run)
            .bind(i64::from(level))
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every opening of a hint of the run, oldest first.
    pub async fn opened_hints(&self, run: RunId) -> Result<Vec<OpenedHint>> {
        let rows = sqlx::query(
            "SELECT id, level, created_at FROM hints_opened WHERE run_id = ? ORDER BY id",
        )
        .bind(run)
        .fetch_all(&self.pool)
        .await?;
        Ok(self.readable(&rows, |row| {
            let fields = Fields::new(row, "hints_opened");
            Ok(OpenedHint {
                level: fields.get::<i64>("level")?.clamp(1, i64::from(u32::MAX)) as u32,
                created_at: fields.get("created_at")?,
            })
        }))
    }

    /// The attempts given next to this run, oldest first.
    pub async fn run_attempts(&self, run: RunId) -> Result<Vec<RecordedAttempt>> {
        let rows = sqlx::query(
            "SELECT id, answer, verdict, basis, created_at FROM attempts WHERE run_id = ? \
             ORDER BY id",
        )
        .bind(run)
        .fetch_all(&self.pool)
        .await?;
        Ok(self.readable(&rows, |row| {
            let fields = Fields::new(row, "attempts");
            Ok(RecordedAttempt {
                id: fields.get("id")?,
                answer: fields.get("answer")?,
                check: attempt_check(&fields)?,
                created_at: fields.get("created_at")?,
            })
        }))
    }

    /// The run's record: corrections, attempts, hints opened, checked work and the length of
    /// its ladder (its stored `hint` events).
    pub async fn student_record(&self, run: RunId) -> Result<StudentRecord> {
        let mut corrections = self.corrections(run).await?.into_iter();
        let ladder: i64 =
            sqlx::query_scalar("SELECT count(*) FROM events WHERE run_id = ? AND kind = 'hint'")
                .bind(run)
                .fetch_one(&self.pool)
                .await?;
        Ok(StudentRecord {
            correction: corrections.next(),
            earlier_corrections: corrections.collect(),
            attempts: self.run_attempts(run).await?,
            hints: self.opened_hints(run).await?,
            ladder: u32::try_from(ladder).unwrap_or(u32::MAX),
            work_checks: self.run_work_checks(run).await?,
        })
    }
}
