//! A run: plan → best-of-N → verification, streamed as protocol events.
//!
//! Written against [`Backend`], so the solver and the planner/judge can each be a local model
//! or a remote server. All candidates share one plan and one prompt, so a local backend decodes
//! them as rows of one batch (K2-Think plans once per candidate; one shared plan is what makes
//! batching possible and costs a third of the planning).

use std::time::Instant;

use k2_protocol::{
    CandidateId, Event, FinishReason, RunEvent, RunRequest, RunStats, SelectionMethod, Stage,
    Verdict,
};

use crate::backend::{Backend, CancelToken, Completion, GenerateOptions, SamplingParams};
use crate::error::{Result, ScaffoldError};
use crate::judge::{Entrant, JudgeReply, PairJudge};
use crate::ladder::{write_ladder, LadderInput};
use crate::prompts::{
    extract_plan, judge_messages, planner_messages, solver_messages, visible_solution,
};
use crate::select::{answer_groups, select};
use crate::think::ThinkSplitter;
use k2_answer::extract_answer;

/// Longest judge reply: an explanation and a verdict.
const JUDGE_MAX_TOKENS: usize = 512;

/// The result of a completed run, for callers that want more than the event stream.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub plan: Option<String>,
    pub candidates: Vec<Completion>,
    /// Each candidate's extracted final answer.
    pub candidate_answers: Vec<Option<String>>,
    pub chosen: CandidateId,
    pub answer: Option<String>,
    pub method: SelectionMethod,
    pub stats: RunStats,
}

pub struct Pipeline<'a> {
    pub solver: &'a dyn Backend,
    /// Writes the plan and judges candidates (K2-Think uses a second, smaller model).
    pub planner: &'a dyn Backend,
}

/// Numbers events and stamps them with the time since the run started.
struct Emitter<'a> {
    seq: u64,
    started: Instant,
    sink: &'a mut dyn FnMut(Event),
}

impl Emitter<'_> {
    fn emit(&mut self, kind: RunEvent) {
        let event = Event {
            seq: self.seq,
            elapsed_ms: self.started.elapsed().as_millis() as u64,
            kind,
        };
        self.seq += 1;
        (self.sink)(event);
    }
}

