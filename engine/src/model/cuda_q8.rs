//! Q8_0 products on CUDA for 1-8 activation rows: decoding, best-of-N and speculative
//! verification, where a product reads every weight once and is bound by memory bandwidth.
//!
//! Candle's vector kernels read Q8_0 weights two bytes at a time (a 34-byte block is not
//! word-aligned) and reached 1.9-2.8 TB/s on an H100's 3.0; each extra activation row cost
//! them ~10% of a step. These read a row's blocks 16 bytes at a time in 16-block groups
//! (544 bytes, word-aligned again), multiply int8 activations with `dp4a`, and compute each
//! activation row by the same operations whatever the row count, so one row and eight give
//! bit-identical results (greedy speculative decoding stays exact on CUDA for Q8_0).
//!
//! Used for Q8_0 matrices whose input width is a multiple of 256 (8 blocks: rows stay
//! 16-byte aligned), which covers the Qwen2.5 geometries from 1.5B up; other shapes, more
//! than 8 rows (prefill, large batches) and `K2_CUDA_Q8_KERNELS=0` use candle's kernels.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::{CudaDevice, CudaStorage};
use candle_core::op::BackpropOp;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Shape, Storage, Tensor, TensorId};

use super::cuda_util::{compiled_ptx, device_address};
use crate::error::{EngineError, Result};

