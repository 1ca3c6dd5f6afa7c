//! Rendering a run's events readably in a terminal. Candidates are decoded together, so their
//! texts arrive interleaved: the first candidate streams live, the others are shown in full
//! as each finishes, with a progress line meanwhile.

use std::io::IsTerminal;

use k2_protocol::{Event, FinishReason, RunEvent, SelectionMethod, Stage, TextPart};

use crate::output::print_text;

pub struct TerminalRenderer {
    texts: Vec<String>,
    tokens_seen: Vec<usize>,
    live_part: Option<TextPart>,
    styled: bool,
}

impl TerminalRenderer {
    pub fn new(candidates: usize) -> Self {
        TerminalRenderer {
            texts: vec![String::new(); candidates],
            tokens_seen: vec![0; candidates],
            live_part: None,
            styled: std::io::stdout().is_terminal(),
        }
    }

    fn heading(&self, text: &str) -> String {
        if self.styled {
            format!("\n\x1b[1m{text}\x1b[0m\n")
        } else {
            format!("\n{text}\n")
        }
    }

    fn dim(&self, text: &str) -> String {
        if self.styled {
            format!("\x1b[2m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    pub fn show(&mut self, event: &Event) {
        match &event.kind {
            RunEvent::Started { request } => {
                print_text(&self.heading(&format!("Problem: {}", request.problem)))
            }
            RunEvent::Stage { stage } => match stage {
                Stage::Planning => print_text(&self.heading("Plan")),
                Stage::Solving => print_text(&self.heading(&format!(
                    "Solution{}",
                    if self.texts.len() > 1 {
                        " 1 (live)"
                    } else {
                        ""
                    }
                ))),
                Stage::Verifying if self.texts.len() > 1 => {
                    print_text(&self.heading("Verification"))
                }
                _ => {}
            },
            RunEvent::PlanDelta { text } => print_text(&self.dim(text)),
            RunEvent::PlanFinished { .. } => print_text("\n"),
            RunEvent::CandidateDelta {
                candidate,
                part,
                text,
            } => {
                self.texts[*candidate].push_str(text);
                self.tokens_seen[*candidate] += 1;
                if *candidate == 0 {
                    if self.live_part != Some(*part)
                        && *part == TextPart::Answer
                        && self.live_part.is_some()
                    {
                        print_text("\n");
                    }
                    self.live_part = Some(*part);
                    match part {
                        TextPart::Reasoning => print_text(&self.dim(text)),
                        TextPart::Answer => print_text(text),
                    }
                } else if self.styled {
                    let progress: Vec<String> = self
                        .tokens_seen
                        .iter()
                        .enumerate()
                        .skip(1)
                        .map(|(i, n)| format!("candidate {}: {n} pieces", i + 1))
                        .collect();
                    eprint!("\r\x1b[2K[{}]\r", progress.join(", "));
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
                    eprint!("\r\x1b[2K");
                }
                if *candidate > 0 {
                    print_text(&self.heading(&format!("Solution {}", candidate + 1)));
                    print_text(&self.texts[*candidate]);
                }
                let status = match finish {
                    FinishReason::Complete => "",
                    FinishReason::MaxTokens => " — unfinished: hit --max-tokens",
                    FinishReason::ContextFull => " — unfinished: context full",
                    FinishReason::Cancelled => " — cancelled",
                };
                print_text(&self.dim(&format!(
                    "\n[candidate {}: answer {}, {tokens} tokens, {seconds:.1} s{status}]\n",
                    candidate + 1,
                    answer.as_deref().unwrap_or("none"),
                )));
            }
            RunEvent::AnswerGroups { groups } if groups.len() > 1 || self.texts.len() > 1 => {
                for g in groups {
                    let ids: Vec<String> =
                        g.candidates.iter().map(|c| (c + 1).to_string()).collect();
                    print_text(&format!("  {} ← candidates {}\n", g.answer, ids.join(", ")));
                }
            }
            RunEvent::Verdict(v) => {
                let result = match v.winner {
                    Some(w) => format!("candidate {} wins", w + 1),
                    None => "tie".into(),
                };
                print_text(&format!(
                    "  judge: {} vs {}: {result}. {}\n",
                    v.first + 1,
                    v.second + 1,
                    self.dim(&v.rationale)
                ));
            }
            RunEvent::FinalAnswer {
                candidate,
                answer,
                method,
            } => {
                let how = match method {
                    SelectionMethod::Single => String::new(),
                    SelectionMethod::Vote => {
                        format!(" (majority vote, candidate {})", candidate + 1)
                    }
                    SelectionMethod::Judge => {
                        format!(" (judge's choice, candidate {})", candidate + 1)
                    }
                    SelectionMethod::Unanimous => " (all candidates agree)".into(),
                };
                let text = match answer {
                    Some(a) => format!("Answer: {a}{how}"),
                    None => "Answer: none (no candidate gave a final answer)".into(),
                };
                print_text(&self.heading(&text));
            }
            RunEvent::Stats(s) => {
                eprintln!(
                    "[{} tokens generated at {:.1} tok/s, plan {} tokens, judge {} tokens, {:.1} s in all]",
                    s.generated_tokens, s.decode_tokens_per_s, s.plan_tokens, s.judge_tokens, s.wall_seconds
                );
                if let (Some(rate), Some(per_pass)) = (s.acceptance_rate, s.tokens_per_pass) {
                    eprintln!(
                        "[speculative: {:.0}% of drafts accepted, {per_pass:.2} tokens per pass]",
                        rate * 100.0
                    );
                }
            }
            RunEvent::Error { message } => eprintln!("error: {message}"),
            RunEvent::Cancelled => eprintln!("cancelled"),
            _ => {}
        }
    }
}
