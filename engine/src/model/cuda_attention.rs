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

use candle_core::cuda_backend::cudarc::driver::{
    CudaSlice, CudaStream, DevicePtr, LaunchConfig, PushKernelArg,
};
use candle_core::cuda_backend::CudaStorage;
use candle_core::op::BackpropOp;
use candle_core::{DType, Device, Shape, Storage, Tensor};

use super::cuda_q8;
use super::cuda_util::{compiled_ptx, device_address};
use super::kv_cache::KvCache;
use super::linear::Int8Blocks;
use crate::error::{EngineError, Result};

const SOURCE: &str = concat!(
    include_str!("cuda_quantize.cuh"),
    r#"
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

// Lane r, head h: softmax(rope(q)·K[0..=pos]ᵀ · scale) · V[0..=pos], in two kernels
// (flash decoding). A block of the first attends one chunk of CHUNK positions: its warps
// split the chunk, each keeping a running maximum, sum and weighted value (online softmax),
// and the block writes its chunk's (max, sum, values) to `part`
// ([lanes, heads, chunks, head_dim + 2]). The second combines a lane's chunks. Positions
// are spread over many blocks because one warp walking a long cache alone waits on a
// memory round trip per position: at a few thousand positions (a reasoning trace) that
// was most of a decoding step. The grid covers the cache's capacity; blocks past a lane's
// length return at once, so the launch's shape never depends on the step's positions (a
// captured graph replays it unchanged).
#define WARPS 8
#define CHUNK 32
#define MAX_PER_LANE 4   // head_dim <= 128
#define MAX_GROUP 8      // query heads per kv head
// NVRTC has no math.h: -infinity spelled out.
#define NEG_INF __int_as_float(0xff800000)
extern "C" __global__ void k2_decode_attention_part(
    const float* __restrict__ q, long long q_stride,
    const float* __restrict__ k, long long k_stride,
    const float* __restrict__ v, long long v_stride, int write_new,
    const float* __restrict__ cos_t, const float* __restrict__ sin_t, int interleaved,
    const unsigned long long* __restrict__ table, int lanes,
    float* __restrict__ part,
    int heads, int group, int head_dim, int capacity, float scale)
{
    // One block per (lane, kv head, chunk) serves the kv head's `group` query heads, so
    // each cached row is read once, not once per query head. Every loop over a register
    // array has a constant bound and is unrolled: an array indexed by a runtime value
    // would live in (slow) local memory.
    const int r = blockIdx.x, kvh = blockIdx.y, chunk = blockIdx.z;
    const int chunks = gridDim.z;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const long long t = (long long)table[2 * lanes + r];
    const int len = (int)table[3 * lanes + r] + 1;
    const int begin = chunk * CHUNK;
    if (begin >= len) return;
    const int end = min(begin + CHUNK, len);
    const float* K = (const float*)table[r] + (size_t)kvh * capacity * head_dim;
    const float* V = (const float*)table[lanes + r] + (size_t)kvh * capacity * head_dim;
    const int half = head_dim / 2;
    if (write_new && len - 1 < end) {
        // This lane's own key and value, written by the block that attends to their chunk
        // (what k2_kv_write does, one launch fewer per layer). Only when every lane is its
        // own cache row: no other lane's block reads them.
        const int pos = len - 1;
        const float* kt = k + t * k_stride + (long long)kvh * head_dim;
        const float* vt = v + t * v_stride + (long long)kvh * head_dim;
        for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
            ((float*)K)[(size_t)pos * head_dim + d] =
                rotated(kt, cos_t + t * half, sin_t + t * half, d, head_dim, interleaved);
            ((float*)V)[(size_t)pos * head_dim + d] = vt[d];
        }
        __syncthreads();
    }

    float qr[MAX_GROUP][MAX_PER_LANE], acc[MAX_GROUP][MAX_PER_LANE];
    float m[MAX_GROUP], s[MAX_GROUP];
    #pragma unroll
    for (int g = 0; g < MAX_GROUP; g++) {
        const float* qt = q + t * q_stride + (long long)(kvh * group + g) * head_dim;
        #pragma unroll
        for (int i = 0; i < MAX_PER_LANE; i++) {
            const int d = lane + 32 * i;
            qr[g][i] = (g < group && d < head_dim)
                ? rotated(qt, cos_t + t * half, sin_t + t * half, d, head_dim, interleaved)
                : 0.0f;
            acc[g][i] = 0.0f;
        }
        m[g] = NEG_INF;
        s[g] = 0.0f;
    }
    for (int j = begin + warp; j < end; j += WARPS) {
        const float* kj = K + (size_t)j * head_dim;
        const float* vj = V + (size_t)j * head_dim;
        // Both rows are requested before either is used: one memory round trip, not two.
        float kv[MAX_PER_LANE], vv[MAX_PER_LANE];
        #pragma unroll
        for (int i = 0; i < MAX_PER_LANE; i++) {
            const int d = lane + 32 * i;
            kv[i] = d < head_dim ? kj[d] : 0.0f;
            vv[i] = d < head_dim ? vj[d] : 0.0f;
        }
        #pragma unroll
        for (int g = 0; g < MAX_GROUP; g++) {
            if (g < group) {
                float dot = 0.0f;
                #pragma unroll
                for (int i = 0; i < MAX_PER_LANE; i++) dot += qr[g][i] * kv[i];
                #pragma unroll
                for (int off = 16; off > 0; off >>= 1)
                    dot += __shfl_xor_sync(0xffffffffu, dot, off);
                dot *= scale;
                const float m_new = fmaxf(m[g], dot);
                const float keep = expf(m[g] - m_new);
                const float p = expf(dot - m_new);
                s[g] = s[g] * keep + p;
                #pragma unroll
                for (int i = 0; i < MAX_PER_LANE; i++) acc[g][i] = acc[g][i] * keep + p * vv[i];
                m[g] = m_new;
            }
        }
    }

    __shared__ float warp_max[WARPS][MAX_GROUP], warp_sum[WARPS][MAX_GROUP];
    __shared__ float warp_acc[WARPS][MAX_GROUP][32 * MAX_PER_LANE];
    #pragma unroll
    for (int g = 0; g < MAX_GROUP; g++) {
        if (g < group) {
            if (lane == 0) { warp_max[warp][g] = m[g]; warp_sum[warp][g] = s[g]; }
            #pragma unroll
            for (int i = 0; i < MAX_PER_LANE; i++) warp_acc[warp][g][lane + 32 * i] = acc[g][i];
        }
    }
    __syncthreads();
    // Warp g (of the first `group`) writes query head kvh * group + g's chunk result.
    const int g = warp;
    if (g >= group) return;
    float chunk_max = NEG_INF;
    for (int w = 0; w < WARPS; w++) chunk_max = fmaxf(chunk_max, warp_max[w][g]);
    const int h = kvh * group + g;
    float* o = part + (((size_t)r * heads + h) * chunks + chunk) * (head_dim + 2);
    // A warp that had no position keeps m = -inf and contributes nothing.
    for (int d = lane; d < head_dim; d += 32) {
        float a = 0.0f;
        for (int w = 0; w < WARPS; w++)
            if (warp_max[w][g] != NEG_INF) a += warp_acc[w][g][d] * expf(warp_max[w][g] - chunk_max);
        o[2 + d] = a;
    }
    if (lane == 0) {
        float total = 0.0f;
        for (int w = 0; w < WARPS; w++)
            if (warp_max[w][g] != NEG_INF) total += warp_sum[w][g] * expf(warp_max[w][g] - chunk_max);
        o[0] = chunk_max;
        o[1] = total;
    }
}

