//! "Checking, measured" (issue 27): the shipped check (`k2_answer::check`) on recorded
//! real-model runs, beside today's check (the attempt against the run's selected answer).
//!
//! ```text
//! cargo run --release -p k2-answer --example check_measured -- \
//!     tests/results/gpu/eval/gsm8k-cuda.json tests/results/gpu/eval/math500-cuda.json
//! ```
//!
//! Each file is a `k2 eval --out` result: `modes`, each with `items` holding `expected` (the
//! ground truth), `predicted` (the run's selected answer) and `candidates` (`answer`,
//! `finish`). For every best-of-N mode (items with two or more candidates) and every item:
//! - **right attempt**: the ground truth typed by the student; we count `wrong` verdicts
//!   (goal: at most 2%, and only where the run was unanimous but wrong);
//! - **wrong attempt**: the truth plus one when the truth is a number, else `0` (else `1`),
//!   whichever the equivalence checker says differs from the truth; we count `right` verdicts
//!   (goal 0);
//! - **the tutor's mistake**: where the selected answer is wrong, that answer as the attempt
//!   (the student who made the tutor's mistake); we count `right` verdicts;
//! - with the answer key (`--answer-key`): the same attempts checked against the truth.
//!
//! Today's check compared the attempt with the selected answer: right when equivalent, wrong
//! otherwise, no verdict when the run had no answer.
//!
//! Evaluations recorded before `k2 eval` kept how the answer was chosen (`chosen`, `method`)
//! and the judge's `verdicts` cannot reach the `verifier` basis: their runs whose judge decided
//! every comparison in both orders count as unsure. Newer files can, and the table counts the
//! confident runs by basis.

use std::process::ExitCode;

use k2_answer::check::{check_attempt, ChosenAnswer, EndedCandidate, KnownAnswers, RunEvidence};
use k2_answer::equivalent;
use k2_protocol::{
    AttemptCheck, CandidateId, CheckBasis, CheckVerdict, FinishReason, SelectionMethod, Verdict,
};
use serde::Deserialize;

#[derive(Deserialize)]
struct EvalFile {
    data: String,
    modes: Vec<Mode>,
}

#[derive(Deserialize)]
struct Mode {
    mode: String,
    items: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    expected: String,
    predicted: Option<String>,
    #[serde(default)]
    candidates: Vec<Candidate>,
    #[serde(default)]
    chosen: Option<CandidateId>,
    #[serde(default)]
    method: Option<SelectionMethod>,
    #[serde(default)]
    verdicts: Vec<Verdict>,
}

#[derive(Deserialize)]
struct Candidate {
    answer: Option<String>,
    finish: FinishReason,
}

/// Verdict counts over some attempts.
#[derive(Default, Clone, Copy)]
struct Tally {
    attempts: usize,
    right: usize,
    wrong: usize,
    unsure: usize,
}

impl Tally {
    fn add(&mut self, verdict: Option<CheckVerdict>) {
        self.attempts += 1;
        match verdict {
            Some(CheckVerdict::Right) => self.right += 1,
            Some(CheckVerdict::Wrong) => self.wrong += 1,
            // Today's check had no verdict where the run had no answer.
            Some(CheckVerdict::Unsure) | None => self.unsure += 1,
        }
    }

    fn share(&self, count: usize) -> String {
        if self.attempts == 0 {
            return "-".into();
        }
        format!(
            "{:.1}% ({count}/{})",
            100.0 * count as f64 / self.attempts as f64,
            self.attempts
        )
    }
}

/// A wrong attempt: the truth plus one when it is a number, else `0`, else `1`.
fn wrong_attempt(truth: &str) -> Option<String> {
    let plain = truth.trim().replace(',', "");
    let bumped = if let Ok(n) = plain.parse::<i64>() {
        Some((n + 1).to_string())
    } else if let Ok(x) = plain.parse::<f64>() {
        Some(format!("{}", x + 1.0))
    } else {
        None
    };
    bumped
        .into_iter()
        .chain(["0".to_owned(), "1".to_owned()])
        .find(|attempt| !equivalent(attempt, truth))
}

/// Today's check: the attempt against the run's selected answer.
fn todays_check(attempt: &str, predicted: Option<&str>) -> Option<CheckVerdict> {
    predicted.map(|p| match equivalent(attempt, p) {
        true => CheckVerdict::Right,
        false => CheckVerdict::Wrong,
    })
}

