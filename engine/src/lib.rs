//! K2 Tutor's inference engine: models, tokenizer, chat templates, sampling and decoding.
//!
//! The engine never prints and never touches SQL, HTTP or windows: it returns results and
//! reports progress through callbacks; logging goes through `tracing`.

pub mod chat;
pub mod error;
pub mod generate;
pub mod gguf;
pub mod model;
pub mod sample;
mod stop;
pub mod tokenizer;

pub use error::{EngineError, Result};
