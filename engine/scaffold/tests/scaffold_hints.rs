//! The hint ladder of a student run: written after the answer, from the verified solution only
//! when the tutor is confident, screened against every answer (a leaking rung is rewritten, or
//! cut when the rewrite leaks too), ending with the flagged worked solution. Scripted backends
//! (the pipeline's logic, no model); the ladder on a real model is measured in BENCHMARKS.md.

use std::sync::Mutex;

use k2_protocol::{
    Event, FinishReason, Hint, HintScreen, RunEvent, RunRequest, RunView, Selection, Stage,
};
use k2_scaffold::ladder::WITHHELD_RUNG;
use k2_scaffold::{
    Backend, CancelToken, ChatMessage, Completion, GenerateOptions, Pipeline, Result,
};

/// Answers each call with the next scripted reply (the last one repeats), and keeps the
/// prompts it was given.
struct Scripted {
    replies: Vec<&'static str>,
    prompts: Mutex<Vec<String>>,
}

impl Scripted {
    fn new(replies: Vec<&'static str>) -> Self {
        Scripted {
            replies,
            prompts: Mutex::new(Vec::new()),
        }
    }
}

impl Backend for Scripted {
    fn describe(&self) -> String {
        "scripted".into()
    }
    fn complete(
        &self,
        messages: &[ChatMessage],
        n: usize,
        _: &GenerateOptions,
        _: &CancelToken,
        _: &mut dyn FnMut(usize, &str),
    ) -> Result<Vec<Completion>> {
        let mut prompts = self.prompts.lock().unwrap();
        let call = prompts.len();
        prompts.push(messages.last().unwrap().content.clone());
        Ok((0..n)
            .map(|row| {
                let i = (call + row).min(self.replies.len() - 1);
                Completion {
                    text: self.replies[i].to_owned(),
                    prompt_tokens: 3,
                    tokens: 7,
                    finish: FinishReason::Complete,
                    seconds: 0.01,
                    drafted_tokens: 0,
                    accepted_draft_tokens: 0,
                    target_passes: 7,
                }
            })
            .collect())
    }
}

const SOLUTION: &str = "Add tens and ones: 30 + 12 = 42. So \\boxed{42}.";

fn run(solver: &Scripted, writer: &Scripted, answer_key: Option<&str>) -> (Vec<Event>, RunView) {
    let mut request = RunRequest::new("What is 17 + 25?");
    request.settings.candidates = 2;
    request.settings.plan = false;
    request.settings.selection = Selection::Vote;
    request.settings.hints = true;
    let mut events = Vec::new();
    Pipeline {
        solver,
        planner: writer,
    }
    .run_with_key(&request, answer_key, &CancelToken::new(), &mut |e| {
        events.push(e)
    })
    .unwrap();
    let view = RunView::replay(&events);
    (events, view)
}