const SOURCE: &str = concat!(
    include_str!("cuda_quantize.cuh"),
    include_str!("cuda_q8.cu")
);
const MODULE: &str = "k2_q8_0";
/// Activation rows one launch serves (the kernels are instantiated for 1..=8).
const MAX_ROWS: usize = 8;
/// Values per Q8_0 block, and blocks per aligned half group (see `cuda_q8.cu`).
const BLOCK_VALUES: usize = 32;
const ALIGNED_BLOCKS: usize = 8;
const WARPS_PER_BLOCK: u32 = 4;

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Switches these kernels on or off for the process (benchmarks compare them with candle's
/// in one run). Off also when `K2_CUDA_Q8_KERNELS=0`.
pub(super) fn set_enabled(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

fn enabled() -> bool {
    static FROM_ENV: OnceLock<bool> = OnceLock::new();
    let env_allows =
        *FROM_ENV.get_or_init(|| std::env::var("K2_CUDA_Q8_KERNELS").as_deref() != Ok("0"));
    env_allows && ENABLED.load(Ordering::Relaxed)
}

fn ptx() -> Result<&'static str> {
    static PTX: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    compiled_ptx(&PTX, SOURCE, "Q8_0 product")
}

/// Rows of activations some kernel quantized as it produced them (see [`offer`]).
struct Ready {
    of: TensorId,
    q: DeviceBuffer<i8>,
    d: DeviceBuffer<f32>,
}

thread_local! {
    static READY: RefCell<Option<Ready>> = const { RefCell::new(None) };
}

/// Whether a product of `rows × cols` activations runs here (the weights' format aside).
fn takes(rows: usize, cols: usize) -> bool {
    enabled()
        && cols.is_multiple_of(BLOCK_VALUES * ALIGNED_BLOCKS)
        && (1..=MAX_ROWS).contains(&rows)
}

/// Buffers for `rows × cols` activations quantized by the kernel that produces them, when a
/// Q8_0 product can take them: the norms and SiLU·up quantize for the product after them,
/// which saves it a launch (three of four per layer).
pub(super) fn input_buffers(
    dev: &CudaDevice,
    rows: usize,
    cols: usize,
) -> Result<Option<(DeviceBuffer<i8>, DeviceBuffer<f32>)>> {
    if !takes(rows, cols) {
        return Ok(None);
    }
    // SAFETY: the producing kernel writes every element of both.
    Ok(Some(unsafe {
        (
            dev.alloc::<i8>(rows * cols)?,
            dev.alloc::<f32>(rows * cols / BLOCK_VALUES)?,
        )
    }))
}

/// Hands `of`'s quantized form to the next product whose input is exactly `of` (a tensor's
/// id is never reused, and tensors are not written after they are made).
pub(super) fn offer(of: &Tensor, q: DeviceBuffer<i8>, d: DeviceBuffer<f32>) {
    READY.with(|ready| *ready.borrow_mut() = Some(Ready { of: of.id(), q, d }));
}

/// Drops an offer no product took. A decoding step ends with this: buffers allocated while
/// a step is captured as a CUDA graph must be freed within the same capture.
pub(super) fn forget_offer() {
    READY.with(|ready| ready.borrow_mut().take());
}

fn take_offer(x: &Tensor) -> Option<(DeviceBuffer<i8>, DeviceBuffer<f32>)> {
    READY.with(|ready| {
        let mut ready = ready.borrow_mut();
        if ready.as_ref().is_some_and(|r| r.of == x.id()) {
            ready.take().map(|r| (r.q, r.d))
        } else {
            None
        }
    })
}

/// `x @ wᵀ (+ bias)` for a Q8_0 matrix `w` (`[out, in]`), f32 `x` (`[rows, in]`,
/// contiguous) and an f32 `bias` (`[out]`), or `None` where these kernels do not apply (see
/// the module comment).
pub(super) fn q8_0_matmul(
    w: &QTensor,
    x: &Tensor,
    bias: Option<&Tensor>,
) -> Result<Option<Tensor>> {
    let (Device::Cuda(dev), Ok((rows, cols))) = (x.device(), x.dims2()) else {
        return Ok(None);
    };
    let Ok((out, w_cols)) = w.shape().dims2() else {
        return Ok(None);
    };
    if w.dtype() != GgmlDType::Q8_0 || x.dtype() != DType::F32 || w_cols != cols {
        return Ok(None);
    }
    if !takes(rows, cols) || !x.is_contiguous() {
        return Ok(None);
    }
    let bias_ptr = match bias {
        None => 0u64,
        Some(b) if b.dtype() == DType::F32 && b.is_contiguous() && b.elem_count() == out => {
            device_address(b)?
        }
        Some(_) => return Ok(None),
    };
    let (q, d) = match take_offer(x) {
        Some(ready) => ready,
        None => quantize(dev, x, rows, cols)?,
    };
    let w_ptr = w.device_ptr()? as u64;
    // SAFETY: the kernel writes every element (each output row is one warp's sum).
    let mut y = unsafe { dev.alloc::<f32>(rows * out)? };
    let name = format!("k2_q8_0_product_{rows}");
    let func = dev.get_or_load_custom_func(&name, MODULE, ptx()?)?;
    let mut launch = func.builder();
    let (out_i, cols_i) = (out as i32, cols as i32);
    launch
        .arg(&w_ptr)
        .arg(&q)
        .arg(&d)
        .arg(&bias_ptr)
        .arg(&mut y)
        .arg(&out_i)
        .arg(&cols_i);
    let config = LaunchConfig {
        grid_dim: ((out as u32).div_ceil(WARPS_PER_BLOCK), 1, 1),
        block_dim: (WARPS_PER_BLOCK * 32, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: w holds out × cols/32 blocks of 34 bytes (a live QTensor of that shape), q and
    // d the quantized activations, bias (if not null) out floats, y rows × out floats; all live past the launch, which is
    // ordered on candle's stream with everything else.
    unsafe { launch.launch(config) }.map_err(launch_error)?;
    let storage = Storage::Cuda(CudaStorage::wrap_cuda_slice(y, dev.clone()));
    Ok(Some(Tensor::from_storage(
        storage,
        Shape::from((rows, out)),
        BackpropOp::none(),
        false,
    )))
}

type DeviceBuffer<T> = candle_core::cuda_backend::cudarc::driver::CudaSlice<T>;

/// `x` as int8 values and one f32 scale per block of 32 (round to nearest, like the
/// activations candle's kernels quantize).
fn quantize(
    dev: &CudaDevice,
    x: &Tensor,
    rows: usize,
    cols: usize,
) -> Result<(DeviceBuffer<i8>, DeviceBuffer<f32>)> {
    let blocks = rows * cols / BLOCK_VALUES;
    let x_ptr = device_address(x)?;
    // SAFETY: the kernel writes every element of both (a warp per block).
    let (mut q, mut d) = unsafe { (dev.alloc::<i8>(rows * cols)?, dev.alloc::<f32>(blocks)?) };
    let func = dev.get_or_load_custom_func("k2_quantize_q8", MODULE, ptx()?)?;
    let mut launch = func.builder();
    let blocks_i = blocks as i32;
    launch.arg(&x_ptr).arg(&mut q).arg(&mut d).arg(&blocks_i);
    const WARPS: u32 = 8;
    let config = LaunchConfig {
        grid_dim: ((blocks as u32).div_ceil(WARPS), 1, 1),
        block_dim: (WARPS * 32, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: x holds rows × cols floats; q and d are sized for them above.
    unsafe { launch.launch(config) }.map_err(launch_error)?;
    Ok((q, d))
}

fn launch_error(e: impl std::fmt::Display) -> EngineError {
    EngineError::Kernel(format!("CUDA Q8_0 product launch failed: {e}"))
}
