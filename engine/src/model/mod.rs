//! Decoder-only transformers (Qwen2, Llama, Qwen3, K2 Horizon, SmolLM3, Granite) with an external KV cache.
//!
//! One forward pass serves every decoding strategy: it takes a ragged batch (each cache row
//! appends its own number of tokens at its own position) and returns logits for the last
//! position of each row or for all of them. Plain decoding passes one row and one token,
//! best-of-N passes N rows, speculative verification passes k+1 tokens for a row.

mod attention;
pub mod config;
#[cfg(feature = "cuda")]
mod cuda_attention;
#[cfg(feature = "cuda")]
mod cuda_delta_net;
#[cfg(feature = "cuda")]
mod cuda_graph;
#[cfg(feature = "cuda")]
mod cuda_ops;
#[cfg(feature = "cuda")]
mod cuda_q8;
#[cfg(feature = "cuda")]
mod cuda_util;
mod decode_attention;
mod delta_net;
pub mod delta_rule;
mod host_logits;
mod kernel_op;
mod kv_cache;
mod linear;
mod load_gguf;
mod load_safetensors;
mod projections;
mod recurrent_state;
mod rope;
mod scratch_epoch;
mod step;
mod synthetic;

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};

pub(crate) use attention::QUERY_BY_QUERY_MAX;
pub use config::{
    Architecture, BlockSwitches, LinearAttention, ModelConfig, Multipliers, OutputGate, QkNorm,
    RopeScaling, RopeStyle,
};
pub use host_logits::logits_to_host;
pub use kv_cache::{KvCache, RollbackMode};
pub use linear::{Int8Blocks, Linear, Matrix};
pub use load_gguf::load_gguf;
pub use load_gguf::LoadProgress;
pub use load_safetensors::{load_safetensors, safetensors_files};
pub use synthetic::{random_matrix_bytes, synthetic_model, SyntheticSpec, WeightFormat};

use crate::error::{EngineError, Result};
use projections::Projections;
use rope::Rope;
use step::{StepInputs, StepPlan};

/// Switches this engine's int8 product kernels (Q8_0, Q4_K, Q6_K) on CUDA on or off for the
/// process (see [`Model::set_cuda_int8_products`], which also drops a model's captured graphs).
pub fn set_cuda_int8_products(enabled: bool) {
    #[cfg(feature = "cuda")]
    cuda_q8::set_enabled(enabled);
    #[cfg(not(feature = "cuda"))]
    let _ = enabled;
}

/// Switches the tensor-core Q4_K and Q6_K products on CUDA on or off for the process (off: the dp4a
/// kernel): benchmarks compare them in one run (a captured graph keeps the kernel it was
/// captured with).
pub fn set_cuda_tensor_core_products(enabled: bool) {
    #[cfg(feature = "cuda")]
    cuda_q8::set_tensor_cores(enabled);
    #[cfg(not(feature = "cuda"))]
    let _ = enabled;
}

/// Forces the int8 product kernels on CUDA to split every weight row over `warps` warps (1,
/// 2, 4, or 8 where the tensor-core kernels share a tile) for the process, or with `None`
/// lets them choose per matrix shape: benchmarks compare the choices with it (a captured
/// graph keeps the split it was captured with).
pub fn force_cuda_int8_warps_per_row(warps: Option<u32>) {
    #[cfg(feature = "cuda")]
    cuda_q8::force_warps_per_row(warps);
    #[cfg(not(feature = "cuda"))]
    let _ = warps;
}

/// Held while a thread uploads a model's weights: on CUDA it counts among the threads using
/// the GPU, so no decoding step is captured as a graph meanwhile (a capture would record the
/// uploads, see `cuda_graph`). Nothing on other devices.
struct UploadScope {
    #[cfg(feature = "cuda")]
    _thread: Option<cuda_graph::GpuThread>,
}

impl UploadScope {
    fn enter(device: &Device) -> UploadScope {
        #[cfg(not(feature = "cuda"))]
        let _ = device;
        UploadScope {
            #[cfg(feature = "cuda")]
            _thread: device.is_cuda().then(cuda_graph::GpuThread::enter),
        }
    }
}

