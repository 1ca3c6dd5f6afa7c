//! Bearer-token authentication for the API (`Authorization: Bearer <token>`).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::AppState;

/// Who a request comes from, put into the request's extensions by [`require_token`].
// Placeholder of the issue-29 contract (api29.md) until the roster lands: every valid token is
// the teacher's.
#[derive(Clone, Debug)]
pub enum Identity {
    Teacher,
    #[allow(dead_code)]
    Student {
        id: i64,
        name: Arc<str>,
    },
}

impl Identity {
    pub fn is_teacher(&self) -> bool {
        matches!(self, Identity::Teacher)
    }

    /// Stable key for per-client limits: "teacher" or "student:<id>".
    pub fn limit_key(&self) -> String {
        match self {
            Identity::Teacher => "teacher".to_owned(),
            Identity::Student { id, .. } => format!("student:{id}"),
        }
    }

    /// "teacher", "student" (metrics label).
    #[allow(dead_code)]
    pub fn role(&self) -> &'static str {
        match self {
            Identity::Teacher => "teacher",
            Identity::Student { .. } => "student",
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
    match given {
        None => ApiError::unauthorized(
            "missing token: send `Authorization: Bearer <token>` (k2 serve printed the token at start)",
        )
        .into_response(),
        Some(token) if !same_secret(token.as_bytes(), state.token.as_bytes()) => {
            ApiError::unauthorized("wrong token").into_response()
        }
        Some(_) => {
            request.extensions_mut().insert(Identity::Teacher);
            next.run(request).await
        }
    }
}

/// Compares without stopping at the first difference, so timing does not reveal how much of a
/// guess was right.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
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
