//! Small CUDA operations of a decoding step, each one launch where candle takes more.
//!
//! At batch 1 a 64-layer step is memory-bound on its weights, and every other launch adds
//! a few microseconds of nearly idle GPU time (measured kernel by kernel with Nsight
//! Compute: `scripts/gpu/run.sh profile`). These replace the ones that cost most:
//! - a residual connection and the RMS norm after it, in one kernel (two per layer);
//! - SiLU(gate) · up: one kernel reading both halves of the stacked gate/up product,
//!   instead of an activation and a product (and their strided-view bookkeeping);
//! - half-precision products with f32 results: cuBLAS writes f32 directly, instead of a
//!   half-precision result that a separate kernel casts back (four casts per layer).
//!
//! Each returns `None` where it does not apply (another device, dtype or layout), and the
//! caller uses candle's operation.

use std::sync::OnceLock;

use candle_core::cuda_backend::cudarc::cublas::{result as cublas, sys as cublas_sys, CudaBlas};
use candle_core::cuda_backend::cudarc::driver::{DevicePtr, LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::{CudaDevice, CudaStorage};
use candle_core::op::BackpropOp;
use candle_core::{DType, Device, Shape, Storage, Tensor};

use super::cuda_q8;
use super::cuda_util::{compiled_ptx, device_address};
use super::linear::Int8Blocks;
use crate::error::{EngineError, Result};

const SOURCE: &str = concat!(
    include_str!("cuda_quantize.cuh"),
    include_str!("cuda_block_sum.cuh"),
    r#"
// y = x / rms(x) * w, one block per row (a multiple of 256 threads when it quantizes in
// blocks of 256: k2_quantize_for_product). Each kernel below comes in two forms, `…` and
// `…_q256`, which quantize (if `q` is given) in blocks of 32 and 256: the form of 32 has
// no barrier in its quantizing.
template <int BLOCK_VALUES>
__device__ void rms_norm(
    const float* __restrict__ x, const float* __restrict__ w, float* __restrict__ y,
    int cols, float eps, signed char* __restrict__ q, float* __restrict__ qd)
{
    const float* xr = x + (size_t)blockIdx.x * cols;
    float* yr = y + (size_t)blockIdx.x * cols;
    float sum = 0.0f;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) sum += xr[i] * xr[i];
    const float scale = rsqrtf(k2_block_sum(sum) / cols + eps);
    if (BLOCK_VALUES == 32) {
        for (int i = threadIdx.x; i < cols; i += blockDim.x) {
            const float v = xr[i] * scale * w[i];
            yr[i] = v;
            if (q != nullptr) k2_quantize_lane(v, q, qd, (size_t)blockIdx.x * cols + i);
        }
        return;
    }
    // Every thread takes the same number of steps (the quantizing synchronizes).
    const int steps = (cols + blockDim.x - 1) / blockDim.x;
    for (int k = 0; k < steps; k++) {
        const int i = threadIdx.x + k * blockDim.x;
        const bool valid = i < cols;
        const float v = valid ? xr[i] * scale * w[i] : 0.0f;
        if (valid) yr[i] = v;
        if (q != nullptr)
            k2_quantize_for_product<BLOCK_VALUES>(
                v, valid, q, qd, (size_t)blockIdx.x * cols + i, k);
    }
}

// The residual stream's step and the next norm in one pass: sum = x + y, then
// h = sum / rms(sum) * w, one block per row. A thread keeps its (at most NORM_PER_THREAD)
// elements and their weights in registers from the first pass to the second: at batch 1
// this kernel is all latency (5,120 values), and a second trip to memory was a third of it.
#define NORM_PER_THREAD 8
template <int BLOCK_VALUES>
__device__ void add_rms_norm(
    const float* __restrict__ x, const float* __restrict__ y, const float* __restrict__ w,
    float* __restrict__ sum_out, float* __restrict__ h, int cols, float eps,
    signed char* __restrict__ q, float* __restrict__ qd)
{
    const size_t row = (size_t)blockIdx.x * cols;
    float v[NORM_PER_THREAD], wv[NORM_PER_THREAD];
    float squares = 0.0f;
    #pragma unroll
    for (int k = 0; k < NORM_PER_THREAD; k++) {
        const int i = threadIdx.x + k * blockDim.x;
        v[k] = 0.0f;
        wv[k] = 0.0f;
        if (i < cols) {
            v[k] = x[row + i] + y[row + i];
            wv[k] = w[i];
            sum_out[row + i] = v[k];
            squares += v[k] * v[k];
        }
    }
    const float scale = rsqrtf(k2_block_sum(squares) / cols + eps);
    if (BLOCK_VALUES == 32) {
        #pragma unroll
        for (int k = 0; k < NORM_PER_THREAD; k++) {
            const int i = threadIdx.x + k * blockDim.x;
            if (i < cols) {
                const float out = v[k] * scale * wv[k];
                h[row + i] = out;
                if (q != nullptr) k2_quantize_lane(out, q, qd, row + i);
            }
        }
        return;
    }
    #pragma unroll
    for (int k = 0; k < NORM_PER_THREAD; k++) {
        // The same steps for every thread (the quantizing synchronizes).
        if (k * (int)blockDim.x >= cols) break;
        const int i = threadIdx.x + k * blockDim.x;
        const bool valid = i < cols;
        const float out = v[k] * scale * wv[k];
        if (valid) h[row + i] = out;
        if (q != nullptr)
            k2_quantize_for_product<BLOCK_VALUES>(out, valid, q, qd, row + i, k);
    }
}

// out[r, c] = silu(gate[r, c]) * up[r, c]; gate and up rows are `stride` apart (views into
// one stacked product). Blocks of a multiple of 256 threads when it quantizes in blocks of
// 256 (k2_quantize_for_product; rows are whole blocks of 256 then).
template <int BLOCK_VALUES>
__device__ void silu_mul(
    const float* __restrict__ gate, const float* __restrict__ up, long long stride,
    float* __restrict__ out, int rows, int cols, signed char* __restrict__ q,
    float* __restrict__ qd)
{
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const bool valid = i < (long long)rows * cols;
    float v = 0.0f;
    if (valid) {
        const long long r = i / cols, c = i % cols;
        const float g = gate[r * stride + c];
        v = g / (1.0f + expf(-g)) * up[r * stride + c];
        out[i] = v;
    }
    if (q != nullptr) k2_quantize_for_product<BLOCK_VALUES>(v, valid, q, qd, i, 0);
}

#define K2_BOTH_FORMS(NAME, BODY, PARAMS, ARGS)                                          \
    extern "C" __global__ void NAME PARAMS { BODY<32> ARGS; }                             \
    extern "C" __global__ void NAME##_q256 PARAMS { BODY<256> ARGS; }
K2_BOTH_FORMS(k2_rms_norm, rms_norm,
    (const float* __restrict__ x, const float* __restrict__ w, float* __restrict__ y, int cols,
     float eps, signed char* __restrict__ q, float* __restrict__ qd),
    (x, w, y, cols, eps, q, qd))
K2_BOTH_FORMS(k2_add_rms_norm, add_rms_norm,
    (const float* __restrict__ x, const float* __restrict__ y, const float* __restrict__ w,
     float* __restrict__ sum_out, float* __restrict__ h, int cols, float eps,
     signed char* __restrict__ q, float* __restrict__ qd),
    (x, y, w, sum_out, h, cols, eps, q, qd))
K2_BOTH_FORMS(k2_silu_mul, silu_mul,
    (const float* __restrict__ gate, const float* __restrict__ up, long long stride,
     float* __restrict__ out, int rows, int cols, signed char* __restrict__ q,
     float* __restrict__ qd),
    (gate, up, stride, out, rows, cols, q, qd))
"#
);

