//! The scaffold's error type: what can go wrong in a run regardless of where the completions
//! come from. A local backend's own errors (the engine's) travel whole inside `Backend`.

pub type Result<T, E = ScaffoldError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error("invalid setting: {0}")]
    InvalidSetting(String),

    #[error("cancelled")]
    Cancelled,

    /// A remote backend failed; the message says what happened and what to check.
    #[error("remote backend {url}: {message}")]
    Remote { url: String, message: String },

    /// A backend's own error (e.g. the engine's), kept whole so callers can inspect it.
    #[error(transparent)]
    Backend(Box<dyn std::error::Error + Send + Sync>),
}
