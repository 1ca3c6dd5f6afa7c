//! Building a [`Model`] from a Hugging Face folder: `config.json` and one or more
//! `*.safetensors` files (memory-mapped; weights dense in f32 on CPU for exactness, bf16/f16 kept on GPUs).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};

use super::config::{Architecture, LinearAttention, ModelConfig, OutputGate, QkNorm};
use super::delta_net::{host_values, DeltaNet, DeltaNetWeights};
use super::linear::{Linear, Matrix};
use super::projections::{stacked_bias, Projections};
use super::{Attention, Block, Mixer, Model, QkNormWeights};
use crate::error::{EngineError, Result};

struct Weights {
    tensors: MmapedSafetensors,
    folder: PathBuf,
    device: Device,
    /// Qwen3.5 stores its RMS norm weights as `w` for a multiplier of `1 + w`.
    norms_offset_by_one: bool,
}

/// Where a multimodal checkpoint (Qwen3.5's) keeps its language model's `model.*` tensors;
/// its vision tower (`model.visual.*`) and multi-token-prediction head (`mtp.*`) are not read.
const LANGUAGE_MODEL_PREFIX: &str = "model.language_model.";

impl Weights {
    /// The stored name of `name` (`model.…`), in a text-only or a multimodal checkpoint.
    fn stored_name(&self, name: &str) -> String {
        match name.strip_prefix("model.") {
            Some(rest) if self.tensors.get(name).is_err() => {
                format!("{LANGUAGE_MODEL_PREFIX}{rest}")
            }
            _ => name.to_owned(),
        }
    }

    fn has(&self, name: &str) -> bool {
        self.tensors.get(&self.stored_name(name)).is_ok()
    }

    /// An RMS norm's weight as a multiplier.
    fn norm(&self, name: &str) -> Result<Tensor> {
        let w = self.tensor(name)?;
        Ok(if self.norms_offset_by_one {
            (w + 1.0)?
        } else {
            w
        })
    }

    fn tensor(&self, name: &str) -> Result<Tensor> {
        Ok(self.tensor_as_stored(name)?.to_dtype(DType::F32)?)
    }

    fn tensor_as_stored(&self, name: &str) -> Result<Tensor> {
        if !self.has(name) {
            return Err(EngineError::CorruptModel {
                path: self.folder.clone(),
                reason: format!("tensor `{name}` is missing"),
            });
        }
        Ok(self.tensors.load(&self.stored_name(name), &self.device)?)
    }

    /// A weight matrix: half precision stays half on a GPU (a 32B model in bf16 would not
    /// fit widened to f32, and the GPU multiplies bf16 at full speed); f32 elsewhere.
    fn matrix(&self, name: &str) -> Result<Tensor> {
        let w = self.tensor_as_stored(name)?;
        let keep = !self.device.is_cpu() && matches!(w.dtype(), DType::BF16 | DType::F16);
        Ok(if keep { w } else { w.to_dtype(DType::F32)? })
    }

    /// Layers reading one input: stacked into one matrix on a GPU (see `projections`).
    fn projections(&self, prefixes: &[String]) -> Result<Projections> {
        if self.device.is_cpu() {
            let parts = prefixes.iter().map(|p| self.linear(p));
            return Ok(Projections::separate(parts.collect::<Result<_>>()?));
        }
        let weights = prefixes
            .iter()
            .map(|p| self.matrix(&format!("{p}.weight")))
            .collect::<Result<Vec<_>>>()?;
        let outs = weights
            .iter()
            .map(|w| w.dim(0))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let biases = prefixes
            .iter()
            .map(|p| {
                let name = format!("{p}.bias");
                self.has(&name).then(|| self.tensor(&name)).transpose()
            })
            .collect::<Result<Vec<_>>>()?;
        let weight = Arc::new(Matrix::Dense(Tensor::cat(&weights, 0)?));
        let bias = stacked_bias(biases, &outs)?;
        Ok(Projections::stacked(Linear::new(weight, bias), outs))
    }

    /// The files hold a block for each of the `layers` that `config.json` declares, and none
    /// beyond: a count the weights do not bear out is refused before the model is sized by it.
    fn check_layers(&self, layers: usize) -> Result<()> {
        let norm = |layer: usize| format!("model.layers.{layer}.input_layernorm.weight");
        let bad = |reason: String| EngineError::CorruptModel {
            path: self.folder.clone(),
            reason,
        };
        if let Some(missing) = (0..layers).map(norm).find(|name| !self.has(name)) {
            return Err(bad(format!(
                "config.json declares {layers} layers but the weights have no `{missing}`"
            )));
        }
        if self.has(&norm(layers)) {
            return Err(bad(format!(
                "config.json declares {layers} layers but the weights have layer {layers} too"
            )));
        }
        Ok(())
    }