/// Which positions a forward pass returns logits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogitsFor {
    /// The last new position of each row: plain and batched decoding, prefill.
    Last,
    /// Every new position of each row: speculative verification, teacher forcing.
    All,
}

struct Block {
    attn_norm: Tensor,
    mixer: Mixer,
    mlp_norm: Tensor,
    /// gate and up, in that order.
    gate_up: Projections,
    down: Linear,
}

/// What mixes positions in a block: attention over the key/value cache, or a hybrid model's
/// linear attention over its recurrent state.
enum Mixer {
    Attention(Attention),
    DeltaNet(delta_net::DeltaNet),
}

impl Mixer {
    /// The products that read the block's normalized input.
    fn input_projections(&self) -> &Projections {
        match self {
            Mixer::Attention(a) => &a.qkv,
            Mixer::DeltaNet(d) => d.input_projections(),
        }
    }

    /// Every weight matrix of the mixer.
    fn linears(&self) -> Vec<&Linear> {
        let mut layers = self.input_projections().linears();
        match self {
            Mixer::Attention(a) => layers.extend(a.gate.iter().chain([&a.o])),
            Mixer::DeltaNet(d) => layers.push(d.output_projection()),
        }
        layers
    }
}

struct Attention {
    /// q, k and v, in that order.
    qkv: Projections,
    /// The RMS norm weights of queries and keys per head ([`QkNorm`]): `[head_dim]` shared
    /// by the heads, or `[heads * head_dim]`, one row each.
    qk_norm: Option<QkNormWeights>,
    /// The attention output gate's projection (see `BlockSwitches::output_gate`).
    gate: Option<Linear>,
    o: Linear,
}

/// Query and key norm weights, flat: `[head_dim]` (shared) or `[heads * head_dim]`.
struct QkNormWeights {
    q: Tensor,
    k: Tensor,
}

impl QkNormWeights {
    /// The weights as a loader read them, checked against the form the config names.
    fn new(config: &ModelConfig, q: Tensor, k: Tensor, path: &std::path::Path) -> Result<Self> {
        let (q, k) = (q.flatten_all()?, k.flatten_all()?);
        let hd = config.head_dim;
        let (want_q, want_k) = match config.switches.qk_norm {
            QkNorm::Shared => (hd, hd),
            QkNorm::PerHead | QkNorm::None => (config.num_heads * hd, config.num_kv_heads * hd),
        };
        if q.elem_count() != want_q || k.elem_count() != want_k {
            return Err(EngineError::CorruptModel {
                path: path.to_owned(),
                reason: format!(
                    "its query/key norm weights have {} and {} values, not {want_q} and {want_k}",
                    q.elem_count(),
                    k.elem_count()
                ),
            });
        }
        Ok(QkNormWeights { q, k })
    }
}

pub struct Model {
    config: ModelConfig,
    embed: Arc<Matrix>,
    blocks: Vec<Block>,
    final_norm: Tensor,
    lm_head: Linear,
    rope: Rope,
    device: Device,
    /// Captured decoding steps, replayed on the GPU (see `cuda_graph`).
    #[cfg(feature = "cuda")]
    graphs: cuda_graph::StepGraphs,
}

