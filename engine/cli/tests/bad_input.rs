//! Bad input gets a clear, specific error and a non-zero exit, never a panic.
//! Each case runs the real `k2` binary.

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};

const SMOLLM2: &str = "smollm2-135m-instruct-q4_1.gguf";

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("k2-bad-input-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn real_model(file: &str) -> PathBuf {
    let path = k2_engine::models_dir::models_dir().join(file);
    assert!(
        path.exists(),
        "test model {} is missing: run scripts/fetch-test-models.sh first",
        path.display()
    );
    path
}

/// Runs `k2 generate` on `model` and returns stderr, asserting a clean failure.
fn generate_fails(model: &Path, prompt_args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_k2"))
        .args([
            "generate",
            "--device",
            "cpu",
            "--max-tokens",
            "4",
            "--model",
        ])
        .arg(model)
        .args(prompt_args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "k2 should have failed; stderr: {stderr}"
    );
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "k2 panicked: {stderr}");
    assert!(stderr.starts_with("error: "), "stderr: {stderr}");
    stderr
}

fn tiny_tensor() -> QTensor {
    let t = Tensor::zeros((4, 32), candle_core::DType::F32, &Device::Cpu).unwrap();
    QTensor::quantize(&t, GgmlDType::F32).unwrap()
}

fn write_gguf(path: &Path, metadata: &[(&str, Value)], tensors: &[(&str, QTensor)]) {
    let mut file = std::fs::File::create(path).unwrap();
    let md: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
    let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (*k, v)).collect();
    gguf_file::write(&mut file, &md, &ts).unwrap();
}

#[test]
fn a_truncated_file_is_reported_as_truncated() {
    let bytes = std::fs::read(real_model(SMOLLM2)).unwrap();
    let path = scratch("truncated.gguf");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = generate_fails(&path, &["--prompt", "hi"]);
    assert!(err.contains("truncated"), "{err}");
    assert!(err.contains("download or copy the model again"), "{err}");
}

#[test]
fn a_file_with_the_wrong_magic_is_not_a_model() {
    let path = scratch("notes.gguf");
    std::fs::write(&path, "these are my notes, not a model").unwrap();
    let err = generate_fails(&path, &["--prompt", "hi"]);
    assert!(err.contains("is not a model file"), "{err}");
    assert!(err.contains("GGUF magic"), "{err}");
}

#[test]
fn an_unknown_architecture_is_named() {
    let path = scratch("mamba.gguf");
    write_gguf(
        &path,
        &[("general.architecture", Value::String("mamba".into()))],
        &[("token_embd.weight", tiny_tensor())],
    );
    let err = generate_fails(&path, &["--prompt", "hi"]);
    assert!(
        err.contains("architecture `mamba` is not supported"),
        "{err}"
    );
}

#[test]
fn an_unsupported_quantization_is_named() {
    let path = scratch("iq2.gguf");
    write_gguf(
        &path,
        &[("general.architecture", Value::String("llama".into()))],
        &[("token_embd.weight", tiny_tensor())],
    );
    // Rewrite the tensor's type id (F32 = 0) to 16, IQ2_XXS: the u32 after the name and dims.
    let mut bytes = std::fs::read(&path).unwrap();
    let name = b"token_embd.weight";
    let at = bytes.windows(name.len()).position(|w| w == name).unwrap() + name.len();
    let n_dims = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let type_at = at + 4 + 8 * n_dims;
    bytes[type_at..type_at + 4].copy_from_slice(&16u32.to_le_bytes());
    std::fs::write(&path, bytes).unwrap();
    let err = generate_fails(&path, &["--prompt", "hi"]);
    assert!(err.contains("IQ2_XXS"), "{err}");
    assert!(err.contains("cannot run"), "{err}");
}

#[test]
fn missing_tokenizer_metadata_is_named() {
    let path = scratch("no-tokenizer.gguf");
    let u32v = |v: u32| Value::U32(v);
    write_gguf(
        &path,
        &[
            ("general.architecture", Value::String("llama".into())),
            ("llama.embedding_length", u32v(32)),
            ("llama.feed_forward_length", u32v(64)),
            ("llama.block_count", u32v(1)),
            ("llama.attention.head_count", u32v(4)),
        ],
        &[("token_embd.weight", tiny_tensor())],
    );
    let err = generate_fails(&path, &["--prompt", "hi"]);
    assert!(err.contains("missing"), "{err}");
    assert!(err.contains("tokenizer"), "{err}");
}

#[test]
fn a_prompt_longer_than_the_context_is_refused_with_the_numbers() {
    let path = scratch("long-prompt.txt");
    // SmolLM2's context is 8192 tokens; this is well over it.
    std::fs::write(
        &path,
        "the quick brown fox jumps over the lazy dog ".repeat(2000),
    )
    .unwrap();
    let prompt_file = path.to_string_lossy().into_owned();
    let err = generate_fails(
        &real_model(SMOLLM2),
        &["--raw", "--prompt-file", &prompt_file],
    );
    assert!(err.contains("the model's context holds 8192"), "{err}");
}

#[test]
fn a_folder_that_is_not_a_model_says_what_is_missing() {
    let dir = scratch("empty-folder");
    std::fs::create_dir_all(&dir).unwrap();
    let err = generate_fails(&dir, &["--prompt", "hi"]);
    assert!(err.contains("config.json"), "{err}");
    assert!(err.contains("tokenizer.json"), "{err}");
}

#[test]
fn an_unknown_model_name_points_to_k2_models() {
    let err = generate_fails(Path::new("no-such-model-anywhere"), &["--prompt", "hi"]);
    assert!(err.contains("not found"), "{err}");
    assert!(err.contains("k2 models"), "{err}");
}
