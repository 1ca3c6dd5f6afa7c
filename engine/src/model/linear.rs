//! Weight matrices and the layers built on them. A matrix lives in whichever representation
//! runs fastest on its device: k2-kernels' repacked blocks on CPU, candle's quantized tensors
//! on CUDA/Metal, dense tensors for safetensors models.

use std::sync::Arc;

use candle_core::quantized::{QMatMul, QTensor};
use candle_core::{DType, Module, Tensor};

use crate::error::Result;

pub enum Matrix {
    /// GGUF blocks run by candle (CUDA, Metal, or formats k2-kernels lacks).
    Candle {
        tensor: Arc<QTensor>,
        matmul: QMatMul,
    },
    /// Dense weights `[out, in]`, e.g. from safetensors.
    Dense(Tensor),
    /// GGUF blocks repacked for k2-kernels' CPU hot loops.
    Kernel(super::kernel_op::KernelMatrix),
}

impl Matrix {
    pub fn candle(tensor: QTensor) -> Result<Self> {
        let tensor = Arc::new(tensor);
        let matmul = QMatMul::from_arc(tensor.clone())?;
        Ok(Matrix::Candle { tensor, matmul })
    }

    /// `x`: `[m, in]` → `[m, out]`.
    pub fn matmul(&self, x: &Tensor) -> Result<Tensor> {
        self.matmul_with_bias(x, None)
    }

    /// `x`: `[m, in]` → `[m, out]`, plus `bias` (`[out]`) if given. On CUDA this engine's
    /// int8 products (`cuda_q8`) add the bias themselves (one launch fewer); everything else
    /// adds it after.
    pub fn matmul_with_bias(&self, x: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        let y = match self {
            Matrix::Candle { tensor, matmul } => {
                #[cfg(feature = "cuda")]
                if let Some(y) = super::cuda_q8::int8_matmul(tensor, x, bias)? {
                    return Ok(y);
                }
                #[cfg(not(feature = "cuda"))]
                let _ = tensor;
                matmul.forward(x)?
            }
            Matrix::Dense(w) => dense_matmul(x, w)?,
            Matrix::Kernel(w) => w.matmul(x)?,
        };
        Ok(match bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }

    /// Whether the product runs on CUDA from int8 activations with this engine's kernels
    /// (`cuda_q8`), so whatever produces its input may quantize it on the way.
    pub fn reads_int8_input(&self) -> bool {
        #[cfg(feature = "cuda")]
        if let Matrix::Candle { tensor, .. } = self {
            return super::cuda_q8::kernel_prefix(tensor.dtype()).is_some()
                && matches!(tensor.device(), candle_core::Device::Cuda(_));
        }
        false
    }

    /// Bytes of weights one product reads: what bounds decoding speed on a GPU.
    pub fn storage_bytes(&self) -> usize {
        match self {
            Matrix::Candle { tensor, .. } => tensor.storage_size_in_bytes(),
            Matrix::Dense(w) => w.elem_count() * w.dtype().size_in_bytes(),
            Matrix::Kernel(w) => w.storage_bytes(),
        }
    }

    /// The first `rows` output rows as a new matrix, where the representation allows it
    /// cheaply (k2-kernels' tiles; `None` otherwise).
    pub fn top_rows(&self, rows: usize) -> Option<Matrix> {
        match self {
            Matrix::Kernel(w) => Some(Matrix::Kernel(w.top_rows(rows))),
            _ => None,
        }
    }

    /// Rows `ids` of the matrix as f32 `[ids.len(), in]`: the embedding lookup. Never
    /// dequantizes the whole table (a 152k-token vocabulary would cost ~1 GB as f32).
    pub fn rows(&self, ids: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Matrix::Candle { tensor, .. } => tensor.embedding(ids)?,
            Matrix::Dense(w) => w.index_select(ids, 0)?.to_dtype(DType::F32)?,
            Matrix::Kernel(w) => w.rows(ids)?,
        })
    }
}

/// `x @ w^T`. Half-precision weights (bf16/f16, kept so on a GPU) multiply activations
/// cast to their type, so the product reads half the bytes and runs on the matrix units;
/// the result returns to the f32 of the residual stream.
fn dense_matmul(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    #[cfg(feature = "cuda")]
    if let Some(y) = super::cuda_ops::half_matmul(x, w)? {
        return Ok(y);
    }
    if x.dtype() == w.dtype() {
        return Ok(x.matmul(&w.t()?)?);
    }
    Ok(x.to_dtype(w.dtype())?
        .matmul(&w.t()?)?
        .to_dtype(x.dtype())?)
}

pub struct Linear {
    weight: Arc<Matrix>,
    bias: Option<Tensor>,
}

impl Linear {
    pub fn new(weight: Arc<Matrix>, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }

    /// The same layer restricted to its first `rows` outputs, where cheap (see
    /// [`Matrix::top_rows`]).
    pub fn top_rows(&self, rows: usize) -> Option<Linear> {
        let bias = match &self.bias {
            Some(b) => Some(b.narrow(0, 0, rows.min(b.dim(0).ok()?)).ok()?),
            None => None,
        };
        Some(Linear::new(Arc::new(self.weight.top_rows(rows)?), bias))
    }

    pub fn weight(&self) -> &Matrix {
        &self.weight
    }

    /// `x`: `[m, in]` → `[m, out]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.weight.matmul_with_bias(x, self.bias.as_ref())
    }
}
