//! Problems: typed by a student, or imported from a problem set.

use sqlx::sqlite::SqliteRow;
use sqlx::SqliteConnection;

use crate::clock::now_ms;
use crate::decode::{Fields, UnreadableRow};
use crate::error::{Result, StoreError};
use crate::types::{NewProblem, Problem, ProblemId};
use crate::Store;

pub(crate) const PROBLEM_COLUMNS: &str =
    "id, text, set_name, set_id, origin, known_answer, solution, created_at";

impl Store {
    /// Adds a problem. A problem of a set that is already stored (same set and id) is updated
    /// in place and keeps its id, so runs of it stay attached.
    pub async fn add_problem(&self, problem: &NewProblem) -> Result<ProblemId> {
        let mut conn = self.pool.acquire().await?;
        upsert_problem(&mut conn, problem).await
    }

    pub async fn problem(&self, id: ProblemId) -> Result<Problem> {
        let sql = format!("SELECT {PROBLEM_COLUMNS} FROM problems WHERE id = ?");
        sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound {
                what: "problem",
                id,
            })
            .and_then(|row| problem_from_row(&row).map_err(StoreError::Unreadable))
    }

    /// Records the problem's known answer (a teacher's answer key, `k2 solve --answer-key`):
    /// later checks of students' answers to it are made against it.
    pub async fn set_known_answer(&self, id: ProblemId, answer: &str) -> Result<()> {
        let changed = sqlx::query("UPDATE problems SET known_answer = ? WHERE id = ?")
            .bind(answer)
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        match changed {
            0 => Err(StoreError::NotFound {
                what: "problem",
                id,
            }),
            _ => Ok(()),
        }
    }

    /// The problem with this id in this set, if stored.
    pub async fn problem_in_set(&self, set_name: &str, set_id: &str) -> Result<Option<Problem>> {
        let sql =
            format!("SELECT {PROBLEM_COLUMNS} FROM problems WHERE set_name = ? AND set_id = ?");
        sqlx::query(&sql)
            .bind(set_name)
            .bind(set_id)
            .fetch_optional(&self.pool)
            .await?
            .map(|row| problem_from_row(&row).map_err(StoreError::Unreadable))
            .transpose()
    }
}

pub(crate) async fn upsert_problem(
    conn: &mut SqliteConnection,
    problem: &NewProblem,
) -> Result<ProblemId> {
    let (set_name, set_id) = match &problem.set {
        Some((name, id)) => (Some(name.as_str()), Some(id.as_str())),
        None => (None, None),
    };
    let id = sqlx::query_scalar(
        "INSERT INTO problems (text, set_name, set_id, origin, known_answer, solution, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (set_name, set_id) WHERE set_name IS NOT NULL DO UPDATE SET \
         text = excluded.text, origin = excluded.origin, \
         known_answer = excluded.known_answer, solution = excluded.solution \
         RETURNING id",
    )
    .bind(&problem.text)
    .bind(set_name)
    .bind(set_id)
    .bind(&problem.origin)
    .bind(&problem.known_answer)
    .bind(&problem.solution)
    .bind(now_ms())
    .fetch_one(&mut *conn)
    .await?;
    Ok(id)
}

pub(crate) fn problem_from_row(row: &SqliteRow) -> Result<Problem, UnreadableRow> {
    let fields = Fields::new(row, "problems");
    Ok(Problem {
        id: fields.get("id")?,
        text: fields.get("text")?,
        set_name: fields.get("set_name")?,
        set_id: fields.get("set_id")?,
        origin: fields.get("origin")?,
        known_answer: fields.get("known_answer")?,
        solution: fields.get("solution")?,
        created_at: fields.get("created_at")?,
    })
}
