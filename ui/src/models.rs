//! The Models view (desktop app only): the installed models, which ones solve, plan and draft,
//! the device or a classroom server, the recommended maths models (`recommended.rs`),
//! importing a model from disk and downloading one from Hugging Face with progress. Keys the
//! lab administrator fixed are shown, not editable.

use k2_protocol::AppConfig as Config;
use leptos::prelude::*;
use serde::Deserialize;
use wasm_bindgen::JsCast;

use crate::recommended::Recommended;
use crate::transport::{desktop_command, desktop_command_with_progress, in_desktop_app};

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub(crate) struct ModelInfo {
    pub(crate) name: String,
    pub(crate) size_bytes: u64,
    architecture: String,
    quantization: String,
    context_length: Option<usize>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub(crate) struct ConfigView {
    pub(crate) effective: Config,
    pub(crate) locked: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub(crate) struct ModelsView {
    #[serde(flatten)]
    pub(crate) config: ConfigView,
    system_path: String,
    models_dir: String,
    models: Vec<ModelInfo>,
    devices: Vec<String>,
    problems: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
struct EngineStatus {
    state: String,
    device: Option<String>,
    /// The models loaded: the solver, and the planner and judge where it is another.
    solver: Option<String>,
    planner: Option<String>,
    message: Option<String>,
}

impl EngineStatus {
    /// "Ready on cpu: solving with X; the solver also plans and judges." Names what is
    /// loaded, so "default" in the choices below never hides which model that is.
    fn describe(self) -> String {
        match self.state.as_str() {
            "ready" => {
                let mut line = format!("Ready on {}", self.device.unwrap_or_default());
                if let Some(solver) = self.solver {
                    line.push_str(&format!(": solving with {solver}"));
                    match self.planner {
                        Some(planner) => {
                            line.push_str(&format!("; planning and judging with {planner}."))
                        }
                        None => line.push_str("; the solver also plans and judges."),
                    }
                } else {
                    line.push('.');
                }
                line
            }
            "loading" => "Loading the models…".to_owned(),
            _ => format!(
                "The models could not be loaded: {}",
                self.message.unwrap_or_default()
            ),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Deserialize)]
pub(crate) struct Progress {
    pub(crate) done: u64,
    pub(crate) total: Option<u64>,
}

impl Progress {
    /// " 1.2 GB of 3.4 GB", or " 1.2 GB" while the total is unknown.
    pub(crate) fn label(self) -> String {
        match self.total {
            Some(total) => format!(" {} of {}", size(self.done), size(total)),
            None => format!(" {}", size(self.done)),
        }
    }
}

pub(crate) fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1_000_000_000 => format!("{:.1} GB", b as f64 / 1e9),
        b => format!("{:.0} MB", b as f64 / 1e6),
    }
}

fn blank_is_none(text: String) -> Option<String> {
    let text = text.trim().to_owned();
    (!text.is_empty()).then_some(text)
}

/// Applies the configuration's student mode to the page (and locks it when the administrator
/// set it; else only where no choice was remembered), and its cap on hints. Runs at start in
/// the desktop app.
pub fn apply_student_mode(
    student: RwSignal<bool>,
    locked: RwSignal<bool>,
    hint_cap: RwSignal<Option<u32>>,
) {
    if !in_desktop_app() {
        return;
    }
    desktop_command("app_config", serde_json::json!({}), move |result| {
        if let Ok(view) =
            result.and_then(|j| serde_json::from_str::<ConfigView>(&j).map_err(|e| e.to_string()))
        {
            let is_locked = view.locked.iter().any(|k| k == "student_mode");
            // Locked: the administrator's choice. Otherwise the configuration only sets the
            // default, and what was chosen on this machine last is kept.
            if let Some(on) = view.effective.student_mode {
                if is_locked || crate::student::remembered_choice().is_none() {
                    student.set(on);
                }
            }
            locked.set(is_locked);
            hint_cap.set(view.effective.hint_levels);
        }
    });
}

#[component]
pub fn Models() -> impl IntoView {
    let open = RwSignal::new(false);
    let view_state = RwSignal::new(None::<ModelsView>);
    let form = RwSignal::new(Config::default());
    let status = RwSignal::new(None::<EngineStatus>);
    let message = RwSignal::new(None::<String>);
    let progress = RwSignal::new(None::<Progress>);
    // The recommended model being downloaded: its progress shows in its entry instead.
    let recommended_download = RwSignal::new(None::<String>);
    let import_path = RwSignal::new(String::new());
    let link = RwSignal::new(false);
    let repo = RwSignal::new(String::new());
    let file = RwSignal::new(String::new());
    let sha256 = RwSignal::new(String::new());

    let refresh = move || {
        desktop_command(
            "models_view",
            serde_json::json!({}),
            move |result| match result
                .and_then(|j| serde_json::from_str::<ModelsView>(&j).map_err(|e| e.to_string()))
            {
                Ok(view) => {
                    form.set(view.config.effective.clone());
                    view_state.set(Some(view));
                }
                Err(e) => message.set(Some(format!("Models are unavailable: {e}"))),
            },
        );
    };
    // The engine's state, polled while it loads.
    let poll = move || {
        fn tick(status: RwSignal<Option<EngineStatus>>) {
            desktop_command("engine_status", serde_json::json!({}), move |result| {
                let now = result
                    .ok()
                    .and_then(|j| serde_json::from_str::<EngineStatus>(&j).ok());
                let loading = now.as_ref().is_some_and(|s| s.state == "loading");
                status.set(now);
                if loading {
                    let again = wasm_bindgen::closure::Closure::once_into_js(move || tick(status));
                    if let Some(window) = web_sys::window() {
                        let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(
                            again.unchecked_ref(),
                            500,
                        );
                    }
                }
            });
        }
        tick(status);
    };
    let toggle = move |_| {
        open.update(|o| *o = !*o);
        if open.get_untracked() {
            refresh();
            poll();
        }
    };
    let locked = move |key: &'static str| {
        view_state.with(|v| {
            v.as_ref()
                .is_some_and(|v| v.config.locked.iter().any(|k| k == key))
        })
    };
    let save = move || {
        message.set(None);
        let config = serde_json::to_value(form.get_untracked()).unwrap_or_default();
        desktop_command(
            "save_config",
            serde_json::json!({ "config": config }),
            move |result| match result
                .and_then(|j| serde_json::from_str::<ModelsView>(&j).map_err(|e| e.to_string()))
            {
                Ok(view) => {
                    form.set(view.config.effective.clone());
                    view_state.set(Some(view));
                    message.set(Some("Saved. The models are loading again.".into()));
                    poll();
                }
                Err(e) => message.set(Some(format!("Not saved: {e}"))),
            },
        );
    };
    // The recommended section changed the solver, or the user took its draft suggestion.
    let on_chosen = Callback::new(move |view: ModelsView| {
        form.set(view.config.effective.clone());
        view_state.set(Some(view));
        poll();
    });
    let accept_draft = Callback::new(move |draft: String| {
        form.update(|f| f.draft = Some(draft));
        save();
    });
    let installed = move |result: Result<String, String>| {
        progress.set(None);
        match result.and_then(|j| serde_json::from_str::<ModelInfo>(&j).map_err(|e| e.to_string()))
        {
            Ok(model) => {
                message.set(Some(format!(
                    "Installed {} ({}).",
                    model.name,
                    size(model.size_bytes)
                )));
                refresh();
            }
            Err(e) => message.set(Some(format!("Not installed: {e}"))),
        }
    };
    let on_progress = move |json: String| {
        if let Ok(p) = serde_json::from_str::<Progress>(&json) {
            progress.set(Some(p));
        }
    };
    let import = move || {
        message.set(None);
        progress.set(Some(Progress::default()));
        let args = serde_json::json!({ "path": import_path.get_untracked(), "link": link.get_untracked() });
        desktop_command_with_progress("import_model", args, on_progress, installed);
    };
    let download = move || {
        message.set(None);
        progress.set(Some(Progress::default()));
        let wanted = serde_json::json!({
            "repo": repo.get_untracked().trim(),
            "file": file.get_untracked().trim(),
            "sha256": blank_is_none(sha256.get_untracked()),
        });
        desktop_command_with_progress(
            "download_model",
            serde_json::json!({ "file": wanted }),
            on_progress,
            installed,
        );
    };
    let names = move || {
        view_state.with(|v| {
            v.as_ref()
                .map(|v| v.models.iter().map(|m| m.name.clone()).collect::<Vec<_>>())
                .unwrap_or_default()
        })
    };
    let choice = move |id: &'static str,
                       label: &'static str,
                       key: &'static str,
                       get: fn(&Config) -> Option<String>,
                       set: fn(&mut Config, Option<String>),
                       none: &'static str| {
        view! {
            <label>{label}
                <select id=id disabled=move || locked(key)
                    on:change=move |ev| form.update(|f| set(f, blank_is_none(event_target_value(&ev))))>
                    <option value="" selected=move || form.with(|f| get(f).is_none())>{none}</option>
                    {move || names().into_iter().map(|name| {
                        let selected = name.clone();
                        view! { <option value=name.clone()
                            selected=move || form.with(|f| get(f).as_deref() == Some(selected.as_str()))>
                            {name.clone()}</option> }
                    }).collect_view()}
                </select>
                <Show when=move || locked(key)><span class="muted">" (set by your administrator)"</span></Show>
            </label>
        }
    };

    view! {
        <Show when=in_desktop_app>
            <section id="models" class="panel">
                <h2><button id="models-toggle" class="link" on:click=toggle>
                    {move || if open.get() { "Models ▾" } else { "Models ▸" }}
                </button></h2>
                <Show when=move || open.get()>
                    <p id="engine-state" class="muted">{move || status.get().map(EngineStatus::describe).unwrap_or_default()}</p>
                    {move || view_state.with(|v| v.as_ref().map(|v| v.problems.iter().map(|p| view! {
                        <p class="error">{p.clone()}</p>
                    }).collect_view()))}
                    <table id="model-list" class="models">
                        <thead><tr><th>"Model"</th><th>"Size"</th><th>"Architecture"</th>
                            <th>"Quantization"</th><th>"Context"</th></tr></thead>
                        <tbody>
                            {move || view_state.with(|v| v.as_ref().map(|v| v.models.iter().map(|m| view! {
                                <tr><td>{m.name.clone()}</td><td>{size(m.size_bytes)}</td>
                                    <td>{m.architecture.clone()}</td><td>{m.quantization.clone()}</td>
                                    <td>{m.context_length.map(|c| c.to_string()).unwrap_or_default()}</td></tr>
                            }).collect_view()))}
                        </tbody>
                    </table>
                    <p class="muted">{move || view_state.with(|v| v.as_ref().map(|v| format!("In {}", v.models_dir)))}</p>
                    <div class="controls">
                        {choice("solver", "Solver ", "solver", |f| f.solver.clone(), |f, v| f.solver = v, "default")}
                        {choice("planner", "Planner and judge ", "planner", |f| f.planner.clone(), |f, v| f.planner = v, "the solver")}
                        {choice("draft", "Draft ", "draft", |f| f.draft.clone(), |f, v| f.draft = v, "none")}
                        <label>"Device "
                            <select id="device" disabled=move || locked("device")
                                on:change=move |ev| form.update(|f| f.device = blank_is_none(event_target_value(&ev)))>
                                {move || view_state.with(|v| v.as_ref().map(|v| v.devices.clone()).unwrap_or_default())
                                    .into_iter().map(|d| {
                                        let current = d.clone();
                                        view! { <option value=d.clone()
                                            selected=move || form.with(|f| f.device.as_deref().unwrap_or("auto") == current)>
                                            {d.clone()}</option> }
                                    }).collect_view()}
                            </select>
                        </label>
                    </div>
                    <div class="controls">
                        <label>"Classroom server "
                            <input id="remote-url" placeholder="http://lab-server:8000 (empty: this computer)"
                                disabled=move || locked("remote_url")
                                prop:value=move || form.with(|f| f.remote_url.clone().unwrap_or_default())
                                on:change=move |ev| form.update(|f| f.remote_url = blank_is_none(event_target_value(&ev))) />
                        </label>
                        <label>"Token "
                            <input id="remote-token" type="password" disabled=move || locked("remote_token")
                                prop:value=move || form.with(|f| f.remote_token.clone().unwrap_or_default())
                                on:change=move |ev| form.update(|f| f.remote_token = blank_is_none(event_target_value(&ev))) />
                        </label>
                        <button id="save-models" on:click=move |_| save()>"Use these"</button>
                    </div>
                    <Recommended models=view_state progress downloading=recommended_download message
                        on_chosen accept_draft />
                    <h3>"Add a model"</h3>
                    <div class="controls">
                        <input id="import-path" placeholder="/path/to/model.gguf or a Hugging Face folder"
                            prop:value=move || import_path.get()
                            on:input=move |ev| import_path.set(event_target_value(&ev)) />
                        <label><input type="checkbox" id="import-link" prop:checked=move || link.get()
                            on:change=move |ev| link.set(event_target_checked(&ev)) />" link, don't copy"</label>
                        <button id="import" disabled=move || progress.get().is_some()
                            on:click=move |_| import()>"Import"</button>
                    </div>
                    <div class="controls">
                        <input id="hf-repo" placeholder="Hugging Face repository, e.g. Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF"
                            prop:value=move || repo.get() on:input=move |ev| repo.set(event_target_value(&ev)) />
                        <input id="hf-file" placeholder="file, e.g. qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
                            prop:value=move || file.get() on:input=move |ev| file.set(event_target_value(&ev)) />
                        <input id="hf-sha256" placeholder="SHA-256 (optional)"
                            prop:value=move || sha256.get() on:input=move |ev| sha256.set(event_target_value(&ev)) />
                        <button id="download" disabled=move || progress.get().is_some()
                            on:click=move |_| download()>"Download"</button>
                    </div>
                    <Show when=move || progress.get().is_some() && recommended_download.get().is_none()>
                        <progress id="install-progress"
                            max=move || progress.get().and_then(|p| p.total).unwrap_or(0).to_string()
                            value=move || progress.get().map(|p| p.done).unwrap_or(0).to_string()></progress>
                        <span class="muted">{move || progress.get().map(Progress::label)}</span>
                    </Show>
                    <Show when=move || message.get().is_some()>
                        <p id="models-message" role="status">{move || message.get().unwrap_or_default()}</p>
                    </Show>
                    <p class="muted">{move || view_state.with(|v| v.as_ref().filter(|v| !v.config.locked.is_empty())
                        .map(|v| format!("Some settings are fixed by {}.", v.system_path)))}</p>
                </Show>
            </section>
        </Show>
    }
}
