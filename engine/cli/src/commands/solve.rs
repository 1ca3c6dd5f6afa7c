//! `k2 solve`: the full K2 scaffold on one problem (plan, best-of-N, verification), rendered
//! in the terminal as it streams, or printed as protocol events (`--format jsonl`). The run is
//! stored in the session database as it streams, unless `--no-store`.

use anyhow::Result;
use clap::Args as ClapArgs;
use k2_engine::generate::CancelToken;
use k2_protocol::{Event, RunRequest};
use k2_scaffold::pipeline::Pipeline;
use k2_store::{RunConfig, RunRecorder, Store};
use serde_json::json;
use tokio::runtime::Runtime;

use crate::load::ModelArgs;
use crate::output::{print_json_line, Format};
use crate::render::TerminalRenderer;
use crate::run_setup::{load_backends, Backends, RemoteArgs, ScaffoldArgs};
use crate::spec_setup::SpecArgs;
use crate::store_setup::StoreArgs;

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
}

pub fn run(args: Args) -> Result<()> {
    let jsonl = args.format == Format::Jsonl;
    let backends = load_backends(
        &args.model,
        args.scaffold.planner.as_deref(),
        &args.spec,
        &args.remote,
        None,
        jsonl,
    )?;
    let pipeline = Pipeline {
        solver: &*backends.solver,
        planner: &*backends.planner,
    };
    let request = RunRequest {
        problem: args.problem.clone(),
        settings: args.scaffold.settings(),
        session: Some(args.session.clone()),
    };
    let recording = if args.no_store {
        None
    } else {
        Some(start_recording(&args, &backends, &request)?)
    };
    let cancel = CancelToken::new();
    let mut renderer = TerminalRenderer::new(request.settings.candidates);
    let outcome = pipeline.run(&request, &cancel, &mut |event: Event| {
        if let Some(recording) = &recording {
            recording.recorder.record(&event);
        }
        if jsonl {
            print_json_line(&event);
        } else {
            renderer.show(&event);
        }
    });
    if let Some(recording) = recording {
        let run = recording.recorder.run();
        recording.runtime.block_on(recording.recorder.finish())?;
        tracing::info!(run, db = %recording.store.path().display(), "run stored");
        if !jsonl {
            eprintln!("(stored as run {run}: k2 history show {run})");
        }
    }
    let outcome = outcome?;
    if jsonl {
        print_json_line(&json!({
            "answer": outcome.answer,
            "candidate": outcome.chosen,
            "method": outcome.method,
            "plan": outcome.plan,
            "stats": outcome.stats,
        }));
    }
    Ok(())
}

struct Recording {
    runtime: Runtime,
    store: Store,
    recorder: RunRecorder,
}

fn start_recording(args: &Args, backends: &Backends, request: &RunRequest) -> Result<Recording> {
    let (runtime, store) = args.store.open()?;
    let solver = backends.solver.describe();
    let planner = backends.planner.describe();
    let config = RunConfig {
        planner: (request.settings.plan || request.settings.candidates > 1).then_some(planner),
        solver,
        draft: args.spec.draft.clone(),
        device: format!("{:?}", args.model.device).to_lowercase(),
        settings: request.settings.clone(),
    };
    let run = runtime.block_on(store.start_typed_run(
        &request.session_or(&args.session),
        &request.problem,
        &config,
    ))?;
    let recorder = {
        let _context = runtime.enter();
        RunRecorder::start(&store, run)
    };
    Ok(Recording {
        runtime,
        store,
        recorder,
    })
}