impl Pipeline<'_> {
    /// Runs `request`, sending every event to `sink`. The stream always ends with exactly one
    /// terminal event: `Stats` on success, `Cancelled`, or `Error` (also returned as `Err`).
    pub fn run(
        &self,
        request: &RunRequest,
        cancel: &CancelToken,
        sink: &mut dyn FnMut(Event),
    ) -> Result<RunOutcome> {
        self.run_with_key(request, None, cancel, sink)
    }

    /// [`Pipeline::run`] for a problem whose answer is known (an imported set's `answer`,
    /// `--answer-key`): the hint ladder is screened against it too, and its solution counts as
    /// verified only if it agrees. The key is not part of the request, which every reader of
    /// the run sees.
    pub fn run_with_key(
        &self,
        request: &RunRequest,
        answer_key: Option<&str>,
        cancel: &CancelToken,
        sink: &mut dyn FnMut(Event),
    ) -> Result<RunOutcome> {
        let mut emitter = Emitter {
            seq: 0,
            started: Instant::now(),
            sink,
        };
        emitter.emit(RunEvent::Started {
            request: request.clone(),
        });
        match self.stages(request, answer_key, cancel, &mut emitter) {
            Ok(Some(outcome)) => {
                emitter.emit(RunEvent::Stats(outcome.stats.clone()));
                Ok(outcome)
            }
            // A backend may report a cancellation as its error rather than as a completion cut
            // short: either way the user stopped the run, which is not a failure.
            Ok(None) | Err(ScaffoldError::Cancelled) => {
                emitter.emit(RunEvent::Cancelled);
                Err(ScaffoldError::Cancelled)
            }
            Err(e) => {
                emitter.emit(RunEvent::Error {
                    message: e.to_string(),
                });
                Err(e)
            }
        }
    }

    /// `Ok(None)` when cancelled.
    fn stages(
        &self,
        request: &RunRequest,
        answer_key: Option<&str>,
        cancel: &CancelToken,
        emitter: &mut Emitter<'_>,
    ) -> Result<Option<RunOutcome>> {
        let settings = &request.settings;
        if settings.candidates == 0 {
            return Err(ScaffoldError::InvalidSetting(
                "a run needs at least one candidate".into(),
            ));
        }

        let mut plan_tokens = 0;
        let plan = if settings.plan {
            emitter.emit(RunEvent::Stage {
                stage: Stage::Planning,
            });
            let options = GenerateOptions {
                sampling: SamplingParams::greedy(),
                max_tokens: settings.plan_max_tokens,
                stop: vec!["</plan>".into()],
                // Effort is the solver's: the planner writes a short plan either way.
                effort: None,
                loop_guard: settings.loop_guard,
                ..GenerateOptions::default()
            };
            let messages = planner_messages(&request.problem);
            let done = self
                .planner
                .complete(&messages, 1, &options, cancel, &mut |_, text| {
                    emitter.emit(RunEvent::PlanDelta { text: text.into() })
                })?;
            let completion = single_completion(done)?;
            if completion.finish == FinishReason::Cancelled {
                return Ok(None);
            }
            plan_tokens = completion.tokens;
            let plan = extract_plan(&completion.text);
            emitter.emit(RunEvent::PlanFinished {
                plan: plan.clone(),
                tokens: completion.tokens,
                seconds: completion.seconds,
            });
            Some(plan)
        } else {
            None
        };

        emitter.emit(RunEvent::Stage {
            stage: Stage::Solving,
        });
        let sampling = &settings.sampling;
        let options = GenerateOptions {
            sampling: SamplingParams::from(sampling),
            max_tokens: sampling.max_tokens,
            stop: Vec::new(),
            thinking_budget: settings.thinking_budget,
            loop_guard: settings.loop_guard,
            effort: settings.effort,
        };
        let messages = solver_messages(&request.problem, plan.as_deref());
        let mut splitters: Vec<ThinkSplitter> = (0..settings.candidates)
            .map(|_| ThinkSplitter::new())
            .collect();
        let solve_started = Instant::now();
        let candidates = self.solver.complete(
            &messages,
            settings.candidates,
            &options,
            cancel,
            &mut |candidate, text| {
                for (part, text) in splitters[candidate].push(text) {
                    emitter.emit(RunEvent::CandidateDelta {
                        candidate,
                        part,
                        text,
                    });
                }
            },
        )?;
        let solve_seconds = solve_started.elapsed().as_secs_f64();
        let mut views = Vec::with_capacity(candidates.len());
        for (id, (completion, splitter)) in candidates.iter().zip(&mut splitters).enumerate() {
            for (part, text) in splitter.finish() {
                emitter.emit(RunEvent::CandidateDelta {
                    candidate: id,
                    part,
                    text,
                });
            }
            let answer = extract_answer(&visible_solution(&completion.text)).map(|a| a.text);
            emitter.emit(RunEvent::CandidateFinished {
                candidate: id,
                answer: answer.clone(),
                finish: completion.finish,
                tokens: completion.tokens,
                seconds: completion.seconds,
            });
            views.push(Entrant {
                id,
                text: completion.text.clone(),
                answer,
                finish: completion.finish,
            });
        }
        if cancel.is_cancelled() {
            return Ok(None);
        }

        emitter.emit(RunEvent::Stage {
            stage: Stage::Verifying,
        });
        // The groups do not depend on the judge: shown while it works.
        emitter.emit(RunEvent::AnswerGroups {
            groups: answer_groups(&views),
        });
        let mut judge =
            BackendJudge::new(self.planner, cancel).with_loop_guard(settings.loop_guard);
        // Each verdict goes out as soon as the judge reaches it, before the next comparison.
        let mut verdicts = Vec::new();
        let selected = select(
            settings.selection,
            &request.problem,
            &views,
            &mut judge,
            &mut |v: &Verdict| {
                verdicts.push(v.clone());
                emitter.emit(RunEvent::Verdict(v.clone()))
            },
        )?;
        if cancel.is_cancelled() {
            return Ok(None);
        }
        let answer = views[selected.candidate].answer.clone();
        emitter.emit(RunEvent::FinalAnswer {
            candidate: selected.candidate,
            answer: answer.clone(),
            method: selected.method,
        });
        let mut hint_tokens = 0;
        if settings.hints {
            emitter.emit(RunEvent::Stage {
                stage: Stage::Hinting,
            });
            let input = LadderInput {
                problem: &request.problem,
                entrants: &views,
                selected: &selected,
                verdicts: &verdicts,
                answer_key,
                loop_guard: settings.loop_guard,
                shared_plan: k2_answer::check::plan_is_shared(plan.as_deref()),
            };
            hint_tokens = write_ladder(self.planner, &input, cancel, &mut |hint| {
                emitter.emit(RunEvent::Hint(hint))
            })?;
            if cancel.is_cancelled() {
                return Ok(None);
            }
        }
        emitter.emit(RunEvent::Stage { stage: Stage::Done });

        let generated: usize = candidates.iter().map(|c| c.tokens).sum();
        let stats = RunStats {
            prompt_tokens: candidates.first().map_or(0, |c| c.prompt_tokens),
            generated_tokens: generated,
            plan_tokens,
            judge_tokens: judge.tokens,
            hint_tokens,
            wall_seconds: emitter.started.elapsed().as_secs_f64(),
            decode_tokens_per_s: if solve_seconds > 0.0 {
                generated as f64 / solve_seconds
            } else {
                0.0
            },
            acceptance_rate: acceptance_rate(&candidates),
            tokens_per_pass: tokens_per_pass(&candidates),
        };
        Ok(Some(RunOutcome {
            plan,
            candidate_answers: views.iter().map(|v| v.answer.clone()).collect(),
            candidates,
            chosen: selected.candidate,
            answer,
            method: selected.method,
            stats,
        }))
    }
}

