//! "Check my work" by the verifier model, where numbers cannot decide (issue 27): the judge
//! (planner) model reads the problem, the verified worked solution when there is one, and the
//! student's numbered steps, and names the first step it doubts with one sentence of what to
//! re-check, or none.
//!
//! Its reply is untrusted twice over: it is parsed leniently (a reply naming no step and no
//! "none" is [`ModelReview::Unreadable`], never "found nothing"), and its sentence is screened
//! before anyone sees it: a sentence that reveals a withheld answer is cut (`Withheld`), and
//! one that writes a number the student did not write is replaced by [`FALLBACK_ADVICE`] (it
//! could be a correct intermediate value). What comes back is the model's opinion; the caller
//! records it as such (`k2_answer::work::with_model_review`).

use k2_answer::hints::Withheld;
use k2_answer::work::{needs_model_review, split_steps, with_model_review, ModelReview};
use k2_protocol::{Effort, FinishReason, WorkCheck};

use crate::backend::{Backend, CancelToken, ChatMessage, GenerateOptions, SamplingParams};
use crate::error::{Result, ScaffoldError};
use crate::prompts::{tail_chars, visible_solution, JUDGE_SOLUTION_CHARS};
use crate::think;

/// The reply is two short lines; a reasoning model's low effort fits in this too.
const REVIEW_MAX_TOKENS: usize = 160;
/// The student's steps shown to the model, at most (the last characters are dropped: the first
/// wrong step is what is asked for).
const MAX_WORK_CHARS: usize = 6_000;
/// The longest sentence of advice kept.
const MAX_ADVICE_CHARS: usize = 240;

/// What the student reads when the model's own sentence had to go.
pub const FALLBACK_ADVICE: &str = "Check this step again.";

const REVIEW_SYSTEM: &str = "You are a careful math teacher checking a student's worked \
solution. You point at the first step that is wrong and say what to re-check there, but you \
never give the answer or any correct value.";

/// `check` (the number checker's verdict on `work`) with the verifier model's review where
/// the numbers could not decide (`needs_model_review`), else as it is. The one place every
/// front end asks the model (`k2 solve --work`, the history through `k2_app`). A backend that
/// fails leaves the check as the numbers made it (not `reviewed_by_model`), and says so in the
/// log.
pub fn review_checked_work(
    backend: &dyn Backend,
    problem: &str,
    solution: Option<&str>,
    work: &str,
    check: WorkCheck,
    withheld: &Withheld,
    cancel: &CancelToken,
) -> WorkCheck {
    if !needs_model_review(&check) {
        return check;
    }
    let spans = split_steps(work);
    let steps: Vec<&str> = spans.iter().map(|s| s.text.as_str()).collect();
    match review_work(backend, problem, solution, &steps, withheld, cancel) {
        Ok(review) => with_model_review(check, &spans, review),
        Err(e) => {
            tracing::warn!("the verifier model could not review the work: {e}");
            check
        }
    }
}

/// Asks `backend` (greedy, low effort, short, loop guard on) which of `steps` is the first
/// wrong one. `Err` only when the backend failed or the review was cancelled.
pub fn review_work(
    backend: &dyn Backend,
    problem: &str,
    solution: Option<&str>,
    steps: &[&str],
    withheld: &Withheld,
    cancel: &CancelToken,
) -> Result<ModelReview> {
    let messages = review_messages(problem, solution, steps);
    let options = GenerateOptions {
        sampling: SamplingParams::greedy(),
        max_tokens: REVIEW_MAX_TOKENS,
        effort: Some(Effort::Low),
        loop_guard: true,
        ..GenerateOptions::default()
    };
    let reply = backend.complete(&messages, 1, &options, cancel, &mut |_, _| {})?;
    let Some(reply) = reply.into_iter().next() else {
        return Ok(ModelReview::Unreadable);
    };
    if reply.finish == FinishReason::Cancelled || cancel.is_cancelled() {
        return Err(ScaffoldError::Cancelled);
    }
    let review = parse_review(think::outside_reasoning(&reply.text), steps.len());
    Ok(match review {
        ModelReview::Doubt { step, advice } => ModelReview::Doubt {
            step,
            advice: screen_advice(&advice, steps, withheld),
        },
        other => other,
    })
}

