//! Whether a draft model's token ids mean the same as the target's. Speculation compares
//! distributions id by id, so a draft with another vocabulary would be silently useless or
//! wrong. The rules follow llama.cpp's: same vocabulary type, same special tokens, sizes
//! within 128 of each other, and identical token text for every id both have.

use crate::error::{EngineError, Result};
use crate::loader::load_tokenizer;
use crate::models_dir::ModelInfo;
use crate::tokenizer::Tokenizer;

/// Largest vocabulary size difference tolerated (padding tokens at the end of the table).
const MAX_VOCAB_SIZE_DIFFERENCE: usize = 128;

/// A draft must be at most this share of the target's file to be worth suggesting: each
/// drafted token costs a pass of the draft, so a draft near the target's size saves nothing
/// (the 0.5B Qwen drafting for the 1.5B is 0.44).
const MAX_DRAFT_SHARE: f64 = 0.5;

pub fn check_draft_compatible(
    target: &Tokenizer,
    target_name: &str,
    draft: &Tokenizer,
    draft_name: &str,
) -> Result<()> {
    let refuse = |reason: String| {
        Err(EngineError::IncompatibleDraft {
            draft: draft_name.to_owned(),
            target: target_name.to_owned(),
            reason,
        })
    };
    if target.tokenizer_model() != draft.tokenizer_model() {
        return refuse(format!(
            "its vocabulary type is `{}`, the target's is `{}`",
            draft.tokenizer_model(),
            target.tokenizer_model()
        ));
    }
    if target.add_bos() != draft.add_bos() || target.bos_id() != draft.bos_id() {
        return refuse("its beginning-of-text token differs".into());
    }
    if target.eos_id() != draft.eos_id() {
        return refuse("its end-of-text token differs".into());
    }
    let (t, d) = (target.vocab_size(), draft.vocab_size());
    if t.abs_diff(d) > MAX_VOCAB_SIZE_DIFFERENCE {
        return refuse(format!(
            "its vocabulary has {d} tokens, the target's {t} (more than {MAX_VOCAB_SIZE_DIFFERENCE} apart)"
        ));
    }
    for id in 0..t.min(d) as u32 {
        if target.token_bytes(id) != draft.token_bytes(id) {
            return refuse(format!(
                "token {id} is {:?} in the draft but {:?} in the target",
                draft.token_string(id).unwrap_or("?"),
                target.token_string(id).unwrap_or("?")
            ));
        }
    }
    Ok(())
}

/// [`check_draft_compatible`] for two installed models, from their tokenizers alone (no
/// weights are loaded).
pub fn check_installed_draft(target: &ModelInfo, draft: &ModelInfo) -> Result<()> {
    check_draft_compatible(
        &load_tokenizer(&target.path)?,
        &target.name,
        &load_tokenizer(&draft.path)?,
        &draft.name,
    )
}

/// The installed model to suggest as `target`'s draft: the smallest of `installed` that is at
/// most [`MAX_DRAFT_SHARE`] of the target's size and shares its vocabulary, or `None`. Models
/// whose tokenizer cannot be read are passed over: a suggestion is never worth an error.
pub fn suggest_draft(target: &ModelInfo, installed: &[ModelInfo]) -> Option<ModelInfo> {
    let mut candidates: Vec<&ModelInfo> = installed
        .iter()
        .filter(|m| {
            m.path != target.path
                && (m.size_bytes as f64) <= target.size_bytes as f64 * MAX_DRAFT_SHARE
        })
        .collect();
    if candidates.is_empty() {
        return None;
    }
    candidates.sort_by_key(|m| m.size_bytes);
    let target_tokenizer = load_tokenizer(&target.path).ok()?;
    candidates
        .into_iter()
        .find(|draft| {
            load_tokenizer(&draft.path).is_ok_and(|tokenizer| {
                check_draft_compatible(&target_tokenizer, &target.name, &tokenizer, &draft.name)
                    .is_ok()
            })
        })
        .cloned()
}
