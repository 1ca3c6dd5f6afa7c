//! The history as a classroom server's roles see it (issue 29). The teacher (and a desktop
//! app's own user) gets every operation on every run; a student gets their own runs only, and
//! of a student-mode run only what [`k2_protocol::disclosure`] allows until they ask for its
//! solution ([`HistoryRequest::Reveal`]). Every operation is matched here without a catch-all,
//! so a new one must say what a student may do with it.

use k2_protocol::disclosure::{student_event, Disclosed};
use k2_protocol::{ClassStudent, ClassView, Event};
use k2_store::export::{render, Document, RunSection, Section};
use k2_store::{format_utc, PageRequest, RunId, RunSummary, Store, StudentId};

use crate::{
    check_attempt, check_work_reviewed, events, export, open_hint, record, show, ExportedRun,
    HistoryError, HistoryItem, HistoryReply, HistoryRequest, Result, RunList, WorkReviewer,
    LIST_LIMIT,
};

/// Who asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    /// Everything, on every run: a classroom's teacher, a desktop app's user.
    Teacher,
    /// A classroom server's student: their own runs.
    Student(StudentId),
}

fn forbidden(message: &str) -> HistoryError {
    HistoryError::Forbidden(message.to_owned())
}

/// Answers a student. What they may not do is refused before the run is looked up, so the
/// answer is the same for any run id; another student's run is "not in the history", so ids
/// tell nothing about other students.
pub(crate) async fn answer_student(
    store: &Store,
    request: HistoryRequest,
    student: StudentId,
    reviewer: Option<&dyn WorkReviewer>,
) -> Result<HistoryReply> {
    Ok(match request {
        HistoryRequest::Delete { .. } => return Err(forbidden("only the teacher can delete runs")),
        HistoryRequest::Notes { .. } | HistoryRequest::AddNote { .. } => {
            return Err(forbidden("notes are the teacher's"))
        }
        HistoryRequest::CorrectAnswer { .. } => {
            return Err(forbidden("only the teacher can correct a run's answer"))
        }
        HistoryRequest::Class { .. }
        | HistoryRequest::ClassReport { .. }
        | HistoryRequest::SetTestMode { .. } => {
            return Err(forbidden("the class's page is the teacher's"))
        }
        HistoryRequest::List { query } => HistoryReply::Runs(RunList {
            runs: own_list(store, student, query.as_deref()).await?,
            unreadable: Vec::new(),
        }),
        HistoryRequest::Show { run } => {
            let summary = own_run(store, run, student).await?;
            let mut shown = show(store, run).await?;
            if withheld(&summary) {
                shown.plan = None;
                shown.summary.answer = None;
                if let Some(correction) = &mut shown.correction {
                    correction.answer.clear();
                }
            }
            HistoryReply::Run(Box::new(shown))
        }
        HistoryRequest::Events { run } => {
            let summary = own_run(store, run, student).await?;
            HistoryReply::Events(student_events(store, &summary).await?)
        }
        HistoryRequest::Export { run, format } => {
            let summary = own_run(store, run, student).await?;
            if withheld(&summary) {
                return Err(forbidden(
                    "the export shows the solution: ask for the solution first",
                ));
            }
            HistoryReply::Export(export(store, run, &format).await?)
        }
        HistoryRequest::CheckAttempt { run, answer } => {
            own_run(store, run, student).await?;
            let result = check_attempt(store, run, &answer).await?;
            match store.test_mode().await? {
                true => HistoryReply::HeldForTest(HeldForTest::new(result.attempt)),
                false => HistoryReply::Attempt(result),
            }
        }
        HistoryRequest::OpenHint { run, level } => {
            own_run(store, run, student).await?;
            if store.test_mode().await? {
                return Err(forbidden(
                    "hints are closed during the test; your teacher opens them again after it",
                ));
            }
            HistoryReply::HintsOpened(open_hint(store, run, level).await?)
        }
        HistoryRequest::Record { run } => {
            let summary = own_run(store, run, student).await?;
            let mut record = record(store, run).await?;
            if withheld(&summary) {
                // That a teacher checked the answer is theirs to know; the answer is not yet.
                for correction in record
                    .correction
                    .iter_mut()
                    .chain(record.earlier_corrections.iter_mut())
                {
                    correction.answer.clear();
                }
            }
            HistoryReply::Record(Box::new(record))
        }
        HistoryRequest::CheckWork { run, work } => {
            own_run(store, run, student).await?;
            let result = check_work_reviewed(store, run, &work, reviewer).await?;
            match store.test_mode().await? {
                true => HistoryReply::HeldForTest(HeldForTest::new(result.stored)),
                false => HistoryReply::Work(result),
            }
        }
        HistoryRequest::Reveal { run } => {
            let summary = own_run(store, run, student).await?;
            if summary.revealed_at.is_none() && store.test_mode().await? {
                return Err(forbidden(
                    "solutions are closed during the test; your teacher opens them again after it",
                ));
            }
            store.set_revealed(run).await?;
            HistoryReply::Events(events(store, run).await?)
        }
    })
}

/// What a student is answered for an answer or work checked during a test: that it is kept,
/// and no verdict (right and wrong would let them guess their way to the answer). The check
/// itself is kept with its verdict for the teacher's class view.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HeldForTest {
    /// The kept attempt's or work's id.
    pub kept: i64,
    /// What to tell the student.
    pub held_for_test: String,
}

impl HeldForTest {
    fn new(kept: i64) -> HeldForTest {
        HeldForTest {
            kept,
            held_for_test: "Kept for your teacher: during the test the tutor does not say \
                            whether it is right."
                .into(),
        }
    }
}

/// Whether a student may not yet see the run's solution.
fn withheld(summary: &RunSummary) -> bool {
    summary.student_mode && summary.revealed_at.is_none()
}

