//! Prompt-lookup drafting: when the last few tokens appeared earlier in the prompt or the
//! output, propose what followed them then. It costs no model pass, and solutions restate
//! the problem's numbers and phrases often enough to make it pay.

/// Up to `max` tokens that followed the most recent earlier occurrence of the longest suffix
/// of `context` (between `max_ngram` and `min_ngram` tokens long). Empty when nothing matches.
pub fn lookup(context: &[u32], min_ngram: usize, max_ngram: usize, max: usize) -> Vec<u32> {
    let len = context.len();
    if max == 0 || min_ngram == 0 {
        return Vec::new();
    }
    for n in (min_ngram..=max_ngram.min(len.saturating_sub(1))).rev() {
        let pattern = &context[len - n..];
        // Most recent first: the nearest repetition is the likeliest to continue the same way.
        for start in (0..len - n).rev() {
            if &context[start..start + n] == pattern {
                let follow = start + n;
                let end = (follow + max).min(len);
                return context[follow..end].to_vec();
            }
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::lookup;

    #[test]
    fn proposes_what_followed_the_latest_match_of_the_longest_suffix() {
        // ... 1 2 3 4 5 ... 1 2 3 -> propose 4 5 9
        let ctx = [1, 2, 3, 4, 5, 9, 8, 1, 2, 3];
        assert_eq!(lookup(&ctx, 1, 3, 3), vec![4, 5, 9]);
        assert_eq!(lookup(&ctx, 1, 3, 1), vec![4]);
    }

    #[test]
    fn prefers_longer_ngrams_and_recent_matches() {
        let ctx = [7, 3, 1, 9, 3, 2, 7, 3];
        // Suffix (7, 3) matches at 0 -> propose 1; a 1-gram (3) would match later at 4 -> 2.
        assert_eq!(lookup(&ctx, 1, 2, 1), vec![1]);
        assert_eq!(lookup(&ctx, 1, 1, 1), vec![2]);
    }

    #[test]
    fn nothing_to_propose_without_a_match() {
        assert!(lookup(&[1, 2, 3, 4], 1, 3, 4).is_empty());
        assert!(lookup(&[], 1, 3, 4).is_empty());
        assert!(lookup(&[5], 1, 3, 4).is_empty());
    }
}
