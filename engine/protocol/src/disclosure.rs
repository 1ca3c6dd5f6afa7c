//! What a student may see of a student-mode run before they ask for its solution (issue 29):
//! the classroom server applies it to the live stream and to every stored replay alike, so a
//! student's client never receives what the page would only hide.

use crate::{Event, RunEvent};

/// What the student has been given so far.
#[derive(Debug, Clone, Copy)]
pub struct Disclosed<'a> {
    /// The hint levels they opened.
    pub hints_opened: &'a [u32],
    /// Whether hints may reach them at all (not in a class's test mode).
    pub hints_allowed: bool,
}

/// `event` as the student may see it before the reveal: `None` leaves it out.
///
/// - Kept whole: the run's start (their own request), its stages, totals, error or stop.
/// - Left out: the plan, candidates' text, answer groups and the judge's verdicts.
/// - Kept without their answer: a candidate's end (progress) and the final answer (the page
///   knows the run answered).
/// - Hints: a rung's text only once they opened it; no rung at all where hints are not allowed.
///
/// Sequence numbers keep their gaps: replays take the highest one seen.
pub fn student_event(event: &Event, disclosed: Disclosed<'_>) -> Option<Event> {
    let kind = match &event.kind {
        RunEvent::Started { .. }
        | RunEvent::Stage { .. }
        | RunEvent::Stats(_)
        | RunEvent::Error { .. }
        | RunEvent::Cancelled => event.kind.clone(),
        RunEvent::PlanDelta { .. }
        | RunEvent::PlanFinished { .. }
        | RunEvent::CandidateDelta { .. }
        | RunEvent::AnswerGroups { .. }
        | RunEvent::Verdict(_) => return None,
        RunEvent::CandidateFinished {
            candidate,
            finish,
            tokens,
            seconds,
            ..
        } => RunEvent::CandidateFinished {
            candidate: *candidate,
            answer: None,
            finish: *finish,
            tokens: *tokens,
            seconds: *seconds,
        },
        RunEvent::FinalAnswer {
            candidate, method, ..
        } => RunEvent::FinalAnswer {
            candidate: *candidate,
            answer: None,
            method: *method,
        },
        RunEvent::Hint(hint) => {
            if !disclosed.hints_allowed {
                return None;
            }
            let mut hint = hint.clone();
            if !disclosed.hints_opened.contains(&hint.level) {
                hint.text = String::new();
                hint.screened = None;
            }
            RunEvent::Hint(hint)
        }
    };
    Some(Event {
        seq: event.seq,
        elapsed_ms: event.elapsed_ms,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real student run of Qwen2.5-1.5B (answer 72, four hint rungs), as the desktop app
    /// recorded it.
    fn recorded_run() -> Vec<Event> {
        include_str!("../../../tests/browser/fixtures/qwen-1.5b-natalia-student.jsonl")
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    fn shown(opened: &[u32], hints_allowed: bool) -> Vec<Event> {
        let disclosed = Disclosed {
            hints_opened: opened,
            hints_allowed,
        };
        recorded_run()
            .iter()
            .filter_map(|e| student_event(e, disclosed))
            .collect()
    }

    #[test]
    fn before_the_reveal_a_student_gets_no_solution_text() {
        let run = recorded_run();
        let shown = shown(&[], true);
        let kinds: Vec<&str> = shown.iter().map(|e| e.kind.kind_name()).collect();
        for hidden in [
            "plan_delta",
            "plan_finished",
            "candidate_delta",
            "answer_groups",
            "verdict",
        ] {
            assert!(!kinds.contains(&hidden), "{hidden} reached the student");
        }
        for kept in [
            "started",
            "stage",
            "candidate_finished",
            "final_answer",
            "stats",
        ] {
            assert!(kinds.contains(&kept), "{kept} was dropped");
        }
        let text = serde_json::to_string(&shown).unwrap();
        assert!(!text.contains("72"), "the answer reached the student");
        let hints: Vec<_> = shown
            .iter()
            .filter_map(|e| match &e.kind {
                RunEvent::Hint(h) => Some(h),
                _ => None,
            })
            .collect();
        assert_eq!(
            hints.len(),
            4,
            "the page needs to know how many rungs exist"
        );
        assert!(hints.iter().all(|h| h.text.is_empty()));
        // The whole run mentions both, so the checks above can fail.
        let whole = serde_json::to_string(&run).unwrap();
        assert!(whole.contains("\"answer\":\"72\""));
    }

    #[test]
    fn an_opened_hint_is_shown_whole_and_test_mode_shows_none() {
        let run = recorded_run();
        let first_rung = run
            .iter()
            .find_map(|e| match &e.kind {
                RunEvent::Hint(h) if h.level == 1 => Some(h.text.clone()),
                _ => None,
            })
            .unwrap();
        let shown = shown(&[1], true);
        let texts: Vec<&str> = shown
            .iter()
            .filter_map(|e| match &e.kind {
                RunEvent::Hint(h) => Some(h.text.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(texts, [first_rung.as_str(), "", "", ""]);
        let in_test = self::shown(&[1], false);
        assert!(in_test.iter().all(|e| !matches!(e.kind, RunEvent::Hint(_))));
    }
}
