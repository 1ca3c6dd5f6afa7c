//! Q8_0, Q4_K and Q6_K products on CUDA for 1-8 activation rows (decoding, best-of-N, speculative
//! verification), where a product reads every weight once and is bound by memory bandwidth.
//!
//! With candle's vector kernels each extra activation row cost a 32B model's step 10%
//! (Q8_0) to 30% (Q4_K_M), so best-of-3 cost 1.2-1.6x one row. These kernels (`cuda_q8.cu`)
//! read weights only in aligned 16-byte words (Q8_0's 34-byte blocks and Q6_K's 210-byte
//! super-blocks through shared memory), multiply int8 activations with `dp4a`, and compute
//! each activation row by the same operations whatever the row count, so one row and eight
//! give bit-identical results (a verification pass's products match one-token decoding's).
//! The activations arrive quantized from the kernel that produced them where it can
//! ([`offer`]): the norms, SiLU·up and the attention's combining kernel.
//!
//! On GPUs with int8 tensor cores (compute capability 8.0 and up), Q4_K and Q6_K products
//! run on them instead (`cuda_q4_k_tensor.cu`, `cuda_q6_k_tensor.cu`): with `dp4a` a k-quant
//! byte's arithmetic grows with every activation row, and at 3 rows it, not memory, set the
//! pace. Those kernels read their activations with one scale per 256 values (what the CPU's
//! k-quant products use), which the norms and SiLU·up write when the next product asks for
//! that form ([`input_blocks`]); the attention's output projection, whose input comes in
//! blocks of 32, keeps `dp4a` (`Linear::set_tensor_cores`).
//!
//! Used for input widths that are a multiple of 256 (Q8_0 rows stay 16-byte aligned, the
//! k-quants need it anyway), which covers the Qwen2.5 geometries from 1.5B up; other shapes, more
//! than 8 rows (prefill, large batches), other formats and `K2_CUDA_INT8_PRODUCTS=0` use
//! candle's kernels; `K2_CUDA_TENSOR_CORES=0` keeps the k-quants on `dp4a`.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::{CudaDevice, CudaStorage};
use candle_core::op::BackpropOp;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Shape, Storage, Tensor, TensorId};

use super::cuda_util::{address_of, compiled_ptx, device_address};
use super::linear::Int8Blocks;
use crate::error::{EngineError, Result};

const SOURCE: &str = concat!(
    include_str!("cuda_quantize.cuh"),
    include_str!("cuda_int8_common.cuh"),
    include_str!("cuda_q8.cu")
);
const MODULE: &str = "k2_int8_products";
/// The Q4_K and Q6_K products on the tensor cores (`cuda_q4_k_tensor.cu`,
/// `cuda_q6_k_tensor.cu`), compiled for compute capability 8.0 (their `mma` shapes and
/// `cp.async` need it) and used only on such GPUs.
const TENSOR_SOURCE: &str = concat!(
    include_str!("cuda_int8_common.cuh"),
    include_str!("cuda_q4_k_tensor.cu"),
    include_str!("cuda_q6_k_tensor.cu")
);
const TENSOR_MODULE: &str = "k2_tensor_core_products";
/// The tensor-core kernels for weights of `dtype` (`…_{rows}`), and the most warps that may
/// share a tile (Q6_K stages two tiles per warp in shared memory).
fn tensor_kernels(dtype: GgmlDType) -> Option<(&'static str, u32)> {
    match dtype {
        GgmlDType::Q4K => Some(("k2_q4_k_tensor_product", 8)),
        GgmlDType::Q6K => Some(("k2_q6_k_tensor_product", 4)),
        _ => None,
    }
}
/// Weight rows per warp in the tensor-core kernel (the `mma` tile's height).
const TENSOR_TILE_ROWS: usize = 16;
/// Warps per block in the tensor-core kernel: 4, or 8 when 8 warps share a tile.
const TENSOR_WARPS: u32 = 4;
/// Rows this long (64 super-blocks' width and more, a 32B model's down projection) are
/// split over more warps (see [`warps_per_row`], [`warps_per_tile`]).
const LONG_ROW: usize = 64 * 256;
/// Activation rows one launch serves (the kernels are instantiated for 1..=8).
pub(super) const MAX_ROWS: usize = 8;
/// Values per Q8_0 block, and blocks per aligned half group (see `cuda_q8.cu`).
const BLOCK_VALUES: usize = 32;
const ALIGNED_BLOCKS: usize = 8;
const WARPS_PER_BLOCK: u32 = 4;

