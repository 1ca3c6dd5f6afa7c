//! Rotary position embedding tables, kept in f32 whatever the weights' precision: positions
//! far into a long reasoning trace lose accuracy in f16.

use candle_core::{Device, Tensor};

use std::f32::consts::PI;

use super::config::{ModelConfig, RopeScaling, RopeStyle};
use crate::error::Result;

pub struct Rope {
    cos: Tensor,
    sin: Tensor,
    style: RopeStyle,
    /// Dimensions of each head that turn (the first ones); `None`: all.
    partial: Option<usize>,
}

impl Rope {
    pub fn new(config: &ModelConfig, device: &Device) -> Result<Self> {
        let (inv_freq, magnitude) = frequencies(config);
        let half = inv_freq.len();
        let positions = config.context_length;
        let mut angles = Vec::with_capacity(positions * half);
        for p in 0..positions {
            angles.extend(inv_freq.iter().map(|f| p as f32 * f));
        }
        let angles = Tensor::from_vec(angles, (positions, half), device)?;
        let (cos, sin) = (angles.cos()?, angles.sin()?);
        // YaRN scales cos and sin (so every q·k by its square); 1 elsewhere.
        let (cos, sin) = if magnitude == 1.0 {
            (cos, sin)
        } else {
            let m = f64::from(magnitude);
            ((cos * m)?, (sin * m)?)
        };
        Ok(Rope {
            cos,
            sin,
            style: config.rope_style,
            partial: config.switches.rotary_dim,
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

    /// Tables that rotate by angle zero (cos 1, sin 0), shaped like `cos`/`sin`: a NoPE
    /// layer runs the same kernels as its neighbours (on CUDA the fused, graph-captured ones,
    /// which must not fall back to host-side offsets mid-step) and every value passes
    /// through exactly: `x · 1 - y · 0 = x`.
    pub fn unrotated_tables(cos: &Tensor, sin: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((cos.ones_like()?, sin.zeros_like()?))
    }

    /// Rotates `x` (`[1, heads, n, head_dim]`, contiguous) whose `n` tokens have the rows of
    /// `cos`/`sin` (`[n, rotary_dim / 2]`): tokens of different rows may sit at different
    /// positions. With partial rotary embedding the other dimensions pass through.
    pub fn apply(&self, x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        if let Some(rotated) = self.partial {
            let head_dim = x.dim(3)?;
            let turned = self.rotate(&x.narrow(3, 0, rotated)?.contiguous()?, cos, sin)?;
            let kept = x.narrow(3, rotated, head_dim - rotated)?;
            return Ok(Tensor::cat(&[&turned, &kept], 3)?.contiguous()?);
        }
        self.rotate(x, cos, sin)
    }

    fn rotate(&self, x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        Ok(match self.style {
            RopeStyle::Halves => candle_nn::rotary_emb::rope(x, cos, sin)?,
            RopeStyle::Interleaved => candle_nn::rotary_emb::rope_i(x, cos, sin)?,
        })
    }
}

/// Each rotary pair's angle per position, and the factor cos and sin are scaled by, after the
/// model's [`RopeScaling`]. Pair `i` turns at `theta^(-2i/d)` unscaled, `d` the rotary
/// dimensions.
fn frequencies(config: &ModelConfig) -> (Vec<f32>, f32) {
    let rotated = config.switches.rotary_dim.unwrap_or(config.head_dim);
    let dim = rotated as f32;
    let base = config.rope_theta;
    let unscaled: Vec<f32> = (0..rotated / 2)
        .map(|i| 1.0 / base.powf(2.0 * i as f32 / dim))
        .collect();
    match config.switches.rope_scaling {
        RopeScaling::None => (unscaled, 1.0),
        RopeScaling::Linear { factor } => (unscaled.iter().map(|f| f / factor).collect(), 1.0),
        RopeScaling::Yarn {
            factor,
            original_context,
            beta_fast,
            beta_slow,
            attention_factor,
        } => {
            // The pair index that turns `turns` times over the original window.
            let pair_turning = |turns: f32| {
                dim * (original_context as f32 / (turns * 2.0 * PI)).ln() / (2.0 * base.ln())
            };
            let low = pair_turning(beta_fast).floor().max(0.0);
            let high = pair_turning(beta_slow).ceil().min(dim - 1.0);
            let span = (high - low).max(0.001);
            let scaled = unscaled
                .iter()
                .enumerate()
                .map(|(i, &f)| {
                    // 1 for fast pairs (kept as trained), 0 for slow ones (interpolated).
                    let keep = 1.0 - ((i as f32 - low) / span).clamp(0.0, 1.0);
                    f / factor * (1.0 - keep) + f * keep
                })
                .collect();
            (scaled, attention_factor)
        }
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_context,
        } => {
            let original = original_context as f32;
            let scaled = unscaled
                .iter()
                .map(|&f| {
                    let wavelength = 2.0 * PI / f;
                    if wavelength < original / high_freq_factor {
                        f
                    } else if wavelength > original / low_freq_factor {
                        f / factor
                    } else {
                        let smooth = (original / wavelength - low_freq_factor)
                            / (high_freq_factor - low_freq_factor);
                        (1.0 - smooth) * f / factor + smooth * f
                    }
                })
                .collect();
            (scaled, 1.0)
        }
    }
}
