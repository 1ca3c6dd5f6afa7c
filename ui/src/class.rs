//! The teacher's class page (a browser on `k2 serve` with a class roster): every student's
//! runs by session, with dates, the verdicts of their attempts, hints opened and whether they
//! asked for the solution; a session filter, the session's report for the whole class, and the
//! test mode that holds hints and solutions back from students.

use k2_protocol::{ClassRun, ClassStudent, ClassView, HistoryRequest};
use k2_render::markdown_preview;
use leptos::prelude::*;

use crate::history::local_date_time;
use crate::transport;

fn parse(json: &str) -> Result<ClassView, String> {
    serde_json::from_str(json).map_err(|e| format!("unreadable answer: {e}"))
}

/// The session filter's value for "All sessions".
const ALL: &str = "";

fn session_of(filter: &str) -> Option<String> {
    (filter != ALL).then(|| filter.to_owned())
}

/// Whether the student saw the solution: "asked at <time>", "no", or "—" outside student
/// mode (where it was shown all along).
fn solution_cell(run: &ClassRun) -> String {
    match (run.student_mode, run.revealed_at) {
        (false, _) => "shown (not student mode)".into(),
        (true, Some(at)) => format!("asked {}", local_date_time(at as f64)),
        (true, None) => "not asked".into(),
    }
}

fn run_row(run: ClassRun, open: impl Fn(i64) + Copy + 'static) -> impl IntoView {
    let a = run.attempts;
    let id = run.id;
    let solution = solution_cell(&run);
    view! {
        <tr class="class-run" data-run=run.id data-right=a.right data-wrong=a.wrong
            data-unsure=a.unsure data-hints=run.hints_opened
            data-revealed=run.revealed_at.is_some().to_string()>
            <td><time>{local_date_time(run.started_at as f64)}</time></td>
            <td class="muted">{run.session.clone()}</td>
            // Students' problems with their LaTeX: rendered (and escaped) by k2-render, on one
            // line, as History shows them; a click opens the run with its Review.
            <td class="problem">
                <button class="link class-open" title="Open this run and its review"
                    on:click=move |_| open(id) inner_html=markdown_preview(&run.problem, 90)></button>
            </td>
            <td>{run.status.clone()}</td>
            <td class="right">{a.right}</td>
            <td class="wrong">{a.wrong}</td>
            <td class="unsure">{a.unsure}</td>
            <td class="hints">{run.hints_opened}</td>
            <td class="solution">{solution}</td>
        </tr>
    }
}

fn student_block(student: ClassStudent, open: impl Fn(i64) + Copy + 'static) -> impl IntoView {
    let runs = student.runs.len();
    let heading = format!(
        "{}{} · {runs} run{}",
        student.name,
        if student.removed {
            " (no longer on the roster)"
        } else {
            ""
        },
        if runs == 1 { "" } else { "s" }
    );
    let body = if student.runs.is_empty() {
        view! { <p class="muted">"No runs yet."</p> }.into_any()
    } else {
        view! {
            <table class="class-runs">
                <thead><tr>
                    <th>"Date"</th><th>"Session"</th><th>"Problem"</th><th>"Status"</th>
                    <th title="attempts checked right">"Right"</th>
                    <th title="attempts checked wrong">"Wrong"</th>
                    <th title="attempts the tutor could not check">"Unsure"</th>
                    <th>"Hints opened"</th><th>"Solution"</th>
                </tr></thead>
                <tbody>{student.runs.into_iter().map(|run| run_row(run, open)).collect_view()}</tbody>
            </table>
        }
        .into_any()
    };
    view! {
        <section class="panel class-student" data-student=student.name.clone()>
            // A name from the roster file: set as text.
            <h3>{heading}</h3>
            {body}
        </section>
    }
}