static ENABLED: AtomicBool = AtomicBool::new(true);
static TENSOR_CORES: AtomicBool = AtomicBool::new(true);
/// Warps per weight row forced for every product (0: chosen per shape, [`warps_per_row`]).
static FORCED_SPLIT: AtomicU32 = AtomicU32::new(0);

/// Switches these kernels on or off for the process (benchmarks compare them with candle's
/// in one run). Off also when `K2_CUDA_INT8_PRODUCTS=0`.
pub(super) fn set_enabled(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

/// Switches the k-quant products on the tensor cores on or off for the process (off: the dp4a
/// kernel; benchmarks compare them in one run). Off also when `K2_CUDA_TENSOR_CORES=0`.
pub(super) fn set_tensor_cores(enabled: bool) {
    TENSOR_CORES.store(enabled, Ordering::Relaxed);
}

/// Forces every product to split its weight rows over `warps` warps (1, 2, 4, or 8 for the
/// tensor-core kernel; the others take at most 4), or with `None` goes back to choosing per
/// shape: for benchmarks that compare the choices.
pub(super) fn force_warps_per_row(warps: Option<u32>) {
    let warps = warps.filter(|w| [1, 2, 4, 8].contains(w)).unwrap_or(0);
    FORCED_SPLIT.store(warps, Ordering::Relaxed);
}

pub(super) fn enabled() -> bool {
    static FROM_ENV: OnceLock<bool> = OnceLock::new();
    let env_allows =
        *FROM_ENV.get_or_init(|| std::env::var("K2_CUDA_INT8_PRODUCTS").as_deref() != Ok("0"));
    env_allows && ENABLED.load(Ordering::Relaxed)
}

fn ptx() -> Result<&'static str> {
    static PTX: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    compiled_ptx(&PTX, SOURCE, "int8 product", None)
}

fn tensor_ptx() -> Result<&'static str> {
    static PTX: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    compiled_ptx(
        &PTX,
        TENSOR_SOURCE,
        "tensor-core product",
        Some("compute_80"),
    )
}

/// Whether a product of `dtype` weights runs on the tensor cores: Q4_K and Q6_K where the caller
/// `allowed` it, the kernels are switched on, and the GPU has compute capability 8.0 or
/// later (asked of the driver once; a failed query counts as no).
fn on_tensor_cores(dev: &CudaDevice, dtype: GgmlDType, allowed: bool) -> bool {
    use candle_core::cuda_backend::cudarc::driver::sys::CUdevice_attribute;
    static FROM_ENV: OnceLock<bool> = OnceLock::new();
    static CAPABLE: OnceLock<bool> = OnceLock::new();
    let env_allows =
        *FROM_ENV.get_or_init(|| std::env::var("K2_CUDA_TENSOR_CORES").as_deref() != Ok("0"));
    let has_kernels = tensor_kernels(dtype).is_some();
    if !allowed || !has_kernels || !env_allows || !TENSOR_CORES.load(Ordering::Relaxed) {
        return false;
    }
    *CAPABLE.get_or_init(|| {
        dev.cuda_stream()
            .context()
            .attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)
            .is_ok_and(|major| major >= 8)
    })
}

/// Rows of activations in int8 form: values `q` and one scale per block of `blocks` in `d`
/// (see `cuda_quantize.cuh`).
pub(super) struct Int8Rows {
    q: DeviceBuffer<i8>,
    d: DeviceBuffer<f32>,
    blocks: Int8Blocks,
}

/// The kernels' arguments for optional [`Int8Rows`]: null pointers when there are none.
pub(super) fn addresses(rows: &Option<Int8Rows>) -> [u64; 2] {
    rows.as_ref()
        .map_or([0; 2], |r| [address_of(&r.q), address_of(&r.d)])
}

/// The form optional [`Int8Rows`] are quantized in.
pub(super) fn blocks_of(rows: &Option<Int8Rows>) -> Option<Int8Blocks> {
    rows.as_ref().map(|r| r.blocks)
}

/// Rows some kernel quantized as it produced them (see [`offer`]); shared, since separate
/// q, k and v products all read the same norm's output.
struct Ready {
    of: TensorId,
    rows: Rc<Int8Rows>,
}

