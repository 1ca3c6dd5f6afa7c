//! The scheduler thread and its queue.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::mpsc;

use crate::decode::batched::{derive_seed, pick_parallel, PickJob};
use crate::decode::plain::{
    CancelToken, GenerateOptions, Generation, RowDecoder, RowStep, StopReason,
};
use crate::decode::think_budget::{state_after_prompt, ThinkState};
use crate::error::{EngineError, Result};
use crate::loader::LoadedModel;
use crate::model::{logits_to_host, KvCache, LogitsFor, Model};
use crate::serving::stats::{Counters, ServeStats};
use crate::tokenizer::Tokenizer;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// Rows decoded together at most (a request with `n` completions takes `n` rows).
    pub max_rows: usize,
    /// Requests that may wait for rows; beyond this a request is refused as busy.
    pub max_waiting: usize,
    /// Prompt tokens processed per step, over all rows: bounds how long one client's long
    /// prompt delays every other client's next token.
    pub prefill_budget: usize,
    /// Positions per row (prompt and completion), at most the model's context.
    pub context: usize,
    /// Start new rows from the cached keys and values of the prompt prefix that recent
    /// requests shared (the system prompt and template, in a classroom every request's),
    /// instead of recomputing it. Off: every prompt is computed whole, exactly as alone.
    pub prefix_cache: bool,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            max_rows: 32,
            max_waiting: 64,
            prefill_budget: 512,
            context: 4096,
            prefix_cache: true,
        }
    }
}

/// A templated, tokenized prompt and how to continue it.
#[derive(Debug, Clone)]
pub struct ServeRequest {
    pub prompt_ids: Vec<u32>,
    /// Independent completions; row `r` samples with `derive_seed(options.sampling.seed, r)`.
    pub n: usize,
    pub options: GenerateOptions,
}

/// What a client receives, in order: `Admitted`, then each row's deltas and its `Finished`
/// (rows interleave), or `Failed`.
#[derive(Debug)]
pub enum ServeEvent {
    /// The request left the queue; its prompt is being processed.
    Admitted { queue_seconds: f64 },
    /// More text of row `row`.
    Delta { row: usize, text: String },
    /// Row `row` is complete (every row of the request gets exactly one).
    Finished { row: usize, generation: Generation },
    /// The model failed; the request ends.
    Failed { message: String },
}

/// How busy the scheduler is (for `/health` and logs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Load {
    pub waiting: usize,
    pub active_requests: usize,
    pub active_rows: usize,
    /// Prompt tokens taken from the prefix cache instead of computed, since the start.
    pub reused_prompt_tokens: u64,
}

/// A handle to the scheduler thread; cheap to clone.
#[derive(Clone)]
pub struct Scheduler {
    shared: Arc<Shared>,
}

struct Shared {
    config: SchedulerConfig,
    state: Mutex<QueueState>,
    wake: Condvar,
    counters: Counters,
}

#[derive(Default)]
struct QueueState {
    waiting: VecDeque<Pending>,
    load: Load,
    stopped: bool,
    next_id: u64,
    /// Moving average of a request's time from admission to its last row (for Retry-After).
    service_seconds: f64,
}

struct Pending {
    id: u64,
    request: ServeRequest,
    events: mpsc::UnboundedSender<ServeEvent>,
    cancel: CancelToken,
    submitted: Instant,
}

impl Scheduler {
    /// Starts the scheduler thread for `model`.
    pub fn start(model: Arc<LoadedModel>, config: SchedulerConfig) -> Result<Scheduler> {
        if config.max_rows == 0 || config.prefill_budget == 0 {
            return Err(EngineError::InvalidSetting(
                "the scheduler needs at least one row and a prefill budget of at least 1".into(),
            ));
        }
        let config = SchedulerConfig {
            context: config.context.min(model.model.config().context_length),
            ..config
        };
        let shared = Arc::new(Shared {
            config,
            state: Mutex::new(QueueState::default()),
            wake: Condvar::new(),
            counters: Counters::default(),
        });
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name("k2-scheduler".into())
            .spawn(move || run(&thread_shared, &model))
            .map_err(|e| EngineError::InvalidSetting(format!("cannot start the scheduler: {e}")))?;
        Ok(Scheduler { shared })
    }

