//! What the UI can ask of the app (Tauri commands): start a run, whose events stream back over
//! a channel and are stored as they come (the session store, SQLite); stop it; ask whether the
//! engine is ready. The history commands are in `history.rs`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use k2_engine::generate::CancelToken;
use k2_protocol::{Event, RunEvent, RunRequest};
use k2_scaffold::pipeline::Pipeline;
use k2_store::{RunConfig, RunRecorder, Store};
use serde::Serialize;
use tauri::ipc::Channel;
use tauri::State;

use crate::config::Layers;
use crate::engine::Engine;

/// The session the desktop app files its runs under when the request names none.
const SESSION: &str = "Desktop";

pub struct DesktopState {
    /// Replaced when the Models view changes the models; runs keep the one they started on.
    engine: Mutex<Engine>,
    layers: Mutex<Layers>,
    /// `None` when the database could not be opened: runs still work, unrecorded.
    pub(crate) store: Option<Store>,
    next_run: AtomicU64,
    running: Arc<Mutex<HashMap<u64, CancelToken>>>,
}

impl DesktopState {
    pub fn new(engine: Engine, layers: Layers, store: Option<Store>) -> Self {
        DesktopState {
            engine: Mutex::new(engine),
            layers: Mutex::new(layers),
            store,
            next_run: AtomicU64::new(1),
            running: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    pub fn engine(&self) -> Engine {
        self.engine
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn replace_engine(&self, engine: Engine) {
        *self.engine.lock().unwrap_or_else(|p| p.into_inner()) = engine;
    }

    pub fn layers(&self) -> Result<std::sync::MutexGuard<'_, Layers>, String> {
        self.layers
            .lock()
            .map_err(|_| "the app's settings are broken; restart K2 Tutor".into())
    }

    /// A stored run for `request` and its recorder, or `None` without a store.
    async fn record(&self, request: &RunRequest) -> Result<Option<RunRecorder>, String> {
        let Some(store) = &self.store else {
            return Ok(None);
        };
        let chosen = self.layers()?.effective();
        let config = RunConfig {
            solver: std::env::var("K2_MODEL")
                .ok()
                .or(chosen.solver)
                .or_else(|| chosen.remote_url.clone())
                .unwrap_or_else(|| "default".into()),
            planner: chosen.planner,
            draft: chosen.draft,
            device: chosen
                .remote_url
                .or(chosen.device)
                .unwrap_or_else(|| "auto".into()),
            settings: request.settings.clone(),
        };
        let run = store
            .start_typed_run(&request.session_or(SESSION), &request.problem, &config)
            .await
            .map_err(|e| format!("cannot record the run: {e}"))?;
        Ok(Some(RunRecorder::start(store, run)))
    }
}

/// A started run: `id` to stop it, `stored` to attach notes and attempts to its record.
#[derive(Serialize)]
pub struct StartedRun {
    id: u64,
    stored: Option<i64>,
}

/// Starts a run and answers at once; its events arrive on `on_event`, ending with `stats`,
/// `error` or `cancelled`.
#[tauri::command]
pub async fn start_run(
    state: State<'_, DesktopState>,
    request: RunRequest,
    on_event: Channel<Event>,
) -> Result<StartedRun, String> {
    if request.problem.trim().is_empty() {
        return Err("Type a problem first.".into());
    }
    let id = state.next_run.fetch_add(1, Ordering::Relaxed);
    let cancel = CancelToken::new();
    state
        .running
        .lock()
        .map_err(|_| "the app's run table is broken; restart K2 Tutor")?
        .insert(id, cancel.clone());
    let recorder = state.record(&request).await?;
    let stored = recorder.as_ref().map(RunRecorder::run);
    let engine = state.engine();
    let running = state.running.clone();
    std::thread::Builder::new()
        .name(format!("k2-run-{id}"))
        .spawn(move || {
            let mut send = |event: Event| {
                if let Some(recorder) = &recorder {
                    recorder.record(&event);
                }
                let _ = on_event.send(event);
            };
            match engine.wait() {
                Ok(backends) => {
                    let pipeline = Pipeline {
                        solver: backends.solver.as_ref(),
                        planner: backends.planner.as_ref(),
                    };
                    // The outcome is in the events; a failure ends them with `error`.
                    let _ = pipeline.run(&request, &cancel, &mut send);
                }
                Err(message) => send(Event {
                    seq: 0,
                    elapsed_ms: 0,
                    kind: RunEvent::Error { message },
                }),
            }
            if let Some(recorder) = recorder {
                if let Err(e) = tauri::async_runtime::block_on(recorder.finish()) {
                    tracing::error!("the run could not be stored completely: {e}");
                }
            }
            if let Ok(mut running) = running.lock() {
                running.remove(&id);
            }
        })
        .map_err(|e| format!("cannot start the run: {e}"))?;
    Ok(StartedRun { id, stored })
}

/// Stops a run; its stream ends with `cancelled`. Unknown or finished runs are ignored.
#[tauri::command]
pub fn cancel_run(state: State<'_, DesktopState>, run: u64) {
    if let Ok(mut running) = state.running.lock() {
        if let Some(cancel) = running.remove(&run) {
            cancel.cancel();
        }
    }
}

#[derive(Serialize)]
pub struct EngineStatus {
    /// `loading`, `ready` or `failed`.
    state: &'static str,
    device: Option<String>,
    message: Option<String>,
}

#[tauri::command]
pub fn engine_status(state: State<'_, DesktopState>) -> EngineStatus {
    match state.engine().status() {
        None => EngineStatus {
            state: "loading",
            device: None,
            message: None,
        },
        Some(Ok(backends)) => EngineStatus {
            state: "ready",
            device: Some(backends.device.clone()),
            message: None,
        },
        Some(Err(message)) => EngineStatus {
            state: "failed",
            device: None,
            message: Some(message),
        },
    }
}
