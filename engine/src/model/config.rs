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
    /// Qwen3 (dense): per-head RMS norm of queries and keys, explicit head size.
    Qwen3,
    /// K2 Horizon (dense sizes): grouped RMS norm, explicit head size, NEOX rotary pairs on
    /// a llama tensor layout, YaRN on the small size.
    K2Horizon,
    /// SmolLM3: a Llama block with no rotary embedding on every fourth layer (NoPE).
    SmolLm3,
    /// IBM Granite 3.x (dense): a Llama block with scalar multipliers on the embeddings, the
    /// residual branches, the attention scores and the logits.
    Granite,
    /// Qwen3.5 (hybrid): three of every four layers are Gated DeltaNet linear attention with a
    /// recurrent state ([`LinearAttention`]), the fourth gated full attention (a sigmoid gate
    /// from a double-width query projection, partial rotary embedding).
    Qwen35,
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
/// Not in the table because each file says for itself (see [`BlockSwitches`]): whether the
/// output matrix is tied to the embedding table (both loaders use `output.weight` /
/// `lm_head.weight` when present, the embedding otherwise), whether a projection has a bias
/// and whether queries and keys are normalized (loaders take the tensors the file has), the
/// norm groups, the rotary scaling and the attention output gate (its metadata).
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
    /// Files of this architecture that do not list their NoPE layers skip rotary embedding
    /// on every n-th layer (layers n-1, 2n-1, ...): llama.cpp fixes the interval per
    /// architecture (its GGUF files carry no key for it), transformers defaults
    /// `no_rope_layer_interval` to it. A `config.json` with `no_rope_layers` says for itself.
    pub default_nope_interval: Option<usize>,
}

/// Every supported architecture, one row each.
pub const ARCHITECTURES: &[ArchitectureTraits] = &[
    ArchitectureTraits {
        architecture: Architecture::Qwen2,
        name: "qwen2",
        hf_model_type: Some("qwen2"),
        qkv_bias: true,
        gguf_rope_style: RopeStyle::Halves,
        default_nope_interval: None,
    },
    ArchitectureTraits {
        architecture: Architecture::Llama,
        name: "llama",
        hf_model_type: None,
        qkv_bias: false,
        gguf_rope_style: RopeStyle::Interleaved,
        default_nope_interval: None,
    },
    ArchitectureTraits {
        architecture: Architecture::Qwen3,
        name: "qwen3",
        hf_model_type: Some("qwen3"),
        qkv_bias: false,
        gguf_rope_style: RopeStyle::Halves,
        default_nope_interval: None,
    },
    ArchitectureTraits {
        architecture: Architecture::K2Horizon,
        name: "k2-horizon",
        hf_model_type: Some("k2_horizon"),
        qkv_bias: false,
        // llama.cpp's converter keeps K2 Horizon's q/k rows unpermuted (NEOX rope): loading
        // it as `llama` pairs the wrong dimensions and generates nonsense.
        gguf_rope_style: RopeStyle::Halves,
        default_nope_interval: None,
    },
    ArchitectureTraits {
        architecture: Architecture::SmolLm3,
        name: "smollm3",
        hf_model_type: Some("smollm3"),
        qkv_bias: false,
        // llama.cpp's converter permutes SmolLM3's q/k rows as it does Llama's.
        gguf_rope_style: RopeStyle::Interleaved,
        // llama.cpp's `smollm3`: rotary embedding on layer i unless (i + 1) % 4 == 0.
        default_nope_interval: Some(4),
    },
    ArchitectureTraits {
        architecture: Architecture::Granite,
        name: "granite",
        hf_model_type: Some("granite"),
        qkv_bias: false,
        gguf_rope_style: RopeStyle::Interleaved,
        default_nope_interval: None,
    },
    ArchitectureTraits {
        architecture: Architecture::Qwen35,
        name: "qwen35",
        hf_model_type: Some("qwen3_5_text"),
        qkv_bias: false,
        gguf_rope_style: RopeStyle::Halves,
        default_nope_interval: None,
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

/// How queries and keys are normalized after their projections, before rotary embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QkNorm {
    #[default]
    None,
    /// RMS norm over each head with one `[head_dim]` weight all heads share (Qwen3).
    Shared,
    /// RMS norm over each head with a weight of its own, `[heads * head_dim]` (K2 Horizon's
    /// optional form).
    PerHead,
}

/// How rotary frequencies are stretched to reach past the context the model was trained on.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum RopeScaling {
    #[default]
    None,
    /// Every position divided by `factor`.
    Linear { factor: f32 },
    /// YaRN: high frequencies kept, low ones interpolated by `factor`, a ramp between the
    /// dimensions that turn `beta_fast` and `beta_slow` times over `original_context`
    /// positions; cos and sin scaled by `attention_factor`.
    Yarn {
        factor: f32,
        original_context: usize,
        beta_fast: f32,
        beta_slow: f32,
        attention_factor: f32,
    },
    /// Llama 3.1's: wavelengths beyond `original_context / low_freq_factor` divided by
    /// `factor`, shorter than `original_context / high_freq_factor` kept, smooth between.
    Llama3 {
        factor: f32,
        low_freq_factor: f32,
        high_freq_factor: f32,
        original_context: usize,
    },
}

impl RopeScaling {
    /// YaRN's default attention factor for a stretch of `factor`: `0.1 ln(factor) + 1`.
    pub fn yarn_default_attention_factor(factor: f32) -> f32 {
        if factor <= 1.0 {
            1.0
        } else {
            0.1 * factor.ln() + 1.0
        }
    }
}