// Lane r, head h: combines the lane's chunks into out ([lanes, heads, head_dim]). The
// block's warps split the chunks (a long cache has hundreds), then add up their sums.
extern "C" __global__ void k2_decode_attention_combine(
    const unsigned long long* __restrict__ table, int lanes,
    const float* __restrict__ part, float* __restrict__ out,
    int heads, int head_dim, int chunks, signed char* __restrict__ q, float* __restrict__ qd)
{
    const int r = blockIdx.x, h = blockIdx.y;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int len = (int)table[3 * lanes + r] + 1;
    const int used = (len + CHUNK - 1) / CHUNK;
    const int stride = head_dim + 2;
    const float* p = part + ((size_t)r * heads + h) * chunks * stride;

    __shared__ float warp_max[WARPS], warp_total[WARPS];
    __shared__ float warp_acc[WARPS][32 * MAX_PER_LANE];
    float mx = NEG_INF;
    for (int c = threadIdx.x; c < used; c += 32 * WARPS) mx = fmaxf(mx, p[c * stride]);
    #pragma unroll
    for (int off = 16; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
    if (lane == 0) warp_max[warp] = mx;
    __syncthreads();
    float total_max = NEG_INF;
    for (int w = 0; w < WARPS; w++) total_max = fmaxf(total_max, warp_max[w]);

    float total = 0.0f, a[MAX_PER_LANE];
    #pragma unroll
    for (int i = 0; i < MAX_PER_LANE; i++) a[i] = 0.0f;
    for (int c = warp; c < used; c += WARPS) {
        const float* pc = p + (size_t)c * stride;
        const float w = expf(pc[0] - total_max);
        total += pc[1] * w;
        #pragma unroll
        for (int i = 0; i < MAX_PER_LANE; i++) {
            const int d = lane + 32 * i;
            if (d < head_dim) a[i] += pc[2 + d] * w;
        }
    }
    if (lane == 0) warp_total[warp] = total;
    #pragma unroll
    for (int i = 0; i < MAX_PER_LANE; i++) warp_acc[warp][lane + 32 * i] = a[i];
    __syncthreads();
    if (warp != 0) return;
    float sum = 0.0f;
    for (int w = 0; w < WARPS; w++) sum += warp_total[w];
    for (int d = lane; d < head_dim; d += 32) {
        float v = 0.0f;
        for (int w = 0; w < WARPS; w++) v += warp_acc[w][d];
        const size_t i = ((size_t)r * heads + h) * head_dim + d;
        out[i] = v / sum;
        // Quantized for a Q8_0 o projection: 32 dims of a head are a block of its input.
        if (q != nullptr) k2_quantize_lane(v / sum, q, qd, i);
    }
}
"#
);

