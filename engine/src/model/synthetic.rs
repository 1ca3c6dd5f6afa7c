//! Models with random weights in a chosen storage format, built straight onto a device.
//!
//! Two uses: benchmarking geometries whose real weights cannot reach the machine (the
//! K2-Think 32B shape on a GPU machine with no network; its bf16 form would not even fit on
//! that machine's disk), and comparing devices on identical weights: the same seed gives
//! the same bytes on every device, so CPU and CUDA logits can be compared directly.
//!
//! Weights are valid GGML blocks (finite scales, random quants) or uniform floats, scaled
//! so activations keep a sensible size through the layers. Generation is parallel and
//! per tensor, so peak host memory is one tensor.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use candle_core::quantized::{ggml_file::qtensor_from_ggml, GgmlDType};
use candle_core::{DType, Device, Tensor};
use half::{bf16, f16};
use rayon::prelude::*;

use super::config::{ModelConfig, QkNorm};
use super::kernel_op::KernelMatrix;
use super::linear::{Linear, Matrix};
use super::projections::{runs_of, stacked_bias, Projections, Stack};
use super::{Attention, Block, Mixer, Model, QkNormWeights};
use crate::error::{EngineError, Result};

/// How a synthetic model stores its matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    /// llama.cpp's Q4_K_M mix: Q4_K, with Q6_K for the output matrix and for `attn_v` and
    /// `ffn_down` in the layers that mix gives more bits.
    Q4KM,
    Q8_0,
    /// SmolLM2's published quantization.
    Q4_1,
    Bf16,
    F16,
}

impl WeightFormat {
    pub fn name(self) -> &'static str {
        match self {
            Self::Q4KM => "q4_k_m",
            Self::Q8_0 => "q8_0",
            Self::Q4_1 => "q4_1",
            Self::Bf16 => "bf16",
            Self::F16 => "f16",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [Self::Q4KM, Self::Q8_0, Self::Q4_1, Self::Bf16, Self::F16]
            .into_iter()
            .find(|f| f.name() == name.to_ascii_lowercase())
    }

