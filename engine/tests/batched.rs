//! Batched best-of-N decoding on a real model (SmolLM2-135M): rows of one batch must behave
//! exactly like separate plain generations with their derived seeds (rows are numerically
//! independent), finish independently, stream their own text and stop together on cancel.

use k2_engine::chat::ChatMessage;
use k2_engine::decode::batched::{
    derive_seed, generate_batch, generate_batch_with_stats, BatchGeneration, BatchOptions,
    BatchTuning,
};
use k2_engine::decode::plain::{generate, CancelToken, GenerateOptions, Generation, StopReason};
use k2_engine::decode::sample::{Sampler, SamplingParams};
use k2_engine::model::LogitsFor;

mod common;
use common::smollm2 as model;

fn tokens(text: &str) -> Vec<u32> {
    model().tokenizer.encode_prompt(text, false).unwrap()
}

/// A chat-templated question: the instruct model answers and ends its turn on its own.
fn chat_tokens(question: &str) -> Vec<u32> {
    let lm = model();
    let text = lm
        .template
        .render(&[ChatMessage::user(question)], true)
        .unwrap();
    lm.tokenizer.encode_prompt(&text, true).unwrap()
}

fn sampled(seed: u64, max_tokens: usize) -> GenerateOptions {
    GenerateOptions {
        sampling: SamplingParams {
            temperature: 1.0,
            top_p: 0.95,
            seed,
            ..Default::default()
        },
        max_tokens,
        stop: Vec::new(),
        ..GenerateOptions::default()
    }
}

fn greedy(max_tokens: usize) -> GenerateOptions {
    GenerateOptions {
        max_tokens,
        ..Default::default()
    }
}

fn single(ids: &[u32], options: &GenerateOptions) -> Generation {
    let lm = model();
    generate(
        &lm.model,
        &lm.tokenizer,
        ids,
        options,
        &CancelToken::new(),
        &mut |_| {},
    )
    .unwrap()
}

/// Runs a batch and returns it with each row's streamed text.
fn batch(
    ids: &[u32],
    n: usize,
    generate: &GenerateOptions,
    tuning: &BatchTuning,
) -> (BatchGeneration, Vec<String>) {
    let lm = model();
    let mut streamed = vec![String::new(); n];
    let options = BatchOptions {
        n,
        generate: generate.clone(),
    };
    let out = generate_batch_with_stats(
        &lm.model,
        &lm.tokenizer,
        ids,
        &options,
        tuning,
        &CancelToken::new(),
        &mut |row, d| streamed[row].push_str(d.text),
    )
    .unwrap();
    assert_eq!(out.rows.len(), n);
    (out, streamed)
}

/// The plain decode loop written out by hand (prefill, sample, feed back), independent of the
/// engine's decode driver: what `generate` did before it became a one-row batch.
fn hand_rolled(ids: &[u32], options: &GenerateOptions) -> Vec<u32> {
    let lm = model();
    let mut cache = lm.model.new_cache(None);
    cache.add_row().unwrap();
    let out = lm
        .model
        .forward(&mut cache, &[ids], LogitsFor::Last)
        .unwrap();
    let mut logits = out[0].squeeze(0).unwrap().to_vec1::<f32>().unwrap();
    let mut sampler = Sampler::new(options.sampling.clone());
    let mut generated = Vec::new();
    while generated.len() < options.max_tokens {
        let token = sampler.sample(&logits);
        if lm.tokenizer.is_end_of_generation(token) {
            break;
        }
        generated.push(token);
        let out = lm
            .model
            .forward(&mut cache, &[&[token]], LogitsFor::Last)
            .unwrap();
        logits = out[0].squeeze(0).unwrap().to_vec1::<f32>().unwrap();
    }
    generated
}

#[test]
fn one_row_is_exactly_plain_generation() {
    let ids = tokens("Write a sentence about triangles:");
    let options = sampled(11, 40);
    let plain = single(&ids, &options);
    let (one, streamed) = batch(&ids, 1, &options, &BatchTuning::default());
    let row = &one.rows[0];
    assert_eq!(row.token_ids, plain.token_ids);
    assert_eq!(row.text, plain.text);
    assert_eq!(row.stop_reason, plain.stop_reason);
    assert_eq!(streamed[0], row.text);
    // And both equal the textbook loop, so the shared driver did not change plain decoding.
    assert_eq!(plain.token_ids, hand_rolled(&ids, &options));
    assert_eq!(derive_seed(11, 0), 11);
}