/// The switches of the one llama-style block every architecture runs: what sets a model
/// apart beyond its sizes. The defaults are a plain Llama block.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockSwitches {
    pub qk_norm: QkNorm,
    /// The RMS norms (before attention, before the MLP, before the output) normalize this
    /// many equal slices of the hidden vector separately, then apply one full-width weight.
    pub norm_groups: usize,
    pub rope_scaling: RopeScaling,
    /// The attention output (all heads, concatenated) is multiplied element by element by a
    /// gate computed from the normalized block input `h`, before the output projection.
    pub output_gate: Option<OutputGate>,
    /// Layers whose attention uses no rotary embedding (NoPE).
    pub nope_layers: Vec<usize>,
    pub multipliers: Multipliers,
    /// Rotary embedding turns only the first this many dimensions of each head (NEOX pairs
    /// within them); `None`: all of them.
    pub rotary_dim: Option<usize>,
    /// Hybrid models: which layers are linear attention, and its sizes.
    pub linear_attention: Option<LinearAttention>,
}

/// The attention output gate's activation of `W_gate h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputGate {
    /// `log2(1 + 2^x)`, a softplus with β = ln 2 (K2 Horizon's optional gate, its own matrix).
    SoftplusBase2,
    /// `sigmoid(x)` (Qwen3.5: the second half of each head's double-width query projection).
    Sigmoid,
}

/// Gated DeltaNet layers (linear attention with a recurrent state, see `delta_rule`):
/// which layers they are and their sizes. Value head `h` reads key head `h % key_heads`
/// (llama.cpp's tiled order, which its converter writes and the safetensors loader produces).
#[derive(Debug, Clone, PartialEq)]
pub struct LinearAttention {
    /// One flag per layer: true where the layer is linear attention.
    pub recurrent: Vec<bool>,
    pub key_heads: usize,
    pub value_heads: usize,
    pub key_dim: usize,
    pub value_dim: usize,
    /// Taps of the causal depthwise convolution over q, k and v (its state keeps one fewer).
    pub conv_taps: usize,
}

impl LinearAttention {
    /// Channels of the convolution: queries, keys and values of every head.
    pub fn conv_channels(&self) -> usize {
        2 * self.key_heads * self.key_dim + self.value_heads * self.value_dim
    }

    pub fn is_recurrent(&self, layer: usize) -> bool {
        self.recurrent.get(layer).copied().unwrap_or(false)
    }
}

impl Default for BlockSwitches {
    fn default() -> Self {
        BlockSwitches {
            qk_norm: QkNorm::None,
            norm_groups: 1,
            rope_scaling: RopeScaling::None,
            output_gate: None,
            nope_layers: Vec::new(),
            multipliers: Multipliers::default(),
            rotary_dim: None,
            linear_attention: None,
        }
    }
}

/// Scalar multipliers of the block (Granite's `*_multiplier` / llama.cpp's `*_scale`). The
/// defaults change nothing, and the forward pass skips a multiplier equal to its default, so
/// models without them compute exactly what they did before these existed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Multipliers {
    /// The embedding rows are multiplied by this before the first block.
    pub embedding: f32,
    /// The attention's and the MLP's outputs are multiplied by this before each joins the
    /// residual stream.
    pub residual: f32,
    /// Attention scores are `q·k` times this; `None`: `1/sqrt(head_dim)`.
    pub attention: Option<f32>,
    /// The logits are divided by this.
    pub logits_divisor: f32,
}

impl Default for Multipliers {
    fn default() -> Self {
        Multipliers {
            embedding: 1.0,
            residual: 1.0,
            attention: None,
            logits_divisor: 1.0,
        }
    }
}

impl Multipliers {
    /// Whether every multiplier is a finite number other than zero.
    fn in_range(&self) -> bool {
        [
            self.embedding,
            self.residual,
            self.attention.unwrap_or(1.0),
            self.logits_divisor,
        ]
        .iter()
        .all(|v| v.is_finite() && *v != 0.0)
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
    pub switches: BlockSwitches,
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
        // Multi-token-prediction layers follow the model's own and are not run.
        let blocks = gguf.require_u64(&key("block_count"))?;
        let mtp_layers = gguf.get_u64(&key("nextn_predict_layers")).unwrap_or(0);
        let num_layers = layer_count(&gguf.path, blocks.saturating_sub(mtp_layers))?;
        let hybrid = architecture == Architecture::Qwen35;
        let declared_context = gguf.get_u64(&key("context_length")).unwrap_or(4096);
        let config = ModelConfig {
            architecture,
            vocab_size,
            hidden_size,
            intermediate_size: gguf.require_u64(&key("feed_forward_length"))? as usize,
            num_layers,
            num_heads,
            num_kv_heads,
            head_dim,
            rope_theta: gguf.get_f64(&key("rope.freq_base")).unwrap_or(10_000.0) as f32,
            rope_style: architecture.traits().gguf_rope_style,
            rms_norm_eps: gguf
                .get_f64(&key("attention.layer_norm_rms_epsilon"))
                .unwrap_or(1e-6) as f32,
            context_length: usable_context(&gguf.path, declared_context)?,
            switches: BlockSwitches {
                qk_norm: gguf_qk_norm(gguf, num_layers, num_heads, head_dim),
                // llama.cpp reads 0 as "not grouped".
                norm_groups: gguf
                    .get_u64(&key("attention.group_norm_groups"))
                    .unwrap_or(1)
                    .max(1) as usize,
                rope_scaling: gguf_rope_scaling(gguf, &key),
                // Qwen3.5's `attn_gate` is its linear layers' output gate; its attention gate
                // is half of `attn_q`.
                output_gate: if hybrid {
                    Some(OutputGate::Sigmoid)
                } else {
                    gguf.content
                        .tensor_infos
                        .contains_key("blk.0.attn_gate.weight")
                        .then_some(OutputGate::SoftplusBase2)
                },
                nope_layers: every_nth_layer(
                    architecture.traits().default_nope_interval,
                    num_layers,
                ),
                multipliers: gguf_multipliers(gguf, &key),
                rotary_dim: None,
                linear_attention: match hybrid {
                    true => Some(gguf_linear_attention(gguf, &key, num_layers)?),
                    false => None,
                },
            },
        };
        config.validate(&gguf.path)?;
        let mut config = config;
        if let Some(rotated) = gguf.get_u64(&key("rope.dimension_count")) {
            config.switches.rotary_dim =
                rotary_dim(&gguf.path, architecture, rotated as usize, head_dim)?;
        }
        Ok(config)
    }