thread_local! {
    static READY: RefCell<Option<Ready>> = const { RefCell::new(None) };
}

/// The kernels for weights of `dtype` (`…_{rows}` for 1..=8 rows), if these kernels take them.
pub(super) fn kernel_prefix(dtype: GgmlDType) -> Option<&'static str> {
    match dtype {
        GgmlDType::Q8_0 => Some("k2_q8_0_product"),
        GgmlDType::Q4K => Some("k2_q4_k_product"),
        GgmlDType::Q6K => Some("k2_q6_k_product"),
        _ => None,
    }
}

/// Whether `dtype` also has kernels compiled for one warp per row (`…_one`, see
/// `cuda_q8.cu`: fewer registers than the general kernel gets for Q8_0 and Q6_K).
fn has_one_warp_kernels(dtype: GgmlDType) -> bool {
    matches!(dtype, GgmlDType::Q8_0 | GgmlDType::Q6K)
}

fn kernel_name(prefix: &str, dtype: GgmlDType, rows: usize, split: u32) -> String {
    if split == 1 && has_one_warp_kernels(dtype) {
        format!("{prefix}_{rows}_one")
    } else {
        format!("{prefix}_{rows}")
    }
}

/// How many warps share each of the `out` weight rows of `cols` values; `resident` is how
/// many one-warp rows the GPU runs at once. From `device_bench products` on an H100 (32B
/// matrices, `tests/results/gpu/products.json`):
/// - long rows (64 super-blocks' width and more, a 32B model's down projection: 5,120 rows
///   of 27,648) keep too few loads in flight with one warp each: Q4_K went from 0.9 to
///   1.6 TB/s at 3 rows with four, Q8_0 gains 5-14% with four, Q6_K does best with two;
/// - more rows than run at once but not twice as many (Q8_0's q/k/v, 7,168 rows where
///   6,336 fit) leave the second wave of warps mostly idle: two warps per row, 22% faster
///   at 3 rows;
/// - Q4_K, whose arithmetic grows with the activation rows, splits up to twice the rows
///   that run at once (a 32B model's o projection, which keeps dp4a where the tensor
///   cores take the rest: 15.9 µs at 3 rows against 18.7 with one warp, 12.2 against 11.1
///   at 1, the trade best-of-3 wants);
/// - otherwise one (splitting costs a reduction through shared memory).
///
/// It depends on the matrix alone, never on the activation rows, so one row and eight
/// give the same bits.
fn warps_per_row(dtype: GgmlDType, out: usize, cols: usize, resident: usize) -> u32 {
    match FORCED_SPLIT.load(Ordering::Relaxed) {
        0 => {}
        forced => return forced.min(WARPS_PER_BLOCK),
    }
    if cols >= LONG_ROW {
        return if dtype == GgmlDType::Q6K { 2 } else { 4 };
    }
    let split_helps = out > resident || dtype == GgmlDType::Q4K;
    if split_helps && out <= 2 * resident {
        2
    } else {
        1
    }
}

/// How many warps of kernel `name` (in `module`) the GPU runs at once: its multiprocessors
/// times the blocks that fit on each (registers decide), times the warps per block. Asked
/// of the driver once per kernel; for one-warp-per-row kernels, the rows that run at once.
fn resident_warps(
    dev: &CudaDevice,
    module: &'static str,
    ptx: &'static str,
    name: &str,
    warps_per_block: u32,
) -> Result<usize> {
    use candle_core::cuda_backend::cudarc::driver::sys::CUdevice_attribute;
    static RESIDENT: Mutex<Vec<(String, usize)>> = Mutex::new(Vec::new());
    let mut known = RESIDENT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, warps)) = known.iter().find(|(n, _)| n == name) {
        return Ok(*warps);
    }
    let func = dev.get_or_load_custom_func(name, module, ptx)?;
    let blocks = func
        .occupancy_max_active_blocks_per_multiprocessor(warps_per_block * 32, 0, None)
        .map_err(launch_error)?;
    let sms = dev
        .cuda_stream()
        .context()
        .attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
        .map_err(launch_error)?;
    let warps = sms.max(1) as usize * blocks.max(1) as usize * warps_per_block as usize;
    known.push((name.to_string(), warps));
    Ok(warps)
}

