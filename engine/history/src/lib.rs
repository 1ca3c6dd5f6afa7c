//! The history operations of K2 Tutor's front ends, in one place. [`HistoryRequest`] (in
//! k2-protocol, so the wasm UI builds it too) names every operation and [`dispatch`] answers
//! it; `k2 serve`'s `POST /v1/k2/history` and the desktop app's `history` command hand it over
//! as is, so a classroom browser and the desktop window behave the same. A new operation is a
//! variant there and a function and a `dispatch` arm here.
//!
//! Students' attempts are checked here, with `k2_answer::check` (the problem's known answer,
//! else the stored run's answer where the tutor is confident, else unsure), so the kept record
//! never depends on what a client claims. A teacher's correction of a run's answer
//! ([`correct_answer`]) is what they rest on when the problem has no answer key.

pub use classroom::{HeldForTest, Viewer};
pub use k2_protocol::{HistoryRequest, NewNote};

mod classroom;

use std::future::Future;
use std::pin::Pin;

use k2_answer::check::{check_attempt_in_view, KnownAnswers};
use k2_answer::hints::Withheld;
use k2_answer::work;
use k2_protocol::{
    AttemptCheck, CheckVerdict, ClassView, Correction, Event, Hint, RunEvent, StudentRecord,
    WorkCheck,
};
use k2_store::export::{export_run, ExportFormat};
use k2_store::{Note, PageRequest, RunConfig, RunDetail, RunId, RunSummary, Store, StoreError};
use serde::{Deserialize, Serialize};

/// How many runs a listing or a search shows.
pub const LIST_LIMIT: u32 = 100;
/// The longest note or attempt accepted, in characters.
pub const MAX_TEXT: usize = 20_000;

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The request itself is wrong (empty note, unknown format): the user can fix it.
    #[error("{0}")]
    BadRequest(String),
    #[error("run {0} is not in the history (it may have been deleted)")]
    NotFound(RunId),
    /// The asker may not do this (a classroom server's student deleting a run, say); the
    /// message says whose it is to do.
    #[error("{0}")]
    Forbidden(String),
    /// The database failed; the message says what to do.
    #[error("the history is unavailable: {0}")]
    Store(StoreError),
}

impl From<StoreError> for HistoryError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound { id, .. } => HistoryError::NotFound(id),
            other => HistoryError::Store(other),
        }
    }
}

pub type Result<T> = std::result::Result<T, HistoryError>;

/// What [`dispatch`] answers: one variant per kind of answer. Serialized without a tag, as the
/// answer itself (a list of runs, the events, `null` for a deletion...): the asker knows which
/// operation it asked for.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum HistoryReply {
    /// [`HistoryRequest::List`].
    Runs(RunList),
    /// [`HistoryRequest::Show`].
    Run(Box<ShownRun>),
    /// [`HistoryRequest::Events`].
    Events(Vec<Event>),
    /// [`HistoryRequest::Export`]: the file, for the front end to deliver (a download, or
    /// saved by the desktop app, which answers [`HistoryReply::Saved`] instead).
    Export(ExportedRun),
    /// Where a front end that writes files itself saved an export.
    Saved { path: String },
    /// [`HistoryRequest::Notes`] and [`HistoryRequest::AddNote`]: all the run's notes.
    Notes(Vec<Note>),
    /// [`HistoryRequest::CheckAttempt`].
    Attempt(AttemptResult),
    /// [`HistoryRequest::Record`] and [`HistoryRequest::CorrectAnswer`].
    Record(Box<StudentRecord>),
    /// [`HistoryRequest::OpenHint`]: the levels opened so far and the rung opened.
    HintsOpened(OpenedHints),
    /// [`HistoryRequest::Class`] and [`HistoryRequest::SetTestMode`].
    Class(ClassView),
    /// A student's [`HistoryRequest::CheckAttempt`] or [`HistoryRequest::CheckWork`] during a
    /// test: kept, verdict withheld.
    HeldForTest(HeldForTest),
    /// [`HistoryRequest::CheckWork`].
    Work(WorkResult),
    /// [`HistoryRequest::Delete`].
    Deleted,
}

