//! The K2-Think scaffold: plan, solve best-of-N, select (vote and/or a pairwise judge).

pub mod judge;
pub mod pipeline;
pub mod prompts;
pub mod select;
mod think;
