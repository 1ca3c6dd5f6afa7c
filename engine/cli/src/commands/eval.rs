//! `k2 eval`: the evaluation harness. Runs the scaffold in one or more modes over a problem
//! set (the JSONL format of shared/data: `id`, `problem`, `answer`), grades final answers with
//! the engine's equivalence checker, and prints accuracy (with a 95% Wilson interval), mean
//! tokens and wall time per mode: the shape of K2-Think's ablation table.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args as ClapArgs;
use indicatif::{ProgressBar, ProgressStyle};
use k2_engine::answer::equivalent;
use k2_engine::generate::CancelToken;
use k2_engine::scaffold::judge::{CandidateView, JudgeReply, PairJudge};
use k2_engine::scaffold::pipeline::{Pipeline, RunOutcome};
use k2_engine::scaffold::select::select;
use k2_protocol::{FinishReason, RunRequest, RunSettings, Selection};
use serde::{Deserialize, Serialize};

use crate::load::ModelArgs;
use crate::run_setup::{load_backends, ScaffoldArgs};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One candidate, no plan: the plain model.
    Single,
    /// One candidate with a plan.
    Plan,
    /// Best-of-N without a plan.
    Bon,
    /// Plan and best-of-N: the full scaffold.
    #[value(name = "plan+bon")]
    #[serde(rename = "plan+bon")]
    PlanBon,
}

impl Mode {
    fn settings(self, base: &RunSettings) -> RunSettings {
        let (plan, best_of) = match self {
            Mode::Single => (false, false),
            Mode::Plan => (true, false),
            Mode::Bon => (false, true),
            Mode::PlanBon => (true, true),
        };
        RunSettings {
            plan,
            candidates: if best_of { base.candidates.max(2) } else { 1 },
            ..base.clone()
        }
    }
}

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Problem set: JSON lines with `id`, `problem` and `answer`.
    #[arg(long)]
    pub data: PathBuf,
    /// Modes to run (repeatable): single, plan, bon, plan+bon.
    #[arg(long, value_enum, required = true)]
    pub mode: Vec<Mode>,
    /// Only the first N problems.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Write every item's result as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub scaffold: ScaffoldArgs,
}

#[derive(Deserialize)]
struct Problem {
    id: String,
    problem: String,
    answer: String,
}

#[derive(Serialize)]
struct ItemResult {
    id: String,
    expected: String,
    predicted: Option<String>,
    correct: bool,
    /// Whether the majority vote over the candidates' answers is correct (best-of-N modes).
    vote_correct: bool,
    /// Whether any candidate's answer is correct (pass@N).
    any_correct: bool,
    candidates: Vec<CandidateResult>,
    plan_tokens: usize,
    judge_tokens: usize,
    seconds: f64,
}

#[derive(Serialize)]
struct CandidateResult {
    answer: Option<String>,
    tokens: usize,
    finish: FinishReason,
}

#[derive(Serialize)]
struct ModeResult {
    mode: Mode,
    selection: Selection,
    problems: usize,
    accuracy: f64,
    ci95: (f64, f64),
    vote_accuracy: f64,
    pass_at_n: f64,
    mean_candidate_tokens: f64,
    mean_seconds: f64,
    items: Vec<ItemResult>,
}

pub fn run(args: Args) -> Result<()> {
    let problems = read_problems(&args.data, args.limit)?;
    let backends = load_backends(&args.model, args.scaffold.planner.as_deref(), false)?;
    let pipeline = Pipeline {
        solver: &backends.solver,
        planner: &backends.planner,
    };
    let base = args.scaffold.settings();
    let bar = progress_bar((problems.len() * args.mode.len()) as u64);
    let cancel = CancelToken::new();
    let mut results = Vec::new();
    for &mode in &args.mode {
        let settings = mode.settings(&base);
        let mut items = Vec::with_capacity(problems.len());
        for problem in &problems {
            bar.set_message(format!("{mode:?} {}", problem.id));
            let request = RunRequest {
                problem: problem.problem.clone(),
                settings: settings.clone(),
            };
            let started = Instant::now();
            let outcome = pipeline
                .run(&request, &cancel, &mut |_| {})
                .with_context(|| format!("problem {}", problem.id))?;
            let item = grade(problem, &outcome, started.elapsed().as_secs_f64());
            if bar.is_hidden() {
                // No terminal (a background run, CI): one line per problem instead of a bar.
                eprintln!(
                    "{}/{} {} {}: {} (expected {}, got {}), {} tokens, {:.1} s",
                    bar.position() + 1,
                    bar.length().unwrap_or(0),
                    serde_json::to_value(mode)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default(),
                    item.id,
                    if item.correct { "correct" } else { "wrong" },
                    item.expected,
                    item.predicted.as_deref().unwrap_or("none"),
                    item.candidates.iter().map(|c| c.tokens).sum::<usize>(),
                    item.seconds
                );
            }
            items.push(item);
            bar.inc(1);
        }
        results.push(summarize(mode, settings.selection, items));
    }
    bar.finish_and_clear();
    print_table(&args, &results);
    if let Some(out) = &args.out {
        let report = serde_json::json!({
            "data": args.data,
            "solver": backends.solver.model().info.name,
            "planner": backends.planner.model().info.name,
            "settings": base,
            "modes": results,
        });
        std::fs::write(out, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", out.display()))?;
        eprintln!("results written to {}", out.display());
    }
    Ok(())
}

fn read_problems(path: &PathBuf, limit: Option<usize>) -> Result<Vec<Problem>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut problems = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let p: Problem = serde_json::from_str(line).with_context(|| {
            format!(
                "{}:{}: expected {{\"id\", \"problem\", \"answer\"}}",
                path.display(),
                i + 1
            )
        })?;
        problems.push(p);
    }
    if let Some(n) = limit {
        problems.truncate(n);
    }
    if problems.is_empty() {
        bail!("{} has no problems", path.display());
    }
    Ok(problems)
}

