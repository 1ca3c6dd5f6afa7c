//! The answer card's words: what the run's answer rests on, said as it was. Every candidate's
//! own answer and how it ended, the vote as counted ("2 of 3 agree"), the judge's verdicts as
//! reached (a tie is a tie), the method the run really used, and a confidence label that comes
//! from [`crate::check::confident_answer`], the same definition "Check my answer" uses, so the
//! card can never call an answer confident that the check would not trust.
//!
//! Plain text only: the front end renders the answers (model text, untrusted) itself.

use k2_protocol::{
    AnswerGroup, CandidateId, CandidateView, CheckBasis, FinishReason, RunView, SelectionMethod,
    Verdict,
};

use crate::check::{confident_answer, RunEvidence};
use crate::equivalent;

/// The card of a run that has chosen its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerCard {
    /// The chosen candidate.
    pub chosen: CandidateId,
    /// The chosen answer (LaTeX, model text), if the chosen candidate gave one.
    pub answer: Option<String>,
    /// `Unanimous` or `Verifier` when the tutor is confident, else `Unsure`: the basis
    /// "Check my answer" would use.
    pub basis: CheckBasis,
    /// "Confident: all 3 finished solutions agree", "Unsure: …".
    pub confidence: String,
    /// How the answer was chosen: "Candidate 1, by vote: 2 of 3 agree".
    pub method: String,
    /// The vote as counted, lower case after a "Vote:" label: "2 of 3 agree (1 did not finish,
    /// so it does not vote)", "no two of the 3 agree"; `None` for a run of one candidate.
    pub vote: Option<String>,
    /// Every candidate, in order.
    pub candidates: Vec<CandidateLine>,
    /// Every verdict of the judge, in the order reached: "1 vs 2: a tie (no winner in both
    /// orders)".
    pub verdicts: Vec<String>,
}

/// One candidate on the card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CandidateLine {
    pub candidate: CandidateId,
    /// Its own final answer (LaTeX, model text), if it gave one.
    pub answer: Option<String>,
    /// How it ended: "finished", "cut off at the token limit", "looped", …
    pub finish: String,
    /// Whether it finished by itself (the only candidates that vote).
    pub complete: bool,
    pub chosen: bool,
}

impl AnswerCard {
    /// The card for a run's folded events, once it has a final answer.
    pub fn from_view(view: &RunView) -> Option<AnswerCard> {
        let fin = view.final_answer.as_ref()?;
        let evidence = RunEvidence::from_view(view);
        let n = view.candidates.len().max(fin.candidate + 1);
        let outcome = |id: CandidateId| view.candidates.get(id).and_then(|c| c.finished.as_ref());
        let complete = |id: CandidateId| outcome(id).is_some_and(|o| o.finish.is_complete());
        let answer_of = |id: CandidateId| {
            outcome(id)
                .and_then(|o| o.answer.as_deref())
                .map(str::trim)
                .filter(|a| !a.is_empty())
        };
        let candidates: Vec<CandidateLine> = (0..n)
            .map(|id| CandidateLine {
                candidate: id,
                answer: answer_of(id).map(str::to_owned),
                finish: outcome(id)
                    .map_or("did not end", |o| finish_words(o.finish))
                    .into(),
                complete: complete(id),
                chosen: id == fin.candidate,
            })
            .collect();
        let finished = (0..n).filter(|&id| complete(id)).count();

        let (basis, confidence) = match confident_answer(&evidence) {
            Some((_, CheckBasis::Unanimous)) if finished == n => (
                CheckBasis::Unanimous,
                format!("Confident: all {n} finished solutions agree"),
            ),
            Some((_, CheckBasis::Unanimous)) => (
                CheckBasis::Unanimous,
                format!(
                    "Confident: all {finished} finished solutions agree ({} of {n} did not \
                     finish)",
                    n - finished
                ),
            ),
            Some((_, basis)) => (basis, "Verified by the judge in both orders".to_owned()),
            None => (
                CheckBasis::Unsure,
                format!(
                    "Unsure: {} — compare with your teacher",
                    unsure_reason(view, &evidence, n)
                ),
            ),
        };

        let vote = (n > 1).then(|| vote_words(&view.groups, fin.candidate, n, finished));
        let verdicts = view
            .verdicts
            .iter()
            .map(|v| verdict_words(v, &complete, &answer_of))
            .collect();
        Some(AnswerCard {
            chosen: fin.candidate,
            answer: fin.answer.clone(),
            basis,
            confidence,
            method: method_words(view, fin.candidate, fin.method, n, &complete),
            vote,
            candidates,
            verdicts,
        })
    }

