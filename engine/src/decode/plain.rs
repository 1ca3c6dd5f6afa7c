//! Plain decoding of one sequence: prefill the prompt, then sample one token per forward pass,
//! streaming text as it is produced, until an end token, a stop string, the token limit, the
//! context limit or a cancellation.
//!
//! The per-row logic (sample, stream, stop check) is [`RowDecoder`]; the loop that drives
//! rows through forward passes lives in [`crate::decode::batched`], and plain generation is a
//! batch of one row.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::decode::batched::{generate_batch, BatchOptions};
use crate::decode::loop_guard::LoopGuard;
use crate::decode::sample::{Sampler, SamplingParams};
use crate::decode::stop::StopMatcher;
use crate::decode::think_budget::{ThinkBudget, ThinkState};
use crate::error::{EngineError, Result};
use crate::model::Model;
use crate::tokenizer::{StreamDecoder, Tokenizer};
pub use k2_scaffold::{CancelToken, GenerateOptions};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model produced an end-of-generation token.
    EndOfGeneration,
    MaxTokens,
    StopString,
    /// The context window is full.
    ContextFull,
    Cancelled,
    /// The loop guard found the output repeating one span over and over.
    Loop,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GenerationStats {
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    pub prefill_seconds: f64,
    pub decode_seconds: f64,
    pub prefill_tokens_per_s: f64,
    pub decode_tokens_per_s: f64,
    /// Speculative decoding: tokens proposed by the drafter (0 without speculation).
    #[serde(default)]
    pub drafted_tokens: usize,
    /// Speculative decoding: proposed tokens the target accepted.
    #[serde(default)]
    pub accepted_draft_tokens: usize,
    /// Forward passes of the target model after prefill (with speculation, each may yield
    /// several tokens).
    #[serde(default)]
    pub target_passes: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    pub text: String,
    pub token_ids: Vec<u32>,
    pub stop_reason: StopReason,
    pub stats: GenerationStats,
}

/// One step of the stream: the token just generated and the text it made safe to show
/// (possibly empty: half a character, or text that may still become a stop string).
#[derive(Debug, Clone, Copy)]
pub struct Delta<'a> {
    pub token_id: u32,
    pub text: &'a str,
}

/// Generates a continuation of `prompt_ids` (already templated and tokenized).
///
/// This is [`generate_batch`](crate::decode::batched::generate_batch) with one row: one decode loop
/// serves both, so plain and best-of-N decoding cannot drift apart.
pub fn generate(
    model: &Model,
    tokenizer: &Tokenizer,
    prompt_ids: &[u32],
    options: &GenerateOptions,
    cancel: &CancelToken,
    on_delta: &mut dyn FnMut(Delta<'_>),
) -> Result<Generation> {
    let batch = BatchOptions {
        n: 1,
        generate: options.clone(),
    };
    let mut rows = generate_batch(model, tokenizer, prompt_ids, &batch, cancel, &mut |_, d| {
        on_delta(d)
    })?;
    rows.pop()
        .ok_or_else(|| EngineError::InvalidSetting("a one-row batch returned no row".into()))
}

/// What one decoding step means for a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RowStep {
    /// Feed these tokens to the next forward pass, in one span: the token just accepted,
    /// then any the row forced after it (a think block closed by its budget).
    Feed(Vec<u32>),
    /// The row has finished (its stop reason is recorded).
    Finished,
}

/// Who chose a token the row appends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Model,
    /// Written by the decoder (budget forcing).
    Forced,
}

/// What appending one token left the row with.
enum Appended {
    /// The row goes on; `force` is text the thinking budget wants written next.
    Continue {
        force: Option<String>,
    },
    Finished,
}

/// The per-row half of decoding, shared by plain and batched generation: sample from this
/// row's logits with its own seeded sampler, stream the text (never half a character, never
/// a stop string), force a think block closed when its budget is spent, and decide whether
/// the row ends (an end token, a stop string, the token limit, a loop). The forward pass, the
/// cache and cancellation belong to the caller, which may drive many rows in one batch.
pub(crate) struct RowDecoder<'t> {
    tokenizer: &'t Tokenizer,
    sampler: Sampler,
    /// `None` once the row finished: finishing consumes the decoder's held-back bytes.
    stream: Option<StreamDecoder>,
    stops: StopMatcher,
    token_ids: Vec<u32>,
    max_tokens: usize,
    ignore_eos: bool,
    /// `None` when the options turn the guard off.
    loop_guard: Option<LoopGuard>,
    /// `None` without a thinking budget.
    think_budget: Option<ThinkBudget>,
    finished: Option<(StopReason, Instant)>,
}

