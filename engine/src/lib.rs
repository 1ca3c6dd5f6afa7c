//! K2 Tutor's inference engine: models, tokenizer, chat templates, sampling and decoding.
//!
//! The engine never prints and never touches SQL, HTTP or windows: it returns results and
//! reports progress through callbacks; logging goes through `tracing`.

/// Final answers: extraction and equivalence (its own crate, so the wasm UI shares it).
pub use k2_answer as answer;
pub mod backend;
pub mod chat;
pub mod decode;
pub mod device;
pub mod error;
mod fast_exp;
pub mod gguf;
pub mod install;
pub mod loader;
pub mod memory;
pub mod model;
pub mod models_dir;
pub mod reasoning;
pub mod serving;
pub mod tokenizer;

pub use error::{EngineError, Result};

/// Sets the threads the CPU backend computes with. Call it once at startup, before any other
/// thread exists (it sets environment variables candle reads once); [`loader::load_model`]
/// calls it with all cores if nobody did.
///
/// k2-kernels runs the matrix products on `threads` threads. candle's own CPU thread pool is
/// kept to the calling thread: its spinning workers compete with k2-kernels' for the same
/// cores (measured on 2 cores: 0.5B prefill 146 -> 432 tok/s, decode 26 -> 54), and without
/// `RAYON_NUM_THREADS` candle re-reads /proc/cpuinfo on every operation.
pub fn set_cpu_threads(threads: usize) {
    static CONFIGURED: std::sync::Once = std::sync::Once::new();
    CONFIGURED.call_once(|| {
        for var in ["CANDLE_NUM_THREADS", "RAYON_NUM_THREADS"] {
            if std::env::var_os(var).is_none() {
                std::env::set_var(var, "1");
            }
        }
    });
    k2_kernels::set_num_threads(threads.max(1));
}

/// All cores the process may use.
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
