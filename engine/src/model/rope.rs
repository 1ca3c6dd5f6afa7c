//! Rotary position embedding tables, kept in f32 whatever the weights' precision: positions
//! far into a long reasoning trace lose accuracy in f16.

use candle_core::{Device, Tensor};

use super::config::{ModelConfig, RopeStyle};
use crate::error::Result;

pub struct Rope {
    cos: Tensor,
    sin: Tensor,
    style: RopeStyle,
}

impl Rope {
    pub fn new(config: &ModelConfig, device: &Device) -> Result<Self> {
        let half = config.head_dim / 2;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| {
                1.0 / config
                    .rope_theta
                    .powf(2.0 * i as f32 / config.head_dim as f32)
            })
            .collect();
        let positions = config.context_length;
        let mut angles = Vec::with_capacity(positions * half);
        for p in 0..positions {
            angles.extend(inv_freq.iter().map(|f| p as f32 * f));
        }
        let angles = Tensor::from_vec(angles, (positions, half), device)?;
        Ok(Rope {
            cos: angles.cos()?,
            sin: angles.sin()?,
            style: config.rope_style,
        })
    }

    /// Whether pairs are (2i, 2i + 1) rather than (i, i + d/2).
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    pub fn interleaved(&self) -> bool {
        self.style == RopeStyle::Interleaved
    }

    /// Cosine and sine rows for the given positions (`[n]` u32), computed once per forward
    /// pass and shared by every layer.
    pub fn tables(&self, positions: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((
            self.cos.index_select(positions, 0)?,
            self.sin.index_select(positions, 0)?,
        ))
    }

    /// Rotates `x` (`[1, heads, n, head_dim]`, contiguous) whose `n` tokens have the rows of
    /// `cos`/`sin` (`[n, head_dim / 2]`): tokens of different rows may sit at different positions.
    pub fn apply(&self, x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        Ok(match self.style {
            RopeStyle::Halves => candle_nn::rotary_emb::rope(x, cos, sin)?,
            RopeStyle::Interleaved => candle_nn::rotary_emb::rope_i(x, cos, sin)?,
        })
    }
}
