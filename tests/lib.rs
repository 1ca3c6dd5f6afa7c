//! Helpers shared by the end-to-end tests: the real test models and the llama.cpp goldens.

use std::path::PathBuf;
use std::sync::OnceLock;

use k2_engine::loader::{load_model, LoadedModel};
use serde::de::DeserializeOwned;

/// The three packaged models of shared/MODELS.md, by the file names the fetch script uses.
pub const SMOLLM2: &str = "smollm2-135m-instruct-q4_1.gguf";
pub const QWEN_05B: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";
pub const QWEN_15B: &str = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf";

/// Path of a test model; fails loudly (never skips) when it is missing.
pub fn model_path(file: &str) -> PathBuf {
    let path = k2_engine::models_dir::models_dir().join(file);
    assert!(
        path.exists(),
        "test model {} is missing: run scripts/fetch-test-models.sh first",
        path.display()
    );
    path
}

pub fn load(file: &str) -> LoadedModel {
    limit_threads();
    load_model(&model_path(file), &candle_core::Device::Cpu, &mut |_| {})
        .unwrap_or_else(|e| panic!("loading {file}: {e}"))
}

/// Tests run in parallel threads; two cores are all there is, so give the math both of them
/// and let the test harness interleave.
fn limit_threads() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| k2_engine::set_cpu_threads(2));
}

pub fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("golden")
        .join(name)
}

pub fn read_golden<T: DeserializeOwned>(name: &str) -> T {
    let path = golden_path(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading golden file {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}