#[test]
fn greedy_rows_all_equal_the_greedy_single_generation() {
    let ids = tokens("The sum of the angles of a triangle is");
    let options = greedy(40);
    let plain = single(&ids, &options);
    assert!(plain.token_ids.len() > 10, "{:?}", plain.text);
    let (three, _) = batch(&ids, 3, &options, &BatchTuning::default());
    for (r, row) in three.rows.iter().enumerate() {
        assert_eq!(row.token_ids, plain.token_ids, "row {r}");
        assert_eq!(row.text, plain.text, "row {r}");
    }
}

/// The strongest guarantee: batching changes nothing numerically (activations are quantized
/// per token row and attention runs per row, with the same shapes as a single-row run), so
/// row r is bit-for-bit the plain generation seeded with derive_seed(base, r).
#[test]
fn each_sampled_row_is_the_single_generation_with_its_derived_seed() {
    let ids = tokens("Write a sentence about triangles:");
    let base = 7;
    let (three, _) = batch(&ids, 3, &sampled(base, 32), &BatchTuning::default());
    let rows: Vec<&Vec<u32>> = three.rows.iter().map(|g| &g.token_ids).collect();
    assert_ne!(rows[0], rows[1]);
    assert_ne!(rows[0], rows[2]);
    assert_ne!(rows[1], rows[2]);
    for (r, row) in three.rows.iter().enumerate() {
        let alone = single(&ids, &sampled(derive_seed(base, r), 32));
        assert_eq!(row.token_ids, alone.token_ids, "row {r}");
        assert_eq!(row.text, alone.text, "row {r}");
    }
}

#[test]
fn derived_seeds_differ_across_rows_and_nearby_bases() {
    let mut seen = std::collections::HashSet::new();
    for base in 0..16u64 {
        for row in 0..8 {
            assert!(seen.insert(derive_seed(base, row)), "base {base} row {row}");
        }
    }
}

#[test]
fn rows_finish_independently_and_a_stop_string_ends_only_its_row() {
    let ids = tokens("List some numbers and words:");
    let free = sampled(3, 48);
    let (plain, _) = batch(&ids, 3, &free, &BatchTuning::default());
    // A stop string that only row 1 produces (four characters from the middle of its text).
    let texts: Vec<&str> = plain.rows.iter().map(|g| g.text.as_str()).collect();
    let chars: Vec<char> = texts[1].chars().collect();
    assert!(chars.len() > 24, "{:?}", texts[1]);
    let stop = (8..chars.len() - 4)
        .map(|i| chars[i..i + 4].iter().collect::<String>())
        .find(|s| !texts[0].contains(s.as_str()) && !texts[2].contains(s.as_str()))
        .expect("row 1 says something the other rows do not");
    let options = GenerateOptions {
        stop: vec![stop.clone()],
        ..free
    };
    for drop_finished in [true, false] {
        let tuning = BatchTuning {
            drop_finished,
            ..Default::default()
        };
        let (stopped, streamed) = batch(&ids, 3, &options, &tuning);
        let row1 = &stopped.rows[1];
        assert_eq!(row1.stop_reason, StopReason::StopString);
        assert_eq!(row1.text, &texts[1][..texts[1].find(&stop).unwrap()]);
        assert!(row1.token_ids.len() < plain.rows[1].token_ids.len());
        // The other rows are untouched by row 1 leaving the batch.
        for r in [0, 2] {
            assert_eq!(
                stopped.rows[r].token_ids, plain.rows[r].token_ids,
                "row {r}"
            );
            assert_eq!(stopped.rows[r].stop_reason, plain.rows[r].stop_reason);
        }
        for (r, row) in stopped.rows.iter().enumerate() {
            assert_eq!(
                streamed[r], row.text,
                "row {r}, drop_finished {drop_finished}"
            );
            assert_eq!(row.stats.generated_tokens, row.token_ids.len());
        }
    }
}

#[test]
fn rows_end_on_their_own_end_token_or_limit() {
    let ids = chat_tokens("What is 2 + 3? Answer with one number.");
    let max = 64;
    let (out, streamed) = batch(&ids, 3, &sampled(5, max), &BatchTuning::default());
    for (r, row) in out.rows.iter().enumerate() {
        match row.stop_reason {
            StopReason::MaxTokens => assert_eq!(row.token_ids.len(), max, "row {r}"),
            StopReason::EndOfGeneration => assert!(row.token_ids.len() < max, "row {r}"),
            other => panic!("row {r} stopped for {other:?}"),
        }
        assert_eq!(streamed[r], row.text);
        let alone = single(&ids, &sampled(derive_seed(5, r), max));
        assert_eq!(row.token_ids, alone.token_ids, "row {r}");
        assert_eq!(row.stats.prompt_tokens, ids.len());
    }
    // With these seeds the rows answer at different lengths, so they really ended apart.
    let mut lengths: Vec<usize> = out.rows.iter().map(|g| g.token_ids.len()).collect();
    lengths.sort_unstable();
    lengths.dedup();
    assert!(lengths.len() > 1, "{lengths:?}");
    let stats = &out.stats;
    assert_eq!(stats.rows, 3);
    let total: usize = out.rows.iter().map(|g| g.token_ids.len()).sum();
    assert_eq!(stats.generated_tokens, total);
    let longest = out.rows.iter().map(|g| g.token_ids.len()).max().unwrap();
    assert!(stats.decode_passes <= longest, "{stats:?}");
}

