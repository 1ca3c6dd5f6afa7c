//! The solve view's panels. Model text is rendered by k2-render (Markdown, KaTeX math, raw HTML
//! escaped) and only then put into the page.

use k2_answer::card::{candidate_summary, AnswerCard};
use k2_protocol::{FinishReason, RunSettings, Stage};
use k2_render::{markdown_to_html, render_math};
use leptos::prelude::*;

use crate::app::RunState;
use crate::render::{incremental, Markdown};

#[component]
pub fn ProblemInput(
    problem: RwSignal<String>,
    session: RwSignal<String>,
    settings: RwSignal<RunSettings>,
    state: RunState,
    on_start: impl Fn() + Copy + 'static,
    on_stop: impl Fn() + Copy + 'static,
) -> impl IntoView {
    let preview = move || markdown_to_html(&problem.get());
    view! {
        <section class="problem">
            <label for="problem">"Problem"</label>
            <textarea id="problem" rows="4"
                placeholder="Type a problem; LaTeX between $…$ is previewed below."
                prop:value=move || problem.get()
                on:input=move |ev| problem.set(event_target_value(&ev))
                on:keydown=move |ev| {
                    if ev.key() == "Enter" && (ev.ctrl_key() || ev.meta_key()) {
                        on_start();
                    }
                } />
            <div class="preview" inner_html=preview></div>
            <label class="session">"Session "
                <input id="session" type="text" maxlength="100"
                    placeholder="e.g. Homework 3 (runs are grouped by it in History)"
                    prop:value=move || session.get()
                    on:input=move |ev| session.set(event_target_value(&ev)) />
            </label>
            <div class="controls">
                <label>"Candidates "
                    <select id="candidates"
                        on:change=move |ev| {
                            let n = event_target_value(&ev).parse().unwrap_or(3);
                            settings.update(|s| s.candidates = n);
                        }>
                        {[1usize, 2, 3, 4, 5].map(|n| view! {
                            <option value=n.to_string()
                                selected=move || settings.with(|s| s.candidates == n)>
                                {n}
                            </option>
                        }).collect_view()}
                    </select>
                </label>
                <label>"Max tokens "
                    <input id="max-tokens" type="number" min="16" max="32768" step="16"
                        prop:value=move || settings.with(|s| s.sampling.max_tokens.to_string())
                        on:change=move |ev| {
                            if let Ok(n) = event_target_value(&ev).parse::<usize>() {
                                settings.update(|s| s.sampling.max_tokens = n.clamp(16, 32768));
                            }
                        } />
                </label>
                <label title="Hints one at a time; the solution only when asked">
                    <input type="checkbox" id="student" prop:checked=move || state.student.get()
                        disabled=move || state.student_locked.get()
                        on:change=move |ev| {
                            if !state.student_locked.get_untracked() {
                                let on = event_target_checked(&ev);
                                state.student.set(on);
                                crate::student::remember(on);
                            }
                        } />
                    " Student mode"
                    <Show when=move || state.student_locked.get()>
                        <span id="student-locked" class="muted">{
                            // The desktop app's lab configuration, or the class server's.
                            if crate::transport::in_desktop_app() {
                                " (set by your administrator)"
                            } else {
                                " (set by your teacher)"
                            }
                        }</span>
                    </Show>
                </label>
                <label><input type="checkbox" id="plan"
                    prop:checked=move || settings.with(|s| s.plan)
                    on:change=move |ev| settings.update(|s| s.plan = event_target_checked(&ev)) />
                    " Plan first"</label>
                <button id="solve" on:click=move |_| on_start()
                    disabled=move || state.running.get() || problem.get().trim().is_empty()>
                    "Solve"
                </button>
                <button id="stop" on:click=move |_| on_stop()
                    disabled=move || !state.running.get()>"Stop"</button>
            </div>
        </section>
    }
}

