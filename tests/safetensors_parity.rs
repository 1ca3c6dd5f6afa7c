//! The Hugging Face (safetensors) path against the GGUF path: one small random qwen2 model is
//! written in both formats with identical f32 weights; both loaders must give the same logits.
//! The GGUF path is itself checked against llama.cpp (llamacpp_parity), which makes it the
//! trusted reference here.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use k2_engine::gguf::GgufFile;
use k2_engine::model::{load_gguf, load_safetensors, LogitsFor, Model};

const VOCAB: usize = 96;
const HIDDEN: usize = 64;
const FFN: usize = 128;
const LAYERS: usize = 2;
const HEADS: usize = 4;
const KV_HEADS: usize = 2;
const HEAD_DIM: usize = HIDDEN / HEADS;
const CONTEXT: usize = 256;

/// (Hugging Face name, GGUF name, shape) of every tensor.
fn tensor_names(tied: bool) -> Vec<(String, String, Vec<usize>)> {
    let mut names = vec![
        (
            "model.embed_tokens.weight".into(),
            "token_embd.weight".into(),
            vec![VOCAB, HIDDEN],
        ),
        (
            "model.norm.weight".into(),
            "output_norm.weight".into(),
            vec![HIDDEN],
        ),
    ];
    if !tied {
        names.push((
            "lm_head.weight".into(),
            "output.weight".into(),
            vec![VOCAB, HIDDEN],
        ));
    }
    for i in 0..LAYERS {
        let hf = |n: &str| format!("model.layers.{i}.{n}");
        let gg = |n: &str| format!("blk.{i}.{n}");
        let kv = KV_HEADS * HEAD_DIM;
        for (h, g, shape) in [
            ("input_layernorm.weight", "attn_norm.weight", vec![HIDDEN]),
            (
                "self_attn.q_proj.weight",
                "attn_q.weight",
                vec![HIDDEN, HIDDEN],
            ),
            ("self_attn.q_proj.bias", "attn_q.bias", vec![HIDDEN]),
            ("self_attn.k_proj.weight", "attn_k.weight", vec![kv, HIDDEN]),
            ("self_attn.k_proj.bias", "attn_k.bias", vec![kv]),
            ("self_attn.v_proj.weight", "attn_v.weight", vec![kv, HIDDEN]),
            ("self_attn.v_proj.bias", "attn_v.bias", vec![kv]),
            (
                "self_attn.o_proj.weight",
                "attn_output.weight",
                vec![HIDDEN, HIDDEN],
            ),
            (
                "post_attention_layernorm.weight",
                "ffn_norm.weight",
                vec![HIDDEN],
            ),
            ("mlp.gate_proj.weight", "ffn_gate.weight", vec![FFN, HIDDEN]),
            ("mlp.up_proj.weight", "ffn_up.weight", vec![FFN, HIDDEN]),
            ("mlp.down_proj.weight", "ffn_down.weight", vec![HIDDEN, FFN]),
        ] {
            names.push((hf(h), gg(g), shape));
        }
    }
    names
}

fn random_weights(tied: bool) -> Vec<(String, String, Tensor)> {
    tensor_names(tied)
        .into_iter()
        .map(|(hf, gg, shape)| {
            let t = if hf.ends_with("norm.weight") {
                (Tensor::randn(0f32, 0.1, shape.as_slice(), &Device::Cpu).unwrap() + 1.0).unwrap()
            } else {
                Tensor::randn(0f32, 0.2, shape.as_slice(), &Device::Cpu).unwrap()
            };
            (hf, gg, t)
        })
        .collect()
}

