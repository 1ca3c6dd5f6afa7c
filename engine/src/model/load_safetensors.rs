//! Building a [`Model`] from a Hugging Face folder: `config.json` and one or more
//! `*.safetensors` files (memory-mapped; weights dense in f32 on CPU for exactness, bf16/f16 kept on GPUs).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};

use super::config::{ModelConfig, QkNorm};
use super::linear::{Linear, Matrix};
use super::projections::{stacked_bias, Projections};
use super::{Attention, Block, Mixer, Model, QkNormWeights};
use crate::error::{EngineError, Result};

struct Weights {
    tensors: MmapedSafetensors,
    folder: PathBuf,
    device: Device,
}

impl Weights {
    fn has(&self, name: &str) -> bool {
        self.tensors.get(name).is_ok()
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
        Ok(self.tensors.load(name, &self.device)?)
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
        let qk_norm = if config.switches.qk_norm == QkNorm::None {
            None
        } else {
            let q = w.tensor(&p("self_attn.q_norm.weight"))?;
            let k = w.tensor(&p("self_attn.k_norm.weight"))?;
            Some(QkNormWeights::new(&config, q, k, folder)?)
        };
        let gate = if config.switches.output_gate.is_some() {
            Some(w.linear(&p("self_attn.gate_proj"))?)
        } else {
            None
        };
        blocks.push(Block {
            attn_norm: w.tensor(&p("input_layernorm.weight"))?,
            mixer: Mixer::Attention(Attention {
                qkv: w.projections(&[
                    p("self_attn.q_proj"),
                    p("self_attn.k_proj"),
                    p("self_attn.v_proj"),
                ])?,
                qk_norm,
                gate,
                o: w.linear(&p("self_attn.o_proj"))?,
            }),
            mlp_norm: w.tensor(&p("post_attention_layernorm.weight"))?,
            gate_up: w.projections(&[p("mlp.gate_proj"), p("mlp.up_proj")])?,
            down: w.linear(&p("mlp.down_proj"))?,
        });
    }
    let final_norm = w.tensor("model.norm.weight")?;
    let lm_head = if w.has("lm_head.weight") {
        w.linear("lm_head")?
    } else {
        Linear::new(embed.clone(), None)
    };
    Model::from_parts(config, embed, blocks, final_norm, lm_head, device)
}