    pub fn config(&self) -> SchedulerConfig {
        self.shared.config
    }

    pub fn load(&self) -> Load {
        self.shared.lock().load
    }

    /// Totals since the start (tokens, step time, refusals, time to first token).
    pub fn stats(&self) -> ServeStats {
        self.shared.counters.snapshot()
    }

    /// Queues `request`; its events arrive on the returned channel. Cancelling `cancel` (or
    /// dropping the receiver) ends the request at the next step.
    pub fn submit(
        &self,
        request: ServeRequest,
        cancel: CancelToken,
    ) -> Result<mpsc::UnboundedReceiver<ServeEvent>> {
        let config = self.shared.config;
        if request.n == 0 || request.n > config.max_rows {
            return Err(EngineError::InvalidSetting(format!(
                "n must be between 1 and {} (the server's rows)",
                config.max_rows
            )));
        }
        if request.prompt_ids.is_empty() {
            return Err(EngineError::InvalidSetting("the prompt is empty".into()));
        }
        if request.prompt_ids.len() >= config.context {
            return Err(EngineError::PromptTooLong {
                prompt_tokens: request.prompt_ids.len(),
                context_length: config.context,
            });
        }
        request.options.validate()?;
        let (events, receiver) = mpsc::unbounded_channel();
        let mut state = self.shared.lock();
        if state.stopped {
            return Err(EngineError::InvalidSetting(
                "the model's scheduler has stopped".into(),
            ));
        }
        state
            .check_room(&config)
            .inspect_err(|_| self.shared.counters.count_refused())?;
        let id = state.next_id;
        state.next_id += 1;
        state.waiting.push_back(Pending {
            id,
            request,
            events,
            cancel,
            submitted: Instant::now(),
        });
        state.load.waiting = state.waiting.len();
        drop(state);
        self.shared.wake.notify_one();
        Ok(receiver)
    }

    /// `Err(Busy)` when a new request would be refused for a full queue: what `submit`
    /// checks, for callers (the scaffold endpoint) that must refuse before starting work.
    pub fn check_room(&self) -> Result<()> {
        self.shared
            .lock()
            .check_room(&self.shared.config)
            .inspect_err(|_| self.shared.counters.count_refused())
    }

    /// Stops the thread: waiting and active requests fail with a message.
    pub fn shutdown(&self) {
        self.shared.lock().stopped = true;
        self.shared.wake.notify_one();
    }
}

impl QueueState {
    /// Refuses a new request when the queue is full. Requests queue until the scheduler's next
    /// step admits them: those that free rows will take at once never count against the
    /// waiting limit.
    fn check_room(&self, config: &SchedulerConfig) -> Result<()> {
        let free_rows = config.max_rows.saturating_sub(self.load.active_rows);
        if self.waiting.len() < config.max_waiting + free_rows {
            return Ok(());
        }
        let rounds = (self.waiting.len() as f64 / config.max_rows as f64).ceil() + 1.0;
        let retry_after_s = (self.service_seconds.max(1.0) * rounds).ceil().min(120.0) as u64;
        Err(EngineError::Busy {
            reason: format!("{} requests are waiting", self.waiting.len()),
            retry_after_s,
        })
    }

