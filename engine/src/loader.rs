//! Loading everything a model needs to chat: weights, tokenizer and chat template, from a
//! GGUF file or a Hugging Face folder.

use std::path::Path;

use candle_core::Device;

use crate::chat::{ChatMessage, ChatTemplate};
use crate::error::{EngineError, Result};
use crate::gguf::GgufFile;
use crate::model::{load_gguf, load_safetensors, LoadProgress, Model, ModelConfig};
use crate::models_dir::{describe_model, model_format, ModelFormat, ModelInfo};
use crate::tokenizer::Tokenizer;

pub struct LoadedModel {
    pub model: Model,
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
    pub info: ModelInfo,
}

impl LoadedModel {
    /// A conversation as the model's prompt: rendered by its chat template (ending where the
    /// assistant's turn starts) and tokenized, the template's special tokens parsed as such.
    pub fn chat_prompt_ids(&self, messages: &[ChatMessage]) -> Result<Vec<u32>> {
        let prompt = self.template.render(messages, true)?;
        self.tokenizer.encode_prompt(&prompt, true)
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