/// What the verifier model is given about a student's work the numbers could not decide.
#[derive(Debug, Clone)]
pub struct WorkReview {
    pub problem: String,
    /// The verified worked solution, when there is one.
    pub solution: Option<String>,
    pub work: String,
    /// The number checker's verdict.
    pub check: WorkCheck,
    /// What the model's words must not reveal.
    pub withheld: Withheld,
}

/// The future a [`WorkReviewer`] answers.
pub type ReviewFuture<'a> = Pin<Box<dyn Future<Output = WorkCheck> + Send + 'a>>;

/// Asks a verifier model about work where numbers could not decide ("Check my work", issue
/// 27). Implemented once over a model backend (`k2_app::ModelWorkReviewer`, which runs the
/// model off the async executor's workers); the history stays free of models.
pub trait WorkReviewer: Send + Sync {
    /// The check with the model's review (`k2_scaffold::work_review::review_checked_work`),
    /// or as it came when the model could not be asked.
    fn review(&self, review: WorkReview) -> ReviewFuture<'_>;
}

/// Answers one history operation. Front ends call only this (or [`dispatch_with_reviewer`]);
/// the functions below stay public for tests and tools.
pub async fn dispatch(store: &Store, request: HistoryRequest) -> Result<HistoryReply> {
    dispatch_with_reviewer(store, request, None).await
}

/// [`dispatch`], with a verifier model for checked work where one is at hand. Rows left out
/// of the answer because they cannot be read are named in the log, and in a listing's
/// [`RunList::unreadable`] for its reader (the client gets the rest; `k2 history recover`
/// repairs them).
pub async fn dispatch_with_reviewer(
    store: &Store,
    request: HistoryRequest,
    reviewer: Option<&dyn WorkReviewer>,
) -> Result<HistoryReply> {
    dispatch_as(store, request, Viewer::Teacher, reviewer).await
}

/// [`dispatch_with_reviewer`] for `viewer`: a classroom server's student gets only their own
/// runs, as student mode allows ([`classroom::answer_student`]).
pub async fn dispatch_as(
    store: &Store,
    request: HistoryRequest,
    viewer: Viewer,
    reviewer: Option<&dyn WorkReviewer>,
) -> Result<HistoryReply> {
    let mut reply = match viewer {
        Viewer::Teacher => answer(store, request, reviewer).await,
        Viewer::Student(student) => {
            classroom::answer_student(store, request, student, reviewer).await
        }
    };
    let unreadable = store.take_unreadable();
    for row in &unreadable {
        tracing::warn!(%row, "left an unreadable row of the session database out of a history answer (`k2 history recover` repairs it)");
    }
    if let Ok(HistoryReply::Runs(list)) = &mut reply {
        list.unreadable = unreadable.iter().map(ToString::to_string).collect();
    }
    reply
}

async fn answer(
    store: &Store,
    request: HistoryRequest,
    reviewer: Option<&dyn WorkReviewer>,
) -> Result<HistoryReply> {
    Ok(match request {
        HistoryRequest::List { query } => HistoryReply::Runs(RunList {
            runs: list(store, query.as_deref()).await?,
            unreadable: Vec::new(),
        }),
        HistoryRequest::Show { run } => HistoryReply::Run(Box::new(show(store, run).await?)),
        HistoryRequest::Events { run } => HistoryReply::Events(events(store, run).await?),
        HistoryRequest::Export { run, format } => {
            HistoryReply::Export(export(store, run, &format).await?)
        }
        HistoryRequest::Notes { run } => HistoryReply::Notes(notes(store, run).await?),
        HistoryRequest::AddNote { run, note } => {
            HistoryReply::Notes(add_note(store, run, &note).await?)
        }
        HistoryRequest::CheckAttempt { run, answer } => {
            HistoryReply::Attempt(check_attempt(store, run, &answer).await?)
        }
        HistoryRequest::CorrectAnswer {
            run,
            answer,
            author,
            note,
        } => HistoryReply::Record(Box::new(
            correct_answer(store, run, &answer, author.as_deref(), note.as_deref()).await?,
        )),
        HistoryRequest::OpenHint { run, level } => {
            HistoryReply::HintsOpened(open_hint(store, run, level).await?)
        }
        // The teacher sees every run whole: nothing to reveal, nothing kept.
        HistoryRequest::Reveal { run } => HistoryReply::Events(events(store, run).await?),
        HistoryRequest::Class { session } => {
            HistoryReply::Class(classroom::class_view(store, session.as_deref()).await?)
        }
        HistoryRequest::ClassReport { session, format } => {
            HistoryReply::Export(classroom::class_report(store, session.as_deref(), &format).await?)
        }
        HistoryRequest::SetTestMode { on } => {
            store.set_test_mode(on).await?;
            HistoryReply::Class(classroom::class_view(store, None).await?)
        }
        HistoryRequest::Record { run } => HistoryReply::Record(Box::new(record(store, run).await?)),
        HistoryRequest::CheckWork { run, work } => {
            HistoryReply::Work(check_work_reviewed(store, run, &work, reviewer).await?)
        }
        HistoryRequest::Delete { run } => {
            delete(store, run).await?;
            HistoryReply::Deleted
        }
    })
}