#[component]
pub fn StatusBar(state: RunState) -> impl IntoView {
    let status = move || {
        state.view.with(|v| {
            let stage = match v.stage {
                _ if v.cancelled => "stopped",
                _ if v.error.is_some() => "failed",
                None if state.running.get() => "starting",
                None => "ready",
                Some(Stage::Planning) => "planning",
                Some(Stage::Solving) => "solving",
                Some(Stage::Verifying) => "verifying",
                Some(Stage::Hinting) => "writing hints",
                Some(Stage::Done) => "done",
            };
            let mut line = stage.to_string();
            // The effort the run asked for, so a replayed run says how it was made.
            if let Some(effort) = v.request.as_ref().and_then(|r| r.settings.effort) {
                line.push_str(&format!(" · {effort} effort"));
            }
            if v.elapsed_ms > 0 {
                line.push_str(&format!(" · {:.1} s", v.elapsed_ms as f64 / 1000.0));
            }
            if v.stats.is_none() && state.running.get() {
                if let Some(rate) = state.live.get().per_second() {
                    line.push_str(&format!(" · ≈{rate:.0} tok/s"));
                }
            }
            if let Some(stats) = &v.stats {
                line.push_str(&format!(" · {:.1} tok/s", stats.decode_tokens_per_s));
                // Speculative decoding's guesses, not anyone's drafts: a student reads this line
                // beside their own work, where "drafts" would mean theirs.
                if let Some(rate) = stats.acceptance_rate {
                    line.push_str(&format!(" · {:.0}% of guessed tokens kept", rate * 100.0));
                }
            }
            line
        })
    };
    view! {
        <span id="status" class="status">{status}</span>
        <AnswerSummary state=state />
    }
}

/// The answer in a line, in the bar that stays on screen: the card itself is often thousands
/// of pixels below. Words from k2_answer::card (a best guess where the tutor is unsure); in
/// student mode, before the solution is shown, it says only that the answer is ready.
#[component]
fn AnswerSummary(state: RunState) -> impl IntoView {
    let card = Memo::new(move |_| state.view.with(AnswerCard::from_view));
    let hidden = move || state.student.get() && !state.revealed.get();
    let html = move || {
        card.with(|card| {
            let card = card.as_ref()?;
            if hidden() {
                return Some("Answer ready: try it yourself, then check yours".to_owned());
            }
            // A teacher's correction is the answer (the check uses it too), not the run's.
            let corrected = state.record.with(|r| {
                let c = r.as_ref()?.correction.as_ref()?;
                Some(render_math(&c.answer, false))
            });
            if let Some(corrected) = corrected {
                return Some(format!("Teacher's correction: {corrected}"));
            }
            // Model text: rendered (and escaped) by k2-render.
            let answer = card
                .answer
                .as_deref()
                .map_or_else(|| "none".to_owned(), |a| render_math(a, false));
            let sure = if card.is_confident() {
                "confident"
            } else {
                "unsure"
            };
            Some(format!(
                "{}: {answer} <span class=\"muted\">· {sure}</span>",
                card.answer_label()
            ))
        })
    };
    let go = move |_| {
        let corrected = state
            .record
            .with_untracked(|r| r.as_ref().is_some_and(|r| r.correction.is_some()));
        let target = match (hidden(), corrected) {
            (true, _) => "check",
            (false, true) => "correction",
            (false, false) => "final-answer",
        };
        if let Some(el) = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.get_element_by_id(target))
        {
            el.scroll_into_view();
        }
    };
    view! {
        <Show when=move || card.with(Option::is_some)>
            <button id="status-answer" class="link status-answer"
                class:unsure=move || card.with(|c| c.as_ref().is_some_and(|c| !c.is_confident()))
                    && state.record.with(|r| r.as_ref().is_none_or(|r| r.correction.is_none()))
                title="Go to the answer"
                on:click=go inner_html=move || html().unwrap_or_default()></button>
        </Show>
    }
}

/// The solver's plan, for a teacher (or a student once the solution is revealed): a student
/// gets hints written for them instead (`crate::hints`).
#[component]
pub fn PlanPanel(state: RunState) -> impl IntoView {
    let shown = move || state.view.with(|v| !v.plan.is_empty()) && state.solution_visible();
    let full_plan = incremental(state.view, |v| v.plan.as_str());
    view! {
        <Show when=shown>
            <section id="plan" class="panel">
                <h2>"Plan"</h2>
                <Markdown rendered=full_plan />
            </section>
        </Show>
    }
}

