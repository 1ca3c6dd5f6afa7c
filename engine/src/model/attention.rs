//! Grouped-query self-attention over a ragged batch: projections run once for all rows'
//! tokens (the weights are read once), attention runs per row against that row's cache.

use candle_core::{Device, Tensor};

use super::config::ModelConfig;
use super::kv_cache::KvCache;
use super::rope::Rope;
use super::Block;
use crate::error::Result;

/// `h`: `[n, hidden]` normalized hidden states of all rows' new tokens, row after row as
/// described by `spans` (`(start, count)` per cache row). Returns `[n, heads * head_dim]`.
#[allow(clippy::too_many_arguments)]
pub(super) fn self_attention(
    config: &ModelConfig,
    rope: &Rope,
    (cos, sin): (&Tensor, &Tensor),
    block: &Block,
    h: &Tensor,
    cache: &mut KvCache,
    layer: usize,
    spans: &[(usize, usize)],
) -> Result<Tensor> {
    let n = h.dim(0)?;
    let (heads, kv_heads, head_dim) = (config.num_heads, config.num_kv_heads, config.head_dim);
    let split_heads = |x: Tensor, count: usize| -> Result<Tensor> {
        Ok(x.reshape((n, count, head_dim))?
            .transpose(0, 1)?
            .contiguous()?
            .unsqueeze(0)?)
    };
    let q = split_heads(block.q.forward(h)?, heads)?;
    let k = split_heads(block.k.forward(h)?, kv_heads)?;
    let v = split_heads(block.v.forward(h)?, kv_heads)?;
    let q = rope.apply(&q, cos, sin)?.squeeze(0)?;
    let k = rope.apply(&k, cos, sin)?.squeeze(0)?;
    let v = v.squeeze(0)?;

    let scale = 1.0 / (head_dim as f64).sqrt();
    let group = heads / kv_heads;
    let mut outputs = Vec::with_capacity(spans.len());
    for (row, &(start, t)) in spans.iter().enumerate() {
        if t == 0 {
            continue;
        }
        let past = cache.len(row);
        let (keys, values) =
            cache.append(layer, row, &k.narrow(1, start, t)?, &v.narrow(1, start, t)?)?;
        // Queries sharing a key/value head are stacked so one matmul serves the whole group.
        let q_row =
            q.narrow(1, start, t)?
                .contiguous()?
                .reshape((kv_heads, group * t, head_dim))?;
        let scores = (q_row.matmul(&keys.t()?)? * scale)?;
        let scores = if t > 1 {
            scores.broadcast_add(&causal_mask(group, t, past, h.device())?)?
        } else {
            scores
        };
        let weights = candle_nn::ops::softmax_last_dim(&scores)?;
        let out = weights.matmul(&values)?; // [kv_heads, group * t, head_dim]
        outputs.push(
            out.reshape((heads, t, head_dim))?
                .transpose(0, 1)?
                .reshape((t, heads * head_dim))?,
        );
    }
    Ok(Tensor::cat(&outputs, 0)?)
}

/// `[group * t, past + t]`: query i (absolute position past + i) sees keys 0..=past + i.
fn causal_mask(group: usize, t: usize, past: usize, device: &Device) -> Result<Tensor> {
    let total = past + t;
    let mut mask = Vec::with_capacity(group * t * total);
    for _ in 0..group {
        for i in 0..t {
            mask.extend((0..total).map(|j| {
                if j <= past + i {
                    0.0f32
                } else {
                    f32::NEG_INFINITY
                }
            }));
        }
    }
    Ok(Tensor::from_vec(mask, (group * t, total), device)?)
}
