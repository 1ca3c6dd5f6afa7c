//! Choosing the run's answer among the candidates: majority vote over mathematically
//! equivalent answers, the pairwise judge, or a vote that calls the judge only when it is split.

use k2_protocol::{AnswerGroup, CandidateId, Selection, SelectionMethod, Verdict};

use crate::error::{Result, ScaffoldError};
use crate::judge::{compare, Entrant, PairJudge};
use k2_answer as answer;

#[derive(Debug, Clone, PartialEq)]
pub struct Selected {
    /// The chosen candidate's `id` (its position in the slice, as the pipeline numbers them).
    pub candidate: CandidateId,
    pub method: SelectionMethod,
    /// Equivalence classes of the finished candidates' answers, in order of first appearance.
    pub groups: Vec<AnswerGroup>,
}

/// Chooses a candidate with `strategy`. Every verdict the judge reaches is passed to
/// `on_verdict` as soon as it is reached, before the next pair is judged (the pipeline streams
/// each one as a `RunEvent::Verdict` from there).
///
/// - one candidate: [`SelectionMethod::Single`], nothing judged;
/// - every candidate finished with the same answer: [`SelectionMethod::Unanimous`], whatever
///   the strategy (there is nothing for a judge to decide);
/// - `Vote`: the largest answer group wins. Groups only hold finished candidates, so a tie in
///   size is broken by the lowest candidate id (deterministic; no better signal is left). With
///   no answers at all: the first finished candidate, else the first cut off by a limit, else
///   the first candidate (a looped candidate never wins over one that got further);
/// - `Judge`: champion against challenger in candidate order, each pair compared in both
///   orders (see [`compare`]); a tie keeps the champion;
/// - `VoteThenJudge`: a strict majority of all candidates (> n/2) wins by vote. Otherwise the
///   groups tied for the most votes send their first member to a judge tournament; a single
///   leading group (a plurality) wins by vote; with no answers at all, every candidate enters
///   the tournament.
pub fn select(
    strategy: Selection,
    problem: &str,
    candidates: &[Entrant],
    judge: &mut dyn PairJudge,
    on_verdict: &mut dyn FnMut(&Verdict),
) -> Result<Selected> {
    if candidates.is_empty() {
        return Err(ScaffoldError::InvalidSetting(
            "no candidates to choose from (a run needs at least one)".into(),
        ));
    }
    let groups = answer_groups(candidates);
    let done = |candidate: CandidateId, method: SelectionMethod| Selected {
        candidate,
        method,
        groups: groups.clone(),
    };

    if candidates.len() == 1 {
        return Ok(done(candidates[0].id, SelectionMethod::Single));
    }
    if let [only] = groups.as_slice() {
        if only.candidates.len() == candidates.len() {
            return Ok(done(only.candidates[0], SelectionMethod::Unanimous));
        }
    }

    match strategy {
        Selection::Vote => Ok(done(
            vote_winner(candidates, &groups),
            SelectionMethod::Vote,
        )),
        Selection::Judge => {
            let all: Vec<&Entrant> = candidates.iter().collect();
            let winner = tournament(problem, &all, judge, on_verdict)?;
            Ok(done(winner, SelectionMethod::Judge))
        }
        Selection::VoteThenJudge => {
            let top = groups.iter().map(|g| g.candidates.len()).max().unwrap_or(0);
            if top * 2 > candidates.len()
                || groups.iter().filter(|g| g.candidates.len() == top).count() == 1
            {
                return Ok(done(
                    vote_winner(candidates, &groups),
                    SelectionMethod::Vote,
                ));
            }
            let entrants: Vec<&Entrant> = if groups.is_empty() {
                candidates.iter().collect()
            } else {
                groups
                    .iter()
                    .filter(|g| g.candidates.len() == top)
                    .filter_map(|g| by_id(candidates, g.candidates[0]))
                    .collect()
            };
            let winner = tournament(problem, &entrants, judge, on_verdict)?;
            Ok(done(winner, SelectionMethod::Judge))
        }
    }
}

/// Groups the finished candidates' answers into classes of [`answer::equivalent`] answers.
/// A candidate joins the first group whose first answer is equivalent to its own (equivalence
/// with tolerances need not be transitive, so comparing with one fixed representative keeps
/// the grouping deterministic). Unfinished candidates and empty answers do not vote.
pub fn answer_groups(candidates: &[Entrant]) -> Vec<AnswerGroup> {
    // (group, canonical key of its first answer): equal keys imply equivalence, which saves
    // the full comparison in the common case.
    let mut groups: Vec<(AnswerGroup, String)> = Vec::new();
    for c in candidates.iter().filter(|c| c.finished()) {
        let Some(answer) = c.answer.as_deref().map(str::trim).filter(|a| !a.is_empty()) else {
            continue;
        };
        let key = answer::normalize(answer);
        match groups
            .iter_mut()
            .find(|(g, k)| *k == key || answer::equivalent(&g.answer, answer))
        {
            Some((group, _)) => group.candidates.push(c.id),
            None => groups.push((
                AnswerGroup {
                    answer: answer.to_owned(),
                    candidates: vec![c.id],
                },
                key,
            )),
        }
    }
    groups.into_iter().map(|(g, _)| g).collect()
}

/// The largest group's first candidate; ties go to the group whose first candidate has the
/// lowest id. No groups: the first candidate of the best [`Entrant::standing`] (finished, else
/// cut off by a limit, else looped), so a loop never wins where anything else could.
fn vote_winner(candidates: &[Entrant], groups: &[AnswerGroup]) -> CandidateId {
    let best = groups.iter().max_by(|x, y| {
        x.candidates
            .len()
            .cmp(&y.candidates.len())
            // Reversed: on equal size the lower first id is the "larger" one.
            .then_with(|| y.candidates[0].cmp(&x.candidates[0]))
    });
    match best {
        Some(group) => group.candidates[0],
        None => {
            candidates
                .iter()
                .max_by_key(|c| (c.standing(), std::cmp::Reverse(c.id)))
                .unwrap_or(&candidates[0])
                .id
        }
    }
}

/// Champion against challenger in the given order; the champion keeps its place on a tie.
fn tournament(
    problem: &str,
    entrants: &[&Entrant],
    judge: &mut dyn PairJudge,
    on_verdict: &mut dyn FnMut(&Verdict),
) -> Result<CandidateId> {
    let Some((&first, rest)) = entrants.split_first() else {
        return Err(ScaffoldError::InvalidSetting(
            "no candidates to judge".into(),
        ));
    };
    let mut champion = first;
    for &challenger in rest {
        let verdict = compare(judge, problem, champion, challenger)?;
        on_verdict(&verdict);
        if verdict.winner == Some(challenger.id) {
            champion = challenger;
        }
    }
    Ok(champion.id)
}

fn by_id(candidates: &[Entrant], id: CandidateId) -> Option<&Entrant> {
    candidates.iter().find(|c| c.id == id)
}