#[component]
pub fn Candidates(state: RunState) -> impl IntoView {
    let count = move || state.view.with(|v| v.candidates.len());
    view! {
        <section id="candidates-panel" class="candidates">
            <For each=move || 0..count() key=|i| *i let:index>
                <Candidate state=state index=index />
            </For>
        </section>
    }
}

#[component]
fn Candidate(state: RunState, index: usize) -> impl IntoView {
    let with = move |f: &dyn Fn(&k2_protocol::CandidateView) -> String| {
        state
            .view
            .with(|v| v.candidates.get(index).map(f).unwrap_or_default())
    };
    let stopped = move || state.view.with(|v| v.cancelled || v.error.is_some());
    // Read in place; these memos change only when this candidate's text does.
    let reasoning = incremental(state.view, move |v| {
        v.candidates.get(index).map_or("", |c| c.reasoning.as_str())
    });
    let answer = incremental(state.view, move |v| {
        v.candidates
            .get(index)
            .map_or("", |c| c.answer_text.as_str())
    });
    let answering = move || {
        state.view.with(|v| {
            v.candidates
                .get(index)
                .is_some_and(|c| !c.answer_text.trim().is_empty())
        })
    };
    // "Thought for" only where there was a thinking phase (k2_answer::card).
    let summary = move || with(&|c| candidate_summary(c, stopped()));
    // A candidate the loop guard ended is marked where it is named, not only in the fold:
    // its text repeats one span, and the badge says why it stopped.
    let looped = move || {
        state.view.with(|v| {
            v.candidates
                .get(index)
                .and_then(|c| c.finished.as_ref())
                .is_some_and(|done| done.finish == FinishReason::Loop)
        })
    };
    // The answer part starts capped (style.css), so cards of long solutions start at the
    // height they keep; "Show more" appears only where something is cut.
    let expanded = RwSignal::new(false);
    let overflows = RwSignal::new(false);
    let answer_box = NodeRef::<leptos::html::Div>::new();
    Effect::new(move |_| {
        answer.track();
        let Some(el) = answer_box.get() else {
            return;
        };
        // Measured after the browser lays the new text out.
        // The text's own height, not the box's scroll height: while it streams the box cuts
        // the top (style.css), which is not scrollable overflow.
        let measure = wasm_bindgen::closure::Closure::once_into_js(move || {
            let text = el.first_element_child().map_or(0, |t| t.client_height());
            overflows.set(text > el.client_height() + 1);
        });
        if let Some(window) = web_sys::window() {
            let _ = window.request_animation_frame(wasm_bindgen::JsCast::unchecked_ref(&measure));
        }
    });
    view! {
        <article class="candidate" data-index=index>
            <h3>
                {format!("Candidate {}", index + 1)}
                <Show when=looped>
                    <span class="badge looped" title="It repeated itself over and over, so it was stopped; it is never chosen over a finished candidate.">
                        "looped"
                    </span>
                </Show>
            </h3>
            <details class="reasoning" prop:open=move || !answering()>
                <summary>{summary}</summary>
                <Markdown rendered=reasoning />
            </details>
            <div class="answer-box" class:expanded=move || expanded.get()
                class:streaming=move || !stopped() && state.view.with(|v| {
                    v.candidates.get(index).is_some_and(|c| c.finished.is_none())
                })
                node_ref=answer_box>
                <Markdown rendered=answer class="answer" />
            </div>
            <Show when=move || overflows.get() || expanded.get()>
                <button class="link show-more" on:click=move |_| expanded.update(|e| *e = !*e)>
                    {move || if expanded.get() { "Show less" } else { "Show more" }}
                </button>
            </Show>
        </article>
    }
}

