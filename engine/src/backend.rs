//! The engine as the scaffold's [`Backend`]: a model loaded in this process (CPU, CUDA or
//! Metal through candle). `serving::ScheduledBackend` is the same through the
//! continuous-batching scheduler.

use std::sync::Arc;

use k2_protocol::FinishReason;
use k2_scaffold::{Backend, Completion, ScaffoldError};

use crate::chat::ChatMessage;
use crate::decode::batched::{generate_batch, BatchOptions};
use crate::decode::plain::{CancelToken, GenerateOptions, Generation, StopReason};
use crate::decode::speculative::{generate_speculative, DraftSource, SpecTuning};
use crate::loader::{ChatPrompt, LoadedModel};

pub struct LocalBackend {
    model: Arc<LoadedModel>,
    speculation: Option<Speculation>,
}

/// Speculative decoding for every completion of a backend.
#[derive(Clone)]
pub struct Speculation {
    pub drafter: Drafter,
    pub tuning: SpecTuning,
}

/// Where a backend's drafts come from (see [`DraftSource`]).
#[derive(Clone)]
pub enum Drafter {
    /// A draft model, already checked for compatibility with the target.
    Model(Arc<LoadedModel>),
    /// Prompt lookup.
    Ngram,
    /// Cross-candidate suffix drafting.
    Suffix,
}

impl Drafter {
    pub fn source(&self) -> DraftSource<'_> {
        match self {
            Drafter::Model(draft) => DraftSource::Model(&draft.model),
            Drafter::Ngram => DraftSource::Ngram,
            Drafter::Suffix => DraftSource::Suffix,
        }
    }
}

impl LocalBackend {
    pub fn new(model: Arc<LoadedModel>) -> Self {
        LocalBackend {
            model,
            speculation: None,
        }
    }

    /// Decodes every completion speculatively (lossless: same distribution, and greedy
    /// output identical to plain decoding).
    pub fn with_speculation(mut self, speculation: Speculation) -> Self {
        self.speculation = Some(speculation);
        self
    }

    pub fn model(&self) -> &LoadedModel {
        &self.model
    }
}

impl Backend for LocalBackend {
    fn describe(&self) -> String {
        self.model.info.name.clone()
    }

    fn complete(
        &self,
        messages: &[ChatMessage],
        n: usize,
        options: &GenerateOptions,
        cancel: &CancelToken,
        on_delta: &mut dyn FnMut(usize, &str),
    ) -> Result<Vec<Completion>, ScaffoldError> {
        let prompt = self.model.chat_prompt(messages, options.effort)?;
        let prompt_ids = &prompt.ids;
        prompt.stream_opening_tag(n, on_delta);
        let batch = BatchOptions {
            n,
            generate: prompt.generate_options(options),
        };
        let mut on_row_delta = |row: usize, delta: crate::decode::plain::Delta<'_>| {
            if !delta.text.is_empty() {
                on_delta(row, delta.text)
            }
        };
        let generations = match &self.speculation {
            None => generate_batch(
                &self.model.model,
                &self.model.tokenizer,
                prompt_ids,
                &batch,
                cancel,
                &mut on_row_delta,
            )?,
            Some(spec) => {
                let (generation, _) = generate_speculative(
                    &self.model.model,
                    &self.model.tokenizer,
                    prompt_ids,
                    &batch,
                    spec.drafter.source(),
                    &spec.tuning,
                    cancel,
                    &mut on_row_delta,
                )?;
                generation.rows
            }
        };
        Ok(generations
            .into_iter()
            .map(|g| completion_after(&prompt, g))
            .collect())
    }
}

/// The completion of a row decoded after `prompt`, its text as the rest of K2 reads it
/// (see [`ChatPrompt::stream_opening_tag`]).
pub(crate) fn completion_after(prompt: &ChatPrompt, generation: Generation) -> Completion {
    let mut completion = Completion::from(generation);
    completion.text = prompt.with_opening_tag(completion.text);
    completion
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
            StopReason::Loop => FinishReason::Loop,
        }
    }
}
