//! `/v1/k2/runs/…`: the history of a classroom server, the same operations as the desktop
//! app's (both are adapters over `k2_history`): list and search, replay, delete, export,
//! teachers' notes and students' checked attempts.

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use k2_history::{AttemptResult, HistoryError, HistoryItem, NewNote};
use k2_store::{Note, Store};
use serde::Deserialize;

use crate::error::ApiError;
use crate::state::AppState;

impl From<HistoryError> for ApiError {
    fn from(error: HistoryError) -> Self {
        match &error {
            HistoryError::BadRequest(_) => ApiError::bad_request(error.to_string()),
            HistoryError::NotFound(_) => ApiError::not_found(error.to_string()),
            HistoryError::Store(_) => ApiError::unavailable(error.to_string()),
        }
    }
}

fn store(state: &AppState) -> Result<&Store, ApiError> {
    state.store.as_ref().ok_or_else(|| {
        ApiError::unavailable("this server keeps no history (started with --no-history)")
    })
}

#[derive(Deserialize)]
pub struct ListQuery {
    /// Words to search for; the newest runs without it.
    q: Option<String>,
}

/// `GET /v1/k2/runs[?q=words]`
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<HistoryItem>>, ApiError> {
    let Some(store) = &state.store else {
        return Ok(Json(Vec::new()));
    };
    Ok(Json(k2_history::list(store, query.q.as_deref()).await?))
}

/// `GET /v1/k2/runs/{id}/events`
pub async fn events(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Vec<k2_protocol::Event>>, ApiError> {
    Ok(Json(k2_history::events(store(&state)?, id).await?))
}

/// `DELETE /v1/k2/runs/{id}`
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    k2_history::delete(store(&state)?, id).await?;
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
    Path(id): Path<i64>,
    Query(query): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let exported = k2_history::export(store(&state)?, id, &query.format).await?;
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
    Path(id): Path<i64>,
) -> Result<Json<Vec<Note>>, ApiError> {
    Ok(Json(k2_history::notes(store(&state)?, id).await?))
}

/// `POST /v1/k2/runs/{id}/notes` with `{text, seq?, author?}`: answers all the run's notes.
pub async fn add_note(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Json(note): Json<NewNote>,
) -> Result<Json<Vec<Note>>, ApiError> {
    Ok(Json(k2_history::add_note(store(&state)?, id, &note).await?))
}

#[derive(Deserialize)]
pub struct AttemptBody {
    answer: String,
}

/// `POST /v1/k2/runs/{id}/attempts` with `{answer}`: checked against the run's answer and kept.
pub async fn check_attempt(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Json(body): Json<AttemptBody>,
) -> Result<Json<AttemptResult>, ApiError> {
    Ok(Json(
        k2_history::check_attempt(store(&state)?, id, &body.answer).await?,
    ))
}