/// How many warps share each of the `tiles` 16-row tiles of `cols` columns in the
/// tensor-core kernel, at most `most`. From `device_bench products` on an H100 (32B
/// matrices): four, whose neighbouring super-blocks of the same rows are read together (one
/// warp per tile: 25-50% slower); eight for long rows (the down projection, 320 tiles of
/// 108 super-blocks, reads 1.95 TB/s with eight against 1.5 with four) and for the largest
/// matrices (gate/up, 3,456 tiles: 3% faster at 3 rows), but not for q/k/v (448 tiles:
/// 20% slower). It depends on the matrix alone, so one row and eight give the same bits.
fn warps_per_tile(tiles: usize, cols: usize, most: u32) -> u32 {
    const MANY_TILES: usize = 2048;
    let chosen = match FORCED_SPLIT.load(Ordering::Relaxed) {
        0 if cols >= LONG_ROW || tiles >= MANY_TILES => 8,
        0 => 4,
        forced => forced,
    };
    chosen.min(most)
}

/// The kernel that computes a product and how its warps cover the weight rows.
struct Plan {
    module: &'static str,
    ptx: &'static str,
    name: String,
    /// Weight rows that one warp (or `split` warps together) computes.
    rows_per_warp: usize,
    split: u32,
    warps_per_block: u32,
    activations: Int8Blocks,
}

/// The kernel for `activation_rows` rows times a `dtype` matrix of `out` rows and `cols`
/// columns: Q4_K and Q6_K on the tensor cores where the GPU has them and the caller allows
/// it, else the dp4a kernels.
fn plan(
    dev: &CudaDevice,
    dtype: GgmlDType,
    prefix: &'static str,
    out: usize,
    cols: usize,
    activation_rows: usize,
    tensor_cores_allowed: bool,
) -> Result<Plan> {
    if let Some((tensor_prefix, most_warps)) =
        tensor_kernels(dtype).filter(|_| on_tensor_cores(dev, dtype, tensor_cores_allowed))
    {
        let ptx = tensor_ptx()?;
        let split = warps_per_tile(out.div_ceil(TENSOR_TILE_ROWS), cols, most_warps);
        return Ok(Plan {
            module: TENSOR_MODULE,
            ptx,
            name: format!("{tensor_prefix}_{activation_rows}"),
            rows_per_warp: TENSOR_TILE_ROWS,
            split,
            warps_per_block: TENSOR_WARPS.max(split),
            activations: Int8Blocks::Of256,
        });
    }
    let ptx = ptx()?;
    let name = kernel_name(prefix, dtype, 1, 1);
    let resident = resident_warps(dev, MODULE, ptx, &name, WARPS_PER_BLOCK)?;
    let split = warps_per_row(dtype, out, cols, resident);
    Ok(Plan {
        module: MODULE,
        ptx,
        name: kernel_name(prefix, dtype, activation_rows, split),
        rows_per_warp: 1,
        split,
        warps_per_block: WARPS_PER_BLOCK,
        activations: Int8Blocks::Of32,
    })
}

/// Whether a product of `rows × cols` activations runs here (the weights' format aside).
fn takes(rows: usize, cols: usize) -> bool {
    enabled()
        && cols.is_multiple_of(BLOCK_VALUES * ALIGNED_BLOCKS)
        && (1..=MAX_ROWS).contains(&rows)
}

/// Buffers for `rows × cols` activations quantized by the kernel that produces them, in
/// the form `asked` (the one the next product reads, [`input_blocks`]) when an int8 product
/// can take them: the norms, SiLU·up and the attention quantize for the product after them,
/// which saves it a launch (three of four per layer).
pub(super) fn input_buffers(
    dev: &CudaDevice,
    rows: usize,
    cols: usize,
    asked: Option<Int8Blocks>,
) -> Result<Option<Int8Rows>> {
    match asked {
        Some(blocks) if takes(rows, cols) => allocate(dev, rows, cols, blocks).map(Some),
        _ => Ok(None),
    }
}

/// The int8 form a product with weights `w` reads its activations in, if these kernels
/// take `w`'s format on CUDA: the k-quants on the tensor cores read blocks of 256, the rest 32.
pub(super) fn input_blocks(w: &QTensor, tensor_cores_allowed: bool) -> Option<Int8Blocks> {
    let Device::Cuda(dev) = w.device() else {
        return None;
    };
    kernel_prefix(w.dtype())?;
    Some(if on_tensor_cores(&dev, w.dtype(), tensor_cores_allowed) {
        Int8Blocks::Of256
    } else {
        Int8Blocks::Of32
    })
}

