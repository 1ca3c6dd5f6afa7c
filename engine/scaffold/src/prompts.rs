//! The scaffold's prompts (planner, solver, judge) and the helpers that read what the models
//! write back (`extract_plan`, `visible_solution`).
//!
//! Design choices, against K2-Think's originals:
//! - **One planner call, no difficulty triage.** The original first asks whether the problem is
//!   hard; whether to plan is already a run setting here, and a second call costs a local model
//!   seconds. The plan asks for what actually helps a solver: the key concepts, an approach and
//!   the pitfalls, kept short (the plan budget is a few hundred tokens).
//! - **Plans must not carry answers.** The prompt forbids stating or hinting the final answer
//!   or any numeric result, and [`extract_plan`] still deletes sentences that do: a plan that
//!   leaks a wrong answer anchors every candidate on it and the vote loses its independence.
//! - **The plan is offered as fallible.** Solvers are told the ideas may be wrong and to check
//!   them, so a bad plan costs less.
//! - **`\boxed{}` for the answer.** Our extractor prefers it; `<answer>` still works.
//! - **The judge reasons before its verdict** and may declare a tie; it sees only the written
//!   solutions (never the reasoning trace, whatever its family's tags), cut to their last [`JUDGE_SOLUTION_CHARS`].

use crate::backend::ChatMessage;
use crate::think;

/// How much of each solution the judge sees, in characters, kept from the end (where the
/// final answer is). About 1,000-1,300 tokens: two solutions, the problem and the instructions
/// then fit a 4K context with room for the judge's reply. Written solutions after `</think>`
/// are usually far shorter; the limit matters for solutions that never closed their thinking.
pub const JUDGE_SOLUTION_CHARS: usize = 4_000;

const PLANNER_SYSTEM: &str = "You are an experienced competition mathematics coach. \
You prepare a short plan that helps a student solve a problem on their own. \
You never solve the problem for them.";

const SOLVER_SYSTEM: &str = "You are a careful competition mathematician. \
First reason through the problem step by step inside <think> ... </think>, checking your work. \
After </think>, write a clear, concise solution and give the final answer in \\boxed{}, \
for example \\boxed{42}.";

const JUDGE_SYSTEM: &str = "You are an impartial grader of competition mathematics solutions. \
You check reasoning and final answers carefully and you are not swayed by the order, length \
or confidence of a solution.";

/// Messages for the planner: key concepts, an approach and pitfalls, inside `<plan>…</plan>`,
/// without any answer or numeric result.
pub fn planner_messages(problem: &str) -> Vec<ChatMessage> {
    let user = format!(
        "Here is a competition math problem:\n\n<problem>\n{problem}\n</problem>\n\n\
Write a short plan for solving it, inside <plan> and </plan>, with three parts:\n\
1. Key concepts: the definitions, theorems or techniques that matter here.\n\
2. Approach: the main steps to take, in order, described in words.\n\
3. Pitfalls: mistakes that are easy to make on this problem (cases that are easy to miss, \
conditions to check, misreadings).\n\n\
Rules: keep it under 150 words. Do not carry out the computation. Never state, guess or \
hint at the final answer or any numeric result, not even an approximate one, and do not \
use \\boxed{{}}."
    );
    vec![ChatMessage::system(PLANNER_SYSTEM), ChatMessage::user(user)]
}

/// Messages for a solver. `plan` (when present and not blank) follows the question as ideas
/// that may help and may be wrong.
pub fn solver_messages(problem: &str, plan: Option<&str>) -> Vec<ChatMessage> {
    let mut user = format!("<question>\n{}\n</question>", problem.trim());
    if let Some(plan) = plan.map(str::trim).filter(|p| !p.is_empty()) {
        user.push_str(
            "\n\nSome ideas that may help. They were written quickly and can be incomplete \
or wrong, so check anything you rely on:\n<ideas>\n",
        );
        user.push_str(plan);
        user.push_str("\n</ideas>");
    }
    vec![ChatMessage::system(SOLVER_SYSTEM), ChatMessage::user(user)]
}

const HINT_SYSTEM: &str = "You are a patient mathematics teacher. A student is stuck on a \
problem and asks for a hint. You guide them to find the answer themselves: you never state \
the final answer or the result of any calculation in the solution.";