const MODULE: &str = "k2_step_ops";
/// The widest row `k2_add_rms_norm` takes: 1,024 threads of `NORM_PER_THREAD` (8) values
/// (hidden sizes up to Qwen2.5-72B's 8,192); wider ones take candle's operations.
const NORM_MAX_COLS: usize = 8 * 1024;

fn ptx() -> Result<&'static str> {
    static PTX: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    compiled_ptx(&PTX, SOURCE, "step", None)
}

/// RMS norm of each row of `x` (`[rows, cols]`, f32, contiguous) times `w` (`[cols]`);
/// with `quantize`, also quantized for an int8 product (see `cuda_q8::offer`).
pub(super) fn rms_norm(
    x: &Tensor,
    w: &Tensor,
    eps: f32,
    quantize: Option<Int8Blocks>,
) -> Result<Option<Tensor>> {
    let (Device::Cuda(dev), Ok((rows, cols))) = (x.device(), x.dims2()) else {
        return Ok(None);
    };
    if x.dtype() != DType::F32 || w.dtype() != DType::F32 || !x.is_contiguous() {
        return Ok(None);
    }
    if !w.is_contiguous() || w.elem_count() != cols {
        return Ok(None);
    }
    let (x_ptr, w_ptr) = (device_address(x)?, device_address(w)?);
    // SAFETY: the kernel writes every element.
    let mut y = unsafe { dev.alloc::<f32>(rows * cols)? };
    let quantized = cuda_q8::input_buffers(dev, rows, cols, quantize)?;
    let [q_ptr, d_ptr] = cuda_q8::addresses(&quantized);
    let name = kernel_for("k2_rms_norm", &quantized);
    let func = dev.get_or_load_custom_func(&name, MODULE, ptx()?)?;
    let mut launch = func.builder();
    let (cols_i, eps_f) = (cols as i32, eps);
    launch
        .arg(&x_ptr)
        .arg(&w_ptr)
        .arg(&mut y)
        .arg(&cols_i)
        .arg(&eps_f)
        .arg(&q_ptr)
        .arg(&d_ptr);
    // SAFETY: x and y hold rows × cols floats, w holds cols, the quantized buffers (if any)
    // rows × cols values; all live past the launch.
    unsafe { launch.launch(row_blocks(rows, cols)) }.map_err(launch_error)?;
    let y = wrap(y, dev, (rows, cols));
    cuda_q8::offer(&y, quantized);
    Ok(Some(y))
}

