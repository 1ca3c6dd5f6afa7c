//! Speculative decoding on the real models: lossless (greedy output identical to plain
//! decoding, sampling keeping the target's distribution), draft compatibility, rollback, and
//! speculation inside best-of-N.

use std::sync::OnceLock;

use k2_engine::chat::ChatMessage;
use k2_engine::decode::batched::{generate_batch, BatchOptions};
use k2_engine::decode::plain::{CancelToken, GenerateOptions, Generation, StopReason};
use k2_engine::decode::sample::{distribution, Distribution, SamplingParams};
use k2_engine::decode::speculative::accept::{check_draft, Check};
use k2_engine::decode::speculative::compat::{
    check_draft_compatible, check_installed_draft, suggest_draft,
};
use k2_engine::decode::speculative::{generate_speculative, DraftSource, SpecStats, SpecTuning};
use k2_engine::loader::LoadedModel;
use k2_engine::model::LogitsFor;
use k2_engine::models_dir::describe_model;
use k2_engine::EngineError;
use k2_tests::{load, model_path, QWEN_05B, QWEN_15B, SMOLLM2};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn smollm() -> &'static LoadedModel {
    static M: OnceLock<LoadedModel> = OnceLock::new();
    M.get_or_init(|| load(SMOLLM2))
}
fn qwen_small() -> &'static LoadedModel {
    static M: OnceLock<LoadedModel> = OnceLock::new();
    M.get_or_init(|| load(QWEN_05B))
}
/// The 0.5B as `k2 --draft` loads it: predicting only the first 65536 ids.
fn qwen_small_draft() -> &'static LoadedModel {
    static M: OnceLock<LoadedModel> = OnceLock::new();
    M.get_or_init(|| {
        let mut lm = load(QWEN_05B);
        assert!(lm.model.limit_output_vocabulary(65536));
        lm
    })
}
fn qwen_large() -> &'static LoadedModel {
    static M: OnceLock<LoadedModel> = OnceLock::new();
    M.get_or_init(|| load(QWEN_15B))
}

/// Twenty varied requests: arithmetic, algebra, proofs, code, lists, prose, repetition.
const PROMPTS: [&str; 20] = [
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did she sell altogether?",
    "Solve for x: 3x + 7 = 22. Show each step.",
    "What is the sum of the interior angles of a hexagon? Explain.",
    "Prove that the square root of 2 is irrational.",
    "Write a Python function that returns the n-th Fibonacci number iteratively.",
    "List the first ten prime numbers, separated by commas.",
    "Explain the Pythagorean theorem to a twelve-year-old.",
    "Compute 17 * 23 and show the long multiplication.",
    "A train travels 120 km in 1.5 hours. What is its average speed in km/h?",
    "Factor the polynomial x^2 - 5x + 6.",
    "Write the multiplication table of 7 from 7 x 1 to 7 x 10.",
    "What is the derivative of sin(x) * x^2?",
    "Translate 'The cat sleeps on the warm windowsill' into French.",
    "How many ways can 5 people sit in a row? Explain with factorials.",
    "Repeat the word 'echo' eight times, then say 'done'.",
    "Write a haiku about prime numbers.",
    "Convert 0.375 to a fraction in lowest terms.",
    "In a class of 30 students, 40% are girls. How many boys are there?",
    "Describe how binary search works, step by step.",
    "Find the area of a circle with radius 3, in terms of pi.",
];

fn chat_ids(lm: &LoadedModel, question: &str) -> Vec<u32> {
    let text = lm
        .template
        .render(&[ChatMessage::user(question)], true)
        .unwrap();
    lm.tokenizer.encode_prompt(&text, true).unwrap()
}

fn options(n: usize, sampling: SamplingParams, max_tokens: usize) -> BatchOptions {
    BatchOptions {
        n,
        generate: GenerateOptions {
            sampling,
            max_tokens,
            stop: Vec::new(),
            ..GenerateOptions::default()
        },
    }
}