/// The labels of the hint ladder's three written rungs, in order, as the hint writer is asked
/// to start each line (read back by `ladder::parse_rungs`).
pub const HINT_LABELS: [&str; 3] = ["Notice", "Approach", "Next step"];

/// Messages for the hint writer: three rungs (what to notice, an approach, the next concrete
/// step), each on a line of its own after its label. `solution` is a verified solution the
/// writer may read but must not give away; without one the hints come from the problem alone.
pub fn hint_messages(problem: &str, solution: Option<&str>) -> Vec<ChatMessage> {
    let mut user = format!("Problem:\n<problem>\n{}\n</problem>\n\n", problem.trim());
    if let Some(solution) = solution.map(str::trim).filter(|s| !s.is_empty()) {
        user.push_str(&format!(
            "A checked solution, for you only (the student must not see it):\n<solution>\n{}\n\
</solution>\n\n",
            tail_chars(solution, JUDGE_SOLUTION_CHARS)
        ));
    }
    user.push_str(
        "Write three hints for the student, from gentle to concrete, each one or two short \
sentences on its own line, starting with its label:\n\
Notice: what to pay attention to in the problem (the key fact, quantity or idea).\n\
Approach: the method to use, in words, without doing any calculation.\n\
Next step: the first concrete step the student should carry out, without giving its result.\n\n\
Rules: never write the final answer, and never write a number that the solution computes \
(write only numbers that appear in the problem). Do not use \\boxed{}.",
    );
    vec![ChatMessage::system(HINT_SYSTEM), ChatMessage::user(user)]
}

/// Messages asking the hint writer to say `hint` again without the values it gave away.
pub fn hint_rewrite_messages(problem: &str, hint: &str, withheld: &[&str]) -> Vec<ChatMessage> {
    let user = format!(
        "Problem:\n<problem>\n{}\n</problem>\n\n\
This hint for a student gives away a result they should find themselves:\n<hint>\n{}\n</hint>\n\n\
Rewrite it as one or two sentences that still guide the student but state no result. Do \
not write any of these values, in any form: {}. Reply with the rewritten hint only.",
        problem.trim(),
        hint.trim(),
        withheld.join(", ")
    );
    vec![ChatMessage::system(HINT_SYSTEM), ChatMessage::user(user)]
}

/// Messages for one pairwise comparison. Each solution is shown as its [`visible_solution`],
/// cut to the last [`JUDGE_SOLUTION_CHARS`] characters.
pub fn judge_messages(problem: &str, first: &str, second: &str) -> Vec<ChatMessage> {
    let a = tail_chars(&visible_solution(first), JUDGE_SOLUTION_CHARS);
    let b = tail_chars(&visible_solution(second), JUDGE_SOLUTION_CHARS);
    let user = format!(
        "Problem:\n<problem>\n{problem}\n</problem>\n\n\
Solution A:\n<solution_a>\n{a}\n</solution_a>\n\n\
Solution B:\n<solution_b>\n{b}\n</solution_b>\n\n\
Decide which solution is more likely correct. Check each one on its own: is the reasoning \
valid, and does it reach a final answer that follows from it? A solution with a correct \
final answer and sound reasoning beats one with a wrong or missing answer. If both are \
equally correct, or equally wrong with neither clearly better, call it a tie.\n\n\
Reply with a single JSON object and nothing after it. Write the explanation first (at most \
120 words), then the verdict:\n\
{{\"explanation\": \"<your reasoning>\", \"verdict\": \"A\" | \"B\" | \"tie\"}}"
    );
    vec![ChatMessage::system(JUDGE_SYSTEM), ChatMessage::user(user)]
}

/// The plan inside `<plan>…</plan>` (the last one; a missing closing tag is fine, since the
/// planner is usually stopped at `</plan>`). Without tags, the text outside any `<think>`
/// block; an unclosed `<think>` with no plan in it yields an empty plan, because unfinished
/// reasoning is not a plan and tends to contain intermediate results. Sentences that reveal
/// an answer are removed either way (see [`strip_answer_leaks`]).
pub fn extract_plan(text: &str) -> String {
    let body = match text.rfind("<plan>") {
        Some(at) => {
            let rest = &text[at + "<plan>".len()..];
            rest.find("</plan>")
                .map_or(rest, |end| &rest[..end])
                .to_owned()
        }
        None => think::outside_reasoning(text).to_owned(),
    };
    strip_answer_leaks(&drop_repeated_lines(body.trim()))
}