/// `x + y` and the RMS norm of that times `w`, in one launch (`[rows, cols]` f32,
/// contiguous): a residual connection and the norm that follows it; with `quantize`, the
/// norm also quantized for an int8 product (see `cuda_q8::offer`).
pub(super) fn add_rms_norm(
    x: &Tensor,
    y: &Tensor,
    w: &Tensor,
    eps: f32,
    quantize: Option<Int8Blocks>,
) -> Result<Option<(Tensor, Tensor)>> {
    let (Device::Cuda(dev), Ok((rows, cols))) = (x.device(), x.dims2()) else {
        return Ok(None);
    };
    let all_f32 = [x, y, w].iter().all(|t| t.dtype() == DType::F32);
    if !all_f32 || !x.is_contiguous() || !y.is_contiguous() || y.dims2()? != (rows, cols) {
        return Ok(None);
    }
    if !w.is_contiguous() || w.elem_count() != cols || cols > NORM_MAX_COLS {
        return Ok(None);
    }
    let (x_ptr, y_ptr, w_ptr) = (device_address(x)?, device_address(y)?, device_address(w)?);
    // SAFETY: the kernel writes every element of both.
    let (mut sum, mut h) = unsafe {
        (
            dev.alloc::<f32>(rows * cols)?,
            dev.alloc::<f32>(rows * cols)?,
        )
    };
    let quantized = cuda_q8::input_buffers(dev, rows, cols, quantize)?;
    let [q_ptr, d_ptr] = cuda_q8::addresses(&quantized);
    let name = kernel_for("k2_add_rms_norm", &quantized);
    let func = dev.get_or_load_custom_func(&name, MODULE, ptx()?)?;
    let mut launch = func.builder();
    let cols_i = cols as i32;
    launch
        .arg(&x_ptr)
        .arg(&y_ptr)
        .arg(&w_ptr)
        .arg(&mut sum)
        .arg(&mut h)
        .arg(&cols_i)
        .arg(&eps)
        .arg(&q_ptr)
        .arg(&d_ptr);
    // SAFETY: x, y, sum and h hold rows × cols floats, w holds cols, the quantized buffers
    // (if any) rows × cols values; all live past the launch.
    unsafe { launch.launch(row_blocks(rows, cols)) }.map_err(launch_error)?;
    let h = wrap(h, dev, (rows, cols));
    cuda_q8::offer(&h, quantized);
    Ok(Some((wrap(sum, dev, (rows, cols)), h)))
}

