//! Qwen3.5's Gated DeltaNet layer (linear attention), on the CPU: the projections run once
//! for all rows' tokens through the usual kernels; the convolution, the gates and the delta
//! rule run per row against that row's recurrent state (`recurrent_state`).
//!
//! Per token, with `x` the normalized block input:
//! 1. `qkv = W_qkv x`, then a causal depthwise convolution over the last `taps` values of
//!    each channel and SiLU; split into queries and keys (`key_heads` heads) and values
//!    (`value_heads` heads);
//! 2. queries and keys l2-normalized (queries also scaled by `1/√key_dim`); value head `h`
//!    reads key head `h % key_heads` (the tiled order llama.cpp's converter writes);
//! 3. `g = a · softplus(W_alpha x + dt_bias)` (`a = -exp(A_log)`), `beta = sigmoid(W_beta x)`;
//! 4. the delta rule (`delta_rule`) per value head;
//! 5. each head's output RMS-normalized, times the norm weight and `silu(W_z x)`, then `W_out`.
//!
//! Passes of up to [`ROLLBACK_MAX`] tokens (decoding, drafting, speculative verification) run
//! token by token, so a verification pass computes each token exactly as plain decoding does
//! and a rollback replays the very same steps; longer passes (prompts) run the chunked form.

use std::path::Path;

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::config::LinearAttention;
#[cfg(feature = "cuda")]
use super::cuda_delta_net;
use super::delta_rule::{self, HeadDims, HeadInputs};
use super::kv_cache::KvCache;
use super::linear::Linear;
use super::projections::Projections;
use super::recurrent_state::{
    shift_conv, step_heads, RecurrentRow, RecurrentShape, Rollback, TokenInputs, ROLLBACK_MAX,
};
use super::step::StepInputs;
use crate::error::{EngineError, Result};

/// Tokens per chunk of the chunked delta rule (as transformers and llama.cpp).
const CHUNK: usize = 64;

pub(super) struct DeltaNet {
    weights: DeltaNetWeights,
    pub shape: RecurrentShape,
    key_heads: usize,
    eps: f32,
    /// The layer's vectors on the GPU, where the model runs on one.
    #[cfg(feature = "cuda")]
    gpu: Option<cuda_delta_net::LayerVectors>,
}

/// A Gated DeltaNet layer's weights, as the engine computes with them (value heads in tiled
/// order, `a = -exp(A_log)`).
pub(super) struct DeltaNetWeights {
    /// `W_qkv`, `W_z`, `W_beta`, `W_alpha`, in that order.
    pub inputs: Projections,
    /// The convolution's weights, `[channels][taps]`, the last tap on the newest input.
    pub conv: Vec<f32>,
    pub dt_bias: Vec<f32>,
    /// `-exp(A_log)` per value head.
    pub a: Vec<f32>,
    /// The gated norm's weight, `[value_dim]`, shared by the heads.
    pub norm: Vec<f32>,
    pub out: Linear,
}

/// One row's new tokens: slices of the projections' outputs.
struct RowInputs<'a> {
    qkv: &'a [f32],
    z: &'a [f32],
    beta: &'a [f32],
    alpha: &'a [f32],
}

impl DeltaNet {
    /// The layer, once its vectors have the sizes `linear` needs (the arithmetic indexes
    /// them by those sizes; a file that disagrees is refused, not run), for `device`.
    pub fn new(
        weights: DeltaNetWeights,
        linear: &LinearAttention,
        eps: f32,
        path: &Path,
        device: &Device,
    ) -> Result<DeltaNet> {
        let shape = super::recurrent_shape(linear);
        let heads = linear.value_heads;
        for (what, len, want) in [
            (
                "convolution weights",
                weights.conv.len(),
                shape.channels * shape.conv_taps,
            ),
            ("time-step biases", weights.dt_bias.len(), heads),
            ("decay rates", weights.a.len(), heads),
            ("gated norm weights", weights.norm.len(), linear.value_dim),
        ] {
            if len != want {
                return Err(EngineError::CorruptModel {
                    path: path.to_owned(),
                    reason: format!(
                        "a linear-attention layer has {len} {what}, but its sizes need {want}"
                    ),
                });
            }
        }
        #[cfg(feature = "cuda")]
        let gpu = match device {
            Device::Cuda(_) => Some(cuda_delta_net::LayerVectors::new(
                &shape,
                [&weights.conv, &weights.dt_bias, &weights.a, &weights.norm],
                device,
            )?),
            _ => None,
        };
        #[cfg(not(feature = "cuda"))]
        let _ = device;
        Ok(DeltaNet {
            weights,
            shape,
            key_heads: linear.key_heads,
            eps,
            #[cfg(feature = "cuda")]
            gpu,
        })
    }

    pub fn input_projections(&self) -> &Projections {
        &self.weights.inputs
    }