    /// Publishes the queue's and the batch's current load.
    fn publish_load(&mut self, batch: &Batch<'_>) {
        self.load = Load {
            waiting: self.waiting.len(),
            ..batch.load()
        };
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // A panic on the scheduler thread must not take every request handler with it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The scheduler thread: admit, step, repeat; sleep while there is nothing to do.
fn run(shared: &Shared, model: &LoadedModel) {
    // The batch's cache counts this thread among those sharing the GPU (see `model`).
    let mut batch = Batch::new(
        &model.model,
        &model.tokenizer,
        shared.config,
        &shared.counters,
    );
    loop {
        let mut state = shared.lock();
        loop {
            if state.stopped {
                let waiting = std::mem::take(&mut state.waiting);
                drop(state);
                for p in waiting {
                    let _ = p.events.send(ServeEvent::Failed {
                        message: "the server is shutting down".into(),
                    });
                }
                batch.fail_all("the server is shutting down");
                return;
            }
            admit(&mut state, &mut batch);
            if !batch.is_idle() {
                break;
            }
            state = shared
                .wake
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        drop(state);

        let finished = match batch.step() {
            Ok(finished) => finished,
            Err(e) => {
                tracing::error!(error = %e, "batch step failed; failing its requests");
                batch.fail_all(&e.to_string());
                Vec::new()
            }
        };
        let mut state = shared.lock();
        for seconds in finished {
            state.service_seconds = if state.service_seconds == 0.0 {
                seconds
            } else {
                0.8 * state.service_seconds + 0.2 * seconds
            };
        }
        state.publish_load(&batch);
    }
}

/// Moves waiting requests into the batch, in arrival order, while their rows fit.
fn admit(state: &mut QueueState, batch: &mut Batch<'_>) {
    while let Some(front) = state.waiting.front() {
        if front.cancel.is_cancelled() || front.events.is_closed() {
            let gone = state.waiting.pop_front();
            drop(gone);
            continue;
        }
        if batch.rows_in_use() + front.request.n > batch.config.max_rows {
            break;
        }
        let Some(pending) = state.waiting.pop_front() else {
            break;
        };
        if let Err(e) = batch.add(pending) {
            tracing::error!(error = %e, "could not add a request to the batch");
        }
    }
    state.publish_load(batch);
}

/// Shared prompt prefixes shorter than this are recomputed (copying is not worth it).
const MIN_SHARED_PREFIX: usize = 16;

/// The keys and values of a prompt prefix that recent requests shared.
struct CachedPrefix {
    tokens: Vec<u32>,
    kv: KvCache,
}

/// Length of the common prefix of `a` and `b`.
fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// A request being served.
struct Active {
    id: u64,
    prompt: Vec<u32>,
    /// Tokens this prompt shares with the one admitted before it.
    shared_with_previous: usize,
    n: usize,
    options: GenerateOptions,
    events: mpsc::UnboundedSender<ServeEvent>,
    cancel: CancelToken,
    submitted: Instant,
    admitted: Instant,
    prefilled: Option<Instant>,
    /// Whether a token was generated for this request yet (time to first token).
    first_token: bool,
    rows_left: usize,
}

impl Active {
    fn is_abandoned(&self) -> bool {
        self.cancel.is_cancelled() || self.events.is_closed()
    }

    fn send(&self, event: ServeEvent) {
        // A closed channel means the client left; the request is dropped at the next step.
        let _ = self.events.send(event);
    }
}

/// One cache row's job.
struct Slot<'t> {
    request: u64,
    state: SlotState<'t>,
}

enum SlotState<'t> {
    /// Prompt tokens before `next` are in the cache.
    Prefill { next: usize },
    /// Completion row `row`; `feed` is the span for the next pass (the token just picked and
    /// any the decoder forced after it; empty before the first pick).
    Decode {
        row: usize,
        // Boxed: a decoder is large, and a prefilling slot holds none.
        decoder: Box<RowDecoder<'t>>,
        feed: Vec<u32>,
    },
}

/// The rows decoding together: `slots[i]` describes cache row `i`.
struct Batch<'m> {
    model: &'m Model,
    tokenizer: &'m Tokenizer,
    config: SchedulerConfig,
    cache: KvCache,
    slots: Vec<Slot<'m>>,
    requests: Vec<Active>,
    timings: StepTimings,
    prefix: Option<CachedPrefix>,
    last_prompt: Vec<u32>,
    reused_prompt_tokens: u64,
    counters: &'m Counters,
}

/// Where step time goes, logged at debug level every [`StepTimings::EVERY`] steps.
#[derive(Default)]
struct StepTimings {
    steps: u32,
    rows: usize,
    tokens: usize,
    forward: std::time::Duration,
    sampling: std::time::Duration,
}

impl StepTimings {
    const EVERY: u32 = 100;

