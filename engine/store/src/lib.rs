//! K2 Tutor's session store: every run's event log in SQLite (sqlx), with sessions, problems,
//! history, full-text search, replay, teacher notes and corrections, students' attempts and
//! hints opened, and export.
//!
//! One place in the code for the desktop app, `k2 solve`/`k2 history` and `k2 serve`. A stored
//! run *is* its event log (the `k2_protocol::Event`s exactly as streamed), so a replay shows what
//! the student saw; the `runs` row only caches what listing and search need.
//!
//! Writing happens off the generation loop: a [`RunRecorder`] queues events without blocking and
//! a background task commits them in small transactions, so a crash loses at most the last
//! fraction of a second.

mod annotations;
mod classroom;
mod clock;
mod decode;
mod error;
mod events;
pub mod export;
mod open;
pub mod problem_set;
mod problems;
mod quarantine;
mod record;
mod recorder;
mod runs;
mod search;
mod sessions;
mod types;
mod work_checks;

pub use classroom::OwnedClassRun;
pub use clock::{format_utc, now_ms};
pub use decode::UnreadableRow;
pub use error::{Result, StoreError};
pub use open::{default_path, latest_schema_version, APPLICATION_ID, MIGRATOR};
pub use problem_set::{ImportReport, LineError};
pub use quarantine::Quarantined;
pub use recorder::{RecordSummary, RunRecorder, FLUSH_EVENTS, FLUSH_INTERVAL};
pub use types::{
    Attempt, Cursor, NewProblem, Note, Page, PageRequest, Problem, ProblemId, RunConfig, RunDetail,
    RunId, RunOrigin, RunOwner, RunStatus, RunSummary, SearchHit, Session, SessionId, Student,
    StudentId,
};
pub use work_checks::StoredWorkCheck;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sqlx::SqlitePool;

/// An open session database. Cheap to clone (a connection pool).
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    path: PathBuf,
    /// Rows skipped by listings since a front end last asked (`decode.rs`).
    unreadable: Arc<decode::UnreadableLog>,
}

impl Store {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for pending writes and closes every connection.
    pub async fn close(self) {
        self.pool.close().await;
    }
}