/// What a front end that keeps no history (no database) answers without one: an empty
/// listing; `None` (the front end says why there is no history) for everything else.
pub fn without_store(request: &HistoryRequest) -> Option<HistoryReply> {
    match request {
        HistoryRequest::List { .. } => Some(HistoryReply::Runs(RunList::default())),
        _ => None,
    }
}

/// [`HistoryRequest::List`]'s answer: `{"runs": [...], "unreadable": [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunList {
    pub runs: Vec<HistoryItem>,
    /// The stored rows this listing had to leave out because they cannot be read (a damaged
    /// database), each in words: its table, key and column. Front ends tell their user, who
    /// can repair them with `k2 history recover` (issue 28).
    #[serde(default)]
    pub unreadable: Vec<String>,
}

/// One row of the history list: the run, and for a search where the words were found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryItem {
    #[serde(flatten)]
    pub run: RunSummary,
    /// Matching text with the matched words between « and » (searches only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snippet: Option<String>,
}

/// The newest runs, or with a non-blank `query` the runs whose problem, plan or answer contain
/// every word of it, best first.
pub async fn list(store: &Store, query: Option<&str>) -> Result<Vec<HistoryItem>> {
    match query.map(str::trim).filter(|q| !q.is_empty()) {
        Some(query) => Ok(store
            .search(query, LIST_LIMIT)
            .await?
            .into_iter()
            .map(|hit| HistoryItem {
                run: hit.run,
                snippet: Some(hit.snippet),
            })
            .collect()),
        None => Ok(store
            .list_runs(None, PageRequest::first(LIST_LIMIT))
            .await?
            .items
            .into_iter()
            .map(|run| HistoryItem { run, snippet: None })
            .collect()),
    }
}

/// A stored run's events, to replay it exactly as it streamed.
/// A stored run as [`HistoryRequest::Show`] describes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShownRun {
    #[serde(flatten)]
    pub summary: RunSummary,
    /// The whole statement (the summary's `problem` is cut to 200 characters).
    pub problem_text: String,
    pub config: RunConfig,
    pub plan: Option<String>,
    pub error: Option<String>,
    /// The teacher's correction of the run's answer in force, told to everyone who opens it.
    pub correction: Option<Correction>,
}

pub async fn show(store: &Store, run: RunId) -> Result<ShownRun> {
    let detail = store.run(run).await?;
    Ok(ShownRun {
        summary: detail.summary,
        problem_text: detail.problem.text,
        config: detail.config,
        plan: detail.plan,
        error: detail.error,
        correction: store.correction(run).await?,
    })
}

pub async fn events(store: &Store, run: RunId) -> Result<Vec<Event>> {
    store.run(run).await?;
    Ok(store.events(run).await?)
}

pub async fn delete(store: &Store, run: RunId) -> Result<()> {
    store.run(run).await?;
    Ok(store.delete_run(run).await?)
}

/// An exported run: what to call the file, its media type and its text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportedRun {
    pub file_name: String,
    pub media_type: &'static str,
    pub content: String,
}

/// A run as Markdown (`markdown`, `md`) or as a standalone HTML page (`html`), notes included.
pub async fn export(store: &Store, run: RunId, format: &str) -> Result<ExportedRun> {
    let (format, extension, media_type) = export_format(format)?;
    let loaded = store.load_run_export(run).await?;
    Ok(ExportedRun {
        file_name: format!("k2-run-{run}.{extension}"),
        media_type,
        content: export_run(&loaded, format),
    })
}

