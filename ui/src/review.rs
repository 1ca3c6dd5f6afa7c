//! Teacher review of a kept run (opened from History, or a live run once it ends): step
//! through it stage by stage, read and add notes at any point, export it.
//!
//! Stepping replays a prefix of the stored events into the solve view, so each step shows
//! exactly what the student saw at the end of that stage.

use std::rc::Rc;

use k2_protocol::{
    stage_steps as steps, Event, HistoryRequest, NewNote, RunView, Stage, StageStep,
};
use leptos::prelude::*;
use serde::Deserialize;

use crate::app::RunState;
use crate::transport;

fn step_name(step: &StageStep) -> &'static str {
    match step.stage {
        Some(Stage::Planning) => "the plan",
        Some(Stage::Solving) => "the candidates",
        Some(Stage::Verifying) => "the verification",
        Some(Stage::Hinting) => "the hints",
        Some(Stage::Done) | None => "the whole run",
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
struct Note {
    seq: Option<i64>,
    author: Option<String>,
    text: String,
}

fn parse_notes(json: &str) -> Vec<Note> {
    serde_json::from_str(json).unwrap_or_default()
}

/// An exported run as the history answers it: a file the browser downloads, or where the
/// desktop app saved it.
#[derive(Deserialize)]
#[serde(untagged)]
enum Exported {
    Saved {
        path: String,
    },
    File {
        file_name: String,
        media_type: String,
        content: String,
    },
}

/// Delivers an export answer; says where it went.
pub(crate) fn deliver(json: &str) -> Result<String, String> {
    match serde_json::from_str(json).map_err(|e| format!("unreadable export: {e}"))? {
        Exported::Saved { path } => Ok(format!("Saved to {path}")),
        Exported::File {
            file_name,
            media_type,
            content,
        } => {
            transport::download(&file_name, &media_type, &content);
            Ok(format!("Downloaded {file_name}"))
        }
    }
}

#[component]
pub fn Review(state: RunState, token: RwSignal<String>) -> impl IntoView {
    let events: RwSignal<Rc<Vec<Event>>, LocalStorage> = RwSignal::new_local(Rc::new(Vec::new()));
    let step = RwSignal::new(0usize);
    let notes = RwSignal::new(Vec::<Note>::new());
    let draft = RwSignal::new(String::new());
    let whole_run = RwSignal::new(false);
    let message = RwSignal::new(None::<String>);
    let all_steps = move || events.with(|e| steps(e));
    // The teacher's, and a student's once the solution is shown (stepping and export; notes
    // and corrections stay the teacher's). The loading below runs either way, so a run opened
    // from History shows.
    let reviewable =
        move || state.stored.get().is_some() && !state.running.get() && state.solution_visible();
    let teacher = move || state.teacher_tools();

    // A kept run that is not streaming: a live run that just ended steps through the events
    // it streamed (the store may still be writing its last ones); a run opened from History
    // loads its events and shows them. Either way, its notes are loaded.
    Effect::new(move |_| {
        // A revealed run: its events are whole now (`crate::student`), step through those.
        state.revealed.track();
        let (Some(run), false) = (state.stored.get(), state.running.get()) else {
            events.set(Rc::new(Vec::new()));
            notes.set(Vec::new());
            return;
        };
        message.set(None);
        let streamed = state.log.with_value(|log| log.clone());
        if streamed.is_empty() {
            let request = HistoryRequest::Events { run };
            transport::history(&token.get_untracked(), &request, move |result| match result
                .and_then(|json| {
                    serde_json::from_str::<Vec<Event>>(&json).map_err(|e| e.to_string())
                }) {
                Ok(loaded) => {
                    step.set(steps(&loaded).len() - 1);
                    state.view.set(RunView::replay(&loaded));
                    events.set(Rc::new(loaded));
                }
                Err(e) => message.set(Some(format!("This run cannot be opened: {e}"))),
            });
        } else {
            step.set(steps(&streamed).len() - 1);
            events.set(Rc::new(streamed));
        }
        // Notes are the teacher's: a student's token is refused them.
        if state.is_student() {
            notes.set(Vec::new());
            return;
        }
        let request = HistoryRequest::Notes { run };
        transport::history(
            &token.get_untracked(),
            &request,
            move |result| match result {
                Ok(json) => notes.set(parse_notes(&json)),
                Err(e) => message.set(Some(format!("Notes are unavailable: {e}"))),
            },
        );
    });

    let show = move |k: usize| {
        let Some(target) = all_steps().get(k).cloned() else {
            return;
        };
        step.set(k);
        events.with_untracked(|e| state.view.set(RunView::replay(&e[..target.events])));
    };
    // The event a note written now refers to: the last one on screen.
    let current_seq = move || {
        let shown = all_steps().get(step.get()).map_or(0, |s| s.events);
        events.with(|e| shown.checked_sub(1).and_then(|i| e.get(i)).map(|e| e.seq))
    };
    let add_note = move || {
        let text = draft.get_untracked();
        let Some(run) = state.stored.get_untracked() else {
            return;
        };
        if text.trim().is_empty() {
            return;
        }
        let seq = if whole_run.get_untracked() {
            None
        } else {
            current_seq()
        };
        let note = NewNote {
            seq,
            author: None,
            text,
        };
        let request = HistoryRequest::AddNote { run, note };
        transport::history(
            &token.get_untracked(),
            &request,
            move |result| match result {
                Ok(json) => {
                    notes.set(parse_notes(&json));
                    draft.set(String::new());
                }
                Err(e) => message.set(Some(format!("The note was not kept: {e}"))),
            },
        );
    };
    let export = move |format: &'static str| {
        if let Some(run) = state.stored.get_untracked() {
            let request = HistoryRequest::Export {
                run,
                format: format.into(),
            };
            transport::history(&token.get_untracked(), &request, move |result| {
                message.set(Some(match result.and_then(|json| deliver(&json)) {
                    Ok(done) => done,
                    Err(e) => format!("The export failed: {e}"),
                }))
            });
        }
    };
    let step_label = move |seq: Option<i64>| -> String {
        let Some(seq) = seq else {
            return "whole run".into();
        };
        let shown = seq as usize + 1;
        all_steps().iter().find(|s| s.events >= shown).map_or_else(
            || format!("event {seq}"),
            |s| format!("at {}", step_name(s)),
        )
    };

    view! {
        <Show when=reviewable>
            <section id="review" class="panel">
                <h2>"Review"</h2>
                <div class="controls stepper">
                    <button id="step-back" disabled=move || step.get() == 0
                        on:click=move |_| show(step.get_untracked().saturating_sub(1))>"◀ Stage"</button>
                    <span id="step-label">{move || {
                        let all = all_steps();
                        let k = step.get().min(all.len().saturating_sub(1));
                        all.get(k).map(|s| format!("{} of {}: {}", k + 1, all.len(), step_name(s)))
                            .unwrap_or_default()
                    }}</span>
                    <button id="step-next" disabled=move || { step.get() + 1 >= all_steps().len() }
                        on:click=move |_| show(step.get_untracked() + 1)>"Stage ▶"</button>
                    <span class="spacer"></span>
                    <button id="export-md" on:click=move |_| export("markdown")>"Export Markdown"</button>
                    <button id="export-html" on:click=move |_| export("html")>"Export HTML"</button>
                </div>
                <crate::record::StudentWork state=state />
                <Show when=teacher>
                <crate::record::CorrectAnswer state=state token=token />
                <h3>"Notes"</h3>
                <ul id="notes" class="notes">
                    <For each=move || notes.get().into_iter().enumerate()
                        key=|(i, n)| (*i, n.text.clone()) let:item>
                        <li>
                            <span class="muted">{step_label(item.1.seq)}
                                {item.1.author.clone().map(|a| format!(" · {a}"))}": "</span>
                            {item.1.text.clone()}
                        </li>
                    </For>
                </ul>
                <div class="controls">
                    <input id="note-text" placeholder="A note for the student at this point"
                        prop:value=move || draft.get()
                        on:input=move |ev| draft.set(event_target_value(&ev))
                        on:keydown=move |ev| if ev.key() == "Enter" { add_note() } />
                    <label><input type="checkbox" id="note-whole"
                        prop:checked=move || whole_run.get()
                        on:change=move |ev| whole_run.set(event_target_checked(&ev)) />
                        " on the whole run"</label>
                    <button id="add-note" on:click=move |_| add_note()>"Add note"</button>
                </div>
                </Show>
                <Show when=move || message.get().is_some()>
                    <p id="review-message" class="muted" role="status">
                        {move || message.get().unwrap_or_default()}
                    </p>
                </Show>
            </section>
        </Show>
    }
}