#[test]
fn a_confident_run_gets_a_screened_ladder_from_its_solution() {
    let solver = Scripted::new(vec![SOLUTION]);
    let writer = Scripted::new(vec![
        // The ladder: the second rung leaks the sum, the third the answer itself.
        "Notice: Both numbers have tens and ones.\nApproach: Add 20 + 10 + 12.\n\
Next step: Add the ones, 7 + 5, then the tens; you get 42.",
        // The rewrite of rung 2 is clean; the rewrite of rung 3 leaks again.
        "Add the tens and the ones separately.",
        "Just write 42.",
    ]);
    let (events, view) = run(&solver, &writer, None);

    let hints: Vec<&Hint> = view.hints.iter().collect();
    assert_eq!(hints.len(), 4, "{hints:#?}");
    assert_eq!(hints[0].text, "Both numbers have tens and ones.");
    assert_eq!(hints[0].screened, None);
    assert_eq!(hints[1].text, "Add the tens and the ones separately.");
    assert_eq!(hints[1].screened, Some(HintScreen::Rewritten));
    // Every sentence of rung 3 gave 42 away: withheld, and said so.
    assert_eq!(hints[2].text, WITHHELD_RUNG);
    assert_eq!(hints[2].screened, Some(HintScreen::Cut));
    assert!(hints[..3].iter().all(|h| !h.bottom_out));
    assert_eq!(
        hints.iter().map(|h| h.level).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    // The bottom-out rung is the verified worked solution, flagged.
    assert!(hints[3].bottom_out);
    assert_eq!(hints[3].text, SOLUTION);

    // The writer read the verified solution; the rewrite was told what to avoid.
    let prompts = writer.prompts.lock().unwrap();
    assert!(prompts[0].contains(SOLUTION), "{}", prompts[0]);
    assert!(prompts[1].contains("42"));

    // Hints come after the answer, inside their own stage, before the run's end.
    let kinds: Vec<&RunEvent> = events.iter().map(|e| &e.kind).collect();
    let answer_at = kinds
        .iter()
        .position(|k| matches!(k, RunEvent::FinalAnswer { .. }))
        .unwrap();
    let hinting_at = kinds
        .iter()
        .position(|k| {
            matches!(
                k,
                RunEvent::Stage {
                    stage: Stage::Hinting
                }
            )
        })
        .unwrap();
    let first_hint = kinds
        .iter()
        .position(|k| matches!(k, RunEvent::Hint(_)))
        .unwrap();
    assert!(answer_at < hinting_at && hinting_at < first_hint);
    assert!(matches!(kinds.last(), Some(RunEvent::Stats(s)) if s.hint_tokens == 7 * 3));
}

#[test]
fn without_confidence_the_writer_never_sees_a_solution_and_the_bottom_out_says_so() {
    // The two candidates disagree: the tutor is not confident.
    let solver = Scripted::new(vec![SOLUTION, "It is \\boxed{15}."]);
    let writer = Scripted::new(vec![
        "Notice: Line up the digits.\nApproach: Add column by column, 15 is wrong.",
    ]);
    let (_, view) = run(&solver, &writer, None);

    let prompts = writer.prompts.lock().unwrap();
    assert!(!prompts[0].contains("30 + 12"), "{}", prompts[0]);
    // Rung 2 named the other candidate's answer: screened against every candidate's answer.
    assert_eq!(view.hints[1].screened, Some(HintScreen::Cut));
    let bottom = view.hints.last().unwrap();
    assert!(bottom.bottom_out);
    assert!(
        bottom.text.starts_with("The tutor is not sure"),
        "{}",
        bottom.text
    );
}

#[test]
fn an_answer_key_screens_the_ladder_and_overrules_a_unanimous_wrong_answer() {
    // Both candidates agree on 15, which is wrong; the key says 42.
    let solver = Scripted::new(vec!["It is \\boxed{15}."]);
    let writer = Scripted::new(vec![
        "Notice: The total is 42 in the end.\nApproach: Add the tens first.",
        "It totals 42.",
    ]);
    let (_, view) = run(&solver, &writer, Some("42"));

    let prompts = writer.prompts.lock().unwrap();
    assert!(!prompts[0].contains("boxed{15}"), "{}", prompts[0]);
    assert_eq!(view.hints[0].text, WITHHELD_RUNG);
    assert_eq!(view.hints[1].text, "Add the tens first.");
    let bottom = view.hints.last().unwrap();
    assert!(bottom
        .text
        .contains("does not reach the problem's known answer"));
}

#[test]
fn a_run_without_hints_writes_none() {
    let solver = Scripted::new(vec![SOLUTION]);
    let writer = Scripted::new(vec!["Notice: x"]);
    let mut request = RunRequest::new("What is 17 + 25?");
    request.settings.plan = false;
    let mut view = RunView::default();
    Pipeline {
        solver: &solver,
        planner: &writer,
    }
    .run(&request, &CancelToken::new(), &mut |e| view.apply(&e))
    .unwrap();
    assert!(view.hints.is_empty());
    assert!(writer.prompts.lock().unwrap().is_empty());
}
