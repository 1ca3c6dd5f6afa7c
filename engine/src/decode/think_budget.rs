//! The thinking budget: a cap on the tokens a row spends inside think blocks, enforced by
//! "budget forcing" (Muennighoff et al., s1, 2025): when the budget is spent and the block is
//! still open, the decoder itself writes the block's closing tag and a short lead into the
//! answer, feeds them to the model as if it had generated them, and lets it answer.
//!
//! Blocks are found in the row's text, not by token id: `<think>` is one special token in
//! Qwen3 and DeepSeek-R1 vocabularies but plain text in others, and a tag may arrive split
//! over several tokens. Every family's tags come from [`THINK_TAGS`]; a block opened by any
//! opening tag is closed by any closing tag (models mix them), and a forced close writes the
//! opening tag's own partner. Templates of reasoning models often open the block themselves
//! (R1 distills and Qwen3 end the prompt with `<think>\n`), so a row starts inside a block
//! when the prompt ends with an opening tag ([`state_after_prompt`]).

use k2_scaffold::think::{prompt_opens_reasoning, THINK_TAGS};

use crate::tokenizer::Tokenizer;

/// What the decoder writes after the closing tag: the lead into the answer that s1 uses, and
/// a phrase `k2_answer` reads a final answer from. The blank line is what these models write
/// after `</think>` themselves.
pub const ANSWER_LEAD: &str = "\n\nFinal answer: ";

/// Prompt tokens decoded to find whether the prompt ends inside a think block: the
/// template's generation prefix (`<|im_start|>assistant\n<think>\n`) is a handful of tokens.
const PROMPT_TAIL_TOKENS: usize = 16;

/// Whether a row's text is inside a think block, and which closing tag partners its opener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThinkState {
    Outside,
    Inside { closer: &'static str },
}

/// The state a row starts in: inside a block when the prompt ends with an opening tag (the
/// template prefilled `<think>`; the same rule as the pipeline's
/// [`prompt_opens_reasoning`]), else outside.
pub fn state_after_prompt(tokenizer: &Tokenizer, prompt_ids: &[u32]) -> ThinkState {
    let tail = &prompt_ids[prompt_ids.len().saturating_sub(PROMPT_TAIL_TOKENS)..];
    // An id the tokenizer rejects cannot come from a rendered prompt; a row then starts
    // outside, as a prompt without tags does.
    let text = tokenizer.decode(tail).unwrap_or_default();
    prompt_opens_reasoning(&text)
        .and_then(|open| THINK_TAGS.iter().find(|&&(o, _)| o == open))
        .map_or(ThinkState::Outside, |&(_, closer)| ThinkState::Inside {
            closer,
        })
}

/// Follows think tags through text that arrives in pieces.
#[derive(Debug, Clone)]
pub struct ThinkTags {
    state: ThinkState,
    /// Text not yet ruled out as the start of a tag (shorter than the longest tag).
    carry: String,
}

impl ThinkTags {
    pub fn new(state: ThinkState) -> Self {
        ThinkTags {
            state,
            carry: String::new(),
        }
    }

    pub fn state(&self) -> ThinkState {
        self.state
    }

    /// Reads the next piece of text, moving in and out of blocks at every tag in it.
    pub fn push(&mut self, piece: &str) {
        self.carry.push_str(piece);
        let mut from = 0;
        loop {
            let rest = &self.carry[from..];
            let next = match self.state {
                ThinkState::Outside => earliest(rest, THINK_TAGS.iter().map(|&(open, _)| open))
                    .map(|(at, i)| {
                        let (open, close) = THINK_TAGS[i];
                        (at + open.len(), ThinkState::Inside { closer: close })
                    }),
                ThinkState::Inside { .. } => {
                    earliest(rest, THINK_TAGS.iter().map(|&(_, close)| close))
                        .map(|(at, i)| (at + THINK_TAGS[i].1.len(), ThinkState::Outside))
                }
            };
            let Some((end, state)) = next else { break };
            self.state = state;
            from += end;
        }
        // Keep only what could still grow into a tag: fewer bytes than the longest tag.
        let keep = longest_tag().saturating_sub(1);
        let mut cut = self.carry.len().saturating_sub(keep).max(from);
        while !self.carry.is_char_boundary(cut) {
            cut += 1;
        }
        self.carry.drain(..cut);
    }
}

/// The first occurrence in `text` of any of `tags`: its byte offset and the tag's index.
fn earliest<'a>(text: &str, tags: impl Iterator<Item = &'a str>) -> Option<(usize, usize)> {
    tags.enumerate()
        .filter_map(|(i, tag)| text.find(tag).map(|at| (at, i)))
        .min()
}

fn longest_tag() -> usize {
    THINK_TAGS
        .iter()
        .map(|(open, close)| open.len().max(close.len()))
        .max()
        .unwrap_or(0)
}

/// One row's thinking budget: counts the tokens generated inside blocks and says when to
/// force the block closed.
#[derive(Debug, Clone)]
pub struct ThinkBudget {
    tags: ThinkTags,
    budget: usize,
    /// Tokens generated inside blocks so far (all blocks of the row together).
    spent: usize,
}

impl ThinkBudget {
    /// A budget of `budget` tokens for a row that starts in `start`.
    pub fn new(budget: usize, start: ThinkState) -> Self {
        ThinkBudget {
            tags: ThinkTags::new(start),
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

    fn state_after(pieces: &[&str]) -> ThinkState {
        let mut tags = ThinkTags::new(ThinkState::Outside);
        for piece in pieces {
            tags.push(piece);
        }
        tags.state()
    }

    #[test]
    fn tags_are_followed_across_pieces_and_families() {
        let inside = ThinkState::Inside { closer: "</think>" };
        assert_eq!(state_after(&["<th", "ink>", "\nhmm"]), inside);
        assert_eq!(state_after(&["<think>a</thi", "nk>b"]), ThinkState::Outside);
        assert_eq!(
            state_after(&["x <ifm|think_fast>", "y"]),
            ThinkState::Inside {
                closer: "</ifm|think_fast>"
            }
        );
        // Any closing tag ends any block; the next opener starts a new one.
        assert_eq!(state_after(&["<ifm|think>a</think>b<think>c"]), inside);
        assert_eq!(state_after(&["no tags at all, é ü"]), ThinkState::Outside);
        assert_eq!(state_after(&["</think> stray closer"]), ThinkState::Outside);
    }

    #[test]
    fn multibyte_text_around_tags_never_splits_a_character() {
        let mut tags = ThinkTags::new(ThinkState::Outside);
        for piece in ["日本語のテキスト", "<thi", "nk>", "思考", "中"] {
            tags.push(piece);
        }
        assert_eq!(tags.state(), ThinkState::Inside { closer: "</think>" });
    }

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
