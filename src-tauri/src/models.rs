//! The Models view's commands: the configuration in force (and what the administrator locked),
//! the installed models, choosing them (which reloads the engine), importing from disk and
//! downloading from Hugging Face with progress.

use k2_engine::decode::plain::CancelToken;
use k2_engine::install::download::{download_model as download, HfFile};
use k2_engine::install::{import_model as import, ImportMode};
use k2_engine::models_dir::{list_models, ModelInfo};
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
