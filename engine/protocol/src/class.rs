//! A teacher's view of their class on a classroom server (`k2 serve --roster`): every student's
//! runs with what they did with them. Built by `k2_history` from the session store; shown by
//! the UI's Class page and in the class report.

use serde::{Deserialize, Serialize};

/// The class, optionally of one session ("Homework 3").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassView {
    /// Whether the class is in test mode: students get neither hints nor solutions.
    pub test_mode: bool,
    /// The session titles students' runs are filed under, for the page's filter.
    pub sessions: Vec<String>,
    /// Sorted by name; a student with no run (in the session) is listed with none.
    pub students: Vec<ClassStudent>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassStudent {
    pub name: String,
    /// No longer on the roster: their token no longer opens anything; their runs stay.
    pub removed: bool,
    /// Newest first.
    pub runs: Vec<ClassRun>,
}

/// One student's run and what they did with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassRun {
    pub id: i64,
    pub session: String,
    /// Ms since the epoch.
    pub started_at: i64,
    /// The statement's first 200 characters.
    pub problem: String,
    /// `running`, `finished`, `failed`, `cancelled` or `interrupted`.
    pub status: String,
    pub student_mode: bool,
    /// When the student asked for the solution.
    pub revealed_at: Option<i64>,
    pub attempts: AttemptCounts,
    /// Distinct hint levels opened.
    pub hints_opened: u32,
}

/// The student's answers to a run, by the tutor's verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptCounts {
    pub right: u32,
    pub wrong: u32,
    pub unsure: u32,
}

/// A student's work over all their listed runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClassTotals {
    pub runs: usize,
    pub attempts: AttemptCounts,
    pub hints_opened: u32,
    pub revealed: u32,
}

impl ClassStudent {
    pub fn totals(&self) -> ClassTotals {
        self.runs.iter().fold(
            ClassTotals {
                runs: self.runs.len(),
                ..ClassTotals::default()
            },
            |mut totals, run| {
                totals.attempts.right += run.attempts.right;
                totals.attempts.wrong += run.attempts.wrong;
                totals.attempts.unsure += run.attempts.unsure;
                totals.hints_opened += run.hints_opened;
                totals.revealed += u32::from(run.revealed_at.is_some());
                totals
            },
        )
    }
}
