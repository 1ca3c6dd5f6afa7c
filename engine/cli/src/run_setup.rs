//! What `k2 solve` and `k2 eval` share: loading the solver and the planner/judge model, and
//! turning flags into run settings.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use clap::Args as ClapArgs;
use k2_app::Backends;
use k2_engine::backend::LocalBackend;
use k2_engine::loader::LoadedModel;
use k2_engine::serving::{ScheduledBackend, Scheduler, SchedulerConfig};
use k2_protocol::{Effort, RunSettings, Selection};
use k2_scaffold::{Backend, RemoteBackend, RemoteConfig, SettingNames};

use crate::load::{load, ModelArgs};
use crate::sampling_args::SamplingArgs;
use crate::spec_setup::SpecArgs;

#[derive(ClapArgs, Debug, Clone)]
pub struct ScaffoldArgs {
    /// The model that plans and judges: a path, an installed model's name, or `solver` to use
    /// the solver itself [default: solver: with the 0.5B as planner the plan modes scored 5-14
    /// points below the same modes without a plan, with the solver no worse (BENCHMARKS.md)].
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
    /// Most tokens each candidate may think (inside `<think>`) before its think block is
    /// closed for it and it is asked for the answer [default: no cap].
    #[arg(long, value_name = "N")]
    pub thinking_budget: Option<usize>,
    /// Let candidates, the plan and the judge run on when they repeat themselves (by default
    /// text that cycles through one span ends, marked "looped").
    #[arg(long)]
    pub no_loop_guard: bool,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// How long the solver thinks: low, medium or high [default: the model's own]. K2 Horizon
    /// picks its think tag by it, Qwen3 thinks only above low, other reasoning models get a
    /// thinking-token budget.
    #[arg(long)]
    pub effort: Option<Effort>,
}

impl ScaffoldArgs {
    pub fn settings(&self) -> RunSettings {
        RunSettings {
            candidates: self.n,
            plan: !self.no_plan,
            selection: self.selection,
            sampling: self.sampling.settings(),
            thinking_budget: self.thinking_budget,
            loop_guard: !self.no_loop_guard,
            effort: self.effort,
            ..RunSettings::default()
        }
    }
}

/// Remote backends (OpenAI-compatible servers), per role.
#[derive(ClapArgs, Debug, Clone)]
pub struct RemoteArgs {
    /// Solve on this OpenAI-compatible server (`k2 serve`, llama.cpp, vLLM...) instead of a
    /// local model, e.g. http://lab-server:8000.
    #[arg(long, env = "K2_BACKEND")]
    pub backend: Option<String>,
    /// The server's bearer token.
    #[arg(long, env = "K2_BACKEND_TOKEN", hide_env_values = true)]
    pub backend_token: Option<String>,
    /// The model to ask the server for [default: the first it lists].
    #[arg(long)]
    pub backend_model: Option<String>,
    /// Plan and judge on this server instead of a local model.
    #[arg(long)]
    pub planner_backend: Option<String>,
    /// The planner server's token [default: --backend-token].
    #[arg(long, hide_env_values = true)]
    pub planner_backend_token: Option<String>,
    #[arg(long)]
    pub planner_backend_model: Option<String>,
    /// Seconds a server may stay silent before the request fails.
    #[arg(long, default_value_t = 120)]
    pub backend_timeout: u64,
    /// Seconds a server may take for a whole answer [default: --backend-timeout plus one
    /// second per token of --max-tokens].
    #[arg(long)]
    pub backend_deadline: Option<u64>,
    /// Ask remote servers for whole answers instead of streams.
    #[arg(long)]
    pub backend_no_stream: bool,
}

/// The options of the solver's server, as its errors name them.
const SOLVER_OPTIONS: SettingNames = SettingNames {
    model: "--backend-model",
    token: "--backend-token or K2_BACKEND_TOKEN",
    idle_timeout: "--backend-timeout",
    answer_timeout: "--backend-deadline",
};

/// The options of the planner's server (the timeouts are shared with the solver's).
const PLANNER_OPTIONS: SettingNames = SettingNames {
    model: "--planner-backend-model",
    token: "--planner-backend-token",
    ..SOLVER_OPTIONS
};

