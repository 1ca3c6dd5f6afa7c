//! Matrices that read the same input (q/k/v; gate/up), stored separately or as one.
//!
//! On a GPU each product is a kernel launch (two for quantized weights: the activations are
//! quantized first), and at batch 1 a 64-layer model spends more time launching than
//! reading weights. Stacking the matrices' rows makes one product of them: the rows of a
//! GGML matrix are independent blocks and dense rows are plain rows, so the stacked matrix
//! computes exactly the same outputs, side by side. On CPU they stay separate (k2-kernels'
//! threads already split every product, and nothing is gained).

use candle_core::Tensor;

use super::linear::Linear;
use crate::error::Result;

pub enum Projections {
    Separate(Vec<Linear>),
    /// One matrix whose output columns are the parts' outputs, `outs[i]` wide each.
    Stacked {
        linear: Linear,
        outs: Vec<usize>,
    },
}

impl Projections {
    /// `x`: `[m, in]` → one `[m, out_i]` per part (views into one product when stacked).
    pub fn forward(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        match self {
            Projections::Separate(parts) => parts.iter().map(|l| l.forward(x)).collect(),
            Projections::Stacked { linear, outs } => {
                let y = linear.forward(x)?;
                let mut offset = 0;
                outs.iter()
                    .map(|&out| {
                        let part = y.narrow(1, offset, out)?;
                        offset += out;
                        Ok(part)
                    })
                    .collect()
            }
        }
    }

    /// Whether the first product reads int8 activations (see `Matrix::reads_int8_input`).
    pub fn reads_int8_input(&self) -> bool {
        self.linears()
            .first()
            .is_some_and(|l| l.weight().reads_int8_input())
    }

    /// The underlying layers (one when stacked), for counting weight bytes.
    pub fn linears(&self) -> Vec<&Linear> {
        match self {
            Projections::Separate(parts) => parts.iter().collect(),
            Projections::Stacked { linear, .. } => vec![linear],
        }
    }
}

/// The stacked bias of parts `outs` wide whose biases are `biases` (zeros for a part
/// without one), or `None` when no part has one.
pub fn stacked_bias(biases: Vec<Option<Tensor>>, outs: &[usize]) -> Result<Option<Tensor>> {
    let Some(template) = biases.iter().flatten().next().cloned() else {
        return Ok(None);
    };
    let parts = biases
        .into_iter()
        .zip(outs)
        .map(|(b, &out)| match b {
            Some(b) => Ok(b),
            None => Ok(Tensor::zeros(out, template.dtype(), template.device())?),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(Tensor::cat(&parts, 0)?))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use candle_core::{Device, Tensor};

    use super::*;
    use crate::model::linear::Matrix;

    fn dense(out: usize, cols: usize, seed: f64) -> Result<Tensor> {
        let values: Vec<f32> = (0..out * cols)
            .map(|i| ((i as f64 * 0.37 + seed).sin()) as f32)
            .collect();
        Ok(Tensor::from_vec(values, (out, cols), &Device::Cpu)?)
    }

    #[test]
    fn stacked_matrices_give_each_part_exactly_its_own_product() -> Result<()> {
        let outs = [6, 2, 2];
        let weights: Vec<Tensor> = outs
            .iter()
            .enumerate()
            .map(|(i, &o)| dense(o, 8, i as f64))
            .collect::<Result<_>>()?;
        let biases = vec![
            Some(Tensor::new(&[0.5f32; 6], &Device::Cpu)?),
            None,
            Some(Tensor::new(&[-1f32; 2], &Device::Cpu)?),
        ];
        let separate = Projections::Separate(
            weights
                .iter()
                .zip(&biases)
                .map(|(w, b)| Linear::new(Arc::new(Matrix::Dense(w.clone())), b.clone()))
                .collect(),
        );
        let stacked = Projections::Stacked {
            linear: Linear::new(
                Arc::new(Matrix::Dense(Tensor::cat(&weights, 0)?)),
                stacked_bias(biases, &outs)?,
            ),
            outs: outs.to_vec(),
        };
        let x = dense(3, 8, 9.0)?;
        for (a, b) in separate.forward(&x)?.iter().zip(stacked.forward(&x)?) {
            let (a, b): (Vec<f32>, Vec<f32>) = (
                a.flatten_all()?.to_vec1()?,
                b.contiguous()?.flatten_all()?.to_vec1()?,
            );
            assert_eq!(a, b);
        }
        Ok(())
    }
}
