//! Verdicts stream live: each one reaches the caller as soon as the judge decides it, not
//! after selection ends. Scripted backends and judges, no model.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use k2_protocol::{Event, FinishReason, RunEvent, RunRequest, Selection, SelectionMethod, Stage};
use k2_protocol::{RunView, Verdict};
use k2_scaffold::judge::{Entrant, JudgeReply, PairJudge};
use k2_scaffold::select::select;
use k2_scaffold::{
    Backend, CancelToken, ChatMessage, Completion, GenerateOptions, Pipeline, Result,
};

fn completion(text: &str) -> Completion {
    Completion {
        text: text.to_owned(),
        prompt_tokens: 7,
        tokens: 5,
        finish: FinishReason::Complete,
        seconds: 0.01,
        drafted_tokens: 0,
        accepted_draft_tokens: 0,
        target_passes: 5,
    }
}

/// Solves with one fixed answer per candidate.
struct Solver(Vec<&'static str>);

impl Backend for Solver {
    fn describe(&self) -> String {
        "scripted solver".into()
    }
    fn complete(
        &self,
        _: &[ChatMessage],
        n: usize,
        _: &GenerateOptions,
        _: &CancelToken,
        on_delta: &mut dyn FnMut(usize, &str),
    ) -> Result<Vec<Completion>> {
        assert_eq!(n, self.0.len());
        Ok(self
            .0
            .iter()
            .enumerate()
            .map(|(i, answer)| {
                let text = format!("<think>work {i}</think>So $\\boxed{{{answer}}}$.");
                on_delta(i, &text);
                completion(&text)
            })
            .collect())
    }
}

/// The judge as a backend: always "tie", and at every call records how many verdict events
/// the run's sink had received by then.
struct Judge {
    events: Arc<Mutex<Vec<Event>>>,
    seen_at_call: Mutex<Vec<usize>>,
}

impl Backend for Judge {
    fn describe(&self) -> String {
        "scripted judge".into()
    }
    fn complete(
        &self,
        _: &[ChatMessage],
        n: usize,
        _: &GenerateOptions,
        _: &CancelToken,
        _: &mut dyn FnMut(usize, &str),
    ) -> Result<Vec<Completion>> {
        assert_eq!(n, 1);
        let verdicts = self
            .events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| matches!(e.kind, RunEvent::Verdict(_)))
            .count();
        self.seen_at_call.lock().unwrap().push(verdicts);
        Ok(vec![completion(
            r#"{"explanation": "Both look fine.", "verdict": "tie"}"#,
        )])
    }
}

#[test]
fn the_pipeline_emits_each_verdict_before_the_next_judge_call() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let solver = Solver(vec!["5", "7", "9"]);
    let judge = Judge {
        events: events.clone(),
        seen_at_call: Mutex::new(Vec::new()),
    };
    let pipeline = Pipeline {
        solver: &solver,
        planner: &judge,
    };
    let mut request = RunRequest::new("PROBLEM");
    request.settings.plan = false;
    request.settings.selection = Selection::Judge;
    request.settings.candidates = 3;
    let sink = events.clone();
    let outcome = pipeline
        .run(&request, &CancelToken::new(), &mut |e| {
            sink.lock().unwrap().push(e)
        })
        .expect("the run completes");
    assert_eq!(outcome.method, SelectionMethod::Judge);

    // Two comparisons (0 vs 1, then 0 vs 2), each asked in both orders. The second
    // comparison's calls already see the first comparison's verdict.
    assert_eq!(*judge.seen_at_call.lock().unwrap(), vec![0, 0, 1, 1]);

    // Order: Verifying, AnswerGroups, the verdicts, FinalAnswer, Done, Stats.
    let events = events.lock().unwrap();
    let tail: Vec<&str> = events
        .iter()
        .skip_while(|e| {
            e.kind
                != RunEvent::Stage {
                    stage: Stage::Verifying,
                }
        })
        .map(|e| e.kind.kind_name())
        .collect();
    assert_eq!(
        tail,
        [
            "stage",
            "answer_groups",
            "verdict",
            "verdict",
            "final_answer",
            "stage",
            "stats"
        ]
    );

    // The view folds verdicts one at a time: after the first verdict event it holds one.
    let first = events
        .iter()
        .position(|e| matches!(e.kind, RunEvent::Verdict(_)))
        .unwrap();
    let mut view = RunView::default();
    for e in &events[..=first] {
        view.apply(e);
    }
    assert_eq!(view.verdicts.len(), 1);
    assert_eq!(
        view.groups.len(),
        3,
        "groups are shown while the judge works"
    );
    assert!(view.final_answer.is_none());
}

/// A `PairJudge` that records how many verdicts `select`'s callback had received at each call.
struct Counting {
    delivered: Rc<RefCell<Vec<Verdict>>>,
    seen_at_call: Vec<usize>,
}

impl PairJudge for Counting {
    fn judge(&mut self, _: &str, a: &Entrant, b: &Entrant) -> Result<JudgeReply> {
        self.seen_at_call.push(self.delivered.borrow().len());
        // Prefers "9" in either order: an order-consistent judge.
        let pick = if a.answer.as_deref() == Some("9") {
            "A"
        } else if b.answer.as_deref() == Some("9") {
            "B"
        } else {
            "tie"
        };
        Ok(JudgeReply {
            raw: format!(r#"{{"explanation": "x", "verdict": "{pick}"}}"#),
            tokens: 3,
        })
    }
}

#[test]
fn select_delivers_each_verdict_before_the_next_judge_call() {
    let candidates: Vec<Entrant> = ["5", "7", "9", "11"]
        .iter()
        .enumerate()
        .map(|(id, a)| Entrant {
            id,
            text: format!("\\boxed{{{a}}}"),
            answer: Some((*a).to_owned()),
            finish: FinishReason::Complete,
        })
        .collect();
    let delivered = Rc::new(RefCell::new(Vec::new()));
    let mut judge = Counting {
        delivered: delivered.clone(),
        seen_at_call: Vec::new(),
    };
    let selected = select(
        Selection::Judge,
        "P",
        &candidates,
        &mut judge,
        &mut |v: &Verdict| delivered.borrow_mut().push(v.clone()),
    )
    .unwrap();
    assert_eq!(selected.candidate, 2);
    assert_eq!(judge.seen_at_call, vec![0, 0, 1, 1, 2, 2]);
    let winners: Vec<_> = delivered.borrow().iter().map(|v| v.winner).collect();
    assert_eq!(winners, vec![None, Some(2), Some(2)]);
}
