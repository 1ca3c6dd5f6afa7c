//! The Models view's "Recommended for maths" section (desktop app only): the engine's catalogue
//! of maths models with what each needs and whether it fits this computer, a download that
//! makes the model the solver, and, where an installed model could draft for it, a suggestion
//! the user accepts or not (never set silently).
//!
//! The browser build does not show it: `k2 serve` runs the model its operator started it
//! with, and a student's browser cannot install models on that server.
//!
//! Every text from the catalogue goes into the page as text nodes (escaped), never as HTML.

use leptos::prelude::*;
use serde::Deserialize;

use crate::models::{size, ModelInfo, ModelsView, Progress};
use crate::transport::{desktop_command, desktop_command_with_progress};

/// This computer's memory, as the engine measured it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Deserialize)]
struct Machine {
    ram_bytes: Option<u64>,
    gpu_bytes: Option<u64>,
}

/// The fields of the engine's `RecommendedFit` (plus where it is installed) that the page
/// shows; the catalogue itself is the engine's.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
struct Entry {
    name: String,
    family: String,
    params: String,
    bytes: Option<u64>,
    sha256: Option<String>,
    ram_bytes: Option<u64>,
    ram_context_tokens: u64,
    fits: Option<bool>,
    fits_gpu: Option<bool>,
    downloadable: bool,
    why: String,
    notes: Vec<String>,
    /// The installed model's name, where the file is in the models folder.
    installed: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
struct Catalogue {
    machine: Machine,
    ram_share: f64,
    models: Vec<Entry>,
    problem: Option<String>,
}

/// What choosing a solver did (the desktop's `SolverChosen`).
#[derive(Clone, Debug, Deserialize)]
struct SolverChosen {
    model: ModelInfo,
    solver_set: bool,
    note: Option<String>,
    draft_dropped: Option<String>,
    suggested_draft: Option<String>,
    view: ModelsView,
}

/// Where an entry stands on this computer: a CSS class and the words shown.
fn fit_state(entry: &Entry) -> (&'static str, String) {
    match (entry.downloadable, entry.fits) {
        (false, _) => ("fit no-file", "no file published".into()),
        (true, Some(true)) if entry.fits_gpu == Some(true) => {
            ("fit fits", "fits (and fits the GPU)".into())
        }
        (true, Some(true)) => ("fit fits", "fits".into()),
        (true, Some(false)) => ("fit too-large", "too large for this machine".into()),
        (true, None) => ("fit unknown", "memory unknown".into()),
    }
}

fn memory(bytes: Option<u64>) -> String {
    bytes.map(size).unwrap_or_else(|| "unknown".into())
}

/// The section. `models` is the Models view's state (the list reloads when it changes: after
/// any install); `progress` is the one install in progress, shared with the import and
/// download forms, and `downloading` names the entry it belongs to (the forms' own progress
/// bar stays hidden meanwhile); `on_chosen` gets the Models view's state after the solver changed;
/// `accept_draft` makes a model the draft (the Models view's own save).
#[component]
pub fn Recommended(
    models: RwSignal<Option<ModelsView>>,
    progress: RwSignal<Option<Progress>>,
    downloading: RwSignal<Option<String>>,
    message: RwSignal<Option<String>>,
    on_chosen: Callback<ModelsView>,
    accept_draft: Callback<String>,
) -> impl IntoView {
    let catalogue = RwSignal::new(None::<Catalogue>);
    let error = RwSignal::new(None::<String>);
    // The too-large entry whose download waits for a yes.
    let confirming = RwSignal::new(None::<String>);
    // The entry just made the solver and the installed model offered as its draft: shown
    // under that entry, where the user clicked.
    let suggestion = RwSignal::new(None::<(String, String)>);

    let load = move || {
        desktop_command(
            "recommended_models",
            serde_json::json!({}),
            move |result| match result
                .and_then(|j| serde_json::from_str::<Catalogue>(&j).map_err(|e| e.to_string()))
            {
                Ok(list) => {
                    error.set(None);
                    catalogue.set(Some(list));
                }
                Err(e) => error.set(Some(format!("The recommended models are unavailable: {e}"))),
            },
        );
    };
    // Again whenever the installed models may have changed.
    Effect::new(move |_| {
        if models.with(|m| m.is_some()) {
            load();
        }
    });
    let solver =
        move || models.with(|m| m.as_ref().and_then(|m| m.config.effective.solver.clone()));
    let solver_locked = move || {
        models.with(|m| {
            m.as_ref()
                .is_some_and(|m| m.config.locked.iter().any(|k| k == "solver"))
        })
    };

    let chosen = move |entry: String, result: Result<String, String>, installed: bool| {
        progress.set(None);
        downloading.set(None);
        match result
            .and_then(|j| serde_json::from_str::<SolverChosen>(&j).map_err(|e| e.to_string()))
        {
            Ok(done) => {
                let mut said = Vec::new();
                if installed {
                    said.push(format!(
                        "Installed {} ({}).",
                        done.model.name,
                        size(done.model.size_bytes)
                    ));
                }
                if done.solver_set {
                    said.push(format!(
                        "{} is now the solver; the models are loading again.",
                        done.model.name
                    ));
                }
                said.extend(done.note);
                said.extend(done.draft_dropped);
                message.set(Some(said.join(" ")));
                suggestion.set(done.suggested_draft.map(|draft| (entry, draft)));
                on_chosen.run(done.view);
            }
            Err(e) if installed => message.set(Some(format!("Not installed: {e}"))),
            Err(e) => message.set(Some(format!("The solver was not changed: {e}"))),
        }
    };
    let download = move |name: String| {
        confirming.set(None);
        suggestion.set(None);
        message.set(None);
        progress.set(Some(Progress::default()));
        downloading.set(Some(name.clone()));
        desktop_command_with_progress(
            "download_recommended",
            serde_json::json!({ "name": name.clone() }),
            move |json: String| {
                if let Ok(p) = serde_json::from_str::<Progress>(&json) {
                    progress.set(Some(p));
                }
            },
            move |result| chosen(name, result, true),
        );
    };
    // `entry` is the catalogue's name, `installed` the model's in the models folder.
    let use_solver = move |entry: String, installed: String| {
        suggestion.set(None);
        message.set(None);
        desktop_command(
            "use_solver",
            serde_json::json!({ "name": installed }),
            move |result| chosen(entry, result, false),
        );
    };

    let entry_view = move |entry: Entry| {
        let (class, state) = fit_state(&entry);
        let name = entry.name.clone();
        let this = entry.name.clone();
        let is_downloading = move || downloading.with(|d| d.as_deref() == Some(this.as_str()));
        let this = entry.name.clone();
        let is_confirming = move || confirming.with(|c| c.as_deref() == Some(this.as_str()));
        let this = entry.name.clone();
        let offered = move || {
            suggestion.with(|s| {
                s.as_ref()
                    .filter(|(e, _)| *e == this)
                    .map(|(_, d)| d.clone())
            })
        };
        let too_large = entry.fits == Some(false);
        let downloadable = entry.downloadable;
        let unpinned = downloadable && entry.sha256.is_none();
        let actions = match entry.installed.clone() {
            Some(installed) => {
                let current = installed.clone();
                let is_solver = move || solver().as_deref() == Some(current.as_str());
                let entry_name = name.clone();
                view! {
                    <span class="installed">"installed"</span>
                    <Show when=is_solver.clone()
                        fallback=move || {
                            let (entry_name, installed) = (entry_name.clone(), installed.clone());
                            view! {
                                <button class="use-solver"
                                    disabled=move || solver_locked() || progress.with(|p| p.is_some())
                                    on:click=move |_| use_solver(entry_name.clone(), installed.clone())>
                                    "Use as solver"</button>
                            }
                        }>
                        <span class="solver">"the solver"</span>
                    </Show>
                }
                .into_any()
            }
            None => {
                let wanted = name.clone();
                view! {
                    <button class="download-recommended"
                        disabled=move || !downloadable || progress.with(|p| p.is_some())
                        on:click=move |_| {
                            if too_large {
                                confirming.set(Some(wanted.clone()));
                            } else {
                                download(wanted.clone());
                            }
                        }>"Download"</button>
                }
                .into_any()
            }
        };
        let ram = entry.ram_bytes;
        let have = catalogue.with_untracked(|c| c.as_ref().and_then(|c| c.machine.ram_bytes));
        let confirm_name = name.clone();
        let has_notes = !entry.notes.is_empty();
        view! {
            <li class="recommended" data-name=name.clone()>
                <div class="info">
                    <div class="line">
                        <strong class="name">{entry.name.clone()}</strong>
                        <span class="muted">{format!("{} · {}", entry.family, entry.params)}</span>
                        <span class="figure">{format!("file {}", memory(entry.bytes))}</span>
                        <span class="figure">{format!("needs {} RAM", memory(entry.ram_bytes))}</span>
                        <span class=class>{state}</span>
                        {unpinned.then(|| view! { <span class="fit unpinned">"checksum not pinned"</span> })}
                    </div>
                    <p class="why">{entry.why.clone()}</p>
                    <Show when=move || has_notes>
                        <ul class="entry-notes muted">
                            {entry.notes.iter().map(|n| view! { <li>{n.clone()}</li> }).collect_view()}
                        </ul>
                    </Show>
                    <Show when=is_confirming.clone()>
                        <p class="warning" role="alert">
                            {format!(
                                "{} needs about {} of memory; this computer has {}. It may run very \
                                 slowly or fail to load. ",
                                confirm_name, memory(ram), memory(have)
                            )}
                            <button class="confirm-download" on:click={
                                let name = confirm_name.clone();
                                move |_| download(name.clone())
                            }>"Download anyway"</button>
                            " "
                            <button class="link" on:click=move |_| confirming.set(None)>"Cancel"</button>
                        </p>
                    </Show>
                    <Show when=is_downloading.clone()>
                        <progress class="recommended-progress"
                            max=move || progress.get().and_then(|p| p.total).unwrap_or(0).to_string()
                            value=move || progress.get().map(|p| p.done).unwrap_or(0).to_string()></progress>
                        <span class="muted">{move || progress.get().map(Progress::label)}</span>
                    </Show>
                    {move || offered().map(|draft| {
                        let offer = format!(
                            "Use {draft} as draft? Faster, same answers: it proposes tokens the \
                             solver checks. "
                        );
                        view! {
                        <p id="draft-suggestion" class="notice" role="status">
                            {offer}
                            <button id="accept-draft" on:click=move |_| {
                                suggestion.set(None);
                                accept_draft.run(draft.clone());
                            }>"Use as draft"</button>
                            " "
                            <button id="decline-draft" class="link" on:click=move |_| suggestion.set(None)>
                                "No, thanks"</button>
                        </p>
                        }
                    })}
                </div>
                <div class="actions">{actions}</div>
            </li>
        }
    };

    view! {
        <h3>"Recommended for maths"</h3>
        <p class="muted" id="machine-memory">{move || catalogue.with(|c| c.as_ref().map(|c| format!(
            "This computer: {} of memory{}; a model may use {:.0}% of it (RAM needed at {} tokens of context).",
            memory(c.machine.ram_bytes),
            c.machine.gpu_bytes.map(|g| format!(", a GPU with {}", size(g))).unwrap_or_default(),
            c.ram_share * 100.0,
            c.models.first().map(|m| m.ram_context_tokens).unwrap_or_default(),
        )))}</p>
        {move || error.get().map(|e| view! { <p class="error">{e}</p> })}
        {move || catalogue.with(|c| c.as_ref().and_then(|c| c.problem.clone()))
            .map(|p| view! { <p class="error">{p}</p> })}
        <ul id="recommended" class="recommended-list">
            {move || catalogue.get().map(|c| c.models.into_iter().map(entry_view).collect_view())}
        </ul>
    }
}
