//! The models the desktop app runs, loaded on a background thread so the window is usable at
//! once, and loaded again when the Models view changes them. Which models: the configuration
//! (`config.rs`: solver, planner, draft, device, or a remote server), where `K2_MODEL` and
//! `K2_PLANNER` override the solver and planner (tests); by default the installed 1.5B solver,
//! which also plans and judges unless a planner is configured.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use k2_app::{Backends, ModelCache};
use k2_engine::backend::{Drafter, LocalBackend, Speculation};
use k2_engine::decode::speculative::compat::check_draft_compatible;
use k2_engine::decode::speculative::SpecTuning;
use k2_engine::device::{select_device, DeviceChoice};
use k2_engine::models_dir::{models_dir, resolve_model_in};
use k2_scaffold::{Backend, RemoteBackend, RemoteConfig};

use crate::config::Config;

const DEFAULT_SOLVER: &str = "qwen2.5-coder-1.5b-instruct-q4_k_m";

/// Every model the desktop loads, shared across reloads: changing the planner in the Models
/// view keeps the loaded solver.
fn model_cache() -> &'static ModelCache {
    static MODELS: OnceLock<ModelCache> = OnceLock::new();
    MODELS.get_or_init(ModelCache::new)
}

/// The outcome of loading: the backends, or what went wrong in words for the user.
type Loaded = Result<Arc<Backends>, String>;

/// The loading, then loaded (or failed) engine.
#[derive(Clone)]
pub struct Engine {
    slot: Arc<(Mutex<Option<Loaded>>, Condvar)>,
}

impl Engine {
    pub fn load_in_background(config: Config) -> Engine {
        let engine = Engine {
            slot: Arc::new((Mutex::new(None), Condvar::new())),
        };
        let slot = engine.slot.clone();
        std::thread::spawn(move || {
            let loaded = load(&config).map(Arc::new);
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

/// The models folder in force: the configuration's, else `K2_MODELS_DIR` or the default.
pub fn effective_models_dir(config: &Config) -> PathBuf {
    config.models_dir.clone().unwrap_or_else(models_dir)
}

fn load(config: &Config) -> Result<Backends, String> {
    if let Some(url) = &config.remote_url {
        return connect(url, config.remote_token.clone());
    }
    let dir = effective_models_dir(config);
    let resolve = |name: &str| {
        resolve_model_in(name, &dir).map_err(|e| {
            format!("{e}. Install a model in the Models view (or see the README, \"Models\").")
        })
    };
    let solver_name = std::env::var("K2_MODEL")
        .ok()
        .or_else(|| config.solver.clone())
        .unwrap_or_else(|| DEFAULT_SOLVER.into());
    let solver_path = resolve(&solver_name)?;
    // No planner chosen: the solver plans and judges. The small 0.5B planner cost accuracy
    // in every measured mode (BENCHMARKS.md, "Evaluation on the GPU").
    let planner_path = std::env::var("K2_PLANNER")
        .ok()
        .or_else(|| config.planner.clone())
        .map(|name| resolve(&name))
        .transpose()?;
    let choice: DeviceChoice = config
        .device
        .as_deref()
        .unwrap_or("auto")
        .parse()
        .map_err(|e: k2_engine::error::EngineError| e.to_string())?;
    let device = select_device(choice).map_err(|e| e.to_string())?;
    tracing::info!(device = device.name, reason = %device.reason, "device selected");
    let load = |path: &Path| {
        model_cache()
            .load(path, &device, &mut |_| {})
            .map_err(|e| e.to_string())
    };
    let solver_model = load(&solver_path)?;
    let drafter = match &config.draft {
        Some(draft) => {
            let draft = load(&resolve(draft)?)?;
            check_draft_compatible(
                &solver_model.tokenizer,
                &solver_model.info.name,
                &draft.tokenizer,
                &draft.info.name,
            )
            .map_err(|e| e.to_string())?;
            Drafter::Model(draft)
        }
        // No draft model: candidates draft from the problem and each other's text, the
        // fastest lossless decoding measured without one (BENCHMARKS.md), same text as plain.
        None => Drafter::Suffix,
    };
    let solver = LocalBackend::new(solver_model.clone()).with_speculation(Speculation {
        drafter,
        tuning: SpecTuning::default(),
    });
    let solver: Arc<dyn Backend> = Arc::new(solver);
    let planner: Arc<dyn Backend> = match planner_path {
        Some(path) if path != solver_path => Arc::new(LocalBackend::new(load(&path)?)),
        _ => solver.clone(),
    };
    Ok(Backends {
        solver,
        planner,
        device: device.name.to_owned(),
        draft: config.draft.clone(),
    })
}

/// A classroom server for everything: solving, planning and judging.
fn connect(url: &str, token: Option<String>) -> Result<Backends, String> {
    let mut remote = RemoteConfig::new(url);
    remote.token = token;
    let backend: Arc<dyn Backend> = Arc::new(
        RemoteBackend::connect(remote)
            .map_err(|e| format!("{e}. Check the server address and token in the Models view."))?,
    );
    Ok(Backends::single(backend, format!("server {url}")))
}
