//! Decode attention on CUDA in two kernel launches per layer, whatever the number of rows.
//!
//! Attention through candle ops costs about ten small launches per row per layer (cache
//! writes, copies, two matmuls, scale, softmax, concatenations): at 64 layers that is the
//! whole time of a GPU decoding step beyond the weight reads, and it grows with every row,
//! so best-of-3 and server batches paid for each row in launches. Here every query of the
//! step (one per decoding row; several for a speculative verification span) is a "lane":
//! one kernel writes all lanes' new keys and values into their rows' caches, one kernel
//! attends all lanes, each against its own row's cache up to its own position. A lane's
//! arithmetic does not depend on the other lanes, so batched, verification and one-token
//! decoding agree exactly.

use std::sync::OnceLock;

use candle_core::cuda_backend::cudarc::driver::CudaStream;
use candle_core::cuda_backend::cudarc::driver::{DevicePtr, LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::cudarc::nvrtc::compile_ptx;
use candle_core::cuda_backend::CudaStorage;
use candle_core::op::BackpropOp;
use candle_core::{DType, Shape, Storage, Tensor};

use crate::error::{EngineError, Result};

const SOURCE: &str = r#"
// Inputs are the projections' token rows: element d of head h of token t sits at
// base[t * stride + h * head_dim + d]. Rotary embedding uses the token's cos/sin row
// ([n, head_dim / 2]); pairs are (2i, 2i + 1) when interleaved, else (i, i + head_dim / 2).
__device__ __forceinline__ float rotated(const float* x, const float* cos_row,
                                         const float* sin_row, int d, int head_dim,
                                         int interleaved)
{
    const int half = head_dim / 2;
    if (interleaved) {
        const int i = d >> 1;
        const float c = cos_row[i], s = sin_row[i];
        return (d & 1) ? x[d] * c + x[d - 1] * s : x[d] * c - x[d + 1] * s;
    }
    const int i = d < half ? d : d - half;
    const float c = cos_row[i], s = sin_row[i];
    return d < half ? x[d] * c - x[d + half] * s : x[d] * c + x[d - half] * s;
}

// Lane r writes its rotated key and its value for kv head h into its row's cache
// ([kv_heads, capacity, head_dim]) at position pos[r]. One thread per element.
extern "C" __global__ void k2_kv_write(
    const float* __restrict__ k, long long k_stride,
    const float* __restrict__ v, long long v_stride,
    const float* __restrict__ cos_t, const float* __restrict__ sin_t, int interleaved,
    const unsigned long long* __restrict__ table, int lanes,
    int head_dim, int capacity)
{
    const int r = blockIdx.x, h = blockIdx.y, d = threadIdx.x;
    if (d >= head_dim) return;
    const long long t = (long long)table[2 * lanes + r];
    const long long pos = (long long)table[3 * lanes + r];
    float* K = (float*)table[r];
    float* V = (float*)table[lanes + r];
    const float* kt = k + t * k_stride + (long long)h * head_dim;
    const float* vt = v + t * v_stride + (long long)h * head_dim;
    const int half = head_dim / 2;
    const size_t dst = ((size_t)h * capacity + pos) * head_dim + d;
    K[dst] = rotated(kt, cos_t + t * half, sin_t + t * half, d, head_dim, interleaved);
    V[dst] = vt[d];
}

// Lane r, head h: softmax(rope(q)·K[0..=pos]ᵀ · scale) · V[0..=pos] into out
// ([lanes, heads, head_dim]). Four warps split the positions, each keeping a running
// maximum, sum and weighted value (online softmax); the warps combine at the end.
#define WARPS 4
#define MAX_PER_LANE 8   // head_dim <= 256
// NVRTC has no math.h: -infinity spelled out.
#define NEG_INF __int_as_float(0xff800000)
extern "C" __global__ void k2_decode_attention(
    const float* __restrict__ q, long long q_stride,
    const float* __restrict__ cos_t, const float* __restrict__ sin_t, int interleaved,
    const unsigned long long* __restrict__ table, int lanes,
    float* __restrict__ out,
    int heads, int group, int head_dim, int capacity, float scale)
{
    const int r = blockIdx.x, h = blockIdx.y, kvh = h / group;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int per_lane = (head_dim + 31) / 32;
    const long long t = (long long)table[2 * lanes + r];
    const int len = (int)table[3 * lanes + r] + 1;
    const float* K = (const float*)table[r] + (size_t)kvh * capacity * head_dim;
    const float* V = (const float*)table[lanes + r] + (size_t)kvh * capacity * head_dim;
    const float* qt = q + t * q_stride + (long long)h * head_dim;
    const int half = head_dim / 2;

    float qr[MAX_PER_LANE], acc[MAX_PER_LANE];
    for (int i = 0; i < MAX_PER_LANE; i++) {
        const int d = lane + 32 * i;
        qr[i] = (i < per_lane && d < head_dim)
            ? rotated(qt, cos_t + t * half, sin_t + t * half, d, head_dim, interleaved)
            : 0.0f;
        acc[i] = 0.0f;
    }
    float m = NEG_INF, s = 0.0f;
    for (int j = warp; j < len; j += WARPS) {
        const float* kj = K + (size_t)j * head_dim;
        float dot = 0.0f;
        for (int i = 0; i < per_lane; i++) {
            const int d = lane + 32 * i;
            if (d < head_dim) dot += qr[i] * kj[d];
        }
        for (int off = 16; off > 0; off >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, off);
        dot *= scale;
        const float m_new = fmaxf(m, dot);
        const float keep = expf(m - m_new);
        const float p = expf(dot - m_new);
        s = s * keep + p;
        const float* vj = V + (size_t)j * head_dim;
        for (int i = 0; i < per_lane; i++) {
            const int d = lane + 32 * i;
            if (d < head_dim) acc[i] = acc[i] * keep + p * vj[d];
        }
        m = m_new;
    }

    __shared__ float warp_max[WARPS], warp_sum[WARPS];
    __shared__ float warp_acc[WARPS][32 * MAX_PER_LANE];
    if (lane == 0) { warp_max[warp] = m; warp_sum[warp] = s; }
    for (int i = 0; i < per_lane; i++) warp_acc[warp][lane + 32 * i] = acc[i];
    __syncthreads();
    if (warp != 0) return;
    float total_max = NEG_INF;
    for (int w = 0; w < WARPS; w++) total_max = fmaxf(total_max, warp_max[w]);
    float total = 0.0f;
    for (int w = 0; w < WARPS; w++) total += warp_sum[w] * expf(warp_max[w] - total_max);
    float* o = out + ((size_t)r * heads + h) * head_dim;
    for (int i = 0; i < per_lane; i++) {
        const int d = lane + 32 * i;
        if (d >= head_dim) continue;
        float a = 0.0f;
        for (int w = 0; w < WARPS; w++) a += warp_acc[w][d] * expf(warp_max[w] - total_max);
        o[d] = a / total;
    }
}
"#;

const MODULE: &str = "k2_decode_attention";
const MAX_HEAD_DIM: usize = 256;

/// The PTX, compiled once per process by NVRTC on the machine that runs it.
fn ptx() -> Result<&'static str> {
    static PTX: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    PTX.get_or_init(|| {
        compile_ptx(SOURCE)
            .map(|p| p.to_src())
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map(String::as_str)
    .map_err(|e| EngineError::Kernel(format!("compiling the CUDA attention kernels: {e}")))
}

/// One query of the step: token `tok` of the batch, attending `row`'s cache up to and
/// including position `pos`, where its own key and value are written.
#[derive(Debug, Clone, Copy)]
pub(super) struct Lane {
    pub tok: usize,
    pub pos: usize,
    pub row: usize,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct LaneGeometry {
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub scale: f32,
    pub interleaved_rope: bool,
}

/// Writes the lanes' rotated keys and values into `caches` (per row: `[kv_heads, capacity,
/// head_dim]` key and value tensors, contiguous f32) and returns their attention,
/// `[lanes, heads * head_dim]`. `q`, `k`, `v`: the projections' `[n, * head_dim]` token
/// rows (views into one stacked product are fine), before rotary embedding; `cos`/`sin`:
/// each token's `[n, head_dim / 2]` row.
pub(super) fn write_and_attend(
    (q, k, v): (&Tensor, &Tensor, &Tensor),
    (cos, sin): (&Tensor, &Tensor),
    caches: &[(&Tensor, &Tensor)],
    lanes: &[Lane],
    g: &LaneGeometry,
) -> Result<Tensor> {
    let capacity = caches[0].0.dim(1)?;
    if g.head_dim > MAX_HEAD_DIM
        || !g.head_dim.is_multiple_of(2)
        || !g.heads.is_multiple_of(g.kv_heads)
    {
        return Err(EngineError::Kernel(format!(
            "CUDA attention supports even head_dim <= {MAX_HEAD_DIM} (got {})",
            g.head_dim
        )));
    }
    let Storage::Cuda(q_store) = &*q.storage_and_layout().0 else {
        return Err(not_cuda());
    };
    let dev = q_store.device.clone();
    let stream = dev.cuda_stream();

    // Every tensor stays alive in the caller past the launches, and candle runs one stream,
    // so raw addresses are safe to queue.
    let (q_ptr, q_stride) = token_rows(q, &stream)?;
    let (k_ptr, k_stride) = token_rows(k, &stream)?;
    let (v_ptr, v_stride) = token_rows(v, &stream)?;
    let (cos, sin) = (cos.contiguous()?, sin.contiguous()?);
    let (cos_ptr, _) = token_rows(&cos, &stream)?;
    let (sin_ptr, _) = token_rows(&sin, &stream)?;
    // One upload per layer: key rows, value rows, token indices, positions.
    let mut table: Vec<u64> = Vec::with_capacity(4 * lanes.len());
    for lane in lanes {
        table.push(token_rows(caches[lane.row].0, &stream)?.0);
    }
    for lane in lanes {
        table.push(token_rows(caches[lane.row].1, &stream)?.0);
    }
    table.extend(lanes.iter().map(|l| l.tok as u64));
    table.extend(lanes.iter().map(|l| l.pos as u64));
    let table = dev.clone_htod(&table)?;
    let count = lanes.len();
    // SAFETY: every element is written by the attention kernel before it is read.
    let mut out = unsafe { dev.alloc::<f32>(count * g.heads * g.head_dim)? };
    let (lanes_i, hd_i, cap_i) = (count as i32, g.head_dim as i32, capacity as i32);
    let (heads_i, group_i) = (g.heads as i32, (g.heads / g.kv_heads) as i32);
    let interleaved = i32::from(g.interleaved_rope);

    let write = dev.get_or_load_custom_func("k2_kv_write", MODULE, ptx()?)?;
    let mut launch = write.builder();
    launch
        .arg(&k_ptr)
        .arg(&k_stride)
        .arg(&v_ptr)
        .arg(&v_stride)
        .arg(&cos_ptr)
        .arg(&sin_ptr)
        .arg(&interleaved)
        .arg(&table)
        .arg(&lanes_i)
        .arg(&hd_i)
        .arg(&cap_i);
    // SAFETY: the table holds live cache tensors of `capacity` positions (the caller
    // reserved room for every lane's position); token indices are rows of q/k/v/cos/sin.
    let threads = g.head_dim.next_multiple_of(32) as u32;
    unsafe { launch.launch(config(count, g.kv_heads, threads)) }.map_err(kernel_error)?;

    let attend = dev.get_or_load_custom_func("k2_decode_attention", MODULE, ptx()?)?;
    let mut launch = attend.builder();
    launch
        .arg(&q_ptr)
        .arg(&q_stride)
        .arg(&cos_ptr)
        .arg(&sin_ptr)
        .arg(&interleaved)
        .arg(&table)
        .arg(&lanes_i)
        .arg(&mut out)
        .arg(&heads_i)
        .arg(&group_i)
        .arg(&hd_i)
        .arg(&cap_i)
        .arg(&g.scale);
    // SAFETY: as above; `out` holds lanes × heads × head_dim floats.
    unsafe { launch.launch(config(count, g.heads, 128)) }.map_err(kernel_error)?;

    let storage = Storage::Cuda(CudaStorage::wrap_cuda_slice(out, dev.clone()));
    let shape = Shape::from((count, g.heads * g.head_dim));
    Ok(Tensor::from_storage(
        storage,
        shape,
        BackpropOp::none(),
        false,
    ))
}

fn config(lanes: usize, heads: usize, threads: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (lanes as u32, heads as u32, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}

fn not_cuda() -> EngineError {
    EngineError::Kernel("CUDA attention was given a tensor that is not on the GPU".into())
}

fn kernel_error(e: impl std::fmt::Display) -> EngineError {
    EngineError::Kernel(format!("CUDA attention launch failed: {e}"))
}

/// The device address of an f32 CUDA tensor's first element and the distance between its
/// rows, in elements: a matrix whose rows are contiguous (a column slice of a wider matrix
/// qualifies), or a contiguous tensor taken as one row per first-dimension index.
fn token_rows(t: &Tensor, stream: &CudaStream) -> Result<(u64, i64)> {
    let (store, layout) = t.storage_and_layout();
    let dims = layout.dims();
    let stride = layout.stride();
    let rows_contiguous =
        t.is_contiguous() || (dims.len() == 2 && stride[1] == 1 && stride[0] >= dims[1]);
    if t.dtype() != DType::F32 || !rows_contiguous {
        return Err(EngineError::Kernel(
            "CUDA attention needs f32 tensors with contiguous rows".into(),
        ));
    }
    let Storage::Cuda(cs) = &*store else {
        return Err(not_cuda());
    };
    let (ptr, _sync) = cs.as_cuda_slice::<f32>()?.device_ptr(stream);
    let row = if dims.len() == 2 && !t.is_contiguous() {
        stride[0]
    } else {
        dims.iter().skip(1).product()
    };
    Ok((ptr + (layout.start_offset() * 4) as u64, row as i64))
}
