//! The whole scaffold on real small models: plan (0.5B), best-of-3 batched (SmolLM2 as a fast
//! solver), verification. The event stream must be complete and well ordered, and replaying
//! the deltas must rebuild exactly what the run returned.

use std::sync::Arc;

use k2_engine::backend::LocalBackend;
use k2_engine::decode::plain::CancelToken;
use k2_protocol::{Event, RunEvent, RunRequest, Selection, Stage, TextPart};
use k2_scaffold::pipeline::Pipeline;
use k2_tests::{load, QWEN_05B, SMOLLM2};

fn run(selection: Selection, plan: bool) -> (Vec<Event>, k2_scaffold::pipeline::RunOutcome) {
    let solver = LocalBackend::new(Arc::new(load(SMOLLM2)));
    let planner = LocalBackend::new(Arc::new(load(QWEN_05B)));
    let pipeline = Pipeline {
        solver: &solver,
        planner: &planner,
    };
    let mut request =
        RunRequest::new("A train travels 60 km in 1.5 hours. What is its average speed in km/h?");
    request.settings.plan = plan;
    request.settings.selection = selection;
    request.settings.plan_max_tokens = 96;
    request.settings.sampling.max_tokens = 160;
    request.settings.sampling.seed = 3;
    let mut events = Vec::new();
    let outcome = pipeline
        .run(&request, &CancelToken::new(), &mut |e| events.push(e))
        .expect("the run completes");
    (events, outcome)
}

fn stage_index(events: &[Event], stage: Stage) -> Option<usize> {
    events
        .iter()
        .position(|e| e.kind == RunEvent::Stage { stage })
}

#[test]
fn a_full_run_streams_a_complete_well_ordered_event_log() {
    let (events, outcome) = run(Selection::Judge, true);

    // Numbered without gaps, time never runs backwards, exactly one terminal event, last.
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.seq, i as u64);
    }
    assert!(events
        .windows(2)
        .all(|w| w[0].elapsed_ms <= w[1].elapsed_ms));
    assert!(matches!(events[0].kind, RunEvent::Started { .. }));
    assert_eq!(events.iter().filter(|e| e.kind.is_terminal()).count(), 1);
    assert!(matches!(events.last().unwrap().kind, RunEvent::Stats(_)));

    // Stages in order, and every event inside its stage.
    let planning = stage_index(&events, Stage::Planning).expect("planning stage");
    let solving = stage_index(&events, Stage::Solving).expect("solving stage");
    let verifying = stage_index(&events, Stage::Verifying).expect("verifying stage");
    let done = stage_index(&events, Stage::Done).expect("done stage");
    assert!(planning < solving && solving < verifying && verifying < done);
    for (i, e) in events.iter().enumerate() {
        match &e.kind {
            RunEvent::PlanDelta { .. } | RunEvent::PlanFinished { .. } => {
                assert!(planning < i && i < solving)
            }
            RunEvent::CandidateDelta { .. } | RunEvent::CandidateFinished { .. } => {
                assert!(solving < i && i < verifying)
            }
            RunEvent::Verdict(_) | RunEvent::AnswerGroups { .. } | RunEvent::FinalAnswer { .. } => {
                assert!(verifying < i && i < done)
            }
            _ => {}
        }
    }

    // Replaying the deltas rebuilds the plan and every candidate's text exactly.
    let plan_text: String = events
        .iter()
        .filter_map(|e| match &e.kind {
            RunEvent::PlanDelta { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert!(!plan_text.is_empty());
    assert!(outcome.plan.is_some());
    for (id, completion) in outcome.candidates.iter().enumerate() {
        let (mut reasoning, mut answer) = (String::new(), String::new());
        for e in &events {
            if let RunEvent::CandidateDelta {
                candidate,
                part,
                text,
            } = &e.kind
            {
                if *candidate == id {
                    match part {
                        TextPart::Reasoning => reasoning.push_str(text),
                        TextPart::Answer => answer.push_str(text),
                    }
                }
            }
        }
        let rebuilt = if reasoning.is_empty() {
            answer
        } else {
            format!("<think>{reasoning}</think>{answer}")
        };
        assert_eq!(rebuilt.trim(), completion.text.trim(), "candidate {id}");
        let finished = events.iter().filter(|e| {
            matches!(&e.kind, RunEvent::CandidateFinished { candidate, .. } if *candidate == id)
        });
        assert_eq!(finished.count(), 1, "candidate {id} finishes once");
    }
    assert_eq!(outcome.candidates.len(), 3);

    // The final answer event agrees with the outcome.
    let final_answer = events
        .iter()
        .find_map(|e| match &e.kind {
            RunEvent::FinalAnswer {
                candidate, answer, ..
            } => Some((*candidate, answer.clone())),
            _ => None,
        })
        .expect("a final answer");
    assert_eq!(final_answer, (outcome.chosen, outcome.answer.clone()));
}

#[test]
fn without_a_plan_there_is_no_planning_stage() {
    let (events, outcome) = run(Selection::Vote, false);
    assert!(stage_index(&events, Stage::Planning).is_none());
    assert!(!events
        .iter()
        .any(|e| matches!(e.kind, RunEvent::PlanDelta { .. })));
    assert!(outcome.plan.is_none());
    assert!(matches!(events.last().unwrap().kind, RunEvent::Stats(_)));
}
