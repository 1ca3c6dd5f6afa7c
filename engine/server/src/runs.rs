//! `POST /v1/k2/runs`: the whole K2 scaffold (plan, best-of-N, verification) for one problem,
//! streamed as the run's protocol events (`k2_protocol::Event`, one SSE event each, named by
//! its type), exactly as the desktop app and the session store see them. The scaffold's
//! completions go through the scheduler, so runs share the batch with every other client.

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use k2_engine::generate::CancelToken;
use k2_engine::serving::ScheduledBackend;
use k2_protocol::RunRequest;
use k2_scaffold::pipeline::Pipeline;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

use crate::error::ApiError;
use crate::state::AppState;

/// The response header that carries the stored run's id.
pub const RUN_HEADER: &str = "x-k2-run";

pub async fn start_run(
    State(state): State<AppState>,
    Json(request): Json<RunRequest>,
) -> Result<Response, ApiError> {
    check(&state, &request)?;
    state.scheduler.check_room()?;
    let recorder = record(&state, &request).await;
    let stored = recorder.as_ref().map(|r| r.run());
    let runtime = tokio::runtime::Handle::current();
    let (out, stream) = mpsc::unbounded_channel::<Result<SseEvent, Infallible>>();
    let cancel = CancelToken::new();
    std::thread::Builder::new()
        .name("k2-run".into())
        .spawn(move || {
            let backend = ScheduledBackend::new(state.model.clone(), state.scheduler.clone());
            let pipeline = Pipeline {
                solver: &backend,
                planner: &backend,
            };
            let mut sink = |event: k2_protocol::Event| {
                if let Some(recorder) = &recorder {
                    recorder.record(&event);
                }
                let name = event.kind.kind_name();
                let data = serde_json::to_string(&event).unwrap_or_default();
                if out
                    .send(Ok(SseEvent::default().event(name).data(data)))
                    .is_err()
                {
                    // The client went away: stop generating for it.
                    cancel.cancel();
                }
            };
            // The outcome is in the events; errors end the stream with an `error` event.
            let _ = pipeline.run(&request, &cancel, &mut sink);
            if let Some(recorder) = recorder {
                if let Err(e) = runtime.block_on(recorder.finish()) {
                    tracing::error!("a run could not be stored completely: {e}");
                }
            }
        })
        .map_err(|e| ApiError::unavailable(format!("cannot start the run: {e}")))?;
    let mut response = Sse::new(UnboundedReceiverStream::new(stream))
        .keep_alive(KeepAlive::default())
        .into_response();
    if let Some(run) = stored {
        // Clients use it to attach attempts and notes to the run they watch.
        response.headers_mut().insert(RUN_HEADER, run.into());
    }
    Ok(response)
}

fn check(state: &AppState, request: &RunRequest) -> Result<(), ApiError> {
    let settings = &request.settings;
    if request.problem.trim().is_empty() {
        return Err(ApiError::bad_request("the problem is empty"));
    }
    let max_rows = state.scheduler.config().max_rows;
    if settings.candidates == 0 || settings.candidates > max_rows {
        return Err(ApiError::bad_request(format!(
            "candidates must be between 1 and {max_rows}"
        )));
    }
    let limit = state.limits.max_tokens;
    if settings.sampling.max_tokens > limit || settings.plan_max_tokens > limit {
        return Err(ApiError::bad_request(format!(
            "max_tokens above this server's limit of {limit}"
        )));
    }
    Ok(())
}

/// The session runs from the browser are filed under when the request names none.
const SESSION: &str = "Classroom server";

/// A stored run and its recorder for `request`, or `None` (no store, or it failed: the run
/// goes on unrecorded rather than not at all).
async fn record(state: &AppState, request: &RunRequest) -> Option<k2_store::RunRecorder> {
    let store = state.store.as_ref()?;
    let config = k2_store::RunConfig {
        solver: state.model_id.clone(),
        planner: None,
        draft: None,
        device: "server".into(),
        settings: request.settings.clone(),
    };
    match store
        .start_typed_run(&request.session_or(SESSION), &request.problem, &config)
        .await
    {
        Ok(run) => Some(k2_store::RunRecorder::start(store, run)),
        Err(e) => {
            tracing::error!("a run will not be kept: {e}");
            None
        }
    }
}
