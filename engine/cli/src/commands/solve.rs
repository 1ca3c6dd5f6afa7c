//! `k2 solve`: the full K2 scaffold on one problem (plan, best-of-N, verification), rendered
//! in the terminal as it streams, or printed as protocol events (`--format jsonl`). The run is
//! stored in the session database as it streams, unless `--no-store`. With `--student
//! --attempt ANSWER` the student's answer is checked after the run (`k2_answer::check`: the
//! `--answer-key` if given, else the run's answer where the tutor is confident, else unsure)
//! and kept with the run. With `--student --work FILE` the student's own worked solution
//! (`-`: standard input) is checked step by step (`k2_answer::work`: the first wrong step,
//! never the answer) against the run's solution only where the tutor is confident in it,
//! else its arithmetic alone, and kept with the run. Where the numbers could not decide, the
//! planner (judge) model reads the work too (`k2_scaffold::work_review`), its opinion kept
//! apart (`model_doubt`, `reviewed_by_model`).

use anyhow::{anyhow, Context, Result};
use clap::Args as ClapArgs;
use k2_app::{RunHost, RunLimits, SinkFlow};
use k2_engine::answer::check::{check_attempt_in_view, KnownAnswers};
use k2_engine::answer::work::{check_work, reference_for_run, review_withheld};
use k2_protocol::{AttemptCheck, Event, RunRequest, RunView, WorkCheck};
use k2_scaffold::work_review::review_checked_work;
use k2_scaffold::CancelToken;
use k2_store::Store;
use serde_json::json;

use crate::load::ModelArgs;
use crate::output::{print_json_line, print_text, safe, Format};
use crate::render::TerminalRenderer;
use crate::run_setup::{load_backends, RemoteArgs, ScaffoldArgs};
use crate::spec_setup::SpecArgs;
use crate::store_setup::{runtime, StoreArgs};

/// The session the command line files its runs under, unless `--session` names another.
const DEFAULT_SESSION: &str = "Command line";

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// The problem statement (LaTeX allowed).
    pub problem: String,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub scaffold: ScaffoldArgs,
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub remote: RemoteArgs,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Do not store the run in the session database.
    #[arg(long)]
    pub no_store: bool,
    /// The session (by title) to file the run under; created if new.
    #[arg(long, default_value = DEFAULT_SESSION)]
    pub session: String,
    /// Solve as a student: the run ends with a hint ladder written for teaching (`hint`
    /// events: what to notice, an approach, the next step, then the worked solution), and
    /// `--attempt` checks the student's own answer.
    #[arg(long)]
    pub student: bool,
    /// The student's answer, checked after the run (right, wrong or unsure, with what the
    /// verdict rests on: `"check"` on the last JSON line) and kept with the stored run.
    #[arg(long, value_name = "ANSWER", requires = "student")]
    pub attempt: Option<String>,
    /// The problem's known answer: the check's ground truth, kept with the stored problem so
    /// later checks (the app's "Check my answer") use it too.
    #[arg(long, value_name = "ANSWER")]
    pub answer_key: Option<String>,
    /// The student's own worked solution (a file, or `-` for standard input; one step a line,
    /// LaTeX allowed), checked after the run for its first wrong step (`"work"` on the last
    /// JSON line) and kept with the stored run.
    #[arg(long, value_name = "FILE", requires = "student")]
    pub work: Option<String>,
}

/// Reads the student's work before the run, so that a missing file or empty work is an
/// error before minutes of solving.
fn read_work(path: &str) -> Result<String> {
    let text = if path == "-" {
        std::io::read_to_string(std::io::stdin()).context("cannot read the work from stdin")?
    } else {
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the work file {path}"))?
    };
    // The same limits as the check after the run: refused now rather than then.
    check_work(&text, None).map_err(|e| anyhow!("--work: {e}"))?;
    Ok(text)
}

