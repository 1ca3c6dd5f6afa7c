//! The scaffold without a model: prompts, verdict parsing on recorded judge replies, the
//! two-order comparison and every selection strategy, driven by a scripted judge.

use std::collections::VecDeque;

use k2_protocol::{AnswerGroup, FinishReason, Selection, SelectionMethod, Verdict};
use k2_scaffold::judge::{compare, parse_verdict, Choice, Entrant, JudgeReply, PairJudge};
use k2_scaffold::prompts::{
    extract_plan, judge_messages, planner_messages, solver_messages, visible_solution,
    JUDGE_SOLUTION_CHARS,
};
use k2_scaffold::select::{answer_groups, select};
use k2_scaffold::ChatMessage;
use k2_scaffold::{Result, ScaffoldError};

// ---------------------------------------------------------------------------------------------
// Helpers

/// Replies with canned text, in order (or one fixed reply forever), and records which
/// candidate ids it was shown as (A, B).
struct Scripted {
    replies: VecDeque<String>,
    fixed: Option<String>,
    asked: Vec<(usize, usize)>,
}

impl Scripted {
    fn new(replies: &[&str]) -> Self {
        Scripted {
            replies: replies.iter().map(|s| s.to_string()).collect(),
            fixed: None,
            asked: Vec::new(),
        }
    }
    fn always(reply: &str) -> Self {
        Scripted {
            replies: VecDeque::new(),
            fixed: Some(reply.to_string()),
            asked: Vec::new(),
        }
    }
    /// A judge that should never be called.
    fn silent() -> Self {
        Self::new(&[])
    }
}

impl PairJudge for Scripted {
    fn judge(&mut self, _problem: &str, first: &Entrant, second: &Entrant) -> Result<JudgeReply> {
        self.asked.push((first.id, second.id));
        let raw = match &self.fixed {
            Some(r) => r.clone(),
            None => self.replies.pop_front().unwrap_or_else(|| {
                panic!("judge called more often than scripted: {:?}", self.asked)
            }),
        };
        Ok(JudgeReply { raw, tokens: 10 })
    }
}