    /// Whether the tutor is confident in the answer (the check would use it).
    pub fn is_confident(&self) -> bool {
        self.basis != CheckBasis::Unsure
    }

    /// What the answer is called where it is shown: an answer the tutor is not confident in
    /// is its best guess, never presented as the result.
    pub fn answer_label(&self) -> &'static str {
        if self.is_confident() {
            "Answer"
        } else {
            "Best guess, not verified"
        }
    }
}

/// How a candidate ended, in a few words.
pub fn finish_words(finish: FinishReason) -> &'static str {
    match finish {
        FinishReason::Complete => "finished",
        FinishReason::MaxTokens => "cut off at the token limit",
        FinishReason::ContextFull => "cut off: the context was full",
        FinishReason::Cancelled => "stopped",
        FinishReason::Loop => "looped",
    }
}

/// A candidate's fold summary. "Thought for N s" only where the candidate had a thinking
/// phase (reasoning text inside think tags); a model that only writes "Wrote for N s".
pub fn candidate_summary(candidate: &CandidateView, stopped: bool) -> String {
    let thought = !candidate.reasoning.trim().is_empty();
    match &candidate.finished {
        Some(done) => {
            let verb = if thought { "Thought" } else { "Wrote" };
            let end = match done.finish {
                FinishReason::Complete => String::new(),
                other => format!(" · {}", finish_words(other)),
            };
            format!(
                "{verb} for {:.0} s · {} tokens{end}",
                done.seconds, done.tokens
            )
        }
        None if stopped => "Stopped".into(),
        None if !candidate.answer_text.is_empty() => "Writing the answer…".into(),
        None if thought => "Thinking…".into(),
        None => "Starting…".into(),
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Why the tutor is not confident, most telling first.
fn unsure_reason(view: &RunView, evidence: &RunEvidence, n: usize) -> String {
    let fin = view.final_answer.as_ref();
    if fin.is_none_or(|f| f.answer.as_deref().is_none_or(|a| a.trim().is_empty())) {
        return "the chosen solution gave no final answer".into();
    }
    if n == 1 {
        return "there is only one solution, so nothing checked it".into();
    }
    let finished = view
        .candidates
        .iter()
        .filter(|c| c.finished.as_ref().is_some_and(|o| o.finish.is_complete()))
        .count();
    if finished < 2 {
        return format!("only {finished} of {n} solutions finished");
    }
    if view.groups.len() == 1 && evidence.shared_plan {
        return format!(
            "all {finished} finished solutions agree, but they followed one plan, so they \
             share its mistakes"
        );
    }
    if fin.is_some_and(|f| f.method == SelectionMethod::Judge)
        && view.verdicts.iter().any(|v| v.winner.is_none())
    {
        return "the solutions disagree and the judge called a tie".into();
    }
    "the solutions disagree".into()
}

/// The vote as counted: only finished candidates with an answer vote.
fn vote_words(groups: &[AnswerGroup], chosen: CandidateId, n: usize, finished: usize) -> String {
    let voted: usize = groups.iter().map(|g| g.candidates.len()).sum();
    let unfinished = n - finished;
    let no_answer = finished.saturating_sub(voted);
    let mut notes = Vec::new();
    if unfinished > 0 {
        notes.push(if unfinished == 1 {
            "1 did not finish, so it does not vote".to_owned()
        } else {
            format!("{unfinished} did not finish, so they do not vote")
        });
    }
    if no_answer > 0 {
        notes.push(format!("{} no answer", plural(no_answer, "gave", "gave")));
    }
    let notes = if notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", notes.join("; "))
    };
    let top = groups.iter().map(|g| g.candidates.len()).max().unwrap_or(0);
    let mine = groups
        .iter()
        .find(|g| g.candidates.contains(&chosen))
        .map_or(0, |g| g.candidates.len());
    let head = match (top, groups.len()) {
        (0, _) => format!("none of the {n} finished with an answer"),
        (1, 1) => format!("only 1 of {n} finished with an answer"),
        (1, _) => format!("no two of the {n} agree"),
        _ if mine >= 2 => {
            let rivals = groups.iter().filter(|g| g.candidates.len() == mine).count();
            if rivals > 1 {
                format!("{mine} of {n} agree, and as many agree on another answer")
            } else {
                format!("{mine} of {n} agree")
            }
        }
        _ => format!("{top} of {n} agree, on another answer"),
    };
    head + &notes
}

/// How the answer was chosen, as the run really chose it.
fn method_words(
    view: &RunView,
    chosen: CandidateId,
    method: SelectionMethod,
    n: usize,
    complete: &dyn Fn(CandidateId) -> bool,
) -> String {
    let who = format!("Candidate {}", chosen + 1);
    match method {
        SelectionMethod::Single => format!("{who}, the only solution"),
        SelectionMethod::Unanimous => format!("{who}: all {n} agree, nothing to judge"),
        SelectionMethod::Vote => {
            let mine = view
                .groups
                .iter()
                .find(|g| g.candidates.contains(&chosen))
                .map_or(0, |g| g.candidates.len());
            match mine {
                0 => format!("{who}, taken because no solution finished with an answer"),
                1 if view.groups.len() == 1 => {
                    format!("{who}, the only solution that finished with an answer")
                }
                1 => format!("{who}, taken first in order: no two solutions agree"),
                k => format!("{who}, by vote: {k} of {n} agree"),
            }
        }
        SelectionMethod::Judge => {
            let (mut judged, mut by_default, mut ties) = (0, 0, 0);
            for v in view
                .verdicts
                .iter()
                .filter(|v| v.first == chosen || v.second == chosen)
            {
                match v.winner {
                    Some(w) if w == chosen => {
                        if complete(v.first) && complete(v.second) {
                            judged += 1;
                        } else {
                            by_default += 1;
                        }
                    }
                    Some(_) => {}
                    None => ties += 1,
                }
            }
            match (judged, by_default, ties) {
                (0, 0, 0) => format!("{who}, by the judge"),
                (0, 0, _) => format!("{who}, kept first in order: the judge called a tie"),
                (0, _, 0) => format!("{who}: the others it was compared with did not finish"),
                (j, d, t) => {
                    let mut parts = Vec::new();
                    if j > 0 {
                        parts.push(format!(
                            "won {} in both orders",
                            plural(j, "comparison", "comparisons")
                        ));
                    }
                    if d > 0 {
                        parts.push(format!("won {d} because the other did not finish"));
                    }
                    if t > 0 {
                        parts.push(plural(t, "tie", "ties"));
                    }
                    format!("{who}, chosen by the judge: {}", parts.join(", "))
                }
            }
        }
    }
}

/// One verdict as reached.
fn verdict_words<'a>(
    v: &Verdict,
    complete: &dyn Fn(CandidateId) -> bool,
    answer_of: &dyn Fn(CandidateId) -> Option<&'a str>,
) -> String {
    let (a, b) = (v.first + 1, v.second + 1);
    let pair = format!("Candidate {a} vs {b}");
    if !(complete(v.first) && complete(v.second)) {
        return match v.winner {
            Some(w) => format!(
                "{pair}: {} wins, the other did not finish (not judged)",
                w + 1
            ),
            None => format!("{pair}: a tie, neither finished (not judged)"),
        };
    }
    if let (Some(x), Some(y)) = (answer_of(v.first), answer_of(v.second)) {
        if v.winner.is_none() && equivalent(x, y) {
            return format!("{pair}: the same answer, nothing to judge");
        }
    }
    match v.winner {
        Some(w) => format!("{pair}: {} is better in both orders", w + 1),
        None => format!("{pair}: a tie (no winner in both orders)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k2_protocol::{Event, RunEvent, RunRequest};

    struct Run {
        events: Vec<RunEvent>,
    }

    impl Run {
        fn new(n: usize) -> Run {
            let mut request = RunRequest::new("problem");
            request.settings.candidates = n;
            Run {
                events: vec![RunEvent::Started { request }],
            }
        }
        fn ends(mut self, candidate: CandidateId, answer: &str, finish: FinishReason) -> Run {
            self.events.push(RunEvent::CandidateFinished {
                candidate,
                answer: (!answer.is_empty()).then(|| answer.to_owned()),
                finish,
                tokens: 100,
                seconds: 12.4,
            });
            self
        }
        fn done(self, candidate: CandidateId, answer: &str) -> Run {
            self.ends(candidate, answer, FinishReason::Complete)
        }
        fn groups(mut self, groups: &[(&str, &[CandidateId])]) -> Run {
            self.events.push(RunEvent::AnswerGroups {
                groups: groups
                    .iter()
                    .map(|(a, c)| AnswerGroup {
                        answer: a.to_string(),
                        candidates: c.to_vec(),
                    })
                    .collect(),
            });
            self
        }
        fn verdict(mut self, first: usize, second: usize, winner: Option<usize>) -> Run {
            self.events.push(RunEvent::Verdict(Verdict {
                first,
                second,
                winner,
                rationale: String::new(),
            }));
            self
        }
        fn planned(mut self, plan: &str) -> Run {
            self.events.push(RunEvent::PlanFinished {
                plan: plan.to_owned(),
                tokens: 10,
                seconds: 0.5,
            });
            self
        }
        fn chose(mut self, candidate: CandidateId, answer: &str, method: SelectionMethod) -> Run {
            self.events.push(RunEvent::FinalAnswer {
                candidate,
                answer: (!answer.is_empty()).then(|| answer.to_owned()),
                method,
            });
            self
        }
        /// The run's events as they would stream, numbered in order.
        fn stream(&self) -> Vec<Event> {
            self.events
                .iter()
                .enumerate()
                .map(|(seq, kind)| Event {
                    seq: seq as u64,
                    elapsed_ms: 0,
                    kind: kind.clone(),
                })
                .collect()
        }
        fn card(&self) -> AnswerCard {
            AnswerCard::from_view(&RunView::replay(&self.stream())).expect("a card")
        }
    }

    use FinishReason as F;
    use SelectionMethod as M;

    #[test]
    fn agreeing_from_one_plan_is_unsure_and_says_why() {
        let card = Run::new(3)
            .planned("Halve 48, then add.")
            .done(0, "72")
            .done(1, "72")
            .done(2, "72")
            .groups(&[("72", &[0, 1, 2])])
            .chose(0, "72", M::Unanimous)
            .card();
        assert_eq!(
            card.confidence,
            "Unsure: all 3 finished solutions agree, but they followed one plan, so they share \
             its mistakes — compare with your teacher"
        );
        assert_eq!(card.basis, CheckBasis::Unsure);
        assert_eq!(card.vote.as_deref(), Some("3 of 3 agree"));
    }

    #[test]
    fn all_agreeing_is_confident_and_says_so() {
        let card = Run::new(3)
            .done(0, "72")
            .done(1, "72")
            .done(2, "72")
            .groups(&[("72", &[0, 1, 2])])
            .chose(0, "72", M::Unanimous)
            .card();
        assert_eq!(card.confidence, "Confident: all 3 finished solutions agree");
        assert_eq!(card.basis, CheckBasis::Unanimous);
        assert_eq!(card.method, "Candidate 1: all 3 agree, nothing to judge");
        assert_eq!(card.vote.as_deref(), Some("3 of 3 agree"));
        assert!(card.candidates.iter().all(|c| c.finish == "finished"));
        assert!(card.candidates[0].chosen && !card.candidates[1].chosen);
    }

    #[test]
    fn one_finished_of_three_is_not_most_candidates_agreeing() {
        // The lie this card replaces: "most candidates agree" with one vote of three.
        let card = Run::new(3)
            .done(0, "36")
            .ends(1, "", F::MaxTokens)
            .ends(2, "12", F::Loop)
            .groups(&[("36", &[0])])
            .chose(0, "36", M::Vote)
            .card();
        assert_eq!(
            card.vote.as_deref(),
            Some("only 1 of 3 finished with an answer (2 did not finish, so they do not vote)")
        );
        assert_eq!(
            card.method,
            "Candidate 1, the only solution that finished with an answer"
        );
        assert_eq!(
            card.confidence,
            "Unsure: only 1 of 3 solutions finished — compare with your teacher"
        );
        assert!(!card.is_confident());
        // The truncated and the looped candidates are on the card, with their answers.
        let lines: Vec<_> = card
            .candidates
            .iter()
            .map(|c| (c.answer.as_deref(), c.finish.as_str()))
            .collect();
        assert_eq!(
            lines,
            [
                (Some("36"), "finished"),
                (None, "cut off at the token limit"),
                (Some("12"), "looped")
            ]
        );
    }

    #[test]
    fn a_majority_is_counted() {
        let card = Run::new(3)
            .done(0, "5")
            .done(1, "7")
            .done(2, "7")
            .groups(&[("5", &[0]), ("7", &[1, 2])])
            .chose(1, "7", M::Vote)
            .card();
        assert_eq!(card.method, "Candidate 2, by vote: 2 of 3 agree");
        assert_eq!(card.vote.as_deref(), Some("2 of 3 agree"));
        // A majority is not the check's confidence: one finished solution disagrees.
        assert_eq!(
            card.confidence,
            "Unsure: the solutions disagree — compare with your teacher"
        );
    }

    #[test]
    fn a_tie_is_a_tie_not_the_judges_choice() {
        let card = Run::new(2)
            .done(0, "540")
            .done(1, "720")
            .groups(&[("540", &[0]), ("720", &[1])])
            .verdict(0, 1, None)
            .chose(0, "540", M::Judge)
            .card();
        assert_eq!(
            card.method,
            "Candidate 1, kept first in order: the judge called a tie"
        );
        assert_eq!(
            card.verdicts,
            ["Candidate 1 vs 2: a tie (no winner in both orders)"]
        );
        assert_eq!(card.vote.as_deref(), Some("no two of the 2 agree"));
        assert_eq!(
            card.confidence,
            "Unsure: the solutions disagree and the judge called a tie — compare with your teacher"
        );
        assert!(!card.method.contains("chosen by the judge"));
    }

    #[test]
    fn a_judge_decided_in_both_orders_is_verified() {
        let card = Run::new(3)
            .done(0, "540")
            .done(1, "720")
            .done(2, "360")
            .groups(&[("540", &[0]), ("720", &[1]), ("360", &[2])])
            .verdict(0, 1, Some(1))
            .verdict(1, 2, Some(1))
            .chose(1, "720", M::Judge)
            .card();
        assert_eq!(card.confidence, "Verified by the judge in both orders");
        assert_eq!(card.basis, CheckBasis::Verifier);
        assert_eq!(
            card.method,
            "Candidate 2, chosen by the judge: won 2 comparisons in both orders"
        );
        assert_eq!(
            card.verdicts,
            [
                "Candidate 1 vs 2: 2 is better in both orders",
                "Candidate 2 vs 3: 2 is better in both orders"
            ]
        );
    }

    #[test]
    fn a_judge_with_one_tie_is_unsure_and_the_tie_is_named() {
        let card = Run::new(3)
            .done(0, "540")
            .done(1, "720")
            .done(2, "360")
            .groups(&[("540", &[0]), ("720", &[1]), ("360", &[2])])
            .verdict(0, 1, Some(1))
            .verdict(1, 2, None)
            .chose(1, "720", M::Judge)
            .card();
        assert_eq!(
            card.method,
            "Candidate 2, chosen by the judge: won 1 comparison in both orders, 1 tie"
        );
        assert!(card.confidence.starts_with("Unsure"), "{}", card.confidence);
    }

    #[test]
    fn a_win_over_an_unfinished_candidate_is_not_a_judgment() {
        let card = Run::new(2)
            .done(0, "9")
            .ends(1, "8", F::MaxTokens)
            .groups(&[("9", &[0])])
            .verdict(0, 1, Some(0))
            .chose(0, "9", M::Judge)
            .card();
        assert_eq!(
            card.method,
            "Candidate 1: the others it was compared with did not finish"
        );
        assert_eq!(
            card.verdicts,
            ["Candidate 1 vs 2: 1 wins, the other did not finish (not judged)"]
        );
        assert!(!card.is_confident());
    }

    #[test]
    fn two_finished_agreeing_with_one_cut_off_is_confident_and_says_how_many() {
        let card = Run::new(3)
            .done(0, "4")
            .ends(1, "5", F::MaxTokens)
            .done(2, "4")
            .groups(&[("4", &[0, 2])])
            .chose(0, "4", M::Vote)
            .card();
        assert_eq!(
            card.confidence,
            "Confident: all 2 finished solutions agree (1 of 3 did not finish)"
        );
        assert_eq!(
            card.vote.as_deref(),
            Some("2 of 3 agree (1 did not finish, so it does not vote)")
        );
        assert_eq!(card.method, "Candidate 1, by vote: 2 of 3 agree");
    }

    #[test]
    fn a_single_candidate_is_not_checked_by_anything() {
        let card = Run::new(1).done(0, "3").chose(0, "3", M::Single).card();
        assert_eq!(card.method, "Candidate 1, the only solution");
        assert_eq!(card.vote, None);
        assert_eq!(
            card.confidence,
            "Unsure: there is only one solution, so nothing checked it — compare with your teacher"
        );
    }

    #[test]
    fn no_answer_is_unsure() {
        let card = Run::new(2)
            .ends(0, "", F::MaxTokens)
            .ends(1, "", F::Loop)
            .chose(0, "", M::Vote)
            .card();
        assert_eq!(
            card.confidence,
            "Unsure: the chosen solution gave no final answer — compare with your teacher"
        );
        assert_eq!(
            card.vote.as_deref(),
            Some("none of the 2 finished with an answer (2 did not finish, so they do not vote)")
        );
        assert_eq!(
            card.method,
            "Candidate 1, taken because no solution finished with an answer"
        );
    }

    #[test]
    fn the_card_agrees_with_the_check_in_every_case() {
        use crate::check::{check_attempt_in_view, KnownAnswers};
        let runs = [
            Run::new(3)
                .done(0, "7")
                .done(1, "7")
                .done(2, "7")
                .groups(&[("7", &[0, 1, 2])])
                .chose(0, "7", M::Unanimous),
            Run::new(2)
                .done(0, "7")
                .done(1, "8")
                .groups(&[("7", &[0]), ("8", &[1])])
                .verdict(0, 1, None)
                .chose(0, "7", M::Judge),
            Run::new(2)
                .done(0, "7")
                .done(1, "8")
                .groups(&[("7", &[0]), ("8", &[1])])
                .verdict(0, 1, Some(0))
                .chose(0, "7", M::Judge),
            Run::new(3)
                .done(0, "7")
                .ends(1, "7", F::MaxTokens)
                .ends(2, "7", F::Loop)
                .groups(&[("7", &[0])])
                .chose(0, "7", M::Vote),
        ];
        for run in runs {
            let card = run.card();
            let check = check_attempt_in_view(
                "7",
                KnownAnswers::default(),
                &RunView::replay(&run.stream()),
            );
            assert_eq!(check.basis, card.basis, "{card:?}");
            assert_eq!(card.confidence.starts_with("Unsure"), !card.is_confident());
        }
    }

    #[test]
    fn thought_only_where_there_was_thinking() {
        let mut c = CandidateView::default();
        assert_eq!(candidate_summary(&c, false), "Starting…");
        c.reasoning = "hmm".into();
        assert_eq!(candidate_summary(&c, false), "Thinking…");
        c.answer_text = "So $x=2$".into();
        assert_eq!(candidate_summary(&c, false), "Writing the answer…");
        c.finished = Some(k2_protocol::CandidateOutcome {
            answer: Some("2".into()),
            finish: F::Complete,
            tokens: 40,
            seconds: 3.2,
        });
        assert_eq!(candidate_summary(&c, false), "Thought for 3 s · 40 tokens");
        c.reasoning.clear();
        assert_eq!(candidate_summary(&c, false), "Wrote for 3 s · 40 tokens");
        c.finished.as_mut().unwrap().finish = F::MaxTokens;
        assert_eq!(
            candidate_summary(&c, false),
            "Wrote for 3 s · 40 tokens · cut off at the token limit"
        );
        c.finished.as_mut().unwrap().finish = F::Loop;
        assert!(candidate_summary(&c, false).ends_with("· looped"));
        c.finished = None;
        assert_eq!(candidate_summary(&c, true), "Stopped");
    }
}
