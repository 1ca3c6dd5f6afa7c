//! Q8_0 and Q4_K products on CUDA for 1-8 activation rows (decoding, best-of-N, speculative
//! verification), where a product reads every weight once and is bound by memory bandwidth.
//!
//! With candle's vector kernels each extra activation row cost a 32B model's step 10%
//! (Q8_0) to 30% (Q4_K_M), so best-of-3 cost 1.2-1.6x one row. These kernels (`cuda_q8.cu`)
//! read weights only in aligned 16-byte words (Q8_0's 34-byte blocks through shared memory,
//! 16 blocks at a time), multiply int8 activations with `dp4a`, and compute each activation
//! row by the same operations whatever the row count, so one row and eight give
//! bit-identical results (a verification pass's products match one-token decoding's).
//! The activations arrive quantized from the kernel that produced them where it can
//! ([`offer`]): the norms, SiLU·up and the attention's combining kernel.
//!
//! Used for input widths that are a multiple of 256 (Q8_0 rows stay 16-byte aligned, Q4_K
//! needs it anyway), which covers the Qwen2.5 geometries from 1.5B up; other shapes, more
//! than 8 rows (prefill, large batches), other formats and `K2_CUDA_INT8_PRODUCTS=0` use
//! candle's kernels.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::{CudaDevice, CudaStorage};
use candle_core::op::BackpropOp;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Shape, Storage, Tensor, TensorId};

use super::cuda_util::{address_of, compiled_ptx, device_address};
use crate::error::{EngineError, Result};

const SOURCE: &str = concat!(
    include_str!("cuda_quantize.cuh"),
    include_str!("cuda_q8.cu")
);
const MODULE: &str = "k2_int8_products";
/// Activation rows one launch serves (the kernels are instantiated for 1..=8).
const MAX_ROWS: usize = 8;
/// Values per Q8_0 block, and blocks per aligned half group (see `cuda_q8.cu`).
const BLOCK_VALUES: usize = 32;
const ALIGNED_BLOCKS: usize = 8;
const WARPS_PER_BLOCK: u32 = 4;

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Switches these kernels on or off for the process (benchmarks compare them with candle's
/// in one run). Off also when `K2_CUDA_INT8_PRODUCTS=0`.
pub(super) fn set_enabled(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

fn enabled() -> bool {
    static FROM_ENV: OnceLock<bool> = OnceLock::new();
    let env_allows =
        *FROM_ENV.get_or_init(|| std::env::var("K2_CUDA_INT8_PRODUCTS").as_deref() != Ok("0"));
    env_allows && ENABLED.load(Ordering::Relaxed)
}

fn ptx() -> Result<&'static str> {
    static PTX: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    compiled_ptx(&PTX, SOURCE, "int8 product")
}

/// Rows of activations in int8 form: values `q` and one scale per block of 32 in `d` (see
/// `cuda_quantize.cuh`).
pub(super) struct Int8Rows {
    q: DeviceBuffer<i8>,
    d: DeviceBuffer<f32>,
}

/// The kernels' arguments for optional [`Int8Rows`]: null pointers when there are none.
pub(super) fn addresses(rows: &Option<Int8Rows>) -> [u64; 2] {
    rows.as_ref()
        .map_or([0; 2], |r| [address_of(&r.q), address_of(&r.d)])
}

/// Rows some kernel quantized as it produced them (see [`offer`]).
struct Ready {
    of: TensorId,
    rows: Int8Rows,
}

thread_local! {
    static READY: RefCell<Option<Ready>> = const { RefCell::new(None) };
}

/// The kernels for weights of `dtype` (`…_{rows}` for 1..=8 rows), if these kernels take them.
pub(super) fn kernel_prefix(dtype: GgmlDType) -> Option<&'static str> {
    match dtype {
        GgmlDType::Q8_0 => Some("k2_q8_0_product"),
        GgmlDType::Q4K => Some("k2_q4_k_product"),
        _ => None,
    }
}

/// How many warps share a weight row of `cols` values. One warp per row left a Q4_K down
/// projection of a 32B model (5,120 rows of 27,648) streaming for long with too few warps
/// (0.9 TB/s at 3 rows); four per row for rows of 64 super-blocks and more. Q8_0 rows stay
/// one warp's (four ran 8% slower there).
fn warps_per_row(dtype: GgmlDType, cols: usize) -> u32 {
    const LONG_ROW: usize = 64 * 256;
    if dtype == GgmlDType::Q4K && cols >= LONG_ROW {
        4
    } else {
        1
    }
}

/// Whether a product of `rows × cols` activations runs here (the weights' format aside).
fn takes(rows: usize, cols: usize) -> bool {
    enabled()
        && cols.is_multiple_of(BLOCK_VALUES * ALIGNED_BLOCKS)
        && (1..=MAX_ROWS).contains(&rows)
}

