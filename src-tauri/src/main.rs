//! K2 Tutor's desktop app: the UI of `ui/` in a Tauri window, the engine and the session
//! store in this process. The window opens at once; the model loads behind it, and a run
//! started meanwhile waits for it.

// No console window beside the app on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod commands;
mod config;
mod engine;
mod history;
mod models;

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("K2_LOG").unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let layers = config::Layers::load();
    let engine = engine::Engine::load_in_background(layers.effective());
    // K2_DB overrides where runs are kept (tests); the default is the user's data directory.
    let store = tauri::async_runtime::block_on(async {
        match std::env::var_os("K2_DB") {
            Some(path) => k2_store::Store::open(path).await,
            None => k2_store::Store::open_default().await,
        }
    });
    let store = store
        .map_err(|e| tracing::error!("runs will not be kept: {e}"))
        .ok();
    let state = commands::DesktopState::new(engine, layers, store);
    let result = tauri::Builder::default()
        .manage(state)
        .invoke_handler(tauri::generate_handler![
            commands::start_run,
            commands::cancel_run,
            commands::engine_status,
            history::history,
            models::app_config,
            models::models_view,
            models::save_config,
            models::import_model,
            models::download_model,
            models::recommended_models,
            models::download_recommended,
            models::use_solver
        ])
        .run(tauri::generate_context!());
    if let Err(error) = result {
        eprintln!("K2 Tutor could not start its window: {error}");
        std::process::exit(1);
    }
}
