//! The models a run uses, and the cache that lets a front end build them again (the desktop's
//! Models view, a server restarted in-process) without loading the same weights twice.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use k2_engine::device::SelectedDevice;
use k2_engine::loader::{load_model, LoadedModel};
use k2_engine::model::LoadProgress;
use k2_protocol::RunSettings;
use k2_scaffold::Backend;
use k2_store::RunConfig;

/// Where a run's completions come from: the solver, and the model that plans and judges (the
/// solver itself unless another is configured).
#[derive(Clone)]
pub struct Backends {
    pub solver: Arc<dyn Backend>,
    pub planner: Arc<dyn Backend>,
    /// Where the solver runs: `cpu`, `cuda`, `metal`, or the remote server's address.
    pub device: String,
    /// The speculative draft model's name, if the solver drafts with one.
    pub draft: Option<String>,
}

impl Backends {
    /// The same backend solves, plans and judges.
    pub fn single(backend: Arc<dyn Backend>, device: impl Into<String>) -> Self {
        Backends {
            planner: backend.clone(),
            solver: backend,
            device: device.into(),
            draft: None,
        }
    }

    /// What the session store keeps about the models of a run with `settings`.
    pub fn run_config(&self, settings: &RunSettings) -> RunConfig {
        let plans_or_judges = settings.plan || settings.candidates > 1;
        RunConfig {
            solver: self.solver.describe(),
            planner: plans_or_judges.then(|| self.planner.describe()),
            draft: self.draft.clone(),
            device: self.device.clone(),
            settings: settings.clone(),
        }
    }
}

/// Loaded models by file and device, held weakly: a model is loaded once while anything uses
/// it, and freed when the last backend using it goes.
#[derive(Default)]
pub struct ModelCache {
    loaded: Mutex<HashMap<(PathBuf, &'static str), Weak<LoadedModel>>>,
}

impl ModelCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The model at `path` on `device`, loaded now unless a live copy exists.
    pub fn load(
        &self,
        path: &Path,
        device: &SelectedDevice,
        progress: &mut dyn FnMut(LoadProgress),
    ) -> k2_engine::Result<Arc<LoadedModel>> {
        let key = (path.to_path_buf(), device.name);
        if let Some(model) = self.lock().get(&key).and_then(Weak::upgrade) {
            return Ok(model);
        }
        // Loading takes seconds to minutes: never under the lock (two different models load
        // in parallel; the same one twice at once only wastes the second load).
        let model = Arc::new(load_model(path, &device.device, progress)?);
        let mut loaded = self.lock();
        loaded.retain(|_, model| model.strong_count() > 0);
        loaded.insert(key, Arc::downgrade(&model));
        Ok(model)
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(PathBuf, &'static str), Weak<LoadedModel>>> {
        self.loaded.lock().unwrap_or_else(|p| p.into_inner())
    }
}
