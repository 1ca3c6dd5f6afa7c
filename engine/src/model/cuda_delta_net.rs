//! Qwen3.5's Gated DeltaNet layer on a GPU: the convolution, the recurrence's inputs, the
//! delta rule and the gated norm as CUDA kernels over a state that stays on the device
//! (`recurrent_state::State::Device`). The arithmetic is `delta_net`'s and `delta_rule`'s;
//! here is only where it runs.
//!
//! Every pass, a prompt's as a decoded token's, runs the delta rule token by token in one
//! launch: each thread keeps a quarter of one state column in registers for the whole pass,
//! so the state is read and written once per pass, and a head's 128 columns run in parallel
//! (4,096 per row for Qwen3.5-4B). The chunked form exists to turn the CPU's per-token work
//! into matrix products; here the recurrent form already spreads over the GPU.
//!
//! Kernels never write a state they were given: each pass writes new buffers, so the
//! window a speculative decoder keeps (and a forked row) holds references, not copies.

use std::sync::OnceLock;

use candle_core::cuda_backend::cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::{CudaDevice, CudaStorage};
use candle_core::op::BackpropOp;
use candle_core::{DType, Device, Shape, Storage, Tensor};

use super::cuda_util::{address_of, compiled_ptx, device_address};
use super::recurrent_state::{RecurrentShape, State};
use crate::error::{EngineError, Result};

const SOURCE: &str = concat!(
    include_str!("cuda_block_sum.cuh"),
    r#"
#define K2_MAX_TAPS 8

__device__ __forceinline__ float k2_silu(float x) { return x / (1.0f + expf(-x)); }

// One row's causal depthwise convolution over its `t` new tokens, SiLU applied, and the
// window of the last `taps - 1` inputs moved on: a thread per channel, the window in
// registers. `x` rows sit `x_stride` apart; `w` is [channels][taps], the last tap on the
// newest input. With `each`, `window_out` gets the window after every token (t windows),
// else after the last.
extern "C" __global__ void k2_dn_conv(
    const float* __restrict__ x, long long x_stride, const float* __restrict__ window,
    const float* __restrict__ w, float* __restrict__ y, float* __restrict__ window_out,
    int t, int channels, int taps, int each)
{
    const size_t window_len = (size_t)(taps - 1) * channels;
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= channels) return;
    float past[K2_MAX_TAPS];
    #pragma unroll
    for (int j = 0; j < K2_MAX_TAPS - 1; j++)
        past[j] = j < taps - 1 ? window[(size_t)j * channels + c] : 0.0f;
    for (int i = 0; i < t; i++) {
        const float xi = x[(size_t)i * x_stride + c];
        float sum = w[(size_t)c * taps + taps - 1] * xi;
        #pragma unroll
        for (int j = 0; j < K2_MAX_TAPS - 1; j++)
            if (j < taps - 1) sum += w[(size_t)c * taps + j] * past[j];
        y[(size_t)i * channels + c] = k2_silu(sum);
        #pragma unroll
        for (int j = 0; j < K2_MAX_TAPS - 2; j++)
            if (j < taps - 2) past[j] = past[j + 1];
        past[taps - 2] = xi;
        if (each || i == t - 1) {
            float* to = window_out + (each ? (size_t)i * window_len : 0);
            #pragma unroll
            for (int j = 0; j < K2_MAX_TAPS - 1; j++)
                if (j < taps - 1) to[(size_t)j * channels + c] = past[j];
        }
    }
}

