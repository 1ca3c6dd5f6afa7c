//! Checking a student's answer, with a basis: **the one definition** of "Check my answer",
//! used by `k2 solve --attempt`, by the history when it keeps an attempt, and by the wasm UI.
//!
//! The answer is compared, in order, with:
//! 1. the problem's ground truth when it is known: the answer key (an imported problem set's
//!    `answer`, `k2 solve --answer-key`), else a teacher's correction of the run's answer;
//! 2. the run's own answer, **only when the tutor is confident** in it ([`confident_answer`]):
//!    - `unanimous`: the candidates were written independently (not from one shared plan: a
//!      plan's mistake is every candidate's, so their agreement is not evidence; measured in
//!      BENCHMARKS.md, "Checking a student's answer"), every candidate has ended, at least two
//!      of them finished (ended by
//!      themselves: not cut off by the token limit or the context, not looped, not cancelled),
//!      every finished one gave an answer, and all those answers are equivalent (the engine's
//!      equivalence checker, [`crate::equivalent`]); the run's selected answer is that answer.
//!      Unfinished candidates are ignored, whatever they say;
//!    - `verifier`: the answer was chosen by the pairwise judge, the chosen candidate finished,
//!      and every comparison between two finished candidates with different answers was
//!      decided, the same way in both orders (a judge's `Verdict` has a winner only then: see
//!      `k2_scaffold::judge::compare`); a tie or a contradiction anywhere means not confident,
//!      as does a chosen candidate that lost a comparison;
//! 3. otherwise nothing: the verdict is `unsure` (never `wrong`).
//!
//! Against a basis, the verdict is `right` when the answers are equivalent, else `wrong`.

use k2_protocol::{
    AttemptCheck, CandidateId, CheckBasis, CheckVerdict, FinishReason, RunView, SelectionMethod,
    Verdict,
};

use crate::equivalent;

/// What is known about the problem's answer besides the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KnownAnswers<'a> {
    /// The problem's answer key (an imported set's `answer`, `--answer-key`).
    pub answer_key: Option<&'a str>,
    /// A teacher's correction of the run's answer.
    pub teacher: Option<&'a str>,
}

/// One candidate once it has ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndedCandidate {
    pub answer: Option<String>,
    pub finish: FinishReason,
}

/// The run's chosen answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChosenAnswer {
    /// The chosen candidate (unknown in some recorded evaluations).
    pub candidate: Option<CandidateId>,
    pub answer: Option<String>,
    /// How it was chosen (unknown in some recorded evaluations).
    pub method: Option<SelectionMethod>,
}

/// What the check knows of a run: how each candidate ended, the chosen answer and the judge's
/// verdicts. Built from a run's events ([`RunEvidence::from_view`]) or from a recorded
/// evaluation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunEvidence {
    /// By candidate id; `None` for a candidate that has not ended yet.
    pub candidates: Vec<Option<EndedCandidate>>,
    pub chosen: Option<ChosenAnswer>,
    pub verdicts: Vec<Verdict>,
    /// Whether every candidate followed one shared plan (then their agreement is not
    /// independent, and does not make the tutor confident).
    pub shared_plan: bool,
}

impl RunEvidence {
    /// The evidence in a run's events, folded (a live run, or a stored one replayed).
    pub fn from_view(view: &RunView) -> RunEvidence {
        RunEvidence {
            candidates: view
                .candidates
                .iter()
                .map(|c| {
                    c.finished.as_ref().map(|o| EndedCandidate {
                        answer: o.answer.clone(),
                        finish: o.finish,
                    })
                })
                .collect(),
            chosen: view.final_answer.as_ref().map(|f| ChosenAnswer {
                candidate: Some(f.candidate),
                answer: f.answer.clone(),
                method: Some(f.method),
            }),
            verdicts: view.verdicts.clone(),
            shared_plan: plan_is_shared(Some(&view.plan)),
        }
    }
}

/// Whether a run's candidates were written from one shared plan: a plan with any text (a run
/// without one, or whose planner wrote nothing, has independent candidates).
pub fn plan_is_shared(plan: Option<&str>) -> bool {
    plan.is_some_and(|p| !p.trim().is_empty())
}

