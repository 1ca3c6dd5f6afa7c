//! The student's hint ladder, written after the run's answer is chosen: three rungs written
//! for teaching (what to notice, an approach, the next concrete step) and a bottom-out rung,
//! the worked solution.
//!
//! - **Built from a verified solution when there is one**: the hint writer reads the chosen
//!   candidate's solution only when the tutor is confident in its answer (the one definition,
//!   `k2_answer::check::confident_answer`) and an answer key, when known, agrees. Otherwise it
//!   writes from the problem alone, and the bottom-out rung says that the solution is unverified.
//! - **Screened before it is sent**: every written rung is checked with the equivalence checker
//!   against the selected answer, every candidate's answer and the answer key, and for a value
//!   stated for the unknown the question asks for (`k2_answer::hints::Withheld`). A rung that reveals one is written again once; if the new
//!   text still reveals one, its revealing sentences are cut; a rung with nothing left says it
//!   was withheld. The event says which (`Hint::screened`).
//! - The bottom-out rung gives the answer away by design and is flagged `bottom_out`.

use k2_answer::check::{confident_answer, ChosenAnswer, EndedCandidate, RunEvidence};
use k2_answer::equivalent;
use k2_answer::hints::Withheld;
use k2_protocol::{Effort, FinishReason, Hint, HintScreen, Verdict};

use crate::backend::{Backend, CancelToken, GenerateOptions, SamplingParams};
use crate::error::Result;
use crate::judge::Entrant;
use crate::prompts::{hint_messages, hint_rewrite_messages, visible_solution, HINT_LABELS};
use crate::select::Selected;
use crate::think;

/// Longest reply of the hint writer: three rungs of one or two sentences.
const HINT_MAX_TOKENS: usize = 320;
/// Longest rewrite of one rung.
const REWRITE_MAX_TOKENS: usize = 120;

/// What a withheld rung says instead of its text.
pub const WITHHELD_RUNG: &str =
    "This hint was withheld: every sentence of it gave a result away. Try the next one.";

/// What the ladder is written from.
pub struct LadderInput<'a> {
    pub problem: &'a str,
    pub entrants: &'a [Entrant],
    pub selected: &'a Selected,
    pub verdicts: &'a [Verdict],
    /// The problem's known answer, when the caller has one (never part of the request, which
    /// every reader of the run sees).
    pub answer_key: Option<&'a str>,
    pub loop_guard: bool,
    /// Whether the candidates were written from one plan (see `RunEvidence::shared_plan`).
    pub shared_plan: bool,
}

impl LadderInput<'_> {
    fn chosen(&self) -> &Entrant {
        &self.entrants[self.selected.candidate]
    }

    /// Whether the chosen solution is one a student may be shown as right: the tutor is
    /// confident in its answer, and the answer key (when known) agrees.
    fn verified(&self) -> bool {
        let evidence = RunEvidence {
            candidates: self
                .entrants
                .iter()
                .map(|e| {
                    Some(EndedCandidate {
                        answer: e.answer.clone(),
                        finish: e.finish,
                    })
                })
                .collect(),
            chosen: Some(ChosenAnswer {
                candidate: Some(self.selected.candidate),
                answer: self.chosen().answer.clone(),
                method: Some(self.selected.method),
            }),
            verdicts: self.verdicts.to_vec(),
            shared_plan: self.shared_plan,
        };
        let chosen = self.chosen().answer.as_deref();
        match self.answer_key {
            Some(key) => chosen.is_some_and(|a| equivalent(a, key)),
            None => confident_answer(&evidence).is_some(),
        }
    }

    fn withheld(&self) -> Withheld {
        Withheld::new(
            self.entrants
                .iter()
                .filter_map(|e| e.answer.as_deref())
                .chain(self.answer_key),
        )
        .asking(self.problem)
    }
}

