//! `k2 eval`: the evaluation harness. Runs the scaffold in one or more modes over a problem
//! set (the JSONL format of shared/data: `id`, `problem`, `answer`), grades final answers with
//! the engine's equivalence checker, and prints accuracy (with a 95% Wilson interval), mean
//! tokens and wall time per mode: the shape of K2-Think's ablation table.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args as ClapArgs;
use indicatif::{ProgressBar, ProgressStyle};
use k2_app::{Backends, RunHost, RunLimits, SinkFlow};
use k2_engine::answer::equivalent;
use k2_engine::answer::hints::Withheld;
use k2_engine::serving::SchedulerConfig;
use k2_protocol::{
    Event, FinishReason, Hint, RunRequest, RunSettings, RunView, Selection, SelectionMethod,
    Verdict,
};
use k2_scaffold::judge::{Entrant, JudgeReply, PairJudge};
use k2_scaffold::pipeline::{BackendJudge, RunOutcome};
use k2_scaffold::select::select;
use k2_scaffold::CancelToken;
use serde::{Deserialize, Serialize};

use crate::load::ModelArgs;
use crate::run_setup::{load_backends, RemoteArgs, ScaffoldArgs};
use crate::spec_setup::SpecArgs;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
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
    fn name(self) -> &'static str {
        match self {
            Mode::Single => "single",
            Mode::Plan => "plan",
            Mode::Bon => "bon",
            Mode::PlanBon => "plan+bon",
        }
    }

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
    /// Write every item's result as JSON here (rewritten after each problem).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Keep the items already in `--out` and run only the missing ones.
    #[arg(long, requires = "out")]
    pub resume: bool,
    /// In best-of-N modes, also ask the judge alone to pick among the same candidates, so the
    /// selection strategies are compared on identical samples (costs the judge's calls).
    #[arg(long)]
    pub compare_selection: bool,
    /// Write each run's student hint ladder too, and measure its leaks: the share of problems
    /// where a rung other than the worked solution reveals the ground truth or the selected
    /// answer (the equivalence checker, `k2_answer::hints`), beside the same measure for the
    /// plan shown as hints. The ground truth is not given to the hint screen, as in the app
    /// when a problem has no answer key.
    #[arg(long)]
    pub hints: bool,
    /// Problems solved at once, each on its own thread. Above 1, every local model decodes
    /// through a continuous-batching scheduler, so concurrent problems share forward passes
    /// (far faster on a GPU); each problem's result is the same as when solved alone.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: u16,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub scaffold: ScaffoldArgs,
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(Serialize, Deserialize)]
struct Report {
    data: PathBuf,
    solver: String,
    planner: String,
    settings: RunSettings,
    modes: Vec<ModeResult>,
}

#[derive(Deserialize)]
struct Problem {
    id: String,
    problem: String,
    answer: String,
}

#[derive(Clone, Serialize, Deserialize)]
struct ItemResult {
    id: String,
    expected: String,
    predicted: Option<String>,
    correct: bool,
    /// Whether the majority vote over the candidates' answers is correct (best-of-N modes).
    vote_correct: bool,
    /// Whether any candidate's answer is correct (pass@N).
    any_correct: bool,
    /// Whether the judge alone would pick a correct answer (`--compare-selection`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    judge_correct: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    judge_only_tokens: Option<usize>,
    candidates: Vec<CandidateResult>,
    plan_tokens: usize,
    judge_tokens: usize,
    seconds: f64,
    /// How the answer was chosen and the judge's verdicts: what the check's `verifier` basis
    /// reads (`k2_answer::check`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    chosen: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    method: Option<SelectionMethod>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    verdicts: Vec<Verdict>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hints: Option<HintsResult>,
}

/// A run's hint ladder and whether it, or the plan shown as hints, reveals an answer.
#[derive(Clone, Serialize, Deserialize)]
struct HintsResult {
    rungs: Vec<Hint>,
    /// A rung other than the worked solution reveals the ground truth or the selected answer.
    leaked: bool,
    /// The same for the plan cut into hints (what student mode showed before the ladder);
    /// `None` without a plan.
    plan_leaked: Option<bool>,
    tokens: usize,
}

#[derive(Clone, Serialize, Deserialize)]
struct CandidateResult {
    answer: Option<String>,
    tokens: usize,
    finish: FinishReason,
}

