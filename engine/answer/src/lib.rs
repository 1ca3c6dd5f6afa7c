//! Final answers: finding them in a solution ([`extract_answer`]), a canonical key for
//! grouping ([`normalize`]) and mathematical equivalence ([`compare`], [`equivalent`]).
//!
//! Used to grade against ground truth, to group candidates whose answers agree (majority
//! vote), and to check a student's typed answer without revealing the right one ([`check`]:
//! the verdict and what it rests on, the one definition every front end uses).
//! The answer card's words ([`card`]) take their confidence from the same check.
//!
//! The pipeline, one module per step:
//! 1. `normalize`: text cleanup (`$`, `\text{cm}`, `\left`, `^\circ`,
//!    `1{,}000`, `\dfrac`, ...);
//! 2. `structure`: the shape (scalar, tuple/interval, set, unordered list, union, matrix);
//! 3. `expr` + `rational`: a bounded parser/evaluator with exact rationals;
//! 4. `equivalence`: the comparison rules and the canonical key (see that module for the
//!    exact rules: tolerances, percent, random points for variables).
//!
//! Everything here takes untrusted model or student text: no panics, no unbounded recursion,
//! no unbounded arithmetic.

pub mod card;
pub mod check;
mod degrees;
mod equivalence;
mod expr;
mod extract;
pub mod hints;
mod normalize;
mod rational;
mod structure;
pub mod work;

use serde::{Deserialize, Serialize};

pub use equivalence::{POINTS, REL_TOL};
pub use extract::{extract_answer, AnswerSource, ExtractedAnswer};

/// How two answers relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Equivalence {
    /// The same mathematical answer.
    Same,
    /// Both were understood, and they differ.
    Different,
    /// At least one side is empty or could only be read as free text (and the texts differ),
    /// so no mathematical judgement was possible.
    Unparseable,
}

/// Answers longer than this are compared by their cleaned text only.
const MAX_ANSWER_CHARS: usize = 4000;

/// Compares two final answers (as extracted, with or without `\boxed{}`/`$`).
pub fn compare(a: &str, b: &str) -> Equivalence {
    let verdict = compare_cleaned(a, b);
    if verdict == Equivalence::Same {
        return verdict;
    }
    // An angle in degrees against one in radians (see `degrees`).
    match degrees::radians_pair(a, b) {
        Some((a, b)) if compare_cleaned(&a, &b) == Equivalence::Same => Equivalence::Same,
        _ => verdict,
    }
}

fn compare_cleaned(a: &str, b: &str) -> Equivalence {
    let (ca, cb) = (normalize::clean(a), normalize::clean(b));
    if ca.is_empty() || cb.is_empty() {
        return Equivalence::Unparseable;
    }
    if ca == cb {
        return Equivalence::Same;
    }
    if ca.len() > MAX_ANSWER_CHARS || cb.len() > MAX_ANSWER_CHARS {
        return Equivalence::Unparseable;
    }
    match equivalence::compare_nodes(&structure::parse(&ca), &structure::parse(&cb)) {
        equivalence::Verdict::Same => Equivalence::Same,
        equivalence::Verdict::Different => Equivalence::Different,
        equivalence::Verdict::Unreadable => Equivalence::Unparseable,
    }
}

/// Whether two final answers are mathematically the same.
pub fn equivalent(a: &str, b: &str) -> bool {
    compare(a, b) == Equivalence::Same
}

/// A canonical key for display and grouping: equal keys imply [`equivalent`] answers (the
/// converse does not hold: `\sqrt8` and `2\sqrt2` keep different keys).
pub fn normalize(answer: &str) -> String {
    let cleaned = normalize::clean(answer);
    if cleaned.len() > MAX_ANSWER_CHARS {
        return cleaned;
    }
    equivalence::key(&structure::parse(&cleaned))
}