    fn linear(&self, prefix: &str) -> Result<Linear> {
        let weight = Arc::new(Matrix::Dense(self.matrix(&format!("{prefix}.weight"))?));
        let bias_name = format!("{prefix}.bias");
        let bias = if self.has(&bias_name) {
            Some(self.tensor(&bias_name)?)
        } else {
            None
        };
        Ok(Linear::new(weight, bias))
    }
}

/// The `*.safetensors` files of a model folder, sorted (shards load in order).
pub fn safetensors_files(folder: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(folder).map_err(|e| EngineError::io(folder, e))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    files.sort();
    Ok(files)
}

/// Loads a Hugging Face model folder onto `device`.
pub fn load_safetensors(folder: &Path, device: &Device) -> Result<Model> {
    let _uploading = super::UploadScope::enter(device);
    let config = ModelConfig::from_hf_config(&folder.join("config.json"))?;
    super::refuse_hybrid_elsewhere(&config, device)?;
    let files = safetensors_files(folder)?;
    if files.is_empty() {
        return Err(EngineError::NotAModel {
            path: folder.to_owned(),
            reason: "the folder has config.json but no .safetensors weights".into(),
        });
    }
    // SAFETY: the files are mapped read-only; like every mmap-based loader we rely on nobody
    // truncating them while the model is loading.
    let tensors =
        unsafe { MmapedSafetensors::multi(&files) }.map_err(|e| EngineError::CorruptModel {
            path: folder.to_owned(),
            reason: format!("the safetensors weights cannot be read ({e})"),
        })?;
    let w = Weights {
        tensors,
        folder: folder.to_owned(),
        device: device.clone(),
        norms_offset_by_one: config.architecture == Architecture::Qwen35,
    };
    w.check_layers(config.num_layers)?;
    if device.is_cpu() {
        // Widened to f32 on CPU: four bytes a weight, whatever the files store.
        let weights: u64 = w
            .tensors
            .tensors()
            .iter()
            .map(|(_, view)| view.shape().iter().product::<usize>() as u64 * 4)
            .sum();
        crate::memory::check_fits_now(
            "this model's weights (f32 on CPU)",
            weights,
            "choose a smaller model, or a GGUF quantization of it",
        )?;
    }

    let embed = Arc::new(Matrix::Dense(w.matrix("model.embed_tokens.weight")?));
    let mut blocks = Vec::with_capacity(config.num_layers);
    for i in 0..config.num_layers {
        let p = |name: &str| format!("model.layers.{i}.{name}");
        let mixer = match &config.switches.linear_attention {
            Some(linear) if linear.is_recurrent(i) => {
                Mixer::DeltaNet(delta_net(&w, &config, linear, i)?)
            }
            _ => Mixer::Attention(attention(&w, &config, i)?),
        };
        blocks.push(Block {
            attn_norm: w.norm(&p("input_layernorm.weight"))?,
            mixer,
            mlp_norm: w.norm(&p("post_attention_layernorm.weight"))?,
            gate_up: w.projections(&[p("mlp.gate_proj"), p("mlp.up_proj")])?,
            down: w.linear(&p("mlp.down_proj"))?,
        });
    }
    let final_norm = w.norm("model.norm.weight")?;
    let lm_head = if w.has("lm_head.weight") {
        w.linear("lm_head")?
    } else {
        Linear::new(embed.clone(), None)
    };
    Model::from_parts(config, embed, blocks, final_norm, lm_head, device)
}

