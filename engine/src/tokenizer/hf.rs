//! Building the tokenizer from a Hugging Face model folder (`tokenizer.json`,
//! `tokenizer_config.json`, `generation_config.json`).

use super::special::{NamedIds, TokenKind};
use super::Parts;
use crate::error::{EngineError, Result};
use serde_json::Value as Json;
use std::path::Path;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::ModelWrapper;

fn read_json(path: &Path) -> Result<Json> {
    let text = std::fs::read_to_string(path).map_err(|e| EngineError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| EngineError::CorruptModel {
        path: path.to_path_buf(),
        reason: format!("invalid JSON: {e}"),
    })
}

/// `bos_token` / `eos_token` are either a string or an AddedToken object `{"content": ...}`.
fn token_text(v: Option<&Json>) -> Option<String> {
    match v? {
        Json::String(s) => Some(s.clone()),
        Json::Object(o) => o.get("content")?.as_str().map(str::to_string),
        _ => None,
    }
}

/// `eos_token_id` in generation_config.json: one id or a list.
fn id_list(v: Option<&Json>) -> Vec<u32> {
    match v {
        Some(Json::Number(n)) => n.as_u64().map(|x| x as u32).into_iter().collect(),
        Some(Json::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_u64().map(|x| x as u32))
            .collect(),
        _ => Vec::new(),
    }
}

fn is_byte_level_decoder(d: &DecoderWrapper) -> bool {
    match d {
        DecoderWrapper::ByteLevel(_) => true,
        DecoderWrapper::Sequence(s) => s.get_decoders().iter().any(is_byte_level_decoder),
        _ => false,
    }
}

fn has_byte_level_pre(p: &PreTokenizerWrapper) -> bool {
    match p {
        PreTokenizerWrapper::ByteLevel(_) => true,
        PreTokenizerWrapper::Sequence(s) => s.as_ref().iter().any(has_byte_level_pre),
        _ => false,
    }
}

pub(super) fn build(tokenizer_json: &Path, config_json: Option<&Path>) -> Result<Parts> {
    if !tokenizer_json.exists() {
        return Err(EngineError::io(
            tokenizer_json,
            std::io::Error::new(std::io::ErrorKind::NotFound, "file not found"),
        ));
    }
    let mut hf = tokenizers::Tokenizer::from_file(tokenizer_json)
        .map_err(|e| EngineError::Tokenizer(format!("{}: {e}", tokenizer_json.display())))?;

    let unsupported = |what: String| {
        EngineError::Tokenizer(format!(
            "{}: {what}; only byte-level BPE tokenizers (Qwen2, Llama 3, DeepSeek-R1-Distill) \
             are supported",
            tokenizer_json.display()
        ))
    };
    if !matches!(hf.get_model(), ModelWrapper::BPE(_)) {
        return Err(unsupported("the tokenizer model is not BPE".into()));
    }
    let byte_level = hf.get_decoder().is_some_and(is_byte_level_decoder)
        || hf.get_pre_tokenizer().is_some_and(has_byte_level_pre);
    if !byte_level {
        return Err(unsupported("the tokenizer is not byte-level".into()));
    }

    // Special-token matching is done by the caller (llama.cpp's rules, both modes); the inner
    // tokenizer must treat special added tokens as plain text, and never pad or truncate.
    hf.set_encode_special_tokens(true);
    hf.with_truncation(None)
        .map_err(|e| EngineError::Tokenizer(e.to_string()))?;
    hf.with_padding(None);

    let vocab = hf.get_vocab(true);
    let n = vocab.values().max().map_or(0, |&m| m as usize + 1);
    let mut tokens = vec![String::new(); n];
    let mut kinds = vec![TokenKind::Unused; n];
    for (text, id) in vocab {
        tokens[id as usize] = text;
        kinds[id as usize] = TokenKind::Normal;
    }
    for (id, added) in hf.get_added_tokens_decoder() {
        if let Some(kind) = kinds.get_mut(id as usize) {
            *kind = if added.special {
                TokenKind::Control
            } else {
                TokenKind::UserDefined
            };
        }
    }

    let config = match config_json {
        Some(p) => Some(read_json(p)?),
        None => None,
    };
    let lookup = |text: Option<String>| text.and_then(|t| hf.token_to_id(&t));
    let bos_id = lookup(token_text(config.as_ref().and_then(|c| c.get("bos_token"))));
    let eos_id = lookup(token_text(config.as_ref().and_then(|c| c.get("eos_token"))));

    let mut named = NamedIds::default();
    named.end_ids.extend(eos_id);
    let gen_config = tokenizer_json.with_file_name("generation_config.json");
    if gen_config.exists() {
        let g = read_json(&gen_config)?;
        named.end_ids.extend(id_list(g.get("eos_token_id")));
    }

    // add_bos_token when the config says so; otherwise whatever tokenizer.json's own
    // post-processor does (Llama 3's prepends <|begin_of_text|>, Qwen2's adds nothing).
    let add_bos = match config
        .as_ref()
        .and_then(|c| c.get("add_bos_token"))
        .and_then(Json::as_bool)
    {
        Some(b) => b,
        None => match bos_id {
            Some(bos) => hf
                .encode_fast("a", true)
                .map(|e| e.get_ids().first() == Some(&bos))
                .unwrap_or(false),
            None => false,
        },
    };

    Ok(Parts {
        hf,
        tokens,
        kinds,
        named,
        bos_id,
        eos_id,
        add_bos,
        model: "gpt2".to_string(),
        pre: "tokenizer.json".to_string(),
    })
}
