//! One error type for the engine. Every variant carries what a user needs to act on it:
//! the file, the setting or the limit involved, never a bare "invalid input".

use std::path::PathBuf;

use k2_scaffold::ScaffoldError;

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path} is not a model file: {reason}")]
    NotAModel { path: PathBuf, reason: String },

    #[error("{path} is damaged: {reason} (download or copy the model again)")]
    CorruptModel { path: PathBuf, reason: String },

    #[error(
        "{path}: architecture `{arch}` is not supported (supported: {supported})",
        supported = crate::model::config::supported_architectures()
    )]
    UnsupportedArchitecture { path: PathBuf, arch: String },

    #[error("{path}: tensor `{tensor}` uses quantization {quant}, which this engine cannot run (supported: {supported})")]
    UnsupportedQuantization {
        path: PathBuf,
        tensor: String,
        quant: String,
        supported: String,
    },

    #[error("{path}: missing {what}")]
    MissingMetadata { path: PathBuf, what: String },

    #[error("tokenizer: {0}")]
    Tokenizer(String),

    #[error("chat template: {0}")]
    ChatTemplate(String),

    /// A template stopped at a limit of `crate::chat` (steps, output bytes).
    #[error("the model's chat template {0}; the model file may be damaged or made to stall")]
    TemplateLimit(String),
    #[error("the prompt is {prompt_tokens} tokens but the model's context holds {context_length}; shorten the problem or use a model with a longer context")]
    PromptTooLong {
        prompt_tokens: usize,
        context_length: usize,
    },

    #[error("invalid setting: {0}")]
    InvalidSetting(String),

    /// Refused before allocating (see `crate::memory`).
    #[error(
        "{what} needs ~{need} GB of memory, but this machine has {have} GB available; {advice}"
    )]
    OutOfMemory {
        what: String,
        need: String,
        have: String,
        advice: String,
    },

    #[error("model `{0}` not found: give a path to a .gguf file or model folder, or a name from `k2 models`")]
    ModelNotFound(String),

    #[error("compute error: {0}")]
    Compute(#[from] candle_core::Error),

    #[error("{draft} cannot draft for {target}: {reason}; choose a draft model from the target's family (same tokenizer), or use --spec ngram")]
    IncompatibleDraft {
        draft: String,
        target: String,
        reason: String,
    },

    #[error("cancelled")]
    Cancelled,

    #[error("kernel error: {0}")]
    Kernel(String),

    /// The server's queue is full; the request was not started.
    #[error("the server is busy ({reason}); retry in {retry_after_s} s")]
    Busy { reason: String, retry_after_s: u64 },

    #[error("a model named `{name}` is already installed at {path}; remove it first or pick another file")]
    AlreadyInstalled { name: String, path: PathBuf },

    #[error("download of {url} failed: {message}")]
    Download { url: String, message: String },

    #[error("{path} does not match its checksum (expected sha256 {expected}, got {found}); it was not installed, download it again")]
    ChecksumMismatch {
        path: PathBuf,
        expected: String,
        found: String,
    },

    /// The scaffold or a remote backend failed (the engine's own errors come back whole).
    #[error(transparent)]
    Scaffold(k2_scaffold::ScaffoldError),
}

impl EngineError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        EngineError::Io {
            path: path.into(),
            source,
        }
    }
}

/// The engine as a scaffold backend: its errors travel inside the scaffold's, whole.
impl From<EngineError> for ScaffoldError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::Cancelled => ScaffoldError::Cancelled,
            EngineError::InvalidSetting(message) => ScaffoldError::InvalidSetting(message),
            EngineError::Scaffold(inner) => inner,
            other => ScaffoldError::Backend(Box::new(other)),
        }
    }
}

impl From<ScaffoldError> for EngineError {
    fn from(error: ScaffoldError) -> Self {
        match error {
            ScaffoldError::Cancelled => EngineError::Cancelled,
            ScaffoldError::InvalidSetting(message) => EngineError::InvalidSetting(message),
            ScaffoldError::Backend(inner) => match inner.downcast::<EngineError>() {
                Ok(engine) => *engine,
                Err(other) => EngineError::Scaffold(ScaffoldError::Backend(other)),
            },
            other => EngineError::Scaffold(other),
        }
    }
}
