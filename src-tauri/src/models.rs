//! The Models view's commands: the configuration in force (and what the administrator locked),
//! the installed models, choosing them (which reloads the engine), importing from disk and
//! downloading from Hugging Face with progress, and the engine's catalogue of recommended maths
//! models: downloading one makes it the solver, and an installed model that could draft for it
//! is suggested, never set silently.

use std::path::Path;

use k2_engine::decode::plain::CancelToken;
use k2_engine::decode::speculative::compat::{check_installed_draft, suggest_draft};
use k2_engine::error::EngineError;
use k2_engine::install::catalogue::{
    catalogue_problem, find_recommended, recommended_for, MachineMemory, RecommendedFit,
    RecommendedModel, RAM_SHARE,
};
use k2_engine::install::download::{download_model as download, HfFile};
use k2_engine::install::{import_model as import, ImportMode};
use k2_engine::models_dir::{describe_model, list_models, resolve_model_in, ModelInfo};
use serde::Serialize;
use tauri::ipc::Channel;
use tauri::State;

use crate::commands::DesktopState;
use crate::config::Config;
use crate::engine::{effective_models_dir, Engine};

/// The configuration in force and what the administrator fixed.
#[derive(Serialize)]
pub struct ConfigView {
    effective: Config,
    locked: Vec<&'static str>,
}

/// Everything the Models view shows.
#[derive(Serialize)]
pub struct ModelsView {
    #[serde(flatten)]
    config: ConfigView,
    system_path: String,
    user_path: String,
    models_dir: String,
    models: Vec<ModelInfo>,
    /// Devices this build can use.
    devices: Vec<&'static str>,
    /// Configuration files that could not be read.
    problems: Vec<String>,
}

fn view(state: &DesktopState) -> Result<ModelsView, String> {
    let layers = state.layers()?;
    let effective = layers.effective();
    let dir = effective_models_dir(&effective);
    let mut devices = vec!["auto", "cpu"];
    if cfg!(feature = "cuda") {
        devices.push("cuda");
    }
    if cfg!(feature = "metal") {
        devices.push("metal");
    }
    Ok(ModelsView {
        config: ConfigView {
            locked: layers.locked(),
            effective,
        },
        system_path: layers.system_path.display().to_string(),
        user_path: layers.user_path.display().to_string(),
        models_dir: dir.display().to_string(),
        models: list_models(&dir),
        devices,
        problems: layers.problems.clone(),
    })
}

/// The configuration alone: what the page needs at start (student mode), without reading
/// every installed model's header as the Models view does.
#[tauri::command]
pub fn app_config(state: State<'_, DesktopState>) -> Result<ConfigView, String> {
    let layers = state.layers()?;
    Ok(ConfigView {
        effective: layers.effective(),
        locked: layers.locked(),
    })
}

#[tauri::command]
pub fn models_view(state: State<'_, DesktopState>) -> Result<ModelsView, String> {
    view(&state)
}

/// Keeps the user's choices and loads the engine again with them (runs in flight finish on
/// the models they started with).
#[tauri::command]
pub fn save_config(state: State<'_, DesktopState>, config: Config) -> Result<ModelsView, String> {
    let effective = {
        let mut layers = state.layers()?;
        layers.save_user(config)?;
        layers.effective()
    };
    state.replace_engine(Engine::load_in_background(effective));
    view(&state)
}

/// Bytes done and in all, for the progress bar.
#[derive(Clone, Serialize)]
pub struct Progress {
    done: u64,
    total: Option<u64>,
}

/// A progress callback that sends at most a few hundred updates, not one per buffer.
fn reporter(channel: Channel<Progress>) -> impl FnMut(u64, Option<u64>) {
    let mut last = 0u64;
    move |done, total| {
        let step = total.unwrap_or(u64::MAX).max(1) / 200;
        if done == total.unwrap_or(0) || done.saturating_sub(last) >= step.max(1 << 20) {
            last = done;
            let _ = channel.send(Progress { done, total });
        }
    }
}