    pub fn from_hf_config(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| EngineError::io(path, e))?;
        let invalid = |e: serde_json::Error| EngineError::NotAModel {
            path: path.to_owned(),
            reason: format!("config.json is not a valid model configuration ({e})"),
        };
        let json: serde_json::Value = serde_json::from_str(&text).map_err(invalid)?;
        // A multimodal checkpoint (Qwen3.5's) describes its language model in `text_config`.
        let json = match json.get("text_config") {
            Some(serde_json::Value::Object(text)) => {
                let mut text = text.clone();
                if let Some(outer) = json.get("model_type").and_then(|t| t.as_str()) {
                    text.entry("model_type")
                        .or_insert_with(|| format!("{outer}_text").into());
                }
                serde_json::Value::Object(text)
            }
            _ => json,
        };
        let hf: HfConfig = serde_json::from_value(json).map_err(invalid)?;
        let arch_name = hf.model_type.as_deref().unwrap_or("unknown");
        let architecture = Architecture::from_hf_model_type(arch_name).ok_or_else(|| {
            EngineError::UnsupportedArchitecture {
                path: path.to_owned(),
                arch: arch_name.to_owned(),
            }
        })?;
        let head_dim = hf
            .head_dim
            .unwrap_or(hf.hidden_size / hf.num_attention_heads.max(1));
        let rope = hf.rope_parameters.as_ref().or(hf.rope_scaling.as_ref());
        let rope_theta = hf
            .rope_theta
            .or_else(|| rope.and_then(|r| r.rope_theta))
            .unwrap_or(10_000.0);
        let context_length = hf.max_position_embeddings.unwrap_or(4096);
        layer_count(path, hf.num_hidden_layers as u64)?;
        let config = ModelConfig {
            architecture,
            vocab_size: hf.vocab_size,
            hidden_size: hf.hidden_size,
            intermediate_size: hf.intermediate_size,
            num_layers: hf.num_hidden_layers,
            num_heads: hf.num_attention_heads,
            num_kv_heads: hf.num_key_value_heads.unwrap_or(hf.num_attention_heads),
            head_dim,
            rope_theta: rope_theta as f32,
            // Hugging Face checkpoints keep q/k rows unpermuted whatever the family.
            rope_style: RopeStyle::Halves,
            rms_norm_eps: hf.rms_norm_eps.unwrap_or(1e-6) as f32,
            context_length: usable_context(path, context_length as u64)?,
            switches: BlockSwitches {
                qk_norm: match architecture {
                    Architecture::Qwen3 | Architecture::Qwen35 => QkNorm::Shared,
                    _ if hf.query_key_norm.unwrap_or(false) => QkNorm::PerHead,
                    _ => QkNorm::None,
                },
                norm_groups: hf.layernorm_num_groups.unwrap_or(1).max(1),
                rope_scaling: rope
                    .map(|r| r.scaling(context_length))
                    .transpose()
                    .map_err(|reason| EngineError::NotAModel {
                        path: path.to_owned(),
                        reason,
                    })?
                    .unwrap_or_default(),
                output_gate: match hf.attention_gate_func.as_deref() {
                    None if architecture == Architecture::Qwen35 => Some(OutputGate::Sigmoid),
                    None => None,
                    Some("softplus") => Some(OutputGate::SoftplusBase2),
                    Some(other) => {
                        return Err(EngineError::NotAModel {
                            path: path.to_owned(),
                            reason: format!("attention gate `{other}` is not supported"),
                        })
                    }
                },
                nope_layers: hf_nope_layers(&hf, architecture, path)?,
                multipliers: Multipliers {
                    embedding: hf.embedding_multiplier.unwrap_or(1.0),
                    residual: hf.residual_multiplier.unwrap_or(1.0),
                    attention: hf.attention_multiplier,
                    logits_divisor: hf.logits_scaling.unwrap_or(1.0),
                },
                rotary_dim: None,
                linear_attention: match architecture {
                    Architecture::Qwen35 => Some(hf_linear_attention(&hf, path)?),
                    _ => None,
                },
            },
        };
        config.validate(path)?;
        let mut config = config;
        let partial = rope
            .and_then(|r| r.partial_rotary_factor)
            .map(|f| (head_dim as f64 * f64::from(f)) as usize);
        if let Some(rotated) = hf.rope_head_dim.or(partial) {
            config.switches.rotary_dim = rotary_dim(path, architecture, rotated, head_dim)?;
        }
        Ok(config)
    }

    /// The GGUF tensor directory bears out the sizes the metadata declares: an embedding
    /// table of the hidden size, a block of tensors for every declared layer and none beyond,
    /// projections of the declared head counts and feed-forward size. Checked before any
    /// weight is read, so a count that disagrees with the file is reported as such instead of
    /// sizing the model.
    pub(crate) fn check_gguf_tensors(&self, gguf: &GgufFile) -> Result<()> {
        let bad = |reason: String| EngineError::CorruptModel {
            path: gguf.path.clone(),
            reason,
        };
        let dims = |name: &str| {
            gguf.content
                .tensor_infos
                .get(name)
                .map(|t| t.shape.dims().to_vec())
        };
        let layers = self.num_layers;
        for layer in 0..layers {
            let norm = format!("blk.{layer}.attn_norm.weight");
            match dims(&norm) {
                Some(d) if d == [self.hidden_size] => {}
                Some(d) => {
                    return Err(bad(format!(
                        "tensor `{norm}` has shape {d:?}, not its hidden size {}",
                        self.hidden_size
                    )))
                }
                None => {
                    return Err(bad(format!(
                        "it declares {layers} layers but has no tensor `{norm}`"
                    )))
                }
            }
        }
        // Multi-token-prediction layers (not run) follow the model's own.
        let arch = self.architecture.name();
        let beyond = layers
            + gguf
                .get_u64(&format!("{arch}.nextn_predict_layers"))
                .unwrap_or(0) as usize;
        if dims(&format!("blk.{beyond}.attn_norm.weight")).is_some() {
            return Err(bad(format!(
                "it declares {beyond} layers but has tensors of layer {beyond} too"
            )));
        }
        // The first layer with attention (a hybrid's first layers are linear); a gate
        // taken from the query projection doubles its width.
        let attention = (0..layers)
            .find(|&l| !self.is_recurrent_layer(l))
            .unwrap_or(0);
        let query_width = match self.switches.output_gate {
            Some(OutputGate::Sigmoid) => 2,
            _ => 1,
        } * self.num_heads
            * self.head_dim;
        let (q_name, k_name) = (
            format!("blk.{attention}.attn_q.weight"),
            format!("blk.{attention}.attn_k.weight"),
        );
        let expected = [
            ("token_embd.weight", [self.vocab_size, self.hidden_size]),
            (q_name.as_str(), [query_width, self.hidden_size]),
            (
                k_name.as_str(),
                [self.num_kv_heads * self.head_dim, self.hidden_size],
            ),
            (
                "blk.0.ffn_down.weight",
                [self.hidden_size, self.intermediate_size],
            ),
        ];
        for (name, shape) in expected {
            match dims(name) {
                Some(d) if d == shape => {}
                Some(d) => {
                    return Err(bad(format!(
                        "tensor `{name}` has shape {d:?}, but its sizes (hidden {}, {} heads and \
                         {} key/value heads of {}, feed-forward {}, vocabulary {}) need {shape:?}",
                        self.hidden_size,
                        self.num_heads,
                        self.num_kv_heads,
                        self.head_dim,
                        self.intermediate_size,
                        self.vocab_size
                    )))
                }
                None => return Err(bad(format!("tensor `{name}` is missing"))),
            }
        }
        Ok(())
    }

    /// Whether `layer` is a linear-attention (recurrent) layer of a hybrid model.
    pub fn is_recurrent_layer(&self, layer: usize) -> bool {
        self.switches
            .linear_attention
            .as_ref()
            .is_some_and(|l| l.is_recurrent(layer))
    }

    fn validate(&self, path: &Path) -> Result<()> {
        let bad = |what: String| EngineError::CorruptModel {
            path: path.to_owned(),
            reason: what,
        };
        for (what, value, max) in [
            ("number of layers", self.num_layers, MAX_LAYERS),
            ("hidden size", self.hidden_size, MAX_HIDDEN),
            (
                "feed-forward size",
                self.intermediate_size,
                MAX_FEED_FORWARD,
            ),
            ("number of attention heads", self.num_heads, MAX_HEADS),
            ("number of key/value heads", self.num_kv_heads, MAX_HEADS),
            ("head size", self.head_dim, MAX_HEAD_DIM),
            ("vocabulary size", self.vocab_size, MAX_VOCAB),
        ] {
            in_range(path, what, value as u64, max)?;
        }
        if !(self.rms_norm_eps.is_finite() && self.rms_norm_eps > 0.0 && self.rms_norm_eps < 1.0) {
            return Err(bad(format!(
                "its norm epsilon {} is out of range (a small positive number such as 1e-6)",
                self.rms_norm_eps
            )));
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
        let groups = self.switches.norm_groups;
        if groups == 0 || !self.hidden_size.is_multiple_of(groups) {
            return Err(bad(format!(
                "a hidden size of {} cannot be normalized in {groups} equal groups",
                self.hidden_size
            )));
        }
        let stretch_ok = match self.switches.rope_scaling {
            RopeScaling::None => true,
            RopeScaling::Linear { factor } => factor.is_finite() && factor > 0.0,
            RopeScaling::Yarn {
                factor,
                original_context,
                beta_fast,
                beta_slow,
                attention_factor,
            } => {
                [factor, beta_fast, beta_slow, attention_factor]
                    .iter()
                    .all(|v| v.is_finite() && *v > 0.0)
                    && original_context > 0
            }
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_context,
            } => {
                [factor, low_freq_factor, high_freq_factor]
                    .iter()
                    .all(|v| v.is_finite() && *v > 0.0)
                    && high_freq_factor > low_freq_factor
                    && original_context > 0
            }
        };
        if !self.switches.multipliers.in_range() {
            return Err(bad(format!(
                "its multipliers {:?} are out of range",
                self.switches.multipliers
            )));
        }
        if let Some(layer) = self
            .switches
            .nope_layers
            .iter()
            .find(|&&l| l >= self.num_layers)
        {
            return Err(bad(format!(
                "it lists layer {layer} among {} as having no rotary embedding",
                self.num_layers
            )));
        }
        if !stretch_ok {
            return Err(bad(format!(
                "its rotary scaling {:?} is out of range",
                self.switches.rope_scaling
            )));
        }
        if let Some(linear) = &self.switches.linear_attention {
            for (what, value, max) in [
                (
                    "number of linear-attention key heads",
                    linear.key_heads,
                    MAX_HEADS,
                ),
                (
                    "number of linear-attention value heads",
                    linear.value_heads,
                    MAX_HEADS,
                ),
                ("linear-attention key size", linear.key_dim, MAX_HEAD_DIM),
                (
                    "linear-attention value size",
                    linear.value_dim,
                    MAX_HEAD_DIM,
                ),
                (
                    "number of convolution taps",
                    linear.conv_taps,
                    MAX_CONV_TAPS,
                ),
            ] {
                in_range(path, what, value as u64, max)?;
            }
            if !linear.value_heads.is_multiple_of(linear.key_heads) {
                return Err(bad(format!(
                    "{} linear-attention value heads cannot share {} key heads",
                    linear.value_heads, linear.key_heads
                )));
            }
            if linear.recurrent.len() != self.num_layers {
                return Err(bad(format!(
                    "it marks {} layers as linear or full attention, not its {}",
                    linear.recurrent.len(),
                    self.num_layers
                )));
            }
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 1.0) {
            return Err(bad(format!(
                "rotary base {} is out of range",
                self.rope_theta
            )));
        }
        Ok(())
    }
}