/// Writes the ladder with `writer`, sending each rung to `emit` as soon as it is screened.
/// Answers the tokens generated.
pub fn write_ladder(
    writer: &dyn Backend,
    input: &LadderInput<'_>,
    cancel: &CancelToken,
    emit: &mut dyn FnMut(Hint),
) -> Result<usize> {
    let verified = input.verified();
    let solution = visible_solution(&input.chosen().text);
    let messages = hint_messages(input.problem, verified.then_some(solution.as_str()));
    let options = writer_options(HINT_MAX_TOKENS, input.loop_guard);
    let reply = writer.complete(&messages, 1, &options, cancel, &mut |_, _| {})?;
    let Some(reply) = reply.into_iter().next() else {
        return Ok(0);
    };
    let mut tokens = reply.tokens;
    if reply.finish == FinishReason::Cancelled {
        return Ok(tokens);
    }
    let withheld = input.withheld();
    let rungs = parse_rungs(think::outside_reasoning(&reply.text));
    let mut level = 0;
    for text in rungs {
        if cancel.is_cancelled() {
            return Ok(tokens);
        }
        level += 1;
        let (text, screened, spent) = screen(writer, input, &withheld, &text, cancel)?;
        tokens += spent;
        emit(Hint {
            level,
            text,
            bottom_out: false,
            screened,
        });
    }
    emit(Hint {
        level: level + 1,
        text: bottom_out(input, verified, &solution),
        bottom_out: true,
        screened: None,
    });
    Ok(tokens)
}

fn writer_options(max_tokens: usize, loop_guard: bool) -> GenerateOptions {
    GenerateOptions {
        sampling: SamplingParams::greedy(),
        max_tokens,
        stop: Vec::new(),
        // Hints are short: a reasoning model need not think at length to write them.
        effort: Some(Effort::Low),
        loop_guard,
        ..GenerateOptions::default()
    }
}

/// A written rung as it may be shown: as written, rewritten, or cut (see the module's
/// documentation), with the tokens a rewrite cost.
fn screen(
    writer: &dyn Backend,
    input: &LadderInput<'_>,
    withheld: &Withheld,
    text: &str,
    cancel: &CancelToken,
) -> Result<(String, Option<HintScreen>, usize)> {
    if !withheld.revealed_in(text) {
        return Ok((text.to_owned(), None, 0));
    }
    let values: Vec<&str> = input
        .entrants
        .iter()
        .filter_map(|e| e.answer.as_deref())
        .chain(input.answer_key)
        .collect();
    let messages = hint_rewrite_messages(input.problem, text, &values);
    let options = writer_options(REWRITE_MAX_TOKENS, input.loop_guard);
    let reply = writer.complete(&messages, 1, &options, cancel, &mut |_, _| {})?;
    let (rewritten, spent) = match reply.into_iter().next() {
        Some(r) if r.finish.is_complete() => (
            clean_rung(think::outside_reasoning(&r.text)).to_owned(),
            r.tokens,
        ),
        Some(r) => (String::new(), r.tokens),
        None => (String::new(), 0),
    };
    if !rewritten.is_empty() && !withheld.revealed_in(&rewritten) {
        return Ok((rewritten, Some(HintScreen::Rewritten), spent));
    }
    let cut = withheld
        .cut(text)
        .unwrap_or_else(|| WITHHELD_RUNG.to_owned());
    Ok((cut, Some(HintScreen::Cut), spent))
}

/// The worked solution, with what the student should know about it.
fn bottom_out(input: &LadderInput<'_>, verified: bool, solution: &str) -> String {
    let solution = solution.trim();
    if verified {
        return solution.to_owned();
    }
    let key_disagrees = input.answer_key.is_some();
    let warning = if key_disagrees {
        "The tutor's chosen solution does not reach the problem's known answer, so it is \
wrong somewhere. Ask your teacher; here it is, to compare with your own work:"
    } else {
        "The tutor is not sure of this solution (its solutions disagree, or it could not check \
them). Compare it with your own work and ask your teacher:"
    };
    format!("{warning}\n\n{solution}")
}

