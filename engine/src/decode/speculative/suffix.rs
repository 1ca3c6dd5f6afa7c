//! Cross-candidate drafting: every pair of consecutive tokens in the prompt and in every row's
//! output is indexed as it is written, and a row drafts what followed the longest earlier
//! match of its latest tokens, in its own text or in a sibling candidate's. Best-of-N
//! candidates of one problem restate the same numbers, equations and phrases, so a row often
//! finds the next several tokens already written by another row (STAND, SuffixDecoding).
//!
//! Each drafted token comes with how it was found (the match's length, whether the earlier
//! occurrences agree on it), and [`Calibration`] turns that into a measured probability of
//! acceptance, learned from this generation's own verifications. The caller stops a draft
//! where the chance that all of it is accepted no longer pays for the positions it adds.

use std::collections::HashMap;

/// Tokens of the shortest suffix looked up (the index's key).
const KEY: usize = 2;
/// Longest suffix compared: longer matches are all alike for predicting what comes next.
const MAX_MATCH: usize = 16;
/// Earlier occurrences of a key examined per lookup, newest first: bounds each lookup's work
/// on text that repeats a pair of tokens thousands of times.
const MAX_OCCURRENCES: usize = 256;

/// Where a key occurs: the row whose context holds it and the position just after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Occurrence {
    row: u32,
    end: u32,
}

/// An index of token pairs over the contexts (prompt, then output) of the rows of one batch.
/// The rows share the prompt, which is indexed once, in row 0.
pub struct SuffixIndex {
    table: HashMap<[u32; KEY], Vec<Occurrence>>,
    /// Per row, the context length indexed so far.
    indexed: Vec<usize>,
}

/// A drafted token and the evidence behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proposal {
    pub token: u32,
    pub evidence: Evidence,
}

/// How a drafted token was found, the key of its acceptance estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evidence {
    /// Tokens of the row's context (and of the draft before this token) that the earlier
    /// occurrence matches, at most [`MAX_MATCH`].
    pub matched: usize,
    /// Whether every occurrence still followed agrees on this token (and there are several).
    pub agreed: Agreement,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agreement {
    /// One occurrence.
    Single,
    /// Several occurrences, all with this token next.
    Unanimous,
    /// Several occurrences, this token the most frequent.
    Split,
}

impl SuffixIndex {
    pub fn new(rows: usize, prompt_len: usize) -> Self {
        // Rows after the first skip the shared prompt: their first key ends just after their
        // first output token.
        let mut indexed = vec![prompt_len; rows];
        if let Some(first) = indexed.first_mut() {
            *first = 0;
        }
        SuffixIndex {
            table: HashMap::new(),
            indexed,
        }
    }

    /// Indexes what `context` (row `row`'s prompt and output) gained since the last call.
    pub fn extend(&mut self, row: usize, context: &[u32]) {
        let from = self.indexed[row].max(KEY - 1);
        for end in from + 1..=context.len() {
            let key = [context[end - 2], context[end - 1]];
            self.table.entry(key).or_default().push(Occurrence {
                row: row as u32,
                end: end as u32,
            });
        }
        self.indexed[row] = self.indexed[row].max(context.len());
    }

    /// Up to `max` tokens to draft for row `row`, whose context is `contexts[row]`
    /// (`contexts` holds every row's, indexed up to their current length): what followed the
    /// longest earlier matches of its latest tokens, token by token the most frequent among
    /// those matches still in agreement with the draft so far.
    pub fn propose(&self, row: usize, contexts: &[&[u32]], max: usize) -> Vec<Proposal> {
        let context = contexts[row];
        let len = context.len();
        if max == 0 || len < KEY {
            return Vec::new();
        }
        let Some(occurrences) = self.table.get(&[context[len - 2], context[len - 1]]) else {
            return Vec::new();
        };
        // (source context, where its continuation starts), for the longest matches only.
        let mut best = 0;
        let mut followed: Vec<(&[u32], usize)> = Vec::new();
        for occ in occurrences.iter().rev().take(MAX_OCCURRENCES) {
            let source = contexts[occ.row as usize];
            let end = occ.end as usize;
            if end >= source.len() {
                continue; // its own latest tokens, or a sibling's: nothing follows yet
            }
            let matched = KEY + common_suffix(&context[..len - KEY], &source[..end - KEY]);
            if matched > best {
                best = matched;
                followed.clear();
            }
            if matched == best {
                followed.push((source, end));
            }
        }
        let mut draft = Vec::new();
        while draft.len() < max {
            let i = draft.len();
            let Some((token, votes, alive)) =
                majority(followed.iter().filter_map(|(s, e)| s.get(e + i).copied()))
            else {
                break;
            };
            let agreed = match (alive, votes == alive) {
                (1, _) => Agreement::Single,
                (_, true) => Agreement::Unanimous,
                (_, false) => Agreement::Split,
            };
            draft.push(Proposal {
                token,
                evidence: Evidence {
                    matched: (best + i).min(MAX_MATCH),
                    agreed,
                },
            });
            followed.retain(|(s, e)| s.get(e + i) == Some(&token));
        }
        draft
    }
}