/// The longest context this engine runs: K2 Horizon declares 524,288 positions, whose rotary
/// tables alone would take 268 MB and whose cache no laptop holds; a tutor's runs stay far
/// below this.
pub const MAX_CONTEXT: usize = 131_072;

// The sizes a model may declare: far beyond any released model (the largest dense ones have
// ~130 layers, a hidden size of 16,384, 128 heads of up to 256 dimensions, vocabularies of
// ~260k tokens and contexts of ~10M positions) and far below sizes whose tables would exhaust
// memory. A damaged or hostile number is refused before anything is sized from it; what the
// sizes then need in memory is checked against the file's tensors and this machine
// (`crate::memory`).
const MAX_LAYERS: usize = 1024;
const MAX_HIDDEN: usize = 1 << 16;
const MAX_FEED_FORWARD: usize = 1 << 20;
const MAX_HEADS: usize = 1024;
const MAX_HEAD_DIM: usize = 1024;
const MAX_VOCAB: usize = 1 << 22;
const MAX_DECLARED_CONTEXT: usize = 1 << 24;
const MAX_CONV_TAPS: usize = 64;

/// `value` of the setting `what` where it lies in 1..=`max`, else why the model is refused.
fn in_range(path: &Path, what: &str, value: u64, max: usize) -> Result<usize> {
    match usize::try_from(value) {
        Ok(v) if (1..=max).contains(&v) => Ok(v),
        _ => Err(EngineError::CorruptModel {
            path: path.to_owned(),
            reason: format!(
                "its {what} is {value}, outside the range 1 to {max} this engine supports"
            ),
        }),
    }
}

