//! Decoding strategies: how tokens are produced from a loaded model.
//!
//! - [`plain`]: one sequence, one token per forward pass ([`plain::generate`]), and the
//!   per-row logic ([`plain::RowDecoder`]) every strategy shares.
//! - [`batched`]: best-of-N, N rows of one prompt decoded together in one forward pass per
//!   step; plain decoding is a batch of one row.
//! - [`speculative`]: a drafter proposes tokens, the target verifies them in one pass.
//!
//! Their shared parts: [`sample`] turns logits into the next token, and `stop` holds back
//! text that could still become a stop string.

pub mod batched;
pub mod plain;
pub mod sample;
pub mod speculative;
mod stop;