// The recurrence's inputs of one token and key head (a block each, a thread per key
// component): its query and key l2-normalized from the convolved channels (the query also
// by 1/sqrt(key_dim)); the first key head's block also writes every value head's gates,
// g = a * softplus(alpha + dt_bias) and beta = sigmoid(beta). `alpha` and `beta` rows sit
// `gate_stride` apart.
extern "C" __global__ void k2_dn_inputs(
    const float* __restrict__ convolved, const float* __restrict__ alpha,
    const float* __restrict__ beta, long long gate_stride, const float* __restrict__ a,
    const float* __restrict__ dt_bias, float* __restrict__ q_out, float* __restrict__ k_out,
    float* __restrict__ g_out, float* __restrict__ beta_out, int channels, int key_heads,
    int key_dim, int heads)
{
    const int token = blockIdx.x, head = blockIdx.y, i = threadIdx.x;
    // Whole warps (the block sum's shuffles): threads past key_dim add nothing.
    const bool valid = i < key_dim;
    const float* row = convolved + (size_t)token * channels;
    const float q = valid ? row[head * key_dim + i] : 0.0f;
    const float k = valid ? row[(key_heads + head) * key_dim + i] : 0.0f;
    const float q_norm = rsqrtf(k2_block_sum(q * q) + 1e-6f);
    const float k_norm = rsqrtf(k2_block_sum(k * k) + 1e-6f);
    const size_t at = (size_t)token * key_heads * key_dim + head * key_dim + i;
    if (valid) {
        q_out[at] = q * (q_norm * rsqrtf((float)key_dim));
        k_out[at] = k * k_norm;
    }
    if (head != 0) return;
    for (int h = i; h < heads; h += blockDim.x) {
        const float x = alpha[(size_t)token * gate_stride + h] + dt_bias[h];
        const float softplus = x > 20.0f ? x : log1pf(expf(x));
        g_out[(size_t)token * heads + h] = a[h] * softplus;
        beta_out[(size_t)token * heads + h] =
            1.0f / (1.0f + expf(-beta[(size_t)token * gate_stride + h]));
    }
}

// The gated delta rule over one row's `t` tokens, for one value head and 32 of its state
// columns (a block: a lane per column, 4 warps splitting the key components). Each thread
// keeps its KEY_DIM / 4 state values in registers through every token; the state comes
// from `state_in` and goes to `state_out` ([heads][key_dim][value_dim]). Value head h reads
// key head h % key_heads. Values come from the convolved rows (`v` rows `v_stride` apart),
// outputs go to `out` rows `out_stride` apart. With `each`, `state_out` gets the state
// after every token (t states), else after the last.
template <int KEY_DIM>
__device__ void delta_rule(
    const float* __restrict__ state_in, float* __restrict__ state_out,
    const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
    long long v_stride, const float* __restrict__ g, const float* __restrict__ beta,
    float* __restrict__ out, long long out_stride, int t, int heads, int key_heads,
    int value_dim, int each)
{
    const size_t state_len = (size_t)heads * KEY_DIM * value_dim;
    constexpr int SPLITS = 4, PER = KEY_DIM / SPLITS;
    const int h = blockIdx.x, lane = threadIdx.x, split = threadIdx.y;
    const int column = blockIdx.y * 32 + lane;
    // Lanes past the last column (value_dim under 32) take part in the barriers only.
    const bool valid = column < value_dim;
    const int key_head = h % key_heads;
    const size_t head_state = (size_t)h * KEY_DIM * value_dim;
    __shared__ float kq[2][KEY_DIM];
    __shared__ float partial[SPLITS][32];
    float s[PER];
    #pragma unroll
    for (int e = 0; e < PER; e++)
        s[e] = valid ? state_in[head_state + (size_t)(split * PER + e) * value_dim + column] : 0.0f;
    const int thread = split * 32 + lane;
    for (int i = 0; i < t; i++) {
        const size_t key_at = ((size_t)i * key_heads + key_head) * KEY_DIM;
        for (int c = thread; c < KEY_DIM; c += 32 * SPLITS) {
            kq[0][c] = k[key_at + c];
            kq[1][c] = q[key_at + c];
        }
        __syncthreads();
        const float decay = expf(g[(size_t)i * heads + h]);
        // Decay, and this split's share of the state's prediction for the key.
        float predicted = 0.0f;
        #pragma unroll
        for (int e = 0; e < PER; e++) {
            s[e] *= decay;
            predicted += s[e] * kq[0][split * PER + e];
        }
        partial[split][lane] = predicted;
        __syncthreads();
        predicted = 0.0f;
        #pragma unroll
        for (int p = 0; p < SPLITS; p++) predicted += partial[p][lane];
        const float value = valid ? v[(size_t)i * v_stride + (size_t)h * value_dim + column] : 0.0f;
        const float d = beta[(size_t)i * heads + h] * (value - predicted);
        __syncthreads();
        // Write, and this split's share of the read.
        float read = 0.0f;
        #pragma unroll
        for (int e = 0; e < PER; e++) {
            s[e] += kq[0][split * PER + e] * d;
            read += s[e] * kq[1][split * PER + e];
        }
        partial[split][lane] = read;
        __syncthreads();
        if (split == 0 && valid) {
            read = 0.0f;
            #pragma unroll
            for (int p = 0; p < SPLITS; p++) read += partial[p][lane];
            out[(size_t)i * out_stride + (size_t)h * value_dim + column] = read;
        }
        if (valid && (each || i == t - 1)) {
            float* to = state_out + (each ? (size_t)i * state_len : 0) + head_state;
            #pragma unroll
            for (int e = 0; e < PER; e++) to[(size_t)(split * PER + e) * value_dim + column] = s[e];
        }
        __syncthreads();
    }
}