/// The layer count, checked before anything is listed per layer.
fn layer_count(path: &Path, declared: u64) -> Result<usize> {
    in_range(path, "number of layers", declared, MAX_LAYERS)
}

/// The context a model declares, checked, and capped at what this engine runs.
fn usable_context(path: &Path, declared: u64) -> Result<usize> {
    let declared = in_range(path, "context length", declared, MAX_DECLARED_CONTEXT)?;
    Ok(declared.min(MAX_CONTEXT))
}

/// The rotary dimensions of a model that declares `rotated` of each head's `head_dim`:
/// `None` for all of them. Fewer are implemented as Qwen3.5 uses them (NEOX pairs within the
/// first `rotated`); other families that declare fewer are refused rather than run wrong.
fn rotary_dim(
    path: &Path,
    architecture: Architecture,
    rotated: usize,
    head_dim: usize,
) -> Result<Option<usize>> {
    if rotated == head_dim {
        return Ok(None);
    }
    let fits = rotated > 0 && rotated < head_dim && rotated.is_multiple_of(2);
    if architecture == Architecture::Qwen35 && fits {
        return Ok(Some(rotated));
    }
    Err(EngineError::NotAModel {
        path: path.to_owned(),
        reason: format!(
            "rotary embedding over {rotated} of each head's {head_dim} dimensions is not supported"
        ),
    })
}

