//! `k2 serve`, the classroom server (K2-Think's "remote accelerator" role): one machine runs
//! the model and every lab machine or browser uses it.
//!
//! - `POST /v1/chat/completions` (streaming or not), `GET /v1/models`: OpenAI-compatible.
//! - `POST /v1/k2/runs`: the K2 scaffold for one problem, streamed as protocol events (the
//!   stored run's id in the `x-k2-run` header).
//! - `POST /v1/k2/history`: any history operation (`k2_protocol::HistoryRequest`: list and
//!   search, replay, delete, export, notes, attempts); the same as REST routes under
//!   `/v1/k2/runs…`.
//! - `GET /health`: liveness and load, without a token.
//! - `GET /metrics`: Prometheus text (the teacher's token, or none with `--metrics-public`).
//! - `/`: the browser UI.
//!
//! Requests from all clients are decoded together by the engine's continuous-batching
//! scheduler. Every `/v1` route needs the bearer token. A room full of clients is kept in
//! check by per-connection timers and a connection cap (`listen`, `timeouts`) and per-client
//! rate and concurrency limits (`limits`).

mod auth;
mod classroom;
mod error;
mod history;
mod limits;
mod listen;
mod metrics;
mod openai;
pub mod roster;
mod runs;
mod state;
mod timeouts;
pub mod token;
mod ui;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{DefaultBodyLimit, State};
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use k2_engine::loader::LoadedModel;
use k2_engine::serving::{Scheduler, SchedulerConfig};
use serde_json::{json, Value};

pub use auth::Identity;
pub use classroom::ClassPolicy;
pub use error::ApiError;
pub use limits::ClientLimits;
pub use listen::ConnectionLimits;
pub use state::{AppState, Limits};

/// Everything `k2 serve` is started with.
pub struct ServerConfig {
    pub address: SocketAddr,
    pub token: String,
    pub scheduler: SchedulerConfig,
    pub limits: Limits,
    /// The built UI (`ui/dist`), if any.
    pub ui_dir: Option<PathBuf>,
    /// The session database scaffold runs are stored in (history); `None`: not stored.
    pub db: Option<PathBuf>,
    /// Timers and the cap on open connections.
    pub connections: ConnectionLimits,
    /// What one client (token) may do at once and per minute.
    pub clients: ClientLimits,
    /// `/metrics` without a token.
    pub metrics_public: bool,
    /// The class roster (`--roster`): students' tokens. Needs `db`.
    pub roster: Option<PathBuf>,
    pub class_policy: ClassPolicy,
    /// The teacher's name on their notes and corrections.
    pub teacher_name: String,
}

/// The application: routes, limits and authentication, over a running scheduler.
pub fn router(state: AppState, ui_dir: Option<PathBuf>) -> Router {
    let api = Router::new()
        .route("/models", get(openai::models))
        .route("/chat/completions", post(openai::chat_completions))
        .route("/k2/runs", post(runs::start_run).get(history::list))
        .route("/k2/runs/{id}", get(history::show).delete(history::delete))
        .route("/k2/runs/{id}/events", get(history::events))
        .route("/k2/runs/{id}/export", get(history::export))
        .route(
            "/k2/runs/{id}/notes",
            get(history::notes).post(history::add_note),
        )
        .route("/k2/runs/{id}/attempts", post(history::check_attempt))
        .route("/k2/runs/{id}/reveal", post(classroom::reveal))
        .route("/k2/history", post(history::history))
        .route("/k2/me", get(classroom::me))
        .route("/k2/class", get(classroom::class))
        .route("/k2/class/report", get(classroom::report))
        .route("/k2/class/test-mode", put(classroom::set_test_mode))
        // After authentication (the layer added last runs first): limits are per identity.
        .route_layer(from_fn_with_state(state.clone(), limits::per_client))
        .route_layer(from_fn_with_state(state.clone(), auth::require_token));
    Router::new()
        .route("/health", get(health))
        .route(
            "/metrics",
            get(metrics::scrape).route_layer(from_fn_with_state(state.clone(), metrics::access)),
        )
        .nest("/v1", api)
        .merge(ui::routes(ui_dir))
        .layer(axum::middleware::from_fn(timeouts::answer_body_timeout))
        // Outside the body timeout's answer, so its 408s are counted.
        .layer(from_fn_with_state(state.clone(), metrics::count_requests))
        .layer(DefaultBodyLimit::max(state.limits.max_body_bytes))
        .with_state(state)
}

async fn health(State(state): State<AppState>) -> Json<Value> {
    let load = state.scheduler.load();
    let config = state.scheduler.config();
    Json(json!({
        "status": "ok",
        "model": state.model_id,
        "waiting": load.waiting,
        "active_requests": load.active_requests,
        "active_rows": load.active_rows,
        "reused_prompt_tokens": load.reused_prompt_tokens,
        "max_rows": config.max_rows,
        "max_waiting": config.max_waiting,
    }))
}

/// Serves until Ctrl-C (or SIGTERM); `on_listening` gets the bound address (port 0 picks one).
pub async fn serve(
    model: Arc<LoadedModel>,
    config: ServerConfig,
    on_listening: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    let scheduler = Scheduler::start(model.clone(), config.scheduler)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let store = match &config.db {
        Some(path) => match k2_store::Store::open(path).await {
            Ok(store) => Some(store),
            Err(e) => {
                tracing::error!("runs will not be kept ({}): {e}", path.display());
                None
            }
        },
        None => None,
    };
    let host = match &store {
        Some(store) => k2_app::RunHost::recording(
            store.clone(),
            tokio::runtime::Handle::current(),
            runs::SESSION,
        ),
        None => k2_app::RunHost::unrecorded(),
    };
    let class = match (&config.roster, &store) {
        (Some(path), Some(store)) => {
            let roster = roster::LiveRoster::open(path.clone())
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            let class = classroom::Classroom::open(roster, store.clone(), config.class_policy)
                .await
                .map_err(|e| {
                    std::io::Error::other(format!("cannot keep the class's records: {e}"))
                })?;
            let students = class.roster().names().count();
            eprintln!(
                "class: {students} student(s) on the roster {} (re-read when it changes)",
                path.display()
            );
            Some(Arc::new(class))
        }
        (Some(_), None) => {
            return Err(std::io::Error::other(
                "a class needs the history (its runs are filed under their students):                  drop --no-history, or check that the database opens",
            ))
        }
        (None, _) => None,
    };
    let metrics = Arc::new(metrics::Metrics::new(config.metrics_public));
    let state = AppState {
        class,
        teacher_name: config.teacher_name.into(),
        host,
        store,
        model_id: model.info.name.clone(),
        model,
        scheduler: scheduler.clone(),
        token: config.token.into(),
        limits: config.limits,
        started: SystemTime::now(),
        clients: Arc::new(limits::ClientGuard::new(config.clients)),
        metrics: metrics.clone(),
    };
    let app = router(state, config.ui_dir);
    let listener = tokio::net::TcpListener::bind(config.address).await?;
    on_listening(listener.local_addr()?);
    let stopping = scheduler.clone();
    let result = listen::serve(listener, app, config.connections, metrics, async move {
        shutdown_signal().await;
        // Ends every stream with an error chunk, so open connections close promptly.
        stopping.shutdown();
    })
    .await;
    scheduler.shutdown();
    result
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
