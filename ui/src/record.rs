//! What people did with a kept run (`HistoryRequest::Record`): the teacher's correction of its
//! answer, told to everyone who opens the run (to a student who has not asked for the solution,
//! only that there is one), corrected in Review, and the student's work (attempts with their
//! verdict and basis, checked work with its first wrong step, hints opened) shown in Review.

use k2_answer::work::split_steps;
use k2_protocol::{CheckVerdict, HistoryRequest, RecordedWorkCheck, StudentRecord, WorkCertainty};
use k2_render::{markdown_to_html, render_math};
use leptos::prelude::*;

use crate::app::RunState;
use crate::history::local_date_time;
use crate::transport;

/// Asks the history for the record of the run on screen and keeps it in `state.record`; a run
/// that is not kept (or still streaming) has none.
pub fn reload(state: RunState, token: RwSignal<String>) {
    let Some(run) = state.stored.get_untracked() else {
        state.record.set(None);
        return;
    };
    let request = HistoryRequest::Record { run };
    transport::history(&token.get_untracked(), &request, move |result| {
        // Only if the page still shows that run.
        if state.stored.get_untracked() == Some(run) {
            state.record.set(result.ok().and_then(|json| parse(&json)));
        }
    });
}

fn parse(json: &str) -> Option<StudentRecord> {
    serde_json::from_str(json).ok()
}

/// An answer someone typed, as math (k2-render escapes what it does not render).
fn answer_html(answer: &str) -> String {
    render_math(answer, false)
}

/// On the run page: the teacher's correction of the answer, to everyone who opens the run.
/// A student who has not asked for the solution is told only that a teacher checked it: the
/// corrected value is the answer.
#[component]
pub fn CorrectionNotice(state: RunState, token: RwSignal<String>) -> impl IntoView {
    // A kept run, once it is not streaming: its record.
    Effect::new(move |_| {
        let (stored, running) = (state.stored.get(), state.running.get());
        match (stored, running) {
            (Some(_), false) => reload(state, token),
            _ => state.record.set(None),
        }
    });
    let correction = move || state.record.with(|r| r.as_ref()?.correction.clone());
    view! {
        <Show when=move || correction().is_some()>
            <section id="correction" class="panel correction">
                {move || {
                    let c = correction()?;
                    Some(if state.solution_visible() {
                        let by = c.author.clone().map(|a| format!(" ({a})")).unwrap_or_default();
                        view! {
                            <p>
                                <strong>"Teacher's correction: "</strong>
                                <span id="correction-answer" inner_html=answer_html(&c.answer)></span>
                                {by}
                            </p>
                            {c.note.clone().map(|n| view! { <p class="muted correction-note">{n}</p> })}
                        }
                        .into_any()
                    } else {
                        view! {
                            <p>
                                <strong>"A teacher checked this run's answer."</strong>
                                " Your answer is checked against the teacher's."
                            </p>
                        }
                        .into_any()
                    })
                }}
            </section>
        </Show>
    }
}

/// In Review: the correction in force and a form to correct the run's answer.
#[component]
pub fn CorrectAnswer(state: RunState, token: RwSignal<String>) -> impl IntoView {
    let answer = RwSignal::new(String::new());
    let note = RwSignal::new(String::new());
    let message = RwSignal::new(None::<String>);
    let send = move || {
        let (Some(run), text) = (state.stored.get_untracked(), answer.get_untracked()) else {
            return;
        };
        if text.trim().is_empty() {
            message.set(Some("Type the right answer first.".into()));
            return;
        }
        let note_text = note.get_untracked();
        let request = HistoryRequest::CorrectAnswer {
            run,
            answer: text,
            author: None,
            note: Some(note_text).filter(|n| !n.trim().is_empty()),
        };
        transport::history(&token.get_untracked(), &request, move |result| match result
            .and_then(|json| parse(&json).ok_or_else(|| "unreadable answer".into()))
        {
            Ok(record) => {
                state.record.set(Some(record));
                answer.set(String::new());
                note.set(String::new());
                message.set(Some(
                    "Kept: students' answers are now checked against it.".into(),
                ));
            }
            Err(e) => message.set(Some(format!("The correction was not kept: {e}"))),
        });
    };
    let in_force = move || state.record.with(|r| r.as_ref()?.correction.clone());
    view! {
        <div id="correct" class="review-block">
            <h3>"Correct the answer"</h3>
            {move || match in_force() {
                Some(c) => view! {
                    <p class="muted">"In force: "
                        <span id="correction-in-force" inner_html=answer_html(&c.answer)></span>
                        {format!(", since {}", local_date_time(c.created_at as f64))}</p>
                }.into_any(),
                None => view! {
                    <p class="muted">"Students' answers are checked against the answer key, else \
                        the run's answer where the tutor is confident. If the run's answer is \
                        wrong, give the right one:"</p>
                }.into_any(),
            }}
            <div class="controls">
                <input id="correct-answer" placeholder="The right answer, e.g. 720"
                    prop:value=move || answer.get()
                    on:input=move |ev| answer.set(event_target_value(&ev))
                    on:keydown=move |ev| if ev.key() == "Enter" { send() } />
                <input id="correct-note" placeholder="Why (optional, shown with it)"
                    prop:value=move || note.get()
                    on:input=move |ev| note.set(event_target_value(&ev)) />
                <button id="correct-button" on:click=move |_| send()>"Correct the answer"</button>
            </div>
            <Show when=move || message.get().is_some()>
                <p id="correct-message" class="muted" role="status">
                    {move || message.get().unwrap_or_default()}
                </p>
            </Show>
        </div>
    }
}

