//! The decode loop and the model's cache on a real model (SmolLM2-135M, the fast one):
//! several cache rows, ragged batches and rollback must give the same logits as one plain row;
//! streaming, stop strings, seeds, token limits and cancellation behave as documented.

use std::sync::Mutex;

use candle_core::Tensor;
use k2_engine::decode::plain::{generate, CancelToken, GenerateOptions, StopReason};
use k2_engine::decode::sample::SamplingParams;
use k2_engine::model::LogitsFor;

mod common;
use common::smollm2 as model;

fn tokens(text: &str) -> Vec<u32> {
    model().tokenizer.encode_prompt(text, false).unwrap()
}

fn rows(t: &Tensor) -> Vec<Vec<f32>> {
    t.to_vec2::<f32>().unwrap()
}

fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs()))
        .fold(0.0, f32::max)
}

/// Logits of every position of `ids`, fed in `chunks` (a prefill, then more) on a fresh
/// single-row cache.
fn reference_logits_in(chunks: &[&[u32]]) -> Vec<Vec<f32>> {
    let m = &model().model;
    let mut cache = m.new_cache(None);
    cache.add_row().unwrap();
    chunks
        .iter()
        .flat_map(|c| rows(&m.forward(&mut cache, &[c], LogitsFor::All).unwrap()[0]))
        .collect()
}

fn reference_logits(ids: &[u32]) -> Vec<Vec<f32>> {
    reference_logits_in(&[ids])
}

/// Activation quantization is per token row, so the other rows of a batch must not change a
/// row's result. References are fed in the same chunks as the run they check: quantized
/// inference amplifies even one-ulp differences (a different summation order in attention)
/// into logit changes of ~0.1, so only same-shaped computations can be compared tightly.
const TOLERANCE: f32 = 1e-4;

#[test]
fn ragged_rows_match_separate_single_row_runs() {
    let m = &model().model;
    let a = tokens("The derivative of x squared is");
    let b = tokens("Prime numbers greater than two are odd because");
    let mut cache = m.new_cache(None);
    cache.add_row().unwrap();
    cache.add_row().unwrap();
    // Different lengths in one batch: each row at its own positions.
    let out = m.forward(&mut cache, &[&a, &b], LogitsFor::All).unwrap();
    assert!(max_diff(&rows(&out[0]), &reference_logits(&a)) < TOLERANCE);
    assert!(max_diff(&rows(&out[1]), &reference_logits(&b)) < TOLERANCE);
    // Then one more token for row 1 only; row 0 sits this step out.
    let extra = tokens(" they");
    let out = m
        .forward(&mut cache, &[&[], &extra], LogitsFor::All)
        .unwrap();
    assert_eq!(out[0].dim(0).unwrap(), 0);
    let full: Vec<u32> = b.iter().chain(&extra).copied().collect();
    let want = reference_logits_in(&[&b, &extra]);
    assert!(max_diff(&rows(&out[1]), &want[b.len()..]) < TOLERANCE);
    assert_eq!((cache.len(0), cache.len(1)), (a.len(), full.len()));
}

#[test]
fn forked_rows_continue_like_the_original() {
    let m = &model().model;
    let prompt = tokens("Step one: add the two fractions.");
    let mut cache = m.new_cache(None);
    cache.add_row().unwrap();
    m.forward(&mut cache, &[&prompt], LogitsFor::Last).unwrap();
    cache.fork(0, 2).unwrap();
    assert_eq!(cache.rows(), 3);
    let next = [tokens(" Then"), tokens(" Next"), tokens(" Finally")];
    let batch: Vec<&[u32]> = next.iter().map(Vec::as_slice).collect();
    let out = m.forward(&mut cache, &batch, LogitsFor::Last).unwrap();
    for (row, continuation) in next.iter().enumerate() {
        let want = reference_logits_in(&[&prompt, continuation]);
        assert!(max_diff(&rows(&out[row]), &want[want.len() - 1..]) < TOLERANCE);
    }
    // Keep only the last candidate: it must still continue correctly.
    cache.select(&[2]);
    assert_eq!(cache.rows(), 1);
}

#[test]
fn truncating_the_cache_rolls_back_exactly() {
    let m = &model().model;
    let prefix = tokens("In a right triangle the hypotenuse is");
    let rejected = tokens(" a banana split with sprinkles");
    let accepted = tokens(" the longest side.");
    let mut cache = m.new_cache(None);
    cache.add_row().unwrap();
    m.forward(&mut cache, &[&prefix], LogitsFor::Last).unwrap();
    // Speculated tokens that get rejected: fed, then forgotten.
    m.forward(&mut cache, &[&rejected], LogitsFor::All).unwrap();
    cache.truncate(0, prefix.len()).unwrap();
    assert_eq!(cache.len(0), prefix.len());
    let out = m.forward(&mut cache, &[&accepted], LogitsFor::All).unwrap();
    let want = reference_logits_in(&[&prefix, &accepted]);
    assert_eq!(max_diff(&rows(&out[0]), &want[prefix.len()..]), 0.0);
}

