//! "Check my work", for students: they type their own solution, one step a line (LaTeX
//! allowed), and the tutor names the first wrong step and what is wrong there, never the
//! correct value (`k2_answer::work`, the engine's own check, running here in the page; the
//! history checks again with the problem's worked solution and answer key and keeps it).

use k2_answer::check::KnownAnswers;
use k2_answer::work::{check_work, reference_for_run, split_steps};
use k2_protocol::{HistoryRequest, WorkCertainty, WorkCheck};
use k2_render::markdown_to_html;
use leptos::prelude::*;

use crate::app::RunState;
use crate::transport;

#[component]
pub fn CheckWork(state: RunState, token: RwSignal<String>) -> impl IntoView {
    let shown = move || state.student.get() && state.view.with(|v| v.final_answer.is_some());
    let work = RwSignal::new(String::new());
    let checked = RwSignal::new(None::<Result<WorkCheck, String>>);
    // The steps as they were checked (the text may change after).
    let steps = RwSignal::new(Vec::<String>::new());
    let kept = RwSignal::new(None::<String>);
    // A new run clears the last verdict.
    Effect::new(move |_| {
        state.view.with(|v| v.final_answer.clone());
        checked.set(None);
        kept.set(None);
    });
    let check = move || {
        let text = work.get_untracked();
        steps.set(split_steps(&text).into_iter().map(|s| s.text).collect());
        // The run's solution is a reference only where the tutor is confident in it.
        let local = state.view.with_untracked(|v| {
            let reference = reference_for_run(v, KnownAnswers::default(), None);
            check_work(&text, reference.as_ref()).map_err(|e| e.to_string())
        });
        let valid = local.is_ok();
        // During a test no verdict is shown, not even this page's own (a step that does not
        // parse is still said).
        checked.set((!state.held_for_test() || !valid).then_some(local));
        kept.set(None);
        let Some(run) = state.stored.get_untracked().filter(|_| valid) else {
            return;
        };
        let request = HistoryRequest::CheckWork { run, work: text };
        transport::history(&token.get_untracked(), &request, move |result| {
            kept.set(Some(match result {
                Ok(reply) => {
                    // Review's "Student's work" shows it.
                    crate::record::reload(state, token);
                    match crate::student::held_for_test(&reply) {
                        Some(held) => {
                            checked.set(None);
                            held
                        }
                        None => {
                            if let Some(stored) = stored_check(&reply) {
                                checked.set(Some(Ok(stored)));
                            }
                            "Your work is kept in the history.".into()
                        }
                    }
                }
                Err(e) => format!("Your work was not kept: {e}"),
            }))
        });
    };
    let wrong_step = move || {
        checked.with(|c| {
            c.as_ref()
                .and_then(|c| c.as_ref().ok())
                .and_then(|c| c.first_wrong.as_ref().map(|w| w.step))
        })
    };
    // The step the verifier model doubts (the history's check only): highlighted as an
    // unsure step is, and named as the model's opinion.
    let doubt = move || {
        checked.with(|c| {
            c.as_ref()
                .and_then(|c| c.as_ref().ok())
                .and_then(|c| c.model_doubt.as_ref().map(|d| (d.step, d.kind.describe())))
        })
    };
    let verdict_class = move || {
        checked.with(|c| match c {
            None => "",
            Some(Err(_)) => "error",
            Some(Ok(c)) => match &c.first_wrong {
                None if c.model_doubt.is_some() => "unsure",
                None => "right",
                Some(w) if w.certainty == WorkCertainty::Sure => "wrong",
                Some(_) => "unsure",
            },
        })
    };
    view! {
        <Show when=shown>
            <section id="work" class="panel">
                <h2>"Check my work"</h2>
                <p class="muted" id="work-about">{move || if state.held_for_test() {
                    "During the test your work is kept for your teacher, who will see where it \
                        goes wrong; nothing here says whether it is right."
                } else {
                    "Type your solution, one step a line (LaTeX is fine). The tutor looks for \
                        the first step that is wrong, without telling you the answer."
                }}</p>
                <textarea id="my-work" rows="5"
                    placeholder="16 - 3 - 4 = 9\n9 \\times 2 = 18"
                    prop:value=move || work.get()
                    on:input=move |ev| work.set(event_target_value(&ev))></textarea>
                <div class="controls">
                    <button id="check-work-button" on:click=move |_| check()>"Check my work"</button>
                </div>
                <Show when=move || checked.with(Option::is_some)>
                    <p id="work-result" class=verdict_class
                        data-kind=move || checked.with(|c| c.as_ref()
                            .and_then(|c| c.as_ref().ok())
                            .and_then(|c| c.first_wrong.as_ref().map(|w| w.kind.as_str()))
                            .unwrap_or_default())
                        data-basis=move || checked.with(|c| c.as_ref()
                            .and_then(|c| c.as_ref().ok())
                            .map(|c| c.basis.as_str())
                            .unwrap_or_default())>
                        {move || checked.with(|c| match c {
                            Some(Ok(c)) => c.summary.clone(),
                            Some(Err(e)) => e.clone(),
                            None => String::new(),
                        })}
                    </p>
                    <Show when=move || doubt().is_some()>
                        <p id="work-doubt" class="unsure" data-kind="model_doubt"
                            data-step=move || doubt().map(|(n, _)| n.to_string()).unwrap_or_default()>
                            {move || doubt().map(|(n, words)| format!("Step {n}: {words}.")).unwrap_or_default()}
                        </p>
                    </Show>
                    <ol id="work-steps">
                        {move || steps.get().into_iter().enumerate().map(|(i, text)| {
                            let doubted = doubt().is_some_and(|(n, _)| n == i + 1);
                            let wrong = wrong_step() == Some(i + 1) || doubted;
                            view! {
                                <li class:wrong-step=wrong class:model-doubt=doubted data-step=i + 1
                                    aria-current=move || wrong.then_some("step")>
                                    // The student's Markdown and LaTeX, rendered as the
                                    // problem's preview is (typed HTML stays text).
                                    <span class="step-text" inner_html=markdown_to_html(&text)></span>
                                </li>
                            }
                        }).collect_view()}
                    </ol>
                </Show>
                <p id="work-kept" class="muted">{move || kept.get().unwrap_or_default()}</p>
            </section>
        </Show>
    }
}

/// The check the history made when it kept the work (`{"check": {...}, "stored": id}`).
fn stored_check(reply: &str) -> Option<WorkCheck> {
    let reply: serde_json::Value = serde_json::from_str(reply).ok()?;
    serde_json::from_value(reply.get("check")?.clone()).ok()
}