#[derive(Serialize, Deserialize)]
struct ModeResult {
    mode: Mode,
    selection: Selection,
    problems: usize,
    accuracy: f64,
    ci95: (f64, f64),
    vote_accuracy: f64,
    /// Accuracy of the judge alone on the same candidates, where it was asked.
    #[serde(default)]
    judge_accuracy: Option<f64>,
    pass_at_n: f64,
    /// With `--hints`: the share of problems whose ladder leaked, and whose plan did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hint_leak_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    plan_leak_rate: Option<f64>,
    mean_candidate_tokens: f64,
    mean_seconds: f64,
    items: Vec<ItemResult>,
}

pub fn run(args: Args) -> Result<()> {
    let problems = read_problems(&args.data, args.limit)?;
    let backends = load_backends(
        &args.model,
        args.scaffold.planner.as_deref(),
        &args.spec,
        &args.remote,
        batching(&args),
        false,
    )?;
    // Runs of an evaluation are graded, not kept in the history.
    let host = RunHost::unrecorded();
    let base = RunSettings {
        hints: args.hints,
        ..args.scaffold.settings()
    };
    let mut done = match (&args.out, args.resume) {
        (Some(out), true) => read_previous(out, &args.mode)?,
        _ => args.mode.iter().map(|_| Vec::new()).collect(),
    };
    let order: HashMap<&str, usize> = problems
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id.as_str(), i))
        .collect();
    // Problems outside, modes inside: a run stopped early still compares every mode on the
    // same problems, and `--resume` continues where it stopped.
    let work: Vec<(&Problem, usize)> = problems
        .iter()
        .flat_map(|problem| (0..args.mode.len()).map(move |slot| (problem, slot)))
        .filter(|(problem, slot)| !done[*slot].iter().any(|item| item.id == problem.id))
        .collect();
    let total = (problems.len() * args.mode.len()) as u64;
    let bar = progress_bar(total);
    bar.set_position(total - work.len() as u64);
    let cancel = CancelToken::new();
    let next = AtomicUsize::new(0);
    let mut failure = None;
    std::thread::scope(|scope| {
        let (results, received) = mpsc::channel();
        for _ in 0..usize::from(args.jobs).min(work.len()) {
            let results = results.clone();
            let (host, backends) = (&host, &backends);
            let (base, cancel, next, work) = (&base, &cancel, &next, &work);
            let (modes, compare) = (&args.mode, args.compare_selection);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= work.len() || cancel.is_cancelled() {
                    break;
                }
                let (problem, slot) = work[i];
                let run = Eval {
                    host,
                    backends,
                    cancel,
                };
                let item = run.solve_one(base, modes[slot], problem, compare);
                if item.is_err() {
                    // The other threads stop at their next problem; their current one ends.
                    cancel.cancel();
                }
                if results.send((slot, item)).is_err() {
                    break;
                }
            });
        }
        drop(results);
        for (slot, item) in received {
            let item = match item {
                Ok(item) => item,
                Err(e) => {
                    failure.get_or_insert(e);
                    continue;
                }
            };
            if bar.is_hidden() {
                // No terminal (a background run, CI): one line per problem instead of a bar.
                crate::eoutln!(
                    "{}/{} {} {}: {} (expected {}, got {}), {} tokens, {:.1} s",
                    bar.position() + 1,
                    total,
                    args.mode[slot].name(),
                    item.id,
                    if item.correct { "correct" } else { "wrong" },
                    item.expected,
                    item.predicted.as_deref().unwrap_or("none"),
                    item.candidates.iter().map(|c| c.tokens).sum::<usize>(),
                    item.seconds
                );
            }
            bar.set_message(format!("{} {}", args.mode[slot].name(), item.id));
            done[slot].push(item);
            // In the problems' order, whichever thread finished first.
            done[slot].sort_by_key(|item| order.get(item.id.as_str()).copied());
            bar.inc(1);
            if let Some(out) = &args.out {
                // Written after every problem so that a long run interrupted loses one item.
                if let Err(e) = write_report(out, &args, &backends, &base, &done) {
                    cancel.cancel();
                    failure.get_or_insert(e);
                }
            }
        }
    });
    if let Some(e) = failure {
        bar.abandon();
        return Err(e);
    }
    bar.finish_and_clear();
    let results = summaries(&args, &base, &done);
    print_table(&args, &results);
    if let Some(out) = &args.out {
        crate::eoutln!("results written to {}", out.display());
    }
    Ok(())
}