#[test]
fn the_cache_refuses_to_grow_past_its_limit() {
    let m = &model().model;
    let mut cache = m.new_cache(Some(8));
    cache.add_row().unwrap();
    let ids = tokens("one two three four five six seven eight nine ten");
    let err = m.forward(&mut cache, &[&ids], LogitsFor::Last).unwrap_err();
    assert!(err.to_string().contains("context holds 8"), "{err}");
}

fn run(prompt: &str, options: &GenerateOptions) -> (k2_engine::decode::plain::Generation, String) {
    let lm = model();
    let ids = tokens(prompt);
    let mut streamed = String::new();
    let g = generate(
        &lm.model,
        &lm.tokenizer,
        &ids,
        options,
        &CancelToken::new(),
        &mut |d| streamed.push_str(d.text),
    )
    .unwrap();
    (g, streamed)
}

#[test]
fn streamed_text_equals_the_final_text_even_for_multibyte_output() {
    let options = GenerateOptions {
        max_tokens: 40,
        ..Default::default()
    };
    for prompt in [
        "北京是中国的首都。上海是",
        "Emoji story: 🐱🐶",
        "The answer is",
    ] {
        let (g, streamed) = run(prompt, &options);
        assert_eq!(streamed, g.text, "prompt {prompt:?}");
        assert_eq!(g.text, model().tokenizer.decode(&g.token_ids).unwrap());
        assert!(g.token_ids.len() <= 40);
    }
}

#[test]
fn a_stop_string_ends_generation_and_is_not_shown() {
    let free = GenerateOptions {
        max_tokens: 48,
        ..Default::default()
    };
    let (g, _) = run("List the first ten prime numbers:", &free);
    // Pick a stop string from the middle of what the model says anyway.
    let chars: Vec<char> = g.text.chars().collect();
    assert!(chars.len() > 20, "{:?}", g.text);
    let stop: String = chars[10..14].iter().collect();
    let prefix_end = g.text.find(&stop).unwrap();
    let options = GenerateOptions {
        stop: vec![stop.clone()],
        ..free
    };
    let (stopped, streamed) = run("List the first ten prime numbers:", &options);
    assert_eq!(stopped.stop_reason, StopReason::StopString);
    assert_eq!(stopped.text, &g.text[..prefix_end]);
    assert_eq!(streamed, stopped.text);
    assert!(!streamed.contains(&stop));
}

#[test]
fn the_same_seed_repeats_and_another_seed_differs() {
    let sampled = |seed| GenerateOptions {
        max_tokens: 32,
        sampling: SamplingParams {
            temperature: 1.0,
            top_p: 0.95,
            seed,
            ..Default::default()
        },
        stop: Vec::new(),
        ..GenerateOptions::default()
    };
    let prompt = "Write a sentence about triangles:";
    let (a, _) = run(prompt, &sampled(11));
    let (b, _) = run(prompt, &sampled(11));
    let (c, _) = run(prompt, &sampled(12));
    assert_eq!(a.token_ids, b.token_ids);
    assert_ne!(a.token_ids, c.token_ids);
}

#[test]
fn max_tokens_is_respected() {
    let options = GenerateOptions {
        max_tokens: 5,
        ..Default::default()
    };
    let (g, _) = run("Count: 1, 2, 3,", &options);
    assert_eq!(g.token_ids.len(), 5);
    assert_eq!(g.stop_reason, StopReason::MaxTokens);
    assert_eq!(g.stats.generated_tokens, 5);
    assert!(g.stats.prompt_tokens > 3);
}

#[test]
fn cancellation_from_another_thread_stops_generation() {
    let lm = model();
    let ids = tokens("Tell a very long story about a mathematician:");
    let cancel = CancelToken::new();
    let seen = Mutex::new(0usize);
    let options = GenerateOptions {
        max_tokens: 2000,
        ..Default::default()
    };
    let g = std::thread::scope(|s| {
        let canceller = cancel.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        s.spawn(move || {
            // Cancel as soon as the stream has produced something.
            rx.recv().ok();
            canceller.cancel();
        });
        generate(
            &lm.model,
            &lm.tokenizer,
            &ids,
            &options,
            &cancel,
            &mut |_| {
                let mut n = seen.lock().unwrap();
                *n += 1;
                if *n == 3 {
                    tx.send(()).ok();
                }
            },
        )
        .unwrap()
    });
    assert_eq!(g.stop_reason, StopReason::Cancelled);
    assert!(g.token_ids.len() < 100, "{} tokens", g.token_ids.len());
}

#[test]
fn an_empty_prompt_and_bad_settings_are_errors_not_panics() {
    let lm = model();
    let cancel = CancelToken::new();
    let err = generate(
        &lm.model,
        &lm.tokenizer,
        &[],
        &Default::default(),
        &cancel,
        &mut |_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("empty"));
    let bad = GenerateOptions {
        sampling: SamplingParams {
            temperature: -1.0,
            ..Default::default()
        },
        ..Default::default()
    };
    let err = generate(
        &lm.model,
        &lm.tokenizer,
        &tokens("hi"),
        &bad,
        &cancel,
        &mut |_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("temperature"));
}
