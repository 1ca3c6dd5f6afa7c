//! What the engine's integration tests share: the fast real model, loaded once per test binary.

use std::sync::OnceLock;

use candle_core::Device;
use k2_engine::loader::{load_model, LoadedModel};

const SMOLLM2: &str = "smollm2-135m-instruct-q4_1.gguf";

/// SmolLM2-135M (from `scripts/fetch-test-models.sh`) on the CPU.
pub fn smollm2() -> &'static LoadedModel {
    static MODEL: OnceLock<LoadedModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        let path = k2_engine::models_dir::models_dir().join(SMOLLM2);
        assert!(
            path.exists(),
            "test model {} is missing: run scripts/fetch-test-models.sh first",
            path.display()
        );
        load_model(&path, &Device::Cpu, &mut |_| {}).expect("the test model loads")
    })
}