/// The run, if it is `student`'s; else "not in the history", as for a deleted run.
async fn own_run(store: &Store, run: RunId, student: StudentId) -> Result<RunSummary> {
    let summary = store.run(run).await?.summary;
    match &summary.owner {
        Some(owner) if owner.id == student => Ok(summary),
        _ => Err(HistoryError::NotFound(run)),
    }
}

/// A student's listing: their runs only (a search looks in their problems only), answers
/// left out where still withheld.
async fn own_list(
    store: &Store,
    student: StudentId,
    query: Option<&str>,
) -> Result<Vec<HistoryItem>> {
    let mut items: Vec<HistoryItem> = match query.map(str::trim).filter(|q| !q.is_empty()) {
        Some(query) => store
            .search_owned(student, query, LIST_LIMIT)
            .await?
            .into_iter()
            .map(|hit| HistoryItem {
                run: hit.run,
                snippet: Some(hit.snippet),
            })
            .collect(),
        None => store
            .list_owned_runs(student, PageRequest::first(LIST_LIMIT))
            .await?
            .items
            .into_iter()
            .map(|run| HistoryItem { run, snippet: None })
            .collect(),
    };
    for item in &mut items {
        if withheld(&item.run) {
            item.run.answer = None;
        }
    }
    Ok(items)
}

/// A student's run's stored events as they may see them now.
async fn student_events(store: &Store, summary: &RunSummary) -> Result<Vec<Event>> {
    let all = events(store, summary.id).await?;
    if !withheld(summary) {
        return Ok(all);
    }
    let opened = record(store, summary.id).await?.levels_opened();
    let disclosed = Disclosed {
        hints_opened: &opened,
        hints_allowed: !store.test_mode().await?,
    };
    Ok(all
        .iter()
        .filter_map(|e| student_event(e, disclosed))
        .collect())
}

/// The class: every student the store knows (by name) with their runs, of one session or all.
pub async fn class_view(store: &Store, session: Option<&str>) -> Result<ClassView> {
    let runs = store.class_runs(session).await?;
    let students = store
        .students()
        .await?
        .into_iter()
        .map(|student| ClassStudent {
            runs: runs
                .iter()
                .filter(|r| r.owner.id == student.id)
                .map(|r| r.run.clone())
                .collect(),
            name: student.name,
            removed: false,
        })
        .collect();
    Ok(ClassView {
        test_mode: store.test_mode().await?,
        sessions: store.class_sessions().await?,
        students,
    })
}

/// The class's work as one document: a section per student, a part per run with its problem
/// (math rendered as in every export) and what the student did.
pub async fn class_report(
    store: &Store,
    session: Option<&str>,
    format: &str,
) -> Result<ExportedRun> {
    let (format, extension, media_type) = crate::export_format(format)?;
    let class = class_view(store, session).await?;
    let title = match session {
        Some(session) => format!("K2 Tutor class report: {session}"),
        None => "K2 Tutor class report: all sessions".to_owned(),
    };
    let mut runs = vec![overview(&class)];
    runs.extend(class.students.iter().map(|student| {
        let totals = student.totals();
        RunSection {
            heading: student.name.clone(),
            facts: vec![
                ("Runs".into(), totals.runs.to_string()),
                ("Answers".into(), answers_in_words(&totals.attempts)),
                ("Hints opened".into(), totals.hints_opened.to_string()),
            ],
            sections: student
                .runs
                .iter()
                .map(|run| Section {
                    heading: format!(
                        "Run {} ({}, {})",
                        run.id,
                        run.session,
                        format_utc(run.started_at)
                    ),
                    body: format!(
                        "{}\n\n- Status: {}\n- Answers: {}\n- Hints opened: {}\n- Solution: {}\n",
                        run.problem,
                        run.status,
                        answers_in_words(&run.attempts),
                        run.hints_opened,
                        match run.revealed_at {
                            Some(at) => format!("revealed {}", format_utc(at)),
                            None if run.student_mode => "not revealed".to_owned(),
                            None => "shown (not a student-mode run)".to_owned(),
                        }
                    ),
                    folded: false,
                })
                .collect(),
        }
    }));
    let document = Document { title, runs };
    let file = match session {
        Some(session) => format!("k2-class-{}.{extension}", file_safe(session)),
        None => format!("k2-class.{extension}"),
    };
    Ok(ExportedRun {
        file_name: file,
        media_type,
        content: render(&document, format),
    })
}

fn answers_in_words(attempts: &k2_protocol::AttemptCounts) -> String {
    format!(
        "{} right, {} wrong, {} unsure",
        attempts.right, attempts.wrong, attempts.unsure
    )
}

/// The class at a glance: one row per student.
fn overview(class: &ClassView) -> RunSection {
    let mut table = String::from(
        "| Student | Runs | Right | Wrong | Unsure | Hints opened | Solutions revealed |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    for student in &class.students {
        let totals = student.totals();
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            // A name is the teacher's text, but `|` would end its cell.
            student.name.replace('|', "\\|"),
            totals.runs,
            totals.attempts.right,
            totals.attempts.wrong,
            totals.attempts.unsure,
            totals.hints_opened,
            totals.revealed,
        ));
    }
    RunSection {
        heading: "The class".into(),
        facts: vec![
            ("Students".into(), class.students.len().to_string()),
            (
                "Test mode".into(),
                if class.test_mode { "on" } else { "off" }.into(),
            ),
        ],
        sections: vec![Section {
            heading: "Overview".into(),
            body: table,
            folded: false,
        }],
    }
}

/// A session title as part of a file name: letters, digits and dashes.
fn file_safe(title: &str) -> String {
    let safe: String = title
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { '-' })
        .collect();
    safe.trim_matches('-').chars().take(60).collect()
}
