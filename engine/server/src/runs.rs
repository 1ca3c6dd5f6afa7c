//! `POST /v1/k2/runs`: the whole K2 scaffold (plan, best-of-N, verification) for one problem,
//! streamed as the run's protocol events (`k2_protocol::Event`, one SSE event each, named by
//! its type), exactly as the desktop app and the session store see them. The scaffold's
//! completions go through the scheduler, so runs share the batch with every other client.

use std::borrow::Cow;
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use k2_app::{Backends, RunHost, RunLimits, SinkFlow};
use k2_engine::serving::ScheduledBackend;
use k2_protocol::{Event, RunRequest};
use k2_scaffold::{Backend, CancelToken};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

use crate::auth::Identity;
use crate::error::ApiError;
use crate::state::AppState;

/// The response header that carries the stored run's id.
pub const RUN_HEADER: &str = "x-k2-run";

/// A student's run is filed under them; it is a student-mode run when they ask for one
/// (`settings.student`) or the class requires it (the lab's lock, test mode), and then its
/// stream carries only what student mode allows until they ask for the solution
/// (`crate::classroom::Gate`).
pub async fn start_run(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    Json(mut request): Json<RunRequest>,
) -> Result<Response, ApiError> {
    let (owner, class) = match (&identity, &state.class) {
        (Identity::Student { id, .. }, Some(class)) => (Some(*id), Some(class.clone())),
        _ => (None, None),
    };
    if let Some(class) = &class {
        if class.forces_student_mode() {
            request.settings.student = true;
        }
    }
    if request.settings.student {
        // A student-mode run is one with a hint ladder; hints reach the student as opened.
        request.settings.hints = true;
    }
    let gated = class.clone().filter(|_| request.settings.student);
    let limits = RunLimits {
        max_candidates: match &class {
            Some(class) => class.policy.student_candidates,
            None => usize::MAX,
        }
        .min(state.scheduler.config().max_rows),
        max_tokens: state.limits.max_tokens,
    };
    RunHost::validate(&request, limits).map_err(|e| ApiError::bad_request(e.0))?;
    state.scheduler.check_room()?;
    let backend: Arc<dyn Backend> = Arc::new(ScheduledBackend::new(
        state.model.clone(),
        state.scheduler.clone(),
    ));
    let run = state
        .host
        .start_owned(request, Backends::single(backend, "server"), limits, owner)
        .await
        .map_err(|e| ApiError::bad_request(e.0))?;
    let stored = run.stored();
    let gate = match (&gated, stored) {
        (Some(class), Some(id)) => Some((class.clone(), id, class.open_gate(id))),
        // Never revealable, so never startable: its solution would stay out of reach.
        (Some(_), None) => {
            return Err(ApiError::unavailable(
                "the history is unavailable, so a student-mode run could not be kept",
            ))
        }
        (None, _) => None,
    };
    let (out, stream) = mpsc::unbounded_channel::<Result<SseEvent, Infallible>>();
    std::thread::Builder::new()
        .name("k2-run".into())
        .spawn(move || {
            let mut sink = |event: &Event| {
                // Only a student-mode run's events are copied (by its gate); others go as they are.
                let shown = match &gate {
                    Some((class, _, gate)) => gate.pass(event, !class.test_mode()).map(Cow::Owned),
                    None => Some(Cow::Borrowed(event)),
                };
                let Some(event) = shown else {
                    return SinkFlow::Continue;
                };
                let data = serde_json::to_string(&*event).unwrap_or_default();
                let sse = SseEvent::default().event(event.kind.kind_name()).data(data);
                match out.send(Ok(sse)) {
                    Ok(()) => SinkFlow::Continue,
                    // The client went away: stop generating for it.
                    Err(_) => SinkFlow::Gone,
                }
            };
            // The outcome is in the events; errors end the stream with an `error` event.
            let _ = run.run(&CancelToken::new(), &mut sink);
            if let Some((class, id, _)) = &gate {
                class.close_gate(*id);
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

/// The session runs from the browser are filed under when the request names none.
pub(crate) const SESSION: &str = "Classroom server";