/// The conversation: the problem, the verified solution when there is one, the numbered
/// steps, and the reply's two-line form.
pub fn review_messages(problem: &str, solution: Option<&str>, steps: &[&str]) -> Vec<ChatMessage> {
    let mut work = String::new();
    for (i, step) in steps.iter().enumerate() {
        let line = format!("Step {}: {}\n", i + 1, step.trim().replace('\n', " "));
        if work.len() + line.len() > MAX_WORK_CHARS {
            break;
        }
        work.push_str(&line);
    }
    let reference = match solution.map(visible_solution) {
        Some(s) if !s.trim().is_empty() => format!(
            "A verified correct solution (for you only; never quote its values):\n<solution>\n{}\n</solution>\n\n",
            tail_chars(s.trim(), JUDGE_SOLUTION_CHARS)
        ),
        _ => String::new(),
    };
    let user = format!(
        "Problem:\n<problem>\n{}\n</problem>\n\n{reference}\
The student's work:\n<work>\n{}</work>\n\n\
Find the first step of the student's work that is wrong: a wrong method, a wrong claim, a \
misread question or a wrong calculation. If every step is right, say none. Reply with exactly \
two lines and nothing else:\n\
WRONG STEP: <the step's number, or none>\n\
RECHECK: <one short sentence telling the student what to re-check in that step, without any \
number or answer>",
        problem.trim(),
        work
    );
    vec![ChatMessage::system(REVIEW_SYSTEM), ChatMessage::user(user)]
}

/// Reads a reply: `WRONG STEP: 3` (also `wrong step 3`, `Step 3`, `**Wrong step:** 3`) or
/// `none`, and the `RECHECK:` sentence ([`FALLBACK_ADVICE`] without one). A step outside
/// `1..=steps`, or no step and no "none", is unreadable.
pub fn parse_review(reply: &str, steps: usize) -> ModelReview {
    let lower = reply.to_lowercase();
    let step = match lower.find("wrong step") {
        Some(at) => first_step_or_none(&lower[at + "wrong step".len()..]),
        // A reply that ignored the form: its first "step N", unless it says none is wrong.
        None if says_none(&lower) => Some(None),
        None => lower
            .find("step")
            .and_then(|at| number_after(&lower[at + "step".len()..]))
            .map(Some),
    };
    match step {
        Some(Some(n)) if (1..=steps).contains(&n) => ModelReview::Doubt {
            step: n,
            advice: recheck_sentence(reply).unwrap_or_else(|| FALLBACK_ADVICE.to_owned()),
        },
        Some(None) => ModelReview::NoneFound,
        _ => ModelReview::Unreadable,
    }
}

/// After "wrong step": `Some(Some(n))` for a number, `Some(None)` for none, on the same line.
fn first_step_or_none(rest: &str) -> Option<Option<usize>> {
    let line = rest.lines().next().unwrap_or("");
    let line = line.trim_start_matches(|c: char| !c.is_alphanumeric());
    if let Some(n) = number_after(line) {
        return Some(Some(n));
    }
    says_none(line).then_some(None)
}

fn says_none(text: &str) -> bool {
    let words: Vec<&str> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    words
        .first()
        .is_some_and(|w| matches!(*w, "none" | "no" | "n"))
        || text.contains("no wrong step")
        || text.contains("all steps are correct")
        || text.contains("every step is correct")
}

