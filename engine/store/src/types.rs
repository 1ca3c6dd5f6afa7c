//! The rows the store hands out. One name per concept, as in the SQL schema and the UI.

use std::fmt;
use std::str::FromStr;

use k2_protocol::{AttemptCheck, RunSettings};
use serde::{Deserialize, Serialize};
use sqlx::sqlite::SqliteRow;

pub type SessionId = i64;
pub type ProblemId = i64;
pub type RunId = i64;

/// Where a run stands. `Interrupted` means the process writing it died (a crash, a kill, a
/// power cut); everything flushed before that is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Done,
    Cancelled,
    Interrupted,
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Done => "done",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Failed => "failed",
        }
    }

    pub(crate) fn parse(text: &str) -> RunStatus {
        match text {
            "running" => RunStatus::Running,
            "done" => RunStatus::Done,
            "cancelled" => RunStatus::Cancelled,
            "interrupted" => RunStatus::Interrupted,
            // The schema's CHECK allows nothing else.
            _ => RunStatus::Failed,
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub id: SessionId,
    pub title: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub archived: bool,
    pub runs: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewProblem {
    pub text: String,
    /// The problem set it belongs to, and its id there.
    pub set: Option<(String, String)>,
    /// Where the problem comes from (a citation, a URL, "typed by the student").
    pub origin: Option<String>,
    pub known_answer: Option<String>,
    pub solution: Option<String>,
}

impl NewProblem {
    pub fn typed(text: impl Into<String>) -> Self {
        NewProblem {
            text: text.into(),
            ..NewProblem::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    pub id: ProblemId,
    pub text: String,
    pub set_name: Option<String>,
    pub set_id: Option<String>,
    pub origin: Option<String>,
    pub known_answer: Option<String>,
    pub solution: Option<String>,
    pub created_at: i64,
}

/// How a run was made: which models on which device, and the scaffold's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    pub solver: String,
    #[serde(default)]
    pub planner: Option<String>,
    #[serde(default)]
    pub draft: Option<String>,
    /// `cpu`, `cuda:0`, `metal`, or the remote server's address.
    pub device: String,
    pub settings: RunSettings,
}

/// A run as listed in the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub id: RunId,
    pub session_id: SessionId,
    pub session_title: String,
    pub problem_id: ProblemId,
    /// The problem statement, cut to its first 200 characters.
    pub problem: String,
    pub status: RunStatus,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub answer: Option<String>,
    /// The student whose run it is on a classroom server; `None`: the teacher's, or the
    /// desktop app's own.
    #[serde(default)]
    pub owner: Option<RunOwner>,
    /// Started in student mode: its candidates and answer stay from its owner until they
    /// ask for the solution.
    #[serde(default)]
    pub student_mode: bool,
    /// When its owner asked for the solution (ms since the epoch).
    #[serde(default)]
    pub revealed_at: Option<i64>,
}

/// A student of a classroom server, as the session store keeps them (by name; never deleted,
/// so their id is never another student's).
pub type StudentId = i64;

/// Who a run belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOwner {
    pub id: StudentId,
    pub name: String,
}

/// A student as the session store keeps them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Student {
    pub id: StudentId,
    pub name: String,
    pub added_at: i64,
}

/// How a run is filed: under whom, and in which mode (the classroom server's; a desktop app's
/// runs are the default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunOrigin {
    pub owner: Option<StudentId>,
    pub student_mode: bool,
}

/// A run with everything but its event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunDetail {
    pub summary: RunSummary,
    pub problem: Problem,
    pub config: RunConfig,
    pub plan: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Note {
    pub id: i64,
    pub run_id: RunId,
    /// The event the note refers to; `None` for the whole run.
    pub seq: Option<i64>,
    pub author: Option<String>,
    pub text: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub id: i64,
    pub problem_id: ProblemId,
    pub run_id: Option<RunId>,
    pub answer: String,
    /// The verdict as a yes or no: `None` when unsure or when there was nothing to compare
    /// with.
    pub equivalent: Option<bool>,
    /// The verdict and what it rested on; `None` for attempts kept before schema version 4.
    #[serde(default)]
    pub check: Option<AttemptCheck>,
    pub seconds: Option<f64>,
    pub created_at: i64,
}

/// Where the next page starts: the listing key and id of the last item shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub key: i64,
    pub id: i64,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.key, self.id)
    }
}

impl FromStr for Cursor {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a page cursor (it looks like 1795442700000.42)");
        let (key, id) = s.split_once('.').ok_or_else(bad)?;
        Ok(Cursor {
            key: key.parse().map_err(|_| bad())?,
            id: id.parse().map_err(|_| bad())?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u32,
    /// Continue after this item (the previous page's `next`).
    pub after: Option<Cursor>,
}

impl PageRequest {
    pub const MAX_LIMIT: u32 = 500;

    pub fn first(limit: u32) -> Self {
        PageRequest { limit, after: None }
    }

    pub(crate) fn clamped_limit(&self) -> i64 {
        i64::from(self.limit.clamp(1, Self::MAX_LIMIT))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Present when more items follow.
    pub next: Option<Cursor>,
}

impl<T> Page<T> {
    /// A page from a query that fetched `limit + 1` rows: the extra row only says that more
    /// follow, and the cursor continues after the last row kept. Rows that cannot be read
    /// are skipped by `decode` (and reported); the cursor still moves past them, read from
    /// the row's integer columns, so the next page neither repeats nor loses rows.
    pub(crate) fn from_overfetched(
        rows: &[SqliteRow],
        limit: i64,
        cursor_of: impl Fn(&SqliteRow) -> Option<Cursor>,
        decode: impl FnOnce(&[SqliteRow]) -> Vec<T>,
    ) -> Page<T> {
        let kept = &rows[..rows.len().min(limit.max(0) as usize)];
        let next = if rows.len() > kept.len() {
            kept.last().and_then(cursor_of)
        } else {
            None
        };
        Page {
            items: decode(kept),
            next,
        }
    }
}

/// One search result: the run, and where the words were found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    pub run: RunSummary,
    /// Matching text with the matched words between « and ».
    pub snippet: String,
}
