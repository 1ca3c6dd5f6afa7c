//! The contract between K2 Tutor's layers: a [`RunRequest`] goes in, a stream of [`Event`]s
//! comes out. The engine produces events; the terminal, the session store, the desktop UI and
//! HTTP/SSE clients only consume them, serialized with serde exactly as defined here. A stored
//! run is its event log, so replaying it shows exactly what was streamed.
//!
//! What front ends ask of the stored runs (list, replay, export, notes...) is one
//! [`HistoryRequest`].
//!
//! Serde only, so the Leptos UI (wasm) links it without the engine.

mod app_config;
mod check;
mod class;
pub mod disclosure;
mod effort;
mod history;
mod record;
mod request;
mod steps;
mod view;
mod work;

pub use app_config::{AppConfig, CONFIG_KEYS};
pub use check::{AttemptCheck, CheckBasis, CheckVerdict};
pub use class::{AttemptCounts, ClassRun, ClassStudent, ClassTotals, ClassView};
pub use effort::Effort;
pub use history::{HistoryRequest, NewNote, StoredRunId};
pub use record::{
    level_ranges, Correction, OpenedHint, RecordedAttempt, RecordedWorkCheck, StudentRecord,
};
pub use request::{
    RunRequest, RunSettings, SamplingSettings, Selection, MAX_CANDIDATES, SESSION_TITLE_MAX,
};
pub use steps::{stage_steps, StageStep};
pub use view::{CandidateOutcome, CandidateView, FinalAnswerView, RunView};
pub use work::{WorkCertainty, WorkCheck, WorkIssueKind, WrongStep};

use serde::{Deserialize, Serialize};

/// Index of a candidate solution within a run (0-based).
pub type CandidateId = usize;

/// One event of a run, as streamed and stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the run's stream, from 0, without gaps.
    pub seq: u64,
    /// Milliseconds since the run started (replay timing, "thought for 12 s").
    pub elapsed_ms: u64,
    #[serde(flatten)]
    pub kind: RunEvent,
}

/// What happened. Serialized with a `type` tag: `{"type":"plan_delta","text":"..."}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RunEvent {
    /// The run began with this request.
    Started { request: RunRequest },
    /// The run entered a stage.
    Stage { stage: Stage },
    /// More plan text from the planner.
    PlanDelta { text: String },
    /// The plan is complete (or planning was skipped).
    PlanFinished {
        plan: String,
        tokens: usize,
        seconds: f64,
    },
    /// More text of a candidate solution: its reasoning (inside any family's think tags) or
    /// its answer part.
    CandidateDelta {
        candidate: CandidateId,
        part: TextPart,
        text: String,
    },
    /// A candidate finished generating.
    CandidateFinished {
        candidate: CandidateId,
        /// The final answer found in the text (boxed, answer tag, last number), if any.
        answer: Option<String>,
        finish: FinishReason,
        tokens: usize,
        seconds: f64,
    },
    /// Candidates whose final answers are mathematically equivalent, grouped for voting.
    AnswerGroups { groups: Vec<AnswerGroup> },
    /// The judge compared two candidates.
    Verdict(Verdict),
    /// The run's answer.
    FinalAnswer {
        candidate: CandidateId,
        /// The final answer text (LaTeX), if the chosen candidate gave one.
        answer: Option<String>,
        /// How the candidate was chosen.
        method: SelectionMethod,
    },
    /// One rung of the student's hint ladder (student runs only), written for teaching after
    /// the answer was chosen. Levels count from 1: what to notice, an approach, the next
    /// concrete step; the last, `bottom_out`, is the worked solution. A rung that is not the
    /// bottom-out one was screened before it was sent: `screened` says whether it had to be
    /// rewritten or cut because it revealed an answer (`k2_answer::hints`).
    Hint(Hint),
    /// Totals for the run; the last event of a completed run.
    Stats(RunStats),
    /// Something failed; the run ends. `message` says what and what to do.
    Error { message: String },
    /// The user stopped the run; the run ends.
    Cancelled,
}

impl RunEvent {
    /// The `type` tag this event is serialized with (`"plan_delta"`, `"verdict"`, …).
    pub fn kind_name(&self) -> &'static str {
        match self {
            RunEvent::Started { .. } => "started",
            RunEvent::Stage { .. } => "stage",
            RunEvent::PlanDelta { .. } => "plan_delta",
            RunEvent::PlanFinished { .. } => "plan_finished",
            RunEvent::CandidateDelta { .. } => "candidate_delta",
            RunEvent::CandidateFinished { .. } => "candidate_finished",
            RunEvent::AnswerGroups { .. } => "answer_groups",
            RunEvent::Verdict(_) => "verdict",
            RunEvent::FinalAnswer { .. } => "final_answer",
            RunEvent::Hint(_) => "hint",
            RunEvent::Stats(_) => "stats",
            RunEvent::Error { .. } => "error",
            RunEvent::Cancelled => "cancelled",
        }
    }

    /// Whether this event ends a run's stream.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            RunEvent::Stats(_) | RunEvent::Error { .. } | RunEvent::Cancelled
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Planning,
    Solving,
    Verifying,
    /// Writing the student's hint ladder (student runs only), after the answer was chosen.
    Hinting,
    Done,
}

/// A rung of the hint ladder: `{"type":"hint","level":1,"text":"…","bottom_out":false}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hint {
    /// From 1, in the order a student opens them.
    pub level: u32,
    pub text: String,
    /// The worked solution: the last rung, which gives the answer away by design.
    pub bottom_out: bool,
    /// What the leak screen did to this rung; absent when it passed as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screened: Option<HintScreen>,
}

