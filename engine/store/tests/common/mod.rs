//! Helpers shared by the store's tests: a real database file in a temporary folder, and a run's
//! worth of events with every kind.

#![allow(dead_code)]

use k2_protocol::{
    AnswerGroup, Event, FinishReason, RunEvent, RunRequest, RunSettings, RunStats, SelectionMethod,
    Stage, TextPart, Verdict,
};
use k2_store::{NewProblem, RunConfig, RunId, RunRecorder, Store};

pub struct TempStore {
    pub dir: tempfile::TempDir,
    pub store: Store,
}

pub async fn temp_store() -> TempStore {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("sessions.db")).await.unwrap();
    TempStore { dir, store }
}

pub fn config() -> RunConfig {
    RunConfig {
        solver: "qwen2.5-coder-1.5b-instruct-q4_k_m".into(),
        planner: Some("qwen2.5-coder-0.5b-instruct-q4_k_m".into()),
        draft: None,
        device: "cpu".into(),
        settings: RunSettings::default(),
    }
}

/// A complete run's events: every event kind, LaTeX and unicode in the texts.
pub fn run_events(problem: &str, answer: &str) -> Vec<Event> {
    let mut request = RunRequest::new(problem);
    request.settings.candidates = 2;
    let kinds = vec![
        RunEvent::Started { request },
        RunEvent::Stage {
            stage: Stage::Planning,
        },
        RunEvent::PlanDelta {
            text: "Key idea: use ".into(),
        },
        RunEvent::PlanDelta {
            text: "Vieta's formulas — $x_1 x_2 = c$.".into(),
        },
        RunEvent::PlanFinished {
            plan: "Key idea: use Vieta's formulas — $x_1 x_2 = c$.".into(),
            tokens: 14,
            seconds: 0.4,
        },
        RunEvent::Stage {
            stage: Stage::Solving,
        },
        RunEvent::CandidateDelta {
            candidate: 0,
            part: TextPart::Reasoning,
            text: "Let the roots be r, s… ".into(),
        },
        RunEvent::CandidateDelta {
            candidate: 1,
            part: TextPart::Answer,
            text: format!("So the product is \\(\\boxed{{{answer}}}\\)."),
        },
        RunEvent::CandidateDelta {
            candidate: 0,
            part: TextPart::Answer,
            text: format!("Therefore $\\boxed{{{answer}}}$."),
        },
        RunEvent::CandidateFinished {
            candidate: 0,
            answer: Some(answer.into()),
            finish: FinishReason::Complete,
            tokens: 120,
            seconds: 3.5,
        },
        RunEvent::CandidateFinished {
            candidate: 1,
            answer: Some(answer.into()),
            finish: FinishReason::MaxTokens,
            tokens: 512,
            seconds: 9.0,
        },
        RunEvent::Stage {
            stage: Stage::Verifying,
        },
        RunEvent::AnswerGroups {
            groups: vec![AnswerGroup {
                answer: answer.into(),
                candidates: vec![0, 1],
            }],
        },
        RunEvent::Verdict(Verdict {
            first: 0,
            second: 1,
            winner: Some(0),
            rationale: "Candidate 1 finished; candidate 2 was cut off.".into(),
        }),
        RunEvent::Verdict(Verdict {
            first: 1,
            second: 0,
            winner: None,
            rationale: "Same answer.".into(),
        }),
        RunEvent::FinalAnswer {
            candidate: 0,
            answer: Some(answer.into()),
            method: SelectionMethod::Vote,
        },
        RunEvent::Stage { stage: Stage::Done },
        RunEvent::Stats(RunStats {
            prompt_tokens: 80,
            generated_tokens: 632,
            wall_seconds: 12.5,
            decode_tokens_per_s: 50.0,
            ..Default::default()
        }),
    ];
    kinds
        .into_iter()
        .enumerate()
        .map(|(seq, kind)| Event {
            seq: seq as u64,
            elapsed_ms: seq as u64 * 37,
            kind,
        })
        .collect()
}

/// [`run_events`] as a run the tutor is confident in: both candidates finished on `answer`,
/// each written on its own (no plan: candidates of one shared plan agreeing is not confidence,
/// see `k2_answer::check`).
pub fn confident_run_events(problem: &str, answer: &str) -> Vec<Event> {
    run_events(problem, answer)
        .into_iter()
        .filter(|e| {
            !matches!(
                e.kind,
                RunEvent::PlanDelta { .. }
                    | RunEvent::PlanFinished { .. }
                    | RunEvent::Stage {
                        stage: Stage::Planning
                    }
            )
        })
        .enumerate()
        .map(|(seq, mut event)| {
            event.seq = seq as u64;
            if let RunEvent::CandidateFinished { finish, .. } = &mut event.kind {
                *finish = FinishReason::Complete;
            }
            event
        })
        .collect()
}

/// Stores a whole run through the recorder, as a live run would be.
pub async fn record_run(store: &Store, session: i64, problem: &str, answer: &str) -> RunId {
    record_events(store, session, problem, run_events(problem, answer)).await
}

/// Stores these events as a run of `problem`, through the recorder.
pub async fn record_events(
    store: &Store,
    session: i64,
    problem: &str,
    events: Vec<Event>,
) -> RunId {
    let problem_id = store
        .add_problem(&NewProblem::typed(problem))
        .await
        .unwrap();
    let run = store
        .start_run(session, problem_id, &config(), Default::default())
        .await
        .unwrap();
    let recorder = RunRecorder::start(store, run);
    for event in events {
        recorder.record(&event);
    }
    recorder.finish().await.unwrap();
    run
}