impl RemoteArgs {
    fn config(
        &self,
        url: &str,
        token: Option<&String>,
        model: Option<&String>,
        settings: SettingNames,
    ) -> RemoteConfig {
        RemoteConfig {
            token: token.cloned(),
            model: model.cloned(),
            stream: !self.backend_no_stream,
            idle_timeout: Duration::from_secs(self.backend_timeout.max(1)),
            answer_timeout: self.backend_deadline.map(|s| Duration::from_secs(s.max(1))),
            settings,
            ..RemoteConfig::new(url)
        }
    }

    fn solver(&self) -> Result<Option<Arc<dyn Backend>>> {
        let Some(url) = &self.backend else {
            return Ok(None);
        };
        let config = self.config(
            url,
            self.backend_token.as_ref(),
            self.backend_model.as_ref(),
            SOLVER_OPTIONS,
        );
        Ok(Some(Arc::new(RemoteBackend::connect(config)?)))
    }

    fn planner(&self) -> Result<Option<Arc<dyn Backend>>> {
        let Some(url) = &self.planner_backend else {
            return Ok(None);
        };
        let token = self
            .planner_backend_token
            .as_ref()
            .or(self.backend_token.as_ref());
        let config = self.config(
            url,
            token,
            self.planner_backend_model.as_ref(),
            PLANNER_OPTIONS,
        );
        Ok(Some(Arc::new(RemoteBackend::connect(config)?)))
    }
}

/// The solver (local, or remote with `--backend`) and the planner/judge (remote with
/// `--planner-backend`, else `--planner`, else the default planner if installed, else the
/// solver).
///
/// With `batching`, each local model decodes through its own continuous-batching scheduler, so
/// completions requested from several threads at once share forward passes (`k2 eval --jobs`).
pub fn load_backends(
    model: &ModelArgs,
    planner: Option<&str>,
    spec: &SpecArgs,
    remote: &RemoteArgs,
    batching: Option<SchedulerConfig>,
    quiet: bool,
) -> Result<Backends> {
    let remote_solver = remote.solver()?;
    if batching.is_some() && spec.draft.is_some() {
        anyhow::bail!(
            "--draft decodes one conversation at a time; leave it out to run problems in parallel"
        );
    }
    let local_backend = |model: Arc<LoadedModel>| -> Result<Arc<dyn Backend>> {
        Ok(match batching {
            Some(config) => {
                let scheduler = Scheduler::start(model.clone(), config)?;
                Arc::new(ScheduledBackend::new(model, scheduler))
            }
            None => Arc::new(LocalBackend::new(model)),
        })
    };
    if remote_solver.is_some() && model.model.is_some() {
        anyhow::bail!("--model and --backend both name the solver; give one of them");
    }
    if remote_solver.is_some() && spec.draft.is_some() {
        anyhow::bail!("--draft runs beside a local model; a remote server does its own decoding");
    }
    let local_solver = match remote_solver {
        Some(_) => None,
        None => Some(Arc::new(load(model, quiet)?)),
    };
    let solver: Arc<dyn Backend> = match (&remote_solver, &local_solver) {
        (Some(remote), _) => remote.clone(),
        (None, Some(local)) => match spec.load(local, model, quiet)? {
            Some(s) => Arc::new(LocalBackend::new(local.clone()).with_speculation(s)),
            None => local_backend(local.clone())?,
        },
        (None, None) => unreachable!("a solver is local when it is not remote"),
    };

    let planner: Arc<dyn Backend> = if let Some(remote) = remote.planner()? {
        remote
    } else {
        match (planner, &local_solver) {
            (None | Some("solver"), _) => solver.clone(),
            (Some(spec), local) => {
                let args = ModelArgs {
                    model: Some(spec.to_owned()),
                    device: model.device,
                };
                let planner = load(&args, quiet)?;
                match local {
                    // The same file as the solver: share its weights (and its batch).
                    Some(local) if local.info.path == planner.info.path => match batching {
                        Some(_) => solver.clone(),
                        None => Arc::new(LocalBackend::new(local.clone())),
                    },
                    _ => local_backend(Arc::new(planner))?,
                }
            }
        }
    };
    tracing::info!(solver = %solver.describe(), planner = %planner.describe(), "backends ready");
    let device = match &remote.backend {
        Some(url) => url.clone(),
        None => format!("{:?}", model.device).to_lowercase(),
    };
    Ok(Backends {
        solver,
        planner,
        device,
        draft: spec.draft.clone(),
    })
}
