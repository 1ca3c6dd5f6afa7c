//! Rendering a run's events readably in a terminal. Candidates are decoded together, so their
//! texts arrive interleaved: the first candidate streams live, the others are shown in full
//! as each finishes, with a progress line meanwhile.
//!
//! The renderer keeps no account of the run of its own: it folds every event into a
//! [`RunView`] (the fold the UI and replays use) and prints, per event, what the event changed.
//! What to print is an exhaustive `match` over [`RunEvent`], so a new kind of event does not
//! compile until it is given its line here (or an explicit decision to print nothing).
//!
//! Model text (and any text from a stored run) is made safe before it reaches the terminal by
//! the one sanitizer, `output::safe`: control characters, ANSI escape sequences included, are
//! printed as visible escapes; only the renderer's own styling is printed as escape codes.

use std::borrow::Cow;
use std::io::IsTerminal;

use k2_protocol::{Event, FinishReason, Hint, HintScreen, RunEvent, RunView, Stage, TextPart};

use k2_answer::card::AnswerCard;

use crate::output::{print_styled, safe};

pub struct TerminalRenderer {
    view: RunView,
    /// Candidates expected before the run's `started` event says.
    expected_candidates: usize,
    /// The part of the live candidate (the first) printed last.
    live_part: Option<TextPart>,
    styled: bool,
}

/// What one event prints: on stdout (the run's text) and stderr (progress, totals, errors).
#[derive(Debug, Default, PartialEq)]
pub struct Printed {
    pub out: String,
    pub err: String,
}

impl TerminalRenderer {
    pub fn new(candidates: usize) -> Self {
        TerminalRenderer {
            view: RunView::default(),
            expected_candidates: candidates,
            live_part: None,
            styled: std::io::stdout().is_terminal(),
        }
    }

    /// Prints what `event` changed.
    pub fn show(&mut self, event: &Event) {
        let printed = self.render(event);
        // Every untrusted part of `printed` went through `safe` as it was built.
        if !printed.out.is_empty() {
            print_styled(&printed.out);
        }
        if !printed.err.is_empty() {
            eprint!("{}", printed.err);
        }
    }

