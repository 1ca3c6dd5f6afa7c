//! The geometry of a decoder-only transformer, read from GGUF metadata or a Hugging Face
//! `config.json`. One struct for both so the forward pass never asks where a model came from.

use std::path::Path;

use serde::Deserialize;

use crate::error::{EngineError, Result};
use crate::gguf::GgufFile;

/// The architectures whose forward pass this engine implements. What sets one apart from
/// another lives in its row of [`ARCHITECTURES`]; code asks [`Architecture::traits`], never
/// matches on the variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// Qwen2 / Qwen2.5 (and K2-Think, DeepSeek-R1-Distill-Qwen).
    Qwen2,
    /// Llama family (SmolLM2).
    Llama,
}

/// How rotary embeddings pair up the dimensions of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// Pairs (i, i + d/2): Hugging Face layout, and GGUF qwen2.
    Halves,
    /// Pairs (2i, 2i + 1): GGUF llama, whose converter permutes q/k rows for it.
    Interleaved,
}

/// One architecture's differences from the others: one row of [`ARCHITECTURES`].
///
/// Not in the table because the file itself says: whether the output matrix is tied to the
/// embedding table (both loaders use `output.weight` / `lm_head.weight` when present, the
/// embedding otherwise), and whether a projection has a bias (loaders take the biases the
/// file has).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchitectureTraits {
    pub architecture: Architecture,
    /// GGUF `general.architecture`, also the prefix of its metadata keys
    /// (`qwen2.embedding_length`); the name shown to users.
    pub name: &'static str,
    /// `model_type` in a Hugging Face `config.json`, where safetensors loading supports it.
    pub hf_model_type: Option<&'static str>,
    /// Biases on the q/k/v projections (what synthetic models of the family get).
    pub qkv_bias: bool,
    /// RoPE pairing of GGUF files (Hugging Face files are always [`RopeStyle::Halves`]).
    pub gguf_rope_style: RopeStyle,
}

/// Every supported architecture, one row each.
pub const ARCHITECTURES: &[ArchitectureTraits] = &[
    ArchitectureTraits {
        architecture: Architecture::Qwen2,
        name: "qwen2",
        hf_model_type: Some("qwen2"),
        qkv_bias: true,
        gguf_rope_style: RopeStyle::Halves,
    },
    ArchitectureTraits {
        architecture: Architecture::Llama,
        name: "llama",
        hf_model_type: None,
        qkv_bias: false,
        gguf_rope_style: RopeStyle::Interleaved,
    },
];

/// The supported architectures' names, for messages: "qwen2, llama".
pub fn supported_architectures() -> String {
    ARCHITECTURES
        .iter()
        .map(|t| t.name)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Architecture {
    /// The architecture a GGUF `general.architecture` names.
    pub fn parse(name: &str) -> Option<Self> {
        ARCHITECTURES
            .iter()
            .find(|t| t.name == name)
            .map(|t| t.architecture)
    }

    /// The architecture a Hugging Face `model_type` names, where safetensors loading supports it.
    pub fn from_hf_model_type(model_type: &str) -> Option<Self> {
        ARCHITECTURES
            .iter()
            .find(|t| t.hf_model_type == Some(model_type))
            .map(|t| t.architecture)
    }

    /// This architecture's row of [`ARCHITECTURES`].
    pub fn traits(self) -> &'static ArchitectureTraits {
        ARCHITECTURES
            .iter()
            .find(|t| t.architecture == self)
            .expect("every architecture has a row in ARCHITECTURES")
    }

    pub fn name(self) -> &'static str {
        self.traits().name
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub architecture: Architecture,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub rope_theta: f32,
    pub rope_style: RopeStyle,
    pub rms_norm_eps: f32,
    /// The context length the model was trained for.
    pub context_length: usize,
}