    fn record(
        &mut self,
        rows: usize,
        tokens: usize,
        forward: std::time::Duration,
        sampling: std::time::Duration,
    ) {
        self.steps += 1;
        self.rows += rows;
        self.tokens += tokens;
        self.forward += forward;
        self.sampling += sampling;
        if self.steps == Self::EVERY {
            let steps = f64::from(self.steps);
            tracing::debug!(
                mean_rows = self.rows as f64 / steps,
                mean_tokens = self.tokens as f64 / steps,
                forward_ms = self.forward.as_secs_f64() * 1e3 / steps,
                sampling_ms = self.sampling.as_secs_f64() * 1e3 / steps,
                "scheduler steps"
            );
            *self = StepTimings::default();
        }
    }
}

impl<'m> Batch<'m> {
    fn new(
        model: &'m Model,
        tokenizer: &'m Tokenizer,
        config: SchedulerConfig,
        counters: &'m Counters,
    ) -> Self {
        Batch {
            model,
            tokenizer,
            config,
            cache: model.new_cache(Some(config.context)),
            slots: Vec::new(),
            requests: Vec::new(),
            timings: StepTimings::default(),
            prefix: None,
            last_prompt: Vec::new(),
            reused_prompt_tokens: 0,
            counters,
        }
    }

    fn is_idle(&self) -> bool {
        self.requests.is_empty()
    }

    /// Rows reserved by active requests (a prefilling request reserves all `n` of its rows).
    fn rows_in_use(&self) -> usize {
        self.requests.iter().map(|r| r.rows_left).sum()
    }

    fn load(&self) -> Load {
        Load {
            waiting: 0,
            active_requests: self.requests.len(),
            active_rows: self.rows_in_use(),
            reused_prompt_tokens: self.reused_prompt_tokens,
        }
    }

    fn add(&mut self, pending: Pending) -> Result<()> {
        let admitted = Instant::now();
        let queue_seconds = (admitted - pending.submitted).as_secs_f64();
        let _ = pending.events.send(ServeEvent::Admitted { queue_seconds });
        let prompt = pending.request.prompt_ids;
        self.counters.add_prompt_tokens(prompt.len());
        let shared_with_previous = common_prefix(&self.last_prompt, &prompt);
        self.last_prompt.clone_from(&prompt);
        // At least the prompt's last token is computed: its logits give the first token.
        let reusable = match &self.prefix {
            Some(prefix) if self.config.prefix_cache => {
                common_prefix(&prefix.tokens, &prompt).min(prompt.len() - 1)
            }
            _ => 0,
        };
        let next = match &self.prefix {
            Some(prefix) if reusable >= MIN_SHARED_PREFIX => {
                self.cache.add_row_from(&prefix.kv, reusable)?;
                self.reused_prompt_tokens += reusable as u64;
                reusable
            }
            _ => {
                self.cache.add_row()?;
                0
            }
        };
        self.slots.push(Slot {
            request: pending.id,
            state: SlotState::Prefill { next },
        });
        self.requests.push(Active {
            id: pending.id,
            prompt,
            shared_with_previous,
            n: pending.request.n,
            options: pending.request.options,
            events: pending.events,
            cancel: pending.cancel,
            submitted: pending.submitted,
            admitted,
            prefilled: None,
            first_token: false,
            rows_left: pending.request.n,
        });
        Ok(())
    }

    fn request(&self, id: u64) -> &Active {
        self.requests
            .iter()
            .find(|r| r.id == id)
            .expect("every slot belongs to an active request")
    }

