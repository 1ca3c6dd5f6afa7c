//! A classroom server's students, their runs' reveals, the class's settings and the teacher's
//! overview of it (`migrations/0008_classroom.sql`).

use k2_protocol::{AttemptCounts, ClassRun};

use crate::clock::now_ms;
use crate::decode::Fields;
use crate::error::{Result, StoreError};
use crate::types::{RunId, RunOwner, Student, StudentId};
use crate::Store;

/// The class setting that keeps hints and solutions from students.
const TEST_MODE: &str = "test_mode";

/// One student's run in [`Store::class_runs`].
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedClassRun {
    pub owner: RunOwner,
    pub run: ClassRun,
}

impl Store {
    /// The student named `name`, added when new (a roster's names are kept as they are).
    pub async fn student_named(&self, name: &str) -> Result<StudentId> {
        sqlx::query(
            "INSERT INTO students (name, added_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(sqlx::query_scalar("SELECT id FROM students WHERE name = ?")
            .bind(name)
            .fetch_one(&self.pool)
            .await?)
    }

    /// Every student ever on the roster, by name.
    pub async fn students(&self) -> Result<Vec<Student>> {
        let rows = sqlx::query(
            "SELECT id, name, added_at FROM students ORDER BY name COLLATE NOCASE, name",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(self.readable(&rows, |row| {
            let fields = Fields::new(row, "students");
            Ok(Student {
                id: fields.get("id")?,
                name: fields.get("name")?,
                added_at: fields.get("added_at")?,
            })
        }))
    }

    /// Keeps that the run's owner asked for its solution; the first time counts. Answers when.
    pub async fn set_revealed(&self, run: RunId) -> Result<i64> {
        sqlx::query("UPDATE runs SET revealed_at = coalesce(revealed_at, ?) WHERE id = ?")
            .bind(now_ms())
            .bind(run)
            .execute(&self.pool)
            .await?;
        sqlx::query_scalar::<_, Option<i64>>("SELECT revealed_at FROM runs WHERE id = ?")
            .bind(run)
            .fetch_optional(&self.pool)
            .await?
            .flatten()
            .ok_or(StoreError::NotFound {
                what: "run",
                id: run,
            })
    }

    /// Whether the class is in test mode (no hints or solutions for students).
    pub async fn test_mode(&self) -> Result<bool> {
        let value: Option<String> =
            sqlx::query_scalar("SELECT value FROM class_settings WHERE key = ?")
                .bind(TEST_MODE)
                .fetch_optional(&self.pool)
                .await?;
        Ok(value.as_deref() == Some("on"))
    }

    pub async fn set_test_mode(&self, on: bool) -> Result<()> {
        sqlx::query(
            "INSERT INTO class_settings (key, value, set_at) VALUES (?, ?, ?) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, set_at = excluded.set_at",
        )
        .bind(TEST_MODE)
        .bind(if on { "on" } else { "off" })
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every student's runs (of the session titled `session`, or of all), newest first, each
    /// with its attempts counted by verdict and the hint levels opened: one query, so a
    /// class of thirty is one round trip.
    pub async fn class_runs(&self, session: Option<&str>) -> Result<Vec<OwnedClassRun>> {
        let rows = sqlx::query(
            "SELECT r.id, st.id AS owner_id, st.name AS owner_name, s.title AS session, \
                    r.started_at, substr(p.text, 1, 200) AS problem, r.status, r.student_mode, \
                    r.revealed_at, \
                    (SELECT count(*) FROM attempts a WHERE a.run_id = r.id AND a.verdict = 'right') AS right_n, \
                    (SELECT count(*) FROM attempts a WHERE a.run_id = r.id AND a.verdict = 'wrong') AS wrong_n, \
                    (SELECT count(*) FROM attempts a WHERE a.run_id = r.id \
                        AND coalesce(a.verdict, 'unsure') = 'unsure') AS unsure_n, \
                    (SELECT count(DISTINCT h.level) FROM hints_opened h WHERE h.run_id = r.id) AS hints_n \
             FROM runs r JOIN students st ON st.id = r.owner_id \
             JOIN sessions s ON s.id = r.session_id JOIN problems p ON p.id = r.problem_id \
             WHERE ?1 IS NULL OR s.title = ?1 \
             ORDER BY st.name, r.id DESC",
        )
        .bind(session)
        .fetch_all(&self.pool)
        .await?;
        Ok(self.readable(&rows, |row| {
            let fields = Fields::new(row, "runs");
            let count = |column: &str| -> std::result::Result<u32, _> {
                fields
                    .get::<i64>(column)
                    .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
            };
            Ok(OwnedClassRun {
                owner: RunOwner {
                    id: fields.get("owner_id")?,
                    name: fields.get("owner_name")?,
                },
                run: ClassRun {
                    id: fields.get("id")?,
                    session: fields.get("session")?,
                    started_at: fields.get("started_at")?,
                    problem: fields.get("problem")?,
                    status: fields.get("status")?,
                    student_mode: fields.get("student_mode")?,
                    revealed_at: fields.get("revealed_at")?,
                    attempts: AttemptCounts {
                        right: count("right_n")?,
                        wrong: count("wrong_n")?,
                        unsure: count("unsure_n")?,
                    },
                    hints_opened: count("hints_n")?,
                },
            })
        }))
    }

    /// The titles of the sessions students' runs are filed under, by title.
    pub async fn class_sessions(&self) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT DISTINCT s.title FROM runs r JOIN sessions s ON s.id = r.session_id \
             WHERE r.owner_id IS NOT NULL ORDER BY s.title",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(self.readable(&rows, |row| Fields::new(row, "sessions").get("title")))
    }
}
