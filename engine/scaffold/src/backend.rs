//! The vocabulary of the [`Backend`] trait: where a run's completions come from, what they are
//! asked with and what comes back. The scaffold is written against it, so it runs the same on
//! a local model (the engine's `LocalBackend`, `ScheduledBackend`) or a remote server.
//!
//! These are plain data shared with the engine, which decodes with them; they live here so
//! that the scaffold builds without candle.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use k2_protocol::{Effort, FinishReason};
use serde::{Deserialize, Serialize};

use crate::error::{Result, ScaffoldError};

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

/// One turn of a conversation. `role` is `system`, `user` or `assistant` (templates may know more).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// Cancels a running generation from another thread; checked before every forward pass.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateOptions {
    pub sampling: SamplingParams,
    pub max_tokens: usize,
    /// Generation ends when the text contains one of these; it is not part of the output.
    pub stop: Vec<String>,
    /// How long a reasoning model thinks; `None` is the model's own default. Each backend maps
    /// it to what its model understands (the engine: `k2_engine::reasoning`; a remote server:
    /// OpenAI's `reasoning_effort`).
    #[serde(default)]
    pub effort: Option<Effort>,
    /// Most tokens a completion may generate inside a think block (see
    /// [`crate::think::THINK_TAGS`]), counted over all its blocks; when it is spent and a block
    /// is still open, the decoder writes the block's closing tag and a short lead into the
    /// answer itself ("budget forcing") and generation goes on up to `max_tokens`. `None`: no
    /// cap. At least 1 where set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_budget: Option<usize>,
    /// End a completion whose text degenerated into one span repeated over and over
    /// (`FinishReason::Loop`). On by default: small models loop, and a loop only burns
    /// tokens up to `max_tokens`.
    #[serde(default = "loop_guard_on")]
    pub loop_guard: bool,
}

fn loop_guard_on() -> bool {
    true
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            sampling: SamplingParams::default(),
            max_tokens: 512,
            stop: Vec::new(),
            thinking_budget: None,
            loop_guard: loop_guard_on(),
            effort: None,
        }
    }
}

impl GenerateOptions {
    /// The checks every decoder makes before it starts: the sampling settings and the
    /// thinking budget.
    pub fn validate(&self) -> Result<()> {
        self.sampling.validate()?;
        if self.thinking_budget == Some(0) {
            return Err(ScaffoldError::InvalidSetting(
                "the thinking budget must be at least 1 token (leave it out for no cap)".into(),
            ));
        }
        Ok(())
    }
}

/// How the next token is drawn from the logits (the engine's sampler implements it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplingParams {
    /// 0 means greedy (always the most likely token).
    pub temperature: f32,
    /// Keep only the k most likely tokens; 0 disables.
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches p; 1 disables.
    pub top_p: f32,
    /// Drop tokens less likely than min_p times the most likely one; 0 disables.
    pub min_p: f32,
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            seed: 0,
        }
    }
}

impl SamplingParams {
    pub fn greedy() -> Self {
        Self::default()
    }

    /// Neither top-k, top-p nor min-p removes any token.
    pub fn keeps_whole_vocabulary(&self) -> bool {
        !(self.top_k > 0 || self.top_p < 1.0 || self.min_p > 0.0)
    }

    pub fn is_greedy(&self) -> bool {
        self.temperature <= 0.0 || self.top_k == 1
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(ScaffoldError::InvalidSetting(m.to_owned()));
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return bad("temperature must be a number >= 0 (0 = greedy)");
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top-p must be in (0, 1]");
        }
        if !(0.0..1.0).contains(&self.min_p) {
            return bad("min-p must be in [0, 1)");
        }
        Ok(())
    }
}

impl From<&k2_protocol::SamplingSettings> for SamplingParams {
    fn from(s: &k2_protocol::SamplingSettings) -> Self {
        SamplingParams {
            temperature: s.temperature,
            top_k: s.top_k,
            top_p: s.top_p,
            min_p: s.min_p,
            seed: s.seed,
        }
    }
}

/// The golden-ratio increment of SplitMix64.
const SPLITMIX_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// The sampling seed of row `row` of a batch whose base seed is `base`.
///
/// Row 0 uses `base` itself, so a one-row batch is exactly plain generation with that seed
/// and the first of N samples is the answer a single run would give. Row `r >= 1` uses the
/// `r`-th output of a SplitMix64 generator seeded with `base` (Steele et al., the standard
/// seed-splitting mixer): well-mixed, so rows of one batch are independent streams, and
/// batches with nearby base seeds (0, 1, 2...) do not share rows, as a plain `base + r` would.
pub fn derive_seed(base: u64, row: usize) -> u64 {
    if row == 0 {
        return base;
    }
    let mut z = base.wrapping_add((row as u64).wrapping_mul(SPLITMIX_GAMMA));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