const MODULE: &str = "k2_decode_attention";
const MAX_HEAD_DIM: usize = 128;
/// Query heads per key/value head the kernels serve (`MAX_GROUP` above).
const MAX_GROUP: usize = 8;
/// Positions per block of the attention kernel, and the warps of its blocks (`CHUNK`,
/// `WARPS` above).
const CHUNK: usize = 32;
const PART_WARPS: u32 = 8;

/// The PTX, compiled once per process by NVRTC on the machine that runs it.
fn ptx() -> Result<&'static str> {
    static PTX: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    compiled_ptx(&PTX, SOURCE, "attention", None)
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

/// Whether the kernels serve this attention geometry (other models attend through candle's
/// operations, as on CPU).
pub(super) fn supports(heads: usize, kv_heads: usize, head_dim: usize) -> bool {
    head_dim <= MAX_HEAD_DIM
        && head_dim.is_multiple_of(2)
        && kv_heads > 0
        && heads.is_multiple_of(kv_heads)
        && heads / kv_heads <= MAX_GROUP
}

/// What the kernels need to know about a step's lanes, for every layer, in one device
/// buffer uploaded once per step: per layer, the lanes' key rows, value rows, token
/// indices and positions (`4 * lanes` entries). Kernels read positions and cache addresses
/// from here rather than from their arguments, so a captured CUDA graph replays any step
/// of the same shape (see `cuda_graph`) after the table is rewritten.
pub(super) struct LaneTable {
    lanes: Vec<Lane>,
    /// No two lanes share a cache row (a decoding step): found once per step, read by
    /// every layer.
    one_lane_per_row: bool,
    capacity: usize,
    table: CudaSlice<u64>,
}