    /// Applies `event` to the run's view and answers what to print for it.
    pub fn render(&mut self, event: &Event) -> Printed {
        let plan_streamed = !self.view.plan.is_empty();
        self.view.apply(event);
        let mut p = Printed::default();
        match &event.kind {
            RunEvent::Started { request } => {
                p.out += &self.heading(&format!("Problem: {}", safe(&request.problem)));
            }
            RunEvent::Stage { stage } => match stage {
                Stage::Planning => p.out += &self.heading("Plan"),
                Stage::Solving if self.candidates() > 1 => {
                    p.out += &self.heading("Solution 1 (live)")
                }
                Stage::Solving => p.out += &self.heading("Solution"),
                Stage::Verifying if self.candidates() > 1 => p.out += &self.heading("Verification"),
                Stage::Hinting => p.out += &self.heading("Hints"),
                // One candidate has nothing to verify; the end shows in the events that follow.
                Stage::Verifying | Stage::Done => {}
            },
            RunEvent::PlanDelta { text } => p.out += &self.dim(&safe(text)),
            RunEvent::PlanFinished { plan, .. } => {
                // A plan that was not streamed (a planner answering in one piece) shows whole.
                if !plan_streamed && !plan.is_empty() {
                    p.out += &self.dim(&safe(plan));
                }
                p.out.push('\n');
            }
            RunEvent::CandidateDelta {
                candidate,
                part,
                text,
            } => {
                if *candidate == 0 {
                    if self.live_part == Some(TextPart::Reasoning) && *part == TextPart::Answer {
                        p.out.push('\n');
                    }
                    self.live_part = Some(*part);
                    p.out += &match part {
                        TextPart::Reasoning => self.dim(&safe(text)),
                        TextPart::Answer => safe(text).into_owned(),
                    };
                } else if self.styled {
                    p.err += &format!("\r\x1b[2K[{}]\r", self.progress());
                }
            }
            RunEvent::CandidateFinished {
                candidate,
                answer,
                finish,
                tokens,
                seconds,
            } => {
                if self.styled {
                    p.err += "\r\x1b[2K";
                }
                if *candidate > 0 {
                    let view = &self.view.candidates[*candidate];
                    p.out += &self.heading(&format!("Solution {}", candidate + 1));
                    p.out += &self.dim(&safe(&view.reasoning));
                    if !view.reasoning.is_empty() && !view.answer_text.is_empty() {
                        p.out.push('\n');
                    }
                    p.out += &safe(&view.answer_text);
                }
                let status = match finish {
                    FinishReason::Complete => "",
                    FinishReason::MaxTokens => " — unfinished: hit its token limit",
                    FinishReason::ContextFull => " — unfinished: context full",
                    FinishReason::Cancelled => " — cancelled",
                    FinishReason::Loop => " — unfinished: looped (repeated itself, stopped)",
                };
                p.out += &self.dim(&format!(
                    "\n[candidate {}: answer {}, {tokens} tokens, {seconds:.1} s{status}]\n",
                    candidate + 1,
                    answer.as_deref().map_or(Cow::Borrowed("none"), safe),
                ));
            }
            RunEvent::AnswerGroups { groups } => {
                // With one candidate and one answer, the final answer says it all.
                if groups.len() > 1 || self.candidates() > 1 {
                    for g in groups {
                        let ids: Vec<String> =
                            g.candidates.iter().map(|c| (c + 1).to_string()).collect();
                        p.out +=
                            &format!("  {} ← candidates {}\n", safe(&g.answer), ids.join(", "));
                    }
                }
            }
            RunEvent::Verdict(v) => {
                let result = match v.winner {
                    Some(w) => format!("candidate {} wins", w + 1),
                    None => "tie".into(),
                };
                p.out += &format!(
                    "  judge: {} vs {}: {result}. {}\n",
                    v.first + 1,
                    v.second + 1,
                    self.dim(&safe(&v.rationale))
                );
            }
            RunEvent::FinalAnswer { answer, .. } => {
                // The card's words, as the UI shows them (k2_answer::card): what the answer is
                // called (a best guess where the tutor is unsure), how it was chosen, the vote
                // as counted and how sure the tutor is.
                let card = AnswerCard::from_view(&self.view);
                let label = card.as_ref().map_or("Answer", AnswerCard::answer_label);
                p.out += &self.heading(&match answer {
                    Some(a) => format!("{label}: {}", safe(a)),
                    None => "Answer: none (no candidate gave a final answer)".into(),
                });
                if let Some(card) = &card {
                    let vote = card.vote.as_ref().map(|v| format!("Vote: {v}"));
                    for line in [Some(&card.method), vote.as_ref(), Some(&card.confidence)]
                        .into_iter()
                        .flatten()
                    {
                        p.out += &format!("{}\n", safe(line));
                    }
                }
            }
            RunEvent::Hint(hint) => p.out += &self.hint(hint),
            RunEvent::Stats(s) => {
                p.err += &format!(
                    "[{} tokens generated at {:.1} tok/s, plan {} tokens, judge {} tokens, {:.1} s in all]\n",
                    s.generated_tokens, s.decode_tokens_per_s, s.plan_tokens, s.judge_tokens, s.wall_seconds
                );
                if let (Some(rate), Some(per_pass)) = (s.acceptance_rate, s.tokens_per_pass) {
                    p.err += &format!(
                        "[speculative: {:.0}% of drafts accepted, {per_pass:.2} tokens per pass]\n",
                        rate * 100.0
                    );
                }
            }
            RunEvent::Error { message } => p.err += &format!("error: {}\n", safe(message)),
            RunEvent::Cancelled => p.err += "cancelled\n",
        }
        p
    }

    /// A rung of the hint ladder: the CLI shows the whole ladder, the bottom-out rung marked.
    fn hint(&self, hint: &Hint) -> String {
        let label = if hint.bottom_out {
            "Worked solution (gives the answer away)".to_string()
        } else {
            format!("Hint {}", hint.level)
        };
        let screened = match hint.screened {
            None => "",
            Some(HintScreen::Rewritten) => " (rewritten: it gave an answer away)",
            Some(HintScreen::Cut) => " (shortened: it gave an answer away)",
        };
        format!(
            "{}{}\n{}\n\n",
            label,
            self.dim(screened),
            safe(hint.text.trim())
        )
    }

    /// The run's candidates: as its request says once started, else as expected.
    fn candidates(&self) -> usize {
        match &self.view.request {
            Some(request) => request.settings.candidates.max(self.view.candidates.len()),
            None => self.expected_candidates,
        }
    }