impl ModelConfig {
    /// The widest input of any weight product: the MLP's down projection, or the attention's
    /// output projection or the hidden state where those are wider.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    pub(crate) fn widest_product_input(&self) -> usize {
        self.hidden_size
            .max(self.intermediate_size)
            .max(self.num_heads * self.head_dim)
    }

    pub fn from_gguf(gguf: &GgufFile) -> Result<Self> {
        let arch_name = gguf.architecture()?;
        let architecture =
            Architecture::parse(arch_name).ok_or_else(|| EngineError::UnsupportedArchitecture {
                path: gguf.path.clone(),
                arch: arch_name.to_owned(),
            })?;
        let key = |k: &str| format!("{arch_name}.{k}");
        let hidden_size = gguf.require_u64(&key("embedding_length"))? as usize;
        let num_heads = gguf.require_u64(&key("attention.head_count"))? as usize;
        let num_kv_heads = gguf
            .get_u64(&key("attention.head_count_kv"))
            .map(|v| v as usize)
            .unwrap_or(num_heads);
        let head_dim = gguf
            .get_u64(&key("attention.key_length"))
            .map(|v| v as usize)
            .unwrap_or(hidden_size / num_heads.max(1));
        let vocab_size = match gguf.get_u64(&key("vocab_size")) {
            Some(v) => v as usize,
            None => gguf
                .content
                .tensor_infos
                .get("token_embd.weight")
                .map(|t| t.shape.dims()[0])
                .ok_or_else(|| gguf.missing("token_embd.weight"))?,
        };
        let config = ModelConfig {
            architecture,
            vocab_size,
            hidden_size,
            intermediate_size: gguf.require_u64(&key("feed_forward_length"))? as usize,
            num_layers: gguf.require_u64(&key("block_count"))? as usize,
            num_heads,
            num_kv_heads,
            head_dim,
            rope_theta: gguf.get_f64(&key("rope.freq_base")).unwrap_or(10_000.0) as f32,
            rope_style: architecture.traits().gguf_rope_style,
            rms_norm_eps: gguf
                .get_f64(&key("attention.layer_norm_rms_epsilon"))
                .unwrap_or(1e-6) as f32,
            context_length: gguf.get_u64(&key("context_length")).unwrap_or(4096) as usize,
        };
        config.validate(&gguf.path)?;
        Ok(config)
    }

    pub fn from_hf_config(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| EngineError::io(path, e))?;
        let hf: HfConfig = serde_json::from_str(&text).map_err(|e| EngineError::NotAModel {
            path: path.to_owned(),
            reason: format!("config.json is not a valid model configuration ({e})"),
        })?;
        let arch_name = hf.model_type.as_deref().unwrap_or("unknown");
        let architecture = Architecture::from_hf_model_type(arch_name).ok_or_else(|| {
            EngineError::UnsupportedArchitecture {
                path: path.to_owned(),
                arch: arch_name.to_owned(),
            }
        })?;
        let config = ModelConfig {
            architecture,
            vocab_size: hf.vocab_size,
            hidden_size: hf.hidden_size,
            intermediate_size: hf.intermediate_size,
            num_layers: hf.num_hidden_layers,
            num_heads: hf.num_attention_heads,
            num_kv_heads: hf.num_key_value_heads.unwrap_or(hf.num_attention_heads),
            head_dim: hf.hidden_size / hf.num_attention_heads.max(1),
            rope_theta: hf.rope_theta.unwrap_or(10_000.0) as f32,
            // Hugging Face checkpoints keep q/k rows unpermuted whatever the family.
            rope_style: RopeStyle::Halves,
            rms_norm_eps: hf.rms_norm_eps.unwrap_or(1e-6) as f32,
            context_length: hf.max_position_embeddings.unwrap_or(4096),
        };
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<()> {
        let bad = |what: String| EngineError::CorruptModel {
            path: path.to_owned(),
            reason: what,
        };
        if self.num_heads == 0 || self.num_kv_heads == 0 || self.num_layers == 0 {
            return Err(bad("it declares zero heads or layers".into()));
        }
        if !self.num_heads.is_multiple_of(self.num_kv_heads) {
            return Err(bad(format!(
                "{} attention heads cannot share {} key/value heads",
                self.num_heads, self.num_kv_heads
            )));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(bad(format!("head size {} is odd", self.head_dim)));
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct HfConfig {
    model_type: Option<String>,
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    rope_theta: Option<f64>,
    rms_norm_eps: Option<f64>,
    max_position_embeddings: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_architecture_has_one_row() {
        for arch in [Architecture::Qwen2, Architecture::Llama] {
            let rows = ARCHITECTURES.iter().filter(|t| t.architecture == arch);
            assert_eq!(rows.count(), 1, "{arch:?}");
            assert_eq!(Architecture::parse(arch.name()), Some(arch));
        }
        assert_eq!(supported_architectures(), "qwen2, llama");
    }

    #[test]
    fn rows_keep_each_family_s_switches() {
        let qwen2 = Architecture::Qwen2.traits();
        assert!(qwen2.qkv_bias);
        assert_eq!(qwen2.gguf_rope_style, RopeStyle::Halves);
        assert_eq!(
            Architecture::from_hf_model_type("qwen2"),
            Some(Architecture::Qwen2)
        );
        let llama = Architecture::Llama.traits();
        assert!(!llama.qkv_bias);
        assert_eq!(llama.gguf_rope_style, RopeStyle::Interleaved);
        assert_eq!(Architecture::from_hf_model_type("llama"), None);
        assert_eq!(Architecture::parse("qwen3"), None);
    }

    #[test]
    fn unsupported_architecture_names_the_supported_ones() {
        let e = EngineError::UnsupportedArchitecture {
            path: "m.gguf".into(),
            arch: "mamba".into(),
        };
        assert_eq!(
            e.to_string(),
            "m.gguf: architecture `mamba` is not supported (supported: qwen2, llama)"
        );
    }
}