impl<'t> RowDecoder<'t> {
    /// `seed` replaces `options.sampling.seed` (batched rows each get their own stream);
    /// `think_start` is where the prompt left the row
    /// ([`state_after_prompt`](crate::decode::think_budget::state_after_prompt)).
    pub(crate) fn new(
        tokenizer: &'t Tokenizer,
        options: &GenerateOptions,
        seed: u64,
        ignore_eos: bool,
        think_start: ThinkState,
    ) -> Self {
        RowDecoder {
            tokenizer,
            sampler: Sampler::new(SamplingParams {
                seed,
                ..options.sampling.clone()
            }),
            stream: Some(tokenizer.stream_decoder()),
            stops: StopMatcher::new(&options.stop),
            token_ids: Vec::new(),
            max_tokens: options.max_tokens,
            ignore_eos,
            loop_guard: options.loop_guard.then(LoopGuard::new),
            think_budget: options
                .thinking_budget
                .map(|budget| ThinkBudget::new(budget, think_start)),
            finished: None,
        }
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.finished.is_some()
    }

    /// A step's first half: samples the next token from `logits` (this row's last position,
    /// whole vocabulary; may be modified). Touches only this row's sampler, so the rows of a
    /// batch can pick in parallel. `None` when the row is done or at its token limit.
    pub(crate) fn pick(&mut self, logits: &mut [f32]) -> Option<u32> {
        if self.remaining() == 0 {
            return None;
        }
        self.mask(logits);
        Some(self.sampler.sample(logits))
    }

    /// Tokens this row may still generate.
    pub(crate) fn remaining(&self) -> usize {
        if self.is_finished() {
            0
        } else {
            self.max_tokens.saturating_sub(self.token_ids.len())
        }
    }

    /// Applies this row's logit constraints before sampling or before any distribution is
    /// compared (speculative verification must see what [`pick`](Self::pick) sees).
    pub(crate) fn mask(&self, logits: &mut [f32]) {
        if self.ignore_eos {
            // Benchmarking aid (as llama.cpp's --ignore-eos): the row can never pick an end
            // token, so it runs to max_tokens without the end token's text in the output.
            for &id in self.tokenizer.end_of_generation_ids() {
                if let Some(l) = logits.get_mut(id as usize) {
                    *l = f32::NEG_INFINITY;
                }
            }
        }
    }

    /// Whether `token` would end this row (drafting past it is wasted work).
    pub(crate) fn ends_with(&self, token: u32) -> bool {
        self.tokenizer.is_end_of_generation(token)
    }

    pub(crate) fn sampler(&mut self) -> &mut Sampler {
        &mut self.sampler
    }

