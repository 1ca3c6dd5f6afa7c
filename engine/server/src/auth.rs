//! Bearer-token authentication for the API (`Authorization: Bearer <token>`): the teacher's
//! token (`--token`) or a student's from the class roster (`--roster`). Who a request comes
//! from is its token's owner, never anything in its body: handlers read the [`Identity`] put
//! in the request's extensions here.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use k2_store::StudentId;

use crate::error::ApiError;
use crate::state::AppState;

/// Whose token a request carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// The server's own token: every operation on every run.
    Teacher,
    /// A student on the roster: their own runs (`k2_history::Viewer::Student`).
    Student { id: StudentId, name: Arc<str> },
}

impl Identity {
    pub fn is_teacher(&self) -> bool {
        matches!(self, Identity::Teacher)
    }

    /// A stable key for per-client limits: `teacher` or `student:<id>`.
    pub fn limit_key(&self) -> String {
        match self {
            Identity::Teacher => "teacher".into(),
            Identity::Student { id, .. } => format!("student:{id}"),
        }
    }

    /// `teacher` or `student` (a metrics label, `/v1/k2/me`).
    pub fn role(&self) -> &'static str {
        match self {
            Identity::Teacher => "teacher",
            Identity::Student { .. } => "student",
        }
    }

    pub fn viewer(&self) -> k2_history::Viewer {
        match self {
            Identity::Teacher => k2_history::Viewer::Teacher,
            Identity::Student { id, .. } => k2_history::Viewer::Student(*id),
        }
    }
}

pub async fn require_token(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = given else {
        return ApiError::unauthorized(
            "missing token: send `Authorization: Bearer <token>` (k2 serve printed the token at start)",
        )
        .into_response();
    };
    let identity = match identify(&state, token).await {
        Ok(identity) => identity,
        Err(error) => return error.into_response(),
    };
    request.extensions_mut().insert(identity);
    next.run(request).await
}

async fn identify(state: &AppState, token: &str) -> Result<Identity, ApiError> {
    if same_secret(token.as_bytes(), state.token.as_bytes()) {
        return Ok(Identity::Teacher);
    }
    let student = match &state.class {
        Some(class) => class.student_with(token).await?,
        None => None,
    };
    student.ok_or_else(|| ApiError::unauthorized("wrong token"))
}

/// Compares without stopping at the first difference, so timing does not reveal how much of a
/// guess was right.
pub(crate) fn same_secret(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn secrets_compare_exactly() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
        assert!(!same_secret(b"", b"a"));
    }
}
