//! What a run looks like after some of its events: the plan, each candidate's reasoning and
//! answer, the verdicts and the final answer. The live UI, the terminal and a replay of a stored
//! run all fold the same events through [`RunView::apply`], so they cannot disagree.

use serde::{Deserialize, Serialize};

use crate::{
    AnswerGroup, CandidateId, Event, FinishReason, Hint, RunEvent, RunRequest, RunStats,
    SelectionMethod, Stage, TextPart, Verdict,
};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunView {
    pub request: Option<RunRequest>,
    pub stage: Option<Stage>,
    pub plan: String,
    pub plan_finished: bool,
    pub candidates: Vec<CandidateView>,
    pub groups: Vec<AnswerGroup>,
    pub verdicts: Vec<Verdict>,
    pub final_answer: Option<FinalAnswerView>,
    /// The student's hint ladder, in level order (student runs only).
    pub hints: Vec<Hint>,
    pub stats: Option<RunStats>,
    pub error: Option<String>,
    pub cancelled: bool,
    /// Events applied so far (the next expected `seq`).
    pub events: u64,
    /// `elapsed_ms` of the last event applied.
    pub elapsed_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CandidateView {
    /// The reasoning trace: text inside the think block (any family's tags).
    pub reasoning: String,
    /// The written solution after the reasoning.
    pub answer_text: String,
    pub finished: Option<CandidateOutcome>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateOutcome {
    pub answer: Option<String>,
    pub finish: FinishReason,
    pub tokens: usize,
    pub seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalAnswerView {
    pub candidate: CandidateId,
    pub answer: Option<String>,
    pub method: SelectionMethod,
}

impl RunView {
    /// Folds a whole event log.
    pub fn replay<'a>(events: impl IntoIterator<Item = &'a Event>) -> RunView {
        let mut view = RunView::default();
        for event in events {
            view.apply(event);
        }
        view
    }

    pub fn apply(&mut self, event: &Event) {
        self.events = self.events.max(event.seq + 1);
        self.elapsed_ms = event.elapsed_ms;
        match &event.kind {
            RunEvent::Started { request } => {
                self.candidates = vec![CandidateView::default(); request.settings.candidates];
                self.request = Some(request.clone());
            }
            RunEvent::Stage { stage } => self.stage = Some(*stage),
            RunEvent::PlanDelta { text } => self.plan.push_str(text),
            RunEvent::PlanFinished { plan, .. } => {
                self.plan = plan.clone();
                self.plan_finished = true;
            }
            RunEvent::CandidateDelta {
                candidate,
                part,
                text,
            } => {
                let view = self.candidate_mut(*candidate);
                match part {
                    TextPart::Reasoning => view.reasoning.push_str(text),
                    TextPart::Answer => view.answer_text.push_str(text),
                }
            }
            RunEvent::CandidateFinished {
                candidate,
                answer,
                finish,
                tokens,
                seconds,
            } => {
                self.candidate_mut(*candidate).finished = Some(CandidateOutcome {
                    answer: answer.clone(),
                    finish: *finish,
                    tokens: *tokens,
                    seconds: *seconds,
                });
            }
            RunEvent::AnswerGroups { groups } => self.groups = groups.clone(),
            RunEvent::Verdict(verdict) => self.verdicts.push(verdict.clone()),
            RunEvent::FinalAnswer {
                candidate,
                answer,
                method,
            } => {
                self.final_answer = Some(FinalAnswerView {
                    candidate: *candidate,
                    answer: answer.clone(),
                    method: *method,
                })
            }
            RunEvent::Hint(hint) => self.hints.push(hint.clone()),
            RunEvent::Stats(stats) => self.stats = Some(stats.clone()),
            RunEvent::Error { message } => self.error = Some(message.clone()),
            RunEvent::Cancelled => self.cancelled = true,
        }
    }

    /// A candidate's view, growing the list if a delta names one the request did not announce
    /// (a log from a newer engine must still replay).
    fn candidate_mut(&mut self, candidate: CandidateId) -> &mut CandidateView {
        if candidate >= self.candidates.len() {
            self.candidates
                .resize_with(candidate + 1, CandidateView::default);
        }
        &mut self.candidates[candidate]
    }

    /// Whether a terminal event (stats, error, cancellation) has been applied.
    pub fn is_finished(&self) -> bool {
        self.stats.is_some() || self.error.is_some() || self.cancelled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64, kind: RunEvent) -> Event {
        Event {
            seq,
            elapsed_ms: seq * 10,
            kind,
        }
    }

    #[test]
    fn deltas_accumulate_per_candidate_and_part() {
        let mut request = RunRequest::new("1+1?");
        request.settings.candidates = 2;
        let events = [
            event(0, RunEvent::Started { request }),
            event(
                1,
                RunEvent::CandidateDelta {
                    candidate: 1,
                    part: TextPart::Reasoning,
                    text: "one plus ".into(),
                },
            ),
            event(
                2,
                RunEvent::CandidateDelta {
                    candidate: 1,
                    part: TextPart::Reasoning,
                    text: "one".into(),
                },
            ),
            event(
                3,
                RunEvent::CandidateDelta {
                    candidate: 0,
                    part: TextPart::Answer,
                    text: "$2$".into(),
                },
            ),
            event(
                4,
                RunEvent::FinalAnswer {
                    candidate: 0,
                    answer: Some("2".into()),
                    method: SelectionMethod::Vote,
                },
            ),
        ];
        let view = RunView::replay(&events);
        assert_eq!(view.candidates[1].reasoning, "one plus one");
        assert_eq!(view.candidates[0].answer_text, "$2$");
        assert_eq!(view.candidates[0].reasoning, "");
        assert_eq!(view.final_answer.unwrap().answer.as_deref(), Some("2"));
        assert_eq!(view.events, 5);
        assert_eq!(view.elapsed_ms, 40);
        assert!(!RunView::replay(&events).is_finished());
    }

    #[test]
    fn a_delta_for_an_unannounced_candidate_is_kept() {
        let view = RunView::replay(&[event(
            0,
            RunEvent::CandidateDelta {
                candidate: 4,
                part: TextPart::Answer,
                text: "x".into(),
            },
        )]);
        assert_eq!(view.candidates.len(), 5);
        assert_eq!(view.candidates[4].answer_text, "x");
    }
}
