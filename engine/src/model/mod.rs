//! Decoder-only transformers (Qwen2, Llama) with an external KV cache.
//!
//! One forward pass serves every decoding strategy: it takes a ragged batch (each cache row
//! appends its own number of tokens at its own position) and returns logits for the last
//! position of each row or for all of them. Plain decoding passes one row and one token,
//! best-of-N passes N rows, speculative verification passes k+1 tokens for a row.

mod attention;
pub mod config;
#[cfg(feature = "cuda")]
mod cuda_attention;
mod decode_attention;
mod kernel_op;
mod kv_cache;
mod linear;
mod load_gguf;
mod load_safetensors;
mod projections;
mod rope;
mod synthetic;

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};

pub use config::{Architecture, ModelConfig, RopeStyle};
pub use kv_cache::KvCache;
pub use linear::{Linear, Matrix};
pub use load_gguf::load_gguf;
pub use load_gguf::LoadProgress;
pub use load_safetensors::{load_safetensors, safetensors_files};
pub use synthetic::{random_matrix_bytes, synthetic_model, SyntheticSpec, WeightFormat};

use crate::error::{EngineError, Result};
use projections::Projections;
use rope::Rope;

/// Which positions a forward pass returns logits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogitsFor {
    /// The last new position of each row: plain and batched decoding, prefill.
    Last,
    /// Every new position of each row: speculative verification, teacher forcing.
    All,
}

struct Block {
    attn_norm: Tensor,
    /// q, k and v, in that order.
    qkv: Projections,
    o: Linear,
    mlp_norm: Tensor,
    /// gate and up, in that order.
    gate_up: Projections,
    down: Linear,
}

pub struct Model {
    config: ModelConfig,
    embed: Arc<Matrix>,
    blocks: Vec<Block>,
    final_norm: Tensor,
    lm_head: Linear,
    rope: Rope,
    device: Device,
}

