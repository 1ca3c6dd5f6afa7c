//! Plain decoding of one sequence: prefill the prompt, then sample one token per forward pass,
//! streaming text as it is produced, until an end token, a stop string, the token limit, the
//! context limit or a cancellation.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::model::{LogitsFor, Model};
use crate::sample::{Sampler, SamplingParams};
use crate::stop::StopMatcher;
use crate::tokenizer::Tokenizer;

/// Prompt tokens per prefill forward pass: bounds the attention scores' memory on long prompts.
const PREFILL_CHUNK: usize = 512;

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
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            sampling: SamplingParams::default(),
            max_tokens: 512,
            stop: Vec::new(),
        }
    }
}

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
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GenerationStats {
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    pub prefill_seconds: f64,
    pub decode_seconds: f64,
    pub prefill_tokens_per_s: f64,
    pub decode_tokens_per_s: f64,
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
pub fn generate(
    model: &Model,
    tokenizer: &Tokenizer,
    prompt_ids: &[u32],
    options: &GenerateOptions,
    cancel: &CancelToken,
    on_delta: &mut dyn FnMut(Delta<'_>),
) -> Result<Generation> {
    options.sampling.validate()?;
    let context = model.config().context_length;
    if prompt_ids.is_empty() {
        return Err(EngineError::InvalidSetting("the prompt is empty".into()));
    }
    if prompt_ids.len() >= context {
        return Err(EngineError::PromptTooLong {
            prompt_tokens: prompt_ids.len(),
            context_length: context,
        });
    }
    let mut cache = model.new_cache(None);
    cache.add_row()?;
    let mut sampler = Sampler::new(options.sampling.clone());
    let mut stream = tokenizer.stream_decoder();
    let mut stops = StopMatcher::new(&options.stop);
    let mut token_ids = Vec::new();

    let started = Instant::now();
    let mut logits = Vec::new();
    for chunk in prompt_ids.chunks(PREFILL_CHUNK) {
        if cancel.is_cancelled() {
            return Ok(finish(stops, token_ids, StopReason::Cancelled, prompt_ids.len(), started, None));
        }
        let out = model.forward(&mut cache, &[chunk], LogitsFor::Last)?;
        logits = out[0].squeeze(0)?.to_vec1::<f32>()?;
    }
    let prefilled = Instant::now();

    let stop_reason = loop {
        if cancel.is_cancelled() {
            break StopReason::Cancelled;
        }
        if token_ids.len() >= options.max_tokens {
            break StopReason::MaxTokens;
        }
        let token = sampler.sample(&logits);
        if tokenizer.is_end_of_generation(token) {
            break StopReason::EndOfGeneration;
        }
        token_ids.push(token);
        let piece = stream.push(token).unwrap_or_default();
        let check = stops.push(&piece);
        on_delta(Delta {
            token_id: token,
            text: &check.emit,
        });
        if check.stopped {
            break StopReason::StopString;
        }
        if token_ids.len() >= options.max_tokens {
            break StopReason::MaxTokens;
        }
        if cache.len(0) + 1 > cache.max_len() {
            break StopReason::ContextFull;
        }
        let out = model.forward(&mut cache, &[&[token]], LogitsFor::Last)?;
        logits = out[0].squeeze(0)?.to_vec1::<f32>()?;
    };
    if stop_reason != StopReason::StopString {
        let tail = stops.push(&stream.finish());
        let mut rest = tail.emit;
        rest.push_str(&stops.finish());
        if !rest.is_empty() {
            on_delta(Delta {
                token_id: token_ids.last().copied().unwrap_or(0),
                text: &rest,
            });
        }
    }
    Ok(finish(
        stops,
        token_ids,
        stop_reason,
        prompt_ids.len(),
        started,
        Some(prefilled),
    ))
}

fn finish(
    stops: StopMatcher,
    token_ids: Vec<u32>,
    stop_reason: StopReason,
    prompt_tokens: usize,
    started: Instant,
    prefilled: Option<Instant>,
) -> Generation {
    let now = Instant::now();
    let prefilled = prefilled.unwrap_or(now);
    let prefill_seconds = (prefilled - started).as_secs_f64();
    let decode_seconds = (now - prefilled).as_secs_f64();
    // Every generated token after the first costs one forward pass.
    let decode_passes = token_ids.len().saturating_sub(1);
    let rate = |n: usize, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
    Generation {
        text: stops.text().to_owned(),
        stats: GenerationStats {
            prompt_tokens,
            generated_tokens: token_ids.len(),
            prefill_seconds,
            decode_seconds,
            prefill_tokens_per_s: rate(prompt_tokens, prefill_seconds),
            decode_tokens_per_s: rate(decode_passes, decode_seconds),
        },
        token_ids,
        stop_reason,
    }
}
