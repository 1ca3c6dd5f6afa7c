//! One forward pass's inputs: planned on the host from the batch and the cache, then put on
//! the model's device (or, for a captured CUDA graph, written into that graph's buffers).

use candle_core::{Device, Tensor};

use super::config::ModelConfig;
use super::kv_cache::KvCache;
use super::LogitsFor;
use crate::error::{EngineError, Result};

/// The host side of a step.
pub(super) struct StepPlan {
    pub ids: Vec<u32>,
    pub positions: Vec<u32>,
    /// `(start, count)` of each cache row's new tokens in `ids`.
    pub spans: Vec<(usize, usize)>,
    /// Positions whose logits are returned, when not every one is.
    pub picked: Option<Vec<u32>>,
    /// Rows of logits returned for each cache row.
    pub counts: Vec<usize>,
}

impl StepPlan {
    pub fn new(
        cache: &KvCache,
        batch: &[&[u32]],
        want: LogitsFor,
        vocab_size: usize,
    ) -> Result<StepPlan> {
        let mut ids = Vec::new();
        let mut positions = Vec::new();
        let mut spans = Vec::with_capacity(batch.len());
        for (row, tokens) in batch.iter().enumerate() {
            spans.push((ids.len(), tokens.len()));
            let start = cache.len(row);
            for (i, &id) in tokens.iter().enumerate() {
                if id as usize >= vocab_size {
                    return Err(EngineError::InvalidSetting(format!(
                        "token id {id} is outside the model's vocabulary of {vocab_size}"
                    )));
                }
                ids.push(id);
                positions.push((start + i) as u32);
            }
        }
        // Only the requested positions go through the final norm and the (large) output matrix.
        let (picked, counts): (Vec<u32>, Vec<usize>) = match want {
            LogitsFor::All => (
                (0..ids.len() as u32).collect(),
                spans.iter().map(|s| s.1).collect(),
            ),
            LogitsFor::Last => (
                spans
                    .iter()
                    .filter(|s| s.1 > 0)
                    .map(|&(start, t)| (start + t - 1) as u32)
                    .collect(),
                spans.iter().map(|s| usize::from(s.1 > 0)).collect(),
            ),
        };
        let picked = (picked.len() != ids.len()).then_some(picked);
        Ok(StepPlan {
            ids,
            positions,
            spans,
            picked,
            counts,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Every query of every short span: what the fused CUDA attention kernels work on.
    #[cfg(feature = "cuda")]
    pub fn lanes(&self, cache: &KvCache) -> Vec<super::cuda_attention::Lane> {
        let mut lanes = Vec::new();
        for (row, &(start, t)) in self.spans.iter().enumerate() {
            if super::attention::is_short(t) {
                let past = cache.len(row);
                lanes.extend((0..t).map(|i| super::cuda_attention::Lane {
                    tok: start + i,
                    pos: past + i,
                    row,
                }));
            }
        }
        lanes
    }
}

/// The device side of a step.
pub(super) struct StepInputs {
    pub ids: Tensor,
    pub positions: Tensor,
    pub picked: Option<Tensor>,
    pub spans: Vec<(usize, usize)>,
    /// Where the fused CUDA attention reads and writes (see `cuda_attention`).
    #[cfg(feature = "cuda")]
    pub lanes: Option<super::cuda_attention::LaneTable>,
}

impl StepInputs {
    pub fn upload(
        plan: &StepPlan,
        cache: &KvCache,
        config: &ModelConfig,
        device: &Device,
    ) -> Result<StepInputs> {
        let vector = |v: &[u32]| Tensor::from_slice(v, v.len(), device);
        #[cfg(feature = "cuda")]
        let lanes = {
            let lanes = plan.lanes(cache);
            if fused_attention(config, cache, device) && !lanes.is_empty() {
                Some(super::cuda_attention::LaneTable::new(cache, lanes, device)?)
            } else {
                None
            }
        };
        #[cfg(not(feature = "cuda"))]
        let _ = (cache, config);
        Ok(StepInputs {
            ids: vector(&plan.ids)?,
            positions: vector(&plan.positions)?,
            picked: plan.picked.as_deref().map(vector).transpose()?,
            spans: plan.spans.clone(),
            #[cfg(feature = "cuda")]
            lanes,
        })
    }
}

/// Whether short spans attend in the fused CUDA kernels (`cuda_attention`) on this device,
/// cache and geometry.
#[cfg(feature = "cuda")]
pub(super) fn fused_attention(config: &ModelConfig, cache: &KvCache, device: &Device) -> bool {
    device.is_cuda()
        && cache.dtype() == candle_core::DType::F32
        && config.switches.rotary_dim.is_none()
        && super::cuda_attention::supports(config.num_heads, config.num_kv_heads, config.head_dim)
}
