//! The loop guard: notices when a row's output has degenerated into one span of tokens
//! repeated over and over at its end ("the the the ...", or a planner writing "Step 1:
//! Identify the number of apples." twenty times), so the row can stop instead of burning
//! tokens up to its limit.
//!
//! It works on token ids, exactly: for every period `p` up to [`MAX_PERIOD`] it keeps how many
//! tokens in a row have equalled the token `p` places earlier. A run of `r` such matches means
//! the last `r + p` tokens are a block of `p` tokens repeated. One step costs `MAX_PERIOD`
//! comparisons (a few hundred nanoseconds, against milliseconds for the forward pass that
//! produced the token), and the history it keeps is bounded.
//!
//! Why these thresholds ([`repeats_needed`]): a false alarm kills a candidate that might have
//! been right, while a missed loop only costs time up to `max_tokens`, so the guard waits for
//! repetition no legitimate solution writes:
//! - Exact repetition already spares progressing text: counting ("1, 2, 3, 4, ..."), a
//!   multiplication table or a table of similar lines differ in their numbers, so no block
//!   repeats exactly however alike the lines look.
//! - Every alarm needs at least [`MIN_COVERED_TOKENS`] tokens of repetition: long decimal
//!   expansions ("0.3333333333"), binary strings and markdown rules stay far below it.
//! - Every alarm needs the block at least [`MIN_REPEATS`] (8) times in a row. A sentence said
//!   two or three times happens in real reasoning ("Wait. Let me check."), and identical
//!   lines do occur in mathematics: the rows of a zero matrix, as long in tokens as the
//!   tokenizer makes them. A k x k matrix has k rows and its last one lacks the `\\`, so an
//!   8x8 zero matrix is seven full copies of its row plus a partial one, under eight whatever
//!   the row's length; larger zero matrices are not written out.
//!
//! With these, a one-token loop stops after 128 tokens, a 10-token plan line after 13 copies,
//! and a 60-token paragraph after 8 copies (480 tokens).

/// The longest repeated block looked for, in tokens: a sentence, a line of a plan or a short
/// paragraph of reasoning. Longer cycles are not caught (the token limit ends them).
pub const MAX_PERIOD: usize = 128;
/// The fewest tokens of repetition that can fire the guard.
pub const MIN_COVERED_TOKENS: usize = 128;
/// The fewest copies of a block that can fire the guard.
pub const MIN_REPEATS: usize = 8;

/// How many copies of a `period`-token block in a row mean a loop: enough to cover
/// [`MIN_COVERED_TOKENS`], and never fewer than [`MIN_REPEATS`]. The covered length this asks
/// for, `max(MIN_COVERED_TOKENS, MIN_REPEATS * period)`, never shrinks as the period grows, so
/// a multiple of a block's period never fires before the block's own period does.
pub fn repeats_needed(period: usize) -> usize {
    MIN_COVERED_TOKENS.div_ceil(period.max(1)).max(MIN_REPEATS)
}

/// A loop the guard found: the block's length and how many copies of it end the sequence
/// (the last copy possibly partial).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loop {
    pub period: usize,
    /// Tokens at the end of the sequence that repeat the block (its first copy included).
    pub covered: usize,
}

impl Loop {
    /// Whole copies of the block in the repeated tail.
    pub fn repeats(&self) -> usize {
        self.covered / self.period
    }
}

/// Watches one row's tokens; [`push`](Self::push) every token as it is generated.
#[derive(Debug, Clone)]
pub struct LoopGuard {
    /// The latest tokens, at least the last [`MAX_PERIOD`]; trimmed now and then.
    recent: Vec<u32>,
    /// `matches[p - 1]`: how many of the latest tokens in a row equal the token `p` earlier.
    matches: Vec<usize>,
}

impl Default for LoopGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl LoopGuard {
    pub fn new() -> Self {
        LoopGuard {
            recent: Vec::with_capacity(4 * MAX_PERIOD),
            matches: vec![0; MAX_PERIOD],
        }
    }

    /// Adds the row's next token; returns the loop, if the sequence now ends in one (the
    /// shortest period that qualifies).
    pub fn push(&mut self, token: u32) -> Option<Loop> {
        let len = self.recent.len();
        let mut found = None;
        for (i, run) in self.matches.iter_mut().enumerate() {
            let period = i + 1;
            *run = match len.checked_sub(period) {
                Some(at) if self.recent[at] == token => *run + 1,
                _ => 0,
            };
            let covered = *run + period;
            if found.is_none() && *run > 0 && covered >= repeats_needed(period) * period {
                found = Some(Loop { period, covered });
            }
        }
        // Amortised trimming: once the history is four periods long, drop all but the last
        // period in one move (every token a period can still look back at is kept).
        if len + 1 >= 4 * MAX_PERIOD {
            self.recent.drain(..len + 1 - MAX_PERIOD);
        }
        self.recent.push(token);
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first position (1-based count of tokens) at which the guard fires, if any.
    fn fires_at(tokens: &[u32]) -> Option<(usize, Loop)> {
        let mut guard = LoopGuard::new();
        tokens
            .iter()
            .enumerate()
            .find_map(|(i, &t)| guard.push(t).map(|l| (i + 1, l)))
    }

    #[test]
    fn thresholds_grow_with_the_period_and_never_drop_below_eight_copies() {
        assert_eq!(repeats_needed(1), 128);
        assert_eq!(repeats_needed(10), 13);
        assert_eq!(repeats_needed(16), 8);
        assert_eq!(repeats_needed(MAX_PERIOD), 8);
        let covered = |p: usize| repeats_needed(p) * p;
        assert!((1..MAX_PERIOD).all(|p| covered(p + 1) >= MIN_COVERED_TOKENS));
        assert!((1..MAX_PERIOD).all(|p| covered(2 * p) >= covered(p)));
    }

    #[test]
    fn one_token_repeated_fires_after_the_covered_minimum() {
        let tokens: Vec<u32> = std::iter::once(5)
            .chain(std::iter::repeat_n(7, 300))
            .collect();
        let (at, found) = fires_at(&tokens).unwrap();
        assert_eq!(found.period, 1);
        assert_eq!(found.covered, MIN_COVERED_TOKENS);
        assert_eq!(at, 1 + MIN_COVERED_TOKENS);
    }

    #[test]
    fn a_long_block_fires_after_eight_copies_and_the_history_stays_bounded() {
        let block: Vec<u32> = (1000..1100).collect(); // 100 distinct tokens
        let tokens: Vec<u32> = block.iter().copied().cycle().take(1000).collect();
        let (at, found) = fires_at(&tokens).unwrap();
        assert_eq!((found.period, found.repeats()), (100, MIN_REPEATS));
        assert_eq!(at, 100 * MIN_REPEATS);

        let mut guard = LoopGuard::new();
        for t in 0..10_000u32 {
            assert_eq!(guard.push(t), None);
            assert!(guard.recent.len() < 4 * MAX_PERIOD);
        }
    }

    #[test]
    fn a_cycle_longer_than_the_longest_period_is_not_reported() {
        let tokens: Vec<u32> = (0..MAX_PERIOD as u32 + 1).cycle().take(2000).collect();
        assert_eq!(fires_at(&tokens), None);
    }
}
