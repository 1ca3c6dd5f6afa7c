//! What the UI can ask of the app (Tauri commands): start a run, whose events stream back over
//! a channel and are stored as they come (the session store, SQLite); stop it; list stored runs
//! and replay one; ask whether the engine is ready.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use k2_engine::generate::CancelToken;
use k2_engine::scaffold::pipeline::Pipeline;
use k2_protocol::{Event, RunEvent, RunRequest};
use k2_store::{PageRequest, RunConfig, RunRecorder, RunSummary, Store};
use serde::Serialize;
use tauri::ipc::Channel;
use tauri::State;

use crate::engine::Engine;

/// The session the desktop app files its runs under.
const SESSION: &str = "Desktop";

pub struct DesktopState {
    engine: Engine,
    /// `None` when the database could not be opened: runs still work, unrecorded.
    store: Option<Store>,
    next_run: AtomicU64,
    running: Arc<Mutex<HashMap<u64, CancelToken>>>,
}

impl DesktopState {
    pub fn new(engine: Engine, store: Option<Store>) -> Self {
        DesktopState {
            engine,
            store,
            next_run: AtomicU64::new(1),
            running: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A stored run for `request` and its recorder, or `None` without a store.
    async fn record(&self, request: &RunRequest) -> Result<Option<RunRecorder>, String> {
        let Some(store) = &self.store else {
            return Ok(None);
        };
        let config = RunConfig {
            solver: std::env::var("K2_MODEL").unwrap_or_else(|_| "default".into()),
            planner: None,
            draft: None,
            device: "auto".into(),
            settings: request.settings.clone(),
        };
        let run = store
            .start_typed_run(SESSION, &request.problem, &config)
            .await
            .map_err(|e| format!("cannot record the run: {e}"))?;
        Ok(Some(RunRecorder::start(store, run)))
    }
}

/// Starts a run and returns its id at once; its events arrive on `on_event`, ending with
/// `stats`, `error` or `cancelled`.
#[tauri::command]
pub async fn start_run(
    state: State<'_, DesktopState>,
    request: RunRequest,
    on_event: Channel<Event>,
) -> Result<u64, String> {
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
    let engine = state.engine.clone();
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
    Ok(id)
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
    match state.engine.status() {
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

/// The newest stored runs (history).
#[tauri::command]
pub async fn list_runs(state: State<'_, DesktopState>) -> Result<Vec<RunSummary>, String> {
    let Some(store) = &state.store else {
        return Ok(Vec::new());
    };
    let page = store
        .list_runs(None, PageRequest::first(100))
        .await
        .map_err(|e| e.to_string())?;
    Ok(page.items)
}

/// A stored run's events, to replay it exactly as it streamed.
#[tauri::command]
pub async fn run_events(state: State<'_, DesktopState>, run: i64) -> Result<Vec<Event>, String> {
    let store = state.store.as_ref().ok_or("no session store")?;
    store.events(run).await.map_err(|e| e.to_string())
}

/// Removes a stored run and everything attached to it (the UI asks for confirmation first).
#[tauri::command]
pub async fn delete_run(state: State<'_, DesktopState>, run: i64) -> Result<(), String> {
    let store = state.store.as_ref().ok_or("no session store")?;
    store.delete_run(run).await.map_err(|e| e.to_string())
}
