//! The thinking budget and the loop guard on a real model (SmolLM2-135M, as the other decoding
//! tests), through every decoding loop that shares the row decoder: plain, batched and
//! speculative.
//!
//! - Budget forcing: the prompt ends inside `<think>\n` (as R1-distill and Qwen3 templates
//!   prefill it); after exactly `budget` generated tokens the decoder writes `</think>` and the
//!   answer lead, and the model goes on writing after them.
//! - Loop guard: a prompt that makes the model copy one line over and over ends with
//!   `StopReason::Loop` well before the token limit, and runs to the limit with the guard off.

use k2_engine::chat::ChatMessage;
use k2_engine::decode::batched::{generate_batch, BatchOptions};
use k2_engine::decode::plain::{generate, CancelToken, GenerateOptions, Generation, StopReason};
use k2_engine::decode::speculative::{generate_speculative, DraftSource, SpecTuning};
use k2_engine::decode::think_budget::ANSWER_LEAD;

mod common;
use common::smollm2 as model;

/// A chat prompt whose generation prefix opens a think block, as reasoning templates do.
fn prompt_inside_think() -> Vec<u32> {
    let lm = model();
    let text = lm
        .template
        .render(
            &[ChatMessage::user(
                "Explain step by step, in detail: what is 17 + 25?",
            )],
            true,
        )
        .unwrap();
    lm.tokenizer
        .encode_prompt(&format!("{text}<think>\n"), true)
        .unwrap()
}

fn budgeted(budget: usize, max_tokens: usize) -> GenerateOptions {
    GenerateOptions {
        max_tokens,
        thinking_budget: Some(budget),
        ..GenerateOptions::default()
    }
}

/// Checks one row's result: `budget` thinking tokens, then the forced close exactly there,
/// then the model's own answer tokens; the streamed text is the text.
fn assert_forced_at_budget(g: &Generation, streamed: &str, budget: usize) {
    let lm = model();
    let forced = lm
        .tokenizer
        .encode(&format!("</think>{ANSWER_LEAD}"), true)
        .unwrap();
    let ids = &g.token_ids;
    assert!(
        ids.len() > budget + forced.len(),
        "answer tokens follow the forced close: {:?}",
        g.text
    );
    assert_eq!(
        &ids[budget..budget + forced.len()],
        &forced[..],
        "{:?}",
        g.text
    );
    let thinking = lm.tokenizer.decode(&ids[..budget]).unwrap();
    assert!(!thinking.contains("</think>"), "{thinking:?}");
    assert!(
        g.text
            .starts_with(&format!("{thinking}</think>{ANSWER_LEAD}")),
        "the close comes right after the thinking: {:?}",
        g.text
    );
    let answer = &g.text[thinking.len() + "</think>".len() + ANSWER_LEAD.len()..];
    assert!(!answer.trim().is_empty(), "an answer arrives: {:?}", g.text);
    assert_eq!(
        streamed, g.text,
        "forced text is streamed like generated text"
    );
}

