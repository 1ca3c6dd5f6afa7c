//! The models the desktop app runs, loaded on a background thread so the window is usable at
//! once. Which models: `K2_MODEL` (solver) and `K2_PLANNER` (planner and judge), each a path or
//! an installed model's name; by default the installed 1.5B solver and 0.5B planner (the solver
//! plans for itself when the 0.5B is not installed).

use std::sync::{Arc, Condvar, Mutex};

use k2_engine::backend::{Backend, LocalBackend};
use k2_engine::device::{select_device, DeviceChoice};
use k2_engine::loader::load_model;
use k2_engine::models_dir::resolve_model;

const DEFAULT_SOLVER: &str = "qwen2.5-coder-1.5b-instruct-q4_k_m";
const DEFAULT_PLANNER: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m";

pub struct Backends {
    pub solver: Arc<dyn Backend>,
    pub planner: Arc<dyn Backend>,
    pub device: String,
}

/// The outcome of loading: the backends, or what went wrong in words for the user.
type Loaded = Result<Arc<Backends>, String>;

/// The loading, then loaded (or failed) engine.
#[derive(Clone)]
pub struct Engine {
    slot: Arc<(Mutex<Option<Loaded>>, Condvar)>,
}

impl Engine {
    pub fn load_in_background() -> Engine {
        let engine = Engine {
            slot: Arc::new((Mutex::new(None), Condvar::new())),
        };
        let slot = engine.slot.clone();
        std::thread::spawn(move || {
            let loaded = load().map(Arc::new);
            if let Err(e) = &loaded {
                tracing::error!("{e}");
            }
            let (lock, ready) = &*slot;
            *lock.lock().unwrap_or_else(|p| p.into_inner()) = Some(loaded);
            ready.notify_all();
        });
        engine
    }

    /// The backends once loaded (waits for the load), or why they could not be.
    pub fn wait(&self) -> Loaded {
        let (lock, ready) = &*self.slot;
        let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
        while state.is_none() {
            state = ready.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        state.clone().expect("loaded")
    }

    /// `None` while loading.
    pub fn status(&self) -> Option<Loaded> {
        self.slot
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

fn load() -> Result<Backends, String> {
    let solver_name = std::env::var("K2_MODEL").unwrap_or_else(|_| DEFAULT_SOLVER.into());
    let solver_path = resolve_model(&solver_name).map_err(|e| {
        format!(
            "{e}. Install a model (see the README, \"Models\") or set K2_MODEL to a .gguf file."
        )
    })?;
    let planner_path = match std::env::var("K2_PLANNER") {
        Ok(name) => Some(resolve_model(&name).map_err(|e| e.to_string())?),
        Err(_) => resolve_model(DEFAULT_PLANNER).ok(),
    };
    let device = select_device(DeviceChoice::Auto).map_err(|e| e.to_string())?;
    tracing::info!(device = device.name, reason = %device.reason, "device selected");
    let load = |path: &std::path::Path| {
        load_model(path, &device.device, &mut |_| {})
            .map(Arc::new)
            .map_err(|e| e.to_string())
    };
    let solver: Arc<dyn Backend> = Arc::new(LocalBackend::new(load(&solver_path)?));
    let planner: Arc<dyn Backend> = match planner_path {
        Some(path) if path != solver_path => Arc::new(LocalBackend::new(load(&path)?)),
        _ => solver.clone(),
    };
    Ok(Backends {
        solver,
        planner,
        device: device.name.to_owned(),
    })
}