fn allocate(dev: &CudaDevice, rows: usize, cols: usize, blocks: Int8Blocks) -> Result<Int8Rows> {
    let values = rows * cols;
    // SAFETY: the quantizing kernel writes every element of both.
    Ok(unsafe {
        Int8Rows {
            q: dev.alloc::<i8>(values)?,
            d: dev.alloc::<f32>(values / blocks.values())?,
            blocks,
        }
    })
}

/// Hands `of`'s quantized form (if it was made) to the next product whose input is exactly
/// `of` (a tensor's id is never reused, and tensors are not written after they are made).
pub(super) fn offer(of: &Tensor, rows: Option<Int8Rows>) {
    if let Some(rows) = rows {
        let rows = Rc::new(rows);
        READY.with(|ready| *ready.borrow_mut() = Some(Ready { of: of.id(), rows }));
    }
}

/// Drops an offer no product took. A decoding step ends with this: buffers allocated while
/// a step is captured as a CUDA graph must be freed within the same capture.
pub(super) fn forget_offer() {
    READY.with(|ready| ready.borrow_mut().take());
}

/// The offered int8 form of `x`, if it is the offered tensor and in the form `blocks`. The
/// offer stays for other products of the same input until the next offer or
/// [`forget_offer`].
fn offered(x: &Tensor, blocks: Int8Blocks) -> Option<Rc<Int8Rows>> {
    READY.with(|ready| {
        ready
            .borrow()
            .as_ref()
            .filter(|r| r.of == x.id() && r.rows.blocks == blocks)
            .map(|r| r.rows.clone())
    })
}

/// `x @ wᵀ (+ bias)` for a Q8_0, Q4_K or Q6_K matrix `w` (`[out, in]`), f32 `x` (`[rows, in]`,
/// contiguous) and an f32 `bias` (`[out]`), or `None` where these kernels do not apply (see
/// the module comment).
pub(super) fn int8_matmul(
    w: &QTensor,
    x: &Tensor,
    bias: Option<&Tensor>,
    tensor_cores_allowed: bool,
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
    let plan = plan(
        dev,
        w.dtype(),
        prefix,
        out,
        cols,
        rows,
        tensor_cores_allowed,
    )?;
    let input = match offered(x, plan.activations) {
        Some(ready) => ready,
        None => Rc::new(quantize(dev, x, rows, cols, plan.activations)?),
    };
    let w_ptr = w.device_ptr()? as u64;
    // SAFETY: the kernel writes every element (each output row is one warp's sum).
    let mut y = unsafe { dev.alloc::<f32>(rows * out)? };
    let func = dev.get_or_load_custom_func(&plan.name, plan.module, plan.ptx)?;
    let mut launch = func.builder();
    let (out_i, cols_i, split_i) = (out as i32, cols as i32, plan.split as i32);
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
        grid_dim: (
            (out.div_ceil(plan.rows_per_warp) as u32).div_ceil(plan.warps_per_block / plan.split),
            1,
            1,
        ),
        block_dim: (plan.warps_per_block * 32, 1, 1),
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

/// `x` in int8 form with one scale per block of `blocks` (round to nearest, like the
/// activations candle's kernels quantize).
fn quantize(
    dev: &CudaDevice,
    x: &Tensor,
    rows: usize,
    cols: usize,
    blocks: Int8Blocks,
) -> Result<Int8Rows> {
    let count = rows * cols / blocks.values();
    let x_ptr = device_address(x)?;
    let mut out = allocate(dev, rows, cols, blocks)?;
    let func = match blocks {
        Int8Blocks::Of32 => dev.get_or_load_custom_func("k2_quantize_q8", MODULE, ptx()?)?,
        Int8Blocks::Of256 => {
            dev.get_or_load_custom_func("k2_quantize_q8_k", TENSOR_MODULE, tensor_ptx()?)?
        }
    };
    let mut launch = func.builder();
    let count_i = count as i32;
    launch
        .arg(&x_ptr)
        .arg(&mut out.q)
        .arg(&mut out.d)
        .arg(&count_i);
    // One warp per block.
    const WARPS: u32 = 8;
    let config = LaunchConfig {
        grid_dim: ((count as u32).div_ceil(WARPS), 1, 1),
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
