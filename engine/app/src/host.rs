//! Starting, recording and finishing a run, for every front end.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use k2_protocol::{Event, RunEvent, RunRequest};
use k2_scaffold::{CancelToken, Pipeline, RunOutcome, ScaffoldError};
use k2_store::{RunId, RunOrigin, RunRecorder, Store, StudentId};
use tokio::runtime::Handle;

use crate::backends::Backends;

/// Where a front end shows a run's events: the terminal, an SSE response, a Tauri channel.
pub trait RunSink {
    /// Shows one event. Events come in `seq` order, after the store has queued them.
    fn event(&mut self, event: &Event) -> SinkFlow;
}

/// Whether the front end still wants the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkFlow {
    Continue,
    /// Nobody is watching any more (the browser closed the stream): cancel the run.
    Gone,
}

impl<F: FnMut(&Event) -> SinkFlow> RunSink for F {
    fn event(&mut self, event: &Event) -> SinkFlow {
        self(event)
    }
}

/// What a front end allows a run to ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLimits {
    pub max_candidates: usize,
    /// The most tokens of a candidate or of the plan.
    pub max_tokens: usize,
}

impl RunLimits {
    /// No limit but the request's own sense and [`k2_protocol::MAX_CANDIDATES`].
    pub const NONE: RunLimits = RunLimits {
        max_candidates: k2_protocol::MAX_CANDIDATES,
        max_tokens: usize::MAX,
    };
}

/// A request refused before anything started; the message is for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostError(pub String);

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HostError {}

/// Runs the scaffold for the front ends: one per process, shared by every run.
#[derive(Clone)]
pub struct RunHost {
    /// Where runs are recorded, and the runtime the store's writer runs on.
    store: Option<(Store, Handle)>,
    /// The session a run is filed under when its request names none ("Desktop").
    default_session: Arc<str>,
}

/// A validated run with its stored record opened, ready to run on a thread of its own.
pub struct StartedRun {
    request: RunRequest,
    backends: Backends,
    recorder: Option<(RunRecorder, Handle)>,
    answer_key: Option<String>,
}

impl RunHost {
    /// Runs are recorded in `store`, whose writer runs on `runtime`; filed under
    /// `default_session` when their request names none.
    pub fn recording(store: Store, runtime: Handle, default_session: &str) -> Self {
        RunHost {
            store: Some((store, runtime)),
            default_session: default_session.into(),
        }
    }

    /// Runs are not recorded (`k2 eval`, `k2 solve --no-store`, a server without history).
    pub fn unrecorded() -> Self {
        RunHost {
            store: None,
            default_session: "".into(),
        }
    }

    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref().map(|(store, _)| store)
    }

    /// The checks every front end makes before a run starts.
    pub fn validate(request: &RunRequest, limits: RunLimits) -> Result<(), HostError> {
        let settings = &request.settings;
        if request.problem.trim().is_empty() {
            return Err(HostError(
                "the problem is empty: type a problem first".into(),
            ));
        }
        let most = limits.max_candidates.min(k2_protocol::MAX_CANDIDATES);
        if settings.candidates == 0 || settings.candidates > most {
            return Err(HostError(format!(
                "candidates must be at least 1 and at most {most}"
            )));
        }
        let longest = settings.sampling.max_tokens.max(settings.plan_max_tokens);
        if longest > limits.max_tokens {
            return Err(HostError(format!(
                "max_tokens above this server's limit of {}",
                limits.max_tokens
            )));
        }
        if settings.sampling.max_tokens == 0 {
            return Err(HostError("max_tokens must be at least 1".into()));
        }
        if settings.thinking_budget == Some(0) {
            return Err(HostError(
                "the thinking budget must be at least 1 token (leave it out for no cap)".into(),
            ));
        }
        k2_scaffold::SamplingParams::from(&settings.sampling)
            .validate()
            .map_err(|e| HostError(e.to_string()))
    }

    /// Validates `request` and opens its stored run. A store that fails here does not stop
    /// the run: it goes on unrecorded (an answer unkept beats no answer), and says so in the
    /// log.
    pub async fn start(
        &self,
        request: RunRequest,
        backends: Backends,
        limits: RunLimits,
    ) -> Result<StartedRun, HostError> {
        self.start_owned(request, backends, limits, None).await
    }

    /// [`RunHost::start`] for a classroom server's student: the run is filed under `owner`.
    pub async fn start_owned(
        &self,
        request: RunRequest,
        backends: Backends,
        limits: RunLimits,
        owner: Option<StudentId>,
    ) -> Result<StartedRun, HostError> {
        Self::validate(&request, limits)?;
        let recorder = match &self.store {
            Some((store, runtime)) => self
                .open_record(store, &request, &backends, owner)
                .await
                .map(|recorder| (recorder, runtime.clone())),
            None => None,
        };
        Ok(StartedRun {
            request,
            backends,
            recorder,
            answer_key: None,
        })
    }

    /// [`RunHost::start`] from a thread outside the runtime (the command line).
    pub fn start_blocking(
        &self,
        request: RunRequest,
        backends: Backends,
        limits: RunLimits,
    ) -> Result<StartedRun, HostError> {
        match &self.store {
            Some((_, runtime)) => runtime.block_on(self.start(request, backends, limits)),
            None => {
                Self::validate(&request, limits)?;
                Ok(StartedRun {
                    request,
                    backends,
                    recorder: None,
                    answer_key: None,
                })
            }
        }
    }

    async fn open_record(
        &self,
        store: &Store,
        request: &RunRequest,
        backends: &Backends,
        owner: Option<StudentId>,
    ) -> Option<RunRecorder> {
        let config = backends.run_config(&request.settings);
        let session = request.session_or(&self.default_session);
        let origin = RunOrigin {
            owner,
            student_mode: request.settings.student,
        };
        match store
            .start_typed_run(&session, &request.problem, &config, origin)
            .await
        {
            Ok(run) => Some(RunRecorder::start(store, run)),
            Err(e) => {
                tracing::error!("the run will not be kept: {e}");
                None
            }
        }
    }
}