/// The class at a glance: a row per student with their runs' sums (`ClassStudent::totals`,
/// as the class report counts them).
fn totals_table(students: Vec<ClassStudent>) -> impl IntoView {
    let rows = students
        .into_iter()
        .map(|student| {
            let t = student.totals();
            view! {
                <tr data-student=student.name.clone() data-runs=t.runs data-right=t.attempts.right
                    data-wrong=t.attempts.wrong data-unsure=t.attempts.unsure
                    data-hints=t.hints_opened data-revealed=t.revealed>
                    <td>{student.name.clone()}</td>
                    <td class="count">{t.runs}</td>
                    <td class="count">{t.attempts.right}</td>
                    <td class="count">{t.attempts.wrong}</td>
                    <td class="count">{t.attempts.unsure}</td>
                    <td class="count">{t.hints_opened}</td>
                    <td class="count">{t.revealed}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <table id="class-totals" class="class-runs">
            <thead><tr>
                <th>"Student"</th><th>"Runs"</th><th>"Right"</th><th>"Wrong"</th>
                <th>"Unsure"</th><th>"Hints opened"</th><th>"Solutions asked for"</th>
            </tr></thead>
            <tbody>{rows}</tbody>
        </table>
    }
}

#[component]
pub fn ClassPage(
    token: RwSignal<String>,
    /// Opens a run in the solve view.
    on_open: impl Fn(i64) + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let class = RwSignal::new(None::<ClassView>);
    let filter = RwSignal::new(ALL.to_owned());
    let message = RwSignal::new(None::<String>);
    let failure = RwSignal::new(None::<String>);
    let answered = move |result: Result<String, String>| match result.and_then(|j| parse(&j)) {
        Ok(view) => {
            failure.set(None);
            class.set(Some(view));
        }
        Err(e) => failure.set(Some(format!("The class is unavailable: {e}"))),
    };
    let refresh = move || {
        let session = session_of(&filter.get_untracked());
        let request = HistoryRequest::Class { session };
        transport::history(&token.get_untracked(), &request, answered);
    };
    // Loaded when the page opens and whenever the filter changes.
    Effect::new(move |_| {
        filter.track();
        refresh();
    });
    let set_test_mode = move |on: bool| {
        let request = HistoryRequest::SetTestMode { on };
        transport::history(&token.get_untracked(), &request, move |result| {
            answered(result);
            // The whole class's view came back; the filter applies again.
            refresh();
        });
    };
    let report = move |_| {
        let session = session_of(&filter.get_untracked());
        let request = HistoryRequest::ClassReport {
            session,
            format: "html".into(),
        };
        transport::history(&token.get_untracked(), &request, move |result| {
            message.set(Some(
                match result.and_then(|json| crate::review::deliver(&json)) {
                    Ok(done) => done,
                    Err(e) => format!("The report failed: {e}"),
                },
            ))
        });
    };
    let sessions =
        move || class.with(|c| c.as_ref().map(|c| c.sessions.clone()).unwrap_or_default());
    let test_mode = move || class.with(|c| c.as_ref().is_some_and(|c| c.test_mode));
    let students =
        move || class.with(|c| c.as_ref().map(|c| c.students.clone()).unwrap_or_default());
    view! {
        <section id="class" class="panel">
            <h2>"Class"</h2>
            <div class="controls">
                <label>"Session "
                    <select id="class-session" on:change=move |ev| filter.set(event_target_value(&ev))>
                        <option value=ALL selected=move || filter.with(|f| f == ALL)>"All sessions"</option>
                        <For each=sessions key=|s| s.clone() let:title>
                            <option value=title.clone()
                                selected={
                                    let title = title.clone();
                                    move || filter.with(|f| *f == title)
                                }>{title.clone()}</option>
                        </For>
                    </select>
                </label>
                <button id="class-refresh" on:click=move |_| refresh()>"Refresh"</button>
                <button id="class-report" on:click=report>"Download report"</button>
                <label title="While on, students get no hints and cannot ask for solutions">
                    <input type="checkbox" id="test-mode-switch" prop:checked=test_mode
                        on:change=move |ev| set_test_mode(event_target_checked(&ev)) />
                    " Test mode (no hints or solutions for students)"
                </label>
            </div>
            <Show when=move || failure.get().is_some()>
                <p class="error" role="alert">{move || failure.get().unwrap_or_default()}</p>
            </Show>
            <Show when=move || message.get().is_some()>
                <p id="class-message" class="muted" role="status">{move || message.get().unwrap_or_default()}</p>
            </Show>
            <Show when=move || class.with(|c| c.as_ref().is_some_and(|c| c.students.is_empty()))>
                <p id="class-empty" class="muted">"No students on this server's roster yet. Add one with "
                    <code>"k2 serve roster add NAME --roster FILE"</code>
                    ": the student opens this page's address followed by "<code>"#token="</code>
                    " and the token it prints."</p>
            </Show>
            <Show when=move || !students().is_empty()>
                {move || totals_table(students())}
            </Show>
            <For each=students key=|s| format!("{s:?}") let:student>
                {student_block(student, on_open)}
            </For>
        </section>
    }
}
