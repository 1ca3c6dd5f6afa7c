//! The thinking budget: a cap on the tokens a row spends inside think blocks, enforced by
//! "budget forcing" (Muennighoff et al., s1, 2025): when the budget is spent and the block is
//! still open, the decoder itself writes the block's closing tag and a short lead into the
//! answer, feeds them to the model as if it had generated them, and lets it answer.
//!
//! Blocks are found in the row's text, not by token id: `<think>` is one special token in
//! Qwen3 and DeepSeek-R1 vocabularies but plain text in others, and a tag may arrive split
//! over several tokens. The scaffold's [`ThinkTracker`] follows them (every family's tags, a
//! block closed by any closing tag); a forced close writes the opening tag's own partner. Templates of reasoning models often open the block themselves
//! (R1 distills and Qwen3 end the prompt with `<think>\n`), so a row starts inside a block
//! when the prompt ends with an opening tag ([`state_after_prompt`]).

pub use k2_scaffold::think::ThinkState;
use k2_scaffold::think::{prompt_opens_reasoning, ThinkTracker};

use crate::tokenizer::Tokenizer;

/// What the decoder writes after the closing tag: the lead into the answer that s1 uses, and
/// a phrase `k2_answer` reads a final answer from. The blank line is what these models write
/// after `</think>` themselves.
pub const ANSWER_LEAD: &str = "\n\nFinal answer: ";

/// Prompt tokens decoded to find whether the prompt ends inside a think block: the
/// template's generation prefix (`<|im_start|>assistant\n<think>\n`) is a handful of tokens.
const PROMPT_TAIL_TOKENS: usize = 16;

/// The state a row starts in: inside a block when the prompt ends with an opening tag (the
/// template prefilled `<think>`; the same rule as the pipeline's
/// [`prompt_opens_reasoning`]), else outside.
pub fn state_after_prompt(tokenizer: &Tokenizer, prompt_ids: &[u32]) -> ThinkState {
    let tail = &prompt_ids[prompt_ids.len().saturating_sub(PROMPT_TAIL_TOKENS)..];
    // An id the tokenizer rejects cannot come from a rendered prompt; a row then starts
    // outside, as a prompt without tags does.
    let text = tokenizer.decode(tail).unwrap_or_default();
    prompt_opens_reasoning(&text).map_or(ThinkState::Outside, ThinkState::opened_by)
}

/// One row's thinking budget: counts the tokens generated inside blocks and says when to
/// force the block closed.
#[derive(Debug, Clone)]
pub struct ThinkBudget {
    tags: ThinkTracker,
    budget: usize,
    /// Tokens generated inside blocks so far (all blocks of the row together).
    spent: usize,
}

impl ThinkBudget {
    /// A budget of `budget` tokens for a row that starts in `start`.
    pub fn new(budget: usize, start: ThinkState) -> Self {
        ThinkBudget {
            tags: ThinkTracker::new(start),
            budget,
            spent: 0,
        }
    }

    pub fn spent(&self) -> usize {
        self.spent
    }

    /// Reads the text of a token the model generated. A token counts as thinking when the
    /// block was open before it and still is after it (the token that opens a block and the
    /// one that closes it do not). Returns the text to force into the row now (the block's
    /// closing tag and [`ANSWER_LEAD`]) when this token spent the budget and the block is
    /// still open.
    pub fn push_generated(&mut self, piece: &str) -> Option<String> {
        let was_inside = matches!(self.tags.state(), ThinkState::Inside { .. });
        self.tags.push(piece);
        let ThinkState::Inside { closer } = self.tags.state() else {
            return None;
        };
        if was_inside {
            self.spent += 1;
        }
        (self.spent >= self.budget).then(|| format!("{closer}{ANSWER_LEAD}"))
    }

    /// Reads the text of a token the decoder forced: it moves the tags (the forced closing tag
    /// ends the block) but is not the model's thinking and never forces anything itself.
    pub fn push_forced(&mut self, piece: &str) {
        self.tags.push(piece);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_counts_only_tokens_inside_and_forces_the_openers_partner() {
        let mut budget = ThinkBudget::new(3, ThinkState::Outside);
        assert_eq!(budget.push_generated("Let me see. "), None);
        assert_eq!(budget.push_generated("<ifm|think>"), None);
        assert_eq!(budget.push_generated("a"), None);
        assert_eq!(budget.push_generated("b"), None);
        assert_eq!(
            budget.push_generated("c").as_deref(),
            Some("</ifm|think>\n\nFinal answer: ")
        );
        assert_eq!(budget.spent(), 3);
        budget.push_forced("</ifm|think>");
        budget.push_forced("\n\nFinal answer: ");
        assert_eq!(budget.push_generated("42"), None);
        assert_eq!(budget.spent(), 3);
    }

    #[test]
    fn a_block_the_model_closes_in_time_is_left_alone() {
        let mut budget = ThinkBudget::new(2, ThinkState::Inside { closer: "</think>" });
        assert_eq!(budget.push_generated("ok"), None);
        assert_eq!(budget.push_generated("</think>"), None);
        assert_eq!(budget.push_generated("The answer"), None);
        assert_eq!(budget.push_generated(" is 4."), None);
        assert_eq!(budget.spent(), 1);
    }

    #[test]
    fn a_spent_budget_closes_a_reopened_block_at_once() {
        let mut budget = ThinkBudget::new(1, ThinkState::Inside { closer: "</think>" });
        assert!(budget.push_generated("x").is_some());
        budget.push_forced("</think>");
        assert_eq!(budget.push_generated("Answer"), None);
        // The budget is for the whole row: a new block is closed right after it opens.
        assert!(budget.push_generated("<think>").is_some());
        assert_eq!(budget.spent(), 1);
    }
}
