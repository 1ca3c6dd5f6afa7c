//! The history operations every front end offers over the session store, as one typed
//! request: `k2_history::dispatch` answers it, `k2 serve` takes it at `POST /v1/k2/history`,
//! the desktop app as its `history` command, and the UI sends it through one call.

use serde::{Deserialize, Serialize};

/// A stored run's id (the session store's `RunId`).
pub type StoredRunId = i64;

/// One history operation. Serialized with an `op` tag:
/// `{"op":"list","query":"squared"}`, `{"op":"delete","run":4}`.
///
/// Each variant's documentation says what it answers (as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum HistoryRequest {
    /// The newest runs, or with a non-blank `query` the runs whose problem, plan or answer
    /// contain every word of it, best first. Answers a list of runs (with a `snippet` for a
    /// search).
    List {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        query: Option<String>,
    },
    /// A stored run without its events: its summary, the whole problem statement, how it was
    /// made (models, settings), its plan and error, and the teacher's correction of its answer
    /// in force (`correction`, a `Correction` or `null`), which belongs to the run as everyone
    /// sees it. Answers that object. The problem's answer key and worked solution are left
    /// out: any token that reads runs would read them. The students' work is not here: it is
    /// [`HistoryRequest::Record`]'s.
    Show { run: StoredRunId },
    /// A stored run's events, to replay it exactly as it streamed. Answers the events.
    Events { run: StoredRunId },
    /// The run as a file: `format` is `markdown` (or `md`) or `html`. Answers
    /// `{file_name, media_type, content}` (the desktop app saves it and answers `{path}`).
    Export {
        run: StoredRunId,
        #[serde(default = "markdown")]
        format: String,
    },
    /// The run's teachers' notes, whole-run notes first. Answers the notes.
    Notes { run: StoredRunId },
    /// Adds a teacher's note. Answers all the run's notes.
    AddNote { run: StoredRunId, note: NewNote },
    /// Checks a student's answer against the run's final answer and keeps the attempt.
    /// Answers `{check: {verdict, basis}, equivalent, attempt}` (`k2_answer::check`); never
    /// the run's answer itself.
    CheckAttempt { run: StoredRunId, answer: String },
    /// A teacher's correction of the run's answer: later checks of students' answers rest on
    /// it (basis `teacher`) unless the problem has an answer key, and everyone who opens the
    /// run is told of it. A later correction replaces the earlier one, which stays in the
    /// record. Answers the run's record, as [`HistoryRequest::Record`].
    CorrectAnswer {
        run: StoredRunId,
        answer: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        author: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// A student opened hint `level` (from 1) of the run's hint ladder: kept with the time.
    /// Answers the levels opened so far, each once, in ladder order (`[1, 2]`).
    OpenHint { run: StoredRunId, level: u32 },
    /// What was added to the run after it was made: the teacher's correction in force and the
    /// ones it replaced, the students' attempts (answer, time, verdict and basis) and hints
    /// opened, oldest first, and the length of its hint ladder. Answers a `StudentRecord`
    /// (`{correction, earlier_corrections, attempts, hints, ladder}`). A separate operation
    /// rather than part of `Show`: `Show` describes the run, this is what people did with it,
    /// and it changes with every attempt.
    Record { run: StoredRunId },
    /// "Check my work": checks a student's worked solution (`k2_answer::work`) against the
    /// problem's worked solution, else the run's solution where the tutor is confident, else
    /// its arithmetic only, and keeps it. Answers `{check: WorkCheck, stored}`; never a
    /// correct value.
    CheckWork { run: StoredRunId, work: String },
    /// Removes the run and everything attached to it. Answers `null`.
    Delete { run: StoredRunId },
    /// A student asks for the solution of their student-mode run: kept (the first time, with
    /// the time) and the run's events answered whole, as [`HistoryRequest::Events`] answers a
    /// teacher. Refused while the class is in test mode.
    Reveal { run: StoredRunId },
    /// The teacher's view of the class: every student's runs (of the session titled
    /// `session`, or all) with their attempts' verdicts, hints opened and reveals. Answers a
    /// `ClassView`.
    Class {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<String>,
    },
    /// The class's work (of one session, or all) as one file for the teacher: `format` as in
    /// [`HistoryRequest::Export`]. Answers `{file_name, media_type, content}`.
    ClassReport {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<String>,
        #[serde(default = "markdown")]
        format: String,
    },
    /// Puts the class in test mode (students get no hints and no solutions) or lifts it.
    /// Answers the `ClassView` of all sessions.
    SetTestMode { on: bool },
}

fn markdown() -> String {
    "markdown".into()
}

