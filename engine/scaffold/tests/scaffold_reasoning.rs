//! A run with reasoning models of every family: the effort reaches the solver (and only the
//! solver), and reasoning streamed in K2 Horizon's tags, or closed by another family's tag,
//! is shown as reasoning, never as the answer, and never voted on. Scripted backends, no model.

use std::sync::Mutex;

use k2_protocol::{Effort, FinishReason, RunRequest, RunView, Selection};
use k2_scaffold::{
    Backend, CancelToken, ChatMessage, Completion, GenerateOptions, Pipeline, Result,
};

/// Streams each candidate's scripted text in small pieces (tags cut across deltas) and
/// remembers the effort it was asked for.
struct Scripted {
    texts: Vec<&'static str>,
    efforts: Mutex<Vec<Option<Effort>>>,
}

impl Scripted {
    fn new(texts: Vec<&'static str>) -> Self {
        Scripted {
            texts,
            efforts: Mutex::new(Vec::new()),
        }
    }
}

impl Backend for Scripted {
    fn describe(&self) -> String {
        "scripted".into()
    }
    fn complete(
        &self,
        _: &[ChatMessage],
        n: usize,
        options: &GenerateOptions,
        _: &CancelToken,
        on_delta: &mut dyn FnMut(usize, &str),
    ) -> Result<Vec<Completion>> {
        self.efforts.lock().unwrap().push(options.effort);
        Ok((0..n)
            .map(|row| {
                let text = self.texts[row % self.texts.len()];
                let chars: Vec<char> = text.chars().collect();
                for piece in chars.chunks(3) {
                    on_delta(row, &piece.iter().collect::<String>());
                }
                Completion {
                    text: text.to_owned(),
                    prompt_tokens: 3,
                    tokens: 5,
                    finish: FinishReason::Complete,
                    seconds: 0.01,
                    drafted_tokens: 0,
                    accepted_draft_tokens: 0,
                    target_passes: 5,
                }
            })
            .collect())
    }
}

#[test]
fn reasoning_of_every_family_is_split_out_and_effort_reaches_only_the_solver() {
    // Each reasoning trace boxes a wrong answer: were it read as the answer, the vote would
    // pick 5.
    let solver = Scripted::new(vec![
        "<ifm|think_fast>maybe \\boxed{5}</ifm|think_fast>So \\boxed{4}.",
        "<ifm|think_faster>maybe \\boxed{5}</ifm|think>So \\boxed{4}.",
        "<think>maybe \\boxed{5}</think>So \\boxed{4}.",
    ]);
    let planner = Scripted::new(vec!["<plan>Add.</plan>"]);
    let mut request = RunRequest::new("2 + 2?");
    request.settings.candidates = 3;
    request.settings.selection = Selection::Vote;
    request.settings.effort = Some(Effort::Medium);

    let mut view = RunView::default();
    let outcome = Pipeline {
        solver: &solver,
        planner: &planner,
    }
    .run(&request, &CancelToken::new(), &mut |event| {
        view.apply(&event)
    })
    .unwrap();

    assert_eq!(outcome.answer.as_deref(), Some("4"));
    assert_eq!(outcome.candidate_answers, vec![Some("4".to_owned()); 3]);
    for candidate in &view.candidates {
        assert_eq!(candidate.reasoning, "maybe \\boxed{5}");
        assert_eq!(candidate.answer_text, "So \\boxed{4}.");
    }
    assert_eq!(*solver.efforts.lock().unwrap(), [Some(Effort::Medium)]);
    assert!(planner.efforts.lock().unwrap().iter().all(Option::is_none));
}