pub fn run(args: Args) -> Result<()> {
    let jsonl = args.format == Format::Jsonl;
    let work = args.work.as_deref().map(read_work).transpose()?;
    let backends = load_backends(
        &args.model,
        args.scaffold.planner.as_deref(),
        &args.spec,
        &args.remote,
        None,
        jsonl,
    )?;
    // The judge reads checked work the numbers could not decide.
    let judge = backends.planner.clone();
    let mut settings = args.scaffold.settings();
    // A student gets the hint ladder (the terminal shows every rung; the UI one at a time).
    settings.hints = args.student;
    let request = RunRequest {
        problem: args.problem.clone(),
        settings,
        session: Some(args.session.clone()),
    };
    // The store's writer runs on this runtime while the engine decodes on this thread.
    let runtime = runtime()?;
    let store = match args.no_store {
        true => None,
        false => Some(runtime.block_on(Store::open(args.store.path()))?),
    };
    let host = match &store {
        None => RunHost::unrecorded(),
        Some(store) => RunHost::recording(store.clone(), runtime.handle().clone(), DEFAULT_SESSION),
    };
    let started = host
        .start_blocking(request, backends, RunLimits::NONE)?
        .with_answer_key(args.answer_key.as_deref());
    let stored = started.stored();
    let mut renderer = TerminalRenderer::new(started.request().settings.candidates);
    // What the check reads: the run's events, folded as every front end folds them.
    let mut view = RunView::default();
    let mut sink = |event: &Event| {
        view.apply(event);
        if jsonl {
            print_json_line(event);
        } else {
            renderer.show(event);
        }
        SinkFlow::Continue
    };
    let outcome = started.run(&CancelToken::new(), &mut sink);
    if let (Some(run), false) = (stored, jsonl) {
        eprintln!("(stored as run {run}: k2 history show {run})");
    }
    let outcome = outcome?;
    let answer_key = args
        .answer_key
        .as_deref()
        .map(str::trim)
        .filter(|k| !k.is_empty());
    let attempt = args
        .attempt
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty());
    let known = KnownAnswers {
        answer_key,
        teacher: None,
    };
    let check = attempt.map(|attempt| check_attempt_in_view(attempt, known, &view));
    let work_check = match &work {
        Some(work) => {
            let reference = reference_for_run(&view, known, None);
            let check = check_work(work, reference.as_ref()).map_err(|e| anyhow!("--work: {e}"))?;
            Some(review_checked_work(
                judge.as_ref(),
                &args.problem,
                reference.as_ref().and_then(|r| r.solution()),
                work,
                check,
                &review_withheld(&view, known),
                &CancelToken::new(),
            ))
        }
        None => None,
    };
    if let (Some(store), Some(run)) = (&store, stored) {
        runtime.block_on(keep_answers(store, run, answer_key, attempt, check))?;
        if let (Some(work), Some(work_check)) = (&work, &work_check) {
            runtime.block_on(keep_work(store, run, work, work_check))?;
        }
    }
    if jsonl {
        let mut last = json!({
            "answer": outcome.answer,
            "candidate": outcome.chosen,
            "method": outcome.method,
            "plan": outcome.plan,
            "stats": outcome.stats,
        });
        if let Some(check) = check {
            last["check"] = json!(check);
        }
        if let Some(work_check) = &work_check {
            last["work"] = json!(work_check);
        }
        print_json_line(&last);
    } else {
        if let (Some(attempt), Some(check)) = (attempt, check) {
            print_text(&format!(
                "\nYour answer {attempt}: {} ({})\n{}\n",
                check.verdict,
                check.basis,
                check.message()
            ));
        }
        if let Some(work_check) = &work_check {
            print_text(&work_text(work_check));
        }
    }
    Ok(())
}

/// "Check my work" for the terminal: the verdict, and the wrong step as the student wrote it
/// (escaped: it is typed text).
fn work_text(check: &WorkCheck) -> String {
    let steps = match check.steps {
        1 => "1 step".to_owned(),
        n => format!("{n} steps"),
    };
    let mut out = format!("\nYour work ({steps}): {}\n", safe(&check.summary));
    if let Some(wrong) = &check.first_wrong {
        let certainty = match wrong.certainty {
            k2_protocol::WorkCertainty::Sure => "wrong",
            k2_protocol::WorkCertainty::Unsure => "check this step",
        };
        out += &format!(
            "  step {} ({certainty}, {}): {}\n",
            wrong.step,
            wrong.kind.as_str().replace('_', " "),
            safe(&wrong.text).replace('\n', "\n    ")
        );
    }
    if let Some(doubt) = &check.model_doubt {
        out += &format!(
            "  step {} (the verifier model's doubt, not verified): {}\n",
            doubt.step,
            safe(&doubt.text).replace('\n', "\n    ")
        );
    }
    out
}

/// Keeps the student's checked work with the stored run's problem.
async fn keep_work(store: &Store, run: i64, work: &str, check: &WorkCheck) -> Result<()> {
    let problem = store.run(run).await?.problem.id;
    store
        .add_work_check(problem, Some(run), work, check)
        .await?;
    Ok(())
}

/// Keeps the answer key with the stored run's problem and the checked attempt with the run.
async fn keep_answers(
    store: &Store,
    run: i64,
    answer_key: Option<&str>,
    attempt: Option<&str>,
    check: Option<AttemptCheck>,
) -> Result<()> {
    let problem = store.run(run).await?.problem.id;
    if let Some(key) = answer_key {
        store.set_known_answer(problem, key).await?;
    }
    if let Some(attempt) = attempt {
        store
            .add_attempt(problem, Some(run), attempt, check, None)
            .await?;
    }
    Ok(())
}