/// A note to add: on the whole run, or on the point where event `seq` happened.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewNote {
    #[serde(default)]
    pub seq: Option<u64>,
    #[serde(default)]
    pub author: Option<String>,
    pub text: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every variant, as the UI sends it and as `k2 serve` and the desktop app read it.
    fn every_request() -> Vec<(HistoryRequest, serde_json::Value)> {
        vec![
            (HistoryRequest::List { query: None }, json!({"op": "list"})),
            (
                HistoryRequest::List {
                    query: Some("\\frac{5}{6} squared".into()),
                },
                json!({"op": "list", "query": "\\frac{5}{6} squared"}),
            ),
            (
                HistoryRequest::Events { run: 3 },
                json!({"op": "events", "run": 3}),
            ),
            (
                HistoryRequest::Export {
                    run: 3,
                    format: "html".into(),
                },
                json!({"op": "export", "run": 3, "format": "html"}),
            ),
            (
                HistoryRequest::Notes { run: 3 },
                json!({"op": "notes", "run": 3}),
            ),
            (
                HistoryRequest::AddNote {
                    run: 3,
                    note: NewNote {
                        seq: Some(2),
                        author: Some("Ms. Rivera".into()),
                        text: "Why Vieta?".into(),
                    },
                },
                json!({"op": "add_note", "run": 3,
                       "note": {"seq": 2, "author": "Ms. Rivera", "text": "Why Vieta?"}}),
            ),
            (
                HistoryRequest::CheckAttempt {
                    run: 3,
                    answer: "3/4".into(),
                },
                json!({"op": "check_attempt", "run": 3, "answer": "3/4"}),
            ),
            (
                HistoryRequest::CorrectAnswer {
                    run: 3,
                    answer: "720".into(),
                    author: Some("Ms. Rivera".into()),
                    note: None,
                },
                json!({"op": "correct_answer", "run": 3, "answer": "720", "author": "Ms. Rivera"}),
            ),
            (
                HistoryRequest::OpenHint { run: 3, level: 2 },
                json!({"op": "open_hint", "run": 3, "level": 2}),
            ),
            (
                HistoryRequest::Record { run: 3 },
                json!({"op": "record", "run": 3}),
            ),
            (
                HistoryRequest::CheckWork {
                    run: 3,
                    work: "9 \\times 2 = 19".into(),
                },
                json!({"op": "check_work", "run": 3, "work": "9 \\times 2 = 19"}),
            ),
            (
                HistoryRequest::Delete { run: 3 },
                json!({"op": "delete", "run": 3}),
            ),
            (
                HistoryRequest::Reveal { run: 3 },
                json!({"op": "reveal", "run": 3}),
            ),
            (
                HistoryRequest::Class {
                    session: Some("Homework 3".into()),
                },
                json!({"op": "class", "session": "Homework 3"}),
            ),
            (
                HistoryRequest::Class { session: None },
                json!({"op": "class"}),
            ),
            (
                HistoryRequest::ClassReport {
                    session: None,
                    format: "html".into(),
                },
                json!({"op": "class_report", "format": "html"}),
            ),
            (
                HistoryRequest::SetTestMode { on: true },
                json!({"op": "set_test_mode", "on": true}),
            ),
        ]
    }

    #[test]
    fn every_request_round_trips_with_its_op_tag() {
        for (request, wire) in every_request() {
            assert_eq!(serde_json::to_value(&request).unwrap(), wire, "{request:?}");
            let read: HistoryRequest = serde_json::from_value(wire.clone()).unwrap();
            assert_eq!(read, request, "{wire}");
            let text = serde_json::to_string(&request).unwrap();
            assert_eq!(
                serde_json::from_str::<HistoryRequest>(&text).unwrap(),
                request
            );
        }
    }

    #[test]
    fn optional_fields_have_defaults_and_unknown_ops_are_refused() {
        assert_eq!(
            serde_json::from_value::<HistoryRequest>(json!({"op": "export", "run": 1})).unwrap(),
            HistoryRequest::Export {
                run: 1,
                format: "markdown".into()
            }
        );
        assert_eq!(
            serde_json::from_value::<HistoryRequest>(
                json!({"op": "add_note", "run": 1, "note": {"text": "ok"}})
            )
            .unwrap(),
            HistoryRequest::AddNote {
                run: 1,
                note: NewNote {
                    text: "ok".into(),
                    ..NewNote::default()
                }
            }
        );
        let unknown = serde_json::from_value::<HistoryRequest>(json!({"op": "drop_all"}));
        assert!(unknown.unwrap_err().to_string().contains("drop_all"));
        let no_run = serde_json::from_value::<HistoryRequest>(json!({"op": "delete"}));
        assert!(no_run.unwrap_err().to_string().contains("run"));
    }
}
