//! What every handler shares.

use std::sync::Arc;
use std::time::SystemTime;

use k2_engine::loader::LoadedModel;
use k2_engine::serving::Scheduler;

#[derive(Clone)]
pub struct AppState {
    pub model: Arc<LoadedModel>,
    /// The name clients use for the model (`/v1/models`, `model` in answers).
    pub model_id: String,
    pub scheduler: Scheduler,
    pub token: Arc<str>,
    pub limits: Limits,
    pub started: SystemTime,
    /// Where runs of `/v1/k2/runs` are kept for history; `None`: not kept.
    pub store: Option<k2_store::Store>,
    /// Runs `/v1/k2/runs` (and records them in `store`).
    pub host: k2_app::RunHost,
    /// The class, when the server has a roster; `None`: the teacher's token only.
    pub class: Option<Arc<crate::classroom::Classroom>>,
    /// The teacher's name on their notes and corrections.
    pub teacher_name: Arc<str>,
    /// Per-client rate and concurrency limits (`limits`).
    pub clients: Arc<crate::limits::ClientGuard>,
    /// The server's counters for `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// Per-request limits, so one client cannot take the server for itself.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Largest `max_tokens` a request may ask for (also the default when it asks none).
    pub max_tokens: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1 << 20,
            max_tokens: 4096,
        }
    }
}
