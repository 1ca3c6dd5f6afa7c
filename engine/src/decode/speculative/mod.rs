//! Speculative decoding: a cheap drafter proposes several tokens, the target model checks
//! them all in one forward pass, and every accepted token is a target pass saved.
//!
//! Three drafters: a small draft model of the target's family ([`DraftSource::Model`]); and,
//! costing no model pass at all, prompt lookup ([`DraftSource::Ngram`]) and cross-candidate
//! suffix drafting ([`DraftSource::Suffix`]: the prompt, the row's own output and the other
//! candidates' outputs, with draft lengths from measured acceptance and pass costs). Works for
//! one row or many (best-of-N): each row drafts, verifies and rolls back on its own, and the
//! target verifies all rows' drafts in one ragged forward pass.
//!
//! Exactness: verification scores each position with exactly the operations plain decoding
//! uses (the model attends short spans query by query), so greedy speculative output is
//! token for token the plain output. With sampling, a draft model's tokens are checked by
//! [`accept::check_draft`], which makes the output distribution exactly the target's; a
//! drafter's fixed guess (lookup, suffix) is checked by sampling the target's own token with
//! the row's own random stream, as plain decoding does, and comparing: the same acceptance
//! probability, and the output is plain decoding's token for token for the same seed.

pub mod accept;
pub mod compat;
mod cost;
pub mod ngram;
pub mod suffix;

use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::decode::batched::{
    check_prompt, derive_seed, for_each_on_threads, prefill, BatchGeneration, BatchOptions,
    BatchStats,
};
use crate::decode::plain::{rate, CancelToken, Delta, RowDecoder, RowStep, StopReason};
use crate::decode::sample::{distribution, Distribution, SamplingParams};
use crate::decode::think_budget::state_after_prompt;
use crate::error::Result;
use crate::model::{logits_to_host, KvCache, LogitsFor, Model, RollbackMode, QUERY_BY_QUERY_MAX};
use crate::tokenizer::Tokenizer;

use accept::{check_draft, one_hot, Check};
use cost::CostModel;
use suffix::{Calibration, Evidence, SuffixIndex};

/// Where draft tokens come from.
#[derive(Clone, Copy)]
pub enum DraftSource<'a> {
    /// Prompt lookup: continuations of earlier occurrences of the latest tokens.
    Ngram,
    /// Cross-candidate suffix drafting: continuations of the longest earlier matches in the
    /// prompt and in every row's output, as long as their measured acceptance pays.
    Suffix,
    /// A small model sharing the target's vocabulary (checked with
    /// [`compat::check_draft_compatible`] by whoever loads it).
    Model(&'a Model),
}

/// How drafting adapts. The defaults suit 2-16 CPU cores and GPUs alike.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SpecTuning {
    /// Most tokens drafted per target pass.
    pub max_draft: usize,
    /// A draft model stops drafting when its top token is less likely than this (llama.cpp's
    /// p-min): unsure drafts are mostly rejected and cost a draft pass each.
    pub p_min: f32,
    /// Adapt each row's draft length to its running acceptance rate and to the measured
    /// costs of drafting and verifying (down to no drafting where it does not pay).
    pub adaptive: bool,
    /// With a draft model, try prompt lookup first and use the model only where lookup finds
    /// fewer than [`LOOKUP_ENOUGH`] tokens. Off by default: on GSM8K, lookup's drafts were
    /// accepted half as often as the 0.5B's and the mix decoded slower (BENCHMARKS.md).
    pub lookup_first: bool,
    /// Prompt lookup: longest and shortest suffix looked up.
    pub ngram_max: usize,
    pub ngram_min: usize,
}

impl Default for SpecTuning {
    fn default() -> Self {
        SpecTuning {
            max_draft: 8,
            p_min: 0.6,
            adaptive: true,
            lookup_first: false,
            ngram_max: 4,
            ngram_min: 2,
        }
    }
}