#define K2_DELTA_RULE(KEY_DIM)                                                            \
    extern "C" __global__ void k2_dn_delta_rule_##KEY_DIM(                                \
        const float* __restrict__ state_in, float* __restrict__ state_out,                \
        const float* __restrict__ q, const float* __restrict__ k,                         \
        const float* __restrict__ v, long long v_stride, const float* __restrict__ g,     \
        const float* __restrict__ beta, float* __restrict__ out, long long out_stride,    \
        int t, int heads, int key_heads, int value_dim, int each)                         \
    {                                                                                     \
        delta_rule<KEY_DIM>(state_in, state_out, q, k, v, v_stride, g, beta, out,         \
            out_stride, t, heads, key_heads, value_dim, each);                            \
    }
K2_DELTA_RULE(16)
K2_DELTA_RULE(32)
K2_DELTA_RULE(64)
K2_DELTA_RULE(128)
K2_DELTA_RULE(256)

// Each token's value head output RMS-normalized, times the norm weight and silu(z), in
// place: a block per token and head, a thread per value component. `z` rows sit `z_stride`
// apart.
extern "C" __global__ void k2_dn_gated_norm(
    float* __restrict__ o, const float* __restrict__ z, long long z_stride,
    const float* __restrict__ w, int width, int value_dim, float eps)
{
    const int token = blockIdx.x, head = blockIdx.y, i = threadIdx.x;
    // Whole warps (the block sum's shuffles): threads past value_dim add nothing.
    const bool valid = i < value_dim;
    const size_t at = (size_t)token * width + (size_t)head * value_dim + i;
    const float x = valid ? o[at] : 0.0f;
    const float scale = rsqrtf(k2_block_sum(x * x) / value_dim + eps);
    if (valid)
        o[at] = x * scale * w[i]
            * k2_silu(z[(size_t)token * z_stride + (size_t)head * value_dim + i]);
}
"#
);

const MODULE: &str = "k2_delta_net";
/// The convolution kernel keeps the window in registers: 2 to this many taps.
const MAX_TAPS: usize = 8;
/// The key sizes the delta rule kernel is built for (Qwen3.5's is 128; the test fixtures'
/// 16).
const KEY_DIMS: [usize; 5] = [16, 32, 64, 128, 256];

fn ptx() -> Result<&'static str> {
    static PTX: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    compiled_ptx(&PTX, SOURCE, "linear-attention", None)
}

/// A layer's vectors on the GPU, for its kernels.
pub(super) struct LayerVectors {
    conv: Tensor,
    dt_bias: Tensor,
    a: Tensor,
    norm: Tensor,
}