/// An export format by its name: the format, the file's extension and its media type.
fn export_format(name: &str) -> Result<(ExportFormat, &'static str, &'static str)> {
    match name {
        "markdown" | "md" => Ok((ExportFormat::Markdown, "md", "text/markdown; charset=utf-8")),
        "html" => Ok((ExportFormat::Html, "html", "text/html; charset=utf-8")),
        other => Err(HistoryError::BadRequest(format!(
            "`{other}` is not an export format (markdown or html)"
        ))),
    }
}

pub async fn notes(store: &Store, run: RunId) -> Result<Vec<Note>> {
    store.run(run).await?;
    Ok(store.notes(run).await?)
}

/// Adds a teacher's note and answers the run's notes with it.
pub async fn add_note(store: &Store, run: RunId, note: &NewNote) -> Result<Vec<Note>> {
    let text = checked_text(&note.text, "note")?;
    store.run(run).await?;
    let events = store.event_count(run).await?;
    if let Some(seq) = note.seq.filter(|&seq| seq >= events) {
        return Err(HistoryError::BadRequest(format!(
            "the run has {events} events; a note cannot refer to event {seq}"
        )));
    }
    let author = note
        .author
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty());
    store.add_note(run, note.seq, author, text).await?;
    notes(store, run).await
}

/// The result of checking a student's answer; the run's own answer is never part of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptResult {
    /// The verdict and what it rests on (`k2_answer::check`).
    pub check: AttemptCheck,
    /// The verdict as a yes or no, for older clients: `None` when unsure.
    pub equivalent: Option<bool>,
    /// The stored attempt.
    pub attempt: i64,
}

/// Checks a student's answer with [`k2_answer::check`] (`3/4` equals `\frac{3}{4}` and
/// `0.75`): against the problem's known answer when it has one, else against the teacher's
/// correction of the run's answer when there is one, else against the run's answer
/// only where the tutor is confident in it (its replayed events say whether), else unsure.
/// Keeps the attempt, with its verdict and basis, with the run's problem.
pub async fn check_attempt(store: &Store, run: RunId, answer: &str) -> Result<AttemptResult> {
    let answer = checked_text(answer, "answer")?;
    let (detail, correction) = known_about(store, run).await?;
    let view = store.replay(run).await?;
    let known = known_answers(&detail, correction.as_ref());
    let check = check_attempt_in_view(answer, known, &view);
    let attempt = store
        .add_attempt(detail.problem.id, Some(run), answer, Some(check), None)
        .await?;
    Ok(AttemptResult {
        check,
        equivalent: match check.verdict {
            CheckVerdict::Right => Some(true),
            CheckVerdict::Wrong => Some(false),
            CheckVerdict::Unsure => None,
        },
        attempt,
    })
}

/// The highest hint level accepted: far above any ladder, low enough to refuse nonsense.
pub const MAX_HINT_LEVEL: u32 = 100;

/// Keeps a teacher's correction of the run's answer (it replaces the one in force) and answers
/// the run's record with it.
pub async fn correct_answer(
    store: &Store,
    run: RunId,
    answer: &str,
    author: Option<&str>,
    note: Option<&str>,
) -> Result<StudentRecord> {
    let answer = checked_text(answer, "corrected answer")?;
    let optional = |text: Option<&str>, what: &str| -> Result<Option<String>> {
        match text.map(str::trim).filter(|t| !t.is_empty()) {
            Some(text) => Ok(Some(checked_text(text, what)?.to_owned())),
            None => Ok(None),
        }
    };
    let author = optional(author, "author")?;
    let note = optional(note, "note")?;
    store.run(run).await?;
    store
        .add_correction(run, answer, author.as_deref(), note.as_deref())
        .await?;
    record(store, run).await
}

/// [`HistoryRequest::OpenHint`]'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenedHints {
    /// The levels opened so far, each once, in ladder order.
    pub levels: Vec<u32>,
    /// The rung just opened, as stored: how a student whose stream carried no hint text
    /// (student mode on a classroom server) reads it. `None` while the store has not written
    /// it yet.
    pub hint: Option<Hint>,
}