    pub fn output_projection(&self) -> &Linear {
        &self.weights.out
    }

    /// `h`: `[n, hidden]`, all rows' new tokens as `step.spans` lays them out. Returns the
    /// layer's output `[n, hidden]` and advances each row's recurrent state.
    pub fn forward(
        &self,
        h: &Tensor,
        cache: &mut KvCache,
        layer: usize,
        step: &StepInputs,
    ) -> Result<Tensor> {
        let parts = self.weights.inputs.forward(h)?;
        #[cfg(feature = "cuda")]
        if let Some(vectors) = &self.gpu {
            return self.forward_on_gpu(vectors, &parts, cache, layer, step);
        }
        let (qkv, z, beta, alpha) = (
            host_values(&parts[0])?,
            host_values(&parts[1])?,
            host_values(&parts[2])?,
            host_values(&parts[3])?,
        );
        let (channels, heads) = (self.shape.channels, self.shape.value_heads);
        let width = heads * self.shape.head.value_dim;
        let n = h.dim(0)?;
        let mut out = vec![0f32; n * width];
        let rollback = cache.rollback();
        for (row, &(start, t)) in step.spans.iter().enumerate() {
            if t == 0 {
                continue;
            }
            let len = cache.len(row);
            let state = cache.recurrent_row(layer, row);
            state.begin_pass(len, t, rollback);
            let inputs = RowInputs {
                qkv: &qkv[start * channels..][..t * channels],
                z: &z[start * width..][..t * width],
                beta: &beta[start * heads..][..t * heads],
                alpha: &alpha[start * heads..][..t * heads],
            };
            self.run_row(
                state,
                &inputs,
                rollback,
                &mut out[start * width..][..t * width],
            )?;
        }
        let y = Tensor::from_vec(out, (n, width), h.device())?;
        self.weights.out.forward(&y)
    }

    /// [`DeltaNet::forward`] on the GPU (`cuda_delta_net`), the projections' outputs
    /// `parts` given.
    #[cfg(feature = "cuda")]
    fn forward_on_gpu(
        &self,
        vectors: &cuda_delta_net::LayerVectors,
        parts: &[Tensor],
        cache: &mut KvCache,
        layer: usize,
        step: &StepInputs,
    ) -> Result<Tensor> {
        let pass = cuda_delta_net::Pass {
            shape: &self.shape,
            key_heads: self.key_heads,
            eps: self.eps,
            vectors,
            qkv: &parts[0],
            z: &parts[1],
            beta: &parts[2],
            alpha: &parts[3],
        };
        let n = parts[0].dim(0)?;
        let width = self.shape.value_heads * self.shape.head.value_dim;
        let mut out = cuda_delta_net::output_buffer(&parts[0], n, width)?;
        let rollback = cache.rollback();
        for (row, &(start, t)) in step.spans.iter().enumerate() {
            if t == 0 {
                continue;
            }
            let len = cache.len(row);
            let state = cache.recurrent_row(layer, row);
            state.begin_pass(len, t, rollback);
            let each = state.keeps_tokens();
            for after in pass.run_row(&state.now, (start, t), each, &mut out)? {
                state.record_state(after, &self.shape, rollback);
            }
        }
        let y = pass.gated_norm(out, n)?;
        self.weights.out.forward(&y)
    }

    /// One row's tokens through the convolution, the gates, the delta rule and the gated
    /// norm; `out`: `[t, value_heads * value_dim]`.
    fn run_row(
        &self,
        row: &mut RecurrentRow,
        x: &RowInputs<'_>,
        rollback: Rollback,
        out: &mut [f32],
    ) -> Result<()> {
        let channels = self.shape.channels;
        let heads = self.shape.value_heads;
        let width = heads * self.shape.head.value_dim;
        let t = x.qkv.len() / channels;
        let input = |i: usize| &x.qkv[i * channels..][..channels];
        // The convolution window moves one token at a time in both forms.
        let next_token = |conv: &mut [f32], i: usize| {
            let convolved = self.convolve(conv, input(i));
            shift_conv(conv, input(i));
            let gates = (
                &x.alpha[i * heads..][..heads],
                &x.beta[i * heads..][..heads],
            );
            self.recurrence_inputs(convolved, gates)
        };
        if t <= ROLLBACK_MAX {
            for i in 0..t {
                let (conv, delta) = row.host_mut()?;
                let token = next_token(conv, i);
                step_heads(delta, &self.shape, &token, &mut out[i * width..][..width]);
                // The raw input is copied only where a replay needs it.
                row.record_token(&self.shape, rollback, || (input(i).to_vec(), token));
            }
        } else {
            let (conv, delta) = row.host_mut()?;
            let tokens: Vec<TokenInputs> = (0..t).map(|i| next_token(conv, i)).collect();
            self.chunked(delta, &tokens, out);
        }
        for i in 0..t {
            self.gated_norm(&mut out[i * width..][..width], &x.z[i * width..][..width]);
        }
        Ok(())
    }