fn plain(lm: &LoadedModel, ids: &[u32], batch: &BatchOptions) -> Vec<Generation> {
    generate_batch(
        &lm.model,
        &lm.tokenizer,
        ids,
        batch,
        &CancelToken::new(),
        &mut |_, _| {},
    )
    .unwrap()
}

fn speculative(
    lm: &LoadedModel,
    ids: &[u32],
    batch: &BatchOptions,
    source: DraftSource<'_>,
    tuning: &SpecTuning,
) -> (Vec<Generation>, SpecStats) {
    let (generation, stats) = generate_speculative(
        &lm.model,
        &lm.tokenizer,
        ids,
        batch,
        source,
        tuning,
        &CancelToken::new(),
        &mut |_, _| {},
    )
    .unwrap();
    (generation.rows, stats)
}

/// Verification must score each position exactly as decoding that token alone does.
#[test]
fn a_multi_position_pass_equals_token_by_token_decoding_bit_for_bit() {
    for lm in [smollm(), qwen_small()] {
        let ids = chat_ids(lm, "Count from one to five.");
        let extra = &ids[ids.len() - 9..];
        let prompt = &ids[..ids.len() - 9];
        let mut whole = lm.model.new_cache(None);
        whole.add_row().unwrap();
        lm.model
            .forward(&mut whole, &[prompt], LogitsFor::Last)
            .unwrap();
        let all = lm
            .model
            .forward(&mut whole, &[extra], LogitsFor::All)
            .unwrap()[0]
            .to_vec2::<f32>()
            .unwrap();
        let mut one_by_one = lm.model.new_cache(None);
        one_by_one.add_row().unwrap();
        lm.model
            .forward(&mut one_by_one, &[prompt], LogitsFor::Last)
            .unwrap();
        for (i, &t) in extra.iter().enumerate() {
            let single = lm
                .model
                .forward(&mut one_by_one, &[&[t]], LogitsFor::Last)
                .unwrap()[0]
                .to_vec2::<f32>()
                .unwrap();
            assert!(
                single[0] == all[i],
                "{}: position {i} differs",
                lm.info.name
            );
        }
    }
}

/// Rollback: drafting ahead and truncating back is the same as never having gone further.
#[test]
fn truncating_the_cache_then_continuing_equals_never_having_gone_further() {
    let lm = smollm();
    let prompt = chat_ids(lm, "Name three colours.");
    let vocab = lm.model.config().vocab_size as u32;
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..6 {
        let ahead: Vec<u32> = (0..rng.random_range(1..9))
            .map(|_| rng.random_range(0..vocab))
            .collect();
        let keep = rng.random_range(0..=ahead.len());
        let next: Vec<u32> = (0..rng.random_range(1..4))
            .map(|_| rng.random_range(0..vocab))
            .collect();

        let mut rolled = lm.model.new_cache(None);
        rolled.add_row().unwrap();
        lm.model
            .forward(&mut rolled, &[&prompt], LogitsFor::Last)
            .unwrap();
        lm.model
            .forward(&mut rolled, &[&ahead], LogitsFor::All)
            .unwrap();
        rolled.truncate(0, prompt.len() + keep).unwrap();
        let after_rollback = lm
            .model
            .forward(&mut rolled, &[&next], LogitsFor::All)
            .unwrap()[0]
            .to_vec2::<f32>()
            .unwrap();

        let mut straight = lm.model.new_cache(None);
        straight.add_row().unwrap();
        lm.model
            .forward(&mut straight, &[&prompt], LogitsFor::Last)
            .unwrap();
        lm.model
            .forward(&mut straight, &[&ahead[..keep]], LogitsFor::All)
            .unwrap();
        let direct = lm
            .model
            .forward(&mut straight, &[&next], LogitsFor::All)
            .unwrap()[0]
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(rolled.len(0), straight.len(0));
        assert!(
            after_rollback == direct,
            "rollback to {keep} of {}",
            ahead.len()
        );
    }
}

