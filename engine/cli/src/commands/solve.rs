//! `k2 solve`: the full K2 scaffold on one problem (plan, best-of-N, verification), rendered
//! in the terminal as it streams, or printed as protocol events (`--format jsonl`). The run is
//! stored in the session database as it streams, unless `--no-store`.

use anyhow::Result;
use clap::Args as ClapArgs;
use k2_app::{RunHost, RunLimits, SinkFlow};
use k2_protocol::{Event, RunRequest};
use k2_scaffold::CancelToken;
use k2_store::Store;
use serde_json::json;

use crate::load::ModelArgs;
use crate::output::{print_json_line, Format};
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
    let request = RunRequest {
        problem: args.problem.clone(),
        settings: args.scaffold.settings(),
        session: Some(args.session.clone()),
    };
    // The store's writer runs on this runtime while the engine decodes on this thread.
    let runtime = runtime()?;
    let host = match args.no_store {
        true => RunHost::unrecorded(),
        false => {
            let store = runtime.block_on(Store::open(args.store.path()))?;
            RunHost::recording(store, runtime.handle().clone(), DEFAULT_SESSION)
        }
    };
    let started = host.start_blocking(request, backends, RunLimits::NONE)?;
    let stored = started.stored();
    let mut renderer = TerminalRenderer::new(started.request().settings.candidates);
    let mut sink = |event: &Event| {
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
