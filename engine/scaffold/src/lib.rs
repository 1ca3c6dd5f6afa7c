//! The K2-Think scaffold: plan, solve best-of-N, select (vote and/or a pairwise judge), written
//! against the [`Backend`] trait so it runs the same on a local model (the engine implements
//! `Backend`) or a remote OpenAI-compatible server ([`RemoteBackend`]).
//!
//! Pure logic over text: no candle, no model, no SQL, no HTTP server. It reports through the
//! run's protocol events (`k2_protocol::Event`) and return values.

pub mod backend;
pub mod error;
pub mod judge;
pub mod ladder;
pub mod openai;
pub mod pipeline;
pub mod prompts;
pub mod remote;
pub mod select;
pub mod think;
pub mod work_review;

pub use backend::{
    derive_seed, Backend, CancelToken, ChatMessage, Completion, GenerateOptions, SamplingParams,
};
pub use error::{Result, ScaffoldError};
pub use pipeline::{Pipeline, RunOutcome};
pub use remote::{RemoteBackend, RemoteConfig, SettingNames};
