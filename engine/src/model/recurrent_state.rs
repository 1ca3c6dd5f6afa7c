//! What a Gated DeltaNet (linear attention) layer keeps per cache row instead of keys and
//! values: the last inputs of its causal convolution and each value head's delta-rule state
//! (see `delta_rule`), and, after a short pass, what rolling that pass back needs.
//!
//! A key/value cache forgets rejected speculative tokens by shortening a row; a recurrent
//! state has folded them in and cannot. So a pass over a few tokens (a verification pass)
//! keeps a [`Rollback`]: either the state after every token ([`RollbackMode::Snapshots`]) or
//! the state before the pass and each token's inputs to the recurrence
//! ([`RollbackMode::Replay`]), which recomputes the state of the accepted tokens. Both give
//! exactly the state a pass over the accepted tokens alone would have left: the pass and the
//! replay run the same token-by-token recurrence on the same inputs.

use super::delta_rule::{self, HeadDims, HeadInputs};
use crate::error::{EngineError, Result};

/// Passes of up to this many tokens keep what rolls them back (speculative verification);
/// longer ones (prompts) do not, and are computed in chunks.
pub(super) const ROLLBACK_MAX: usize = 16;

/// How a recurrent layer undoes the last tokens of a short pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollbackMode {
    /// The whole state after each token of the pass: no recomputation, but a copy of every
    /// head's state per token (48 MB a token for a 4B model's 24 recurrent layers).
    Snapshots,
    /// The state before the pass and each token's recurrence inputs: one copy of the state,
    /// and the accepted tokens' recurrence recomputed on rollback.
    Replay,
}

/// The sizes of one recurrent layer's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RecurrentShape {
    /// Convolved channels (queries, keys and values of every head).
    pub channels: usize,
    pub conv_taps: usize,
    pub value_heads: usize,
    pub head: HeadDims,
}

impl RecurrentShape {
    pub fn conv_len(&self) -> usize {
        (self.conv_taps - 1) * self.channels
    }

    pub fn state_len(&self) -> usize {
        self.value_heads * self.head.key_dim * self.head.value_dim
    }

    /// Bytes of one row's state (f32).
    pub fn bytes(&self) -> u64 {
        ((self.conv_len() + self.state_len()) * 4) as u64
    }
}

/// One token's inputs to every value head's recurrence (after the convolution, normalized,
/// gates applied): `q`, `k` `[value_heads * key_dim]`, `v` `[value_heads * value_dim]`, `g`,
/// `beta` `[value_heads]`, with the token's raw convolution input `[channels]`.
#[derive(Clone)]
pub(super) struct TokenInputs {
    pub conv_input: Vec<f32>,
    pub q: Vec<f32>,
    pub k: Vec<f32>,
    pub v: Vec<f32>,
    pub g: Vec<f32>,
    pub beta: Vec<f32>,
}

#[derive(Clone)]
enum Rollback {
    /// Conv and delta state before the pass, then after each of its tokens.
    Snapshots(Vec<(Vec<f32>, Vec<f32>)>),
    /// Conv and delta state before the pass, and each token's inputs.
    Replay {
        conv: Vec<f32>,
        state: Vec<f32>,
        tokens: Vec<TokenInputs>,
    },
}

/// One cache row of one recurrent layer.
#[derive(Clone)]
pub(super) struct RecurrentRow {
    /// The last `conv_taps - 1` convolution inputs, oldest first, `[taps - 1][channels]`.
    pub conv: Vec<f32>,
    /// Each value head's state, `[value_heads][key_dim][value_dim]`.
    pub state: Vec<f32>,
    /// The row's length before the last short pass, and how to return to any point in it.
    rollback: Option<(usize, Rollback)>,
}

impl RecurrentRow {
    pub fn new(shape: &RecurrentShape) -> RecurrentRow {
        RecurrentRow {
            conv: vec![0.0; shape.conv_len()],
            state: vec![0.0; shape.state_len()],
            rollback: None,
        }
    }

    /// A copy of the state alone (a forked or prefix row starts with no pass to undo).
    pub fn copy_state(&self) -> RecurrentRow {
        RecurrentRow {
            conv: self.conv.clone(),
            state: self.state.clone(),
            rollback: None,
        }
    }