/// With `--jobs` above 1, a scheduler per local model with a row for every candidate of every
/// job, so no request ever waits for rows. Prompts are computed whole, never from another
/// request's cached prefix, so each problem decodes exactly as it would alone.
fn batching(args: &Args) -> Option<SchedulerConfig> {
    let jobs = usize::from(args.jobs);
    (jobs > 1).then(|| SchedulerConfig {
        max_rows: jobs * args.scaffold.n.max(1),
        max_waiting: jobs,
        prefill_budget: usize::MAX,
        // Capped at the model's context by the scheduler; storage grows as rows need it.
        context: usize::MAX,
        prefix_cache: false,
    })
}

/// What one evaluation thread solves with.
struct Eval<'a> {
    host: &'a RunHost,
    backends: &'a Backends,
    cancel: &'a CancelToken,
}

impl Eval<'_> {
    fn solve_one(
        &self,
        base: &RunSettings,
        mode: Mode,
        problem: &Problem,
        compare_selection: bool,
    ) -> Result<ItemResult> {
        let cancel = self.cancel;
        let request = RunRequest {
            problem: problem.problem.clone(),
            settings: mode.settings(base),
            session: None,
        };
        let started = Instant::now();
        let mut view = RunView::default();
        let outcome = self
            .host
            .start_blocking(request, self.backends.clone(), RunLimits::NONE)
            .map_err(anyhow::Error::from)
            .and_then(|run| {
                Ok(run.run(cancel, &mut |event: &Event| {
                    view.apply(event);
                    SinkFlow::Continue
                })?)
            })
            .with_context(|| format!("problem {}", problem.id))?;
        let seconds = started.elapsed().as_secs_f64();
        let mut item = grade(problem, &outcome, seconds);
        item.verdicts = view.verdicts;
        if base.hints {
            item.hints = Some(hint_leaks(problem, &outcome, view.hints));
        }
        if compare_selection && outcome.candidates.len() > 1 {
            // The judge alone on the same candidates: strategies compared without resampling.
            let views = candidate_views(&outcome);
            let mut judge = BackendJudge::new(self.backends.planner.as_ref(), cancel);
            let chosen = select(
                Selection::Judge,
                &problem.problem,
                &views,
                &mut judge,
                &mut |_| {},
            )
            .with_context(|| format!("judging problem {}", problem.id))?;
            let answer = &views[chosen.candidate].answer;
            item.judge_correct = Some(
                answer
                    .as_deref()
                    .is_some_and(|a| equivalent(a, &problem.answer)),
            );
            item.judge_only_tokens = Some(judge.tokens);
        }
        Ok(item)
    }
}

fn summaries(args: &Args, base: &RunSettings, done: &[Vec<ItemResult>]) -> Vec<ModeResult> {
    args.mode
        .iter()
        .zip(done)
        .map(|(&mode, items)| summarize(mode, mode.settings(base).selection, items))
        .collect()
}

fn write_report(
    out: &Path,
    args: &Args,
    backends: &Backends,
    base: &RunSettings,
    done: &[Vec<ItemResult>],
) -> Result<()> {
    let report = Report {
        data: args.data.clone(),
        solver: backends.solver.describe(),
        planner: backends.planner.describe(),
        settings: base.clone(),
        modes: summaries(args, base, done),
    };
    // Write then rename: an interrupted write never leaves a truncated report behind.
    let partial = out.with_extension("json.partial");
    std::fs::write(&partial, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, out).with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

/// Items already graded in an earlier report at `out`, one list per requested mode.
fn read_previous(out: &Path, modes: &[Mode]) -> Result<Vec<Vec<ItemResult>>> {
    if !out.exists() {
        return Ok(modes.iter().map(|_| Vec::new()).collect());
    }
    let text =
        std::fs::read_to_string(out).with_context(|| format!("reading {}", out.display()))?;
    let report: Report = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a k2 eval report; move it away or leave out --resume",
            out.display()
        )
    })?;
    let mut previous = report.modes;
    Ok(modes
        .iter()
        .map(|&mode| {
            previous
                .iter_mut()
                .find(|r| r.mode == mode)
                .map(|r| std::mem::take(&mut r.items))
                .unwrap_or_default()
        })
        .collect())
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
        judge_correct: None,
        judge_only_tokens: None,
        candidates,
        plan_tokens: outcome.stats.plan_tokens,
        judge_tokens: outcome.stats.judge_tokens,
        seconds,
        chosen: Some(outcome.chosen),
        method: Some(outcome.method),
        verdicts: Vec::new(),
        hints: None,
    }
}

