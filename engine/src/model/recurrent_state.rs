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

use candle_core::{DType, Device, Tensor};

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
    /// recurrence recomputed on rollback, and one token's as the window slides. (A state on
    /// a GPU keeps snapshots whatever the mode: there they are references, see [`State`].)
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

/// Convolution window (`[taps - 1][channels]`, oldest first) and each value head's
/// delta-rule state (`[value_heads][key_dim][value_dim]`) at one point.
#[derive(Clone)]
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
pub(super) enum State {
    /// On the host, where the CPU's arithmetic updates them in place.
    Host { conv: Vec<f32>, delta: Vec<f32> },
    /// On a GPU (f32), where each pass's kernels write new buffers instead of updating these
    /// (`cuda_delta_net`): so a kept or forked state is a reference, never a copy.
    Device { conv: Tensor, delta: Tensor },
}

impl State {
    fn zeros(shape: &RecurrentShape, device: &Device) -> Result<State> {
        Ok(if device.is_cpu() {
            State::Host {
                conv: vec![0.0; shape.conv_len()],
                delta: vec![0.0; shape.state_len()],
            }
        } else {
            State::Device {
                conv: Tensor::zeros(shape.conv_len(), DType::F32, device)?,
                delta: Tensor::zeros(shape.state_len(), DType::F32, device)?,
            }
        })
    }
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
    pub now: State,
    history: Option<History>,
}

/// What a row keeps to undo its last tokens: up to `tokens` of them, in `mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Rollback {
    pub tokens: usize,
    pub mode: RollbackMode,
}

impl RecurrentRow {
    /// A row of zeros, kept on `device` (the host for the CPU).
    pub fn new(shape: &RecurrentShape, device: &Device) -> Result<RecurrentRow> {
        Ok(RecurrentRow {
            now: State::zeros(shape, device)?,
            history: None,
        })
    }

    /// A copy of the state alone (a forked or prefix row has nothing to undo yet).
    pub fn copy_state(&self) -> RecurrentRow {
        RecurrentRow {
            now: self.now.clone(),
            history: None,
        }
    }

    /// The convolution window and delta-rule state of a row kept on the host.
    pub fn host_mut(&mut self) -> Result<(&mut [f32], &mut [f32])> {
        match &mut self.now {
            State::Host { conv, delta } => Ok((conv, delta)),
            State::Device { .. } => Err(EngineError::Kernel(
                "a recurrent state on a GPU was given to the CPU's arithmetic".into(),
            )),
        }
    }

    fn current(&self) -> State {
        self.now.clone()
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
        if !self.keeps_tokens() {
            return;
        }
        // A state on a GPU is always kept whole: its kernels never overwrite a state, so
        // keeping one costs a reference, and replaying would cost kernels.
        let kept = match (rollback.mode, &self.now) {
            (RollbackMode::Replay, State::Host { .. }) => {
                let (conv_input, token) = inputs();
                Kept::Inputs(conv_input, token)
            }
            _ => Kept::Snapshot(self.current()),
        };
        self.push_kept(kept, shape, rollback);
    }

    /// Records one token of a short pass by the state after it (a state on a GPU, whose
    /// kernels give the state after each token of the pass).
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    pub fn record_state(&mut self, state: State, shape: &RecurrentShape, rollback: Rollback) {
        self.now = state;
        if self.keeps_tokens() {
            self.push_kept(Kept::Snapshot(self.current()), shape, rollback);
        }
    }

    /// Whether this pass's tokens go into the window (see [`RecurrentRow::begin_pass`]).
    pub fn keeps_tokens(&self) -> bool {
        self.history.is_some()
    }

    fn push_kept(&mut self, kept: Kept, shape: &RecurrentShape, rollback: Rollback) {
        let Some(history) = self.history.as_mut() else {
            return;
        };
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
        self.now = state;
        Ok(())
    }
}

/// `state` after one more token (replay keeps inputs for host states only).
fn advance(state: &mut State, shape: &RecurrentShape, conv_input: &[f32], token: &TokenInputs) {
    if let State::Host { conv, delta } = state {
        shift_conv(conv, conv_input);
        step_heads(delta, shape, token, &mut []);
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