/// Copies (or links) a `.gguf` file or a Hugging Face folder into the models folder.
#[tauri::command]
pub async fn import_model(
    state: State<'_, DesktopState>,
    path: String,
    link: bool,
    on_progress: Channel<Progress>,
) -> Result<ModelInfo, String> {
    let dir = effective_models_dir(&state.layers()?.effective());
    let mode = if link {
        ImportMode::Link
    } else {
        ImportMode::Copy
    };
    let source = std::path::PathBuf::from(path.trim());
    tauri::async_runtime::spawn_blocking(move || {
        import(&source, &dir, mode, &mut reporter(on_progress)).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Downloads a model file from Hugging Face (resuming an earlier attempt) into the models
/// folder, checking its checksum.
#[tauri::command]
pub async fn download_model(
    state: State<'_, DesktopState>,
    file: HfFile,
    on_progress: Channel<Progress>,
) -> Result<ModelInfo, String> {
    let dir = effective_models_dir(&state.layers()?.effective());
    tauri::async_runtime::spawn_blocking(move || {
        download(&file, &dir, &mut reporter(on_progress), &CancelToken::new())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// A catalogue entry as the Models view shows it: the engine's entry and its fit on this
/// machine, and the name it is installed under where its file is in the models folder.
#[derive(Serialize)]
pub struct RecommendedEntry {
    #[serde(flatten)]
    fit: RecommendedFit,
    installed: Option<String>,
}

/// The "Recommended for maths" section.
#[derive(Serialize)]
pub struct RecommendedView {
    machine: MachineMemory,
    /// The share of the machine's memory a model may take (what "fits" means).
    ram_share: f64,
    models: Vec<RecommendedEntry>,
    /// Why the `K2_CATALOGUE_EXTRA` file was left out, if it was.
    problem: Option<String>,
}

/// The installed model that is `model`'s file, if any.
fn installed_as<'a>(model: &RecommendedModel, installed: &'a [ModelInfo]) -> Option<&'a ModelInfo> {
    let file = model.installed_name()?;
    installed
        .iter()
        .find(|m| m.path.file_name().is_some_and(|n| n == file))
}

#[tauri::command]
pub async fn recommended_models(state: State<'_, DesktopState>) -> Result<RecommendedView, String> {
    let dir = effective_models_dir(&state.layers()?.effective());
    // Reading every model's header and asking nvidia-smi take a moment: off the main thread.
    tauri::async_runtime::spawn_blocking(move || {
        let installed = list_models(&dir);
        let machine = MachineMemory::detect();
        let models = recommended_for(machine)
            .into_iter()
            .map(|fit| RecommendedEntry {
                installed: installed_as(&fit.model, &installed).map(|m| m.name.clone()),
                fit,
            })
            .collect();
        RecommendedView {
            machine,
            ram_share: RAM_SHARE,
            models,
            problem: catalogue_problem().map(str::to_owned),
        }
    })
    .await
    .map_err(|e| e.to_string())
}

/// What choosing a solver did: the model, whether it is now the solver (not where the
/// administrator fixed the solver), a draft turned off because it cannot draft for it, and an
/// installed model offered as its draft.
#[derive(Serialize)]
pub struct SolverChosen {
    model: ModelInfo,
    solver_set: bool,
    /// Why the solver was left as it was.
    note: Option<String>,
    /// A sentence saying which configured draft was turned off, and why.
    draft_dropped: Option<String>,
    suggested_draft: Option<String>,
    view: ModelsView,
}

/// Downloads the recommended model `name` (resuming, checked against its pinned SHA-256, else
/// Hugging Face's) and makes it the solver.
#[tauri::command]
pub async fn download_recommended(
    state: State<'_, DesktopState>,
    name: String,
    on_progress: Channel<Progress>,
) -> Result<SolverChosen, String> {
    let model = find_recommended(&name)
        .ok_or_else(|| format!("{name} is not in the list of recommended models"))?;
    let file = model.hf_file().ok_or_else(|| {
        format!(
            "{} has no published file to download. {}",
            model.name,
            model.notes.join(" ")
        )
    })?;
    let dir = effective_models_dir(&state.layers()?.effective());
    // Installed meanwhile (the other download form, another window): files only appear under
    // their name once complete and checked, so the one there is used as it is.
    let existing = model.installed_name().map(|name| dir.join(name));
    let info = tauri::async_runtime::spawn_blocking(move || match existing {
        Some(path) if path.exists() => describe_model(&path).map_err(|e| e.to_string()),
        _ => download(&file, &dir, &mut reporter(on_progress), &CancelToken::new())
            .map_err(|e| e.to_string()),
    })
    .await
    .map_err(|e| e.to_string())??;
    choose_solver(&state, info).await
}

/// Makes the installed model `name` the solver.
#[tauri::command]
pub async fn use_solver(
    state: State<'_, DesktopState>,
    name: String,
) -> Result<SolverChosen, String> {
    let dir = effective_models_dir(&state.layers()?.effective());
    let info = resolve_model_in(&name, &dir)
        .and_then(|path| describe_model(&path))
        .map_err(|e| e.to_string())?;
    choose_solver(&state, info).await
}

/// Sets `model` as the user's solver and reloads the engine. A configured draft that cannot
/// draft for it is turned off (else the engine would refuse to load); with no draft left, an
/// installed model that could draft for it is suggested for the user to accept.
async fn choose_solver(state: &DesktopState, model: ModelInfo) -> Result<SolverChosen, String> {
    let (effective, locked) = {
        let layers = state.layers()?;
        (layers.effective(), layers.locked())
    };
    if locked.contains(&"solver") {
        return Ok(SolverChosen {
            model,
            solver_set: false,
            note: Some("The solver is set by your administrator, so it was left as it is.".into()),
            draft_dropped: None,
            suggested_draft: None,
            view: view(state)?,
        });
    }
    let dir = effective_models_dir(&effective);
    let draft_locked = locked.contains(&"draft");
    let current_draft = effective.draft.clone();
    let target = model.clone();
    // Reading tokenizers of several models: off the main thread.
    let (draft_dropped, suggested_draft) = tauri::async_runtime::spawn_blocking(move || {
        let dropped = match &current_draft {
            Some(draft) if !draft_locked => cannot_draft(&target, draft, &dir)
                .map(|why| format!("The draft {draft} was turned off: {why}.")),
            _ => None,
        };
        let no_draft_left = current_draft.is_none() || dropped.is_some();
        let suggested = (no_draft_left && !draft_locked)
            .then(|| suggest_draft(&target, &list_models(&dir)))
            .flatten()
            .map(|m| m.name);
        (dropped, suggested)
    })
    .await
    .map_err(|e| e.to_string())?;
    let effective = {
        let mut layers = state.layers()?;
        let mut user = layers.user.clone();
        user.solver = Some(model.name.clone());
        if draft_dropped.is_some() {
            user.draft = None;
        }
        layers.save_user(user)?;
        layers.effective()
    };
    state.replace_engine(Engine::load_in_background(effective));
    Ok(SolverChosen {
        model,
        solver_set: true,
        note: None,
        draft_dropped,
        suggested_draft,
        view: view(state)?,
    })
}

/// Why the configured draft `draft` cannot draft for `target`, or `None` when it can.
fn cannot_draft(target: &ModelInfo, draft: &str, dir: &Path) -> Option<String> {
    let draft = match resolve_model_in(draft, dir).and_then(|path| describe_model(&path)) {
        Ok(draft) => draft,
        Err(e) => return Some(e.to_string()),
    };
    if draft.path == target.path {
        return Some("it is the solver itself".into());
    }
    match check_installed_draft(target, &draft) {
        Ok(()) => None,
        // The engine's message ends with advice for the command line; the reason is enough.
        Err(EngineError::IncompatibleDraft { reason, .. }) => {
            Some(format!("it cannot draft for {}: {reason}", target.name))
        }
        Err(e) => Some(e.to_string()),
    }
}