/// Why a rung's text is not what the hint writer wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HintScreen {
    /// It revealed an answer and was written again; the new text passed the screen.
    Rewritten,
    /// It revealed an answer; the sentences that did were removed.
    Cut,
}

/// Which part of a candidate's text a delta belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextPart {
    /// Inside a think block (`<think>…</think>`, K2 Horizon's `<ifm|think…>`): shown
    /// collapsible ("Thought for 12 s").
    Reasoning,
    /// Everything else: the written solution and its final answer.
    Answer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model ended its answer.
    Complete,
    /// Stopped at the token limit: the solution is unfinished.
    MaxTokens,
    /// The context window filled up: the solution is unfinished.
    ContextFull,
    Cancelled,
    /// The loop guard ended it: the text had degenerated into one span repeated over and
    /// over. Unfinished, and never selected over a candidate that finished.
    Loop,
}

impl FinishReason {
    /// Whether the model ended the text itself (every other reason cut it short).
    pub fn is_complete(self) -> bool {
        self == FinishReason::Complete
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerGroup {
    /// The answer as the first candidate of the group wrote it.
    pub answer: String,
    pub candidates: Vec<CandidateId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub first: CandidateId,
    pub second: CandidateId,
    /// `None` is a tie.
    pub winner: Option<CandidateId>,
    /// The judge's explanation, written before its verdict.
    pub rationale: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SelectionMethod {
    /// Only one candidate was generated.
    Single,
    /// The largest group of equivalent answers.
    Vote,
    /// The pairwise judge.
    Judge,
    /// All candidates agreed, so nothing needed judging.
    Unanimous,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunStats {
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    pub plan_tokens: usize,
    pub judge_tokens: usize,
    /// Tokens the hint writer generated (student runs), rewrites included.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub hint_tokens: usize,
    pub wall_seconds: f64,
    /// Generated tokens per second of decoding, over all candidates.
    pub decode_tokens_per_s: f64,
    /// Speculative decoding, when used: accepted draft tokens / drafted tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acceptance_rate: Option<f64>,
    /// Speculative decoding, when used: tokens generated per forward pass of the solver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_pass: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(kind: RunEvent) {
        let event = Event {
            seq: 7,
            elapsed_ms: 1234,
            kind,
        };
        let json = serde_json::to_string(&event).unwrap();
        let tag: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(tag["type"], event.kind.kind_name(), "{json}");
        let back: Event = serde_json::from_str(&json).unwrap();
        assert_eq!(back, event, "{json}");
    }

    #[test]
    fn every_event_kind_round_trips_through_json() {
        let all = vec![
            RunEvent::Started {
                request: RunRequest::new("What is $1+1$?"),
            },
            RunEvent::Stage {
                stage: Stage::Planning,
            },
            RunEvent::PlanDelta {
                text: "Key idea: ".into(),
            },
            RunEvent::PlanFinished {
                plan: "Add.".into(),
                tokens: 3,
                seconds: 0.5,
            },
            RunEvent::CandidateDelta {
                candidate: 2,
                part: TextPart::Reasoning,
                text: "1+1".into(),
            },
            RunEvent::CandidateFinished {
                candidate: 2,
                answer: Some("2".into()),
                finish: FinishReason::Complete,
                tokens: 40,
                seconds: 1.5,
            },
            RunEvent::AnswerGroups {
                groups: vec![AnswerGroup {
                    answer: "2".into(),
                    candidates: vec![0, 2],
                }],
            },
            RunEvent::Verdict(Verdict {
                first: 0,
                second: 1,
                winner: None,
                rationale: "Both are right.".into(),
            }),
            RunEvent::FinalAnswer {
                candidate: 0,
                answer: Some("\\frac{1}{2}".into()),
                method: SelectionMethod::Vote,
            },
            RunEvent::Stats(RunStats {
                acceptance_rate: Some(0.8),
                tokens_per_pass: Some(2.5),
                ..Default::default()
            }),
            RunEvent::Error {
                message: "the model file is damaged".into(),
            },
            RunEvent::Cancelled,
        ];
        for kind in all {
            round_trip(kind);
        }
    }

    #[test]
    fn events_are_tagged_flat_objects() {
        let event = Event {
            seq: 0,
            elapsed_ms: 5,
            kind: RunEvent::PlanDelta { text: "x".into() },
        };
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            r#"{"seq":0,"elapsed_ms":5,"type":"plan_delta","text":"x"}"#
        );
    }

    #[test]
    fn only_stats_errors_and_cancellation_end_a_run() {
        assert!(RunEvent::Cancelled.is_terminal());
        assert!(RunEvent::Stats(RunStats::default()).is_terminal());
        assert!(!RunEvent::Stage { stage: Stage::Done }.is_terminal());
    }

    #[test]
    fn a_request_names_its_session_trimmed_and_capped_or_takes_the_front_ends() {
        let mut request = RunRequest::new("1 + 1?");
        assert_eq!(request.session_or("Desktop"), "Desktop");
        request.session = Some("   ".into());
        assert_eq!(request.session_or("Desktop"), "Desktop");
        request.session = Some("  Homework 3 ".into());
        assert_eq!(request.session_or("Desktop"), "Homework 3");
        request.session = Some("é".repeat(SESSION_TITLE_MAX + 5));
        assert_eq!(
            request.session_or("Desktop").chars().count(),
            SESSION_TITLE_MAX
        );
        // Old clients send no session; it is not written when absent.
        let json = serde_json::to_value(RunRequest::new("x")).unwrap();
        assert!(json.get("session").is_none());
        let parsed: RunRequest = serde_json::from_str(r#"{"problem": "x"}"#).unwrap();
        assert_eq!(parsed.session, None);
    }
}