/// Speculative decoding's own counters for a whole batch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SpecStats {
    pub drafted_tokens: usize,
    pub accepted_draft_tokens: usize,
    pub target_passes: usize,
    /// Forward passes of the draft model (0 for prompt lookup).
    pub draft_passes: usize,
    /// Target verification passes of the whole batch, the positions they fed (pending tokens
    /// and drafts of every row), and their seconds (logits on the host included): where a
    /// generation's time goes.
    #[serde(default)]
    pub verify_passes: usize,
    #[serde(default)]
    pub verified_positions: usize,
    #[serde(default)]
    pub verify_seconds: f64,
}

impl SpecStats {
    pub fn acceptance_rate(&self) -> Option<f64> {
        (self.drafted_tokens > 0)
            .then(|| self.accepted_draft_tokens as f64 / self.drafted_tokens as f64)
    }
}

/// Starting point of each row's acceptance estimate: optimistic, so drafting starts long.
const INITIAL_ACCEPTANCE: f32 = 0.8;
/// Lookup drafts at least this long (or the whole budget) replace the draft model's.
pub const LOOKUP_ENOUGH: usize = 3;

/// Weight of the newest pass in the running acceptance estimate.
const ACCEPTANCE_SMOOTHING: f32 = 0.3;
/// Per pass without drafts, how far the estimate returns towards [`INITIAL_ACCEPTANCE`].
const RECOVERY: f32 = 0.05;

/// One row's speculative state beside its [`RowDecoder`].
struct SpecRow<'t> {
    decoder: RowDecoder<'t>,
    /// Prompt and every token emitted so far.
    context: Vec<u32>,
    /// Emitted tokens not yet in the target's cache, which open the next verification pass:
    /// the last emitted token, or the tokens a thinking budget forced. Empty once the row
    /// finished.
    pending: Vec<u32>,
    /// Tokens of `context` (then of the current drafts) in this row's draft cache.
    draft_len: usize,
    acceptance: f32,
    /// Draws draft tokens; separate from the decoder's stream, which the target's choices use.
    draft_rng: StdRng,
    drafts: Vec<(u32, Distribution)>,
    /// How the suffix drafter found each of `drafts` (empty for the other drafters).
    evidence: Vec<Evidence>,
    stats: SpecStats,
}

impl SpecRow<'_> {
    /// This pass's draft length: the most expected tokens per second for this row's
    /// acceptance rate, within its token budget and the cache's room.
    fn draft_budget(
        &self,
        source: DraftSource<'_>,
        tuning: &SpecTuning,
        costs: &CostModel,
        target_room: usize,
    ) -> usize {
        // The suffix drafter sizes each draft by its own evidence (`draft_with_suffix`).
        let wanted = if tuning.adaptive && !matches!(source, DraftSource::Suffix) {
            costs.best_draft(f64::from(self.acceptance), tuning.max_draft)
        } else {
            tuning.max_draft
        };
        // The pass also yields one token of the target's own after the drafts. The pending
        // tokens (more than one after a forced think close) and the drafts stay within the
        // span the model attends query by query, where verification reproduces plain
        // decoding bit for bit.
        wanted
            .min(self.decoder.remaining().saturating_sub(1))
            .min(target_room)
            .min(QUERY_BY_QUERY_MAX.saturating_sub(self.pending.len()))
    }
}

/// Cuts the rows' draft budgets, the largest first, until the pass feeds at most `limit`
/// positions with the rows' `pending` tokens ([`Model::exact_pass_positions`]): a longer pass
/// would verify with other bits than plain decoding computes.
fn fit_pass(budgets: &mut [usize], pending: &[usize], limit: usize) {
    let room = limit.saturating_sub(pending.iter().sum());
    while budgets.iter().sum::<usize>() > room {
        if let Some(largest) = budgets.iter_mut().max() {
            *largest -= 1;
        }
    }
}

