//! The history of a classroom server, the same operations as the desktop app's: every one is a
//! [`HistoryRequest`] answered by `k2_history::dispatch`.
//!
//! - `POST /v1/k2/history` with the request's JSON (`{"op":"list","query":"..."}`): the one
//!   route the UI uses; answers the reply's JSON (an export as `{file_name, media_type,
//!   content}`).
//! - `/v1/k2/runs…`: the same operations as REST routes for scripts and links (list and
//!   search, one run, replay, delete, export as a file to save, notes, attempts), each building its
//!   request.

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use std::sync::Arc;

use k2_app::ModelWorkReviewer;
use k2_engine::serving::ScheduledBackend;
use k2_history::{HistoryError, HistoryReply, HistoryRequest, NewNote, WorkReviewer};
use k2_scaffold::Backend;
use serde::Deserialize;

use crate::auth::Identity;
use crate::error::ApiError;
use crate::state::AppState;

impl From<HistoryError> for ApiError {
    fn from(error: HistoryError) -> Self {
        match &error {
            HistoryError::BadRequest(_) => ApiError::bad_request(error.to_string()),
            HistoryError::NotFound(_) => ApiError::not_found(error.to_string()),
            HistoryError::Forbidden(_) => ApiError::forbidden(error.to_string()),
            HistoryError::Store(_) => ApiError::unavailable(error.to_string()),
        }
    }
}

/// Answers `request` from the server's store (an empty listing without one). Checked work
/// the numbers could not decide is also read by the server's model, the judge of its runs,
/// through the scheduler like every completion (not when the batch is full).
///
/// The asker is the token's owner ([`Identity`]): a student gets their own runs only
/// (`k2_history::Viewer`), and a note's or correction's author is whoever's token wrote it,
/// whatever the body says.
pub(crate) async fn dispatch(
    state: &AppState,
    identity: &Identity,
    mut request: HistoryRequest,
) -> Result<HistoryReply, ApiError> {
    match &mut request {
        HistoryRequest::AddNote { note, .. } => note.author = Some(author(state, identity)),
        HistoryRequest::CorrectAnswer { author: by, .. } => *by = Some(author(state, identity)),
        _ => {}
    }
    crate::classroom::check_policy(state, identity, &request)?;
    if let (Some(class), HistoryRequest::Class { .. } | HistoryRequest::ClassReport { .. }) =
        (&state.class, &request)
    {
        // Students added to the roster since the start are listed before they sign in.
        class.file_roster().await.map_err(|e| {
            ApiError::unavailable(format!("the class's records are unavailable: {e}"))
        })?;
    }
    let follow_up = crate::classroom::FollowUp::of(identity, &request);
    let reply = match &state.store {
        Some(store) => {
            let reviewer = matches!(request, HistoryRequest::CheckWork { .. })
                .then(|| state.scheduler.check_room().ok())
                .flatten()
                .map(|()| {
                    let backend: Arc<dyn Backend> = Arc::new(ScheduledBackend::new(
                        state.model.clone(),
                        state.scheduler.clone(),
                    ));
                    ModelWorkReviewer::new(backend)
                });
            k2_history::dispatch_as(
                store,
                request,
                identity.viewer(),
                reviewer.as_ref().map(|r| r as &dyn WorkReviewer),
            )
            .await?
        }
        None => k2_history::without_store(&request).ok_or_else(|| {
            ApiError::unavailable("this server keeps no history (started with --no-history)")
        })?,
    };
    Ok(crate::classroom::after_dispatch(state, follow_up, reply))
}

/// Who wrote a note or a correction: the token's owner.
fn author(state: &AppState, identity: &Identity) -> String {
    match identity {
        Identity::Teacher => state.teacher_name.to_string(),
        Identity::Student { name, .. } => name.to_string(),
    }
}

/// `POST /v1/k2/history` with a [`HistoryRequest`]: any history operation.
pub async fn history(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    Json(request): Json<HistoryRequest>,
) -> Result<Json<HistoryReply>, ApiError> {
    json(&state, &identity, request).await
}

/// A REST route's answer: the reply's JSON.
async fn json(
    state: &AppState,
    identity: &Identity,
    request: HistoryRequest,
) -> Result<Json<HistoryReply>, ApiError> {
    Ok(Json(dispatch(state, identity, request).await?))
}

#[derive(Deserialize)]
pub struct ListQuery {
    /// Words to search for; the newest runs without it.
    q: Option<String>,
}

/// `GET /v1/k2/runs[?q=words]`
pub async fn list(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    Query(query): Query<ListQuery>,
) -> Result<Json<HistoryReply>, ApiError> {
    json(&state, &identity, HistoryRequest::List { query: query.q }).await
}

/// `GET /v1/k2/runs/{id}`: the run without its events ([`HistoryRequest::Show`]).
pub async fn show(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    Path(run): Path<i64>,
) -> Result<Json<HistoryReply>, ApiError> {
    json(&state, &identity, HistoryRequest::Show { run }).await
}

/// `GET /v1/k2/runs/{id}/events`
pub async fn events(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    Path(run): Path<i64>,
) -> Result<Json<HistoryReply>, ApiError> {
    json(&state, &identity, HistoryRequest::Events { run }).await
}

/// `DELETE /v1/k2/runs/{id}`
pub async fn delete(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    Path(run): Path<i64>,
) -> Result<StatusCode, ApiError> {
    dispatch(&state, &identity, HistoryRequest::Delete { run }).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct ExportQuery {
    #[serde(default = "markdown")]
    format: String,
}

fn markdown() -> String {
    "markdown".into()
}

/// `GET /v1/k2/runs/{id}/export?format=markdown|html`: a file to save.
pub async fn export(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    Path(run): Path<i64>,
    Query(query): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let request = HistoryRequest::Export {
        run,
        format: query.format,
    };
    download(&state, &identity, request).await
}

/// A history operation that answers a file (a run's export, the class report), as a download.
pub(crate) async fn download(
    state: &AppState,
    identity: &Identity,
    request: HistoryRequest,
) -> Result<Response, ApiError> {
    let HistoryReply::Export(exported) = dispatch(state, identity, request).await? else {
        return Err(ApiError::unavailable("the history answered no file"));
    };
    let disposition = format!("attachment; filename=\"{}\"", exported.file_name);
    Ok((
        [
            (header::CONTENT_TYPE, exported.media_type.to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        exported.content,
    )
        .into_response())
}

/// `GET /v1/k2/runs/{id}/notes`
pub async fn notes(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    Path(run): Path<i64>,
) -> Result<Json<HistoryReply>, ApiError> {
    json(&state, &identity, HistoryRequest::Notes { run }).await
}

/// `POST /v1/k2/runs/{id}/notes` with `{text, seq?, author?}`: answers all the run's notes.
pub async fn add_note(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    Path(run): Path<i64>,
    Json(note): Json<NewNote>,
) -> Result<Json<HistoryReply>, ApiError> {
    json(&state, &identity, HistoryRequest::AddNote { run, note }).await
}

#[derive(Deserialize)]
pub struct AttemptBody {
    answer: String,
}

/// `POST /v1/k2/runs/{id}/attempts` with `{answer}`: checked (`k2_answer::check`: answers
/// `{check: {verdict, basis}, equivalent, attempt}`) and kept.
pub async fn check_attempt(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    Path(run): Path<i64>,
    Json(body): Json<AttemptBody>,
) -> Result<Json<HistoryReply>, ApiError> {
    let request = HistoryRequest::CheckAttempt {
        run,
        answer: body.answer,
    };
    json(&state, &identity, request).await
}