/// SiLU(gate) · up for `[rows, cols]` f32 views whose rows sit `stride` apart in the same
/// storage layout (the two halves of one stacked product, or two contiguous tensors); with
/// `quantize`, also quantized for an int8 product (see `cuda_q8::offer`).
pub(super) fn silu_mul(
    gate: &Tensor,
    up: &Tensor,
    quantize: Option<Int8Blocks>,
) -> Result<Option<Tensor>> {
    let (Device::Cuda(dev), Ok((rows, cols))) = (gate.device(), gate.dims2()) else {
        return Ok(None);
    };
    let (Some(stride), Some(up_stride)) = (row_stride(gate), row_stride(up)) else {
        return Ok(None);
    };
    if gate.dtype() != DType::F32 || up.dtype() != DType::F32 || up.dims2()? != (rows, cols) {
        return Ok(None);
    }
    if stride != up_stride {
        return Ok(None);
    }
    let (gate_ptr, up_ptr) = (device_address(gate)?, device_address(up)?);
    let n = rows * cols;
    // SAFETY: the kernel writes every element.
    let mut out = unsafe { dev.alloc::<f32>(n)? };
    let quantized = cuda_q8::input_buffers(dev, rows, cols, quantize)?;
    let [q_ptr, d_ptr] = cuda_q8::addresses(&quantized);
    let name = kernel_for("k2_silu_mul", &quantized);
    let func = dev.get_or_load_custom_func(&name, MODULE, ptx()?)?;
    let mut launch = func.builder();
    let (stride_i, rows_i, cols_i) = (stride as i64, rows as i32, cols as i32);
    launch
        .arg(&gate_ptr)
        .arg(&up_ptr)
        .arg(&stride_i)
        .arg(&mut out)
        .arg(&rows_i)
        .arg(&cols_i)
        .arg(&q_ptr)
        .arg(&d_ptr);
    // SAFETY: both views cover rows × cols elements `stride` apart, the quantized buffers
    // (if any) rows × cols values; all live past the launch. Blocks of 1,024 threads keep
    // each warp on 32 consecutive elements and each group of 8 warps on 256: one block of
    // either quantized form.
    let config = LaunchConfig {
        grid_dim: ((n as u32).div_ceil(1024), 1, 1),
        block_dim: (1024, 1, 1),
        shared_mem_bytes: 0,
    };
    unsafe { launch.launch(config) }.map_err(launch_error)?;
    let out = wrap(out, dev, (rows, cols));
    cuda_q8::offer(&out, quantized);
    Ok(Some(out))
}

