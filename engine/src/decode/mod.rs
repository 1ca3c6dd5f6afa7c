//! Decoding strategies: how tokens are produced from a loaded model.
//!
//! - [`plain`]: one sequence, one token per forward pass ([`plain::generate`]), and the
//!   per-row logic ([`plain::RowDecoder`]) every strategy shares.
//! - [`batched`]: best-of-N, N rows of one prompt decoded together in one forward pass per
//!   step; plain decoding is a batch of one row.
//! - [`speculative`]: a drafter proposes tokens, the target verifies them in one pass.
//!
//! Their shared parts, all applied per row by [`plain::RowDecoder`]: [`sample`] turns logits
//! into the next token, `stop` holds back text that could still become a stop string,
//! [`loop_guard`] ends a row whose output cycles, and [`think_budget`] closes a think block
//! whose budget is spent (the forced tokens go into the row's next forward pass as one span).

pub mod batched;
pub mod loop_guard;
pub mod plain;
pub mod sample;
pub mod speculative;
mod stop;
pub mod think_budget;
