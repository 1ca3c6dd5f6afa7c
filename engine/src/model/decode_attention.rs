//! Attention of one query position over a row's cached keys and values, on CPU, read straight
//! from the cache's storage.
//!
//! Decoding spends most of its non-matmul time here: with candle ops, one query costs a dozen
//! small tensor operations per layer (reshapes, a gemm with operand packing, softmax, a second
//! gemm), and batched decoding pays them once per row. This does the same arithmetic in two
//! passes over the cache with no allocation beyond the scores. Every single-query attention
//! (plain, batched and speculative decoding) goes through it, so they stay bit-identical to
//! one another.

use candle_core::{DType, Device, Storage, Tensor};

use crate::error::Result;
use crate::fast_exp::exp_nonpositive;

/// `q`: `[heads, 1, head_dim]` (any layout); `keys`/`values`: `[kv_heads, len, head_dim]`
/// views with unit stride in the last dimension. Returns `[1, heads * head_dim]`, or `None`
/// when the tensors are not f32 on the CPU (the caller then uses candle ops).
pub(super) fn attend_one(
    q: &Tensor,
    keys: &Tensor,
    values: &Tensor,
    group: usize,
    scale: f32,
) -> Result<Option<Tensor>> {
    let kv_heads = keys.dim(0)?;
    let Some(out) = attend_one_heads(q, keys, values, group, scale, 0..kv_heads)? else {
        return Ok(None);
    };
    let len = out.len();
    Ok(Some(Tensor::from_vec(out, (1, len), &Device::Cpu)?))
}

/// [`attend_one`] for the query heads of the key/value heads `kv_range` alone: their
/// `kv_range.len() * group * head_dim` outputs, head after head. Each head's arithmetic is
/// the same whichever range it is computed in, so splitting the heads over threads changes
/// no bit.
pub(super) fn attend_one_heads(
    q: &Tensor,
    keys: &Tensor,
    values: &Tensor,
    group: usize,
    scale: f32,
    kv_range: std::ops::Range<usize>,
) -> Result<Option<Vec<f32>>> {
    if !matches!(keys.device(), Device::Cpu) || keys.dtype() != DType::F32 {
        return Ok(None);
    }
    let (_, len, head_dim) = keys.dims3()?;
    let q: Vec<f32> = q.flatten_all()?.to_vec1()?;
    let (k_store, k_layout) = keys.storage_and_layout();
    let (v_store, v_layout) = values.storage_and_layout();
    let (Storage::Cpu(k_cpu), Storage::Cpu(v_cpu)) = (&*k_store, &*v_store) else {
        return Ok(None);
    };
    let (k_data, v_data) = (k_cpu.as_slice::<f32>()?, v_cpu.as_slice::<f32>()?);
    let (k_stride, v_stride) = (k_layout.stride(), v_layout.stride());
    if k_stride[2] != 1 || v_stride[2] != 1 {
        return Ok(None);
    }
    let (k_start, v_start) = (k_layout.start_offset(), v_layout.start_offset());

    // The query heads sharing a key/value head go together: each cached key and value row
    // is loaded once for the whole group instead of once per head. Per head, the arithmetic
    // and its order are unchanged.
    let first = kv_range.start;
    let mut out = vec![0f32; kv_range.len() * group * head_dim];
    let mut scores = vec![0f32; group * len];
    let mut maxima = vec![f32::NEG_INFINITY; group];
    let mut totals = vec![0f32; group];
    for kv in kv_range {
        let q_group = &q[kv * group * head_dim..(kv + 1) * group * head_dim];
        maxima.fill(f32::NEG_INFINITY);
        for j in 0..len {
            let at = k_start + kv * k_stride[0] + j * k_stride[1];
            let key = &k_data[at..at + head_dim];
            for g in 0..group {
                let score = dot(&q_group[g * head_dim..(g + 1) * head_dim], key) * scale;
                scores[g * len + j] = score;
                maxima[g] = maxima[g].max(score);
            }
        }
        for g in 0..group {
            let row = &mut scores[g * len..(g + 1) * len];
            // Vector code: `exp_nonpositive` is branch-free (a libm call per score is not).
            for score in row.iter_mut() {
                *score = exp_nonpositive(*score - maxima[g]);
            }
            totals[g] = row.iter().sum();
        }
        let local = kv - first;
        let out_group = &mut out[local * group * head_dim..(local + 1) * group * head_dim];
        for j in 0..len {
            let at = v_start + kv * v_stride[0] + j * v_stride[1];
            let value = &v_data[at..at + head_dim];
            for g in 0..group {
                let weight = scores[g * len + j];
                for (o, &v) in out_group[g * head_dim..(g + 1) * head_dim]
                    .iter_mut()
                    .zip(value)
                {
                    *o += weight * v;
                }
            }
        }
        for g in 0..group {
            let inv = 1.0 / totals[g];
            out_group[g * head_dim..(g + 1) * head_dim]
                .iter_mut()
                .for_each(|o| *o *= inv);
        }
    }
    Ok(Some(out))
}

