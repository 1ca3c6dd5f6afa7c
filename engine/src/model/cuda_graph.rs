//! Decoding steps replayed as CUDA graphs.
//!
//! A 64-layer decoding step is about 1,300 kernel launches. At batch 1 on an H100 the host
//! spends several microseconds on each (candle's op dispatch, the driver's launch), which
//! adds up to a third of the step beyond the weight reads, the part no kernel can speed up.
//! A graph records the step's launches once and replays them with one call.
//!
//! What makes replay valid: a graph bakes in every kernel's arguments, so everything that
//! changes from one step to the next lives in device buffers the graph reads: token ids,
//! positions, and the attention lane table (cache addresses and positions, see
//! `cuda_attention`). Those buffers belong to the captured step and are rewritten before each
//! launch. The shapes (tokens per row, the logits picked, the cache's capacity) are the
//! graph's key; a step of another shape runs op by op. A key is captured the second time
//! it comes in a row, so one-off shapes (a speculative pass of a new length, a server batch
//! that changes every step) never pay for a capture.
//!
//! Every model runs on the process's one CUDA stream (`device.rs`), and a capture records
//! any work put on that stream meanwhile, by any thread: another thread's kernels, copies and
//! even the frees of its dropped tensors would become part of the graph (not run now, and
//! run again at every replay, on memory long gone). CUDA steps of all models are serialized
//! here, but a thread's work between its steps (reading logits, growing or forking a cache,
//! dropping tensors) is not, so graphs are only captured while at most one thread uses the
//! GPU. Threads count themselves in ([`GpuThread`]) before their first GPU work: on creating
//! a cache and on their first step, and loading counts for as long as it uploads. Replaying
//! a captured graph is an ordinary stream operation and stays safe with any number of
//! threads.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use candle_core::cuda_backend::cudarc::driver::sys::{
    CUgraphInstantiate_flags, CUstreamCaptureMode,
};
use candle_core::cuda_backend::cudarc::driver::{result, CudaGraph, CudaStream};
use candle_core::{DType, Device, Tensor};

use super::attention::QUERY_BY_QUERY_MAX;
use super::cuda_util::device_address;
use super::kv_cache::KvCache;
use super::scratch_epoch::Scratch;
use super::step::{fused_attention, StepInputs, StepPlan};
use super::Model;
use crate::error::{EngineError, Result};

/// Graphs kept per model (least recently used dropped first): batch 1, best-of-N's rows as
/// candidates finish, a server's usual batch sizes.
const MAX_GRAPHS: usize = 8;

/// One CUDA step at a time in the process (see the module's note); the lock also guards
/// the largest product workspace a step has needed (see [`Scratch`]).
static SERIAL: Mutex<Scratch> = Mutex::new(Scratch::new());

/// Threads using the GPU, counted in by [`GpuThread`].
static GPU_THREADS: AtomicUsize = AtomicUsize::new(0);

/// One thread counted among those using the GPU while it is held; while two or more are
/// held, no new graph is captured (see the module's note).
pub(super) struct GpuThread(());

impl GpuThread {
    /// Counts the calling thread in until the result is dropped (a model load).
    pub fn enter() -> GpuThread {
        // Waits for a capture in progress: it must not record this thread's first work.
        let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        GPU_THREADS.fetch_add(1, Ordering::SeqCst);
        GpuThread(())
    }

    /// Counts the calling thread in until it exits; once per thread. Must not be called
    /// with `SERIAL` held.
    pub fn register_current() {
        thread_local! {
            static REGISTERED: std::cell::OnceCell<GpuThread> = const { std::cell::OnceCell::new() };
        }
        REGISTERED.with(|registered| {
            registered.get_or_init(GpuThread::enter);
        });
    }
}

impl Drop for GpuThread {
    fn drop(&mut self) {
        GPU_THREADS.fetch_sub(1, Ordering::SeqCst);
    }
}

pub(super) struct StepGraphs {
    enabled: AtomicBool,
    state: Mutex<State>,
}

impl Default for StepGraphs {
    fn default() -> Self {
        let enabled = std::env::var("K2_CUDA_GRAPHS").map_or(true, |v| v != "0");
        StepGraphs {
            enabled: AtomicBool::new(enabled),
            state: Mutex::new(State::default()),
        }
    }
}