/// The bar: 20 prompts, 256 tokens, the 0.5B drafting for the 1.5B, greedy (with the
/// draft's output restricted as `k2` runs it; every other prompt with prompt lookup first).
#[test]
fn greedy_speculative_output_equals_plain_output_with_the_small_qwen_drafting() {
    let (target, draft) = (qwen_large(), qwen_small_draft());
    check_draft_compatible(&target.tokenizer, "1.5B", &draft.tokenizer, "0.5B").unwrap();
    let batch = options(1, SamplingParams::greedy(), 256);
    let mut totals = SpecStats::default();
    for (i, prompt) in PROMPTS.iter().enumerate() {
        let ids = chat_ids(target, prompt);
        let expected = plain(target, &ids, &batch);
        let tuning = SpecTuning {
            lookup_first: i % 2 == 1,
            ..SpecTuning::default()
        };
        let (got, stats) = speculative(
            target,
            &ids,
            &batch,
            DraftSource::Model(&draft.model),
            &tuning,
        );
        assert_eq!(got[0].token_ids, expected[0].token_ids, "prompt: {prompt}");
        assert_eq!(got[0].stop_reason, expected[0].stop_reason);
        totals.drafted_tokens += stats.drafted_tokens;
        totals.accepted_draft_tokens += stats.accepted_draft_tokens;
    }
    // The two share a family and were trained alike: most drafts must be accepted.
    let rate = totals.acceptance_rate().expect("something was drafted");
    assert!(rate > 0.5, "acceptance {rate:.2} over {totals:?}");
}

#[test]
fn greedy_prompt_lookup_output_equals_plain_output() {
    let lm = qwen_small();
    let batch = options(1, SamplingParams::greedy(), 160);
    // Fixed long drafts: every pass verifies whatever lookup finds.
    let tuning = SpecTuning {
        adaptive: false,
        ..SpecTuning::default()
    };
    let mut drafted = 0;
    for prompt in PROMPTS {
        let ids = chat_ids(lm, prompt);
        let expected = plain(lm, &ids, &batch);
        let (got, stats) = speculative(lm, &ids, &batch, DraftSource::Ngram, &tuning);
        assert_eq!(got[0].token_ids, expected[0].token_ids, "prompt: {prompt}");
        drafted += stats.drafted_tokens;
    }
    assert!(drafted > 0, "prompt lookup never found anything to draft");
}

/// Fixed drafts: every pass verifies whatever the drafter finds (the stress test).
fn fixed_drafts() -> SpecTuning {
    SpecTuning {
        adaptive: false,
        ..SpecTuning::default()
    }
}

#[test]
fn greedy_suffix_drafting_output_equals_plain_output() {
    let lm = qwen_small();
    let batch = options(1, SamplingParams::greedy(), 160);
    let mut totals = SpecStats::default();
    for prompt in PROMPTS {
        let ids = chat_ids(lm, prompt);
        let expected = plain(lm, &ids, &batch);
        let (got, stats) = speculative(lm, &ids, &batch, DraftSource::Suffix, &fixed_drafts());
        assert_eq!(got[0].token_ids, expected[0].token_ids, "prompt: {prompt}");
        assert_eq!(got[0].stop_reason, expected[0].stop_reason);
        totals.drafted_tokens += stats.drafted_tokens;
        totals.accepted_draft_tokens += stats.accepted_draft_tokens;
    }
    assert!(
        totals.accepted_draft_tokens > 0,
        "nothing accepted: {totals:?}"
    );
}