impl LaneTable {
    pub fn new(cache: &KvCache, lanes: Vec<Lane>, device: &Device) -> Result<LaneTable> {
        let Device::Cuda(dev) = device else {
            return Err(not_cuda());
        };
        let entries = Self::entries(cache, &lanes)?;
        Ok(LaneTable {
            table: dev.clone_htod(&entries)?,
            capacity: cache.capacity(),
            one_lane_per_row: one_lane_per_row(&lanes),
            lanes,
        })
    }

    /// Rewrites the table for the same number of lanes at new positions, or of another
    /// cache of the same capacity (a captured graph's next step).
    pub fn rewrite(&mut self, cache: &KvCache, lanes: Vec<Lane>) -> Result<()> {
        if lanes.len() != self.lanes.len() || cache.capacity() != self.capacity {
            return Err(EngineError::Kernel(
                "a lane table was rewritten for a step of another shape".into(),
            ));
        }
        let entries = Self::entries(cache, &lanes)?;
        let stream = self.table.stream().clone();
        stream
            .memcpy_htod(&entries, &mut self.table)
            .map_err(kernel_error)?;
        self.one_lane_per_row = one_lane_per_row(&lanes);
        self.lanes = lanes;
        Ok(())
    }

    fn entries(cache: &KvCache, lanes: &[Lane]) -> Result<Vec<u64>> {
        let mut entries = Vec::with_capacity(cache.layers() * 4 * lanes.len());
        for layer in 0..cache.layers() {
            let storage = cache.layer_storage(layer);
            for lane in lanes {
                entries.push(device_address(storage[lane.row].0)?);
            }
            for lane in lanes {
                entries.push(device_address(storage[lane.row].1)?);
            }
            entries.extend(lanes.iter().map(|l| l.tok as u64));
            entries.extend(lanes.iter().map(|l| l.pos as u64));
        }
        Ok(entries)
    }

    /// The device address of `layer`'s part of the table.
    fn layer_address(&self, layer: usize) -> u64 {
        let (base, _sync) = self.table.device_ptr(self.table.stream());
        base + (layer * 4 * self.lanes.len() * std::mem::size_of::<u64>()) as u64
    }
}

