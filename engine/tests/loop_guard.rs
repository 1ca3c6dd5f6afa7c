//! The loop guard on recorded kinds of output: degenerate ones it must stop (a 0.5B planner
//! repeating one plan line twenty times, a reasoning trace cycling through one check, one
//! word forever) and legitimate mathematics it must leave alone (counting, a multiplication
//! table, lines that look alike but progress, a zero matrix, a long decimal expansion, a
//! sentence said three times).
//!
//! Texts are turned into token ids the way byte-level BPE vocabularies of these models split
//! them: a word with its leading space is one token, punctuation is one token, every digit is
//! its own token (Qwen2/Qwen3 and Llama 3 split numbers into digits), a newline is one token.

use std::collections::HashMap;

use k2_engine::decode::loop_guard::{repeats_needed, LoopGuard, MIN_COVERED_TOKENS, MIN_REPEATS};

/// Word-level stand-in for a BPE tokenizer: the same piece always gets the same id.
#[derive(Default)]
struct Pieces(HashMap<String, u32>);

impl Pieces {
    fn ids(&mut self, text: &str) -> Vec<u32> {
        let chars: Vec<char> = text.chars().collect();
        let mut ids = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let start = i;
            // A space goes with the word after it; anything else is a token of its own.
            if chars[i] == ' ' && chars.get(i + 1).is_some_and(|c| c.is_alphabetic()) {
                i += 1;
            }
            if chars[i].is_alphabetic() {
                while chars.get(i).is_some_and(|c| c.is_alphabetic()) {
                    i += 1;
                }
            } else {
                i += 1;
            }
            let piece: String = chars[start..i].iter().collect();
            let next = self.0.len() as u32;
            ids.push(*self.0.entry(piece).or_insert(next));
        }
        ids
    }
}

/// Where the guard fires in `text`: (tokens read when it fired, the loop's period, copies).
fn guard_on(text: &str) -> (usize, Option<(usize, usize, usize)>) {
    let ids = Pieces::default().ids(text);
    let mut guard = LoopGuard::new();
    for (i, &id) in ids.iter().enumerate() {
        if let Some(found) = guard.push(id) {
            return (ids.len(), Some((i + 1, found.period, found.repeats())));
        }
    }
    (ids.len(), None)
}

/// The tokens one copy of `block` adds inside a run of copies (a trailing space joins the
/// next copy's first word).
fn period_of(block: &str) -> usize {
    let tokens = |text: &str| Pieces::default().ids(text).len();
    tokens(&block.repeat(3)) - tokens(&block.repeat(2))
}

#[test]
fn the_planners_repeated_line_is_stopped_before_its_twentieth_copy() {
    let line = "Step 1: Identify the number of apples.\n";
    let text = format!(
        "<plan>\nKey idea: count the apples Tom has, then add the ones he gets.\n{}",
        line.repeat(20)
    );
    let (total, fired) = guard_on(&text);
    let (at, period, copies) = fired.expect("the loop is caught");
    let line_tokens = period_of(line);
    assert_eq!(period, line_tokens, "the period is one plan line");
    assert_eq!(copies, repeats_needed(line_tokens));
    assert!(
        copies < 20 && at < total,
        "stopped at token {at} of {total}"
    );
}

#[test]
fn a_reasoning_trace_cycling_through_one_check_is_stopped() {
    let cycle = "Wait, let me double check. 17 + 25: 7 + 5 = 12, carry the 1, \
                 1 + 2 + 1 = 4, so 42. So the answer is 42. ";
    let text = format!(
        "<think>\nOkay, Tom has 17 apples and gets 25 more. 17 + 25 = 42. {}",
        cycle.repeat(12)
    );
    let (total, fired) = guard_on(&text);
    let (at, period, copies) = fired.expect("the cycle is caught");
    assert_eq!(period, period_of(cycle));
    assert_eq!(copies, MIN_REPEATS, "a long block needs the fewest copies");
    assert!(at < total);
}

#[test]
fn one_word_forever_is_stopped_after_the_minimum_run() {
    let text = format!("So the answer is{}", " the".repeat(400));
    let (_, fired) = guard_on(&text);
    let (_, period, copies) = fired.expect("the loop is caught");
    assert_eq!((period, copies), (1, MIN_COVERED_TOKENS));
}

#[test]
fn counting_is_not_a_loop() {
    let text: Vec<String> = (1..=600).map(|n| n.to_string()).collect();
    assert_eq!(guard_on(&text.join(", ")).1, None);
    let evens: Vec<String> = (0..300).map(|n| format!("a_{{{n}}} = {}", 2 * n)).collect();
    assert_eq!(guard_on(&evens.join(", ")).1, None);
}

#[test]
fn a_multiplication_table_is_not_a_loop() {
    let mut text = String::from("Here is the table:\n");
    for a in 1..=12 {
        for b in 1..=12 {
            text += &format!("{a} × {b} = {}\n", a * b);
        }
    }
    assert_eq!(guard_on(&text).1, None);
}

#[test]
fn lines_that_look_alike_but_progress_are_not_a_loop() {
    let mut text = String::new();
    for day in 1..=60 {
        text += &format!(
            "Day {day}: Tom picks 3 more apples, so he has {} apples.\n",
            3 * day
        );
    }
    assert_eq!(guard_on(&text).1, None);
    let steps: String = (1..=40)
        .map(|n| format!("Step {n}: Identify the number of apples.\n"))
        .collect();
    assert_eq!(guard_on(&steps).1, None);
}

#[test]
fn a_zero_matrix_a_long_decimal_and_a_sentence_said_three_times_are_not_loops() {
    let row = format!("{} \\\\\n", ["0"; 8].join(" & "));
    let matrix = format!(
        "The zero matrix is $$\\begin{{pmatrix}}\n{}{}\n\\end{{pmatrix}}$$",
        row.repeat(7),
        ["0"; 8].join(" & ")
    );
    assert_eq!(guard_on(&matrix).1, None, "an 8x8 zero matrix");
    // However its rows are tokenized: eight rows are never eight full copies of a row.
    let spaced = matrix.replace(" & ", "  &  ");
    assert_eq!(guard_on(&spaced).1, None, "an 8x8 zero matrix, wide rows");
    let third = format!("1/3 = 0.{}...", "3".repeat(60));
    assert_eq!(guard_on(&third).1, None);
    let unsure = "Wait, let me check that again. ".repeat(3);
    assert_eq!(guard_on(&format!("{unsure}Yes, it is 42.")).1, None);
}