/// A judge that prefers whichever solution has the given answer, in any order: an
/// order-consistent judge.
struct Prefers(&'static str, Vec<(usize, usize)>);

impl PairJudge for Prefers {
    fn judge(&mut self, _: &str, a: &Entrant, b: &Entrant) -> Result<JudgeReply> {
        self.1.push((a.id, b.id));
        let pick = if a.answer.as_deref() == Some(self.0) {
            "A"
        } else if b.answer.as_deref() == Some(self.0) {
            "B"
        } else {
            "tie"
        };
        Ok(JudgeReply {
            raw: format!(r#"{{"explanation": "checked both", "verdict": "{pick}"}}"#),
            tokens: 12,
        })
    }
}

struct Failing;
impl PairJudge for Failing {
    fn judge(&mut self, _: &str, _: &Entrant, _: &Entrant) -> Result<JudgeReply> {
        Err(ScaffoldError::Cancelled)
    }
}

/// A candidate that finished (`true`) or was cut off by the token limit (`false`).
fn cand(id: usize, answer: Option<&str>, finished: bool) -> Entrant {
    let finish = if finished {
        FinishReason::Complete
    } else {
        FinishReason::MaxTokens
    };
    cand_ending(id, answer, finish)
}

fn cand_ending(id: usize, answer: Option<&str>, finish: FinishReason) -> Entrant {
    let text = match answer {
        Some(a) => format!("<think>scratch work {id}</think>So the answer is $\\boxed{{{a}}}$."),
        None => format!("<think>scratch work {id} that never ends"),
    };
    Entrant {
        id,
        text,
        answer: answer.map(str::to_owned),
        finish,
    }
}

fn finished(answers: &[&str]) -> Vec<Entrant> {
    answers
        .iter()
        .enumerate()
        .map(|(i, a)| cand(i, Some(a), true))
        .collect()
}

fn run(
    strategy: Selection,
    candidates: &[Entrant],
    judge: &mut dyn PairJudge,
) -> (k2_scaffold::select::Selected, Vec<Verdict>) {
    let mut verdicts = Vec::new();
    let selected = select(
        strategy,
        "PROBLEM",
        candidates,
        judge,
        &mut |v: &Verdict| verdicts.push(v.clone()),
    )
    .expect("selection succeeds");
    (selected, verdicts)
}

fn all_text(messages: &[ChatMessage]) -> String {
    messages
        .iter()
        .map(|m| m.content.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------------------------------------
// Recorded judge replies

#[test]
fn clean_json_is_read_with_its_explanation() {
    let v = parse_verdict(
        r#"{"explanation": "Solution B forgets the case n = 0; A handles it.", "verdict": "A"}"#,
    );
    assert_eq!(v.choice, Some(Choice::A));
    assert!(v.explanation.contains("forgets the case"), "{v:?}");
}

#[test]
fn fenced_json_after_prose_is_read() {
    let reply = "Let me check both solutions.\nSolution A squares both sides without checking \
        for extraneous roots.\n\n```json\n{\n  \"explanation\": \"A keeps an extraneous root; \
        B checks it.\",\n  \"verdict\": \"B\"\n}\n```";
    assert_eq!(parse_verdict(reply).choice, Some(Choice::B));
}

#[test]
fn trailing_commas_single_quotes_and_extra_keys_are_tolerated() {
    let v = parse_verdict(
        "{'explanation': 'Both reach 12, and B's argument is complete', 'confidence': 0.8, \
         'verdict': 'tie',}",
    );
    assert_eq!(v.choice, Some(Choice::Tie));
    assert!(v.explanation.contains("B's argument"), "{v:?}");
    let v = parse_verdict(r#"{"explanation": "ok", "verdict": "B",}"#);
    assert_eq!(v.choice, Some(Choice::B));
}

#[test]
fn verdict_labels_and_numeric_indices_like_the_original_are_read() {
    assert_eq!(
        parse_verdict(r#"{"verdict": "Solution A", "explanation": "x"}"#).choice,
        Some(Choice::A)
    );
    // K2-Think's original format: a 0-based index.
    assert_eq!(
        parse_verdict(r#"{"index": 1, "explanation": "second is right"}"#).choice,
        Some(Choice::B)
    );
    assert_eq!(
        parse_verdict(r#"{"index": 0, "explanation": "first"}"#).choice,
        Some(Choice::A)
    );
    // Other keys count from 1, as in "Solution 1".
    assert_eq!(parse_verdict(r#"{"winner": 2}"#).choice, Some(Choice::B));
    assert_eq!(parse_verdict(r#"{"winner": 1}"#).choice, Some(Choice::A));
}

#[test]
fn verdict_then_explanation_is_read_too() {
    let v = parse_verdict(
        r#"{"verdict": "B", "explanation": "B computes the discriminant correctly."}"#,
    );
    assert_eq!(v.choice, Some(Choice::B));
    assert!(v.explanation.contains("discriminant"));
}

#[test]
fn prose_verdicts_are_read() {
    assert_eq!(
        parse_verdict("Both use modular arithmetic. Verdict: B").choice,
        Some(Choice::B)
    );
    assert_eq!(
        parse_verdict(
            "A misses a case, while B covers all of them.\n\n**Final verdict:** **Solution B**"
        )
        .choice,
        Some(Choice::B)
    );
    assert_eq!(
        parse_verdict("After checking, Solution B is correct and Solution A is not.").choice,
        Some(Choice::B)
    );
    assert_eq!(
        parse_verdict("Both arrive at 7 by the same argument.\n\n**Tie**").choice,
        Some(Choice::Tie)
    );
    // Headings naming each solution are not verdicts.
    assert_eq!(
        parse_verdict("**Solution A**: factors.\n**Solution B**: expands. Hard to say.").choice,
        None
    );
}

#[test]
fn the_judge_thinking_is_skipped() {
    let reply = "<think>Maybe {\"verdict\": \"A\"}... no, A drops a sign.</think>\n\
        {\"explanation\": \"A drops a sign.\", \"verdict\": \"B\"}";
    assert_eq!(parse_verdict(reply).choice, Some(Choice::B));
}

#[test]
fn unreadable_replies_give_no_verdict_and_never_panic() {
    assert_eq!(parse_verdict("").choice, None);
    let garbage: String = (0u32..2000)
        .map(|i| char::from_u32((i * 7919) % 0xD7FF).unwrap_or('?'))
        .collect();
    assert_eq!(parse_verdict(&garbage).choice, None);
    let bytes: Vec<u8> = (0..4096u32).map(|i| (i * 31 % 256) as u8).collect();
    let _ = parse_verdict(&String::from_utf8_lossy(&bytes));
    let long = "The two solutions take different routes to the bound. ".repeat(200);
    assert!(long.len() > 10_000);
    let v = parse_verdict(&long);
    assert_eq!(v.choice, None);
    assert!(
        v.explanation.chars().count() <= 401,
        "explanations are kept short"
    );
    let braces = "{".repeat(20_000);
    assert_eq!(parse_verdict(&braces).choice, None);
}

#[test]
fn an_invalid_verdict_value_is_not_guessed_from_the_prose() {
    let v = parse_verdict(r#"{"explanation": "Solution A is correct.", "verdict": "C"}"#);
    assert_eq!(v.choice, None);
}

// ---------------------------------------------------------------------------------------------
// Comparing two candidates

#[test]
fn both_orders_are_asked_and_a_consistent_winner_wins() {
    let (a, b) = (cand(0, Some("12"), true), cand(1, Some("15"), true));
    let mut judge = Scripted::new(&[
        r#"{"explanation": "B miscounts.", "verdict": "A"}"#,
        r#"{"explanation": "A miscounts.", "verdict": "B"}"#,
    ]);
    let v = compare(&mut judge, "P", &a, &b).unwrap();
    assert_eq!(judge.asked, vec![(0, 1), (1, 0)]);
    assert_eq!((v.first, v.second, v.winner), (0, 1, Some(0)));
    assert!(v.rationale.contains("B miscounts") && v.rationale.contains("A miscounts"));
}

#[test]
fn a_position_biased_judge_yields_ties() {
    let (a, b) = (cand(0, Some("12"), true), cand(1, Some("15"), true));
    let mut judge = Scripted::always(r#"{"explanation": "The first is better.", "verdict": "A"}"#);
    let v = compare(&mut judge, "P", &a, &b).unwrap();
    assert_eq!(v.winner, None);
    assert!(v.rationale.contains("disagree"), "{}", v.rationale);
}

#[test]
fn ties_and_unreadable_replies_are_ties() {
    let (a, b) = (cand(0, Some("12"), true), cand(1, Some("15"), true));
    let mut judge = Scripted::new(&[r#"{"verdict": "tie"}"#, r#"{"verdict": "A"}"#]);
    assert_eq!(compare(&mut judge, "P", &a, &b).unwrap().winner, None);
    let mut judge = Scripted::new(&["\u{0}\u{1}garbage", r#"{"verdict": "B"}"#]);
    assert_eq!(compare(&mut judge, "P", &a, &b).unwrap().winner, None);
}

#[test]
fn unfinished_candidates_are_decided_without_the_judge() {
    let done = cand(0, Some("12"), true);
    let cut = cand(1, None, false);
    let mut judge = Scripted::silent();
    let v = compare(&mut judge, "P", &cut, &done).unwrap();
    assert_eq!((v.first, v.second, v.winner), (1, 0, Some(0)));
    let v = compare(&mut judge, "P", &cut, &cand(2, Some("3"), false)).unwrap();
    assert_eq!(v.winner, None);
    assert!(judge.asked.is_empty());
}

#[test]
fn equivalent_answers_skip_the_judge() {
    let a = cand(0, Some("\\frac{1}{2}"), true);
    let b = cand(1, Some("0.5"), true);
    let mut judge = Scripted::silent();
    let v = compare(&mut judge, "P", &a, &b).unwrap();
    assert_eq!(v.winner, None);
    assert!(judge.asked.is_empty());
}

#[test]
fn judge_errors_are_returned() {
    let (a, b) = (cand(0, Some("1"), true), cand(1, Some("2"), true));
    assert!(matches!(
        compare(&mut Failing, "P", &a, &b),
        Err(ScaffoldError::Cancelled)
    ));
}

// ---------------------------------------------------------------------------------------------
// Selection

#[test]
fn answer_groups_use_equivalence_and_ignore_unfinished_and_missing_answers() {
    let candidates = vec![
        cand(0, Some("\\frac{1}{2}"), true),
        cand(1, Some("3"), true),
        cand(2, Some("0.5"), true),
        cand(3, Some("3"), false), // unfinished: no vote
        cand(4, None, true),       // no answer: no vote
    ];
    assert_eq!(
        answer_groups(&candidates),
        vec![
            AnswerGroup {
                answer: "\\frac{1}{2}".into(),
                candidates: vec![0, 2]
            },
            AnswerGroup {
                answer: "3".into(),
                candidates: vec![1]
            },
        ]
    );
}

#[test]
fn one_candidate_is_single_without_judging() {
    for strategy in [Selection::Vote, Selection::Judge, Selection::VoteThenJudge] {
        let mut judge = Scripted::silent();
        let (s, verdicts) = run(strategy, &finished(&["4"]), &mut judge);
        assert_eq!((s.candidate, s.method), (0, SelectionMethod::Single));
        assert!(verdicts.is_empty());
    }
}

#[test]
fn unanimous_answers_need_no_judge() {
    for strategy in [Selection::Vote, Selection::Judge, Selection::VoteThenJudge] {
        let mut judge = Scripted::silent();
        let (s, verdicts) = run(strategy, &finished(&["8", "8.0", "8"]), &mut judge);
        assert_eq!((s.candidate, s.method), (0, SelectionMethod::Unanimous));
        assert!(verdicts.is_empty() && judge.asked.is_empty());
    }
}

#[test]
fn vote_takes_the_largest_group() {
    let (s, _) = run(
        Selection::Vote,
        &finished(&["5", "7", "7"]),
        &mut Scripted::silent(),
    );
    assert_eq!((s.candidate, s.method), (1, SelectionMethod::Vote));
    assert_eq!(s.groups.len(), 2);
}

#[test]
fn vote_splits_go_to_the_lowest_id() {
    let (s, _) = run(
        Selection::Vote,
        &finished(&["5", "7", "7", "5"]),
        &mut Scripted::silent(),
    );
    assert_eq!((s.candidate, s.method), (0, SelectionMethod::Vote));
}

#[test]
fn vote_without_answers_falls_back_to_the_first_finished_candidate() {
    let candidates = vec![
        cand(0, None, false),
        cand(1, None, true),
        cand(2, None, true),
    ];
    let (s, _) = run(Selection::Vote, &candidates, &mut Scripted::silent());
    assert_eq!((s.candidate, s.method), (1, SelectionMethod::Vote));
    assert!(s.groups.is_empty());
    let none_finished = vec![cand(0, None, false), cand(1, None, false)];
    let (s, _) = run(Selection::Vote, &none_finished, &mut Scripted::silent());
    assert_eq!(s.candidate, 0);
}

#[test]
fn judge_runs_champion_against_challenger_and_ties_keep_the_champion() {
    let candidates = finished(&["5", "7", "9"]);
    let mut judge = Prefers("7", Vec::new());
    let (s, verdicts) = run(Selection::Judge, &candidates, &mut judge);
    assert_eq!((s.candidate, s.method), (1, SelectionMethod::Judge));
    // 0 vs 1 (both orders), then champion 1 vs 2 (both orders).
    assert_eq!(judge.1, vec![(0, 1), (1, 0), (1, 2), (2, 1)]);
    assert_eq!(verdicts.len(), 2);
    assert_eq!(verdicts[0].winner, Some(1));

    // A biased judge never dethrones the first champion.
    let mut judge = Scripted::always(r#"{"explanation": "first", "verdict": "A"}"#);
    let (s, verdicts) = run(Selection::Judge, &candidates, &mut judge);
    assert_eq!(s.candidate, 0);
    assert!(verdicts.iter().all(|v| v.winner.is_none()));
}

#[test]
fn judge_prefers_finished_candidates_without_asking() {
    let candidates = vec![cand(0, None, false), cand(1, Some("3"), true)];
    let mut judge = Scripted::silent();
    let (s, verdicts) = run(Selection::Judge, &candidates, &mut judge);
    assert_eq!(s.candidate, 1);
    assert_eq!(verdicts.len(), 1);
    assert!(judge.asked.is_empty());
}

#[test]
fn vote_then_judge_accepts_a_strict_majority() {
    let mut judge = Scripted::silent();
    let (s, verdicts) = run(
        Selection::VoteThenJudge,
        &finished(&["5", "7", "7"]),
        &mut judge,
    );
    assert_eq!((s.candidate, s.method), (1, SelectionMethod::Vote));
    assert!(verdicts.is_empty());
}

#[test]
fn vote_then_judge_judges_the_representatives_of_tied_groups() {
    // 2-2 split plus an unfinished candidate: no majority of 5, two tied groups.
    let candidates = vec![
        cand(0, Some("5"), true),
        cand(1, Some("7"), false),
        cand(2, Some("7"), true),
        cand(3, Some("5"), true),
        cand(4, Some("7"), true),
    ];
    let mut judge = Prefers("7", Vec::new());
    let (s, verdicts) = run(Selection::VoteThenJudge, &candidates, &mut judge);
    // Group "7"'s representative is its first finished member, 2 (1 is unfinished).
    assert_eq!((s.candidate, s.method), (2, SelectionMethod::Judge));
    assert_eq!(judge.1, vec![(0, 2), (2, 0)]);
    assert_eq!(verdicts.len(), 1);
}

#[test]
fn vote_then_judge_with_all_different_answers_judges_everyone() {
    let mut judge = Prefers("9", Vec::new());
    let (s, verdicts) = run(
        Selection::VoteThenJudge,
        &finished(&["5", "7", "9"]),
        &mut judge,
    );
    assert_eq!((s.candidate, s.method), (2, SelectionMethod::Judge));
    assert_eq!(verdicts.len(), 2);
}

#[test]
fn vote_then_judge_takes_a_plurality_without_judging() {
    // 2 of 5 is no majority, but only one group leads.
    let candidates = vec![
        cand(0, Some("5"), true),
        cand(1, Some("7"), true),
        cand(2, Some("7"), true),
        cand(3, None, false),
        cand(4, None, false),
    ];
    let (s, verdicts) = run(
        Selection::VoteThenJudge,
        &candidates,
        &mut Scripted::silent(),
    );
    assert_eq!((s.candidate, s.method), (1, SelectionMethod::Vote));
    assert!(verdicts.is_empty());
}

#[test]
fn vote_then_judge_without_answers_judges_all_candidates() {
    let candidates = vec![cand(0, None, true), cand(1, None, true)];
    let mut judge = Scripted::new(&[r#"{"verdict": "B"}"#, r#"{"verdict": "A"}"#]);
    let (s, _) = run(Selection::VoteThenJudge, &candidates, &mut judge);
    assert_eq!((s.candidate, s.method), (1, SelectionMethod::Judge));
}

#[test]
fn no_candidates_is_an_error() {
    let r = select(
        Selection::Vote,
        "P",
        &[],
        &mut Scripted::silent(),
        &mut |_: &Verdict| {},
    );
    assert!(matches!(r, Err(ScaffoldError::InvalidSetting(_))));
}

// ---------------------------------------------------------------------------------------------
// Prompts

const PROBLEM: &str = "Find the number of positive divisors of $2^4 \\cdot 3^2$.";

#[test]
fn planner_prompt_contains_the_problem_and_forbids_answers() {
    let text = all_text(&planner_messages(PROBLEM));
    assert!(text.contains(PROBLEM));
    assert!(text.contains("<plan>"));
    assert!(text.to_lowercase().contains("never state"));
}

#[test]
fn plans_are_extracted_and_answer_leaks_removed() {
    let raw = "<think>hmm</think>Sure.\n<plan>\n- Key concepts: divisor counting formula.\n\
        - Approach: multiply (exponent + 1) over the prime factorization. The answer is 15.\n\
        - Pitfalls: forgetting the +1. So we get \\boxed{15}.\n</plan>";
    let plan = extract_plan(raw);
    assert!(plan.contains("divisor counting formula"), "{plan}");
    assert!(plan.contains("Pitfalls: forgetting the +1."), "{plan}");
    assert!(!plan.contains("15") && !plan.contains("boxed"), "{plan}");
    assert!(!plan.contains("Sure"));

    // Stopped at `</plan>` (no closing tag), or no tags at all.
    assert_eq!(extract_plan("<plan>Use the formula."), "Use the formula.");
    assert_eq!(extract_plan("  Use the formula.\n"), "Use the formula.");
    // Unfinished thinking is not a plan.
    assert_eq!(extract_plan("<think>so the total is 15, then"), "");
}

#[test]
fn solver_prompt_has_the_question_and_the_plan_as_fallible_ideas() {
    let plan = extract_plan("<plan>Count divisors by exponents. Final answer: 15</plan>");
    let text = all_text(&solver_messages(PROBLEM, Some(&plan)));
    assert!(text.contains(&format!("<question>\n{PROBLEM}\n</question>")));
    assert!(text.contains("Count divisors by exponents."));
    assert!(text.contains("may help") && text.contains("wrong"));
    assert!(text.contains("\\boxed{}") && text.contains("<think>"));
    assert!(!text.contains("15"), "{text}");

    let bare = all_text(&solver_messages(PROBLEM, None));
    assert_eq!(bare, all_text(&solver_messages(PROBLEM, Some("  "))));
    assert!(!bare.contains("may help"));
}

#[test]
fn the_judge_sees_no_thinking() {
    let first = "<think>SECRET-A scratch work</think>Solution: 5 factors, so \\boxed{15}.";
    let second = "SECRET-B template-opened thinking</think>We get \\boxed{12}.";
    let text = all_text(&judge_messages(PROBLEM, first, second));
    assert!(text.contains(PROBLEM));
    assert!(text.contains("\\boxed{15}") && text.contains("\\boxed{12}"));
    assert!(
        !text.contains("SECRET") && !text.contains("<think>"),
        "{text}"
    );
    assert!(text.contains("\"verdict\"") && text.contains("tie"));
    assert!(text.find("Solution A").unwrap() < text.find("Solution B").unwrap());
}

#[test]
fn the_judge_sees_no_thinking_of_any_family() {
    // K2 Horizon's effort tags, and a block closed by another tag than the one that opened it.
    let first = "<ifm|think_fast>SECRET-A quick work</ifm|think_fast>So \\boxed{15}.";
    let second = "<ifm|think_faster>SECRET-B</ifm|think>We get \\boxed{12}.";
    let text = all_text(&judge_messages(PROBLEM, first, second));
    assert!(text.contains("\\boxed{15}") && text.contains("\\boxed{12}"));
    assert!(!text.contains("SECRET") && !text.contains("ifm|"), "{text}");
    // Never closed: the judge gets the tail of the words, never the raw tags.
    let unclosed = visible_solution("<ifm|think_faster>only thinking \\boxed{3}");
    assert_eq!(unclosed, "only thinking \\boxed{3}");
}

#[test]
fn judge_replies_skip_the_judges_own_thinking_of_any_family() {
    let reply = "<ifm|think>{\"verdict\": \"A\"}... no.</ifm|think>{\"verdict\": \"B\"}";
    assert_eq!(parse_verdict(reply).choice, Some(Choice::B));
}

#[test]
fn visible_solutions_handle_unclosed_thinking_and_long_text() {
    assert_eq!(visible_solution("no tags \\boxed{1}"), "no tags \\boxed{1}");
    assert_eq!(visible_solution("<think>a</think>\n b "), "b");
    // Never closed: only thinking exists, so its tail is what the judge gets.
    let unclosed = format!("<think>{}END", "x".repeat(10_000));
    let shown = visible_solution(&unclosed);
    assert!(shown.ends_with("END") && !shown.contains("<think>"));
    assert!(shown.chars().count() < JUDGE_SOLUTION_CHARS + 40);
    // Long written solutions are cut from the front: the answer at the end survives.
    let long = format!("</think>{} \\boxed{{99}}", "step. ".repeat(3_000));
    let text = all_text(&judge_messages(PROBLEM, &long, "\\boxed{1}"));
    assert!(text.contains("\\boxed{99}") && text.contains("omitted"));
    assert!(text.len() < 2 * JUDGE_SOLUTION_CHARS + 3_000);
}

// ---------------------------------------------------------------------------------------------
// Looped candidates (the loop guard ended them)

const STRATEGIES: [Selection; 3] = [Selection::Vote, Selection::Judge, Selection::VoteThenJudge];

#[test]
fn a_looped_candidate_never_wins_over_a_finished_one() {
    // The looped candidates even carry an answer (the last number of a cycling trace) and
    // outnumber the finished one; a judge that would prefer their answer is never asked.
    let candidates = vec![
        cand_ending(0, Some("5"), FinishReason::Loop),
        cand_ending(1, Some("5"), FinishReason::Loop),
        cand(2, Some("7"), true),
    ];
    for strategy in STRATEGIES {
        let mut judge = Prefers("5", Vec::new());
        let (s, verdicts) = run(strategy, &candidates, &mut judge);
        assert_eq!(s.candidate, 2, "{strategy}: {verdicts:?}");
        assert!(judge.1.is_empty(), "{strategy}: the judge was asked");
        assert!(
            s.groups.iter().all(|g| g.candidates == [2]),
            "{strategy}: looped candidates voted: {:?}",
            s.groups
        );
    }
}

#[test]
fn without_a_finished_candidate_one_cut_off_by_a_limit_beats_a_looped_one() {
    let candidates = vec![
        cand_ending(0, None, FinishReason::Loop),
        cand_ending(1, None, FinishReason::MaxTokens),
        cand_ending(2, None, FinishReason::Loop),
    ];
    for strategy in STRATEGIES {
        let mut judge = Scripted::silent();
        let (s, _) = run(strategy, &candidates, &mut judge);
        assert_eq!(s.candidate, 1, "{strategy}");
        assert!(judge.asked.is_empty());
    }

    let looped = cand_ending(0, Some("5"), FinishReason::Loop);
    let full = cand_ending(1, Some("6"), FinishReason::ContextFull);
    let mut judge = Scripted::silent();
    let v = compare(&mut judge, "P", &looped, &full).unwrap();
    assert_eq!(v.winner, Some(1));
    assert!(v.rationale.contains("looped"), "{}", v.rationale);
    let v = compare(
        &mut judge,
        "P",
        &looped,
        &cand_ending(2, None, FinishReason::Loop),
    )
    .unwrap();
    assert_eq!(v.winner, None);
    assert!(judge.asked.is_empty());
}