/// Qwen3.5's linear-attention layout from llama.cpp's `{arch}.ssm.*` keys: which layers are
/// recurrent (`attention.recurrent_layers`, else all but every `full_attention_interval`-th).
fn gguf_linear_attention(
    gguf: &GgufFile,
    key: &dyn Fn(&str) -> String,
    layers: usize,
) -> Result<LinearAttention> {
    let bad = |reason: String| EngineError::CorruptModel {
        path: gguf.path.clone(),
        reason,
    };
    let recurrent = match gguf.get(&key("attention.recurrent_layers")) {
        Some(value) => {
            let flags = value
                .to_vec()
                .ok()
                .and_then(|v| {
                    v.iter()
                        .map(|f| f.to_bool().ok())
                        .collect::<Option<Vec<_>>>()
                })
                .ok_or_else(|| bad("its recurrent-layer list is not a list of booleans".into()))?;
            // The list also covers multi-token-prediction layers (never recurrent).
            if flags.len() < layers {
                return Err(bad(format!(
                    "its recurrent-layer list has {} entries for {layers} layers",
                    flags.len()
                )));
            }
            flags[..layers].to_vec()
        }
        None => {
            let interval = gguf.get_u64(&key("full_attention_interval")).unwrap_or(4);
            every_nth_flags(interval as usize, layers)
        }
    };
    let value_heads = gguf.require_u64(&key("ssm.time_step_rank"))? as usize;
    let inner = gguf.require_u64(&key("ssm.inner_size"))? as usize;
    let layout = LinearAttention {
        recurrent,
        key_heads: gguf.require_u64(&key("ssm.group_count"))? as usize,
        value_heads,
        key_dim: gguf.require_u64(&key("ssm.state_size"))? as usize,
        value_dim: inner / value_heads.max(1),
        conv_taps: gguf.require_u64(&key("ssm.conv_kernel"))? as usize,
    };
    if value_heads == 0 || !inner.is_multiple_of(value_heads) {
        return Err(bad(format!(
            "its linear attention's {inner} value dimensions do not split into {value_heads} heads"
        )));
    }
    Ok(layout)
}

/// Qwen3.5's linear-attention layout from a `config.json`.
fn hf_linear_attention(hf: &HfConfig, path: &Path) -> Result<LinearAttention> {
    let missing = |what: &str| EngineError::NotAModel {
        path: path.to_owned(),
        reason: format!("config.json lacks `{what}`, which a Qwen3.5 model needs"),
    };
    let recurrent = match &hf.layer_types {
        Some(types) => {
            if types.len() != hf.num_hidden_layers {
                return Err(EngineError::NotAModel {
                    path: path.to_owned(),
                    reason: format!(
                        "layer_types lists {} layers, not its {}",
                        types.len(),
                        hf.num_hidden_layers
                    ),
                });
            }
            types
                .iter()
                .map(|t| match t.as_str() {
                    "linear_attention" => Ok(true),
                    "full_attention" => Ok(false),
                    other => Err(EngineError::NotAModel {
                        path: path.to_owned(),
                        reason: format!("layer type `{other}` is not supported"),
                    }),
                })
                .collect::<Result<Vec<_>>>()?
        }
        None => every_nth_flags(
            hf.full_attention_interval.unwrap_or(4),
            hf.num_hidden_layers,
        ),
    };
    Ok(LinearAttention {
        recurrent,
        key_heads: hf
            .linear_num_key_heads
            .ok_or_else(|| missing("linear_num_key_heads"))?,
        value_heads: hf
            .linear_num_value_heads
            .ok_or_else(|| missing("linear_num_value_heads"))?,
        key_dim: hf
            .linear_key_head_dim
            .ok_or_else(|| missing("linear_key_head_dim"))?,
        value_dim: hf
            .linear_value_head_dim
            .ok_or_else(|| missing("linear_value_head_dim"))?,
        conv_taps: hf
            .linear_conv_kernel_dim
            .ok_or_else(|| missing("linear_conv_kernel_dim"))?,
    })
}

/// One flag per layer: false on every `interval`-th layer (n-1, 2n-1, ...), true elsewhere.
fn every_nth_flags(interval: usize, layers: usize) -> Vec<bool> {
    let full = every_nth_layer(Some(interval), layers);
    (0..layers).map(|i| !full.contains(&i)).collect()
}

/// The form of the q/k norms a GGUF file carries: their weights' length says whether heads
/// share one.
fn gguf_qk_norm(gguf: &GgufFile, layers: usize, heads: usize, head_dim: usize) -> QkNorm {
    // A hybrid's first layers have no attention: the first layer that has says.
    let infos = &gguf.content.tensor_infos;
    let Some(info) = (0..layers).find_map(|i| infos.get(&format!("blk.{i}.attn_q_norm.weight")))
    else {
        return QkNorm::None;
    };
    if info.shape.elem_count() == head_dim {
        QkNorm::Shared
    } else if info.shape.elem_count() == heads * head_dim {
        QkNorm::PerHead
    } else {
        // The loader reports the mismatch with the tensor's name.
        QkNorm::Shared
    }
}

/// Layers n-1, 2n-1, ... of `layers` (none without an interval).
fn every_nth_layer(interval: Option<usize>, layers: usize) -> Vec<usize> {
    match interval {
        Some(n) if n > 0 => (0..layers).filter(|i| (i + 1) % n == 0).collect(),
        _ => Vec::new(),
    }
}

