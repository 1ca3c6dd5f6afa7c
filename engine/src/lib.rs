//! K2 Tutor's inference engine: models, tokenizer, chat templates, sampling and decoding.
//!
//! The engine never prints and never touches SQL, HTTP or windows: it returns results and
//! reports progress through callbacks; logging goes through `tracing`.

pub mod answer;
pub mod chat;
pub mod error;
pub mod device;
pub mod generate;
pub mod gguf;
pub mod loader;
pub mod model;
pub mod models_dir;
pub mod sample;
mod stop;
pub mod tokenizer;

pub use error::{EngineError, Result};

/// Threads the CPU backend uses (candle's rayon pool and k2-kernels). Call once, early;
/// later calls keep the first setting.
pub fn set_cpu_threads(threads: usize) {
    let threads = threads.max(1);
    if rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .is_err()
    {
        tracing::debug!("the CPU thread pool was already configured");
    }
}
