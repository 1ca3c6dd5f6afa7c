//! What the CUDA modules of the model share: their kernels' one-time NVRTC compilation and
//! the device address of a tensor's first element (for kernel arguments and raw copies).

use std::sync::OnceLock;

use candle_core::cuda_backend::cudarc::driver::DevicePtr;
use candle_core::cuda_backend::cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions};
use candle_core::{DType, Storage, Tensor};

use crate::error::{EngineError, Result};

/// `source` compiled by NVRTC on the machine that runs it, once per process (`cell` keeps
/// the PTX, or the compiler's message), for the virtual architecture `arch` (NVRTC's
/// default when `None`); `what` names the kernels in the error.
pub(super) fn compiled_ptx(
    cell: &'static OnceLock<std::result::Result<String, String>>,
    source: &str,
    what: &str,
    arch: Option<&'static str>,
) -> Result<&'static str> {
    cell.get_or_init(|| {
        let options = CompileOptions {
            arch,
            ..Default::default()
        };
        compile_ptx_with_opts(source, options)
            .map(|p| p.to_src())
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map(String::as_str)
    .map_err(|e| EngineError::Kernel(format!("compiling the CUDA {what} kernels: {e}")))
}

/// The device address of a CUDA tensor's first element (f32, u32, bf16 or f16), its
/// layout's offset included.
pub(super) fn device_address(t: &Tensor) -> Result<u64> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cuda(cs) = &*storage else {
        return Err(EngineError::Kernel(
            "a CUDA kernel was given a tensor that is not on the GPU".into(),
        ));
    };
    let base = match t.dtype() {
        DType::F32 => address_of(cs.as_cuda_slice::<f32>()?),
        DType::U32 => address_of(cs.as_cuda_slice::<u32>()?),
        DType::BF16 => address_of(cs.as_cuda_slice::<half::bf16>()?),
        DType::F16 => address_of(cs.as_cuda_slice::<half::f16>()?),
        other => {
            return Err(EngineError::Kernel(format!(
                "a CUDA kernel was given a tensor of {other:?}"
            )))
        }
    };
    Ok(base + (layout.start_offset() * t.dtype().size_in_bytes()) as u64)
}

/// The device address of a buffer's first element.
pub(super) fn address_of<T>(
    slice: &candle_core::cuda_backend::cudarc::driver::CudaSlice<T>,
) -> u64 {
    slice.device_ptr(slice.stream()).0
}