/// Small planners fall into loops ("- Mistake: ..." twenty times, seen with the 0.5B model);
/// a line already in the plan adds nothing, so only its first occurrence is kept.
fn drop_repeated_lines(plan: &str) -> String {
    let mut seen = std::collections::HashSet::new();
    plan.lines()
        .filter(|line| line.trim().is_empty() || seen.insert(line.trim().to_owned()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The part of a solution a reader (or the judge) should see: the text after the reasoning,
/// read with every family's think tags ([`think::THINK_TAGS`]):
///
/// - `…</think>rest` (with or without the opening tag, as templates that put `<think>` in the
///   prompt produce; any family's closing tag): `rest`;
/// - `before<think>never closed`: `before`;
/// - no tags: the whole text.
///
/// When that leaves nothing (the model never finished thinking), the tail of the text is the
/// best there is, so the last [`JUDGE_SOLUTION_CHARS`] characters of it are returned.
pub fn visible_solution(text: &str) -> String {
    let visible = think::outside_reasoning(text).trim();
    if !visible.is_empty() {
        return visible.to_owned();
    }
    let bare = think::without_think_tags(text);
    tail_chars(bare.trim(), JUDGE_SOLUTION_CHARS)
}

/// The last `max` characters of `text`, marked when something was cut.
pub(crate) fn tail_chars(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.to_owned();
    }
    let start = text
        .char_indices()
        .nth(count - max)
        .map_or(text.len(), |(i, _)| i);
    format!("[… earlier part omitted …]\n{}", &text[start..])
}

/// Removes sentences that reveal a final answer: anything with `\boxed`/`\fbox`/`<answer>`,
/// and any sentence that mentions the answer (or result) together with a number or math.
/// Deliberately aggressive: losing a harmless sentence costs little, a leaked answer anchors
/// every candidate.
pub fn strip_answer_leaks(plan: &str) -> String {
    let mut lines = Vec::new();
    for line in plan.lines() {
        let kept: Vec<&str> = sentences(line)
            .into_iter()
            .filter(|s| !reveals_answer(s))
            .collect();
        let kept = kept.concat();
        let kept = kept.trim_end();
        if !kept.trim().is_empty() || line.trim().is_empty() {
            lines.push(kept.to_owned());
        }
    }
    lines.join("\n").trim().to_owned()
}

/// Splits a line after `.`, `!` or `?` followed by whitespace (so `3.14` stays whole); every
/// piece keeps its punctuation and trailing space, so concatenating them restores the line.
fn sentences(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = line.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if matches!(c, '.' | '!' | '?') {
            if let Some(&(next_at, next)) = chars.peek() {
                if next.is_whitespace() {
                    let end = next_at + next.len_utf8();
                    out.push(&line[start..end]);
                    start = end;
                    chars.next();
                }
            }
        }
    }
    if start < line.len() {
        out.push(&line[start..]);
    }
    out
}

fn reveals_answer(sentence: &str) -> bool {
    let lower = sentence.to_lowercase();
    if ["\\boxed", "\\fbox", "<answer>"]
        .iter()
        .any(|m| lower.contains(m))
    {
        return true;
    }
    let mentions_answer = ["answer", "result is", "result will be", "solution is"]
        .iter()
        .any(|w| lower.contains(w));
    let has_value = lower
        .chars()
        .any(|c| c.is_ascii_digit() || matches!(c, '$' | '\\' | '='));
    mentions_answer && has_value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_looping_plan_keeps_each_line_once() {
        let looping = "<plan>1. Add.\n- Mistake: x\n- Mistake: x\n\n- Mistake: x\n2. Check.</plan>";
        assert_eq!(extract_plan(looping), "1. Add.\n- Mistake: x\n\n2. Check.");
    }

    #[test]
    fn sentences_round_trip_and_keep_decimals() {
        let line = "Use 3.14 here. Then stop!  Done";
        assert_eq!(sentences(line).concat(), line);
        assert_eq!(sentences(line).len(), 3);
    }

    #[test]
    fn tail_keeps_the_end_on_char_boundaries() {
        let t = tail_chars("ééééé", 2);
        assert!(t.ends_with("éé"), "{t}");
        assert_eq!(tail_chars("abc", 5), "abc");
    }
}