    /// Where the candidates after the live one are.
    fn progress(&self) -> String {
        let states: Vec<String> = self
            .view
            .candidates
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, c)| {
                let state = if c.finished.is_some() {
                    "done"
                } else if !c.answer_text.is_empty() {
                    "answering"
                } else {
                    "thinking"
                };
                let kb = (c.reasoning.len() + c.answer_text.len()) as f64 / 1000.0;
                format!("candidate {}: {state}, {kb:.1} kB", i + 1)
            })
            .collect();
        states.join(", ")
    }

    fn heading(&self, text: &str) -> String {
        if self.styled {
            format!("\n\x1b[1m{text}\x1b[0m\n")
        } else {
            format!("\n{text}\n")
        }
    }

    fn dim(&self, text: &str) -> String {
        if self.styled && !text.is_empty() {
            format!("\x1b[2m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use k2_protocol::{
        AnswerGroup, RunRequest, RunStats, SelectionMethod, Stage, TextPart, Verdict,
    };

    use super::*;

    /// One event of every kind, in a run's order. The `match` makes a new kind of event fail
    /// to compile here until it is added to the list (and so rendered in the test below).
    fn one_of_each_kind() -> Vec<RunEvent> {
        let mut request = RunRequest::new("What is \x1b[31m6 * 7\x1b[0m?");
        request.settings.candidates = 2;
        let events = vec![
            RunEvent::Started { request },
            RunEvent::Stage {
                stage: Stage::Planning,
            },
            RunEvent::PlanDelta {
                text: "Multiply.".into(),
            },
            RunEvent::PlanFinished {
                plan: "Multiply.".into(),
                tokens: 2,
                seconds: 0.1,
            },
            RunEvent::CandidateDelta {
                candidate: 1,
                part: TextPart::Reasoning,
                text: "six sevens".into(),
            },
            RunEvent::CandidateDelta {
                candidate: 0,
                part: TextPart::Answer,
                text: "$\\boxed{42}$\x1b]0;pwned\x07".into(),
            },
            RunEvent::CandidateFinished {
                candidate: 1,
                answer: Some("42".into()),
                finish: FinishReason::MaxTokens,
                tokens: 3,
                seconds: 0.2,
            },
            RunEvent::AnswerGroups {
                groups: vec![AnswerGroup {
                    answer: "42".into(),
                    candidates: vec![0, 1],
                }],
            },
            RunEvent::Verdict(Verdict {
                first: 0,
                second: 1,
                winner: None,
                rationale: "Both multiply.".into(),
            }),
            RunEvent::FinalAnswer {
                candidate: 0,
                answer: Some("42".into()),
                method: SelectionMethod::Unanimous,
            },
            RunEvent::Hint(Hint {
                level: 1,
                text: "Notice the \x1b]52;c;cHdu\x07 angles.".into(),
                bottom_out: false,
                screened: Some(HintScreen::Cut),
            }),
            RunEvent::Stats(RunStats::default()),
            RunEvent::Error {
                message: "disk \x1b[2Jfull".into(),
            },
            RunEvent::Cancelled,
        ];
        let mut seen = [false; 13];
        for event in &events {
            let kind = match event {
                RunEvent::Started { .. } => 0,
                RunEvent::Stage { .. } => 1,
                RunEvent::PlanDelta { .. } => 2,
                RunEvent::PlanFinished { .. } => 3,
                RunEvent::CandidateDelta { .. } => 4,
                RunEvent::CandidateFinished { .. } => 5,
                RunEvent::AnswerGroups { .. } => 6,
                RunEvent::Verdict(_) => 7,
                RunEvent::FinalAnswer { .. } => 8,
                RunEvent::Hint(_) => 12,
                RunEvent::Stats(_) => 9,
                RunEvent::Error { .. } => 10,
                RunEvent::Cancelled => 11,
            };
            seen[kind] = true;
        }
        assert!(seen.iter().all(|&s| s), "one event of every kind");
        events
    }

    fn renderer() -> TerminalRenderer {
        TerminalRenderer {
            styled: false,
            ..TerminalRenderer::new(1)
        }
    }

    fn render_all(events: &[RunEvent]) -> Vec<Printed> {
        let mut renderer = renderer();
        events
            .iter()
            .enumerate()
            .map(|(seq, kind)| {
                renderer.render(&Event {
                    seq: seq as u64,
                    elapsed_ms: 0,
                    kind: kind.clone(),
                })
            })
            .collect()
    }

    #[test]
    fn every_kind_of_event_is_rendered() {
        let events = one_of_each_kind();
        let printed = render_all(&events);
        for (event, printed) in events.iter().zip(&printed) {
            let silent = matches!(event, RunEvent::CandidateDelta { candidate: 1, .. });
            assert_eq!(
                printed.out.is_empty() && printed.err.is_empty(),
                silent,
                "{} printed {printed:?}",
                event.kind_name()
            );
        }
        let out: String = printed.iter().map(|p| p.out.as_str()).collect();
        let err: String = printed.iter().map(|p| p.err.as_str()).collect();
        assert!(out.contains("\nProblem: What is"), "{out}");
        assert!(out.contains("\nPlan\nMultiply.\n"), "{out}");
        assert!(out.contains("\nSolution 2\nsix sevens\n[candidate 2: answer 42, 3 tokens, 0.2 s — unfinished: hit its token limit]"), "{out}");
        assert!(out.contains("  42 ← candidates 1, 2\n"), "{out}");
        assert!(out.contains("judge: 1 vs 2: tie. Both multiply."), "{out}");
        // Only candidate 2 ended here, cut off: nothing checked the answer.
        assert!(
            out.contains("\nBest guess, not verified: 42\nCandidate 1: all 2 agree"),
            "{out}"
        );
        assert!(err.contains("tokens generated at"), "{err}");
        assert!(err.contains("error: disk"), "{err}");
        assert!(err.ends_with("cancelled\n"), "{err}");
    }

    /// A run of three candidates that finished with `answers`, chosen as `method` chose.
    fn three_finished(answers: [&str; 3], method: SelectionMethod) -> String {
        let mut request = RunRequest::new("What is 6 * 7?");
        request.settings.candidates = 3;
        let mut events = vec![RunEvent::Started { request }];
        let mut groups: Vec<AnswerGroup> = Vec::new();
        for (candidate, answer) in answers.iter().enumerate() {
            events.push(RunEvent::CandidateFinished {
                candidate,
                answer: Some((*answer).into()),
                finish: FinishReason::Complete,
                tokens: 3,
                seconds: 0.2,
            });
            match groups.iter_mut().find(|g| g.answer == *answer) {
                Some(group) => group.candidates.push(candidate),
                None => groups.push(AnswerGroup {
                    answer: (*answer).into(),
                    candidates: vec![candidate],
                }),
            }
        }
        events.push(RunEvent::AnswerGroups { groups });
        events.push(RunEvent::FinalAnswer {
            candidate: 0,
            answer: Some(answers[0].into()),
            method,
        });
        render_all(&events).iter().map(|p| p.out.as_str()).collect()
    }

    // Issue 27: the terminal said "(majority vote, candidate 1)" without the count, and an
    // answer the candidates disagreed on as plainly as a checked one.
    #[test]
    fn the_final_answer_says_the_vote_and_the_confidence_as_the_card_does() {
        let split = three_finished(["42", "42", "41"], SelectionMethod::Vote);
        assert!(
            split.ends_with(
                "\nBest guess, not verified: 42\nCandidate 1, by vote: 2 of 3 agree\n\
                 Vote: 2 of 3 agree\nUnsure: the solutions disagree — compare with your teacher\n"
            ),
            "{split}"
        );
        let all = three_finished(["42", "42", "42"], SelectionMethod::Unanimous);
        assert!(
            all.ends_with(
                "\nAnswer: 42\nCandidate 1: all 3 agree, nothing to judge\nVote: 3 of 3 agree\n\
                 Confident: all 3 finished solutions agree\n"
            ),
            "{all}"
        );
    }

    #[test]
    fn model_text_cannot_reach_the_terminal_as_control_characters() {
        let printed = render_all(&one_of_each_kind());
        for p in &printed {
            for text in [&p.out, &p.err] {
                assert!(
                    !text.chars().any(|c| c.is_control() && c != '\n'),
                    "{text:?}"
                );
            }
        }
        let out: String = printed.iter().map(|p| p.out.as_str()).collect();
        assert!(out.contains("What is \\u{1b}[31m6 * 7\\u{1b}[0m?"), "{out}");
        assert!(out.contains("$\\boxed{42}$\\u{1b}]0;pwned\\u{7}"), "{out}");
    }

    #[test]
    fn the_live_candidate_streams_its_reasoning_then_its_answer() {
        let events = [
            RunEvent::Stage {
                stage: Stage::Solving,
            },
            RunEvent::CandidateDelta {
                candidate: 0,
                part: TextPart::Reasoning,
                text: "think".into(),
            },
            RunEvent::CandidateDelta {
                candidate: 0,
                part: TextPart::Answer,
                text: "so 2".into(),
            },
            RunEvent::CandidateDelta {
                candidate: 0,
                part: TextPart::Answer,
                text: ".".into(),
            },
        ];
        let out: String = render_all(&events).iter().map(|p| p.out.clone()).collect();
        assert_eq!(out, "\nSolution\nthink\nso 2.");
    }
}
