//! Matrices that read the same input (q/k/v; gate/up), stored separately or as one.
//!
//! On a GPU each product is a kernel launch (two for quantized weights: the activations are
//! quantized first), and at batch 1 a 64-layer model spends more time launching than
//! reading weights. Stacking the matrices' rows makes one product of them: the rows of a
//! GGML matrix are independent blocks and dense rows are plain rows, so the stacked matrix
//! computes exactly the same outputs, side by side. Only matrices of one format stack, so a
//! Q4_K_M layer whose v is Q6_K stacks q with k and keeps v apart. On CPU they stay separate
//! (k2-kernels' threads already split every product, and nothing is gained).

use candle_core::Tensor;

use super::linear::{Int8Blocks, Linear};
use crate::error::Result;

/// The parts, in order, as one or more stacks.
pub struct Projections {
    stacks: Vec<Stack>,
}

/// Consecutive parts stored as one matrix, whose output columns are the parts' outputs,
/// `outs[i]` wide each (a single part: `outs` is its width or empty).
pub struct Stack {
    pub linear: Linear,
    pub outs: Vec<usize>,
}

impl Stack {
    /// One part alone.
    pub fn single(linear: Linear) -> Self {
        Stack {
            linear,
            outs: Vec::new(),
        }
    }
}

impl Projections {
    /// Stacks that share one input; if they would read it in different int8 forms (a
    /// Q4_K q+k on the tensor cores beside a Q8_0 v), all read the form of 32 (see
    /// [`Linear::set_tensor_cores`]): one quantizing launch costs more than the tensor cores
    /// save one product.
    pub fn new(mut stacks: Vec<Stack>) -> Self {
        let first = stacks.first().and_then(|s| s.linear.int8_input());
        if stacks.iter().any(|s| s.linear.int8_input() != first) {
            for stack in &mut stacks {
                stack.linear.set_tensor_cores(false);
            }
        }
        Projections { stacks }
    }

    /// Every part its own matrix.
    pub fn separate(parts: Vec<Linear>) -> Self {
        Self::new(parts.into_iter().map(Stack::single).collect())
    }

    /// All parts in one matrix.
    pub fn stacked(linear: Linear, outs: Vec<usize>) -> Self {
        Self::new(vec![Stack { linear, outs }])
    }

    /// `x`: `[m, in]` → one `[m, out_i]` per part (views into one product when stacked).
    pub fn forward(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        let mut parts = Vec::new();
        for stack in &self.stacks {
            let y = stack.linear.forward(x)?;
            if stack.outs.len() <= 1 {
                parts.push(y);
                continue;
            }
            let mut offset = 0;
            for &out in &stack.outs {
                parts.push(y.narrow(1, offset, out)?);
                offset += out;
            }
        }
        Ok(parts)
    }

    /// The int8 form the first product reads its activations in (see
    /// `Matrix::int8_input`); products after it that read the same form share it.
    pub fn int8_input(&self) -> Option<Int8Blocks> {
        self.stacks.first().and_then(|s| s.linear.int8_input())
    }

    /// The underlying layers (one per stack), for counting weight bytes.
    pub fn linears(&self) -> Vec<&Linear> {
        self.stacks.iter().map(|s| &s.linear).collect()
    }
}

/// `items` split into runs of consecutive items with equal `key`, in order: the parts that
/// can share a matrix.
pub fn runs_of<T, K: PartialEq>(items: Vec<T>, key: impl Fn(&T) -> K) -> Vec<Vec<T>> {
    let mut runs: Vec<Vec<T>> = Vec::new();
    for item in items {
        match runs.last_mut() {
            Some(run) if key(&run[0]) == key(&item) => run.push(item),
            _ => runs.push(vec![item]),
        }
    }
    runs
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
        let separate = Projections::separate(
            weights
                .iter()
                .zip(&biases)
                .map(|(w, b)| Linear::new(Arc::new(Matrix::Dense(w.clone())), b.clone()))
                .collect(),
        );
        let stacked = Projections::stacked(
            Linear::new(
                Arc::new(Matrix::Dense(Tensor::cat(&weights, 0)?)),
                stacked_bias(biases.clone(), &outs)?,
            ),
            outs.to_vec(),
        );
        // The first two stacked, the third alone (as a Q6_K v beside Q4_K q and k).
        let mixed = Projections::new(vec![
            Stack {
                linear: Linear::new(
                    Arc::new(Matrix::Dense(Tensor::cat(&weights[..2], 0)?)),
                    stacked_bias(biases[..2].to_vec(), &outs[..2])?,
                ),
                outs: outs[..2].to_vec(),
            },
            Stack::single(Linear::new(
                Arc::new(Matrix::Dense(weights[2].clone())),
                biases[2].clone(),
            )),
        ]);
        let x = dense(3, 8, 9.0)?;
        let expected = separate.forward(&x)?;
        assert_eq!(expected.len(), 3);
        for other in [&stacked, &mixed] {
            let got = other.forward(&x)?;
            assert_eq!(got.len(), 3);
            for (a, b) in expected.iter().zip(got) {
                let (a, b): (Vec<f32>, Vec<f32>) = (
                    a.flatten_all()?.to_vec1()?,
                    b.contiguous()?.flatten_all()?.to_vec1()?,
                );
                assert_eq!(a, b);
            }
        }
        Ok(())
    }

    #[test]
    fn runs_keep_order_and_group_only_neighbours() {
        let runs = runs_of(vec![(1, 'a'), (1, 'b'), (2, 'c'), (1, 'd')], |p| p.0);
        assert_eq!(
            runs,
            vec![vec![(1, 'a'), (1, 'b')], vec![(2, 'c')], vec![(1, 'd')]]
        );
    }
}