fn grade(problem: &Problem, outcome: &RunOutcome, seconds: f64) -> ItemResult {
    let is_right =
        |a: &Option<String>| a.as_deref().is_some_and(|a| equivalent(a, &problem.answer));
    let candidates: Vec<CandidateResult> = outcome
        .candidates
        .iter()
        .zip(&outcome.candidate_answers)
        .map(|(c, answer)| CandidateResult {
            answer: answer.clone(),
            tokens: c.tokens,
            finish: c.finish,
        })
        .collect();
    let vote = vote_answer(problem, outcome);
    ItemResult {
        id: problem.id.clone(),
        expected: problem.answer.clone(),
        correct: is_right(&outcome.answer),
        predicted: outcome.answer.clone(),
        vote_correct: is_right(&vote),
        any_correct: candidates.iter().any(|c| is_right(&c.answer)),
        candidates,
        plan_tokens: outcome.stats.plan_tokens,
        judge_tokens: outcome.stats.judge_tokens,
        seconds,
    }
}

/// The answer a plain majority vote would have chosen, to compare strategies from one run.
fn vote_answer(problem: &Problem, outcome: &RunOutcome) -> Option<String> {
    let views: Vec<CandidateView> = outcome
        .candidates
        .iter()
        .zip(&outcome.candidate_answers)
        .enumerate()
        .map(|(id, (c, answer))| CandidateView {
            id,
            text: c.text.clone(),
            answer: answer.clone(),
            finished: c.finish == FinishReason::Complete,
        })
        .collect();
    let selected = select(
        Selection::Vote,
        &problem.problem,
        &views,
        &mut NoJudge,
        &mut |_| {},
    )
    .ok()?;
    views[selected.candidate].answer.clone()
}

/// Voting never asks a judge.
struct NoJudge;

impl PairJudge for NoJudge {
    fn judge(
        &mut self,
        _: &str,
        _: &CandidateView,
        _: &CandidateView,
    ) -> k2_engine::Result<JudgeReply> {
        Err(k2_engine::EngineError::InvalidSetting(
            "a vote needs no judge".into(),
        ))
    }
}

fn summarize(mode: Mode, selection: Selection, items: Vec<ItemResult>) -> ModeResult {
    let n = items.len();
    let rate =
        |f: &dyn Fn(&ItemResult) -> bool| items.iter().filter(|i| f(i)).count() as f64 / n as f64;
    let accuracy = rate(&|i| i.correct);
    let candidate_tokens: Vec<usize> = items
        .iter()
        .flat_map(|i| i.candidates.iter().map(|c| c.tokens))
        .collect();
    ModeResult {
        mode,
        selection,
        problems: n,
        accuracy,
        ci95: wilson_interval(accuracy, n),
        vote_accuracy: rate(&|i| i.vote_correct),
        pass_at_n: rate(&|i| i.any_correct),
        mean_candidate_tokens: candidate_tokens.iter().sum::<usize>() as f64
            / candidate_tokens.len().max(1) as f64,
        mean_seconds: items.iter().map(|i| i.seconds).sum::<f64>() / n as f64,
        items,
    }
}

/// 95% Wilson score interval for a proportion: honest at small n and near 0 or 1.
fn wilson_interval(p: f64, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let z = 1.96f64;
    let n = n as f64;
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * ((p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt()) / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

fn print_table(args: &Args, results: &[ModeResult]) {
    println!(
        "data: {} ({} problems), seed {}, temperature {}, top-p {}, max tokens {}",
        args.data.display(),
        results.first().map_or(0, |r| r.problems),
        args.scaffold.seed,
        args.scaffold.temperature,
        args.scaffold.top_p,
        args.scaffold.max_tokens
    );
    println!(
        "| mode | selection | accuracy | 95% CI | vote | pass@N | tokens/candidate | s/problem |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in results {
        let best_of = matches!(r.mode, Mode::Bon | Mode::PlanBon);
        let dash = || "-".to_string();
        println!(
            "| {} | {} | {:.1}% | {:.1}-{:.1}% | {} | {} | {:.0} | {:.1} |",
            serde_json::to_value(r.mode)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
            if best_of {
                format!("{:?}", r.selection).to_lowercase()
            } else {
                dash()
            },
            r.accuracy * 100.0,
            r.ci95.0 * 100.0,
            r.ci95.1 * 100.0,
            if best_of {
                format!("{:.1}%", r.vote_accuracy * 100.0)
            } else {
                dash()
            },
            if best_of {
                format!("{:.1}%", r.pass_at_n * 100.0)
            } else {
                dash()
            },
            r.mean_candidate_tokens,
            r.mean_seconds
        );
    }
}

fn progress_bar(len: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        // Hidden, but still counting: positions feed the per-problem log lines.
        let bar = ProgressBar::hidden();
        bar.set_length(len);
        return bar;
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} [{elapsed} < {eta}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

#[cfg(test)]
mod tests {
    use super::wilson_interval;

    #[test]
    fn the_wilson_interval_contains_the_estimate_and_narrows_with_n() {
        let (lo, hi) = wilson_interval(0.5, 10);
        assert!(lo < 0.5 && hi > 0.5);
        let (lo2, hi2) = wilson_interval(0.5, 1000);
        assert!(hi2 - lo2 < hi - lo);
        let (lo, hi) = wilson_interval(0.0, 20);
        assert_eq!(lo, 0.0);
        assert!(hi > 0.1 && hi < 0.2);
    }
}