    /// Starts a pass of `tokens` tokens at length `len`: forgets the last pass's rollback,
    /// and for a short pass begins this one's.
    pub fn begin_pass(&mut self, len: usize, tokens: usize, mode: RollbackMode) {
        // A one-token pass (plain decoding) is never undone: a verifier feeds it only when
        // it has no drafts, and keeps its token.
        self.rollback = (2..=ROLLBACK_MAX).contains(&tokens).then(|| {
            let kept = match mode {
                RollbackMode::Snapshots => {
                    let mut kept = Vec::with_capacity(tokens + 1);
                    kept.push((self.conv.clone(), self.state.clone()));
                    Rollback::Snapshots(kept)
                }
                RollbackMode::Replay => Rollback::Replay {
                    conv: self.conv.clone(),
                    state: self.state.clone(),
                    tokens: Vec::with_capacity(tokens),
                },
            };
            (len, kept)
        });
    }

    /// Records one token of the current short pass, after the state took it in.
    pub fn record_token(&mut self, inputs: impl FnOnce() -> TokenInputs) {
        match &mut self.rollback {
            Some((_, Rollback::Snapshots(kept))) => {
                kept.push((self.conv.clone(), self.state.clone()))
            }
            Some((_, Rollback::Replay { tokens, .. })) => tokens.push(inputs()),
            None => {}
        }
    }

    /// Returns the row to its state at length `len` (from `current`), within its last pass.
    pub fn truncate(&mut self, shape: &RecurrentShape, current: usize, len: usize) -> Result<()> {
        if len >= current {
            return Ok(());
        }
        let (from, rollback) = match &self.rollback {
            Some((from, rollback)) if len >= *from => (*from, rollback),
            _ => {
                return Err(EngineError::InvalidSetting(format!(
                    "a recurrent layer's state cannot go back from {current} to {len} tokens: \
                     only tokens of its last pass of up to {ROLLBACK_MAX} can be undone"
                )))
            }
        };
        let accepted = len - from;
        match rollback {
            Rollback::Snapshots(kept) => {
                let (conv, state) = &kept[accepted];
                self.conv.clone_from(conv);
                self.state.clone_from(state);
            }
            Rollback::Replay {
                conv,
                state,
                tokens,
            } => {
                self.conv.clone_from(conv);
                self.state.clone_from(state);
                for token in &tokens[..accepted] {
                    shift_conv(&mut self.conv, &token.conv_input);
                    step_heads(&mut self.state, shape, token, &mut []);
                }
            }
        }
        // What is left of the pass can still be undone (the speculative decoder only ever
        // truncates once per pass, but a second, shorter cut stays correct).
        if let Some((_, Rollback::Snapshots(kept))) = &mut self.rollback {
            kept.truncate(accepted + 1);
        }
        if let Some((_, Rollback::Replay { tokens, .. })) = &mut self.rollback {
            tokens.truncate(accepted);
        }
        Ok(())
    }
}

/// Pushes one token's convolution input into the window of the last inputs.
pub(super) fn shift_conv(conv: &mut [f32], input: &[f32]) {
    let channels = input.len();
    if conv.is_empty() {
        return;
    }
    conv.copy_within(channels.., 0);
    let last = conv.len() - channels;
    conv[last..].copy_from_slice(input);
}

/// One token through every value head's recurrence (heads in parallel); each head's output
/// goes to `out` (`[value_heads * value_dim]`) when it is not empty.
pub(super) fn step_heads(
    state: &mut [f32],
    shape: &RecurrentShape,
    token: &TokenInputs,
    out: &mut [f32],
) {
    use rayon::prelude::*;
    let HeadDims { key_dim, value_dim } = shape.head;
    let per_head = key_dim * value_dim;
    let run = |h: usize, head_state: &mut [f32], head_out: &mut [f32]| {
        let inputs = HeadInputs {
            q: &token.q[h * key_dim..][..key_dim],
            k: &token.k[h * key_dim..][..key_dim],
            v: &token.v[h * value_dim..][..value_dim],
            g: &token.g[h..h + 1],
            beta: &token.beta[h..h + 1],
        };
        delta_rule::recurrent(head_state, shape.head, &inputs, head_out);
    };
    if out.is_empty() {
        state
            .par_chunks_mut(per_head)
            .enumerate()
            .for_each(|(h, s)| run(h, s, &mut vec![0f32; value_dim]));
    } else {
        state
            .par_chunks_mut(per_head)
            .zip(out.par_chunks_mut(value_dim))
            .enumerate()
            .for_each(|(h, (s, o))| run(h, s, o));
    }
}