/// The rungs in the writer's reply, in label order: the text after each label (`Notice:`,
/// `**Approach:**`, `3. Next step -`) up to the next label. A label the writer left out leaves
/// its rung out; text before the first label is ignored.
pub fn parse_rungs(reply: &str) -> Vec<String> {
    let mut rungs: Vec<(usize, String)> = Vec::new();
    for line in reply.lines() {
        // Writers number their hints ("**Hint 2:**", "Hint 2: Approach: …"); the number is ours.
        let Some(line) = without_hint_number(line) else {
            continue;
        };
        match labelled(line) {
            Some((label, rest)) => rungs.push((label, rest.to_owned())),
            None => {
                if let Some((_, text)) = rungs.last_mut() {
                    if !line.trim().is_empty() {
                        text.push(' ');
                        text.push_str(line.trim());
                    }
                }
            }
        }
    }
    let mut seen = [false; HINT_LABELS.len()];
    rungs.sort_by_key(|(label, _)| *label);
    rungs
        .into_iter()
        .filter(|(label, _)| !std::mem::replace(&mut seen[*label], true))
        .map(|(_, text)| capitalized(clean_rung(&text)))
        .filter(|text| text.chars().any(char::is_alphanumeric))
        .collect()
}

/// `line` without a leading "Hint N:" (in any Markdown dress); `None` when nothing else is
/// on the line.
fn without_hint_number(line: &str) -> Option<&str> {
    let bare = line.trim_start().trim_start_matches(['#', '-', '*', ' ']);
    let Some(rest) = bare
        .get(..4)
        .filter(|head| head.eq_ignore_ascii_case("hint"))
        .map(|_| bare[4..].trim_start())
    else {
        return Some(line);
    };
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 {
        return Some(line);
    }
    let rest = rest[digits..].trim_start_matches(['*', ':', '.', ')', '-', ' ']);
    (!rest.trim().is_empty()).then_some(rest)
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The label a line starts with (its index in [`HINT_LABELS`]) and the text after it.
fn labelled(line: &str) -> Option<(usize, &str)> {
    let line = line
        .trim_start()
        .trim_start_matches(['#', '-', '*', ' '])
        .trim_start_matches(|c: char| c.is_ascii_digit())
        .trim_start_matches(['.', ')', ' ', '*']);
    HINT_LABELS.iter().enumerate().find_map(|(i, label)| {
        let head = line.get(..label.len())?;
        if !head.eq_ignore_ascii_case(label) {
            return None;
        }
        let rest = line[label.len()..].trim_start_matches(['*', ' ']);
        let rest = rest.strip_prefix([':', '-', '—'])?;
        Some((i, rest.trim_start_matches(['*', ' '])))
    })
}

/// A rung's text without the writer's wrapping (quotes, leftover emphasis, a `<hint>` tag).
fn clean_rung(text: &str) -> &str {
    let text = text.trim();
    let text = text
        .strip_prefix("<hint>")
        .map_or(text, |t| t.trim_end_matches("</hint>"));
    text.trim().trim_matches(['"', '*']).trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rungs_are_read_from_labelled_lines_in_any_dress() {
        let reply = "Sure! Here are the hints.\n\n**Notice:** The shape has six sides.\n\
2. **Approach** - Split it into triangles\nfrom one corner.\n### Next step: Count the triangles.";
        assert_eq!(
            parse_rungs(reply),
            vec![
                "The shape has six sides.",
                "Split it into triangles from one corner.",
                "Count the triangles."
            ]
        );
    }

    #[test]
    fn the_writers_own_hint_numbers_are_dropped() {
        let reply = "**Hint 1: Notice:** the angles add up.\n**Hint 2:**\n\
**Approach:** cut it into triangles.\nHint 3. Next step: count them.";
        assert_eq!(
            parse_rungs(reply),
            vec![
                "The angles add up.",
                "Cut it into triangles.",
                "Count them."
            ]
        );
    }

    #[test]
    fn missing_repeated_and_empty_rungs_are_left_out() {
        let reply = "Next step: Add the two numbers.\nNotice: Look at the tens.\nNotice: again\n\
Approach:   \n";
        assert_eq!(
            parse_rungs(reply),
            vec!["Look at the tens.", "Add the two numbers."]
        );
        assert!(parse_rungs("The answer is 42.").is_empty());
    }

    #[test]
    fn a_word_that_merely_begins_like_a_label_is_not_one() {
        assert!(labelled("Noticeably, the sum is even.").is_none());
        assert_eq!(labelled("notice : the sum"), Some((0, "the sum")));
        assert_eq!(labelled("Notice: the sum"), Some((0, "the sum")));
    }
}