/// Writes `layer`'s lanes' rotated keys and values into their rows' caches (addresses in
/// `table`) and returns their attention, `[lanes, heads * head_dim]`. `q`, `k`, `v`: the
/// projections' `[n, * head_dim]` token rows (views into one stacked product are fine),
/// before rotary embedding; `cos`/`sin`: each token's `[n, head_dim / 2]` row.
pub(super) fn write_and_attend(
    (q, k, v): (&Tensor, &Tensor, &Tensor),
    (cos, sin): (&Tensor, &Tensor),
    table: &LaneTable,
    layer: usize,
    g: &LaneGeometry,
    for_q8: bool,
) -> Result<Tensor> {
    let capacity = table.capacity;
    if !supports(g.heads, g.kv_heads, g.head_dim) {
        return Err(EngineError::Kernel(format!(
            "CUDA attention supports even head_dim <= {MAX_HEAD_DIM} and up to {MAX_GROUP} \
             query heads per key/value head (got {} and {})",
            g.head_dim,
            g.heads / g.kv_heads.max(1)
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
    let table_ptr = table.layer_address(layer);
    let count = table.lanes.len();
    // SAFETY: every element is written by the attention kernel before it is read.
    let mut out = unsafe { dev.alloc::<f32>(count * g.heads * g.head_dim)? };
    let (lanes_i, hd_i, cap_i) = (count as i32, g.head_dim as i32, capacity as i32);
    let (heads_i, group_i) = (g.heads as i32, (g.heads / g.kv_heads) as i32);
    let interleaved = i32::from(g.interleaved_rope);

    // Decoding steps (every lane its own cache row) write the new keys and values inside
    // the attention kernel; spans of several tokens need them written for all lanes first.
    let write_in_attention = table.one_lane_per_row;
    if !write_in_attention {
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
            .arg(&table_ptr)
            .arg(&lanes_i)
            .arg(&hd_i)
            .arg(&cap_i);
        // SAFETY: the table holds live cache tensors of `capacity` positions (the caller
        // reserved room for every lane's position); token indices are rows of q/k/v/cos/sin.
        let threads = g.head_dim.next_multiple_of(32) as u32;
        unsafe { launch.launch(config(count, g.kv_heads, threads)) }.map_err(kernel_error)?;
    }

    // Chunks of CHUNK positions up to the capacity: the launch's shape depends on the
    // cache's storage only, never on the positions of this step.
    let chunks = capacity.div_ceil(CHUNK);
    // SAFETY: the combine kernel reads only chunks the part kernel wrote (those below each
    // lane's length).
    let mut part = unsafe { dev.alloc::<f32>(count * g.heads * chunks * (g.head_dim + 2))? };
    let attend = dev.get_or_load_custom_func("k2_decode_attention_part", MODULE, ptx()?)?;
    let mut launch = attend.builder();
    let write_new = i32::from(write_in_attention);
    launch
        .arg(&q_ptr)
        .arg(&q_stride)
        .arg(&k_ptr)
        .arg(&k_stride)
        .arg(&v_ptr)
        .arg(&v_stride)
        .arg(&write_new)
        .arg(&cos_ptr)
        .arg(&sin_ptr)
        .arg(&interleaved)
        .arg(&table_ptr)
        .arg(&lanes_i)
        .arg(&mut part)
        .arg(&heads_i)
        .arg(&group_i)
        .arg(&hd_i)
        .arg(&cap_i)
        .arg(&g.scale);
    let part_config = LaunchConfig {
        grid_dim: (count as u32, g.kv_heads as u32, chunks as u32),
        block_dim: (32 * PART_WARPS, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: as above; `part` holds lanes × heads × chunks × (head_dim + 2) floats.
    unsafe { launch.launch(part_config) }.map_err(kernel_error)?;

    let width = g.heads * g.head_dim;
    // A warp of the combining kernel writes 32 dims of one head: a block of the int8 form
    // only if heads are whole blocks.
    let blocks = (for_q8 && g.head_dim.is_multiple_of(32)).then_some(Int8Blocks::Of32);
    let quantized = cuda_q8::input_buffers(&dev, count, width, blocks)?;
    let [q8_ptr, q8_scales_ptr] = cuda_q8::addresses(&quantized);
    let combine = dev.get_or_load_custom_func("k2_decode_attention_combine", MODULE, ptx()?)?;
    let mut launch = combine.builder();
    let chunks_i = chunks as i32;
    launch
        .arg(&table_ptr)
        .arg(&lanes_i)
        .arg(&part)
        .arg(&mut out)
        .arg(&heads_i)
        .arg(&hd_i)
        .arg(&chunks_i)
        .arg(&q8_ptr)
        .arg(&q8_scales_ptr);
    // SAFETY: `out` holds lanes × heads × head_dim floats, the quantized buffers (if any)
    // as many values.
    unsafe { launch.launch(config(count, g.heads, 32 * PART_WARPS)) }.map_err(kernel_error)?;

    let storage = Storage::Cuda(CudaStorage::wrap_cuda_slice(out, dev.clone()));
    let shape = Shape::from((count, width));
    let out = Tensor::from_storage(storage, shape, BackpropOp::none(), false);
    cuda_q8::offer(&out, quantized);
    Ok(out)
}

/// Whether every lane is a different cache row.
fn one_lane_per_row(lanes: &[Lane]) -> bool {
    let mut rows: Vec<usize> = lanes.iter().map(|lane| lane.row).collect();
    rows.sort_unstable();
    rows.windows(2).all(|pair| pair[0] != pair[1])
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
