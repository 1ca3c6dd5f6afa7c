//! Loading everything a model needs to chat: weights, tokenizer and chat template, from a
//! GGUF file or a Hugging Face folder.

use std::path::Path;

use candle_core::Device;
use k2_protocol::Effort;
use k2_scaffold::think::{prompt_opens_reasoning, THINK_TAGS};

use crate::chat::{ChatMessage, ChatTemplate};
use crate::error::{EngineError, Result};
use crate::gguf::GgufFile;
use crate::model::{load_gguf, load_safetensors, LoadProgress, Model, ModelConfig};
use crate::models_dir::{describe_model, model_format, ModelFormat, ModelInfo};
use crate::reasoning::{plan_effort, prefill_think_tag};
use crate::tokenizer::Tokenizer;

pub struct LoadedModel {
    pub model: Model,
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
    pub info: ModelInfo,
}

impl LoadedModel {
    /// A conversation as the model's prompt: rendered by its chat template (ending where the
    /// assistant's turn starts) and tokenized, the template's special tokens parsed as such
    /// and the messages' text as text (see [`ChatPrompt`]).
    pub fn chat_prompt_ids(&self, messages: &[ChatMessage]) -> Result<Vec<u32>> {
        Ok(self.chat_prompt(messages, None)?.ids)
    }

    /// [`LoadedModel::chat_prompt_ids`] at a reasoning effort (`None`: the model's default),
    /// with what the prompt means for the output: whether it opened a think block.
    pub fn chat_prompt(
        &self,
        messages: &[ChatMessage],
        effort: Option<Effort>,
    ) -> Result<ChatPrompt> {
        let plan = plan_effort(self.template.reasoning_controls(), effort);
        // What users and models wrote is rendered marked, so that only the template's own
        // markers become special tokens (see `Tokenizer::protect`). An assistant turn keeps
        // its think tags: the model wrote them as its own tokens, and reasoning templates
        // split the turn at them to drop past reasoning.
        let think_tags: Vec<&str> = THINK_TAGS.iter().flat_map(|(o, c)| [*o, *c]).collect();
        let protected: Vec<ChatMessage> = messages
            .iter()
            .map(|m| {
                let keep: &[&str] = if m.role == "assistant" {
                    &think_tags
                } else {
                    &[]
                };
                let content = self.tokenizer.protect_keeping(&m.content, keep);
                ChatMessage::new(m.role.clone(), content)
            })
            .collect();
        let mut rendered = self
            .template
            .render_with(&protected, true, &plan.template)?;
        if let Some(tag) = plan.prefill {
            prefill_think_tag(&mut rendered, tag);
        }
        let ids = self.tokenizer.encode_chat(&rendered)?;
        let text = Tokenizer::unprotect(&rendered).into_owned();
        Ok(ChatPrompt {
            opened_reasoning: prompt_opens_reasoning(&text),
            thinking_budget: plan.thinking_budget,
            text,
            ids,
        })
    }
}

/// A rendered, tokenized chat prompt. Its special tokens are the template's alone: text in the
/// messages that spells one (`<|im_end|>` typed into a problem, a tag a model wrote) is
/// tokenized as the characters it is, so it cannot end a turn or forge another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatPrompt {
    pub text: String,
    pub ids: Vec<u32>,
    /// The opening think tag the prompt ends with (DeepSeek-R1 distills and K2 Horizon prefill
    /// one): the model's output starts inside the block and holds only its closing tag.
    pub opened_reasoning: Option<&'static str>,
    /// The reasoning-token cap that stands for the request's effort on this model.
    pub thinking_budget: Option<usize>,
}

impl ChatPrompt {
    /// The engine's backends hand on the output with the prefilled opening tag put back in
    /// front, streamed first and kept in the completion's text. Why there: everything
    /// downstream (the pipeline's `ThinkSplitter`, the judge's view, answer extraction, the
    /// stored events, a remote client of `k2 serve`) reads the text alone and knows nothing of
    /// the prompt; with the tag restored the text describes itself, exactly as if the model
    /// had written it. A flag on the completion would arrive after the deltas it governs.
    pub fn stream_opening_tag(&self, rows: usize, on_delta: &mut dyn FnMut(usize, &str)) {
        if let Some(tag) = self.opened_reasoning {
            (0..rows).for_each(|row| on_delta(row, tag));
        }
    }

