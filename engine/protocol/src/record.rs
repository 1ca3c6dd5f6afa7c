//! What people added to one stored run after it was made: a teacher's correction of its answer
//! and the student's work on it (hints opened, answers checked, work checked). Kept by the session store,
//! answered by `HistoryRequest::Record`, shown in Review and in the exports, which all word the
//! student's work with [`StudentRecord::summary`] ("opened hints 1-2 of 4, then answered 720:
//! right; checked work: wrong at step 2").

use serde::{Deserialize, Serialize};

use crate::{AttemptCheck, WorkCheck};

/// A teacher's correction of a run's answer: what students' answers are checked against (basis
/// `teacher`) unless the problem has an answer key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Correction {
    pub answer: String,
    #[serde(default)]
    pub author: Option<String>,
    /// Why, for whoever opens the run ("the solutions forgot the last step").
    #[serde(default)]
    pub note: Option<String>,
    /// Milliseconds since the Unix epoch (UTC).
    pub created_at: i64,
}

/// A student's answer to the run, as checked when it was given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedAttempt {
    pub id: i64,
    pub answer: String,
    /// `None` for attempts kept before checks had a basis (schema 4).
    #[serde(default)]
    pub check: Option<AttemptCheck>,
    pub created_at: i64,
}

/// One opening of a hint of the run's ladder (levels from 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenedHint {
    pub level: u32,
    pub created_at: i64,
}

/// A student's worked solution to the run ("Check my work"), as checked when it was given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedWorkCheck {
    pub id: i64,
    /// As the student typed it (untrusted: escape it where it is shown).
    pub work: String,
    pub check: WorkCheck,
    pub created_at: i64,
}

/// Everything kept about a run besides its events and notes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StudentRecord {
    /// The correction in force: the latest one.
    #[serde(default)]
    pub correction: Option<Correction>,
    /// The corrections it replaced, newest first.
    #[serde(default)]
    pub earlier_corrections: Vec<Correction>,
    /// Oldest first.
    #[serde(default)]
    pub attempts: Vec<RecordedAttempt>,
    /// Every opening, oldest first (a hint opened again is listed again).
    #[serde(default)]
    pub hints: Vec<OpenedHint>,
    /// How many hints the run's ladder has (its `hint` events); 0 for runs without a ladder.
    #[serde(default)]
    pub ladder: u32,
    /// Checked work, oldest first.
    #[serde(default)]
    pub work_checks: Vec<RecordedWorkCheck>,
}

impl StudentRecord {
    /// Whether the student did anything with the run.
    pub fn has_work(&self) -> bool {
        !self.attempts.is_empty() || !self.hints.is_empty() || !self.work_checks.is_empty()
    }

    /// The levels opened so far, each once, in ladder order.
    pub fn levels_opened(&self) -> Vec<u32> {
        let mut levels: Vec<u32> = self.hints.iter().map(|h| h.level).collect();
        levels.sort_unstable();
        levels.dedup();
        levels
    }

    /// The student's work in one line, in the order it happened: each answer with the hints
    /// first opened before it, "opened hints 1-2 of 4, then answered 720: right; answered 3:
    /// wrong", each checked work with its verdict ("checked work: wrong at step 2",
    /// [`WorkCheck::verdict`]), and hints opened after the last of them at the end. `None` when
    /// there is no work. Plain text with the student's answers in it as typed: escape it where it goes.
    pub fn summary(&self) -> Option<String> {
        if !self.has_work() {
            return None;
        }
        // Hints before an attempt or checked work made at the same millisecond: a hint is
        // opened, then used.
        let mut steps: Vec<(i64, u8, usize)> = self
            .hints
            .iter()
            .enumerate()
            .map(|(i, h)| (h.created_at, 0, i))
            .chain(
                self.attempts
                    .iter()
                    .enumerate()
                    .map(|(i, a)| (a.created_at, 1, i)),
            )
            .chain(
                self.work_checks
                    .iter()
                    .enumerate()
                    .map(|(i, w)| (w.created_at, 2, i)),
            )
            .collect();
        steps.sort();
        let mut seen: Vec<u32> = Vec::new();
        let mut pending: Vec<u32> = Vec::new();
        let mut parts: Vec<String> = Vec::new();
        for (_, kind, index) in steps {
            if kind == 0 {
                let level = self.hints[index].level;
                if !seen.contains(&level) {
                    seen.push(level);
                    pending.push(level);
                }
                continue;
            }
            let answered = if kind == 2 {
                format!("checked work: {}", self.work_checks[index].check.verdict())
            } else {
                let attempt = &self.attempts[index];
                match attempt.check {
                    Some(check) => format!("answered {}: {}", attempt.answer, check.verdict),
                    None => format!("answered {}", attempt.answer),
                }
            };
            parts.push(match self.opened(&mut pending) {
                Some(opened) => format!("{opened}, then {answered}"),
                None => answered,
            });
        }
        parts.extend(self.opened(&mut pending));
        Some(parts.join("; "))
    }

