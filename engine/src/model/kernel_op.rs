//! k2-kernels' quantized matrices as candle operations (CPU only).
//!
//! candle's CPU quantized matmul is the bottleneck on CPU (no SIMD for Q5_0/Q4_1, weights
//! re-read per activation row in prefill); k2-kernels repacks the GGUF blocks at load time and
//! owns those hot loops. This wrapper lets the rest of the model stay in candle tensors.

use candle_core::quantized::GgmlDType;
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};
use k2_kernels::{BlockFormat, QuantMatrix};

use crate::error::{EngineError, Result};

pub struct KernelMatrix(QuantMatrix);

impl KernelMatrix {
    /// Repacks raw GGML blocks, if k2-kernels runs this (quantized) format.
    pub fn from_ggml(dtype: GgmlDType, bytes: &[u8], dims: &[usize]) -> Option<Result<Self>> {
        let format = kernel_format(dtype)?;
        let [rows, cols] = *dims else {
            return None;
        };
        Some(
            QuantMatrix::from_ggml(format, bytes, rows, cols)
                .map(KernelMatrix)
                .map_err(|e| EngineError::Kernel(e.to_string())),
        )
    }

    /// The first `rows` rows (rounded up to whole tiles) as a matrix of their own.
    pub fn top_rows(&self, rows: usize) -> Self {
        KernelMatrix(self.0.top_rows(rows))
    }

    pub fn storage_bytes(&self) -> usize {
        self.0.size_bytes()
    }

    pub fn matmul(&self, x: &Tensor) -> Result<Tensor> {
        let x = if x.dtype() == DType::F32 {
            x.contiguous()?
        } else {
            x.to_dtype(DType::F32)?.contiguous()?
        };
        Ok(x.apply_op1_no_bwd(&MatMul(&self.0))?)
    }

    pub fn rows(&self, ids: &Tensor) -> Result<Tensor> {
        let ids = ids.to_dtype(DType::U32)?.to_vec1::<u32>()?;
        let cols = self.0.cols();
        let mut out = vec![0f32; ids.len() * cols];
        for (&id, row) in ids.iter().zip(out.chunks_exact_mut(cols)) {
            if id as usize >= self.0.rows() {
                return Err(EngineError::InvalidSetting(format!(
                    "token id {id} is outside the embedding table of {} rows",
                    self.0.rows()
                )));
            }
            self.0.dequantize_row(id as usize, row);
        }
        Ok(Tensor::from_vec(
            out,
            (ids.len(), cols),
            &candle_core::Device::Cpu,
        )?)
    }
}

/// Only the block-quantized formats: dense f32/f16 weights stay with candle's exact matmul.
fn kernel_format(dtype: GgmlDType) -> Option<BlockFormat> {
    Some(match dtype {
        GgmlDType::Q4_0 => BlockFormat::Q4_0,
        GgmlDType::Q4_1 => BlockFormat::Q4_1,
        GgmlDType::Q5_0 => BlockFormat::Q5_0,
        GgmlDType::Q5_1 => BlockFormat::Q5_1,
        GgmlDType::Q8_0 => BlockFormat::Q8_0,
        GgmlDType::Q4K => BlockFormat::Q4K,
        GgmlDType::Q5K => BlockFormat::Q5K,
        GgmlDType::Q6K => BlockFormat::Q6K,
        _ => return None,
    })
}

struct MatMul<'a>(&'a QuantMatrix);

impl CustomOp1 for MatMul<'_> {
    fn name(&self) -> &'static str {
        "k2-quant-matmul"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("k2-quant-matmul expects f32 activations");
        };
        let dims = layout.shape().dims();
        let (m, k) = match dims {
            [m, k] => (*m, *k),
            _ => candle_core::bail!("k2-quant-matmul expects [m, k] activations, got {dims:?}"),
        };
        if k != self.0.cols() {
            candle_core::bail!(
                "k2-quant-matmul: activations have {k} columns, the matrix {}",
                self.0.cols()
            );
        }
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("k2-quant-matmul expects contiguous activations");
        };
        let n = self.0.rows();
        let mut y = vec![0f32; m * n];
        self.0.matmul(&data[start..end], m, &mut y);
        Ok((CpuStorage::F32(y), Shape::from((m, n))))
    }
}
