//! Where completions come from. The scaffold (plan, best-of-N, judge) is written against the
//! [`Backend`] trait, so it runs the same on a local model or a remote OpenAI-compatible server.

mod local;
mod remote;

pub use local::{LocalBackend, Speculation};
pub use remote::{RemoteBackend, RemoteConfig};

use k2_protocol::FinishReason;

use crate::chat::ChatMessage;
use crate::error::Result;
use crate::generate::{CancelToken, GenerateOptions, Generation, StopReason};

/// One finished completion.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub text: String,
    pub prompt_tokens: usize,
    pub tokens: usize,
    pub finish: FinishReason,
    /// Wall time from the request to the last token.
    pub seconds: f64,
    /// Speculative decoding: tokens drafted and accepted (both 0 without speculation).
    pub drafted_tokens: usize,
    pub accepted_draft_tokens: usize,
    /// Forward passes of the model after the prompt (one per token without speculation).
    pub target_passes: usize,
}

pub trait Backend: Send + Sync {
    /// Describes the backend for logs and run records, e.g. the model's name.
    fn describe(&self) -> String;

    /// `n` independent completions of one conversation (candidate i samples with its own seed
    /// derived from `options.sampling.seed`), decoded together where the backend can.
    /// `on_delta(i, text)` streams candidate i's text as it is produced.
    fn complete(
        &self,
        messages: &[ChatMessage],
        n: usize,
        options: &GenerateOptions,
        cancel: &CancelToken,
        on_delta: &mut dyn FnMut(usize, &str),
    ) -> Result<Vec<Completion>>;
}

impl From<Generation> for Completion {
    fn from(g: Generation) -> Self {
        Completion {
            prompt_tokens: g.stats.prompt_tokens,
            tokens: g.stats.generated_tokens,
            finish: g.stop_reason.into(),
            seconds: g.stats.prefill_seconds + g.stats.decode_seconds,
            drafted_tokens: g.stats.drafted_tokens,
            accepted_draft_tokens: g.stats.accepted_draft_tokens,
            target_passes: g.stats.target_passes,
            text: g.text,
        }
    }
}

impl From<StopReason> for FinishReason {
    fn from(reason: StopReason) -> Self {
        match reason {
            StopReason::EndOfGeneration | StopReason::StopString => FinishReason::Complete,
            StopReason::MaxTokens => FinishReason::MaxTokens,
            StopReason::ContextFull => FinishReason::ContextFull,
            StopReason::Cancelled => FinishReason::Cancelled,
        }
    }
}