    /// One forward pass for every row. Returns the service times of requests that completed.
    fn step(&mut self) -> Result<Vec<f64>> {
        self.drop_abandoned();
        if self.slots.is_empty() {
            return Ok(self.retire_finished_requests());
        }
        let step_started = Instant::now();

        // What each row feeds: one token, or the next slice of its prompt within the budget.
        let mut budget = self.config.prefill_budget;
        let mut inputs: Vec<Vec<u32>> = Vec::with_capacity(self.slots.len());
        for slot in &self.slots {
            inputs.push(match &slot.state {
                SlotState::Prefill { next } => {
                    let prompt = &self.request(slot.request).prompt;
                    let take = (prompt.len() - next).min(budget);
                    budget -= take;
                    prompt[*next..next + take].to_vec()
                }
                SlotState::Decode { feed, .. } => feed.clone(),
            });
        }
        let batch: Vec<&[u32]> = inputs.iter().map(Vec::as_slice).collect();
        let forward_started = Instant::now();
        let out = self
            .model
            .forward(&mut self.cache, &batch, LogitsFor::Last)?;
        let mut logits = logits_to_host(&out)?;
        let forward = forward_started.elapsed();

        // Prompts that are now fully cached become `n` decoding rows.
        let now = Instant::now();
        for i in 0..self.slots.len() {
            let id = self.slots[i].request;
            let SlotState::Prefill { next } = &mut self.slots[i].state else {
                continue;
            };
            *next += inputs[i].len();
            let active = self
                .requests
                .iter_mut()
                .find(|r| r.id == id)
                .expect("every slot belongs to an active request");
            if *next < active.prompt.len() {
                continue;
            }
            active.prefilled = Some(now);
            let shared = active.shared_with_previous.min(active.prompt.len() - 1);
            // A recurrent layer's state cannot be cut back to a shared prefix.
            let prefixes = self.config.prefix_cache && !self.cache.has_recurrent_layers();
            if prefixes && shared >= MIN_SHARED_PREFIX {
                let covered = self.prefix.as_ref().is_some_and(|p| {
                    p.tokens.len() >= shared && p.tokens[..shared] == active.prompt[..shared]
                });
                if !covered {
                    self.prefix = Some(CachedPrefix {
                        tokens: active.prompt[..shared].to_vec(),
                        kv: self.cache.prefix_of(i, shared)?,
                    });
                }
            }
            let (n, seed) = (active.n, active.options.sampling.seed);
            let options = active.options.clone();
            let think_start = state_after_prompt(self.tokenizer, &active.prompt);
            if n > 1 {
                self.cache.fork(i, n - 1)?;
            }
            for row in 0..n {
                let state = SlotState::Decode {
                    row,
                    decoder: Box::new(RowDecoder::new(
                        self.tokenizer,
                        &options,
                        derive_seed(seed, row),
                        false,
                        think_start,
                    )),
                    feed: Vec::new(),
                };
                if row == 0 {
                    self.slots[i].state = state;
                } else {
                    self.slots.push(Slot { request: id, state });
                    logits.push(logits[i].clone());
                }
            }
        }

        // Sample every decoding row that has fresh logits, in parallel.
        let mut jobs: Vec<PickJob<'_, 'm>> = self
            .slots
            .iter_mut()
            .zip(logits.iter_mut())
            .map(|(slot, logits)| {
                let row = match &mut slot.state {
                    SlotState::Decode { decoder, .. } if !logits.is_empty() => Some(&mut **decoder),
                    _ => None,
                };
                PickJob {
                    row,
                    logits,
                    picked: None,
                }
            })
            .collect();
        let pick_started = Instant::now();
        pick_parallel(&mut jobs);
        let picks: Vec<Option<u32>> = jobs.into_iter().map(|job| job.picked).collect();
        self.count_generated(&picks);
        self.timings.record(
            self.slots.len(),
            inputs.iter().map(Vec::len).sum(),
            forward,
            pick_started.elapsed(),
        );

        // Stream, and find the rows that ended.
        let mut ended = Vec::new();
        for (i, picked) in picks.into_iter().enumerate() {
            if logits[i].is_empty() {
                continue;
            }
            let cached = self.cache.len(i);
            let limit = self.cache.max_len();
            let Slot { request, state } = &mut self.slots[i];
            let SlotState::Decode {
                row, decoder, feed, ..
            } = state
            else {
                continue;
            };
            let active = self
                .requests
                .iter()
                .find(|r| r.id == *request)
                .expect("every slot belongs to an active request");
            let row = *row;
            let mut on_delta = |d: crate::decode::plain::Delta<'_>| {
                if !d.text.is_empty() {
                    active.send(ServeEvent::Delta {
                        row,
                        text: d.text.to_owned(),
                    });
                }
            };
            *feed = match decoder.accept(picked, &mut on_delta) {
                RowStep::Feed(tokens) if cached + tokens.len() > limit => {
                    decoder.finish(StopReason::ContextFull, &mut on_delta);
                    Vec::new()
                }
                RowStep::Feed(tokens) => tokens,
                RowStep::Finished => Vec::new(),
            };
            if feed.is_empty() {
                ended.push(i);
            }
        }
        self.remove_slots(&ended, None);
        self.counters.add_step_time(step_started.elapsed());
        Ok(self.retire_finished_requests())
    }

    /// Counts this step's sampled tokens, and the first token of each request that had none.
    fn count_generated(&mut self, picks: &[Option<u32>]) {
        let mut generated = 0;
        for (slot, picked) in self.slots.iter().zip(picks) {
            if picked.is_none() {
                continue;
            }
            generated += 1;
            if let Some(active) = self
                .requests
                .iter_mut()
                .find(|r| r.id == slot.request && !r.first_token)
            {
                active.first_token = true;
                self.counters
                    .observe_first_token(active.submitted.elapsed());
            }
        }
        self.counters.add_generated_tokens(generated);
    }

    /// Removes the rows of requests whose client cancelled or went away.
    fn drop_abandoned(&mut self) {
        let abandoned: Vec<u64> = self
            .requests
            .iter()
            .filter(|r| r.is_abandoned())
            .map(|r| r.id)
            .collect();
        if abandoned.is_empty() {
            return;
        }
        let slots: Vec<usize> = (0..self.slots.len())
            .filter(|&i| abandoned.contains(&self.slots[i].request))
            .collect();
        self.remove_slots(&slots, Some(StopReason::Cancelled));
        // A request still prefilling has no decoding rows yet: each of its rows ends with an
        // empty, cancelled result.
        for active in &mut self.requests {
            if abandoned.contains(&active.id) && active.prefilled.is_none() {
                for row in 0..active.n {
                    let mut decoder = RowDecoder::new(
                        self.tokenizer,
                        &active.options,
                        0,
                        false,
                        ThinkState::Outside,
                    );
                    decoder.finish(StopReason::Cancelled, &mut |_| {});
                    active.send(ServeEvent::Finished {
                        row,
                        generation: decoder.into_generation(
                            active.prompt.len(),
                            active.admitted,
                            None,
                        ),
                    });
                }
                active.rows_left = 0;
            }
        }
    }

    /// Drops cache rows `indices` (ascending), sending each decoding row's result; `reason`
    /// ends rows that are still running.
    fn remove_slots(&mut self, indices: &[usize], reason: Option<StopReason>) {
        if indices.is_empty() {
            return;
        }
        let mut keep = Vec::with_capacity(self.slots.len());
        let mut kept_slots = Vec::with_capacity(self.slots.len());
        for (i, slot) in std::mem::take(&mut self.slots).into_iter().enumerate() {
            if indices.binary_search(&i).is_err() {
                keep.push(i);
                kept_slots.push(slot);
                continue;
            }
            let SlotState::Decode {
                row, mut decoder, ..
            } = slot.state
            else {
                continue;
            };
            let active = self
                .requests
                .iter_mut()
                .find(|r| r.id == slot.request)
                .expect("every slot belongs to an active request");
            if let Some(reason) = reason {
                decoder.finish(reason, &mut |d| {
                    if !d.text.is_empty() {
                        let _ = active.events.send(ServeEvent::Delta {
                            row,
                            text: d.text.to_owned(),
                        });
                    }
                });
            }
            let generation =
                (*decoder).into_generation(active.prompt.len(), active.admitted, active.prefilled);
            active.send(ServeEvent::Finished { row, generation });
            active.rows_left -= 1;
        }
        self.slots = kept_slots;
        self.cache.select(&keep);
    }

    /// Forgets requests with no rows left; returns their service times.
    fn retire_finished_requests(&mut self) -> Vec<f64> {
        let mut seconds = Vec::new();
        self.requests.retain(|r| {
            if r.rows_left > 0 {
                return true;
            }
            seconds.push(r.admitted.elapsed().as_secs_f64());
            false
        });
        seconds
    }

    /// Ends every request with `message` and empties the cache (after a failed step its
    /// contents are unknown).
    fn fail_all(&mut self, message: &str) {
        for active in self.requests.drain(..) {
            active.send(ServeEvent::Failed {
                message: message.to_owned(),
            });
        }
        self.slots.clear();
        self.cache.clear();
    }
}
