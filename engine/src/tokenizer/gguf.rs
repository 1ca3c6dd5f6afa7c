//! Building the tokenizer from GGUF metadata (`tokenizer.ggml.*`), the way llama.cpp reads it.

use super::pretok::PreTokenizerKind;
use super::special::{NamedIds, TokenKind, FIM_ROLES};
use super::Parts;
use crate::error::{EngineError, Result};
use candle_core::quantized::gguf_file::{Content, Value};
use std::path::Path;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Vocab, BPE};

fn missing(path: &Path, what: &str) -> EngineError {
    EngineError::MissingMetadata {
        path: path.to_path_buf(),
        what: what.to_string(),
    }
}

fn corrupt(path: &Path, reason: String) -> EngineError {
    EngineError::CorruptModel {
        path: path.to_path_buf(),
        reason,
    }
}

fn as_int(v: &Value) -> Option<i64> {
    Some(match v {
        Value::U8(x) => *x as i64,
        Value::I8(x) => *x as i64,
        Value::U16(x) => *x as i64,
        Value::I16(x) => *x as i64,
        Value::U32(x) => *x as i64,
        Value::I32(x) => *x as i64,
        Value::U64(x) => i64::try_from(*x).ok()?,
        Value::I64(x) => *x,
        _ => return None,
    })
}

/// Reads an optional token id; a negative id (some converters write -1 for "none") or an id
/// past the vocabulary counts as absent.
fn token_id(ct: &Content, key: &str, n_tokens: usize) -> Option<u32> {
    let id = as_int(ct.metadata.get(key)?)?;
    (0..n_tokens as i64).contains(&id).then_some(id as u32)
}

fn string_array(ct: &Content, path: &Path, key: &str) -> Result<Vec<String>> {
    let arr = match ct.metadata.get(key) {
        None => return Err(missing(path, &format!("tokenizer metadata `{key}`"))),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(corrupt(path, format!("`{key}` is not an array"))),
    };
    arr.iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::String(s) => Ok(s.clone()),
            _ => Err(corrupt(path, format!("`{key}`[{i}] is not a string"))),
        })
        .collect()
}

