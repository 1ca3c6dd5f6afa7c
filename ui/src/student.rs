//! For students: the solution behind a button, and "check my answer", which
//! says whether a typed answer is right, wrong or (where the tutor is not confident) unsure,
//! and what that rests on, without showing the answer (`k2_answer::check`, the engine's own
//! check, running here in the page).

use k2_answer::check::{check_attempt_in_view, KnownAnswers};
use k2_protocol::{AttemptCheck, Event, HistoryRequest, RunView};
use leptos::prelude::*;

use crate::app::RunState;
use crate::session::local_storage;
use crate::transport;

const STUDENT_KEY: &str = "k2.student-mode";

/// The student mode chosen last in this browser (or desktop window), if it was ever chosen.
pub fn remembered_choice() -> Option<bool> {
    local_storage()
        .and_then(|s| s.get_item(STUDENT_KEY).ok().flatten())
        .map(|v| v == "on")
}

/// Whether student mode starts on: as it was left.
pub fn remembered() -> bool {
    remembered_choice().unwrap_or(false)
}

/// Keeps the student's (or teacher's) choice for the next visit.
pub fn remember(on: bool) {
    if let Some(storage) = local_storage() {
        let _ = storage.set_item(STUDENT_KEY, if on { "on" } else { "off" });
    }
}

/// Shows the solution the student asked for. To a student's token `k2 serve` streams a
/// student-mode run without the candidates and the answer: the server records that the student
/// asked and answers the run's events whole, which replace the view. The teacher's page (the
/// desktop app's, a teacher trying student mode) already holds every event, and a teacher's
/// look is not a student's reveal.
fn reveal(state: RunState, token: RwSignal<String>, failure: RwSignal<Option<String>>) {
    let Some(run) = state.stored.get_untracked().filter(|_| state.is_student()) else {
        state.revealed.set(true);
        return;
    };
    let request = HistoryRequest::Reveal { run };
    transport::history(&token.get_untracked(), &request, move |result| {
        let events = result.and_then(|json| {
            serde_json::from_str::<Vec<Event>>(&json).map_err(|e| format!("unreadable run: {e}"))
        });
        // Only if the page still shows that run.
        if state.stored.get_untracked() != Some(run) {
            return;
        }
        match events {
            Ok(events) => {
                failure.set(None);
                state.view.set(RunView::replay(&events));
                // Review steps through the whole run from here on.
                state.log.set_value(events);
                state.revealed.set(true);
            }
            Err(e) => failure.set(Some(format!("The solution cannot be shown: {e}"))),
        }
    });
}

#[component]
pub fn RevealSolution(state: RunState, token: RwSignal<String>) -> impl IntoView {
    let failure = RwSignal::new(None::<String>);
    let hidden = move || {
        state.student.get()
            && !state.revealed.get()
            && state
                .view
                .with(|v| !v.candidates.is_empty() || v.final_answer.is_some())
    };
    // A student's solution comes from the server, once the run has ended and is kept whole;
    // the teacher's page has it as it streams.
    let ended = move || !state.running.get() && state.view.with(RunView::is_finished);
    let ready = move || !state.is_student() || ended();
    view! {
        <Show when=hidden>
            <section class="panel reveal">
                <p>{move || if state.held_for_test() {
                    "The solution stays hidden while your teacher runs a test."
                } else if ready() && state.view.with(|v| v.final_answer.is_some()) {
                    "The solution is ready. Try it yourself first, then check your answer below."
                } else {
                    "The solution is being worked out."
                }}</p>
                <button id="reveal" disabled=move || !ready() || state.held_for_test()
                    on:click=move |_| reveal(state, token, failure)>"Show the solution"</button>
                <Show when=move || failure.get().is_some()>
                    <p id="reveal-failure" class="error" role="alert">
                        {move || failure.get().unwrap_or_default()}
                    </p>
                </Show>
            </section>
        </Show>
    }
}

#[component]
pub fn CheckAnswer(state: RunState, token: RwSignal<String>) -> impl IntoView {
    let answered = move || state.view.with(|v| v.final_answer.is_some());
    let given = RwSignal::new(String::new());
    let verdict = RwSignal::new(None::<AttemptCheck>);
    let kept = RwSignal::new(None::<String>);
    // A new run clears the last verdict.
    Effect::new(move |_| {
        state.view.with(|v| v.final_answer.clone());
        verdict.set(None);
        kept.set(None);
    });
    let check = move || {
        let answer = given.get_untracked();
        if answer.trim().is_empty() {
            return;
        }
        // Checked here at once with the one check (k2_answer::check: a teacher's correction,
        // else the run's answer only where the tutor is confident, else unsure); the history
        // checks it again itself, with the problem's answer key when it has one, and its
        // verdict is the one shown.
        let teacher = state
            .record
            .with_untracked(|r| r.as_ref()?.correction.as_ref().map(|c| c.answer.clone()));
        let known = KnownAnswers {
            answer_key: None,
            teacher: teacher.as_deref(),
        };
        let local = state
            .view
            .with_untracked(|v| check_attempt_in_view(&answer, known, v));
        // During a test no verdict is shown, not even this page's own.
        verdict.set((!state.held_for_test()).then_some(local));
        if let Some(run) = state.stored.get_untracked() {
            let request = HistoryRequest::CheckAttempt { run, answer };
            transport::history(&token.get_untracked(), &request, move |result| {
                kept.set(Some(match result {
                    Ok(reply) => {
                        // Review shows the attempt.
                        crate::record::reload(state, token);
                        match held_for_test(&reply) {
                            Some(held) => {
                                verdict.set(None);
                                held
                            }
                            None => {
                                if let Some(stored) = stored_check(&reply) {
                                    verdict.set(Some(stored));
                                }
                                "Your attempt is kept in the history.".into()
                            }
                        }
                    }
                    Err(e) => format!("Your attempt was not kept: {e}"),
                }))
            });
        }
    };
    view! {
        <Show when=answered>
            <section id="check" class="panel">
                <h2>"Check my answer"</h2>
                <div class="controls">
                    <input id="my-answer" placeholder="Your answer, e.g. 3/4 or \\frac{3}{4}"
                        prop:value=move || given.get()
                        on:input=move |ev| { given.set(event_target_value(&ev)); verdict.set(None); }
                        on:keydown=move |ev| if ev.key() == "Enter" { check() } />
                    <button id="check-button" on:click=move |_| check()>"Check"</button>
                </div>
                <p id="check-result"
                    class=move || verdict.get().map(|c| c.verdict.as_str()).unwrap_or_default()
                    data-basis=move || verdict.get().map(|c| c.basis.as_str()).unwrap_or_default()>
                    {move || verdict.get().map(|c| c.message()).unwrap_or_default()}
                </p>
                <p id="attempt-kept" class="muted">{move || kept.get().unwrap_or_default()}</p>
            </section>
        </Show>
    }
}

/// What the server says instead of a verdict during a class's test (`{"kept", "held_for_test"}`).
pub(crate) fn held_for_test(reply: &str) -> Option<String> {
    let reply: serde_json::Value = serde_json::from_str(reply).ok()?;
    Some(reply.get("held_for_test")?.as_str()?.to_owned())
}

/// The check the history made when it kept the attempt (`{"check": {...}, ...}`).
fn stored_check(reply: &str) -> Option<AttemptCheck> {
    let reply: serde_json::Value = serde_json::from_str(reply).ok()?;
    serde_json::from_value(reply.get("check")?.clone()).ok()
}