/// Dot product with 16 independent partial sums, which the compiler keeps in one vector
/// register (a single running sum would serialize every addition), added up as a tree: a
/// left-to-right sum of the 16 lanes is 15 dependent additions per dot product, which cost
/// more than the products themselves at head_dim 64.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 16];
    let mut chunks_a = a.chunks_exact(16);
    let mut chunks_b = b.chunks_exact(16);
    for (ca, cb) in (&mut chunks_a).zip(&mut chunks_b) {
        for i in 0..16 {
            lanes[i] += ca[i] * cb[i];
        }
    }
    let tail: f32 = chunks_a
        .remainder()
        .iter()
        .zip(chunks_b.remainder())
        .map(|(x, y)| x * y)
        .sum();
    tree_sum(lanes) + tail
}

fn tree_sum(lanes: [f32; 16]) -> f32 {
    let mut half = [0f32; 8];
    for i in 0..8 {
        half[i] = lanes[i] + lanes[i + 8];
    }
    let mut quarter = [0f32; 4];
    for i in 0..4 {
        quarter[i] = half[i] + half[i + 4];
    }
    (quarter[0] + quarter[2]) + (quarter[1] + quarter[3])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference: softmax(q k^T * scale) v with candle ops, per head.
    fn reference(q: &Tensor, keys: &Tensor, values: &Tensor, group: usize, scale: f64) -> Tensor {
        let (kv_heads, _, head_dim) = keys.dims3().unwrap();
        let q = q.reshape((kv_heads, group, head_dim)).unwrap();
        let scores = (q.matmul(&keys.t().unwrap()).unwrap() * scale).unwrap();
        let weights = candle_nn::ops::softmax_last_dim(&scores).unwrap();
        weights
            .matmul(values)
            .unwrap()
            .reshape((1, kv_heads * group * head_dim))
            .unwrap()
    }

    #[test]
    fn matches_candle_on_cache_views() {
        let device = Device::Cpu;
        let (kv_heads, group, head_dim, capacity, len) = (2, 7, 64, 40, 23);
        let keys = Tensor::randn(0f32, 1.0, (kv_heads, capacity, head_dim), &device).unwrap();
        let values = Tensor::randn(0f32, 1.0, (kv_heads, capacity, head_dim), &device).unwrap();
        let q = Tensor::randn(0f32, 1.0, (kv_heads * group, 1, head_dim), &device).unwrap();
        // Views of the first `len` cached positions, as the cache hands them out.
        let (k, v) = (
            keys.narrow(1, 0, len).unwrap(),
            values.narrow(1, 0, len).unwrap(),
        );
        let scale = 1.0 / (head_dim as f64).sqrt();
        let ours = attend_one(&q, &k, &v, group, scale as f32)
            .unwrap()
            .unwrap();
        let want = reference(
            &q,
            &k.contiguous().unwrap(),
            &v.contiguous().unwrap(),
            group,
            scale,
        );
        let diff = (ours - want)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-5, "max difference {diff}");
    }

    #[test]
    fn heads_split_over_ranges_give_the_same_bits() {
        let device = Device::Cpu;
        let (kv_heads, group, head_dim, len) = (4, 3, 64, 29);
        let keys = Tensor::randn(0f32, 1.0, (kv_heads, len, head_dim), &device).unwrap();
        let values = Tensor::randn(0f32, 1.0, (kv_heads, len, head_dim), &device).unwrap();
        let q = Tensor::randn(0f32, 1.0, (kv_heads * group, 1, head_dim), &device).unwrap();
        let whole = attend_one_heads(&q, &keys, &values, group, 0.125, 0..4)
            .unwrap()
            .unwrap();
        let mut parts = attend_one_heads(&q, &keys, &values, group, 0.125, 0..1)
            .unwrap()
            .unwrap();
        parts.extend(
            attend_one_heads(&q, &keys, &values, group, 0.125, 1..4)
                .unwrap()
                .unwrap(),
        );
        assert_eq!(whole.len(), kv_heads * group * head_dim);
        assert!(whole
            .iter()
            .zip(&parts)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
    }

    #[test]
    fn dot_handles_tails() {
        let a: Vec<f32> = (0..37).map(|i| i as f32).collect();
        let b = vec![2f32; 37];
        assert_eq!(dot(&a, &b), (0..37).map(|i| 2.0 * i as f32).sum::<f32>());
    }
}