/// In Review: the student's work on the run, oldest first, with the one-line summary.
#[component]
pub fn StudentWork(state: RunState) -> impl IntoView {
    let summary = move || {
        state
            .record
            .with(|r| r.as_ref().and_then(StudentRecord::summary))
    };
    let attempts = move || {
        state.record.with(|r| {
            r.iter()
                .flat_map(|r| r.attempts.iter())
                .map(|a| {
                    let (verdict, basis, title) = match a.check {
                        Some(c) => (
                            c.verdict.as_str(),
                            c.basis.as_str(),
                            format!("checked against {}", c.basis.describe()),
                        ),
                        None => ("", "", "not checked".to_owned()),
                    };
                    view! {
                        <li class="attempt" data-verdict=verdict data-basis=basis>
                            <span class="muted">{local_date_time(a.created_at as f64)}": "</span>
                            <span class="attempt-answer" inner_html=answer_html(&a.answer)></span>
                            <span class=format!("verdict {verdict}")>
                                {if verdict.is_empty() { "—" } else { verdict }}
                            </span>
                            <span class="muted">{format!(" ({title})")}</span>
                        </li>
                    }
                })
                .collect_view()
        })
    };
    let work_checks = move || {
        state.record.with(|r| {
            r.iter()
                .flat_map(|r| r.work_checks.iter())
                .map(work_check)
                .collect_view()
        })
    };
    let hints = move || {
        state.record.with(|r| {
            let r = r.as_ref()?;
            let of = if r.ladder > 0 {
                format!(" (a ladder of {})", r.ladder)
            } else {
                String::new()
            };
            let opened: Vec<String> = r
                .hints
                .iter()
                .map(|h| format!("{} ({})", h.level, local_date_time(h.created_at as f64)))
                .collect();
            (!opened.is_empty()).then(|| format!("Hints opened{of}: {}", opened.join(", ")))
        })
    };
    view! {
        <div id="student-work" class="review-block">
            <h3>"Student's work"</h3>
            {move || match summary() {
                // The student's own text: set as text, never as HTML.
                Some(line) => view! { <p id="work-summary">{line}</p> }.into_any(),
                None => view! { <p id="work-summary" class="muted">"No answers checked and no hints opened yet."</p> }.into_any(),
            }}
            <ul id="attempts" class="notes">{attempts}</ul>
            <ul id="work-checks" class="notes">{work_checks}</ul>
            {move || hints().map(|h| view! { <p id="hints-opened" class="muted">{h}</p> })}
        </div>
    }
}

/// One checked work in Review: when, the verdict (the first wrong step, what is wrong there, how
/// sure; the final answer; the basis) and the steps as the student saw them in "Check my work",
/// the wrong one highlighted.
fn work_check(work: &RecordedWorkCheck) -> impl IntoView {
    let check = &work.check;
    let wrong = check.first_wrong.as_ref();
    let (class, detail) = match wrong {
        Some(w) => (
            if w.certainty == WorkCertainty::Sure {
                "wrong"
            } else {
                "unsure"
            },
            format!(
                ": {} ({}); final answer {}",
                w.kind.describe(),
                w.certainty.as_str(),
                check.final_answer
            ),
        ),
        // No wrong step found is only "right" once the final answer is verified.
        None if check.final_answer == CheckVerdict::Right && check.model_doubt.is_none() => {
            ("right", String::new())
        }
        None => ("unsure", String::new()),
    };
    // The verifier model's doubt, where numbers could not decide: its opinion, not verified.
    let doubt = check.model_doubt.as_ref();
    let detail = match doubt {
        Some(d) => format!("{detail}; step {}: {}", d.step, d.kind.describe()),
        None => detail,
    };
    let doubt_step = doubt.map(|d| d.step);
    let wrong_step = wrong.map(|w| w.step);
    let steps = split_steps(&work.work)
        .into_iter()
        .enumerate()
        .map(|(i, step)| {
            let doubted = doubt_step == Some(i + 1);
            let is_wrong = wrong_step == Some(i + 1) || doubted;
            view! {
                <li class:wrong-step=is_wrong class:model-doubt=doubted data-step=i + 1>
                    // The student's Markdown and LaTeX, rendered as their own panel renders it
                    // (typed HTML stays text).
                    <span class="step-text" inner_html=markdown_to_html(&step.text)></span>
                </li>
            }
        })
        .collect_view();
    view! {
        <li class="work-check" data-step=wrong_step.map(|s| s.to_string()).unwrap_or_default()
            data-kind=wrong.map(|w| w.kind.as_str()).unwrap_or_default()
            data-doubt=doubt_step.map(|s| s.to_string()).unwrap_or_default()
            data-final=check.final_answer.as_str()>
            <span class="muted">{local_date_time(work.created_at as f64)}": checked work: "</span>
            <span class=format!("verdict {class}")>{check.verdict()}</span>
            {detail}
            <span class="muted">{format!(" (checked against {})", check.basis.describe())}</span>
            <ol class="work-steps">{steps}</ol>
        </li>
    }
}