/// The number right after `text`'s leading spaces, colons and stars (`: **3**`).
fn number_after(text: &str) -> Option<usize> {
    let text = text.trim_start_matches(|c: char| c.is_whitespace() || matches!(c, ':' | '*' | '#'));
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The text after `RECHECK:` (any case, Markdown stars dropped), its first sentence.
fn recheck_sentence(reply: &str) -> Option<String> {
    let at = reply.to_lowercase().find("recheck")?;
    let rest = &reply[at + "recheck".len()..];
    let rest = rest.trim_start_matches(|c: char| c.is_whitespace() || matches!(c, ':' | '*'));
    let line = rest.lines().next().unwrap_or("").replace("**", "");
    let sentence = match line.find(". ") {
        Some(end) => &line[..=end],
        None => line.as_str(),
    };
    let sentence = sentence.trim();
    if !sentence.chars().any(char::is_alphabetic) {
        return None;
    }
    Some(if sentence.chars().count() > MAX_ADVICE_CHARS {
        let cut: String = sentence.chars().take(MAX_ADVICE_CHARS).collect();
        format!("{}…", cut.trim_end())
    } else {
        sentence.to_owned()
    })
}

/// The advice as it may be shown: without sentences revealing a withheld answer, and
/// [`FALLBACK_ADVICE`] when nothing is left or it writes a number the student did not write.
pub fn screen_advice(advice: &str, steps: &[&str], withheld: &Withheld) -> String {
    let kept = if withheld.revealed_in(advice) {
        match withheld.cut(advice) {
            Some(kept) => kept,
            None => return FALLBACK_ADVICE.to_owned(),
        }
    } else {
        advice.to_owned()
    };
    let written: Vec<String> = steps.iter().flat_map(|s| numbers(s)).collect();
    if numbers(&kept).iter().any(|n| !written.contains(n)) {
        return FALLBACK_ADVICE.to_owned();
    }
    kept
}

/// The digit runs of `text` (`1,000` and `2.5` as one number each).
fn numbers(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let joins = matches!(c, '.' | ',')
            && !current.is_empty()
            && chars.get(i + 1).is_some_and(char::is_ascii_digit);
        if c.is_ascii_digit() {
            current.push(c);
        } else if joins {
            if c == '.' {
                current.push(c);
            }
        } else if !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_line_form_and_its_variants_are_read() {
        let doubt = |step: usize, advice: &str| ModelReview::Doubt {
            step,
            advice: advice.into(),
        };
        assert_eq!(
            parse_review(
                "WRONG STEP: 2\nRECHECK: Check which amount the question asks for.",
                3
            ),
            doubt(2, "Check which amount the question asks for.")
        );
        assert_eq!(
            parse_review(
                "**Wrong step:** **3**\n**Recheck:** Re-read the question. Then…",
                3
            ),
            doubt(3, "Re-read the question.")
        );
        // No RECHECK line: the fallback words.
        assert_eq!(parse_review("Wrong step: 1", 2), doubt(1, FALLBACK_ADVICE));
        // Ignoring the form but naming a step.
        assert_eq!(
            parse_review("The mistake is in step 2 where she adds.", 2),
            doubt(2, FALLBACK_ADVICE)
        );
        for none in [
            "WRONG STEP: none\nRECHECK: -",
            "wrong step: None.",
            "Wrong step: no",
            "All steps are correct.",
        ] {
            assert_eq!(parse_review(none, 3), ModelReview::NoneFound, "{none}");
        }
        for unreadable in [
            "",
            "I think the answer is 42",
            "WRONG STEP: 9",
            "Step 0 is fine",
        ] {
            assert_eq!(
                parse_review(unreadable, 3),
                ModelReview::Unreadable,
                "{unreadable}"
            );
        }
    }

    #[test]
    fn advice_that_gives_a_value_away_is_cut_or_replaced() {
        let withheld = Withheld::new(["18"]).asking("How much does she make?");
        let steps = ["16 - 3 = 13", "13 * 2 = 26"];
        // Quoting the student is fine.
        assert_eq!(
            screen_advice("Check whether 13 is what she sells.", &steps, &withheld),
            "Check whether 13 is what she sells."
        );
        // The answer: that sentence goes, the rest stays.
        assert_eq!(
            screen_advice(
                "She makes 18 dollars. Check what else uses eggs.",
                &steps,
                &withheld
            ),
            "Check what else uses eggs."
        );
        assert_eq!(
            screen_advice("It should be 18.", &steps, &withheld),
            FALLBACK_ADVICE
        );
        // A number the student never wrote (an intermediate result) is not shown.
        assert_eq!(
            screen_advice("She sells 9 eggs, not 13.", &steps, &withheld),
            FALLBACK_ADVICE
        );
        assert_eq!(numbers("1,000 and 2.5, then 7."), ["1000", "2.5", "7"]);
    }

    #[test]
    fn the_prompt_has_the_problem_the_solution_and_numbered_steps() {
        let messages = review_messages(
            "How much?",
            Some("16 - 3 - 4 = 9. 9 * 2 = 18."),
            &["Take away 3.", "Double\nit."],
        );
        assert_eq!(messages.len(), 2);
        let user = &messages[1].content;
        assert!(user.contains("<problem>\nHow much?\n</problem>"));
        assert!(user.contains("<solution>\n16 - 3 - 4 = 9. 9 * 2 = 18.\n</solution>"));
        assert!(user.contains("Step 1: Take away 3.\nStep 2: Double it.\n"));
        assert!(user.contains("WRONG STEP:"));
        let without = review_messages("How much?", None, &["Take away 3."]);
        assert!(!without[1].content.contains("<solution>"));
        // Very long work is cut to whole steps.
        let long = "x".repeat(4_000);
        let cut = review_messages("How much?", None, &[&long, &long]);
        assert!(cut[1].content.contains("Step 1:") && !cut[1].content.contains("Step 2:"));
    }
}