/// The NoPE layers of a `config.json`: `no_rope_layers` (one 0 or 1 per layer, 1 = rotary
/// embedding), else every `no_rope_layer_interval`-th layer, else the architecture's default.
fn hf_nope_layers(hf: &HfConfig, architecture: Architecture, path: &Path) -> Result<Vec<usize>> {
    if let Some(flags) = &hf.no_rope_layers {
        if flags.len() != hf.num_hidden_layers || flags.iter().any(|&f| f > 1) {
            return Err(EngineError::NotAModel {
                path: path.to_owned(),
                reason: format!(
                    "no_rope_layers must hold a 0 or 1 for each of its {} layers",
                    hf.num_hidden_layers
                ),
            });
        }
        return Ok(flags
            .iter()
            .enumerate()
            .filter(|(_, &rotary)| rotary == 0)
            .map(|(i, _)| i)
            .collect());
    }
    let interval = hf
        .no_rope_layer_interval
        .or(architecture.traits().default_nope_interval);
    Ok(every_nth_layer(interval, hf.num_hidden_layers))
}

/// Scalar multipliers from llama.cpp's keys (`{arch}.embedding_scale`, `residual_scale`,
/// `attention.scale`, `logit_scale`), which it reads as absent where they are 0.
fn gguf_multipliers(gguf: &GgufFile, key: &dyn Fn(&str) -> String) -> Multipliers {
    let f = |k: &str| {
        gguf.get_f64(&key(k))
            .map(|v| v as f32)
            .filter(|&v| v != 0.0)
    };
    Multipliers {
        embedding: f("embedding_scale").unwrap_or(1.0),
        residual: f("residual_scale").unwrap_or(1.0),
        attention: f("attention.scale"),
        logits_divisor: f("logit_scale").unwrap_or(1.0),
    }
}

/// Rotary scaling from llama.cpp's `{arch}.rope.scaling.*` keys.
fn gguf_rope_scaling(gguf: &GgufFile, key: &dyn Fn(&str) -> String) -> RopeScaling {
    let f = |k: &str| gguf.get_f64(&key(k)).map(|v| v as f32);
    let factor = f("rope.scaling.factor").unwrap_or(1.0);
    let original_context = gguf
        .get_u64(&key("rope.scaling.original_context_length"))
        .unwrap_or(0) as usize;
    match gguf.get_str(&key("rope.scaling.type")) {
        Some("linear") if factor != 1.0 => RopeScaling::Linear { factor },
        Some("yarn") => RopeScaling::Yarn {
            factor,
            original_context,
            beta_fast: f("rope.scaling.yarn_beta_fast").unwrap_or(32.0),
            beta_slow: f("rope.scaling.yarn_beta_slow").unwrap_or(1.0),
            // llama.cpp scales cos and sin by YaRN's magnitude times the file's own factor.
            attention_factor: RopeScaling::yarn_default_attention_factor(factor)
                * f("rope.scaling.attn_factor").unwrap_or(1.0),
        },
        _ => RopeScaling::None,
    }
}