/// Sampled best-of-3 with cross-candidate drafts: a fixed guess is verified by sampling the
/// row's own token exactly as plain decoding does, so every row equals the plain row of the
/// same seed, token for token, whatever was drafted (a stronger check than a distribution
/// test: any change to what a row samples shows). Each row drafts from its siblings' text.
#[test]
fn sampled_best_of_3_with_suffix_drafting_equals_plain_sampling_row_for_row() {
    let lm = qwen_small();
    let mut totals = SpecStats::default();
    for (i, prompt) in PROMPTS.iter().enumerate() {
        let sampling = SamplingParams {
            temperature: 1.0,
            top_p: 0.95,
            seed: 7 + i as u64,
            ..SamplingParams::default()
        };
        let batch = options(3, sampling, 96);
        let ids = chat_ids(lm, prompt);
        let expected = plain(lm, &ids, &batch);
        // Fixed drafts on even prompts, the cost-driven lengths on odd ones.
        let tuning = if i % 2 == 0 {
            fixed_drafts()
        } else {
            SpecTuning::default()
        };
        let (got, stats) = speculative(lm, &ids, &batch, DraftSource::Suffix, &tuning);
        for (row, (g, e)) in got.iter().zip(&expected).enumerate() {
            assert_eq!(g.token_ids, e.token_ids, "prompt {prompt:?}, row {row}");
            assert_eq!(g.stop_reason, e.stop_reason);
        }
        totals.drafted_tokens += stats.drafted_tokens;
        totals.accepted_draft_tokens += stats.accepted_draft_tokens;
    }
    let rate = totals.acceptance_rate().expect("something was drafted");
    assert!(totals.accepted_draft_tokens > 20, "{totals:?}");
    // A fixed guess is accepted with the target's probability of it: neither never nor always.
    assert!(
        (0.05..0.95).contains(&rate),
        "acceptance {rate:.2} over {totals:?}"
    );
}

#[test]
fn a_draft_limited_to_the_first_ids_predicts_exactly_those_logits() {
    let (full, limited) = (qwen_small(), qwen_small_draft());
    let ids = chat_ids(full, PROMPTS[3]);
    let logits = |lm: &LoadedModel| {
        let mut cache = lm.model.new_cache(None);
        cache.add_row().unwrap();
        lm.model
            .forward(&mut cache, &[&ids], LogitsFor::Last)
            .unwrap()[0]
            .squeeze(0)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    let (all, first) = (logits(full), logits(limited));
    assert_eq!(first.len(), 65536);
    assert!(all[..65536] == first[..]);
}

/// For a model drafting for itself: every draft offered, 6 at a time, and (the draft and the
/// target computing the same bits) every one accepted.
fn self_drafting() -> SpecTuning {
    SpecTuning {
        adaptive: false,
        p_min: 0.0,
        max_draft: 6,
        ..SpecTuning::default()
    }
}

#[test]
fn a_draft_identical_to_the_target_is_always_accepted() {
    let lm = smollm();
    let tuning = self_drafting();
    let batch = options(1, SamplingParams::greedy(), 96);
    for prompt in &PROMPTS[..5] {
        let ids = chat_ids(lm, prompt);
        let expected = plain(lm, &ids, &batch);
        let (got, stats) = speculative(lm, &ids, &batch, DraftSource::Model(&lm.model), &tuning);
        assert_eq!(got[0].token_ids, expected[0].token_ids);
        assert!(stats.drafted_tokens > 0);
        assert_eq!(
            stats.accepted_draft_tokens, stats.drafted_tokens,
            "{stats:?}"
        );
    }
}

#[test]
fn a_draft_with_another_vocabulary_is_refused_with_a_reason() {
    let err = check_draft_compatible(
        &qwen_small().tokenizer,
        "qwen2.5-coder-0.5b",
        &smollm().tokenizer,
        "smollm2-135m",
    )
    .unwrap_err();
    assert!(matches!(err, EngineError::IncompatibleDraft { .. }));
    let message = err.to_string();
    assert!(
        message.contains("smollm2-135m cannot draft for qwen2.5-coder-0.5b"),
        "{message}"
    );
    assert!(message.contains("--spec ngram"), "{message}");
}

/// What the desktop app suggests after a new solver is chosen: the 0.5B Qwen for the 1.5B
/// (same vocabulary, under half the size), nothing for a model with no smaller relative.
#[test]
fn an_installed_draft_is_suggested_only_where_the_vocabularies_match() {
    let info = |file| describe_model(&model_path(file)).unwrap();
    let installed = [info(SMOLLM2), info(QWEN_05B), info(QWEN_15B)];
    let [smol, small, large] = installed.clone();
    let suggested = |target| suggest_draft(target, &installed).map(|m| m.name);
    assert_eq!(suggested(&large), Some(small.name.clone()));
    // SmolLM2 is small enough to draft for the 0.5B but speaks another vocabulary.
    assert_eq!(suggested(&small), None);
    assert_eq!(suggested(&smol), None);
    check_installed_draft(&large, &small).unwrap();
    let refused = check_installed_draft(&small, &smol).unwrap_err();
    assert!(matches!(refused, EngineError::IncompatibleDraft { .. }));
}

/// Each candidate of best-of-N speculates on its own and still decodes exactly its plain
/// continuation; rows finish independently.
#[test]
fn rows_of_a_batch_speculate_independently() {
    let lm = smollm();
    let ids = chat_ids(lm, PROMPTS[0]);
    let sampling = SamplingParams {
        temperature: 0.0,
        ..SamplingParams::default()
    };
    let batch = options(3, sampling, 64);
    let expected = plain(lm, &ids, &batch);
    let (got, stats) = speculative(
        lm,
        &ids,
        &batch,
        DraftSource::Model(&lm.model),
        &SpecTuning::default(),
    );
    assert_eq!(got.len(), 3);
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g.token_ids, e.token_ids);
    }
    assert!(stats.target_passes > 0);
    // Sampled rows through prompt lookup: each row ends on its own and reports its counters.
    let sampled = options(
        3,
        SamplingParams {
            temperature: 1.0,
            top_p: 0.95,
            seed: 11,
            ..SamplingParams::default()
        },
        48,
    );
    let (rows, _) = speculative(
        lm,
        &ids,
        &sampled,
        DraftSource::Ngram,
        &SpecTuning::default(),
    );
    assert!(rows.iter().all(|r| r.stats.generated_tokens > 0));
    assert!(
        rows.iter().any(|r| r.token_ids != rows[0].token_ids),
        "rows sampled alike"
    );
}