    /// "opened hints 1-2 of 4" for the levels in `pending` (emptied), `None` if none.
    fn opened(&self, pending: &mut Vec<u32>) -> Option<String> {
        if pending.is_empty() {
            return None;
        }
        pending.sort_unstable();
        let noun = if pending.len() == 1 { "hint" } else { "hints" };
        let of = if self.ladder > 0 {
            format!(" of {}", self.ladder)
        } else {
            String::new()
        };
        let text = format!("opened {noun} {}{of}", level_ranges(pending));
        pending.clear();
        Some(text)
    }
}

/// Sorted distinct levels as ranges: `[1, 2, 3, 5]` is "1-3, 5".
pub fn level_ranges(levels: &[u32]) -> String {
    let mut ranges: Vec<String> = Vec::new();
    let mut i = 0;
    while i < levels.len() {
        let start = levels[i];
        let mut end = start;
        while i + 1 < levels.len() && levels[i + 1] == end + 1 {
            i += 1;
            end = levels[i];
        }
        ranges.push(if end > start {
            format!("{start}-{end}")
        } else {
            start.to_string()
        });
        i += 1;
    }
    ranges.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CheckBasis, CheckVerdict, WorkCertainty, WorkIssueKind, WrongStep};

    fn attempt(answer: &str, verdict: Option<CheckVerdict>, at: i64) -> RecordedAttempt {
        RecordedAttempt {
            id: at,
            answer: answer.into(),
            check: verdict.map(|verdict| AttemptCheck {
                verdict,
                basis: CheckBasis::Teacher,
            }),
            created_at: at,
        }
    }

    fn hint(level: u32, at: i64) -> OpenedHint {
        OpenedHint {
            level,
            created_at: at,
        }
    }

    #[test]
    fn the_summary_tells_the_work_in_order() {
        let record = StudentRecord {
            hints: vec![hint(1, 10), hint(2, 20), hint(1, 25), hint(3, 40)],
            attempts: vec![
                attempt("720", Some(CheckVerdict::Right), 30),
                attempt("x<y", None, 50),
            ],
            ladder: 4,
            ..StudentRecord::default()
        };
        assert_eq!(
            record.summary().unwrap(),
            "opened hints 1-2 of 4, then answered 720: right; \
             opened hint 3 of 4, then answered x<y"
        );
        assert_eq!(record.levels_opened(), [1, 2, 3]);
    }

    #[test]
    fn hints_after_the_last_answer_and_runs_without_a_ladder() {
        let record = StudentRecord {
            hints: vec![hint(4, 5), hint(1, 5), hint(2, 60)],
            attempts: vec![attempt("540", Some(CheckVerdict::Unsure), 5)],
            ..StudentRecord::default()
        };
        // Same millisecond: the hints came first. No ladder: no "of N".
        assert_eq!(
            record.summary().unwrap(),
            "opened hints 1, 4, then answered 540: unsure; opened hint 2"
        );
        assert_eq!(StudentRecord::default().summary(), None);
    }

    fn work(
        wrong: Option<(usize, WorkCertainty)>,
        final_answer: CheckVerdict,
        at: i64,
    ) -> RecordedWorkCheck {
        RecordedWorkCheck {
            id: at,
            work: "9 \\times 2 = 19".into(),
            check: WorkCheck {
                steps: 3,
                first_wrong: wrong.map(|(step, certainty)| WrongStep {
                    step,
                    text: "9 \\times 2 = 19".into(),
                    kind: WorkIssueKind::Arithmetic,
                    certainty,
                    message: "Look at step 2 again.".into(),
                }),
                final_answer,
                basis: CheckBasis::Unanimous,
                summary: String::new(),
                reviewed_by_model: false,
                model_doubt: None,
            },
            created_at: at,
        }
    }

    #[test]
    fn checked_work_is_told_in_order_with_its_verdict() {
        let record = StudentRecord {
            hints: vec![hint(1, 10)],
            attempts: vec![attempt("19", Some(CheckVerdict::Wrong), 30)],
            work_checks: vec![
                work(Some((2, WorkCertainty::Sure)), CheckVerdict::Wrong, 20),
                work(Some((3, WorkCertainty::Unsure)), CheckVerdict::Unsure, 40),
                work(None, CheckVerdict::Right, 50),
            ],
            ladder: 3,
            ..StudentRecord::default()
        };
        assert_eq!(
            record.summary().unwrap(),
            "opened hint 1 of 3, then checked work: wrong at step 2; answered 19: wrong; \
             checked work: maybe wrong at step 3; \
             checked work: no wrong step found, final answer right"
        );
        let only_work = StudentRecord {
            work_checks: vec![work(Some((1, WorkCertainty::Sure)), CheckVerdict::Wrong, 5)],
            ..StudentRecord::default()
        };
        assert!(only_work.has_work());
        assert_eq!(
            only_work.summary().unwrap(),
            "checked work: wrong at step 1"
        );
    }

    #[test]
    fn ranges() {
        assert_eq!(level_ranges(&[]), "");
        assert_eq!(level_ranges(&[2]), "2");
        assert_eq!(level_ranges(&[1, 2, 3, 5, 7, 8]), "1-3, 5, 7-8");
    }
}