#[test]
fn a_spent_thinking_budget_closes_the_block_and_the_model_answers() {
    let lm = model();
    let prompt = prompt_inside_think();
    // Small: this instruct model was not trained to think and answers within a few dozen
    // tokens on its own.
    let budget = 6;
    let options = budgeted(budget, 48);

    let mut streamed = String::new();
    let g = generate(
        &lm.model,
        &lm.tokenizer,
        &prompt,
        &options,
        &CancelToken::new(),
        &mut |d| streamed.push_str(d.text),
    )
    .unwrap();
    assert_forced_at_budget(&g, &streamed, budget);
    assert_eq!(g.stats.generated_tokens, g.token_ids.len());

    // Batched rows (sampled, each its own seed) and speculative rows force on their own.
    let sampled = GenerateOptions {
        sampling: k2_engine::decode::sample::SamplingParams {
            temperature: 0.8,
            seed: 11,
            ..Default::default()
        },
        ..options.clone()
    };
    let batch = BatchOptions {
        n: 3,
        generate: sampled,
    };
    let mut texts = vec![String::new(); 3];
    let rows = generate_batch(
        &lm.model,
        &lm.tokenizer,
        &prompt,
        &batch,
        &CancelToken::new(),
        &mut |r, d| texts[r].push_str(d.text),
    )
    .unwrap();
    for (row, text) in rows.iter().zip(&texts) {
        assert_forced_at_budget(row, text, budget);
    }

    let greedy = BatchOptions {
        n: 2,
        generate: options,
    };
    let mut texts = vec![String::new(); 2];
    let (spec, _) = generate_speculative(
        &lm.model,
        &lm.tokenizer,
        &prompt,
        &greedy,
        DraftSource::Ngram,
        &SpecTuning::default(),
        &CancelToken::new(),
        &mut |r, d| texts[r].push_str(d.text),
    )
    .unwrap();
    for (row, text) in spec.rows.iter().zip(&texts) {
        assert_forced_at_budget(row, text, budget);
        // Greedy speculation stays token for token plain decoding, forced span included.
        assert_eq!(row.token_ids, g.token_ids);
    }
}

#[test]
fn without_an_open_block_the_budget_forces_nothing() {
    let lm = model();
    let text = lm
        .template
        .render(&[ChatMessage::user("What is 17 + 25?")], true)
        .unwrap();
    let prompt = lm.tokenizer.encode_prompt(&text, true).unwrap();
    let run = |options: &GenerateOptions| {
        generate(
            &lm.model,
            &lm.tokenizer,
            &prompt,
            options,
            &CancelToken::new(),
            &mut |_| {},
        )
        .unwrap()
    };
    let free = run(&GenerateOptions {
        max_tokens: 40,
        ..GenerateOptions::default()
    });
    let budgeted = run(&budgeted(3, 40));
    assert_eq!(budgeted.token_ids, free.token_ids);
    assert!(!budgeted.text.contains("</think>"));
}

/// A plain-text prompt the model continues by copying its last line again and again.
fn looping_prompt() -> Vec<u32> {
    let text = format!(
        "Plan:\n{}",
        "Step 1: Identify the number of apples.\n".repeat(6)
    );
    model().tokenizer.encode_prompt(&text, false).unwrap()
}

#[test]
fn the_loop_guard_ends_a_row_that_repeats_itself() {
    let lm = model();
    let prompt = looping_prompt();
    let run = |loop_guard: bool| {
        let options = GenerateOptions {
            max_tokens: 400,
            loop_guard,
            ..GenerateOptions::default()
        };
        let batch = BatchOptions {
            n: 2,
            generate: options,
        };
        generate_batch(
            &lm.model,
            &lm.tokenizer,
            &prompt,
            &batch,
            &CancelToken::new(),
            &mut |_, _| {},
        )
        .unwrap()
    };
    let unguarded = run(false);
    assert_eq!(
        unguarded[0].stop_reason,
        StopReason::MaxTokens,
        "the model loops to the limit: {:?}",
        unguarded[0].text
    );
    let guarded = run(true);
    for row in &guarded {
        assert_eq!(row.stop_reason, StopReason::Loop, "{:?}", row.text);
        assert!(row.token_ids.len() < 400);
        // What it wrote before the guard fired is what it writes without the guard.
        assert_eq!(
            row.token_ids[..],
            unguarded[0].token_ids[..row.token_ids.len()]
        );
        assert!(row.text.contains("Step 1: Identify the number of apples."));
    }

    // The speculative loop applies the same guard.
    let (spec, _) = generate_speculative(
        &lm.model,
        &lm.tokenizer,
        &prompt,
        &BatchOptions {
            n: 1,
            generate: GenerateOptions {
                max_tokens: 400,
                ..GenerateOptions::default()
            },
        },
        DraftSource::Ngram,
        &SpecTuning::default(),
        &CancelToken::new(),
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(spec.rows[0].stop_reason, StopReason::Loop);
    assert_eq!(spec.rows[0].token_ids, guarded[0].token_ids);
}