/// Accepted over drafted tokens of all candidates; `None` when nothing was drafted.
fn acceptance_rate(candidates: &[Completion]) -> Option<f64> {
    let drafted: usize = candidates.iter().map(|c| c.drafted_tokens).sum();
    let accepted: usize = candidates.iter().map(|c| c.accepted_draft_tokens).sum();
    (drafted > 0).then(|| accepted as f64 / drafted as f64)
}

/// Tokens per solver pass over all candidates, when speculation drafted anything.
fn tokens_per_pass(candidates: &[Completion]) -> Option<f64> {
    acceptance_rate(candidates)?;
    let tokens: usize = candidates.iter().map(|c| c.tokens).sum();
    let passes: usize = candidates.iter().map(|c| c.target_passes).sum();
    (passes > 0).then(|| tokens as f64 / passes as f64)
}

fn single_completion(mut completions: Vec<Completion>) -> Result<Completion> {
    if completions.is_empty() {
        return Err(ScaffoldError::InvalidSetting(
            "the backend returned no completion".into(),
        ));
    }
    Ok(completions.swap_remove(0))
}

/// The judge as a backend call: greedy, short, one reply.
pub struct BackendJudge<'a> {
    backend: &'a dyn Backend,
    cancel: &'a CancelToken,
    loop_guard: bool,
    /// Tokens generated by all of this judge's replies so far.
    pub tokens: usize,
}

impl<'a> BackendJudge<'a> {
    pub fn new(backend: &'a dyn Backend, cancel: &'a CancelToken) -> Self {
        Self {
            backend,
            cancel,
            loop_guard: true,
            tokens: 0,
        }
    }

    /// Turns the loop guard of the judge's replies off (`false`) or on (the default).
    pub fn with_loop_guard(mut self, loop_guard: bool) -> Self {
        self.loop_guard = loop_guard;
        self
    }
}

impl PairJudge for BackendJudge<'_> {
    fn judge(&mut self, problem: &str, first: &Entrant, second: &Entrant) -> Result<JudgeReply> {
        let options = GenerateOptions {
            sampling: SamplingParams::greedy(),
            max_tokens: JUDGE_MAX_TOKENS,
            stop: Vec::new(),
            effort: None,
            loop_guard: self.loop_guard,
            ..GenerateOptions::default()
        };
        let messages = judge_messages(problem, &first.text, &second.text);
        let reply = self
            .backend
            .complete(&messages, 1, &options, self.cancel, &mut |_, _| {})?;
        let reply = single_completion(reply)?;
        self.tokens += reply.tokens;
        Ok(JudgeReply {
            raw: reply.text,
            tokens: reply.tokens,
        })
    }
}
