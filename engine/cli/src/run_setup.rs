//! What `k2 solve` and `k2 eval` share: loading the solver and the planner/judge model, and
//! turning flags into run settings.

use std::sync::Arc;

use anyhow::Result;
use clap::Args as ClapArgs;
use k2_engine::backend::LocalBackend;
use k2_engine::models_dir::resolve_model;
use k2_protocol::{RunSettings, SamplingSettings, Selection};

use crate::load::{load, ModelArgs};
use crate::spec_setup::SpecArgs;

/// The planner/verifier K2 Tutor uses when it is installed (as K2-Think uses a second model).
const DEFAULT_PLANNER: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m";

#[derive(ClapArgs, Debug, Clone)]
pub struct ScaffoldArgs {
    /// The model that plans and judges: a path, an installed model's name, or `solver` to use
    /// the solver itself [default: qwen2.5-coder-0.5b-instruct-q4_k_m if installed, else solver].
    #[arg(long)]
    pub planner: Option<String>,
    /// Number of candidate solutions (best-of-N).
    #[arg(long, short = 'n', default_value_t = 3)]
    pub n: usize,
    /// Solve without a plan.
    #[arg(long)]
    pub no_plan: bool,
    /// How the answer is chosen: judge, vote, or vote+judge (the judge only when votes split).
    #[arg(long = "select", default_value = "vote+judge")]
    pub selection: Selection,
    /// Maximum tokens per candidate.
    #[arg(long, default_value_t = 2048)]
    pub max_tokens: usize,
    /// Sampling temperature of the candidates (K2-Think: 1.0); 0 is greedy.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    #[arg(long, default_value_t = 0.0)]
    pub min_p: f32,
    /// Base seed; candidate i samples with a seed derived from it.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl ScaffoldArgs {
    pub fn settings(&self) -> RunSettings {
        RunSettings {
            candidates: self.n,
            plan: !self.no_plan,
            selection: self.selection,
            sampling: SamplingSettings {
                temperature: self.temperature,
                top_p: self.top_p,
                top_k: self.top_k,
                min_p: self.min_p,
                seed: self.seed,
                max_tokens: self.max_tokens,
            },
            ..RunSettings::default()
        }
    }
}

pub struct Backends {
    pub solver: LocalBackend,
    pub planner: LocalBackend,
}

/// Loads the solver and, unless it is the same model, the planner.
pub fn load_backends(
    model: &ModelArgs,
    planner: Option<&str>,
    spec: &SpecArgs,
    quiet: bool,
) -> Result<Backends> {
    let solver = Arc::new(load(model, quiet)?);
    let speculation = spec.load(&solver, model, quiet)?;
    let planner_spec = match planner {
        Some(spec) => Some(spec.to_owned()),
        None => resolve_model(DEFAULT_PLANNER)
            .ok()
            .map(|p| p.to_string_lossy().into_owned()),
    };
    let planner = match planner_spec.as_deref() {
        None | Some("solver") => solver.clone(),
        Some(spec) => {
            let args = ModelArgs {
                model: spec.to_owned(),
                device: model.device,
            };
            let planner = load(&args, quiet)?;
            if planner.info.path == solver.info.path {
                solver.clone()
            } else {
                Arc::new(planner)
            }
        }
    };
    tracing::info!(solver = %solver.info.name, planner = %planner.info.name, "models loaded");
    let solver_backend = LocalBackend::new(solver);
    Ok(Backends {
        solver: match speculation {
            Some(s) => solver_backend.with_speculation(s),
            None => solver_backend,
        },
        planner: LocalBackend::new(planner),
    })
}
