//! Whether a draft model's token ids mean the same as the target's. Speculation compares
//! distributions id by id, so a draft with another vocabulary would be silently useless or
//! wrong. The rules follow llama.cpp's: same vocabulary type, same special tokens, sizes
//! within 128 of each other, and identical token text for every id both have.

use crate::error::{EngineError, Result};
use crate::tokenizer::Tokenizer;

/// Largest vocabulary size difference tolerated (padding tokens at the end of the table).
const MAX_VOCAB_SIZE_DIFFERENCE: usize = 128;

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
