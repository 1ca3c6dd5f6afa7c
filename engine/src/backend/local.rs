//! A model loaded in this process (CPU, CUDA or Metal through candle).

use std::sync::Arc;

use super::{Backend, Completion};
use crate::batched::{generate_batch, BatchOptions};
use crate::chat::ChatMessage;
use crate::error::Result;
use crate::generate::{CancelToken, GenerateOptions};
use crate::loader::LoadedModel;

pub struct LocalBackend {
    model: Arc<LoadedModel>,
}

impl LocalBackend {
    pub fn new(model: Arc<LoadedModel>) -> Self {
        LocalBackend { model }
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
    ) -> Result<Vec<Completion>> {
        let prompt = self.model.template.render(messages, true)?;
        // The template's own special tokens must be parsed as such.
        let prompt_ids = self.model.tokenizer.encode_prompt(&prompt, true)?;
        let batch = BatchOptions {
            n,
            generate: options.clone(),
        };
        let generations = generate_batch(
            &self.model.model,
            &self.model.tokenizer,
            &prompt_ids,
            &batch,
            cancel,
            &mut |row, delta| {
                if !delta.text.is_empty() {
                    on_delta(row, delta.text)
                }
            },
        )?;
        Ok(generations
            .into_iter()
            .map(|g| Completion {
                prompt_tokens: g.stats.prompt_tokens,
                tokens: g.stats.generated_tokens,
                finish: g.stop_reason.into(),
                seconds: g.stats.prefill_seconds + g.stats.decode_seconds,
                text: g.text,
            })
            .collect())
    }
}