#[component]
pub fn Verdicts(state: RunState) -> impl IntoView {
    let items = move || {
        state.view.with(|v| {
            v.verdicts
                .iter()
                .map(|verdict| {
                    let outcome = match verdict.winner {
                        Some(w) => format!("candidate {} is better", w + 1),
                        None => "a tie".into(),
                    };
                    let line = format!(
                        "Candidate {} vs {}: {outcome}",
                        verdict.first + 1,
                        verdict.second + 1
                    );
                    let rationale = markdown_to_html(&verdict.rationale);
                    view! {
                        <li><strong>{line}</strong><div class="markdown" inner_html=rationale></div></li>
                    }
                })
                .collect_view()
        })
    };
    let any = move || state.view.with(|v| !v.verdicts.is_empty());
    view! {
        <Show when=any>
            <section id="verdicts" class="panel">
                <h2>"Verification"</h2>
                <ul>{items}</ul>
            </section>
        </Show>
    }
}

#[component]
pub fn FinalAnswer(state: RunState) -> impl IntoView {
    // The card's words come from k2_answer::card (its confidence from the same check as "Check
    // my answer"); built, and its math rendered, only when what it rests on changes.
    let card = Memo::new(move |_| state.view.with(AnswerCard::from_view));
    let shown = move || card.with(Option::is_some);
    let field =
        move |f: fn(&AnswerCard) -> String| card.with(|c| c.as_ref().map(f).unwrap_or_default());
    let answer_html = Memo::new(move |_| {
        card.with(
            |c| match c.as_ref().and_then(|c| Some((c.answer.as_deref()?, c))) {
                // A best guess in the line, not displayed as the result.
                Some((answer, c)) => render_math(answer, c.is_confident()),
                None => "<p>No final answer was found in the chosen solution.</p>".into(),
            },
        )
    });
    let confidence_class = move || {
        card.with(|c| match c {
            Some(c) if c.is_confident() => "confidence confident",
            _ => "confidence unsure",
        })
    };
    let basis = move || card.with(|c| c.as_ref().map_or("", |c| c.basis.as_str()));
    let candidates = move || {
        card.with(|c| {
            c.iter()
                .flat_map(|c| c.candidates.iter())
                .map(|line| {
                    let class = match (line.chosen, line.complete) {
                        (true, _) => "chosen",
                        (false, true) => "",
                        (false, false) => "unfinished",
                    };
                    // Model text: rendered (and escaped) by k2-render.
                    let answer = match &line.answer {
                        Some(a) => render_math(a, false),
                        None => "<em>no answer</em>".into(),
                    };
                    view! {
                        <li class=class data-candidate=line.candidate data-finish=line.finish.clone()>
                            <span class="who">{format!("Candidate {}", line.candidate + 1)}</span>
                            <span class="its-answer" inner_html=answer></span>
                            <span class="finish">{line.finish.clone()}</span>
                        </li>
                    }
                })
                .collect_view()
        })
    };
    let verdicts =
        move || card.with(|c| c.as_ref().map(|c| c.verdicts.clone()).unwrap_or_default());
    view! {
        <Show when=shown>
            <section id="final-answer" class="panel answer-card" data-basis=basis>
                <h2>{move || card.with(|c| c.as_ref().map_or("Answer", AnswerCard::answer_label))}</h2>
                // Unsure: the tutor's best guess, shown smaller than a checked result.
                <div class=move || if card.with(|c| c.as_ref().is_some_and(AnswerCard::is_confident)) {
                        "math"
                    } else {
                        "math best-guess"
                    }
                    inner_html=move || answer_html.get()></div>
                <p class=confidence_class>{move || field(|c| c.confidence.clone())}</p>
                <p class="how">{move || field(|c| c.method.clone())}</p>
                <Show when=move || card.with(|c| c.as_ref().is_some_and(|c| c.vote.is_some()))>
                    <p class="vote">{move || field(|c| format!("Vote: {}", c.vote.clone().unwrap_or_default()))}</p>
                </Show>
                <Show when=move || card.with(|c| c.as_ref().is_some_and(|c| c.candidates.len() > 1))>
                    <ul class="card-candidates">{candidates}</ul>
                </Show>
                <Show when=move || !verdicts().is_empty()>
                    <p class="judge-heading">"The judge, each pair asked in both orders:"</p>
                    <ul class="card-verdicts">
                        {move || verdicts().into_iter().map(|v| view! { <li>{v}</li> }).collect_view()}
                    </ul>
                </Show>
            </section>
        </Show>
    }
}
