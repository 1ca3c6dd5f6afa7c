//! Weight matrices and the layers built on them. A matrix lives in whichever representation
//! runs fastest on its device: k2-kernels' repacked blocks on CPU, candle's quantized tensors
//! on CUDA/Metal, dense tensors for safetensors models.

use std::sync::Arc;

use candle_core::quantized::{QMatMul, QTensor};
use candle_core::{DType, Module, Tensor};

use crate::error::Result;

/// The int8 form a product on CUDA reads its activations in (`cuda_q8`), which whatever
/// produces its input may write on the way: one scale per block of 32 values (the dp4a
/// kernels), or per super-block of 256 (the tensor-core Q4_K and Q6_K kernels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Int8Blocks {
    Of32,
    Of256,
}

impl Int8Blocks {
    /// Values per block.
    pub fn values(self) -> usize {
        match self {
            Int8Blocks::Of32 => 32,
            Int8Blocks::Of256 => 256,
        }
    }
}

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
        self.product(x, None, true)
    }

    /// `x`: `[m, in]` → `[m, out]`, plus `bias` (`[out]`) if given. On CUDA this engine's
    /// int8 products (`cuda_q8`) add the bias themselves (one launch fewer); everything else
    /// adds it after. `tensor_cores`: whether a k-quant product may run on them there (see
    /// [`Linear::set_tensor_cores`]).
    fn product(&self, x: &Tensor, bias: Option<&Tensor>, tensor_cores: bool) -> Result<Tensor> {
        let y = match self {
            Matrix::Candle { tensor, matmul } => {
                #[cfg(feature = "cuda")]
                if let Some(y) = super::cuda_q8::int8_matmul(tensor, x, bias, tensor_cores)? {
                    return Ok(y);
                }
                #[cfg(not(feature = "cuda"))]
                let _ = (tensor, tensor_cores);
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

    /// The int8 form of its activations the product reads, if it runs on CUDA from int8
    /// activations with this engine's kernels (`cuda_q8`; `tensor_cores` as in
    /// [`Matrix::product`]): whatever produces its input may quantize it on the way.
    fn int8_input(&self, tensor_cores: bool) -> Option<Int8Blocks> {
        #[cfg(feature = "cuda")]
        if let Matrix::Candle { tensor, .. } = self {
            return super::cuda_q8::input_blocks(tensor, tensor_cores);
        }
        let _ = tensor_cores;
        None
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
    tensor_cores: bool,
}

impl Linear {
    pub fn new(weight: Arc<Matrix>, bias: Option<Tensor>) -> Self {
        Self {
            weight,
            bias,
            tensor_cores: true,
        }
    }

    /// Whether its product may run on the tensor cores (on CUDA, for Q4_K and Q6_K weights; on
    /// unless switched off here). Those read their activations quantized in blocks of 256,
    /// which the attention's combining kernel cannot write: the attention output's
    /// projection would pay a launch to quantize its input, more than the tensor cores save
    /// it (an H100, 32B geometry: 16.4 µs against 10.6 at one row).
    pub fn set_tensor_cores(&mut self, allowed: bool) {
        self.tensor_cores = allowed;
    }

    /// The int8 form of its activations the product reads, if any (see
    /// [`Matrix::int8_input`]).
    pub fn int8_input(&self) -> Option<Int8Blocks> {
        self.weight.int8_input(self.tensor_cores)
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
        self.weight
            .product(x, self.bias.as_ref(), self.tensor_cores)
    }
}