/// `x @ w^T` with `w` half precision (`[out, in]`, contiguous) and `x` f32 `[rows, in]`:
/// `x` is cast to `w`'s type (the product runs on the matrix units and reads half the
/// bytes), and cuBLAS accumulates and writes in f32.
pub(super) fn half_matmul(x: &Tensor, w: &Tensor) -> Result<Option<Tensor>> {
    let (Device::Cuda(dev), Ok((rows, inner)), Ok((out, w_inner))) =
        (x.device(), x.dims2(), w.dims2())
    else {
        return Ok(None);
    };
    let data_type = match w.dtype() {
        DType::BF16 => cublas_sys::cudaDataType::CUDA_R_16BF,
        DType::F16 => cublas_sys::cudaDataType::CUDA_R_16F,
        _ => return Ok(None),
    };
    if x.dtype() != DType::F32 || inner != w_inner || !w.is_contiguous() {
        return Ok(None);
    }
    let x_half = x.to_dtype(w.dtype())?.contiguous()?;
    let stream = dev.cuda_stream();
    let (x_ptr, w_ptr) = (device_address(&x_half)?, device_address(w)?);
    // SAFETY: cuBLAS writes every element (beta = 0).
    let y = unsafe { dev.alloc::<f32>(rows * out)? };
    let (y_ptr, _sync) = y.device_ptr(&stream);
    let (alpha, beta) = (1.0f32, 0.0f32);
    let blas = blas(dev)?;
    // Column-major view: yᵀ [out × rows] = (wᵀ)ᵀ [out × in] · xᵀ [in × rows].
    // SAFETY: the pointers address live buffers of the sizes given; the handle runs on
    // candle's stream, so the product is ordered with every other operation.
    unsafe {
        cublas::gemm_ex(
            *blas.handle(),
            cublas_sys::cublasOperation_t::CUBLAS_OP_T,
            cublas_sys::cublasOperation_t::CUBLAS_OP_N,
            out as i32,
            rows as i32,
            inner as i32,
            &alpha as *const f32 as *const _,
            w_ptr as *const _,
            data_type,
            inner as i32,
            x_ptr as *const _,
            data_type,
            inner as i32,
            &beta as *const f32 as *const _,
            y_ptr as *mut _,
            cublas_sys::cudaDataType::CUDA_R_32F,
            out as i32,
            cublas_sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
            cublas_sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
        )
    }
    .map_err(|e| EngineError::Kernel(format!("cuBLAS half-precision product: {e:?}")))?;
    drop(_sync);
    Ok(Some(wrap(y, dev, (rows, out))))
}

/// The form of kernel `base` that quantizes as `quantized` holds (see the kernels' source).
fn kernel_for(base: &str, quantized: &Option<cuda_q8::Int8Rows>) -> String {
    match cuda_q8::blocks_of(quantized) {
        Some(Int8Blocks::Of256) => format!("{base}_q256"),
        _ => base.to_string(),
    }
}

/// One block per row, a thread per element up to 1,024.
fn row_blocks(rows: usize, cols: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (rows as u32, 1, 1),
        block_dim: (cols.div_ceil(32).clamp(1, 32) as u32 * 32, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// The process's cuBLAS handle for these products, on candle's stream (one GPU per
/// process, see `device.rs`; calls are serialized by `cuda_graph`).
fn blas(dev: &CudaDevice) -> Result<&'static CudaBlas> {
    static BLAS: OnceLock<std::result::Result<CudaBlas, String>> = OnceLock::new();
    BLAS.get_or_init(|| CudaBlas::new(dev.cuda_stream()).map_err(|e| format!("{e:?}")))
        .as_ref()
        .map_err(|e| EngineError::Kernel(format!("creating a cuBLAS handle: {e}")))
}

/// The distance between rows of a 2-D view whose rows are contiguous, in elements.
fn row_stride(t: &Tensor) -> Option<usize> {
    let layout = t.layout();
    let (dims, stride) = (layout.dims(), layout.stride());
    (dims.len() == 2 && (stride[1] == 1 || dims[1] == 1) && stride[0] >= dims[1])
        .then_some(stride[0])
}

fn wrap(
    slice: candle_core::cuda_backend::cudarc::driver::CudaSlice<f32>,
    dev: &CudaDevice,
    shape: (usize, usize),
) -> Tensor {
    let storage = Storage::Cuda(CudaStorage::wrap_cuda_slice(slice, dev.clone()));
    Tensor::from_storage(storage, Shape::from(shape), BackpropOp::none(), false)
}

fn launch_error(e: impl std::fmt::Display) -> EngineError {
    EngineError::Kernel(format!("CUDA step kernel launch failed: {e}"))
}