    /// The options to decode this prompt with: the request's, with the thinking budget that
    /// stands for its effort on this model where the request set no budget itself.
    pub fn generate_options(
        &self,
        requested: &crate::decode::plain::GenerateOptions,
    ) -> crate::decode::plain::GenerateOptions {
        let mut options = requested.clone();
        options.thinking_budget = options.thinking_budget.or(self.thinking_budget);
        options
    }

    /// `output` with the prefilled opening tag in front (see [`ChatPrompt::stream_opening_tag`]).
    pub fn with_opening_tag(&self, output: String) -> String {
        match self.opened_reasoning {
            Some(tag) => format!("{tag}{output}"),
            None => output,
        }
    }
}

/// Loads the model at `path` onto `device`, reporting weight bytes read to `progress`.
pub fn load_model(
    path: &Path,
    device: &Device,
    progress: &mut dyn FnMut(LoadProgress),
) -> Result<LoadedModel> {
    static DEFAULT_THREADS: std::sync::Once = std::sync::Once::new();
    DEFAULT_THREADS.call_once(|| crate::set_cpu_threads(crate::available_cores()));
    let info = describe_model(path)?;
    let loaded = match model_format(path)? {
        ModelFormat::Gguf => {
            let gguf = GgufFile::open(path)?;
            // Architecture and tokenizer first: a file we cannot use fails before seconds of
            // weight loading.
            ModelConfig::from_gguf(&gguf)?;
            if device.is_cpu() {
                crate::memory::check_fits_now(
                    "this model's weights",
                    gguf.weight_bytes(),
                    "choose a smaller or more strongly quantized model",
                )?;
            }
            let tokenizer = Tokenizer::from_gguf(&gguf.content, path)?;
            let template = ChatTemplate::from_gguf(&gguf.content)?;
            let model = load_gguf(&gguf, device, progress)?;
            LoadedModel {
                model,
                tokenizer,
                template,
                info,
            }
        }
        ModelFormat::Safetensors => {
            let config = tokenizer_config(path);
            let tokenizer = Tokenizer::from_files(&path.join("tokenizer.json"), config.as_deref())?;
            let template = match &config {
                Some(c) => ChatTemplate::from_tokenizer_config(c)?,
                None => ChatTemplate::chatml(),
            };
            let model = load_safetensors(path, device)?;
            LoadedModel {
                model,
                tokenizer,
                template,
                info,
            }
        }
    };
    check_vocabularies_agree(&loaded, path)?;
    Ok(loaded)
}

/// The tokenizer of the model at `path` alone, without its weights: enough to tell whether
/// one installed model can draft for another before loading either.
pub fn load_tokenizer(path: &Path) -> Result<Tokenizer> {
    match model_format(path)? {
        ModelFormat::Gguf => Tokenizer::from_gguf(&GgufFile::open(path)?.content, path),
        ModelFormat::Safetensors => Tokenizer::from_files(
            &path.join("tokenizer.json"),
            tokenizer_config(path).as_deref(),
        ),
    }
}

/// A Hugging Face folder's `tokenizer_config.json`, where it has one.
fn tokenizer_config(folder: &Path) -> Option<std::path::PathBuf> {
    Some(folder.join("tokenizer_config.json")).filter(|p| p.exists())
}

fn check_vocabularies_agree(loaded: &LoadedModel, path: &Path) -> Result<()> {
    let model_vocab = loaded.model.config().vocab_size;
    let tokenizer_vocab = loaded.tokenizer.vocab_size();
    if tokenizer_vocab > model_vocab {
        return Err(EngineError::CorruptModel {
            path: path.to_owned(),
            reason: format!(
                "the tokenizer has {tokenizer_vocab} tokens but the model only {model_vocab}"
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod effort_budget_tests {
    use super::ChatPrompt;
    use crate::decode::plain::GenerateOptions;

    #[test]
    fn the_effort_s_budget_applies_only_where_the_request_sets_none() {
        let prompt = ChatPrompt {
            text: String::new(),
            ids: Vec::new(),
            opened_reasoning: Some("<think>"),
            thinking_budget: Some(1024),
        };
        let unset = GenerateOptions::default();
        assert_eq!(prompt.generate_options(&unset).thinking_budget, Some(1024));
        let set = GenerateOptions {
            thinking_budget: Some(64),
            ..GenerateOptions::default()
        };
        assert_eq!(prompt.generate_options(&set).thinking_budget, Some(64));
    }
}