    /// The storage of one matrix: `cols` inputs, in `layer` of `layers` (`None`: the
    /// embedding or output matrix, told apart by `output`).
    fn dtype(self, role: Role, layer: usize, layers: usize, cols: usize) -> GgmlDType {
        let chosen = match self {
            Self::Q8_0 => GgmlDType::Q8_0,
            Self::Q4_1 => GgmlDType::Q4_1,
            Self::Bf16 => GgmlDType::BF16,
            Self::F16 => GgmlDType::F16,
            Self::Q4KM => {
                // More bits for the first and last eighth of the layers and every third
                // layer between (llama.cpp's rule for its _M mixes).
                let first = layers / 8;
                let more_bits =
                    layer < first || layer >= 7 * layers / 8 || (layer - first) % 3 == 2;
                match role {
                    Role::Output => GgmlDType::Q6K,
                    Role::Value | Role::Down if more_bits => GgmlDType::Q6K,
                    _ => GgmlDType::Q4K,
                }
            }
        };
        // K-quants need rows in whole 256-wide super-blocks; llama.cpp falls back too.
        if chosen.block_size() > 1 && !cols.is_multiple_of(chosen.block_size()) {
            GgmlDType::Q8_0
        } else {
            chosen
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Embedding,
    Output,
    Value,
    Down,
    Other,
}

/// What to build: a geometry, a format, whether the output matrix is the embedding table
/// (Qwen2.5's small models) and the seed all weights derive from.
#[derive(Debug, Clone)]
pub struct SyntheticSpec {
    pub config: ModelConfig,
    pub format: WeightFormat,
    pub tied_output: bool,
    pub seed: u64,
    /// Widen every matrix to dense f32: the exact function the stored weights define, the
    /// reference that quantized kernels (8-bit activations) and half-precision products
    /// approximate.
    pub dense_reference: bool,
}

/// Builds the model of `spec` on `device`. On CPU, quantized matrices use k2-kernels and
/// float matrices are widened to f32 (exactly); on a GPU both keep their storage format.
pub fn synthetic_model(spec: &SyntheticSpec, device: &Device) -> Result<Model> {
    let _uploading = super::UploadScope::enter(device);
    let config = spec.config.clone();
    let builder = Builder {
        spec,
        device,
        scratch: Default::default(),
    };
    let (hidden, inter) = (config.hidden_size, config.intermediate_size);
    let q_out = config.num_heads * config.head_dim;
    let kv_out = config.num_kv_heads * config.head_dim;
    let layers = config.num_layers;
    let qkv_bias = config.architecture.traits().qkv_bias;

    let embed = builder.matrix("token_embd", Role::Embedding, 0, config.vocab_size, hidden)?;
    let mut blocks = Vec::with_capacity(layers);
    for i in 0..layers {
        let name = |part: &str| format!("blk.{i}.{part}");
        let linear = |part: &str, role: Role, out: usize, cols: usize| {
            let weight = builder.matrix(&name(part), role, i, out, cols)?;
            Ok::<_, EngineError>(Linear::new(weight, None))
        };
        let qkv = [
            (name("attn_q"), Role::Other, q_out),
            (name("attn_k"), Role::Other, kv_out),
            (name("attn_v"), Role::Value, kv_out),
        ];
        let gate_up = [
            (name("ffn_gate"), Role::Other, inter),
            (name("ffn_up"), Role::Other, inter),
        ];
        let qk_norm = match config.switches.qk_norm {
            QkNorm::None => None,
            form => {
                let (q_len, k_len) = match form {
                    QkNorm::Shared => (config.head_dim, config.head_dim),
                    _ => (q_out, kv_out),
                };
                let q = builder.vector(&name("attn_q_norm"), q_len, 0.1, 1.0)?;
                let k = builder.vector(&name("attn_k_norm"), k_len, 0.1, 1.0)?;
                Some(QkNormWeights::new(&config, q, k, "synthetic".as_ref())?)
            }
        };
        let gate = if config.switches.output_gate.is_some() {
            Some(linear("attn_gate", Role::Other, q_out, hidden)?)
        } else {
            None
        };
        blocks.push(Block {
            attn_norm: builder.vector(&name("attn_norm"), hidden, 0.1, 1.0)?,
            mixer: Mixer::Attention(Attention {
                qkv: builder.projections(&qkv, i, hidden, qkv_bias)?,
                qk_norm,
                gate,
                o: linear("attn_output", Role::Other, hidden, q_out)?,
            }),
            mlp_norm: builder.vector(&name("ffn_norm"), hidden, 0.1, 1.0)?,
            gate_up: builder.projections(&gate_up, i, hidden, false)?,
            down: linear("ffn_down", Role::Down, hidden, inter)?,
        });
    }
    let final_norm = builder.vector("output_norm", hidden, 0.1, 1.0)?;
    let lm_head = if spec.tied_output {
        Linear::new(embed.clone(), None)
    } else {
        Linear::new(
            builder.matrix("output", Role::Output, 0, config.vocab_size, hidden)?,
            None,
        )
    };
    Model::from_parts(config, embed, blocks, final_norm, lm_head, device)
}

struct Builder<'a> {
    spec: &'a SyntheticSpec,
    device: &'a Device,
    /// Host bytes of the tensor being built, reused from one tensor to the next.
    scratch: std::cell::RefCell<Vec<u8>>,
}

impl Builder<'_> {
    fn seed(&self, name: &str) -> u64 {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        name.hash(&mut hasher);
        hasher.finish() ^ self.spec.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    /// `out` × `cols` matrix. Entries are about ±1/√cols, so each output keeps the size of
    /// its (normalized) input; embeddings are about ±1.
    fn matrix(
        &self,
        name: &str,
        role: Role,
        layer: usize,
        out: usize,
        cols: usize,
    ) -> Result<Arc<Matrix>> {
        let dtype = self.dtype(role, layer, cols);
        let mut buffer = self.scratch.borrow_mut();
        buffer.clear();
        self.generate(&mut buffer, name, role, dtype, out, cols);
        self.upload(dtype, &buffer, out, cols)
    }

    fn dtype(&self, role: Role, layer: usize, cols: usize) -> GgmlDType {
        let layers = self.spec.config.num_layers;
        self.spec.format.dtype(role, layer, layers, cols)
    }

    fn generate(
        &self,
        buffer: &mut Vec<u8>,
        name: &str,
        role: Role,
        dtype: GgmlDType,
        out: usize,
        cols: usize,
    ) {
        let amplitude = if role == Role::Embedding {
            1.0
        } else {
            (3.0 / cols as f32).sqrt()
        };
        append_random_matrix(buffer, dtype, out, cols, amplitude, self.seed(name));
    }

    /// Layers reading one input, each `(name, role, out)`, stacked as the GGUF loader
    /// stacks them (on a GPU, neighbours that share a format).
    fn projections(
        &self,
        parts: &[(String, Role, usize)],
        layer: usize,
        cols: usize,
        bias: bool,
    ) -> Result<Projections> {
        let parts: Vec<(&(String, Role, usize), GgmlDType)> = parts
            .iter()
            .map(|part| (part, self.dtype(part.1, layer, cols)))
            .collect();
        let runs = if self.device.is_cpu() {
            parts.into_iter().map(|part| vec![part]).collect()
        } else {
            runs_of(parts, |(_, dtype)| *dtype)
        };
        let stacks = runs
            .into_iter()
            .map(|run| self.stack(&run, layer, cols, bias))
            .collect::<Result<_>>()?;
        Ok(Projections::new(stacks))
    }

    /// One matrix of the parts `run` (each `(name, role, out)` and its format, one format).
    fn stack(
        &self,
        run: &[(&(String, Role, usize), GgmlDType)],
        layer: usize,
        cols: usize,
        bias: bool,
    ) -> Result<Stack> {
        let biases = run
            .iter()
            .map(|((name, _, out), _)| {
                bias.then(|| self.vector(&format!("{name}.bias"), *out, 0.1, 0.0))
                    .transpose()
            })
            .collect::<Result<Vec<_>>>()?;
        if let [((name, role, out), _)] = run {
            let weight = self.matrix(name, *role, layer, *out, cols)?;
            let bias = biases.into_iter().next().flatten();
            return Ok(Stack::single(Linear::new(weight, bias)));
        }
        let dtype = run[0].1;
        let outs: Vec<usize> = run.iter().map(|(part, _)| part.2).collect();
        let mut buffer = self.scratch.borrow_mut();
        buffer.clear();
        for ((name, role, out), _) in run {
            self.generate(&mut buffer, name, *role, dtype, *out, cols);
        }
        let weight = self.upload(dtype, &buffer, outs.iter().sum(), cols)?;
        Ok(Stack {
            linear: Linear::new(weight, stacked_bias(biases, &outs)?),
            outs,
        })
    }

    /// GGML bytes of an `out` × `cols` matrix as the device runs them best.
    fn upload(
        &self,
        dtype: GgmlDType,
        bytes: &[u8],
        out: usize,
        cols: usize,
    ) -> Result<Arc<Matrix>> {
        let float = match dtype {
            GgmlDType::F32 => Some(DType::F32),
            GgmlDType::F16 => Some(DType::F16),
            GgmlDType::BF16 => Some(DType::BF16),
            _ => None,
        };
        if self.spec.dense_reference {
            let q = qtensor_from_ggml(dtype, bytes, vec![out, cols], &Device::Cpu)?;
            let w = q.dequantize(&Device::Cpu)?.to_device(self.device)?;
            return Ok(Arc::new(Matrix::Dense(w)));
        }
        if let Some(float) = float {
            let w = Tensor::from_raw_buffer(bytes, float, &[out, cols], self.device)?;
            let w = if self.device.is_cpu() {
                w.to_dtype(DType::F32)?
            } else {
                w
            };
            return Ok(Arc::new(Matrix::Dense(w)));
        }
        if self.device.is_cpu() {
            if let Some(kernel) = KernelMatrix::from_ggml(dtype, bytes, &[out, cols]) {
                return Ok(Arc::new(Matrix::Kernel(kernel?)));
            }
        }
        let q = qtensor_from_ggml(dtype, bytes, vec![out, cols], self.device)?;
        Ok(Arc::new(Matrix::candle(q)?))
    }

    /// f32 vector of `center ± spread` (norm weights near one, small biases).
    fn vector(&self, name: &str, len: usize, spread: f32, center: f32) -> Result<Tensor> {
        let mut rng = SplitMix64(self.seed(name));
        let values: Vec<f32> = (0..len)
            .map(|_| center + spread * rng.symmetric())
            .collect();
        Ok(Tensor::from_vec(values, len, self.device)?)
    }
}

/// Row-major GGML bytes of a random `rows` × `cols` matrix of the given type whose values
/// lie within about ±`amplitude`.
pub fn random_matrix_bytes(
    dtype: GgmlDType,
    rows: usize,
    cols: usize,
    amplitude: f32,
    seed: u64,
) -> Vec<u8> {
    let mut bytes = Vec::new();
    append_random_matrix(&mut bytes, dtype, rows, cols, amplitude, seed);
    bytes
}

/// [`random_matrix_bytes`] appended to `buffer`: building a large model through one reused
/// buffer avoids mapping fresh pages for every tensor, which costs more than generating.
fn append_random_matrix(
    buffer: &mut Vec<u8>,
    dtype: GgmlDType,
    rows: usize,
    cols: usize,
    amplitude: f32,
    seed: u64,
) {
    let row_bytes = cols / dtype.block_size() * dtype.type_size();
    let start = buffer.len();
    buffer.resize(start + rows * row_bytes, 0);
    // Chunks of whole rows, each with its own stream, so the result is the same whatever
    // the number of threads.
    let rows_per_chunk = (1 << 20) / row_bytes.max(1) + 1;
    buffer[start..]
        .par_chunks_mut(rows_per_chunk * row_bytes)
        .enumerate()
        .for_each(|(chunk, out)| {
            let mut rng = SplitMix64(seed ^ (chunk as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
            fill_random(dtype, out, amplitude, &mut rng);
        });
}

fn fill_random(dtype: GgmlDType, out: &mut [u8], amplitude: f32, rng: &mut SplitMix64) {
    let a = amplitude;
    match dtype {
        GgmlDType::F32 => {
            for v in out.chunks_exact_mut(4) {
                v.copy_from_slice(&(a * rng.symmetric()).to_le_bytes());
            }
        }
        GgmlDType::F16 => {
            for v in out.chunks_exact_mut(2) {
                v.copy_from_slice(&f16::from_f32(a * rng.symmetric()).to_le_bytes());
            }
        }
        GgmlDType::BF16 => {
            for v in out.chunks_exact_mut(2) {
                v.copy_from_slice(&bf16::from_f32(a * rng.symmetric()).to_le_bytes());
            }
        }
        _ => {
            for word in out.chunks_mut(8) {
                let r = rng.next().to_le_bytes();
                word.copy_from_slice(&r[..word.len()]);
            }
            // Random quants and sub-block scales are all valid; the f16 super-scales must
            // be finite and sized so values span about ±a:
            //   Q8_0  w = d·q,               q ∈ [-128, 127]
            //   Q4_1  w = d·q + m,           q ∈ [0, 15]
            //   Q4_K  w = d·s·q − dmin·m,    s, m ∈ [0, 63], q ∈ [0, 15]
            //   Q6_K  w = d·s·(q − 32),      s ∈ [-128, 127], q ∈ [0, 63]
            let (block, fields): (usize, &[(usize, f32)]) = match dtype {
                GgmlDType::Q8_0 => (34, &[(0, a / 128.0)]),
                GgmlDType::Q4_1 => (20, &[(0, 2.0 * a / 15.0), (2, -a)]),
                GgmlDType::Q4K => (144, &[(0, a / 472.0), (2, a / 63.0)]),
                GgmlDType::Q6K => (210, &[(208, a / 2048.0)]),
                other => unreachable!("no synthetic weights for {other:?}"),
            };
            debug_assert_eq!(block, dtype.type_size());
            for b in out.chunks_exact_mut(block) {
                for &(offset, value) in fields {
                    b[offset..offset + 2].copy_from_slice(&f16::from_f32(value).to_le_bytes());
                }
            }
        }
    }
}

/// Small, fast, good-enough generator for weights (not for sampling).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn symmetric(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::ggml_file::qtensor_from_ggml;

    #[test]
    fn random_blocks_dequantize_to_finite_values_of_the_intended_size() {
        for dtype in [
            GgmlDType::Q8_0,
            GgmlDType::Q4_1,
            GgmlDType::Q4K,
            GgmlDType::Q6K,
            GgmlDType::BF16,
            GgmlDType::F16,
        ] {
            let bytes = random_matrix_bytes(dtype, 8, 512, 0.5, 7);
            let q = qtensor_from_ggml(dtype, &bytes, vec![8, 512], &Device::Cpu).unwrap();
            let values: Vec<f32> = q
                .dequantize(&Device::Cpu)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert!(values.iter().all(|v| v.is_finite()), "{dtype:?}");
            let max = values.iter().fold(0f32, |m, v| m.max(v.abs()));
            let rms = (values.iter().map(|v| v * v).sum::<f32>() / values.len() as f32).sqrt();
            assert!(max < 2.0 && rms > 0.05, "{dtype:?}: max {max}, rms {rms}");
        }
    }

    /// Our CPU kernels on a small random model stay within 8-bit-activation error of the
    /// exact function of the same weights (the CPU half of the GPU check in
    /// `examples/device_bench.rs`).
    #[test]
    fn quantized_cpu_forward_matches_the_dense_reference() {
        use crate::model::{Architecture, LogitsFor, ModelConfig, RopeStyle};
        let config = ModelConfig {
            architecture: Architecture::Qwen2,
            vocab_size: 512,
            hidden_size: 256,
            intermediate_size: 512,
            num_layers: 4,
            num_heads: 4,
            num_kv_heads: 2,
            head_dim: 64,
            rope_theta: 10_000.0,
            rope_style: RopeStyle::Halves,
            rms_norm_eps: 1e-6,
            context_length: 64,
            switches: Default::default(),
        };
        for format in [WeightFormat::Q4KM, WeightFormat::Q8_0, WeightFormat::Bf16] {
            let spec = |dense_reference| SyntheticSpec {
                config: config.clone(),
                format,
                tied_output: true,
                seed: 3,
                dense_reference,
            };
            let logits = |dense_reference| -> Vec<f32> {
                let model = synthetic_model(&spec(dense_reference), &Device::Cpu).unwrap();
                let mut cache = model.new_cache(Some(32));
                cache.add_row().unwrap();
                let prompt: Vec<u32> = (0..12).map(|i| (i * 37 % 512) as u32).collect();
                let out = model
                    .forward(&mut cache, &[&prompt], LogitsFor::Last)
                    .unwrap();
                out[0].flatten_all().unwrap().to_vec1().unwrap()
            };
            let (fast, exact) = (logits(false), logits(true));
            let diff: f32 = fast.iter().zip(&exact).map(|(a, b)| (a - b).powi(2)).sum();
            let norm: f32 = exact.iter().map(|b| b * b).sum();
            let rel = (diff / norm).sqrt();
            assert!(rel < 5e-2, "{}: relative error {rel}", format.name());
            assert!(norm > 0.0 && fast.iter().all(|v| v.is_finite()));
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_bytes_and_another_seed_other_bytes() {
        let a = random_matrix_bytes(GgmlDType::Q4K, 300, 1024, 0.1, 1);
        assert_eq!(a, random_matrix_bytes(GgmlDType::Q4K, 300, 1024, 0.1, 1));
        assert_ne!(a, random_matrix_bytes(GgmlDType::Q4K, 300, 1024, 0.1, 2));
    }
}