pub(super) fn build(ct: &Content, path: &Path) -> Result<Parts> {
    let model = match ct.metadata.get("tokenizer.ggml.model") {
        None => return Err(missing(path, "tokenizer metadata `tokenizer.ggml.model`")),
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(corrupt(
                path,
                "`tokenizer.ggml.model` is not a string".into(),
            ))
        }
    };
    if model != "gpt2" {
        let family = match model.as_str() {
            "llama" => " (SentencePiece)",
            "bert" => " (WordPiece)",
            "t5" => " (Unigram)",
            "rwkv" => " (RWKV)",
            _ => "",
        };
        return Err(EngineError::Tokenizer(format!(
            "{}: the tokenizer type `{model}`{family} is not supported; only byte-level BPE \
             (`gpt2`, used by Qwen2, Llama 3, SmolLM and DeepSeek-R1-Distill) is",
            path.display()
        )));
    }

    let tokens = string_array(ct, path, "tokenizer.ggml.tokens")?;
    let n = tokens.len();
    if n == 0 {
        return Err(corrupt(path, "`tokenizer.ggml.tokens` is empty".into()));
    }
    let merges = parse_merges(string_array(ct, path, "tokenizer.ggml.merges")?, path)?;

    let mut kinds = vec![TokenKind::Normal; n];
    if let Some(v) = ct.metadata.get("tokenizer.ggml.token_type") {
        let Value::Array(types) = v else {
            return Err(corrupt(
                path,
                "`tokenizer.ggml.token_type` is not an array".into(),
            ));
        };
        if types.len() != n {
            return Err(corrupt(
                path,
                format!(
                    "`tokenizer.ggml.token_type` has {} entries for {n} tokens",
                    types.len()
                ),
            ));
        }
        for (kind, ty) in kinds.iter_mut().zip(types) {
            *kind = TokenKind::from_gguf(as_int(ty).unwrap_or(1));
        }
    }

    let pre_name = match ct.metadata.get("tokenizer.ggml.pre") {
        Some(Value::String(s)) => s.clone(),
        _ => {
            tracing::warn!(path = %path.display(), "GGUF has no `tokenizer.ggml.pre`; using llama.cpp's default pre-tokenizer");
            "default".to_string()
        }
    };
    let pre = PreTokenizerKind::from_gguf_name(&pre_name).unwrap_or_else(|| {
        tracing::warn!(
            path = %path.display(),
            pre = %pre_name,
            "unknown pre-tokenizer; falling back to GPT-2's (tokenization may differ from the model's training)"
        );
        PreTokenizerKind::Gpt2
    });

    let vocab: Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let merges = usable_merges(merges, &vocab, path);
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .ignore_merges(pre.ignore_merges())
        .build()
        .map_err(|e| corrupt(path, format!("BPE vocabulary and merges do not fit: {e}")))?;
    let mut hf = tokenizers::Tokenizer::new(bpe);
    if pre.normalizes_nfc() {
        hf.with_normalizer(Some(tokenizers::normalizers::unicode::NFC))
            .map_err(|e| EngineError::Tokenizer(format!("NFC normalizer: {e}")))?;
    }
    hf.with_pre_tokenizer(Some(pre.build()?));
    hf.with_decoder(Some(ByteLevelDecoder::default()));

    let bos_id = token_id(ct, "tokenizer.ggml.bos_token_id", n);
    let eos_id = token_id(ct, "tokenizer.ggml.eos_token_id", n);
    let add_bos = matches!(
        ct.metadata.get("tokenizer.ggml.add_bos_token"),
        Some(Value::Bool(true))
    );

    let mut named = NamedIds::default();
    for key in [
        "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.eot_token_id",
        "tokenizer.ggml.eom_token_id",
    ] {
        if let Some(id) = token_id(ct, key, n) {
            named.end_ids.push(id);
        }
    }
    named.has_eot = token_id(ct, "tokenizer.ggml.eot_token_id", n).is_some();
    for (role, fim) in FIM_ROLES.iter().enumerate() {
        if let Some(id) = token_id(ct, fim.metadata_key, n) {
            named.fim.push((role, id));
        }
    }

    Ok(Parts {
        hf,
        tokens,
        kinds,
        named,
        bos_id,
        eos_id,
        add_bos,
        model,
        pre: pre.name().to_string(),
    })
}

/// The merges whose parts and result are all tokens of the vocabulary. llama.cpp loads a file
/// with others and tokenizes as if they were not there (a merged piece it cannot find falls
/// back to its bytes); the BPE model refuses them, so they are left out, with a warning.
fn usable_merges(
    merges: Vec<(String, String)>,
    vocab: &Vocab,
    path: &Path,
) -> Vec<(String, String)> {
    let total = merges.len();
    let usable: Vec<(String, String)> = merges
        .into_iter()
        .filter(|(left, right)| {
            vocab.contains_key(left)
                && vocab.contains_key(right)
                && vocab.contains_key(&format!("{left}{right}"))
        })
        .collect();
    if usable.len() < total {
        tracing::warn!(
            path = %path.display(),
            skipped = total - usable.len(),
            "merges that make a token the vocabulary lacks are left out, as llama.cpp ignores them"
        );
    }
    usable
}

/// Merges are "left right"; llama.cpp splits at the first space after the first character, so
/// a left part that is itself a space-like character still parses.
fn parse_merges(raw: Vec<String>, path: &Path) -> Result<Vec<(String, String)>> {
    raw.into_iter()
        .enumerate()
        .map(|(i, m)| {
            let first = m.chars().next().map_or(0, char::len_utf8);
            match m[first..].find(' ') {
                Some(p) => {
                    let split = first + p;
                    Ok((m[..split].to_string(), m[split + 1..].to_string()))
                }
                None => Err(corrupt(
                    path,
                    format!("`tokenizer.ggml.merges`[{i}] = {m:?} is not `left right`"),
                )),
            }
        })
        .collect()
}