impl LayerVectors {
    /// The vectors uploaded to `device`, where the layer's sizes suit the kernels.
    pub fn new(
        shape: &RecurrentShape,
        [conv, dt_bias, a, norm]: [&[f32]; 4],
        device: &Device,
    ) -> Result<LayerVectors> {
        let (key_dim, value_dim) = (shape.head.key_dim, shape.head.value_dim);
        if shape.conv_taps < 2
            || shape.conv_taps > MAX_TAPS
            || !KEY_DIMS.contains(&key_dim)
            || value_dim > 1024
        {
            return Err(EngineError::InvalidSetting(format!(
                "no CUDA kernels for linear attention of {} taps, key size {key_dim} and value \
                 size {value_dim} (they take 2 to {MAX_TAPS} taps, keys of {KEY_DIMS:?} and \
                 values up to 1,024): choose the CPU device",
                shape.conv_taps
            )));
        }
        let upload = |v: &[f32]| Tensor::from_slice(v, v.len(), device);
        Ok(LayerVectors {
            conv: upload(conv)?,
            dt_bias: upload(dt_bias)?,
            a: upload(a)?,
            norm: upload(norm)?,
        })
    }
}

/// One pass of the layer on the GPU, the input projections done.
pub(super) struct Pass<'a> {
    pub shape: &'a RecurrentShape,
    pub key_heads: usize,
    pub eps: f32,
    pub vectors: &'a LayerVectors,
    /// `[n, channels]`, `[n, width]`, `[n, heads]`, `[n, heads]`: every row's new tokens.
    pub qkv: &'a Tensor,
    pub z: &'a Tensor,
    pub beta: &'a Tensor,
    pub alpha: &'a Tensor,
}