/// A cache that can undo a verification pass (the target's) or a round of drafting (a draft
/// model's): hybrid models' recurrent layers keep what that needs. Every pass is at most
/// [`QUERY_BY_QUERY_MAX`] tokens (see `SpecRow::draft_budget`), which they cover.
fn rewindable(mut cache: KvCache) -> KvCache {
    cache.keep_rollback(QUERY_BY_QUERY_MAX, RollbackMode::Replay);
    cache
}

/// [`generate_batch`](crate::decode::batched::generate_batch) with speculation: `options.n` rows,
/// each speculating on its own. (The arguments mirror `generate_batch`'s plus the drafter.)
#[allow(clippy::too_many_arguments)]
pub fn generate_speculative(
    target: &Model,
    tokenizer: &Tokenizer,
    prompt_ids: &[u32],
    options: &BatchOptions,
    source: DraftSource<'_>,
    tuning: &SpecTuning,
    cancel: &CancelToken,
    on_delta: &mut dyn FnMut(usize, Delta<'_>),
) -> Result<(BatchGeneration, SpecStats)> {
    options.validate()?;
    check_prompt(target, prompt_ids, options)?;
    let n = options.n;
    let generate = &options.generate;
    let params = &generate.sampling;

    let think_start = state_after_prompt(tokenizer, prompt_ids);
    let mut rows: Vec<SpecRow<'_>> = (0..n)
        .map(|r| {
            let seed = derive_seed(params.seed, r);
            SpecRow {
                decoder: RowDecoder::new(tokenizer, generate, seed, false, think_start),
                context: prompt_ids.to_vec(),
                pending: Vec::new(),
                draft_len: 0,
                acceptance: INITIAL_ACCEPTANCE,
                draft_rng: StdRng::seed_from_u64(seed ^ DRAFT_STREAM),
                drafts: Vec::new(),
                evidence: Vec::new(),
                stats: SpecStats::default(),
            }
        })
        .collect();
    let mut suffixes = SuffixIndex::new(n, prompt_ids.len());
    let mut calibration = Calibration::default();

    let started = Instant::now();
    let mut cache = rewindable(target.new_cache(None));
    cache.add_row()?;
    let Some(prompt_logits) = prefill(target, &mut cache, prompt_ids, cancel)? else {
        return Ok(cancelled(rows, prompt_ids.len(), started, None, on_delta));
    };
    let per_prompt_token = started.elapsed().as_secs_f64() / prompt_ids.len() as f64;
    let mut draft_per_prompt_token = 0.0;
    let mut draft_cache = match source {
        DraftSource::Model(draft) => {
            let mut c = rewindable(draft.new_cache(None));
            c.add_row()?;
            let draft_started = Instant::now();
            let drafted_prompt = prefill(draft, &mut c, prompt_ids, cancel)?;
            draft_per_prompt_token =
                draft_started.elapsed().as_secs_f64() / prompt_ids.len() as f64;
            if drafted_prompt.is_none() {
                return Ok(cancelled(rows, prompt_ids.len(), started, None, on_delta));
            }
            if n > 1 {
                c.fork(0, n - 1)?;
            }
            rows.iter_mut().for_each(|r| r.draft_len = prompt_ids.len());
            Some(c)
        }
        DraftSource::Ngram | DraftSource::Suffix => None,
    };
    let prefilled = Instant::now();
    // A draft token costs at least a prompt token of the draft's prefill; measured from here.
    let mut costs = CostModel::new(tuning.max_draft, draft_per_prompt_token, per_prompt_token);
    // The batch's verification passes, counted as they run (the per-row counters are summed
    // at the end).
    let mut pass_totals = SpecStats::default();
    if n > 1 {
        cache.fork(0, n - 1)?;
    }
    for (r, row) in rows.iter_mut().enumerate() {
        let picked = row.decoder.pick(&mut prompt_logits.clone());
        emit(row, r, picked, Cached::No, on_delta);
    }

    loop {
        if cancel.is_cancelled() {
            for (r, row) in rows.iter_mut().enumerate() {
                row.decoder
                    .finish(StopReason::Cancelled, &mut |d| on_delta(r, d));
            }
            break;
        }
        // Rows whose next pass would not fit in the context end here.
        for (r, row) in rows.iter_mut().enumerate() {
            if !row.pending.is_empty() && cache.len(r) + row.pending.len() > cache.max_len() {
                row.decoder
                    .finish(StopReason::ContextFull, &mut |d| on_delta(r, d));
                row.pending.clear();
            }
        }
        if rows.iter().all(|r| r.pending.is_empty()) {
            break;
        }

        let mut budgets: Vec<usize> = rows
            .iter()
            .enumerate()
            .map(|(r, row)| {
                let room = cache
                    .max_len()
                    .saturating_sub(cache.len(r) + row.pending.len());
                if !row.pending.is_empty() {
                    row.draft_budget(source, tuning, &costs, room)
                } else {
                    0
                }
            })
            .collect();
        if let Some(limit) = target.exact_pass_positions() {
            let pending: Vec<usize> = rows.iter().map(|r| r.pending.len()).collect();
            fit_pass(&mut budgets, &pending, limit);
        }
        let vocab = target.config().vocab_size;
        match (source, draft_cache.as_mut()) {
            (DraftSource::Model(draft), Some(dc)) => {
                let mut model_budgets = budgets.clone();
                if tuning.lookup_first {
                    // Free drafts first: rows whose text repeats itself skip the draft model.
                    draft_with_lookup(&mut rows, &budgets, tuning, vocab);
                    for (budget, row) in model_budgets.iter_mut().zip(rows.iter_mut()) {
                        if *budget > 0 && row.drafts.len() >= LOOKUP_ENOUGH.min(*budget) {
                            *budget = 0;
                        } else {
                            // Too short a match to be worth a pass: the model drafts instead.
                            row.drafts.clear();
                        }
                    }
                }
                draft_with_model(
                    draft,
                    dc,
                    &mut rows,
                    &model_budgets,
                    params,
                    tuning,
                    vocab,
                    &mut costs,
                )?
            }
            (DraftSource::Suffix, _) => {
                let active = rows.iter().filter(|r| !r.pending.is_empty()).count();
                let threshold = if tuning.adaptive {
                    // Until a pass is timed, no drafts: the first plain pass anchors the costs.
                    costs.position_threshold(active).unwrap_or(1.0)
                } else {
                    0.0
                };
                draft_with_suffix(
                    &mut rows,
                    &budgets,
                    &mut suffixes,
                    &calibration,
                    threshold as f32,
                    vocab,
                )
            }
            _ => draft_with_lookup(&mut rows, &budgets, tuning, vocab),
        }

        // One target pass verifies every row's pending token and drafts.
        let feeds: Vec<Vec<u32>> = rows
            .iter()
            .map(|row| {
                row.pending
                    .iter()
                    .copied()
                    .chain(row.drafts.iter().map(|d| d.0))
                    .collect()
            })
            .collect();
        let batch: Vec<&[u32]> = feeds.iter().map(Vec::as_slice).collect();
        let lens_before: Vec<usize> = (0..n).map(|r| cache.len(r)).collect();
        let verify_started = Instant::now();
        let out = target.forward(&mut cache, &batch, LogitsFor::All)?;
        // On the host inside the timing: on a GPU the pass only ends when its logits arrive.
        let logits = logits_to_host(&out)?;
        let vocab = target.config().vocab_size;
        let most_drafts = rows.iter().map(|r| r.drafts.len()).max().unwrap_or(0);
        let verify_seconds = verify_started.elapsed().as_secs_f64();
        costs.record_verify(most_drafts, verify_seconds);
        let positions = feeds.iter().map(Vec::len).sum();
        costs.record_pass(positions, verify_seconds);
        pass_totals.verify_passes += 1;
        pass_totals.verified_positions += positions;
        pass_totals.verify_seconds += verify_seconds;
        let verified = verify_rows(&mut rows, logits, &feeds, vocab, params, tuning);
        for (r, (row, v)) in rows.iter_mut().zip(verified).enumerate() {
            let Some(v) = v else { continue };
            for (token_id, text) in &v.deltas {
                on_delta(
                    r,
                    Delta {
                        token_id: *token_id,
                        text,
                    },
                );
            }
            calibration.record(&v.evidence, v.accepted);
            // Keep the pending tokens and the accepted drafts; the rest was a wrong guess.
            cache.truncate(r, lens_before[r] + v.fed_pending + v.accepted)?;
            if let Some(dc) = draft_cache.as_mut() {
                // The draft cache holds the old context and the drafts it was fed: keep what
                // the new context shares with it; the next catch-up feeds the rest.
                // A row that ended on an accepted draft (a stop string, the loop guard, its
                // token limit) never took that token into its context.
                let keep = (v.context_before + v.accepted)
                    .min(row.draft_len)
                    .min(row.context.len());
                dc.truncate(r, keep)?;
                row.draft_len = keep;
            }
        }
    }

    let mut stats = pass_totals;
    for row in &rows {
        stats.drafted_tokens += row.stats.drafted_tokens;
        stats.accepted_draft_tokens += row.stats.accepted_draft_tokens;
        stats.target_passes += row.stats.target_passes;
        stats.draft_passes += row.stats.draft_passes;
    }
    Ok((
        finish(rows, prompt_ids.len(), started, Some(prefilled)),
        stats,
    ))
}

/// One row's verification, done apart from the others and reported back in row order.
struct Verified {
    accepted: usize,
    /// Pending tokens the pass fed before the drafts.
    fed_pending: usize,
    /// The row's context length before the pass.
    context_before: usize,
    /// The suffix drafter's evidence for the row's drafts (empty for other drafters).
    evidence: Vec<Evidence>,
    /// What the row streamed, to hand on in order: (token id, text).
    deltas: Vec<(u32, String)>,
}

/// Verifies every row that fed this pass (`logits[r]`: its fed positions' logits), the rows
/// spread over the kernels' threads as plain batched decoding spreads its picks: a verified
/// position costs a sample over the whole vocabulary, and a row's sampling touches that row
/// alone. Each row does exactly what it would do alone; its deltas are kept for the caller.
fn verify_rows(
    rows: &mut [SpecRow<'_>],
    mut logits: Vec<Vec<f32>>,
    feeds: &[Vec<u32>],
    vocab: usize,
    params: &SamplingParams,
    tuning: &SpecTuning,
) -> Vec<Option<Verified>> {
    let verify_one = |r: usize, row: &mut SpecRow<'_>, logits: Vec<f32>| {
        let context_before = row.context.len();
        let fed_pending = row.pending.len();
        let evidence = std::mem::take(&mut row.evidence);
        let mut deltas = Vec::new();
        let accepted = verify(
            row,
            r,
            // The positions after the last pending token and after each draft; those after
            // earlier pending tokens (forced ones) predict nothing still to check.
            logits
                .chunks(vocab)
                .skip(fed_pending.saturating_sub(1))
                .map(<[f32]>::to_vec)
                .collect(),
            params,
            tuning,
            &mut |_, d| deltas.push((d.token_id, d.text.to_owned())),
        );
        Verified {
            accepted,
            fed_pending,
            context_before,
            evidence,
            deltas,
        }
    };
    let mut jobs: Vec<(usize, &mut SpecRow<'_>, Vec<f32>, Option<Verified>)> = rows
        .iter_mut()
        .enumerate()
        .filter(|(r, _)| !feeds[*r].is_empty())
        .map(|(r, row)| (r, row, std::mem::take(&mut logits[r]), None))
        .collect();
    for_each_on_threads(&mut jobs, |(r, row, logits, out)| {
        *out = Some(verify_one(*r, row, std::mem::take(logits)));
    });
    let mut verified: Vec<Option<Verified>> = (0..feeds.len()).map(|_| None).collect();
    for (r, _, _, out) in jobs {
        verified[r] = out;
    }
    verified
}

/// Seeds each row's draft stream apart from its target stream.
const DRAFT_STREAM: u64 = 0x5DEE_CE66_D1CE_5EED;

/// Whether an emitted token already sits in the target's cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cached {
    /// An accepted draft: the verification pass that accepted it also cached it.
    Yes,
    /// The target's own pick: the next pass feeds it.
    No,
}

/// Feeds `token` (or the end of the row's budget, `None`) to the row's decoder, and queues
/// what the next pass must feed: the token unless it is `cached`, and any tokens the decoder
/// forced after it.
fn emit(
    row: &mut SpecRow<'_>,
    r: usize,
    token: Option<u32>,
    cached: Cached,
    on_delta: &mut dyn FnMut(usize, Delta<'_>),
) {
    match row.decoder.accept(token, &mut |d| on_delta(r, d)) {
        RowStep::Feed(tokens) => {
            row.context.extend_from_slice(&tokens);
            let uncached = match cached {
                Cached::Yes => &tokens[1..],
                Cached::No => &tokens[..],
            };
            row.pending.extend_from_slice(uncached);
        }
        RowStep::Finished => row.pending.clear(),
    }
}

/// Checks the row's drafts against the target's logits (`[1 + drafts, vocab]`: from the last
/// pending token on), emits the
/// accepted tokens and the target's own next token, and returns how many drafts were accepted.
fn verify(
    row: &mut SpecRow<'_>,
    r: usize,
    mut logits: Vec<Vec<f32>>,
    params: &SamplingParams,
    tuning: &SpecTuning,
    on_delta: &mut dyn FnMut(usize, Delta<'_>),
) -> usize {
    let drafts = std::mem::take(&mut row.drafts);
    // This pass fed the pending tokens: from here on, pending is what the next pass feeds.
    row.pending.clear();
    row.stats.target_passes += 1;
    row.stats.drafted_tokens += drafts.len();
    let mut accepted = 0;
    let mut replacement = None;
    for (i, (token, q)) in drafts.iter().enumerate() {
        let position = &mut logits[i];
        let check = if q.tokens.len() == 1 {
            // A fixed guess: the target samples its own token as plain decoding would (same
            // stream, same draw) and the guess stands if it is that token. Accepted with
            // probability p(guess), as the rule gives for a one-hot q, and the row's text is
            // plain decoding's for the same seed.
            match row.decoder.pick(position) {
                Some(t) if t == *token => Check::Accept,
                Some(t) => Check::Replace(t),
                None => break, // at the token limit: the pick after the loop ends the row
            }
        } else {
            row.decoder.mask(position);
            let p = distribution(params, position);
            let u_accept = row.decoder.sampler().uniform();
            let u_resample = row.decoder.sampler().uniform();
            check_draft(&p, q, *token, u_accept, u_resample)
        };
        match check {
            Check::Accept => {
                accepted += 1;
                emit(row, r, Some(*token), Cached::Yes, on_delta);
                if row.decoder.is_finished() {
                    break; // an end token, a stop string, the token limit or a loop
                }
                if !row.pending.is_empty() {
                    // The decoder forced tokens after this one (a think block closed by its
                    // budget): the later drafts guessed a different text, and the forced
                    // tokens open the next pass.
                    break;
                }
            }
            Check::Replace(t) => {
                replacement = Some(t);
                break;
            }
        }
    }
    row.stats.accepted_draft_tokens += accepted;
    if tuning.adaptive {
        if drafts.is_empty() {
            // Not drafting (it did not pay): drift back towards optimism, so the row tries
            // again later; text often turns predictable (a restated problem, a final line).
            row.acceptance += RECOVERY * (INITIAL_ACCEPTANCE - row.acceptance);
        } else {
            let rate = accepted as f32 / drafts.len() as f32;
            row.acceptance += ACCEPTANCE_SMOOTHING * (rate - row.acceptance);
        }
    }
    if row.decoder.is_finished() || !row.pending.is_empty() {
        return accepted;
    }
    let next = match replacement {
        Some(t) => Some(t),
        // Every draft accepted: the last position's logits give one more token for free.
        None => row.decoder.pick(&mut logits[drafts.len()]),
    };
    emit(row, r, next, Cached::No, on_delta);
    accepted
}

/// Prompt lookup for every row that drafts this pass.
fn draft_with_lookup(
    rows: &mut [SpecRow<'_>],
    budgets: &[usize],
    tuning: &SpecTuning,
    vocab: usize,
) {
    for (row, &budget) in rows.iter_mut().zip(budgets) {
        if budget == 0 || row.pending.is_empty() {
            continue;
        }
        let mut drafts = Vec::new();
        for t in ngram::lookup(&row.context, tuning.ngram_min, tuning.ngram_max, budget) {
            if t as usize >= vocab {
                break;
            }
            drafts.push((t, one_hot(t)));
            if row.decoder.ends_with(t) {
                break; // nothing follows the end of the text
            }
        }
        row.drafts = drafts;
    }
}

/// Cross-candidate suffix drafting for every row that drafts this pass: indexes what every
/// row wrote since the last pass, then drafts each row's continuation of its longest earlier
/// match, cut where its measured chance of being accepted whole falls below `threshold`.
fn draft_with_suffix(
    rows: &mut [SpecRow<'_>],
    budgets: &[usize],
    index: &mut SuffixIndex,
    calibration: &Calibration,
    threshold: f32,
    vocab: usize,
) {
    for (r, row) in rows.iter().enumerate() {
        index.extend(r, &row.context);
    }
    let contexts: Vec<&[u32]> = rows.iter().map(|r| r.context.as_slice()).collect();
    let proposals: Vec<_> = rows
        .iter()
        .zip(budgets)
        .enumerate()
        .map(|(r, (row, &budget))| {
            if budget == 0 || row.pending.is_empty() {
                return Vec::new();
            }
            let mut draft = index.propose(r, &contexts, budget);
            // Not past a token the target cannot take, nor past the end of the text.
            if let Some(cut) = draft.iter().position(|p| p.token as usize >= vocab) {
                draft.truncate(cut);
            }
            if let Some(end) = draft.iter().position(|p| row.decoder.ends_with(p.token)) {
                draft.truncate(end + 1);
            }
            draft.truncate(calibration.worth_drafting(&draft, threshold));
            draft
        })
        .collect();
    for (row, draft) in rows.iter_mut().zip(proposals) {
        row.drafts = draft.iter().map(|p| (p.token, one_hot(p.token))).collect();
        row.evidence = draft.iter().map(|p| p.evidence).collect();
    }
}

/// Drafts with the draft model for every row that drafts this pass, all rows in one draft
/// forward pass per step. The first step catches each row's draft cache up with its context
/// (the tokens accepted and emitted since: at least the pending token).
#[allow(clippy::too_many_arguments)]
fn draft_with_model(
    draft: &Model,
    cache: &mut KvCache,
    rows: &mut [SpecRow<'_>],
    budgets: &[usize],
    params: &SamplingParams,
    tuning: &SpecTuning,
    target_vocab: usize,
    costs: &mut CostModel,
) -> Result<()> {
    let mut feeds: Vec<Vec<u32>> = rows
        .iter()
        .zip(budgets)
        .enumerate()
        .map(|(r, (row, &budget))| {
            if budget == 0 || row.pending.is_empty() {
                return Vec::new(); // not drafting this pass, or finished
            }
            let catch_up = &row.context[row.draft_len..];
            if cache.len(r) + catch_up.len() + budget > cache.max_len() {
                Vec::new()
            } else {
                catch_up.to_vec()
            }
        })
        .collect();
    while feeds.iter().any(|f| !f.is_empty()) {
        let batch: Vec<&[u32]> = feeds.iter().map(Vec::as_slice).collect();
        let step_started = Instant::now();
        let out = draft.forward(cache, &batch, LogitsFor::Last)?;
        let mut host = logits_to_host(&out)?;
        costs.record_draft_token(step_started.elapsed().as_secs_f64());
        for (r, row) in rows.iter_mut().enumerate() {
            if feeds[r].is_empty() {
                continue;
            }
            row.draft_len += feeds[r].len();
            row.stats.draft_passes += 1;
            feeds[r].clear();
            let mut logits = std::mem::take(&mut host[r]);
            row.decoder.mask(&mut logits);
            if top_probability(&logits) < tuning.p_min {
                continue; // unsure: the target would likely reject it
            }
            let q = distribution(params, &logits);
            let token = q.pick(row.draft_rng.random::<f32>());
            if token as usize >= target_vocab {
                continue; // a draft-only padding token: the target cannot take it
            }
            row.drafts.push((token, q));
            if row.drafts.len() < budgets[r] && !row.decoder.ends_with(token) {
                feeds[r].push(token);
            }
        }
    }
    Ok(())
}

/// Probability of the most likely token under plain softmax: the draft's confidence.
fn top_probability(logits: &[f32]) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return 0.0;
    }
    let total: f32 = logits.iter().map(|&l| (l - max).exp()).sum();
    1.0 / total
}

fn cancelled(
    mut rows: Vec<SpecRow<'_>>,
    prompt_tokens: usize,
    started: Instant,
    prefilled: Option<Instant>,
    on_delta: &mut dyn FnMut(usize, Delta<'_>),
) -> (BatchGeneration, SpecStats) {
    for (r, row) in rows.iter_mut().enumerate() {
        row.decoder
            .finish(StopReason::Cancelled, &mut |d| on_delta(r, d));
    }
    (
        finish(rows, prompt_tokens, started, prefilled),
        SpecStats::default(),
    )
}

fn finish(
    rows: Vec<SpecRow<'_>>,
    prompt_tokens: usize,
    started: Instant,
    prefilled: Option<Instant>,
) -> BatchGeneration {
    let ended = Instant::now();
    let rows: Vec<_> = rows
        .into_iter()
        .map(|row| {
            let mut g = row
                .decoder
                .into_generation(prompt_tokens, started, prefilled);
            g.stats.drafted_tokens = row.stats.drafted_tokens;
            g.stats.accepted_draft_tokens = row.stats.accepted_draft_tokens;
            g.stats.target_passes = row.stats.target_passes;
            g
        })
        .collect();
    let generated_tokens = rows.iter().map(|g| g.stats.generated_tokens).sum();
    let decode_seconds = prefilled.map_or(0.0, |p| (ended - p).as_secs_f64());
    BatchGeneration {
        stats: BatchStats {
            rows: rows.len(),
            prompt_tokens,
            generated_tokens,
            prefill_seconds: rows.first().map_or(0.0, |g| g.stats.prefill_seconds),
            decode_seconds,
            decode_passes: rows
                .iter()
                .map(|g| g.stats.target_passes)
                .max()
                .unwrap_or(0),
            decode_tokens_per_s: rate(generated_tokens, decode_seconds),
            forward_seconds: 0.0,
            sampling_seconds: 0.0,
        },
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::fit_pass;

    #[test]
    fn a_pass_is_cut_to_its_exact_length_largest_drafts_first() {
        // One row: its pending token and 7 drafts fill 8 positions.
        let mut one = [8];
        fit_pass(&mut one, &[1], 8);
        assert_eq!(one, [7]);
        // Best-of-3: three pending tokens leave 5 drafts, shared out evenly.
        let mut three = [8, 8, 1];
        fit_pass(&mut three, &[1, 1, 1], 8);
        assert_eq!(three.iter().sum::<usize>(), 5);
        assert!(three.iter().all(|&b| b <= 2), "{three:?}");
        // Already short enough: untouched.
        let mut short = [2, 0, 1];
        fit_pass(&mut short, &[1, 1, 1], 8);
        assert_eq!(short, [2, 0, 1]);
        // Pending tokens alone fill the pass: nothing drafted.
        let mut full = [4, 4];
        fit_pass(&mut full, &[5, 4], 8);
        assert_eq!(full, [0, 0]);
    }
}