/// A sampled row can end on a draft token it accepts (a stop string, the loop guard, its last
/// allowed token) while its siblings go on. Its draft-model cache then holds a token its
/// context never took: the next passes must leave the finished row alone. This panicked on
/// the GPU machine (best-of-3 at temperature 1.0, the 0.5B drafting the 1.5B): "range start
/// index 261 out of range for slice of length 260".
#[test]
fn a_row_ending_on_an_accepted_draft_leaves_its_siblings_decoding() {
    let lm = smollm();
    let tuning = self_drafting();
    let (mut lengths, mut stopped) = (std::collections::BTreeSet::new(), 0);
    for (i, prompt) in PROMPTS.iter().enumerate() {
        let sampling = SamplingParams {
            temperature: 1.0,
            top_p: 0.95,
            seed: 100 + i as u64,
            ..SamplingParams::default()
        };
        // Rows stop at their first full stop, each at its own pass, mostly inside a draft.
        let mut batch = options(3, sampling, 45);
        batch.generate.stop = vec![".".into()];
        let ids = chat_ids(lm, prompt);
        // The target drafting for itself: every draft is accepted, up to the row's end.
        let (rows, stats) = speculative(lm, &ids, &batch, DraftSource::Model(&lm.model), &tuning);
        assert_eq!(rows.len(), 3);
        assert!(stats.accepted_draft_tokens > 0, "{stats:?}");
        for row in &rows {
            assert!(row.stats.generated_tokens <= 45, "{:?}", row.stats);
            if row.stop_reason == StopReason::StopString {
                stopped += 1;
                lengths.insert(row.stats.generated_tokens);
            }
        }
    }
    // Rows stopped at different lengths: some while their siblings were still decoding.
    assert!(stopped > 10 && lengths.len() > 2, "{lengths:?}");
}