impl Model {
    /// A model from its loaded parts (every loader ends here): adds the rotary tables.
    fn from_parts(
        config: ModelConfig,
        embed: Arc<Matrix>,
        blocks: Vec<Block>,
        final_norm: Tensor,
        lm_head: Linear,
        device: &Device,
    ) -> Result<Model> {
        let rope = Rope::new(&config, device)?;
        Ok(Model {
            config,
            embed,
            blocks,
            final_norm,
            lm_head,
            rope,
            device: device.clone(),
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Bytes of weights one decoding step reads (every layer's matrices and the output
    /// matrix; the embedding table only gives up one row per token): with the memory
    /// bandwidth, the floor under a step's time on a GPU.
    pub fn decode_weight_bytes(&self) -> usize {
        let layers: usize = self
            .blocks
            .iter()
            .flat_map(|b| {
                let mut layers = b.qkv.linears();
                layers.extend(b.gate_up.linears());
                layers.extend([&b.o, &b.down]);
                layers
            })
            .map(|l| l.weight().storage_bytes())
            .sum();
        layers + self.lm_head.weight().storage_bytes()
    }

    /// Restricts the output layer to the first `tokens` ids (rounded up to 16), so logits
    /// are `[positions, tokens']`. For draft models: BPE vocabularies put their frequent
    /// tokens first, and a 152k-row output matrix is a large share of a small model's work
    /// per token. Lossless for speculation, which samples drafts from, and weighs them by,
    /// exactly this restricted distribution. Returns whether it applied (CPU kernels only).
    pub fn limit_output_vocabulary(&mut self, tokens: usize) -> bool {
        if tokens >= self.config.vocab_size {
            return false;
        }
        match self.lm_head.top_rows(tokens) {
            Some(head) => {
                self.lm_head = head;
                true
            }
            None => false,
        }
    }

    /// An empty cache sized for this model, holding up to `max_len` positions per row
    /// (capped at the model's context length).
    pub fn new_cache(&self, max_len: Option<usize>) -> KvCache {
        let c = &self.config;
        let max_len = max_len.unwrap_or(c.context_length).min(c.context_length);
        KvCache::new(
            c.num_layers,
            c.num_kv_heads,
            c.head_dim,
            max_len,
            DType::F32,
            &self.device,
        )
    }

    /// Appends `batch[row]` to each cache row and returns, per row, logits `[positions, vocab]`
    /// (f32, on the model's device). Rows with no new tokens return an empty tensor.
    pub fn forward(
        &self,
        cache: &mut KvCache,
        batch: &[&[u32]],
        want: LogitsFor,
    ) -> Result<Vec<Tensor>> {
        if batch.len() != cache.rows() {
            return Err(EngineError::InvalidSetting(format!(
                "forward got {} rows of tokens for a cache of {} rows",
                batch.len(),
                cache.rows()
            )));
        }
        let needed = batch
            .iter()
            .enumerate()
            .map(|(r, t)| cache.len(r) + t.len())
            .max()
            .unwrap_or(0);
        let longest_existing = (0..cache.rows()).map(|r| cache.len(r)).max().unwrap_or(0);
        cache.reserve(needed.saturating_sub(longest_existing))?;

        let mut ids = Vec::new();
        let mut positions = Vec::new();
        let mut spans = Vec::with_capacity(batch.len());
        for (row, tokens) in batch.iter().enumerate() {
            spans.push((ids.len(), tokens.len()));
            let start = cache.len(row);
            for (i, &id) in tokens.iter().enumerate() {
                if id as usize >= self.config.vocab_size {
                    return Err(EngineError::InvalidSetting(format!(
                        "token id {id} is outside the model's vocabulary of {}",
                        self.config.vocab_size
                    )));
                }
                ids.push(id);
                positions.push((start + i) as u32);
            }
        }
        if ids.is_empty() {
            return batch.iter().map(|_| self.empty_logits()).collect();
        }
        let n = ids.len();
        let ids = Tensor::from_vec(ids, n, &self.device)?;
        let positions = Tensor::from_vec(positions, n, &self.device)?;
        let (cos, sin) = self.rope.tables(&positions)?;

        let mut x = self.embed.rows(&ids)?;
        let eps = self.config.rms_norm_eps;
        for (layer, block) in self.blocks.iter().enumerate() {
            let h = candle_nn::ops::rms_norm(&x, &block.attn_norm, eps)?;
            let attn = attention::self_attention(
                &self.config,
                &self.rope,
                (&cos, &sin),
                block,
                &h,
                cache,
                layer,
                &spans,
            )?;
            x = (x + block.o.forward(&attn)?)?;
            let h = candle_nn::ops::rms_norm(&x, &block.mlp_norm, eps)?;
            let gate_up = block.gate_up.forward(&h)?;
            let gate = candle_nn::ops::silu(&gate_up[0])?;
            let mlp = block.down.forward(&(gate * &gate_up[1])?)?;
            x = (x + mlp)?;
        }
        for (row, &(_, t)) in spans.iter().enumerate() {
            cache.advance(row, t);
        }

        // Only the requested positions go through the final norm and the (large) output matrix.
        let (picked, counts): (Vec<u32>, Vec<usize>) = match want {
            LogitsFor::All => ((0..n as u32).collect(), spans.iter().map(|s| s.1).collect()),
            LogitsFor::Last => {
                let picked = spans
                    .iter()
                    .filter(|s| s.1 > 0)
                    .map(|&(start, t)| (start + t - 1) as u32)
                    .collect();
                (picked, spans.iter().map(|s| usize::from(s.1 > 0)).collect())
            }
        };
        let x = if picked.len() == n {
            x
        } else {
            let picked_len = picked.len();
            x.index_select(&Tensor::from_vec(picked, picked_len, &self.device)?, 0)?
        };
        let x = candle_nn::ops::rms_norm(&x, &self.final_norm, eps)?;
        let logits = self.lm_head.forward(&x)?;
        let mut out = Vec::with_capacity(counts.len());
        let mut offset = 0;
        for count in counts {
            out.push(if count == 0 {
                self.empty_logits()?
            } else {
                logits.narrow(0, offset, count)?
            });
            offset += count;
        }
        Ok(out)
    }

    fn empty_logits(&self) -> Result<Tensor> {
        Ok(Tensor::zeros(
            (0, self.config.vocab_size),
            DType::F32,
            &self.device,
        )?)
    }
}