#[test]
fn ignoring_end_tokens_runs_every_row_to_the_limit() {
    let ids = chat_tokens("Say hi.");
    let tuning = BatchTuning {
        ignore_eos: true,
        ..Default::default()
    };
    let (out, _) = batch(&ids, 3, &sampled(1, 50), &tuning);
    for row in &out.rows {
        assert_eq!(row.stop_reason, StopReason::MaxTokens);
        assert_eq!(row.token_ids.len(), 50);
        let eog = model().tokenizer.end_of_generation_ids();
        assert!(row.token_ids.iter().all(|t| !eog.contains(t)));
    }
    assert_eq!(out.stats.decode_passes, 49);
}

#[test]
fn streamed_text_per_row_equals_the_final_text_even_for_multibyte_output() {
    for prompt in ["北京是中国的首都。上海是", "Emoji story: 🐱🐶"] {
        let (out, streamed) = batch(&tokens(prompt), 3, &sampled(9, 40), &BatchTuning::default());
        for (r, row) in out.rows.iter().enumerate() {
            assert_eq!(streamed[r], row.text, "prompt {prompt:?} row {r}");
            assert_eq!(row.text, model().tokenizer.decode(&row.token_ids).unwrap());
        }
    }
}

#[test]
fn tiny_limits_finish_every_row_before_any_fork() {
    let ids = tokens("Count: 1, 2, 3,");
    for max in [0, 1] {
        let (out, _) = batch(&ids, 3, &sampled(2, max), &BatchTuning::default());
        for row in &out.rows {
            assert_eq!(row.token_ids.len(), max);
            assert_eq!(row.stop_reason, StopReason::MaxTokens);
        }
        assert_eq!(out.stats.decode_passes, 0);
    }
}

#[test]
fn cancellation_mid_batch_stops_every_row() {
    let lm = model();
    let ids = tokens("Tell a very long story about a mathematician:");
    let cancel = CancelToken::new();
    let options = BatchOptions {
        n: 3,
        generate: sampled(4, 2000),
    };
    let mut deltas = 0;
    let mut streamed = vec![String::new(); 3];
    let rows = generate_batch(
        &lm.model,
        &lm.tokenizer,
        &ids,
        &options,
        &cancel,
        &mut |r, d| {
            streamed[r].push_str(d.text);
            deltas += 1;
            // Cancel from inside the stream, in the middle of a step (after row 1's 3rd token).
            if deltas == 8 {
                cancel.cancel();
            }
        },
    )
    .unwrap();
    for (r, row) in rows.iter().enumerate() {
        assert_eq!(row.stop_reason, StopReason::Cancelled, "row {r}");
        // The step in flight completes for every row, then nothing more is decoded.
        assert_eq!(row.token_ids.len(), 3, "row {r}");
        assert_eq!(streamed[r], row.text);
    }

    // Cancelled before it starts: every row ends at once with nothing generated.
    let rows = generate_batch(
        &lm.model,
        &lm.tokenizer,
        &ids,
        &options,
        &cancel,
        &mut |_, _| {},
    )
    .unwrap();
    assert!(rows
        .iter()
        .all(|g| g.stop_reason == StopReason::Cancelled && g.token_ids.is_empty()));
}

#[test]
fn zero_rows_an_empty_prompt_and_bad_settings_are_errors() {
    let lm = model();
    let cancel = CancelToken::new();
    let run = |n, ids: &[u32], generate: GenerateOptions| {
        let options = BatchOptions { n, generate };
        generate_batch(
            &lm.model,
            &lm.tokenizer,
            ids,
            &options,
            &cancel,
            &mut |_, _| {},
        )
        .unwrap_err()
        .to_string()
    };
    assert!(run(0, &tokens("hi"), greedy(8)).contains("at least one row"));
    assert!(run(3, &[], greedy(8)).contains("empty"));
    let bad = GenerateOptions {
        sampling: SamplingParams {
            temperature: -1.0,
            ..Default::default()
        },
        ..Default::default()
    };
    assert!(run(3, &tokens("hi"), bad).contains("temperature"));
}