fn write_hf_folder(dir: &Path, weights: &[(String, String, Tensor)]) {
    std::fs::create_dir_all(dir).unwrap();
    let config = serde_json::json!({
        "model_type": "qwen2", "vocab_size": VOCAB, "hidden_size": HIDDEN,
        "intermediate_size": FFN, "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS,
        "rope_theta": 1000000.0, "rms_norm_eps": 1e-6, "max_position_embeddings": CONTEXT,
        "torch_dtype": "bfloat16"
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    // Stored as bf16, the way real checkpoints ship; the GGUF gets the same rounded values.
    let tensors: HashMap<String, Tensor> = weights
        .iter()
        .map(|(hf, _, t)| (hf.clone(), t.to_dtype(DType::BF16).unwrap()))
        .collect();
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors")).unwrap();
}

fn write_gguf(path: &Path, weights: &[(String, String, Tensor)]) {
    let u32v = |v: usize| Value::U32(v as u32);
    let metadata: Vec<(&str, Value)> = vec![
        ("general.architecture", Value::String("qwen2".into())),
        ("qwen2.embedding_length", u32v(HIDDEN)),
        ("qwen2.feed_forward_length", u32v(FFN)),
        ("qwen2.block_count", u32v(LAYERS)),
        ("qwen2.attention.head_count", u32v(HEADS)),
        ("qwen2.attention.head_count_kv", u32v(KV_HEADS)),
        ("qwen2.rope.freq_base", Value::F32(1_000_000.0)),
        ("qwen2.attention.layer_norm_rms_epsilon", Value::F32(1e-6)),
        ("qwen2.context_length", u32v(CONTEXT)),
    ];
    let tensors: Vec<(String, QTensor)> = weights
        .iter()
        .map(|(_, gg, t)| {
            let rounded = t
                .to_dtype(DType::BF16)
                .unwrap()
                .to_dtype(DType::F32)
                .unwrap();
            (
                gg.clone(),
                QTensor::quantize(&rounded, GgmlDType::F32).unwrap(),
            )
        })
        .collect();
    let mut file = std::fs::File::create(path).unwrap();
    let md: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
    let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    gguf_file::write(&mut file, &md, &ts).unwrap();
}

fn all_logits(model: &Model, tokens: &[u32]) -> Vec<Vec<f32>> {
    let mut cache = model.new_cache(None);
    cache.add_row().unwrap();
    // A prefill, then single steps: exercises both the masked and the cached paths.
    let (prefix, rest) = tokens.split_at(tokens.len() / 2);
    let mut rows = model
        .forward(&mut cache, &[prefix], LogitsFor::All)
        .unwrap()[0]
        .to_vec2::<f32>()
        .unwrap();
    for &t in rest {
        rows.extend(
            model.forward(&mut cache, &[&[t]], LogitsFor::All).unwrap()[0]
                .to_vec2::<f32>()
                .unwrap(),
        );
    }
    rows
}

fn parity(tied: bool) {
    let dir = std::env::temp_dir().join(format!(
        "k2-safetensors-parity-{}-{tied}",
        std::process::id()
    ));
    let weights = random_weights(tied);
    write_hf_folder(&dir.join("hf"), &weights);
    write_gguf(&dir.join("model.gguf"), &weights);

    let hf = load_safetensors(&dir.join("hf"), &Device::Cpu).unwrap();
    let gguf = GgufFile::open(&dir.join("model.gguf")).unwrap();
    let gg = load_gguf(&gguf, &Device::Cpu, &mut |_| {}).unwrap();
    assert_eq!(hf.config(), gg.config());

    let tokens: Vec<u32> = (0..40).map(|i| (i * 37 + 5) % VOCAB as u32).collect();
    let a = all_logits(&hf, &tokens);
    let b = all_logits(&gg, &tokens);
    assert_eq!(a.len(), tokens.len());
    let mut worst = 0f32;
    for (ra, rb) in a.iter().zip(&b) {
        for (x, y) in ra.iter().zip(rb) {
            worst = worst.max((x - y).abs());
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        worst < 1e-3,
        "safetensors and GGUF logits differ by up to {worst}"
    );
}

#[test]
fn safetensors_and_gguf_agree_with_tied_embeddings() {
    parity(true);
}

#[test]
fn safetensors_and_gguf_agree_with_separate_output_matrix() {
    parity(false);
}