/// Layer `i`'s attention.
fn attention(w: &Weights, config: &ModelConfig, i: usize) -> Result<Attention> {
    let p = |name: &str| format!("model.layers.{i}.{name}");
    let qk_norm = if config.switches.qk_norm == QkNorm::None {
        None
    } else {
        let q = w.norm(&p("self_attn.q_norm.weight"))?;
        let k = w.norm(&p("self_attn.k_norm.weight"))?;
        Some(QkNormWeights::new(config, q, k, &w.folder)?)
    };
    let (qkv, gate) = match config.switches.output_gate {
        Some(OutputGate::Sigmoid) => {
            // Each head's query rows, then its gate rows.
            let (heads, head_dim) = (config.num_heads, config.head_dim);
            let both = w.matrix(&p("self_attn.q_proj.weight"))?;
            let hidden = both.dim(1)?;
            let both = both.reshape((heads, 2, head_dim, hidden))?;
            let half = |which: usize| -> Result<Linear> {
                let rows = both
                    .narrow(1, which, 1)?
                    .reshape((heads * head_dim, hidden))?;
                Ok(Linear::new(
                    Arc::new(Matrix::Dense(rows.contiguous()?)),
                    None,
                ))
            };
            let (k, v) = (
                w.linear(&p("self_attn.k_proj"))?,
                w.linear(&p("self_attn.v_proj"))?,
            );
            (Projections::separate(vec![half(0)?, k, v]), Some(half(1)?))
        }
        gate => (
            w.projections(&[
                p("self_attn.q_proj"),
                p("self_attn.k_proj"),
                p("self_attn.v_proj"),
            ])?,
            gate.map(|_| w.linear(&p("self_attn.gate_proj")))
                .transpose()?,
        ),
    };
    Ok(Attention {
        qkv,
        qk_norm,
        gate,
        o: w.linear(&p("self_attn.o_proj"))?,
    })
}

/// Layer `i`'s Gated DeltaNet, converted as llama.cpp's converter does: value heads from
/// transformers' grouped order (value head `k r + j` reads key head `k`) to the tiled order
/// the engine computes in (value head `j K + k`), `-exp(A_log)`.
fn delta_net(
    w: &Weights,
    config: &ModelConfig,
    linear: &LinearAttention,
    i: usize,
) -> Result<DeltaNet> {
    let p = |name: &str| format!("model.layers.{i}.linear_attn.{name}");
    let (k_heads, v_heads) = (linear.key_heads, linear.value_heads);
    let per_key = v_heads / k_heads;
    // Tiled head `t` is grouped head `(t % K) r + t / K`.
    let grouped_of: Vec<u32> = (0..v_heads)
        .map(|t| ((t % k_heads) * per_key + t / k_heads) as u32)
        .collect();
    let device = &w.device;
    // The indices of `units`-sized blocks of `len` values, value heads reordered, after
    // `skip` values that stay in place.
    let reordered = |skip: usize, unit: usize| -> Result<Tensor> {
        let index: Vec<u32> = (0..skip as u32)
            .chain(grouped_of.iter().flat_map(|&g| {
                let start = skip as u32 + g * unit as u32;
                start..start + unit as u32
            }))
            .collect();
        Ok(Tensor::new(index, device)?)
    };
    let keys = 2 * k_heads * linear.key_dim;
    let value_rows = reordered(keys, linear.value_dim)?;
    let head_rows = reordered(0, linear.value_dim)?;
    let per_head = reordered(0, 1)?;
    let dense = |t: Tensor| Linear::new(Arc::new(Matrix::Dense(t)), None);
    // Each input projection's width, which the layer's host-side arithmetic slices by.
    let rows = |name: &str, index: &Tensor| -> Result<Linear> {
        let weight = w.matrix(&p(name))?;
        let want = [index.elem_count(), config.hidden_size];
        if weight.dims() != want {
            return Err(EngineError::CorruptModel {
                path: w.folder.clone(),
                reason: format!(
                    "tensor `{}` has shape {:?}, but its sizes need {want:?}",
                    p(name),
                    weight.dims()
                ),
            });
        }
        Ok(dense(weight.index_select(index, 0)?))
    };
    let conv = w.tensor(&p("conv1d.weight"))?;
    let conv = conv.reshape((conv.dim(0)?, conv.elem_count() / conv.dim(0)?))?;
    let a = w
        .tensor(&p("A_log"))?
        .index_select(&per_head, 0)?
        .exp()?
        .neg()?;
    let inputs = Projections::separate(vec![
        rows("in_proj_qkv.weight", &value_rows)?,
        rows("in_proj_z.weight", &head_rows)?,
        rows("in_proj_b.weight", &per_head)?,
        rows("in_proj_a.weight", &per_head)?,
    ]);
    let out = w
        .matrix(&p("out_proj.weight"))?
        .index_select(&head_rows, 1)?;
    DeltaNet::new(
        DeltaNetWeights {
            inputs,
            conv: host_values(&conv.index_select(&value_rows, 0)?)?,
            dt_bias: host_values(&w.tensor(&p("dt_bias"))?.index_select(&per_head, 0)?)?,
            a: host_values(&a)?,
            norm: host_values(&w.tensor(&p("norm.weight"))?)?,
            out: dense(out.contiguous()?),
        },
        linear,
        config.rms_norm_eps,
        &w.folder,
        &w.device,
    )
}