#[derive(Default)]
struct State {
    /// The scratch epoch the graphs were captured in (see [`Scratch`]).
    epoch: u64,
    /// The key of the last step run, so a shape is captured when it repeats.
    previous: Option<StepKey>,
    /// Most recently used last.
    graphs: Vec<Captured>,
}

/// Everything a captured step's launches depend on besides the buffers it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StepKey {
    tokens_per_row: Vec<usize>,
    picked: Option<Vec<u32>>,
    capacity: usize,
}

impl StepKey {
    /// The key of a step a graph can replay: every row's span goes through the fused
    /// attention kernels (prefill spans write the cache at offsets baked into their ops).
    fn of(plan: &StepPlan, cache: &KvCache, model: &Model) -> Option<StepKey> {
        // A hybrid's recurrent layers compute on the host, which a graph cannot capture.
        let fused = fused_attention(&model.config, cache, &model.device)
            && model.config.switches.linear_attention.is_none()
            && plan.spans.iter().all(|s| s.1 <= QUERY_BY_QUERY_MAX)
            && plan.spans.iter().any(|s| s.1 > 0);
        fused.then(|| StepKey {
            tokens_per_row: plan.spans.iter().map(|s| s.1).collect(),
            picked: plan.picked.clone(),
            capacity: cache.capacity(),
        })
    }
}

struct Captured {
    key: StepKey,
    /// The buffers the graph reads, rewritten before each launch.
    inputs: StepInputs,
    /// The buffer the graph leaves its logits in.
    logits: Tensor,
    graph: CudaGraph,
}

// SAFETY: a CUDA graph may be launched from any thread with the context bound (cudarc binds
// it on every call); it must not be used from two threads at once, and it is only reached
// through `StepGraphs::state`'s mutex.
unsafe impl Send for Captured {}