/// Keeps that a student opened hint `level` of the run's ladder. The level is not checked
/// against the ladder's stored events: a hint opened as it streams in may be shown before the
/// store has written it. Answers the levels opened so far and the rung.
pub async fn open_hint(store: &Store, run: RunId, level: u32) -> Result<OpenedHints> {
    if !(1..=MAX_HINT_LEVEL).contains(&level) {
        return Err(HistoryError::BadRequest(format!(
            "hint levels go from 1 to {MAX_HINT_LEVEL}, not {level}"
        )));
    }
    store.run(run).await?;
    store.add_opened_hint(run, level).await?;
    let hint = store
        .events(run)
        .await?
        .into_iter()
        .find_map(|e| match e.kind {
            RunEvent::Hint(hint) if hint.level == level => Some(hint),
            _ => None,
        });
    Ok(OpenedHints {
        levels: record(store, run).await?.levels_opened(),
        hint,
    })
}

/// The run's correction and students' work ([`HistoryRequest::Record`]).
pub async fn record(store: &Store, run: RunId) -> Result<StudentRecord> {
    store.run(run).await?;
    Ok(store.student_record(run).await?)
}

/// A student's checked work; no correct value is ever part of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkResult {
    /// The first wrong step, the final answer's verdict and the basis (`k2_answer::work`).
    pub check: WorkCheck,
    /// The kept work's id.
    pub stored: i64,
}

/// Checks a student's worked solution with [`k2_answer::work`]: against the problem's worked
/// solution when an imported set gave one, else the known answer (the answer key, else the
/// teacher's correction), else the run's chosen
/// solution only where the tutor is confident in it, else the arithmetic alone. Keeps the work
/// and its check with the run's problem.
pub async fn check_work(store: &Store, run: RunId, work: &str) -> Result<WorkResult> {
    check_work_reviewed(store, run, work, None).await
}

/// [`check_work`], and where the numbers could not decide (`work::needs_model_review`) the
/// `reviewer`'s opinion too, kept with the check.
pub async fn check_work_reviewed(
    store: &Store,
    run: RunId,
    work: &str,
    reviewer: Option<&dyn WorkReviewer>,
) -> Result<WorkResult> {
    let work = checked_text(work, "work")?;
    let (detail, correction) = known_about(store, run).await?;
    let view = store.replay(run).await?;
    let known = known_answers(&detail, correction.as_ref());
    let reference = work::reference_for_run(&view, known, detail.problem.solution.as_deref());
    let mut check = work::check_work(work, reference.as_ref())
        .map_err(|e| HistoryError::BadRequest(e.to_string()))?;
    if let Some(reviewer) = reviewer.filter(|_| work::needs_model_review(&check)) {
        check = reviewer
            .review(WorkReview {
                problem: detail.problem.text.clone(),
                solution: reference
                    .as_ref()
                    .and_then(|r| r.solution())
                    .map(str::to_owned),
                work: work.to_owned(),
                check,
                withheld: work::review_withheld(&view, known),
            })
            .await;
    }
    let stored = store
        .add_work_check(detail.problem.id, Some(run), work, &check)
        .await?;
    Ok(WorkResult { check, stored })
}

/// The run and the teacher's correction in force: what is known of its answer besides the run.
async fn known_about(store: &Store, run: RunId) -> Result<(RunDetail, Option<Correction>)> {
    Ok((store.run(run).await?, store.correction(run).await?))
}

/// The answers a student's answer or work is checked against before the run's own: the
/// problem's answer key, else the teacher's correction.
fn known_answers<'a>(
    detail: &'a RunDetail,
    correction: Option<&'a Correction>,
) -> KnownAnswers<'a> {
    KnownAnswers {
        answer_key: detail.problem.known_answer.as_deref(),
        teacher: correction.map(|c| c.answer.as_str()),
    }
}

fn checked_text<'a>(text: &'a str, what: &str) -> Result<&'a str> {
    let text = text.trim();
    if text.is_empty() {
        return Err(HistoryError::BadRequest(format!("the {what} is empty")));
    }
    if text.chars().count() > MAX_TEXT {
        return Err(HistoryError::BadRequest(format!(
            "the {what} is longer than {MAX_TEXT} characters"
        )));
    }
    Ok(text)
}
