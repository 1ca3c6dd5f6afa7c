//! What a Gated DeltaNet (linear attention) layer keeps per cache row instead of keys and
//! values: the last inputs of its causal convolution and each value head's delta-rule state
//! (see `delta_rule`), and, where a decoder asked for it, what undoing the last tokens needs.
//!
//! A key/value cache forgets rejected speculative tokens by shortening a row; a recurrent
//! state has folded them in and cannot. So a cache whose decoder rewinds (speculative
//! decoding, for its target and its draft) keeps a window of the last tokens of its short
//! passes: either the state after each ([`RollbackMode::Snapshots`]) or the state before the
//! window and each token's inputs to the recurrence ([`RollbackMode::Replay`]), which
//! recomputes the accepted tokens. Both give exactly the state the accepted tokens alone would
//! have left: short passes and the replay run the same token-by-token recurrence on the same
//! inputs.

use std::collections::VecDeque;

use super::delta_rule::{self, HeadDims, HeadInputs};
use crate::error::{EngineError, Result};

/// Passes of up to this many tokens run token by token (decoding, speculative verification,
/// drafting) and can be undone; longer ones (prompts) run in chunks and cannot. The short
/// passes of attention (`QUERY_BY_QUERY_MAX`), which speculation keeps its passes within.
pub(super) const ROLLBACK_MAX: usize = super::attention::QUERY_BY_QUERY_MAX;

/// How a recurrent layer undoes its last tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollbackMode {
    /// The whole state after each token: no recomputation, but a copy of every head's state
    /// per token (48 MB a token for a 4B model's 24 recurrent layers).
    Snapshots,
    /// The state before the window and each token's recurrence inputs: the accepted tokens'
    /// recurrence recomputed on rollback, and one token's as the window slides.
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
/// `beta` `[value_heads]`.
#[derive(Clone)]
pub(super) struct TokenInputs {
    pub q: Vec<f32>,
    pub k: Vec<f32>,
    pub v: Vec<f32>,
    pub g: Vec<f32>,
    pub beta: Vec<f32>,
}

/// Convolution window and delta-rule state at one point.
#[derive(Clone)]
struct State {
    conv: Vec<f32>,
    delta: Vec<f32>,
}

/// One token of the window.
#[derive(Clone)]
enum Kept {
    /// The state after it.
    Snapshot(State),
    /// Its raw convolution input `[channels]` and its recurrence inputs.
    Inputs(Vec<f32>, TokenInputs),
}

/// The last tokens a row can be returned through.
#[derive(Clone)]
struct History {
    /// The row's length before the window's first token, and its state there.
    from: usize,
    start: State,
    kept: VecDeque<Kept>,
}

/// One cache row of one recurrent layer.
#[derive(Clone)]
pub(super) struct RecurrentRow {
    /// The last `conv_taps - 1` convolution inputs, oldest first, `[taps - 1][channels]`.
    pub conv: Vec<f32>,
    /// Each value head's state, `[value_heads][key_dim][value_dim]`.
    pub state: Vec<f32>,
    history: Option<History>,
}

/// What a row keeps to undo its last tokens: up to `tokens` of them, in `mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Rollback {
    pub tokens: usize,
    pub mode: RollbackMode,
}

impl RecurrentRow {
    pub fn new(shape: &RecurrentShape) -> RecurrentRow {
        RecurrentRow {
            conv: vec![0.0; shape.conv_len()],
            state: vec![0.0; shape.state_len()],
            history: None,
        }
    }

    /// A copy of the state alone (a forked or prefix row has nothing to undo yet).
    pub fn copy_state(&self) -> RecurrentRow {
        RecurrentRow {
            conv: self.conv.clone(),
            state: self.state.clone(),
            history: None,
        }
    }

    fn current(&self) -> State {
        State {
            conv: self.conv.clone(),
            delta: self.state.clone(),
        }
    }

    /// Starts a pass of `tokens` tokens at length `len`. A short pass extends the window (or
    /// opens one); a long one, or a cache that keeps nothing, closes it.
    pub fn begin_pass(&mut self, len: usize, tokens: usize, rollback: Rollback) {
        if rollback.tokens == 0 || tokens > ROLLBACK_MAX {
            self.history = None;
            return;
        }
        let continues = self
            .history
            .as_ref()
            .is_some_and(|h| h.from + h.kept.len() == len);
        if !continues {
            self.history = Some(History {
                from: len,
                start: self.current(),
                kept: VecDeque::new(),
            });
        }
    }

    /// Records one token of a short pass, after the state took it in; the window keeps the
    /// last `rollback.tokens`.
    pub fn record_token(
        &mut self,
        shape: &RecurrentShape,
        rollback: Rollback,
        inputs: impl FnOnce() -> (Vec<f32>, TokenInputs),
    ) {
        if self.history.is_none() {
            return;
        }
        let kept = match rollback.mode {
            RollbackMode::Snapshots => Kept::Snapshot(self.current()),
            RollbackMode::Replay => {
                let (conv_input, token) = inputs();
                Kept::Inputs(conv_input, token)
            }
        };
        let history = self.history.as_mut().expect("checked above");
        history.kept.push_back(kept);
        while history.kept.len() > rollback.tokens {
            let oldest = history.kept.pop_front().expect("the window is not empty");
            history.from += 1;
            match oldest {
                Kept::Snapshot(state) => history.start = state,
                Kept::Inputs(conv_input, token) => {
                    advance(&mut history.start, shape, &conv_input, &token)
                }
            }
        }
    }

    /// Returns the row to its state at length `len` (from `current`), within its window.
    pub fn truncate(&mut self, shape: &RecurrentShape, current: usize, len: usize) -> Result<()> {
        if len >= current {
            return Ok(());
        }
        let history = match &mut self.history {
            Some(h) if len >= h.from && h.from + h.kept.len() == current => h,
            _ => {
                return Err(EngineError::InvalidSetting(format!(
                    "a recurrent layer's state cannot go back from {current} to {len} tokens: \
                     only its last tokens of short passes can be undone, where its decoder \
                     asked the cache to keep them"
                )))
            }
        };
        let accepted = len - history.from;
        let mut state = history.start.clone();
        for kept in history.kept.iter().take(accepted) {
            match kept {
                Kept::Snapshot(after) => state.clone_from(after),
                Kept::Inputs(conv_input, token) => advance(&mut state, shape, conv_input, token),
            }
        }
        history.kept.truncate(accepted);
        self.conv = state.conv;
        self.state = state.delta;
        Ok(())
    }
}

/// `state` after one more token.
fn advance(state: &mut State, shape: &RecurrentShape, conv_input: &[f32], token: &TokenInputs) {
    shift_conv(&mut state.conv, conv_input);
    step_heads(&mut state.delta, shape, token, &mut []);
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