/// Length of the common suffix of `a` and `b`, up to what still counts ([`MAX_MATCH`]).
fn common_suffix(a: &[u32], b: &[u32]) -> usize {
    a.iter()
        .rev()
        .zip(b.iter().rev())
        .take(MAX_MATCH - KEY)
        .take_while(|(x, y)| x == y)
        .count()
}

/// The most frequent token (ties: the first seen, i.e. the most recent occurrence), its count
/// and the number of tokens seen.
fn majority(tokens: impl Iterator<Item = u32>) -> Option<(u32, usize, usize)> {
    let mut counts: Vec<(u32, usize)> = Vec::new();
    let mut seen = 0;
    for t in tokens {
        seen += 1;
        match counts.iter_mut().find(|(c, _)| *c == t) {
            Some((_, n)) => *n += 1,
            None => counts.push((t, 1)),
        }
    }
    let mut winner: Option<(u32, usize)> = None;
    for &(t, n) in &counts {
        if winner.is_none_or(|(_, best)| n > best) {
            winner = Some((t, n));
        }
    }
    winner.map(|(t, n)| (t, n, seen))
}

/// Measured acceptance of drafted tokens by their [`Evidence`]: a token is "tested" when every
/// draft before it in its pass was accepted, and counts as accepted or not. Starts from an
/// optimistic prior worth [`PRIOR_WEIGHT`] tests, so that every kind of evidence is tried
/// where drafting is costly, and a few passes correct it.
pub struct Calibration {
    /// `[matched][agreement]`: (accepted, tested).
    cells: Vec<[(f32, f32); 3]>,
}

const PRIOR_WEIGHT: f32 = 2.0;
const PRIOR_ACCEPTANCE: f32 = 0.8;

impl Default for Calibration {
    fn default() -> Self {
        Calibration {
            cells: vec![[(0.0, 0.0); 3]; MAX_MATCH + 1],
        }
    }
}

impl Calibration {
    fn cell(&mut self, e: Evidence) -> &mut (f32, f32) {
        &mut self.cells[e.matched.min(MAX_MATCH)][e.agreed as usize]
    }

    /// Estimated probability that a token found with `e` is accepted, given every token before
    /// it in the draft was.
    pub fn acceptance(&self, e: Evidence) -> f32 {
        let (accepted, tested) = self.cells[e.matched.min(MAX_MATCH)][e.agreed as usize];
        (accepted + PRIOR_ACCEPTANCE * PRIOR_WEIGHT) / (tested + PRIOR_WEIGHT)
    }

    /// Records a verified draft: its first `accepted` tokens were accepted, the next (if any)
    /// rejected, the rest never tested.
    pub fn record(&mut self, draft: &[Evidence], accepted: usize) {
        for (i, &e) in draft.iter().enumerate().take(accepted + 1) {
            let cell = self.cell(e);
            cell.1 += 1.0;
            if i < accepted {
                cell.0 += 1.0;
            }
        }
    }