/// Buffers for `rows × cols` activations quantized by the kernel that produces them, when
/// the caller `asked` (the next product reads int8) and an int8 product can take them: the
/// norms, SiLU·up and the attention quantize for the product after them, which saves it a
/// launch (three of four per layer).
pub(super) fn input_buffers(
    dev: &CudaDevice,
    rows: usize,
    cols: usize,
    asked: bool,
) -> Result<Option<Int8Rows>> {
    if !asked || !takes(rows, cols) {
        return Ok(None);
    }
    allocate(dev, rows, cols).map(Some)
}

fn allocate(dev: &CudaDevice, rows: usize, cols: usize) -> Result<Int8Rows> {
    let values = rows * cols;
    // SAFETY: the quantizing kernel writes every element of both.
    Ok(unsafe {
        Int8Rows {
            q: dev.alloc::<i8>(values)?,
            d: dev.alloc::<f32>(values / BLOCK_VALUES)?,
        }
    })
}

/// Hands `of`'s quantized form (if it was made) to the next product whose input is exactly
/// `of` (a tensor's id is never reused, and tensors are not written after they are made).
pub(super) fn offer(of: &Tensor, rows: Option<Int8Rows>) {
    if let Some(rows) = rows {
        READY.with(|ready| *ready.borrow_mut() = Some(Ready { of: of.id(), rows }));
    }
}

/// Drops an offer no product took. A decoding step ends with this: buffers allocated while
/// a step is captured as a CUDA graph must be freed within the same capture.
pub(super) fn forget_offer() {
    READY.with(|ready| ready.borrow_mut().take());
}

fn take_offer(x: &Tensor) -> Option<Int8Rows> {
    READY.with(|ready| {
        let mut ready = ready.borrow_mut();
        if ready.as_ref().is_some_and(|r| r.of == x.id()) {
            ready.take().map(|r| r.rows)
        } else {
            None
        }
    })
}

/// `x @ wᵀ (+ bias)` for a Q8_0 or Q4_K matrix `w` (`[out, in]`), f32 `x` (`[rows, in]`,
/// contiguous) and an f32 `bias` (`[out]`), or `None` where these kernels do not apply (see
/// the module comment).
pub(super) fn int8_matmul(
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
    let Some(prefix) = kernel_prefix(w.dtype()) else {
        return Ok(None);
    };
    if x.dtype() != DType::F32 || w_cols != cols {
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
    let input = match take_offer(x) {
        Some(ready) => ready,
        None => quantize(dev, x, rows, cols)?,
    };
    let w_ptr = w.device_ptr()? as u64;
    // SAFETY: the kernel writes every element (each output row is one warp's sum).
    let mut y = unsafe { dev.alloc::<f32>(rows * out)? };
    let name = format!("{prefix}_{rows}");
    let func = dev.get_or_load_custom_func(&name, MODULE, ptx()?)?;
    let mut launch = func.builder();
    let split = warps_per_row(w.dtype(), cols);
    let (out_i, cols_i, split_i) = (out as i32, cols as i32, split as i32);
    launch
        .arg(&w_ptr)
        .arg(&input.q)
        .arg(&input.d)
        .arg(&bias_ptr)
        .arg(&mut y)
        .arg(&out_i)
        .arg(&cols_i)
        .arg(&split_i);
    let config = LaunchConfig {
        grid_dim: ((out as u32).div_ceil(WARPS_PER_BLOCK / split), 1, 1),
        block_dim: (WARPS_PER_BLOCK * 32, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: w holds out rows of cols values in its format (a live QTensor), `input` the
    // quantized activations, bias (if not null) out floats, y rows × out floats; all live past the launch, which is
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

/// `x` in int8 form (round to nearest, like the activations candle's kernels quantize).
fn quantize(dev: &CudaDevice, x: &Tensor, rows: usize, cols: usize) -> Result<Int8Rows> {
    let blocks = rows * cols / BLOCK_VALUES;
    let x_ptr = device_address(x)?;
    let mut out = allocate(dev, rows, cols)?;
    let func = dev.get_or_load_custom_func("k2_quantize_q8", MODULE, ptx()?)?;
    let mut launch = func.builder();
    let blocks_i = blocks as i32;
    launch
        .arg(&x_ptr)
        .arg(&mut out.q)
        .arg(&mut out.d)
        .arg(&blocks_i);
    const WARPS: u32 = 8;
    let config = LaunchConfig {
        grid_dim: ((blocks as u32).div_ceil(WARPS), 1, 1),
        block_dim: (WARPS * 32, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: x holds rows × cols floats; the buffers are sized for them (`allocate`).
    unsafe { launch.launch(config) }.map_err(launch_error)?;
    Ok(out)
}

fn launch_error(e: impl std::fmt::Display) -> EngineError {
    EngineError::Kernel(format!("CUDA int8 product launch failed: {e}"))
}