/// Pearson's chi-square of `counts` against `probs` (`trials` draws), over tokens expected at
/// least 5 times, the rest pooled into one cell. Returns (statistic, degrees of freedom).
fn chi_square(
    dist: &Distribution,
    counts: &std::collections::HashMap<u32, usize>,
    trials: usize,
) -> (f64, usize) {
    let mut statistic = 0.0;
    let mut cells: usize = 0;
    let (mut pooled_expected, mut pooled_observed) = (0.0, 0.0);
    for (&t, &p) in dist.tokens.iter().zip(&dist.probs) {
        let expected = f64::from(p) * trials as f64;
        let observed = *counts.get(&t).unwrap_or(&0) as f64;
        if expected >= 5.0 {
            statistic += (observed - expected).powi(2) / expected;
            cells += 1;
        } else {
            pooled_expected += expected;
            pooled_observed += observed;
        }
    }
    let outside: usize = counts
        .iter()
        .filter(|(t, _)| !dist.tokens.contains(t))
        .map(|(_, c)| c)
        .sum();
    pooled_observed += outside as f64;
    if pooled_expected >= 5.0 {
        statistic += (pooled_observed - pooled_expected).powi(2) / pooled_expected;
        cells += 1;
    } else if pooled_observed > 0.0 && pooled_expected < 1e-9 {
        statistic = f64::INFINITY; // tokens the target can never produce
    }
    (statistic, cells.saturating_sub(1))
}

/// Upper 0.1% point of chi-square with `df` degrees of freedom (Wilson-Hilferty).
fn chi_square_critical(df: usize) -> f64 {
    let k = df as f64;
    let z = 3.090; // one-sided 0.999
    k * (1.0 - 2.0 / (9.0 * k) + z * (2.0 / (9.0 * k)).sqrt()).powi(3)
}

/// Real next-token distributions of the model: the target's p (temperature 1, top-p 0.95)
/// and a deliberately different draft q (temperature 1.6 on the logits of another prompt).
/// Tokens produced by the acceptance rule must follow p; the broken rule that accepts every
/// draft must be caught by the same test.
#[test]
fn speculative_sampling_keeps_the_target_distribution_and_a_broken_rule_is_caught() {
    let lm = smollm();
    let logits = |question: &str| {
        let ids = chat_ids(lm, question);
        let mut cache = lm.model.new_cache(None);
        cache.add_row().unwrap();
        lm.model
            .forward(&mut cache, &[&ids], LogitsFor::Last)
            .unwrap()[0]
            .squeeze(0)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    let p = distribution(
        &SamplingParams {
            temperature: 1.0,
            top_p: 0.95,
            ..SamplingParams::default()
        },
        &logits("Pick a random animal and name it."),
    );
    let q = distribution(
        &SamplingParams {
            temperature: 1.6,
            top_p: 0.95,
            ..SamplingParams::default()
        },
        &logits("Pick a random colour and name it."),
    );
    assert!(
        p.tokens.len() > 3,
        "the target distribution should not be one-hot"
    );
    let trials = 40_000;
    let mut rng = StdRng::seed_from_u64(2025);
    let mut faithful = std::collections::HashMap::new();
    let mut broken = std::collections::HashMap::new();
    for _ in 0..trials {
        let d = q.pick(rng.random());
        let token = match check_draft(&p, &q, d, rng.random(), rng.random()) {
            Check::Accept => d,
            Check::Replace(t) => t,
        };
        *faithful.entry(token).or_insert(0) += 1;
        *broken.entry(d).or_insert(0) += 1; // "accept every draft"
    }
    let (stat, df) = chi_square(&p, &faithful, trials);
    let critical = chi_square_critical(df);
    assert!(
        stat < critical,
        "faithful rule: chi-square {stat:.1} >= {critical:.1} (df {df})"
    );
    let (stat, df) = chi_square(&p, &broken, trials);
    assert!(
        stat > chi_square_critical(df.max(1)),
        "broken rule passed: {stat:.1} (df {df})"
    );
}