/// Checks `attempt` against what is known, else against the run's answer when the tutor is
/// confident in it, else answers [`AttemptCheck::UNSURE`].
pub fn check_attempt(attempt: &str, known: KnownAnswers<'_>, run: &RunEvidence) -> AttemptCheck {
    let basis = [
        (known.answer_key, CheckBasis::AnswerKey),
        (known.teacher, CheckBasis::Teacher),
    ]
    .into_iter()
    .find_map(|(answer, basis)| Some((nonblank(answer)?, basis)))
    .or_else(|| confident_answer(run));
    let Some((reference, basis)) = basis else {
        return AttemptCheck::UNSURE;
    };
    let verdict = if equivalent(attempt, reference) {
        CheckVerdict::Right
    } else {
        CheckVerdict::Wrong
    };
    AttemptCheck { verdict, basis }
}

/// [`check_attempt`] against a run's folded events.
pub fn check_attempt_in_view(
    attempt: &str,
    known: KnownAnswers<'_>,
    view: &RunView,
) -> AttemptCheck {
    check_attempt(attempt, known, &RunEvidence::from_view(view))
}

/// The run's answer and why the tutor is confident in it (`unanimous` or `verifier`, see the
/// module's documentation), or `None` when it is not.
pub fn confident_answer(run: &RunEvidence) -> Option<(&str, CheckBasis)> {
    unanimous_answer(run)
        .map(|a| (a, CheckBasis::Unanimous))
        .or_else(|| verified_answer(run).map(|a| (a, CheckBasis::Verifier)))
}

fn nonblank(answer: Option<&str>) -> Option<&str> {
    answer.map(str::trim).filter(|a| !a.is_empty())
}

fn finished(c: &Option<EndedCandidate>) -> Option<&EndedCandidate> {
    c.as_ref().filter(|c| c.finish.is_complete())
}

fn unanimous_answer(run: &RunEvidence) -> Option<&str> {
    // A candidate still generating may yet disagree; candidates of one plan agree on its
    // mistakes.
    if run.shared_plan || run.candidates.iter().any(Option::is_none) {
        return None;
    }
    let answers: Vec<&str> = run
        .candidates
        .iter()
        .filter_map(finished)
        .map(|c| nonblank(c.answer.as_deref()))
        .collect::<Option<_>>()?;
    let (&first, rest) = answers.split_first()?;
    // One solution agrees with nothing.
    if rest.is_empty() || !rest.iter().all(|a| equivalent(first, a)) {
        return None;
    }
    match run.chosen.as_ref().map(|c| nonblank(c.answer.as_deref())) {
        // The run chose something else (or nothing): not the answer the candidates agree on.
        Some(Some(chosen)) if equivalent(chosen, first) => Some(chosen),
        Some(_) => None,
        // A recorded run without its choice: the agreed answer.
        None => Some(first),
    }
}