    /// One token's convolution output (SiLU applied) from the window of earlier inputs.
    fn convolve(&self, window: &[f32], input: &[f32]) -> Vec<f32> {
        let taps = self.shape.conv_taps;
        let channels = input.len();
        (0..channels)
            .map(|c| {
                let w = &self.weights.conv[c * taps..][..taps];
                let mut sum = w[taps - 1] * input[c];
                for (j, wj) in w[..taps - 1].iter().enumerate() {
                    sum += wj * window[j * channels + c];
                }
                silu(sum)
            })
            .collect()
    }

    /// One token's recurrence inputs from its convolved channels and gate projections.
    fn recurrence_inputs(
        &self,
        convolved: Vec<f32>,
        (alpha, beta): (&[f32], &[f32]),
    ) -> TokenInputs {
        let HeadDims { key_dim, value_dim } = self.shape.head;
        let heads = self.shape.value_heads;
        let keys = self.key_heads * key_dim;
        let (mut q, rest) = (convolved[..keys].to_vec(), &convolved[keys..]);
        let (mut k, v) = (
            rest[..keys].to_vec(),
            rest[keys..][..heads * value_dim].to_vec(),
        );
        delta_rule::normalize_queries_and_keys(&mut q, &mut k, key_dim);
        // Value head h reads key head h % key_heads.
        let tiled = |x: &[f32]| -> Vec<f32> {
            (0..heads)
                .flat_map(|h| &x[(h % self.key_heads) * key_dim..][..key_dim])
                .copied()
                .collect()
        };
        TokenInputs {
            q: tiled(&q),
            k: tiled(&k),
            v,
            g: (0..heads)
                .map(|h| self.weights.a[h] * softplus(alpha[h] + self.weights.dt_bias[h]))
                .collect(),
            beta: beta.iter().map(|&b| sigmoid(b)).collect(),
        }
    }

    /// A long pass through the chunked delta rule, heads in parallel; `out`: `[t, width]`.
    fn chunked(&self, state: &mut [f32], tokens: &[TokenInputs], out: &mut [f32]) {
        let HeadDims { key_dim, value_dim } = self.shape.head;
        let t = tokens.len();
        let per_head = key_dim * value_dim;
        let head_outputs: Vec<Vec<f32>> = state
            .par_chunks_mut(per_head)
            .enumerate()
            .map(|(h, head_state)| {
                let gather = |dim: usize, pick: &dyn Fn(&TokenInputs) -> &[f32]| -> Vec<f32> {
                    tokens
                        .iter()
                        .flat_map(|tok| &pick(tok)[h * dim..][..dim])
                        .copied()
                        .collect()
                };
                let q = gather(key_dim, &|tok| &tok.q);
                let k = gather(key_dim, &|tok| &tok.k);
                let v = gather(value_dim, &|tok| &tok.v);
                let g = gather(1, &|tok| &tok.g);
                let beta = gather(1, &|tok| &tok.beta);
                let inputs = HeadInputs {
                    q: &q,
                    k: &k,
                    v: &v,
                    g: &g,
                    beta: &beta,
                };
                let mut head_out = vec![0f32; t * value_dim];
                delta_rule::chunked(head_state, self.shape.head, &inputs, CHUNK, &mut head_out);
                head_out
            })
            .collect();
        let width = self.shape.value_heads * value_dim;
        for (h, head_out) in head_outputs.iter().enumerate() {
            for i in 0..t {
                out[i * width + h * value_dim..][..value_dim]
                    .copy_from_slice(&head_out[i * value_dim..][..value_dim]);
            }
        }
    }

    /// Each head's output RMS-normalized, times the norm weight and `silu(z)`.
    fn gated_norm(&self, out: &mut [f32], z: &[f32]) {
        let value_dim = self.shape.head.value_dim;
        for (o, z) in out
            .chunks_exact_mut(value_dim)
            .zip(z.chunks_exact(value_dim))
        {
            let mean_square = o.iter().map(|v| v * v).sum::<f32>() / value_dim as f32;
            let scale = 1.0 / (mean_square + self.eps).sqrt();
            for ((oj, wj), zj) in o.iter_mut().zip(&self.weights.norm).zip(z) {
                *oj = *oj * scale * wj * silu(*zj);
            }
        }
    }
}

/// A tensor's values, flat, on the host (f32).
pub(super) fn host_values(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_vec1::<f32>()?)
}

fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// `ln(1 + e^x)`, without overflow for large `x`.
fn softplus(x: f32) -> f32 {
    if x > 20.0 {
        x
    } else {
        x.exp().ln_1p()
    }
}