impl StepGraphs {
    /// Switches graph replay on or off for this model (on unless `K2_CUDA_GRAPHS=0`);
    /// benchmarks compare the two in one process.
    pub fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::Relaxed);
    }

    /// Drops every captured graph (they replay the kernels chosen when captured).
    pub fn clear(&self) {
        let mut state = self.lock();
        state.graphs.clear();
        state.previous = None;
    }

    pub fn run(&self, model: &Model, cache: &mut KvCache, plan: &StepPlan) -> Result<Tensor> {
        GpuThread::register_current();
        let mut serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        let epoch = serial.record(plan.ids.len(), model.config.widest_product_input());
        let mut state = self.lock();
        if state.epoch != epoch {
            // This step needs more product workspace than any before: graphs captured earlier
            // were seen to go stale then (see `Scratch`).
            state.graphs.clear();
            state.previous = None;
            state.epoch = epoch;
        }
        let key = StepKey::of(plan, cache, model).filter(|_| self.enabled.load(Ordering::Relaxed));
        let Some(key) = key else {
            return eager(model, cache, plan);
        };
        if let Some(i) = state.graphs.iter().position(|c| c.key == key) {
            let mut captured = state.graphs.remove(i);
            let logits = captured.replay(cache, plan);
            state.graphs.push(captured);
            return logits;
        }
        if state.previous.as_ref() != Some(&key) {
            state.previous = Some(key);
            return eager(model, cache, plan);
        }
        if GPU_THREADS.load(Ordering::SeqCst) > 1 {
            // Another thread's work could land in the capture; graphs already captured
            // still replay.
            return eager(model, cache, plan);
        }
        let Device::Cuda(dev) = &model.device else {
            return eager(model, cache, plan);
        };
        // The graph's own input buffers are uploaded before candle's upload cache is on,
        // so none of them is a cached buffer shared with other uses.
        let inputs = StepInputs::upload(plan, cache, &model.config, &model.device)?;
        // Candle uploads small layout descriptions for some ops; captured, they must come
        // from its cache, which this step's eager run fills.
        let _upload_cache = dev.enable_cuda_graph_htod_cache();
        let logits = model.compute(&inputs, cache)?;
        let started = Instant::now();
        let shape = logits.dims2()?;
        match capture(model, cache, inputs, key.clone(), shape, &dev.cuda_stream()) {
            Ok(captured) => {
                tracing::debug!(
                    rows = ?key.tokens_per_row,
                    capacity = key.capacity,
                    ms = started.elapsed().as_secs_f64() * 1e3,
                    "captured a CUDA graph of a decoding step"
                );
                if state.graphs.len() == MAX_GRAPHS {
                    state.graphs.remove(0);
                }
                state.graphs.push(captured);
            }
            Err(e) => {
                // Steps still run, op by op; the message says what to report.
                tracing::warn!("CUDA graphs switched off for this model: capture failed: {e}");
                self.set_enabled(false);
            }
        }
        Ok(logits)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn eager(model: &Model, cache: &mut KvCache, plan: &StepPlan) -> Result<Tensor> {
    let inputs = StepInputs::upload(plan, cache, &model.config, &model.device)?;
    model.compute(&inputs, cache)
}

/// Records `model.compute` on `inputs` (not run: capture only records) into a graph that
/// leaves its logits in a buffer of its own. Every temporary is allocated and freed inside
/// the graph, so it can be launched again and again.
fn capture(
    model: &Model,
    cache: &mut KvCache,
    inputs: StepInputs,
    key: StepKey,
    (rows, vocab): (usize, usize),
    stream: &std::sync::Arc<CudaStream>,
) -> Result<Captured> {
    let logits = Tensor::zeros((rows, vocab), DType::F32, &model.device)?;
    let out = device_address(&logits)?;
    stream
        .begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
        .map_err(graph_error)?;
    let recorded = (|| -> Result<()> {
        let step = model.compute(&inputs, cache)?.contiguous()?;
        let bytes = step.elem_count() * std::mem::size_of::<f32>();
        if step.dims2()? != (rows, vocab) {
            return Err(EngineError::Kernel(format!(
                "a captured step made logits {:?}, not [{rows}, {vocab}]",
                step.dims()
            )));
        }
        // SAFETY: both buffers hold `bytes` and live past the copy (`logits` in the
        // graph's owner, `step` until the graph frees it after this copy).
        unsafe { result::memcpy_dtod_async(out, device_address(&step)?, bytes, stream.cu_stream()) }
            .map_err(graph_error)
    })();
    // Capture always ends, also after an error, or the stream stays unusable.
    let ended = stream
        .end_capture(CUgraphInstantiate_flags::CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH);
    recorded?;
    let graph = ended
        .map_err(graph_error)?
        .ok_or_else(|| EngineError::Kernel("the captured step recorded nothing".into()))?;
    graph.upload().map_err(graph_error)?;
    Ok(Captured {
        key,
        inputs,
        logits,
        graph,
    })
}

impl Captured {
    /// Writes this step's ids, positions and lanes into the graph's buffers, launches it
    /// and returns a copy of its logits (the next launch overwrites the buffer).
    fn replay(&mut self, cache: &KvCache, plan: &StepPlan) -> Result<Tensor> {
        overwrite(&self.inputs.ids, &plan.ids)?;
        overwrite(&self.inputs.positions, &plan.positions)?;
        // `picked` is part of the key: the graph's copy already holds it.
        if let Some(table) = &mut self.inputs.lanes {
            table.rewrite(cache, plan.lanes(cache))?;
        }
        self.graph.launch().map_err(graph_error)?;
        Ok(self.logits.copy()?)
    }
}

/// Copies `values` into the u32 tensor `t` in place, in stream order.
fn overwrite(t: &Tensor, values: &[u32]) -> Result<()> {
    if t.elem_count() != values.len() || t.dtype() != DType::U32 {
        return Err(EngineError::Kernel(
            "a CUDA graph input was rewritten with another shape".into(),
        ));
    }
    let Device::Cuda(dev) = t.device() else {
        return Err(EngineError::Kernel(
            "a CUDA graph buffer is not on the GPU".into(),
        ));
    };
    // SAFETY: `t` holds `values.len()` u32s; a copy from pageable host memory is staged
    // before the call returns, so `values` may go right after.
    unsafe { result::memcpy_htod_async(device_address(t)?, values, dev.cuda_stream().cu_stream()) }
        .map_err(graph_error)
}

fn graph_error(e: impl std::fmt::Display) -> EngineError {
    EngineError::Kernel(format!("CUDA graph: {e}"))
}