fn verified_answer(run: &RunEvidence) -> Option<&str> {
    let chosen = run.chosen.as_ref()?;
    if chosen.method != Some(SelectionMethod::Judge) {
        return None;
    }
    let winner = chosen.candidate?;
    let answer = nonblank(chosen.answer.as_deref())?;
    let ended = |id: CandidateId| run.candidates.get(id).and_then(finished);
    let winner_answer = nonblank(ended(winner)?.answer.as_deref())?;
    if !equivalent(winner_answer, answer) {
        return None;
    }
    let mut contested = 0;
    for verdict in &run.verdicts {
        let (Some(a), Some(b)) = (ended(verdict.first), ended(verdict.second)) else {
            // A finished candidate against an unfinished one is decided without a model.
            if verdict.winner.is_some_and(|w| w != winner)
                && (verdict.first == winner || verdict.second == winner)
            {
                return None;
            }
            continue;
        };
        if let (Some(x), Some(y)) = (nonblank(a.answer.as_deref()), nonblank(b.answer.as_deref())) {
            if equivalent(x, y) {
                // The same answer twice: a tie that says nothing about the answer.
                continue;
            }
        }
        contested += 1;
        match verdict.winner {
            None => return None,
            Some(w) if w != winner && (verdict.first == winner || verdict.second == winner) => {
                return None
            }
            Some(_) => {}
        }
    }
    (contested > 0).then_some(answer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k2_protocol::{Event, RunEvent, RunRequest};

    fn ended(answer: &str, finish: FinishReason) -> Option<EndedCandidate> {
        Some(EndedCandidate {
            answer: (!answer.is_empty()).then(|| answer.to_owned()),
            finish,
        })
    }

    fn done(answer: &str) -> Option<EndedCandidate> {
        ended(answer, FinishReason::Complete)
    }

    fn chosen(
        candidate: CandidateId,
        answer: &str,
        method: SelectionMethod,
    ) -> Option<ChosenAnswer> {
        Some(ChosenAnswer {
            candidate: Some(candidate),
            answer: Some(answer.to_owned()),
            method: Some(method),
        })
    }

    fn verdict(first: CandidateId, second: CandidateId, winner: Option<CandidateId>) -> Verdict {
        Verdict {
            first,
            second,
            winner,
            rationale: String::new(),
        }
    }

    fn check(attempt: &str, run: &RunEvidence) -> AttemptCheck {
        check_attempt(attempt, KnownAnswers::default(), run)
    }

    fn is(verdict: CheckVerdict, basis: CheckBasis) -> AttemptCheck {
        AttemptCheck { verdict, basis }
    }

    use CheckBasis as B;
    use CheckVerdict as V;

    #[test]
    fn the_answer_key_decides_whatever_the_run_says() {
        // The hexagon: every candidate agreed on 360; the key says 720.
        let run = RunEvidence {
            candidates: vec![done("360"), done("360"), done("360")],
            chosen: chosen(0, "360", SelectionMethod::Unanimous),
            verdicts: vec![],
            shared_plan: false,
        };
        let key = KnownAnswers {
            answer_key: Some("720"),
            teacher: Some("540"),
        };
        assert_eq!(check_attempt("720", key, &run), is(V::Right, B::AnswerKey));
        assert_eq!(
            check_attempt("720^\\circ", key, &run),
            is(V::Right, B::AnswerKey)
        );
        assert_eq!(check_attempt("360", key, &run), is(V::Wrong, B::AnswerKey));
        // Without a run at all.
        let nothing = RunEvidence::default();
        assert_eq!(
            check_attempt("1440/2", key, &nothing),
            is(V::Right, B::AnswerKey)
        );
        // A blank key is no key.
        let blank = KnownAnswers {
            answer_key: Some("  "),
            teacher: None,
        };
        assert_eq!(
            check_attempt("360", blank, &run),
            is(V::Right, B::Unanimous)
        );
    }

    #[test]
    fn a_teachers_correction_comes_next() {
        let run = RunEvidence {
            candidates: vec![done("360"), done("360")],
            chosen: chosen(0, "360", SelectionMethod::Unanimous),
            verdicts: vec![],
            shared_plan: false,
        };
        let teacher = KnownAnswers {
            answer_key: None,
            teacher: Some("720"),
        };
        assert_eq!(
            check_attempt("720", teacher, &run),
            is(V::Right, B::Teacher)
        );
        assert_eq!(
            check_attempt("360", teacher, &run),
            is(V::Wrong, B::Teacher)
        );
    }

    #[test]
    fn agreement_of_every_finished_candidate_is_unanimous() {
        let run = RunEvidence {
            candidates: vec![done("3/4"), done("0.75"), done("\\frac{3}{4}")],
            chosen: chosen(0, "3/4", SelectionMethod::Unanimous),
            verdicts: vec![],
            shared_plan: false,
        };
        assert_eq!(check("\\dfrac34", &run), is(V::Right, B::Unanimous));
        assert_eq!(check("4/3", &run), is(V::Wrong, B::Unanimous));
    }

    #[test]
    fn candidates_of_one_shared_plan_agreeing_are_unsure() {
        // Measured: with a shared plan, 19-22% of unanimous GSM8K-dev runs agreed on a wrong
        // answer (1.5B planner); without a plan 5%.
        let run = RunEvidence {
            candidates: vec![done("25"), done("25"), done("25")],
            chosen: chosen(0, "25", SelectionMethod::Unanimous),
            verdicts: vec![],
            shared_plan: true,
        };
        assert_eq!(check("5", &run), AttemptCheck::UNSURE);
        assert_eq!(check("25", &run), AttemptCheck::UNSURE);
    }

    #[test]
    fn looped_and_truncated_candidates_are_ignored() {
        let run = RunEvidence {
            candidates: vec![
                done("42"),
                ended("17", FinishReason::Loop),
                done("42"),
                ended("", FinishReason::MaxTokens),
                ended("5", FinishReason::ContextFull),
            ],
            chosen: chosen(0, "42", SelectionMethod::Vote),
            verdicts: vec![],
            shared_plan: false,
        };
        assert_eq!(check("42", &run), is(V::Right, B::Unanimous));
        assert_eq!(check("17", &run), is(V::Wrong, B::Unanimous));
    }

    #[test]
    fn a_single_finished_solution_or_a_split_vote_is_unsure() {
        let single = RunEvidence {
            candidates: vec![done("42")],
            chosen: chosen(0, "42", SelectionMethod::Single),
            verdicts: vec![],
            shared_plan: false,
        };
        assert_eq!(check("41", &single), AttemptCheck::UNSURE);
        let one_finished = RunEvidence {
            candidates: vec![done("42"), ended("41", FinishReason::MaxTokens)],
            chosen: chosen(0, "42", SelectionMethod::Vote),
            verdicts: vec![],
            shared_plan: false,
        };
        assert_eq!(check("41", &one_finished), AttemptCheck::UNSURE);
        // Two of three: a majority, not a confident answer.
        let split = RunEvidence {
            candidates: vec![done("42"), done("42"), done("41")],
            chosen: chosen(0, "42", SelectionMethod::Vote),
            verdicts: vec![],
            shared_plan: false,
        };
        assert_eq!(check("41", &split), AttemptCheck::UNSURE);
        assert_eq!(check("42", &split), AttemptCheck::UNSURE);
        // A finished candidate without an answer does not agree.
        let silent = RunEvidence {
            candidates: vec![done("42"), done("42"), done("")],
            chosen: chosen(0, "42", SelectionMethod::Vote),
            verdicts: vec![],
            shared_plan: false,
        };
        assert_eq!(check("41", &silent), AttemptCheck::UNSURE);
    }

    #[test]
    fn a_run_still_streaming_is_not_unanimous_yet() {
        let run = RunEvidence {
            candidates: vec![done("42"), done("42"), None],
            chosen: None,
            verdicts: vec![],
            shared_plan: false,
        };
        assert_eq!(check("41", &run), AttemptCheck::UNSURE);
    }

    #[test]
    fn a_judge_decided_in_both_orders_of_every_comparison_is_the_verifier() {
        let candidates = vec![done("5"), done("7"), done("9")];
        let decided = RunEvidence {
            candidates: candidates.clone(),
            chosen: chosen(1, "7", SelectionMethod::Judge),
            verdicts: vec![verdict(0, 1, Some(1)), verdict(1, 2, Some(1))],
            shared_plan: false,
        };
        assert_eq!(check("7", &decided), is(V::Right, B::Verifier));
        assert_eq!(check("5", &decided), is(V::Wrong, B::Verifier));
    }

    #[test]
    fn a_tie_or_a_contradiction_in_any_comparison_is_unsure() {
        let candidates = vec![done("5"), done("7"), done("9")];
        // `winner: None`: a tie, or the two orders disagreed.
        let tie = RunEvidence {
            candidates: candidates.clone(),
            chosen: chosen(0, "5", SelectionMethod::Judge),
            verdicts: vec![verdict(0, 1, None), verdict(0, 2, Some(0))],
            shared_plan: false,
        };
        assert_eq!(check("7", &tie), AttemptCheck::UNSURE);
        assert_eq!(check("5", &tie), AttemptCheck::UNSURE);
        // The judge's tournament when vote+judge met a three-way split: all ties.
        let ties = RunEvidence {
            candidates: candidates.clone(),
            chosen: chosen(0, "5", SelectionMethod::Judge),
            verdicts: vec![verdict(0, 1, None), verdict(0, 2, None)],
            shared_plan: false,
        };
        assert_eq!(check("9", &ties), AttemptCheck::UNSURE);
        // A chosen candidate that lost somewhere (not a tournament's outcome) is no basis.
        let lost = RunEvidence {
            candidates,
            chosen: chosen(0, "5", SelectionMethod::Judge),
            verdicts: vec![verdict(0, 1, Some(1))],
            shared_plan: false,
        };
        assert_eq!(check("5", &lost), AttemptCheck::UNSURE);
        // Chosen by vote: the judge's verdicts are not a basis.
        let voted = RunEvidence {
            candidates: vec![done("5"), done("5"), done("7")],
            chosen: chosen(0, "5", SelectionMethod::Vote),
            verdicts: vec![],
            shared_plan: false,
        };
        assert_eq!(check("7", &voted), AttemptCheck::UNSURE);
    }

    #[test]
    fn ties_between_equal_answers_and_unfinished_rivals_do_not_count() {
        // The judge alone over 5, 5, 7 and a looped candidate: 0 and 1 tie (same answer, no
        // call), 7 beats 5 in both orders, 7 beats the looped one without a model.
        let run = RunEvidence {
            candidates: vec![
                done("5"),
                done("5.0"),
                done("7"),
                ended("7", FinishReason::Loop),
            ],
            chosen: chosen(2, "7", SelectionMethod::Judge),
            verdicts: vec![
                verdict(0, 1, None),
                verdict(0, 2, Some(2)),
                verdict(2, 3, Some(2)),
            ],
            shared_plan: false,
        };
        assert_eq!(check("7", &run), is(V::Right, B::Verifier));
        // Only decisions without a model: nothing was verified.
        let unverified = RunEvidence {
            candidates: vec![done("5"), ended("7", FinishReason::MaxTokens)],
            chosen: chosen(0, "5", SelectionMethod::Judge),
            verdicts: vec![verdict(0, 1, Some(0))],
            shared_plan: false,
        };
        assert_eq!(check("7", &unverified), AttemptCheck::UNSURE);
    }

    #[test]
    fn a_run_with_no_answer_is_unsure() {
        let run = RunEvidence {
            candidates: vec![done(""), done("")],
            chosen: Some(ChosenAnswer {
                candidate: Some(0),
                answer: None,
                method: Some(SelectionMethod::Vote),
            }),
            verdicts: vec![],
            shared_plan: false,
        };
        assert_eq!(check("1", &run), AttemptCheck::UNSURE);
        assert_eq!(check("1", &RunEvidence::default()), AttemptCheck::UNSURE);
    }

    #[test]
    fn a_recorded_run_is_checked_from_its_events() {
        let mut request = RunRequest::new("What is 17 + 25?");
        request.settings.candidates = 2;
        let kinds = vec![
            RunEvent::Started { request },
            RunEvent::CandidateFinished {
                candidate: 0,
                answer: Some("42".into()),
                finish: FinishReason::Complete,
                tokens: 10,
                seconds: 0.1,
            },
            RunEvent::CandidateFinished {
                candidate: 1,
                answer: Some("\\boxed{42}".into()),
                finish: FinishReason::Complete,
                tokens: 10,
                seconds: 0.1,
            },
            RunEvent::FinalAnswer {
                candidate: 0,
                answer: Some("42".into()),
                method: SelectionMethod::Unanimous,
            },
        ];
        let events: Vec<Event> = kinds
            .into_iter()
            .enumerate()
            .map(|(seq, kind)| Event {
                seq: seq as u64,
                elapsed_ms: 0,
                kind,
            })
            .collect();
        let view = RunView::replay(&events);
        let known = KnownAnswers::default();
        assert_eq!(
            check_attempt_in_view("42", known, &view),
            is(V::Right, B::Unanimous)
        );
        assert_eq!(
            check_attempt_in_view("24", known, &view),
            is(V::Wrong, B::Unanimous)
        );
        // The same run with its candidates written from one plan.
        let mut planned = events.clone();
        planned.insert(
            1,
            Event {
                seq: 99,
                elapsed_ms: 0,
                kind: RunEvent::PlanFinished {
                    plan: "Add the tens, then the ones.".into(),
                    tokens: 8,
                    seconds: 0.1,
                },
            },
        );
        let view = RunView::replay(&planned);
        assert_eq!(
            check_attempt_in_view("24", known, &view),
            AttemptCheck::UNSURE
        );
    }
}