impl Pass<'_> {
    /// Runs the tokens `start..start + t` of one row from `state`: writes their outputs
    /// (before the gated norm) to rows `start..` of `out` (`[n, width]`) and returns the
    /// row's state after each token (`each`: what a rollback window keeps), or after the
    /// last.
    pub fn run_row(
        &self,
        state: &State,
        (start, t): (usize, usize),
        each: bool,
        out: &mut CudaSlice<f32>,
    ) -> Result<Vec<State>> {
        let State::Device {
            conv: window,
            delta,
        } = state
        else {
            return Err(EngineError::Kernel(
                "a recurrent state on the host was given to the GPU's kernels".into(),
            ));
        };
        let dev = cuda_device(self.qkv)?;
        let shape = self.shape;
        let (channels, heads) = (shape.channels, shape.value_heads);
        let (key_dim, value_dim) = (shape.head.key_dim, shape.head.value_dim);
        let width = heads * value_dim;
        let kept = if each { t } else { 1 };
        let each_i = i32::from(each);

        // The convolution.
        let qkv_rows = self.qkv.narrow(0, start, t)?;
        // SAFETY: the kernels below write every element of these before anything reads them.
        let (mut convolved, mut window_out) = unsafe {
            (
                dev.alloc::<f32>(t * channels)?,
                dev.alloc::<f32>(kept * shape.conv_len())?,
            )
        };
        let func = dev.get_or_load_custom_func("k2_dn_conv", MODULE, ptx()?)?;
        let mut launch = func.builder();
        let (x_ptr, x_stride) = (device_address(&qkv_rows)?, row_stride(self.qkv)?);
        let (window_ptr, w_ptr) = (device_address(window)?, device_address(&self.vectors.conv)?);
        let (t_i, channels_i, taps_i) = (t as i32, channels as i32, shape.conv_taps as i32);
        launch
            .arg(&x_ptr)
            .arg(&x_stride)
            .arg(&window_ptr)
            .arg(&w_ptr)
            .arg(&mut convolved)
            .arg(&mut window_out)
            .arg(&t_i)
            .arg(&channels_i)
            .arg(&taps_i)
            .arg(&each_i);
        let config = LaunchConfig {
            grid_dim: (channels.div_ceil(256) as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: `x` covers t rows of `channels` at `x_stride`, the windows
        // (taps - 1) × channels, `w` channels × taps, `convolved` t × channels.
        unsafe { launch.launch(config) }.map_err(launch_error)?;

        // The recurrence's inputs.
        let keys = self.key_heads * key_dim;
        // SAFETY: written whole by the kernel.
        let (mut q, mut k, mut g, mut beta) = unsafe {
            (
                dev.alloc::<f32>(t * keys)?,
                dev.alloc::<f32>(t * keys)?,
                dev.alloc::<f32>(t * heads)?,
                dev.alloc::<f32>(t * heads)?,
            )
        };
        let func = dev.get_or_load_custom_func("k2_dn_inputs", MODULE, ptx()?)?;
        let mut launch = func.builder();
        let (alpha_rows, beta_rows) = (
            self.alpha.narrow(0, start, t)?,
            self.beta.narrow(0, start, t)?,
        );
        let gate_stride = row_stride(self.alpha)?;
        if row_stride(self.beta)? != gate_stride {
            return Err(EngineError::Kernel(
                "the linear-attention gate projections have different row strides".into(),
            ));
        }
        let convolved_ptr = address_of(&convolved);
        let (alpha_ptr, beta_ptr) = (device_address(&alpha_rows)?, device_address(&beta_rows)?);
        let (a_ptr, dt_ptr) = (
            device_address(&self.vectors.a)?,
            device_address(&self.vectors.dt_bias)?,
        );
        let (key_heads_i, key_dim_i, heads_i) =
            (self.key_heads as i32, key_dim as i32, heads as i32);
        launch
            .arg(&convolved_ptr)
            .arg(&alpha_ptr)
            .arg(&beta_ptr)
            .arg(&gate_stride)
            .arg(&a_ptr)
            .arg(&dt_ptr)
            .arg(&mut q)
            .arg(&mut k)
            .arg(&mut g)
            .arg(&mut beta)
            .arg(&channels_i)
            .arg(&key_heads_i)
            .arg(&key_dim_i)
            .arg(&heads_i);
        let config = LaunchConfig {
            grid_dim: (t as u32, self.key_heads as u32, 1),
            block_dim: (whole_warps(key_dim), 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: `convolved` holds t rows of `channels`, the gates t rows at `gate_stride`,
        // `a` and `dt_bias` `heads`; the outputs are sized above.
        unsafe { launch.launch(config) }.map_err(launch_error)?;

        // The delta rule.
        // SAFETY: the kernel writes every state element.
        let mut delta_out = unsafe { dev.alloc::<f32>(kept * shape.state_len())? };
        let name = format!("k2_dn_delta_rule_{key_dim}");
        let func = dev.get_or_load_custom_func(&name, MODULE, ptx()?)?;
        let mut launch = func.builder();
        let delta_ptr = device_address(delta)?;
        // Values follow the queries' and keys' channels in each convolved row.
        let v_ptr = convolved_ptr + (2 * keys * 4) as u64;
        let out_ptr = address_of(out) + (start * width * 4) as u64;
        let (v_stride, out_stride) = (channels as i64, width as i64);
        let value_dim_i = value_dim as i32;
        let (q_ptr, k_ptr, g_ptr, beta_ptr) = (
            address_of(&q),
            address_of(&k),
            address_of(&g),
            address_of(&beta),
        );
        launch
            .arg(&delta_ptr)
            .arg(&mut delta_out)
            .arg(&q_ptr)
            .arg(&k_ptr)
            .arg(&v_ptr)
            .arg(&v_stride)
            .arg(&g_ptr)
            .arg(&beta_ptr)
            .arg(&out_ptr)
            .arg(&out_stride)
            .arg(&t_i)
            .arg(&heads_i)
            .arg(&key_heads_i)
            .arg(&value_dim_i)
            .arg(&each_i);
        let config = LaunchConfig {
            grid_dim: (heads as u32, value_dim.div_ceil(32) as u32, 1),
            block_dim: (32, 4, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: the states hold heads × key_dim × value_dim, q and k t × keys, g and beta
        // t × heads, `v` t rows of `channels` from the values' offset, `out` rows
        // start..start + t of `width`; q, k, g and beta live to the end of this function,
        // after the stream has queued the launch that reads them.
        unsafe { launch.launch(config) }.map_err(launch_error)?;
        // Each kept state is a view of the pass's buffers.
        let (conv_len, state_len) = (shape.conv_len(), shape.state_len());
        let (windows, deltas) = (
            wrap(window_out, dev, kept * conv_len),
            wrap(delta_out, dev, kept * state_len),
        );
        (0..kept)
            .map(|i| {
                Ok(State::Device {
                    conv: windows.narrow(0, i * conv_len, conv_len)?,
                    delta: deltas.narrow(0, i * state_len, state_len)?,
                })
            })
            .collect()
    }

    /// The gated norm over every row's outputs (`out`, `[n, width]`), in place; returns them
    /// as a tensor.
    pub fn gated_norm(&self, mut out: CudaSlice<f32>, n: usize) -> Result<Tensor> {
        let dev = cuda_device(self.qkv)?;
        let (heads, value_dim) = (self.shape.value_heads, self.shape.head.value_dim);
        let width = heads * value_dim;
        if n > 0 {
            let func = dev.get_or_load_custom_func("k2_dn_gated_norm", MODULE, ptx()?)?;
            let mut launch = func.builder();
            let (z_ptr, z_stride) = (device_address(self.z)?, row_stride(self.z)?);
            let w_ptr = device_address(&self.vectors.norm)?;
            let (width_i, value_dim_i) = (width as i32, value_dim as i32);
            launch
                .arg(&mut out)
                .arg(&z_ptr)
                .arg(&z_stride)
                .arg(&w_ptr)
                .arg(&width_i)
                .arg(&value_dim_i)
                .arg(&self.eps);
            let config = LaunchConfig {
                grid_dim: (n as u32, heads as u32, 1),
                block_dim: (whole_warps(value_dim), 1, 1),
                shared_mem_bytes: 0,
            };
            // SAFETY: `out` holds n × width, `z` n rows of `width` at `z_stride`, the
            // weight value_dim.
            unsafe { launch.launch(config) }.map_err(launch_error)?;
        }
        Ok(wrap(out, dev, (n, width)))
    }
}

/// A zeroed `[n, width]` buffer for a pass's outputs (rows without tokens stay zero).
pub(super) fn output_buffer(like: &Tensor, n: usize, width: usize) -> Result<CudaSlice<f32>> {
    Ok(cuda_device(like)?.alloc_zeros::<f32>((n * width).max(1))?)
}

/// Threads for `n` values, a whole number of warps.
fn whole_warps(n: usize) -> u32 {
    (n.div_ceil(32) * 32) as u32
}

fn cuda_device(t: &Tensor) -> Result<&CudaDevice> {
    match t.device() {
        Device::Cuda(dev) if t.dtype() == DType::F32 => Ok(dev),
        _ => Err(EngineError::Kernel(
            "the linear-attention kernels take f32 tensors on the GPU".into(),
        )),
    }
}

/// The distance between rows of a `[rows, cols]` view with contiguous rows, in elements.
fn row_stride(t: &Tensor) -> Result<i64> {
    let layout = t.layout();
    match (layout.dims(), layout.stride()) {
        (&[_, cols], &[stride, 1]) if stride >= cols => Ok(stride as i64),
        (&[_, 1], &[stride, _]) => Ok(stride as i64),
        _ => Err(EngineError::Kernel(format!(
            "the linear-attention kernels need rows of contiguous values, not strides {:?}",
            layout.stride()
        ))),
    }
}

fn wrap(slice: CudaSlice<f32>, dev: &CudaDevice, shape: impl Into<Shape>) -> Tensor {
    let storage = Storage::Cuda(CudaStorage::wrap_cuda_slice(slice, dev.clone()));
    Tensor::from_storage(storage, shape.into(), BackpropOp::none(), false)
}

fn launch_error(e: impl std::fmt::Display) -> EngineError {
    EngineError::Kernel(format!("CUDA linear-attention kernel launch failed: {e}"))
}
