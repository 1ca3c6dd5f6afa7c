//! The student's hint ladder: the run's `hint` events (written for teaching after the answer
//! was chosen, screened so that no rung but the last gives an answer away), opened one at a
//! time. The last rung, the worked solution, is marked as giving the answer away. The lab
//! configuration's `hint_levels` caps how many a student may open; each rung opened is kept
//! in the run's history (`HistoryRequest::OpenHint`), so a teacher sees it in Review.

use k2_protocol::{Hint, HintScreen, HistoryRequest, Stage};
use k2_render::markdown_to_html;
use leptos::prelude::*;

use crate::app::RunState;
use crate::transport;

/// The label of a rung's button. `teaching` is the number of rungs before the worked
/// solution, once the whole ladder has arrived (while it is written, the count is unknown).
fn open_label(next: &Hint, teaching: Option<usize>) -> String {
    let of = teaching.map_or(String::new(), |n| format!(" of {n}"));
    if next.bottom_out {
        "Show the worked solution (gives the answer away)".into()
    } else if next.level == 1 {
        format!("Show a hint (1{of})")
    } else {
        format!("Another hint ({}{of})", next.level)
    }
}

/// The rungs before the worked solution, when the ladder is complete.
fn teaching_rungs(hints: &[Hint]) -> Option<usize> {
    hints
        .iter()
        .any(|h| h.bottom_out)
        .then(|| hints.iter().filter(|h| !h.bottom_out).count())
}

/// The heading of an opened rung.
fn rung_heading(hint: &Hint) -> String {
    if hint.bottom_out {
        "Worked solution".into()
    } else {
        format!(
            "Hint {}: {}",
            hint.level,
            match hint.level {
                1 => "what to notice",
                2 => "an approach",
                _ => "the next step",
            }
        )
    }
}

fn screen_note(hint: &Hint) -> &'static str {
    match hint.screened {
        None => "",
        Some(HintScreen::Rewritten) => "Reworded: the first version gave a result away.",
        Some(HintScreen::Cut) => "Shortened: part of it gave a result away.",
    }
}

/// One opened rung.
fn rung(hint: &Hint) -> impl IntoView {
    let note = screen_note(hint);
    view! {
        <article class="hint" class:bottom-out=hint.bottom_out data-level=hint.level.to_string()>
            <h3>{rung_heading(hint)}</h3>
            {if hint.text.is_empty() {
                // A student's stream carries the rung without its text: it comes once opened.
                view! { <p class="muted opening">"Opening…"</p> }.into_any()
            } else {
                view! { <div class="markdown" inner_html=markdown_to_html(&hint.text)></div> }.into_any()
            }}
            {(!note.is_empty()).then(|| view! { <p class="muted screened">{note}</p> })}
        </article>
    }
}

/// The history's answer to an opened rung: the levels opened so far and the rung itself, whose
/// text a student-mode stream from `k2 serve` left out.
#[derive(serde::Deserialize)]
struct Opened {
    hint: Option<Hint>,
}

/// Keeps the opening in the run's history, where Review shows it, and puts the rung's text the
/// history answers into the view (a student's stream carries rungs without their text). The
/// ladder works without the history where the page has the text (a run not kept): a failure
/// then is only logged; a rung still without its text says why it stays empty.
fn keep_opened(
    state: RunState,
    token: RwSignal<String>,
    hint: &Hint,
    failure: RwSignal<Option<String>>,
) {
    let Some(run) = state.stored.get_untracked() else {
        return;
    };
    let request = HistoryRequest::OpenHint {
        run,
        level: hint.level,
    };
    let level = hint.level;
    transport::history(&token.get_untracked(), &request, move |result| {
        // Only if the page still shows that run.
        if state.stored.get_untracked() != Some(run) {
            return;
        }
        match result {
            Ok(json) => {
                // The rung's text, where the server answers it (`{"levels": […], "hint": …}`).
                let text = serde_json::from_str::<Opened>(&json)
                    .ok()
                    .and_then(|o| o.hint);
                if let Some(text) = text {
                    failure.set(None);
                    state.view.update(|v| {
                        if let Some(rung) = v.hints.iter_mut().find(|h| h.level == text.level) {
                            *rung = text;
                        }
                    });
                }
                crate::record::reload(state, token);
            }
            Err(e) => {
                let missing = state.view.with_untracked(|v| {
                    v.hints
                        .iter()
                        .any(|h| h.level == level && h.text.is_empty())
                });
                if missing {
                    failure.set(Some(format!("This hint cannot be opened: {e}")));
                } else {
                    leptos::logging::warn!("the opened hint was not kept: {e}");
                }
            }
        }
    });
}

