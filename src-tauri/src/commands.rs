//! What the UI can ask of the app (Tauri commands): start a run, whose events stream back over
//! a channel and are stored as they come (the session store, SQLite); stop it; ask whether the
//! engine is ready. The history commands are in `history.rs`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use k2_app::{Backends, RunHost, RunLimits, SinkFlow};
use k2_protocol::{Event, RunEvent, RunRequest};
use k2_scaffold::CancelToken;
use k2_store::Store;
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
    /// Runs the scaffold and records runs in `store`.
    host: RunHost,
    next_run: AtomicU64,
    running: Arc<Mutex<HashMap<u64, CancelToken>>>,
}

impl DesktopState {
    pub fn new(engine: Engine, layers: Layers, store: Option<Store>) -> Self {
        let host = match &store {
            Some(store) => RunHost::recording(
                store.clone(),
                tauri::async_runtime::handle().inner().clone(),
                SESSION,
            ),
            None => RunHost::unrecorded(),
        };
        DesktopState {
            engine: Mutex::new(engine),
            layers: Mutex::new(layers),
            host,
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
    RunHost::validate(&request, RunLimits::NONE).map_err(|e| capitalized(&e.0))?;
    // Waiting for the models happens off the UI's thread; a failed load is the run's error.
    let engine = state.engine();
    let backends = tauri::async_runtime::spawn_blocking(move || engine.wait())
        .await
        .map_err(|e| format!("cannot start the run: {e}"))?;
    let mut send = move |event: &Event| {
        let _ = on_event.send(event.clone());
        SinkFlow::Continue
    };
    let backends = match backends {
        Ok(backends) => backends,
        Err(message) => {
            // Nothing ran: the stream is this one terminal event.
            send(&Event {
                seq: 0,
                elapsed_ms: 0,
                kind: RunEvent::Error { message },
            });
            return Ok(StartedRun {
                id: 0,
                stored: None,
            });
        }
    };
    let run = state
        .host
        .start(request, Backends::clone(&backends), RunLimits::NONE)
        .await
        .map_err(|e| capitalized(&e.0))?;
    let stored = run.stored();
    let id = state.next_run.fetch_add(1, Ordering::Relaxed);
    let cancel = CancelToken::new();
    state
        .running
        .lock()
        .map_err(|_| "the app's run table is broken; restart K2 Tutor")?
        .insert(id, cancel.clone());
    let running = state.running.clone();
    std::thread::Builder::new()
        .name(format!("k2-run-{id}"))
        .spawn(move || {
            // The outcome is in the events; a failure ends them with `error`.
            let _ = run.run(&cancel, &mut send);
            if let Ok(mut running) = running.lock() {
                running.remove(&id);
            }
        })
        .map_err(|e| format!("cannot start the run: {e}"))?;
    Ok(StartedRun { id, stored })
}

/// The host's messages start lowercase (they follow "error:" on the command line).
fn capitalized(message: &str) -> String {
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
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
    /// The model that solves, as loaded (what the Models view's "default" turned out to be).
    solver: Option<String>,
    /// The model that plans and judges, where it is not the solver.
    planner: Option<String>,
    message: Option<String>,
}

#[tauri::command]
pub fn engine_status(state: State<'_, DesktopState>) -> EngineStatus {
    match state.engine().status() {
        None => EngineStatus {
            state: "loading",
            device: None,
            solver: None,
            planner: None,
            message: None,
        },
        Some(Ok(backends)) => {
            let solver = backends.solver.describe();
            let planner = Some(backends.planner.describe()).filter(|p| *p != solver);
            EngineStatus {
                state: "ready",
                device: Some(backends.device.clone()),
                solver: Some(solver),
                planner,
                message: None,
            }
        }
        Some(Err(message)) => EngineStatus {
            state: "failed",
            device: None,
            solver: None,
            planner: None,
            message: Some(message),
        },
    }
}