impl StartedRun {
    /// The stored run's id, to attach notes and attempts to it.
    pub fn stored(&self) -> Option<RunId> {
        self.recorder.as_ref().map(|(recorder, _)| recorder.run())
    }

    pub fn request(&self) -> &RunRequest {
        &self.request
    }

    /// The problem's known answer, kept out of the request (and so out of the stored run):
    /// the hint ladder is screened against it and trusts the run's solution only if it agrees.
    pub fn with_answer_key(mut self, answer_key: Option<&str>) -> Self {
        self.answer_key = answer_key
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_owned);
        self
    }

    /// Runs the scaffold on this thread (blocking), recording every event and handing it to
    /// `sink` in the same order. The stream ends with exactly one terminal event (`stats`,
    /// `cancelled` or `error`), even if the pipeline panics; the run's record is complete
    /// when this returns.
    pub fn run(
        self,
        cancel: &CancelToken,
        sink: &mut dyn RunSink,
    ) -> Result<RunOutcome, ScaffoldError> {
        let StartedRun {
            request,
            backends,
            recorder,
            answer_key,
        } = self;
        let mut fan_out = FanOut {
            next_seq: 0,
            last_elapsed_ms: 0,
            ended: false,
            recorder: recorder.as_ref().map(|(recorder, _)| recorder),
            sink,
            cancel,
        };
        let pipeline = Pipeline {
            solver: backends.solver.as_ref(),
            planner: backends.planner.as_ref(),
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            pipeline.run_with_key(&request, answer_key.as_deref(), cancel, &mut |event| {
                fan_out.send(event)
            })
        }))
        .unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown".into());
            tracing::error!("the run panicked: {what}");
            Err(ScaffoldError::Backend(
                format!("internal error ({what}); the run was stopped, please report it").into(),
            ))
        });
        if !fan_out.ended {
            let kind = match &outcome {
                Err(ScaffoldError::Cancelled) => RunEvent::Cancelled,
                Err(e) => RunEvent::Error {
                    message: e.to_string(),
                },
                Ok(_) => RunEvent::Error {
                    message: "the run ended without its final statistics".into(),
                },
            };
            fan_out.send(Event {
                seq: fan_out.next_seq,
                elapsed_ms: fan_out.last_elapsed_ms,
                kind,
            });
        }
        if let Some((recorder, runtime)) = recorder {
            let run = recorder.run();
            match runtime.block_on(recorder.finish()) {
                Ok(_) => tracing::info!(run, "run stored"),
                Err(e) => tracing::error!(run, "the run could not be stored completely: {e}"),
            }
        }
        outcome
    }
}

/// Hands each event to the store, then to the front end, and notes whether the run ended.
struct FanOut<'a> {
    next_seq: u64,
    last_elapsed_ms: u64,
    ended: bool,
    recorder: Option<&'a RunRecorder>,
    sink: &'a mut dyn RunSink,
    cancel: &'a CancelToken,
}

impl FanOut<'_> {
    fn send(&mut self, event: Event) {
        if self.ended {
            // Anything after the terminal event would contradict it.
            tracing::error!(kind = event.kind.kind_name(), "event after the run ended");
            return;
        }
        self.next_seq = event.seq + 1;
        self.last_elapsed_ms = event.elapsed_ms;
        self.ended = event.kind.is_terminal();
        if let Some(recorder) = self.recorder {
            recorder.record(&event);
        }
        if self.sink.event(&event) == SinkFlow::Gone {
            self.cancel.cancel();
        }
    }
}