    /// The longest prefix of `draft` whose chance of being accepted whole stays at or above
    /// `threshold` (each token's estimate times those before it).
    pub fn worth_drafting(&self, draft: &[Proposal], threshold: f32) -> usize {
        let mut whole = 1.0;
        draft
            .iter()
            .take_while(|p| {
                whole *= self.acceptance(p.evidence);
                whole >= threshold
            })
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(p: &[Proposal]) -> Vec<u32> {
        p.iter().map(|p| p.token).collect()
    }

    fn indexed(contexts: &[&[u32]], prompt_len: usize) -> SuffixIndex {
        let mut index = SuffixIndex::new(contexts.len(), prompt_len);
        for (r, c) in contexts.iter().enumerate() {
            index.extend(r, c);
        }
        index
    }

    #[test]
    fn a_row_drafts_what_a_sibling_wrote_after_the_same_tokens() {
        let prompt = [1, 2, 3];
        let row0 = [1, 2, 3, 10, 11, 12, 13, 14];
        let row1 = [1, 2, 3, 20, 10, 11];
        let index = indexed(&[&row0, &row1], prompt.len());
        let p = index.propose(1, &[&row0, &row1], 3);
        assert_eq!(tokens(&p), vec![12, 13, 14]);
        assert_eq!(p[0].evidence.agreed, Agreement::Single);
        assert_eq!(p[0].evidence.matched, 2);
        assert_eq!(p[1].evidence.matched, 3, "the draft extends the match");
    }

    #[test]
    fn the_prompt_is_searched_once_and_its_own_tail_is_not_a_match() {
        let row0 = [5, 6, 7, 8, 5, 6];
        let index = indexed(&[&row0], 4);
        assert_eq!(tokens(&index.propose(0, &[&row0], 4)), vec![7, 8, 5, 6]);
        let fresh = [5, 6];
        let index = indexed(&[&fresh], 2);
        assert!(index.propose(0, &[&fresh], 4).is_empty());
    }

    #[test]
    fn longer_matches_win_and_agreeing_occurrences_are_unanimous() {
        // After (0, 9, 1, 2): rows 0 and 1 both continued with 7; a shorter match (4, 1, 2)
        // in row 2 itself continued with 8.
        let row0 = [0, 9, 1, 2, 7, 0];
        let row1 = [0, 9, 1, 2, 7, 3];
        let row2 = [0, 4, 1, 2, 8, 0, 9, 1, 2];
        let ctx: [&[u32]; 3] = [&row0, &row1, &row2];
        let index = indexed(&ctx, 1);
        let p = index.propose(2, &ctx, 2);
        assert_eq!(p[0].token, 7);
        assert_eq!(p[0].evidence.agreed, Agreement::Unanimous);
        assert_eq!(p[0].evidence.matched, 4, "(0, 9, 1, 2) in rows 0 and 1");
        // Then the two disagree (0 or 3): the most recent wins the tie, marked split.
        assert_eq!(p[1].evidence.agreed, Agreement::Split);
    }

    #[test]
    fn extending_indexes_only_what_is_new() {
        let mut row0 = vec![1, 2, 3];
        let mut index = SuffixIndex::new(1, 3);
        index.extend(0, &row0);
        row0.extend([1, 2]);
        index.extend(0, &row0);
        index.extend(0, &row0);
        assert_eq!(index.table[&[1, 2]].len(), 2);
        assert_eq!(tokens(&index.propose(0, &[&row0], 8)), vec![3, 1, 2]);
    }

    #[test]
    fn calibration_learns_acceptance_and_cuts_drafts_at_the_threshold() {
        let mut c = Calibration::default();
        let strong = Evidence {
            matched: 8,
            agreed: Agreement::Unanimous,
        };
        let weak = Evidence {
            matched: 2,
            agreed: Agreement::Single,
        };
        assert_eq!(c.acceptance(strong), PRIOR_ACCEPTANCE);
        for _ in 0..20 {
            c.record(&[strong, strong], 2);
            c.record(&[weak, weak], 0);
        }
        assert!(c.acceptance(strong) > 0.9);
        assert!(c.acceptance(weak) < 0.1);
        let draft = [strong, strong, weak, strong].map(|evidence| Proposal { token: 0, evidence });
        assert_eq!(c.worth_drafting(&draft, 0.5), 2);
        assert_eq!(c.worth_drafting(&draft, 0.0), 4);
        assert_eq!(c.worth_drafting(&draft, 0.999), 0);
    }
}