/// Whether the ladder (rungs before the worked solution) or the plan reveals the ground truth
/// or the selected answer.
fn hint_leaks(problem: &Problem, outcome: &RunOutcome, rungs: Vec<Hint>) -> HintsResult {
    let answers = Withheld::new(
        [problem.answer.as_str()]
            .into_iter()
            .chain(outcome.answer.as_deref()),
    );
    HintsResult {
        leaked: rungs
            .iter()
            .filter(|h| !h.bottom_out)
            .any(|h| answers.revealed_in(&h.text)),
        plan_leaked: outcome.plan.as_deref().map(|p| answers.revealed_in(p)),
        tokens: outcome.stats.hint_tokens,
        rungs,
    }
}

/// The answer a plain majority vote would have chosen, to compare strategies from one run.
fn vote_answer(problem: &Problem, outcome: &RunOutcome) -> Option<String> {
    let views = candidate_views(outcome);
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

fn candidate_views(outcome: &RunOutcome) -> Vec<Entrant> {
    outcome
        .candidates
        .iter()
        .zip(&outcome.candidate_answers)
        .enumerate()
        .map(|(id, (c, answer))| Entrant {
            id,
            text: c.text.clone(),
            answer: answer.clone(),
            finish: c.finish,
        })
        .collect()
}

/// Voting never asks a judge.
struct NoJudge;

impl PairJudge for NoJudge {
    fn judge(&mut self, _: &str, _: &Entrant, _: &Entrant) -> k2_scaffold::Result<JudgeReply> {
        Err(k2_scaffold::ScaffoldError::InvalidSetting(
            "a vote needs no judge".into(),
        ))
    }
}

fn summarize(mode: Mode, selection: Selection, items: &[ItemResult]) -> ModeResult {
    let n = items.len().max(1);
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
        problems: items.len(),
        accuracy,
        ci95: wilson_interval(accuracy, items.len()),
        vote_accuracy: rate(&|i| i.vote_correct),
        judge_accuracy: items
            .iter()
            .all(|i| i.judge_correct.is_some())
            .then(|| rate(&|i| i.judge_correct == Some(true)))
            .filter(|_| !items.is_empty()),
        pass_at_n: rate(&|i| i.any_correct),
        hint_leak_rate: items
            .iter()
            .all(|i| i.hints.is_some())
            .then(|| rate(&|i| i.hints.as_ref().is_some_and(|h| h.leaked)))
            .filter(|_| !items.is_empty()),
        plan_leak_rate: items
            .iter()
            .all(|i| i.hints.as_ref().is_some_and(|h| h.plan_leaked.is_some()))
            .then(|| rate(&|i| i.hints.as_ref().and_then(|h| h.plan_leaked) == Some(true)))
            .filter(|_| !items.is_empty()),
        mean_candidate_tokens: candidate_tokens.iter().sum::<usize>() as f64
            / candidate_tokens.len().max(1) as f64,
        mean_seconds: items.iter().map(|i| i.seconds).sum::<f64>() / n as f64,
        items: items.to_vec(),
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
    let sampling = args.scaffold.sampling.settings();
    crate::outln!(
        "data: {} ({} problems), seed {}, temperature {}, top-p {}, max tokens {}",
        args.data.display(),
        results.first().map_or(0, |r| r.problems),
        sampling.seed,
        sampling.temperature,
        sampling.top_p,
        sampling.max_tokens
    );
    crate::outln!(
        "| mode | selection | accuracy | 95% CI | vote | judge | pass@N | tokens/candidate | s/problem |"
    );
    crate::outln!("|---|---|---|---|---|---|---|---|---|");
    for r in results {
        let best_of = matches!(r.mode, Mode::Bon | Mode::PlanBon);
        let dash = || "-".to_string();
        crate::outln!(
            "| {} | {} | {:.1}% | {:.1}-{:.1}% | {} | {} | {} | {:.0} | {:.1} |",
            r.mode.name(),
            if best_of {
                r.selection.to_string()
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
            match r.judge_accuracy {
                Some(a) if best_of => format!("{:.1}%", a * 100.0),
                _ => dash(),
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
    for r in results {
        if let Some(leaks) = r.hint_leak_rate {
            let plan = r
                .plan_leak_rate
                .map_or("no plan".into(), |p| format!("{:.1}%", p * 100.0));
            crate::outln!(
                "{}: hints that reveal an answer: ladder {:.1}%, plan as hints {plan}",
                r.mode.name(),
                leaks * 100.0
            );
        }
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
