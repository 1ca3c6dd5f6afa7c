//! `k2 solve`: the full K2 scaffold on one problem (plan, best-of-N, verification), rendered
//! in the terminal as it streams, or printed as protocol events (`--format jsonl`).

use anyhow::Result;
use clap::Args as ClapArgs;
use k2_engine::generate::CancelToken;
use k2_engine::scaffold::pipeline::Pipeline;
use k2_protocol::{Event, RunRequest};
use serde_json::json;

use crate::load::ModelArgs;
use crate::output::{print_json_line, Format};
use crate::render::TerminalRenderer;
use crate::run_setup::{load_backends, ScaffoldArgs};
use crate::spec_setup::SpecArgs;

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
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

pub fn run(args: Args) -> Result<()> {
    let jsonl = args.format == Format::Jsonl;
    let backends = load_backends(
        &args.model,
        args.scaffold.planner.as_deref(),
        &args.spec,
        jsonl,
    )?;
    let pipeline = Pipeline {
        solver: &backends.solver,
        planner: &backends.planner,
    };
    let request = RunRequest {
        problem: args.problem.clone(),
        settings: args.scaffold.settings(),
    };
    let cancel = CancelToken::new();
    let mut renderer = TerminalRenderer::new(request.settings.candidates);
    let outcome = pipeline.run(&request, &cancel, &mut |event: Event| {
        if jsonl {
            print_json_line(&event);
        } else {
            renderer.show(&event);
        }
    })?;
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