    /// A step's second half, for the token [`pick`](Self::pick) chose: ends the row on an end
    /// token or the limit, else streams the token's text, checks stop strings and the loop
    /// guard, forces a think block closed when its budget is spent, and says what to feed to
    /// the next forward pass.
    pub(crate) fn accept(
        &mut self,
        picked: Option<u32>,
        on_delta: &mut dyn FnMut(Delta<'_>),
    ) -> RowStep {
        if self.is_finished() {
            return RowStep::Finished;
        }
        let Some(token) = picked else {
            return self.finish(StopReason::MaxTokens, on_delta);
        };
        if self.tokenizer.is_end_of_generation(token) {
            return self.finish(StopReason::EndOfGeneration, on_delta);
        }
        let force = match self.append(token, Origin::Model, on_delta) {
            Appended::Finished => return RowStep::Finished,
            Appended::Continue { force } => force,
        };
        let mut feed = vec![token];
        if let Some(text) = force {
            if self.remaining() > 0 {
                for forced in self.forced_tokens(&text) {
                    if let Appended::Finished = self.append(forced, Origin::Forced, on_delta) {
                        return RowStep::Finished;
                    }
                    feed.push(forced);
                    if self.remaining() == 0 {
                        break;
                    }
                }
            }
        }
        if self.token_ids.len() >= self.max_tokens {
            return self.finish(StopReason::MaxTokens, on_delta);
        }
        RowStep::Feed(feed)
    }

    /// Appends one token to the row: streams its text, checks stop strings and the loop
    /// guard, and lets the thinking budget read it.
    fn append(
        &mut self,
        token: u32,
        origin: Origin,
        on_delta: &mut dyn FnMut(Delta<'_>),
    ) -> Appended {
        self.token_ids.push(token);
        let piece = self
            .stream
            .as_mut()
            .and_then(|s| s.push(token))
            .unwrap_or_default();
        let check = self.stops.push(&piece);
        on_delta(Delta {
            token_id: token,
            text: &check.emit,
        });
        if check.stopped {
            self.finish(StopReason::StopString, on_delta);
            return Appended::Finished;
        }
        if let Some(found) = self.loop_guard.as_mut().and_then(|g| g.push(token)) {
            tracing::debug!(
                period = found.period,
                repeats = found.repeats(),
                "loop guard: the row repeats itself; ending it"
            );
            self.finish(StopReason::Loop, on_delta);
            return Appended::Finished;
        }
        let force = match (self.think_budget.as_mut(), origin) {
            (Some(budget), Origin::Model) => budget.push_generated(&piece),
            (Some(budget), Origin::Forced) => {
                budget.push_forced(&piece);
                None
            }
            (None, _) => None,
        };
        Appended::Continue { force }
    }

    /// The tokens of text the decoder forces, tokenized as the model's own output would be
    /// (special tokens parsed: `</think>` is one token in Qwen3 and R1 vocabularies). A text
    /// the tokenizer cannot encode is not forced: the row goes on thinking, which is what it
    /// would do without a budget.
    fn forced_tokens(&self, text: &str) -> Vec<u32> {
        match self.tokenizer.encode(text, true) {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!("thinking budget: cannot tokenize {text:?} ({e}); not forced");
                Vec::new()
            }
        }
    }

    /// Ends the row for `reason` (no-op if it already ended) and streams any text that was
    /// held back: an unfinished character, or a possible stop-string prefix that turned out
    /// not to be one. A stop string ends the text where it starts, so nothing is released.
    pub(crate) fn finish(
        &mut self,
        reason: StopReason,
        on_delta: &mut dyn FnMut(Delta<'_>),
    ) -> RowStep {
        if self.finished.is_some() {
            return RowStep::Finished;
        }
        self.finished = Some((reason, Instant::now()));
        let held = self.stream.take().map(StreamDecoder::finish);
        if reason != StopReason::StopString {
            let tail = self.stops.push(&held.unwrap_or_default());
            let mut rest = tail.emit;
            rest.push_str(&self.stops.finish());
            if !rest.is_empty() {
                on_delta(Delta {
                    token_id: self.token_ids.last().copied().unwrap_or(0),
                    text: &rest,
                });
            }
        }
        RowStep::Finished
    }

    /// The row's result. `prefilled` is when the (shared) prompt pass ended, `None` if it
    /// never did (cancelled during prefill).
    pub(crate) fn into_generation(
        self,
        prompt_tokens: usize,
        started: Instant,
        prefilled: Option<Instant>,
    ) -> Generation {
        let (stop_reason, ended) = self
            .finished
            .unwrap_or((StopReason::Cancelled, Instant::now()));
        let prefilled = prefilled.unwrap_or(ended);
        let prefill_seconds = (prefilled - started).as_secs_f64();
        // This row's own decode phase: from the end of prefill to when it finished (rows of a
        // batch finish at different times, and their rates reflect the batch they ran in).
        let decode_seconds = ended.saturating_duration_since(prefilled).as_secs_f64();
        // Every generated token after the first costs one forward pass (the first comes from
        // the prefill's logits).
        let decode_passes = self.token_ids.len().saturating_sub(1);
        Generation {
            text: self.stops.text().to_owned(),
            stats: GenerationStats {
                prompt_tokens,
                generated_tokens: self.token_ids.len(),
                prefill_seconds,
                decode_seconds,
                prefill_tokens_per_s: rate(prompt_tokens, prefill_seconds),
                decode_tokens_per_s: rate(decode_passes, decode_seconds),
                target_passes: decode_passes,
                ..GenerationStats::default()
            },
            token_ids: self.token_ids,
            stop_reason,
        }
    }
}

/// `n / seconds`, 0 when no time passed.
pub(crate) fn rate(n: usize, seconds: f64) -> f64 {
    if seconds > 0.0 {
        n as f64 / seconds
    } else {
        0.0
    }
}