impl Model {
    /// A model from its loaded parts (every loader ends here): adds the rotary tables.
    fn from_parts(
        config: ModelConfig,
        embed: Arc<Matrix>,
        mut blocks: Vec<Block>,
        final_norm: Tensor,
        lm_head: Linear,
        device: &Device,
    ) -> Result<Model> {
        for block in &mut blocks {
            if let Mixer::Attention(attention) = &mut block.mixer {
                // Its input comes from the attention, quantized in blocks of 32 only.
                attention.o.set_tensor_cores(false);
            }
        }
        let rope = Rope::new(&config, device)?;
        Ok(Model {
            config,
            embed,
            blocks,
            final_norm,
            lm_head,
            rope,
            device: device.clone(),
            #[cfg(feature = "cuda")]
            graphs: cuda_graph::StepGraphs::default(),
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Switches the replay of decoding steps as CUDA graphs on or off (on unless
    /// `K2_CUDA_GRAPHS=0`; see `cuda_graph`). Nothing changes on other devices.
    pub fn set_cuda_graphs(&self, enabled: bool) {
        #[cfg(feature = "cuda")]
        self.graphs.set_enabled(enabled);
        #[cfg(not(feature = "cuda"))]
        let _ = enabled;
    }

    /// Switches this engine's int8 product kernels on CUDA (`cuda_q8`: Q8_0, Q4_K, Q6_K) on or off
    /// for the whole process (on unless `K2_CUDA_INT8_PRODUCTS=0`); off, candle's run every
    /// product.
    /// Benchmarks compare the two in one process. Nothing changes on other devices.
    pub fn set_cuda_int8_products(&self, enabled: bool) {
        set_cuda_int8_products(enabled);
        #[cfg(feature = "cuda")]
        self.graphs.clear();
    }

    /// The most positions (all rows' together) one pass computes with the very bits that
    /// one-position steps give each of them, where that has a limit: on CUDA our int8 products
    /// serve up to 8 activation rows a launch, and longer passes fall back to candle's
    /// kernels, whose sums differ in the last bits (greedy speculation on the H100 then
    /// matched plain decoding in 4 and 5 rows of 10). `None` where a pass of any length does
    /// (the CPU kernels compute each activation row alone).
    pub fn exact_pass_positions(&self) -> Option<usize> {
        #[cfg(feature = "cuda")]
        if self.device.is_cuda() && cuda_q8::enabled() {
            return Some(cuda_q8::MAX_ROWS);
        }
        None
    }

    /// Bytes of weights one decoding step reads (every layer's matrices and the output
    /// matrix; the embedding table only gives up one row per token): with the memory
    /// bandwidth, the floor under a step's time on a GPU.
    pub fn decode_weight_bytes(&self) -> usize {
        let layers: usize = self
            .blocks
            .iter()
            .flat_map(|b| {
                let mut layers = b.mixer.linears();
                layers.extend(b.gate_up.linears());
                layers.push(&b.down);
                layers
            })
            .map(|l| l.weight().storage_bytes())
            .sum();
        layers + self.lm_head.weight().storage_bytes()
    }

    /// Bytes of recurrent state one decoding step reads and writes per row (a hybrid's
    /// linear-attention layers; 0 for a transformer): on top of [`Model::decode_weight_bytes`]
    /// in the memory floor.
    pub fn decode_state_bytes(&self) -> u64 {
        self.blocks
            .iter()
            .filter_map(|b| match &b.mixer {
                Mixer::DeltaNet(d) => Some(2 * d.shape.bytes()),
                Mixer::Attention(_) => None,
            })
            .sum()
    }

    /// Restricts the output layer to the first `tokens` ids (rounded up to 16), so logits
    /// are `[positions, tokens']`. For draft models: BPE vocabularies put their frequent
    /// tokens first, and a 152k-row output matrix is a large share of a small model's work
    /// per token. Lossless for speculation, which samples drafts from, and weighs them by,
    /// exactly this restricted distribution. Returns whether it applied (CPU kernels only).
    pub fn limit_output_vocabulary(&mut self, tokens: usize) -> bool {
        if tokens >= self.config.vocab_size {
            return false;
        }
        match self.lm_head.top_rows(tokens) {
            Some(head) => {
                self.lm_head = head;
                true
            }
            None => false,
        }
    }

    /// An empty cache sized for this model, holding up to `max_len` positions per row
    /// (capped at the model's context length).
    pub fn new_cache(&self, max_len: Option<usize>) -> KvCache {
        // The thread's cache work goes on the GPU's shared stream from now on.
        #[cfg(feature = "cuda")]
        if self.device.is_cuda() {
            cuda_graph::GpuThread::register_current();
        }
        let c = &self.config;
        let max_len = max_len.unwrap_or(c.context_length).min(c.context_length);
        let cache = KvCache::new(
            c.num_layers,
            c.num_kv_heads,
            c.head_dim,
            max_len,
            DType::F32,
            &self.device,
        );
        match &c.switches.linear_attention {
            Some(linear) => cache.with_recurrent_layers(&linear.recurrent, recurrent_shape(linear)),
            None => cache,
        }
    }

    /// Appends `batch[row]` to each cache row and returns, per row, logits `[positions, vocab]`
    /// (f32, on the model's device). Rows with no new tokens return an empty tensor.
    pub fn forward(
        &self,
        cache: &mut KvCache,
        batch: &[&[u32]],
        want: LogitsFor,
    ) -> Result<Vec<Tensor>> {
        if batch.len() != cache.rows() {
            return Err(EngineError::InvalidSetting(format!(
                "forward got {} rows of tokens for a cache of {} rows",
                batch.len(),
                cache.rows()
            )));
        }
        let needed = batch
            .iter()
            .enumerate()
            .map(|(r, t)| cache.len(r) + t.len())
            .max()
            .unwrap_or(0);
        let longest_existing = (0..cache.rows()).map(|r| cache.len(r)).max().unwrap_or(0);
        cache.reserve(needed.saturating_sub(longest_existing))?;

        let plan = StepPlan::new(cache, batch, want, self.config.vocab_size)?;
        if plan.is_empty() {
            return batch.iter().map(|_| self.empty_logits()).collect();
        }
        let logits = self.run_step(cache, &plan)?;
        for (row, &(_, t)) in plan.spans.iter().enumerate() {
            cache.advance(row, t);
        }
        let mut out = Vec::with_capacity(plan.counts.len());
        let mut offset = 0;
        for &count in &plan.counts {
            out.push(if count == 0 {
                self.empty_logits()?
            } else {
                logits.narrow(0, offset, count)?
            });
            offset += count;
        }
        Ok(out)
    }

    /// Runs a planned step: on CUDA, through a captured graph where one fits (see
    /// `cuda_graph`), else op by op. Returns the picked positions' logits, row after row.
    fn run_step(&self, cache: &mut KvCache, plan: &StepPlan) -> Result<Tensor> {
        #[cfg(feature = "cuda")]
        if self.device.is_cuda() {
            return self.graphs.run(self, cache, plan);
        }
        let inputs = StepInputs::upload(plan, cache, &self.config, &self.device)?;
        self.compute(&inputs, cache)
    }

    /// The forward pass proper, on inputs already on the device: enqueues every operation
    /// and leaves the cache's lengths alone (the caller advances them). On CUDA this is
    /// what a graph captures, so it must not copy between host and device.
    fn compute(&self, step: &StepInputs, cache: &mut KvCache) -> Result<Tensor> {
        let logits = self.compute_layers(step, cache);
        #[cfg(feature = "cuda")]
        cuda_q8::forget_offer();
        logits
    }

    fn compute_layers(&self, step: &StepInputs, cache: &mut KvCache) -> Result<Tensor> {
        let (cos, sin) = self.rope.tables(&step.positions)?;
        let nope_layers = &self.config.switches.nope_layers;
        let unrotated = match nope_layers.is_empty() {
            true => None,
            false => Some(Rope::unrotated_tables(&cos, &sin)?),
        };
        let norm = NormShape {
            eps: self.config.rms_norm_eps,
            groups: self.config.switches.norm_groups,
        };
        let multipliers = self.config.switches.multipliers;
        // Each multiplier is skipped at its default, so models without them compute exactly
        // what they always did (and keep every fused path).
        let scaled = |t: Tensor, by: f32| -> Result<Tensor> {
            Ok(if by == 1.0 { t } else { (t * f64::from(by))? })
        };
        let mut x = scaled(self.embed.rows(&step.ids)?, multipliers.embedding)?;
        // `h` is always the norm of `x` for what comes next: each residual connection and
        // the norm after it are one step (one launch on CUDA). Each producer of a product's
        // input is told whether that product reads int8 activations (`cuda_q8`), so it
        // quantizes them as it writes them.
        let output_reads_q8 = self.lm_head.int8_input().filter(|_| step.picked.is_none());
        let mut h = match self.blocks.first() {
            Some(first) => rms_norm(
                &x,
                &first.attn_norm,
                norm,
                first.mixer.input_projections().int8_input(),
            )?,
            None => rms_norm(&x, &self.final_norm, norm, output_reads_q8)?,
        };
        for (layer, block) in self.blocks.iter().enumerate() {
            let tables = match &unrotated {
                Some((one, zero)) if nope_layers.contains(&layer) => (one, zero),
                _ => (&cos, &sin),
            };
            let o = match &block.mixer {
                Mixer::Attention(attention) => {
                    let attn = attention::self_attention(
                        &self.config,
                        &self.rope,
                        tables,
                        attention,
                        &h,
                        cache,
                        layer,
                        step,
                    )?;
                    let attn = match &attention.gate {
                        Some(gate) => (attn * self.output_gate(&gate.forward(&h)?)?)?,
                        None => attn,
                    };
                    attention.o.forward(&attn)?
                }
                Mixer::DeltaNet(delta_net) => delta_net.forward(&h, cache, layer, step)?,
            };
            let o = scaled(o, multipliers.residual)?;
            let gate_up_reads_q8 = block.gate_up.int8_input();
            (x, h) = add_rms_norm(&x, &o, &block.mlp_norm, norm, gate_up_reads_q8)?;
            let gate_up = block.gate_up.forward(&h)?;
            let down_reads_q8 = block.down.int8_input();
            let mlp = block
                .down
                .forward(&silu_mul(&gate_up[0], &gate_up[1], down_reads_q8)?)?;
            let mlp = scaled(mlp, multipliers.residual)?;
            let (next_norm, next_reads_q8) = match self.blocks.get(layer + 1) {
                Some(next) => (&next.attn_norm, next.mixer.input_projections().int8_input()),
                None => (&self.final_norm, output_reads_q8),
            };
            (x, h) = add_rms_norm(&x, &mlp, next_norm, norm, next_reads_q8)?;
        }
        // The norm is per position, so picking after it is the same as before.
        let h = match &step.picked {
            Some(picked) => h.index_select(picked, 0)?,
            None => h,
        };
        let logits = self.lm_head.forward(&h)?;
        Ok(if multipliers.logits_divisor == 1.0 {
            logits
        } else {
            (logits / f64::from(multipliers.logits_divisor))?
        })
    }

    /// The attention output gate's activation of its projection `g`.
    fn output_gate(&self, g: &Tensor) -> Result<Tensor> {
        match self.config.switches.output_gate {
            Some(OutputGate::Sigmoid) => Ok(candle_nn::ops::sigmoid(g)?),
            _ => softplus_base2(g),
        }
    }

    fn empty_logits(&self) -> Result<Tensor> {
        Ok(Tensor::zeros(
            (0, self.config.vocab_size),
            DType::F32,
            &self.device,
        )?)
    }
}

/// Hybrid models run on the CPU and, with their recurrent layers' kernels
/// (`cuda_delta_net`), on CUDA: refused elsewhere, before anything is read.
fn refuse_hybrid_elsewhere(config: &ModelConfig, device: &Device) -> Result<()> {
    if config.switches.linear_attention.is_none() || device.is_cpu() || device.is_cuda() {
        return Ok(());
    }
    Err(EngineError::InvalidSetting(format!(
        "{} models run on the CPU and CUDA only in this version: choose one of those devices",
        config.architecture.name()
    )))
}

/// The state size of a hybrid model's recurrent layers.
fn recurrent_shape(linear: &LinearAttention) -> recurrent_state::RecurrentShape {
    recurrent_state::RecurrentShape {
        channels: linear.conv_channels(),
        conv_taps: linear.conv_taps,
        value_heads: linear.value_heads,
        head: delta_rule::HeadDims {
            key_dim: linear.key_dim,
            value_dim: linear.value_dim,
        },
    }
}

/// How the hidden state is normalized: RMS over `groups` equal slices of each row (one
/// slice for every family but K2 Horizon's larger sizes), then one full-width weight.
#[derive(Debug, Clone, Copy)]
struct NormShape {
    eps: f32,
    groups: usize,
}

/// RMS norm of each row of `x` times `w`: one launch of our own on CUDA (see `cuda_ops`),
/// which also quantizes the result in the form `for_q8` names (the int8 form the next
/// product reads, if it does).
fn rms_norm(x: &Tensor, w: &Tensor, norm: NormShape, for_q8: Option<Int8Blocks>) -> Result<Tensor> {
    if norm.groups > 1 {
        // The next product quantizes its input itself when no norm offered it.
        let (rows, width) = x.dims2()?;
        let slices = x
            .contiguous()?
            .reshape((rows * norm.groups, width / norm.groups))?;
        let normalized = unit_rms_norm(&slices, norm.eps)?.reshape((rows, width))?;
        return Ok(normalized.broadcast_mul(w)?);
    }
    #[cfg(feature = "cuda")]
    if let Some(y) = cuda_ops::rms_norm(x, w, norm.eps, for_q8)? {
        return Ok(y);
    }
    let _ = for_q8;
    Ok(candle_nn::ops::rms_norm(x, w, norm.eps)?)
}

/// Each row of `x` (`[rows, width]`) divided by its root mean square, with no weight.
fn unit_rms_norm(x: &Tensor, eps: f32) -> Result<Tensor> {
    let mean_square = x.sqr()?.mean_keepdim(1)?;
    Ok(x.broadcast_div(&(mean_square + f64::from(eps))?.sqrt()?)?)
}

/// RMS norm of each head of `x` (`[n, heads * head_dim]`) with `w`: `[head_dim]` shared by
/// the heads or `[heads * head_dim]`, a row per head.
pub(crate) fn head_rms_norm(x: &Tensor, w: &Tensor, heads: usize, eps: f32) -> Result<Tensor> {
    let (n, width) = x.dims2()?;
    let head_dim = width / heads;
    let per_head = x.contiguous()?.reshape((n * heads, head_dim))?;
    if w.elem_count() == head_dim {
        return Ok(candle_nn::ops::rms_norm(&per_head, w, eps)?.reshape((n, width))?);
    }
    let normalized = unit_rms_norm(&per_head, eps)?.reshape((n, width))?;
    Ok(normalized.broadcast_mul(w)?)
}

/// K2 Horizon's gate activation, `log2(1 + 2^g)` (softplus with β = ln 2), written so that
/// large `|g|` neither overflows nor loses the linear part: `max(y, 0) + ln(1 + e^-|y|)` with
/// `y = g ln 2`, divided by ln 2.
fn softplus_base2(g: &Tensor) -> Result<Tensor> {
    let ln2 = std::f64::consts::LN_2;
    let y = (g * ln2)?;
    let tail = ((y.abs()?.neg()?.exp()? + 1.0)?).log()?;
    Ok(((y.relu()? + tail)? / ln2)?)
}

/// `x + y` (a residual connection) and its RMS norm times `w` (quantized too, see
/// [`rms_norm`]).
fn add_rms_norm(
    x: &Tensor,
    y: &Tensor,
    w: &Tensor,
    norm: NormShape,
    for_q8: Option<Int8Blocks>,
) -> Result<(Tensor, Tensor)> {
    #[cfg(feature = "cuda")]
    if norm.groups == 1 {
        if let Some(pair) = cuda_ops::add_rms_norm(x, y, w, norm.eps, for_q8)? {
            return Ok(pair);
        }
    }
    let sum = (x + y)?;
    let h = rms_norm(&sum, w, norm, for_q8)?;
    Ok((sum, h))
}

/// The gated MLP's activation, SiLU(gate) · up: one launch on CUDA (see `cuda_ops`),
/// quantized too (see [`rms_norm`]).
fn silu_mul(gate: &Tensor, up: &Tensor, for_q8: Option<Int8Blocks>) -> Result<Tensor> {
    #[cfg(feature = "cuda")]
    if let Some(y) = cuda_ops::silu_mul(gate, up, for_q8)? {
        return Ok(y);
    }
    let _ = for_q8;
    Ok((candle_nn::ops::silu(gate)? * up)?)
}