fn main() -> ExitCode {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() {
        eprintln!("usage: check_measured EVAL.json... (k2 eval --out files)");
        return ExitCode::FAILURE;
    }
    println!(
        "| set | mode | problems | confident: unanimous | confident: verifier | right attempt called wrong: \
         check / today | wrong attempt called right: check / today | tutor's mistake called \
         right: check / today | right attempt called unsure |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for path in paths {
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("{path}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let file: EvalFile = match serde_json::from_str(&text) {
            Ok(file) => file,
            Err(e) => {
                eprintln!("{path}: not a k2 eval result: {e}");
                return ExitCode::FAILURE;
            }
        };
        for mode in &file.modes {
            if !mode.items.iter().any(|i| i.candidates.len() >= 2) {
                continue;
            }
            // Every candidate of a planned mode follows the run's one plan.
            let shared_plan = mode.mode.starts_with("plan");
            let (mut confident, mut verified) = (0, 0);
            let mut confident_but_wrong = 0;
            let (mut truth, mut truth_today, mut truth_key) = Default::default();
            let (mut wrong, mut wrong_today, mut wrong_key) = Default::default();
            let (mut mistake, mut mistake_today) = (Tally::default(), Tally::default());
            for item in &mode.items {
                let run = RunEvidence {
                    candidates: item
                        .candidates
                        .iter()
                        .map(|c| {
                            Some(EndedCandidate {
                                answer: c.answer.clone(),
                                finish: c.finish,
                            })
                        })
                        .collect(),
                    chosen: Some(ChosenAnswer {
                        candidate: item.chosen,
                        answer: item.predicted.clone(),
                        method: item.method,
                    }),
                    verdicts: item.verdicts.clone(),
                    shared_plan,
                };
                let predicted = item.predicted.as_deref();
                let expected = item.expected.as_str();
                let none = KnownAnswers::default();
                let key = KnownAnswers {
                    answer_key: Some(expected),
                    teacher: None,
                };
                let verdict = |c: AttemptCheck| Some(c.verdict);

                let checked = check_attempt(expected, none, &run);
                match checked.basis {
                    CheckBasis::Unanimous => confident += 1,
                    CheckBasis::Verifier => verified += 1,
                    _ => {}
                }
                if checked.verdict == CheckVerdict::Wrong {
                    confident_but_wrong += 1;
                }
                assert!(
                    checked.verdict != CheckVerdict::Wrong
                        || matches!(checked.basis, CheckBasis::Unanimous | CheckBasis::Verifier),
                    "a wrong verdict without a confident basis"
                );
                Tally::add(&mut truth, verdict(checked));
                Tally::add(&mut truth_today, todays_check(expected, predicted));
                Tally::add(&mut truth_key, verdict(check_attempt(expected, key, &run)));

                if let Some(attempt) = wrong_attempt(expected) {
                    Tally::add(&mut wrong, verdict(check_attempt(&attempt, none, &run)));
                    Tally::add(&mut wrong_today, todays_check(&attempt, predicted));
                    Tally::add(&mut wrong_key, verdict(check_attempt(&attempt, key, &run)));
                }
                if let Some(p) = predicted.filter(|p| !equivalent(p, expected)) {
                    mistake.add(verdict(check_attempt(p, none, &run)));
                    mistake_today.add(todays_check(p, predicted));
                }
            }
            let n = mode.items.len();
            println!(
                "| {} | {} | {n} | {:.1}% ({confident}/{n}) | {:.1}% ({verified}/{n}) | {} / {} | {} / {} | {} / {} | {} |",
                file.data,
                mode.mode,
                100.0 * confident as f64 / n as f64,
                100.0 * verified as f64 / n as f64,
                truth.share(truth.wrong),
                truth_today.share(truth_today.wrong),
                wrong.share(wrong.right),
                wrong_today.share(wrong_today.right),
                mistake.share(mistake.right),
                mistake_today.share(mistake_today.right),
                truth.share(truth.unsure),
            );
            assert_eq!(truth.wrong, confident_but_wrong);
            // With the answer key the check is exact.
            assert_eq!(
                (truth_key.right, wrong_key.wrong),
                (truth_key.attempts, wrong_key.attempts),
                "{}: the answer key decides exactly",
                mode.mode
            );
        }
    }
    println!(
        "\nWith the answer key (`--answer-key`), every right attempt was called right and every \
         wrong attempt wrong, in every mode (asserted above)."
    );
    ExitCode::SUCCESS
}