#[component]
pub fn HintLadder(
    state: RunState,
    token: RwSignal<String>,
    /// The most rungs a student may open (the lab configuration), `None`: all.
    cap: RwSignal<Option<u32>>,
) -> impl IntoView {
    let opened = RwSignal::new(0usize);
    // Each run starts with no hint open: reset when a new run begins (its view is cleared),
    // not on every event it streams, so hints open while the run is still going.
    let fresh = Memo::new(move |_| state.view.with(|v| v.events == 0));
    Effect::new(move |_| {
        if fresh.get() {
            opened.set(0);
        }
    });
    let hints = move || state.view.with(|v| v.hints.clone());
    let allowed = move || cap.get().map_or(usize::MAX, |c| c as usize);
    let shown = move || {
        let hints = hints();
        let n = opened.get().min(hints.len()).min(allowed());
        hints.into_iter().take(n).collect::<Vec<_>>()
    };
    let next = move || {
        let hints = hints();
        let n = opened.get();
        (n < allowed()).then(|| hints.get(n).cloned()).flatten()
    };
    let capped = move || {
        let n = opened.get();
        n >= allowed() && n < state.view.with(|v| v.hints.len())
    };
    let waiting = move || {
        state.view.with(|v| {
            v.hints.is_empty()
                && !v.is_finished()
                && v.request.as_ref().is_some_and(|r| r.settings.hints)
        })
    };
    // A run solved outside student mode (a teacher's, or an older one) has no ladder.
    let none_written = move || {
        state
            .view
            .with(|v| v.hints.is_empty() && v.request.as_ref().is_some_and(|r| !r.settings.hints))
    };
    let failure = RwSignal::new(None::<String>);
    let open = move |_| {
        let Some(hint) = next() else { return };
        opened.update(|n| *n += 1);
        keep_opened(state, token, &hint, failure);
    };
    let held = move || state.held_for_test();
    let visible = move || state.student.get() && state.view.with(|v| v.request.is_some());
    view! {
        <Show when=visible>
            <section id="hints" class="panel hints">
                <h2>"Hints"</h2>
                <For each=shown key=|h| (h.level, h.text.clone()) let:hint>
                    {rung(&hint)}
                </For>
                <Show when=move || waiting() && !held()>
                    <p id="hints-waiting" class="muted">
                        {move || if state.view.with(|v| v.stage == Some(Stage::Hinting)) {
                            "Your hints are being written now."
                        } else {
                            "Hints are written once the tutor has solved and checked the problem \
                             (a minute or two on this computer). Try it yourself meanwhile."
                        }}
                    </p>
                </Show>
                <Show when=none_written>
                    <p id="hints-none" class="muted">
                        "No hints were written for this run: it was solved outside student mode."
                    </p>
                </Show>
                <Show when=move || next().is_some()>
                    <button id="hint" class:bottom-out=move || next().is_some_and(|h| h.bottom_out)
                        disabled=held on:click=open>
                        {move || next().map(|h| open_label(&h, teaching_rungs(&hints()))).unwrap_or_default()}
                    </button>
                </Show>
                <Show when=held>
                    <p id="hints-test" class="muted">
                        "No hints during a test: your teacher turned them off until it ends."
                    </p>
                </Show>
                <Show when=move || failure.get().is_some()>
                    <p id="hint-failure" class="error" role="alert">
                        {move || failure.get().unwrap_or_default()}
                    </p>
                </Show>
                <Show when=capped>
                    <p id="hints-capped" class="muted">
                        {move || format!("Your teacher allows {} hint(s) on a problem.", allowed())}
                    </p>
                </Show>
            </section>
        </Show>
    }
}