#[derive(Deserialize)]
struct HfConfig {
    model_type: Option<String>,
    head_dim: Option<usize>,
    /// Transformers before v5: `rope_scaling`; v5 moved it, with the base, to `rope_parameters`.
    rope_scaling: Option<HfRope>,
    rope_parameters: Option<HfRope>,
    /// K2 Horizon's switches: norm groups, per-head q/k norm, attention output gate.
    layernorm_num_groups: Option<usize>,
    query_key_norm: Option<bool>,
    attention_gate_func: Option<String>,
    /// SmolLM3's NoPE layers: a 0 (no rotary embedding) or 1 per layer, or an interval.
    no_rope_layers: Option<Vec<u8>>,
    no_rope_layer_interval: Option<usize>,
    /// Granite's multipliers.
    embedding_multiplier: Option<f32>,
    residual_multiplier: Option<f32>,
    attention_multiplier: Option<f32>,
    logits_scaling: Option<f32>,
    /// Rotary embedding over part of each head only (K2 Horizon's name for it).
    rope_head_dim: Option<usize>,
    /// Qwen3.5's linear attention.
    layer_types: Option<Vec<String>>,
    full_attention_interval: Option<usize>,
    linear_num_key_heads: Option<usize>,
    linear_num_value_heads: Option<usize>,
    linear_key_head_dim: Option<usize>,
    linear_value_head_dim: Option<usize>,
    linear_conv_kernel_dim: Option<usize>,
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

/// A `rope_scaling` / `rope_parameters` object of a `config.json`.
#[derive(Deserialize)]
struct HfRope {
    #[serde(alias = "type")]
    rope_type: Option<String>,
    rope_theta: Option<f64>,
    factor: Option<f32>,
    original_max_position_embeddings: Option<usize>,
    beta_fast: Option<f32>,
    beta_slow: Option<f32>,
    attention_factor: Option<f32>,
    low_freq_factor: Option<f32>,
    high_freq_factor: Option<f32>,
    partial_rotary_factor: Option<f32>,
}

impl HfRope {
    /// The scaling it describes (`max_positions`: the config's own window, which YaRN and
    /// Llama 3 stretch when the object names no original one).
    fn scaling(&self, max_positions: usize) -> std::result::Result<RopeScaling, String> {
        let factor = self.factor.unwrap_or(1.0);
        let original_context = self
            .original_max_position_embeddings
            .unwrap_or(max_positions);
        Ok(match self.rope_type.as_deref().unwrap_or("default") {
            "default" => RopeScaling::None,
            "linear" => RopeScaling::Linear { factor },
            "yarn" => RopeScaling::Yarn {
                factor,
                original_context,
                beta_fast: self.beta_fast.unwrap_or(32.0),
                beta_slow: self.beta_slow.unwrap_or(1.0),
                attention_factor: self
                    .attention_factor
                    .unwrap_or_else(|| RopeScaling::yarn_default_attention_factor(factor)),
            },
            "llama3" => RopeScaling::Llama3 {
                factor,
                low_freq_factor: self.low_freq_factor.unwrap_or(1.0),
                high_freq_factor: self.high_freq_factor.unwrap_or(4.0),
                original_context,
            },
            other => return Err(format!("rotary scaling `{other}` is not supported")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_architecture_has_one_row() {
        for arch in [
            Architecture::Qwen2,
            Architecture::Llama,
            Architecture::Qwen3,
            Architecture::K2Horizon,
            Architecture::SmolLm3,
            Architecture::Granite,
            Architecture::Qwen35,
        ] {
            let rows = ARCHITECTURES.iter().filter(|t| t.architecture == arch);
            assert_eq!(rows.count(), 1, "{arch:?}");
            assert_eq!(Architecture::parse(arch.name()), Some(arch));
        }
        assert_eq!(
            supported_architectures(),
            "qwen2, llama, qwen3, k2-horizon, smollm3, granite, qwen35"
        );
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
        assert_eq!(Architecture::parse("qwen35"), Some(Architecture::Qwen35));
        assert_eq!(Architecture::parse("qwen3next"), None);
        // K2 Horizon's GGUF files use llama's tensor names but NEOX pairs.
        let k2 = Architecture::K2Horizon.traits();
        assert_eq!(k2.gguf_rope_style, RopeStyle::Halves);
        assert_eq!(
            Architecture::from_hf_model_type("k2_horizon"),
            Some(Architecture::K2Horizon)
        );
    }

    #[test]
    fn unsupported_architecture_names_the_supported_ones() {
        let e = EngineError::UnsupportedArchitecture {
            path: "m.gguf".into(),
            arch: "mamba".into(),
        };
        assert_eq!(
            e.to_string(),
            "m.gguf: architecture `mamba` is not supported (supported: qwen2, llama, qwen3, k2-horizon, smollm3, granite, qwen35)"
        );
    }

    #[test]
    fn nope_layers_come_from_the_list_the_interval_or_the_row() {
        assert_eq!(every_nth_layer(Some(4), 9), vec![3, 7]);
        assert_eq!(every_nth_layer(None, 9), Vec::<usize>::new());
        let smol = Architecture::SmolLm3.traits();
        assert_eq!(smol.default_nope_interval, Some(4));
        assert_eq!(smol.gguf_rope_style, RopeStyle::Interleaved);
        for row in ARCHITECTURES.iter().filter(|t| t.name != "smollm3") {
            assert_eq!(row.default_nope_interval, None, "{}", row.name);
        }
        let write = |extra: &str| small_hf_config("smollm3", 6, extra);
        assert_eq!(write("").unwrap().switches.nope_layers, vec![3]);
        assert_eq!(
            write(r#", "no_rope_layer_interval": 2"#)
                .unwrap()
                .switches
                .nope_layers,
            vec![1, 3, 5]
        );
        assert_eq!(
            write(r#", "no_rope_layers": [0, 1, 1, 1, 1, 0]"#)
                .unwrap()
                .switches
                .nope_layers,
            vec![0, 5]
        );
        assert!(write(r#", "no_rope_layers": [1, 1]"#).is_err());
    }

    #[test]
    fn multipliers_default_to_nothing_and_are_read_from_config_json() {
        let m = Multipliers::default();
        assert_eq!((m.embedding, m.residual, m.logits_divisor), (1.0, 1.0, 1.0));
        assert_eq!(m.attention, None);
        let write = |extra: &str| small_hf_config("granite", 2, extra);
        let plain = write("").unwrap();
        assert_eq!(plain.switches.multipliers, Multipliers::default());
        assert!(plain.switches.nope_layers.is_empty());
        let scaled = write(
            r#", "embedding_multiplier": 12.0, "residual_multiplier": 0.22,
            "attention_multiplier": 0.015625, "logits_scaling": 8.0"#,
        )
        .unwrap();
        assert_eq!(
            scaled.switches.multipliers,
            Multipliers {
                embedding: 12.0,
                residual: 0.22,
                attention: Some(0.015625),
                logits_divisor: 8.0,
            }
        );
        assert!(write(r#", "logits_scaling": 0.0"#).is_err());
    }

    /// A tiny `config.json` of `model_type` with `layers` layers and the JSON members `extra`
    /// (each with a leading comma), read back through [`ModelConfig::from_hf_config`].
    fn small_hf_config(model_type: &str, layers: usize, extra: &str) -> Result<ModelConfig> {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            format!(
                r#"{{"model_type": "{model_type}", "vocab_size": 10, "hidden_size": 8,
                "intermediate_size": 16, "num_hidden_layers": {layers}, "num_attention_heads": 2,
                "rope_theta": 10000.0 {extra}}}"#
            ),
        )
        .expect("a writable temporary folder");
        ModelConfig::from_hf_config(&path)
    }
}
