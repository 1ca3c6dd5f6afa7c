//! The per-layer cache, owned outside the model so decoders can roll it back (speculative
//! decoding) and hold several independent rows (best-of-N, server batching).
//!
//! Attention layers keep every position's keys and values; a hybrid model's recurrent layers
//! keep a fixed-size state per row instead (`recurrent_state`). Fork, select, batch and
//! truncate work for both: a recurrent row rolls back within its last short pass.
//!
//! Each row has its own length: rows advance, rewind and finish independently. Key/value
//! storage grows in steps up to the context length instead of being preallocated, so a short
//! run of a model with a 32k context does not reserve gigabytes.

use candle_core::{DType, Device, Tensor};

pub use super::recurrent_state::RollbackMode;
use super::recurrent_state::{RecurrentRow, RecurrentShape, Rollback, ROLLBACK_MAX};
use crate::error::{EngineError, Result};

/// Capacity is grown in multiples of this many positions.
const GROWTH_STEP: usize = 256;

#[derive(Clone)]
struct RowKv {
    /// `[kv_heads, capacity, head_dim]`, contiguous.
    keys: Tensor,
    values: Tensor,
}

/// One layer's rows.
#[derive(Clone)]
enum LayerRows {
    Attention(Vec<RowKv>),
    Recurrent(Vec<RecurrentRow>),
}

impl LayerRows {
    fn clear(&mut self) {
        match self {
            LayerRows::Attention(rows) => rows.clear(),
            LayerRows::Recurrent(rows) => rows.clear(),
        }
    }

    /// Keeps only `keep`, in that order.
    fn select(&mut self, keep: &[usize]) {
        match self {
            LayerRows::Attention(rows) => *rows = keep.iter().map(|&r| rows[r].clone()).collect(),
            LayerRows::Recurrent(rows) => *rows = keep.iter().map(|&r| rows[r].clone()).collect(),
        }
    }
}

pub struct KvCache {
    /// `layers[layer]`: every row's keys and values, or recurrent state.
    layers: Vec<LayerRows>,
    /// The size of recurrent layers' state, where there are any.
    recurrent: Option<RecurrentShape>,
    /// What recurrent layers keep to undo their last tokens (nothing unless asked).
    rollback: Rollback,
    lens: Vec<usize>,
    capacity: usize,
    max_len: usize,
    kv_heads: usize,
    head_dim: usize,
    dtype: DType,
    device: Device,
}

impl KvCache {
    pub fn new(
        num_layers: usize,
        kv_heads: usize,
        head_dim: usize,
        max_len: usize,
        dtype: DType,
        device: &Device,
    ) -> Self {
        KvCache {
            layers: vec![LayerRows::Attention(Vec::new()); num_layers],
            recurrent: None,
            rollback: Rollback {
                tokens: 0,
                mode: RollbackMode::Replay,
            },
            lens: Vec::new(),
            capacity: 0,
            max_len,
            kv_heads,
            head_dim,
            dtype,
            device: device.clone(),
        }
    }

    /// Makes the layers flagged in `recurrent` recurrent layers of `shape` (before any row
    /// is added).
    pub(super) fn with_recurrent_layers(
        mut self,
        recurrent: &[bool],
        shape: RecurrentShape,
    ) -> KvCache {
        for (layer, _) in recurrent.iter().enumerate().filter(|(_, &r)| r) {
            self.layers[layer] = LayerRows::Recurrent(Vec::new());
        }
        self.recurrent = Some(shape);
        self
    }

    /// Whether some layers keep a recurrent state (which cannot go back further than its
    /// last short pass, so prompt prefixes cannot be cut from it).
    pub fn has_recurrent_layers(&self) -> bool {
        self.recurrent.is_some()
    }

    /// Lets [`KvCache::truncate`] undo up to the last `tokens` positions fed in passes of up
    /// to [`KvCache::REWINDABLE_PASS`] tokens each (speculative decoders ask for it; plain
    /// decoding never rewinds and keeps nothing). Key/value layers can always go back;
    /// recurrent layers keep what undoing needs, in `mode`.
    pub fn keep_rollback(&mut self, tokens: usize, mode: RollbackMode) {
        self.rollback = Rollback {
            tokens: tokens.min(ROLLBACK_MAX),
            mode,
        };
    }

    /// The longest pass whose tokens [`KvCache::keep_rollback`] covers.
    pub const REWINDABLE_PASS: usize = ROLLBACK_MAX;

    pub(super) fn rollback(&self) -> Rollback {
        self.rollback
    }

    /// `row`'s state in the recurrent layer `layer`.
    pub(super) fn recurrent_row(&mut self, layer: usize, row: usize) -> &mut RecurrentRow {
        match &mut self.layers[layer] {
            LayerRows::Recurrent(rows) => &mut rows[row],
            LayerRows::Attention(_) => unreachable!("layer {layer} keeps keys and values"),
        }
    }

    fn attention_layers(&self) -> usize {
        self.layers
            .iter()
            .filter(|l| matches!(l, LayerRows::Attention(_)))
            .count()
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn rows(&self) -> usize {
        self.lens.len()
    }

    /// Positions already cached for `row`.
    pub fn len(&self, row: usize) -> usize {
        self.lens[row]
    }

    pub fn is_empty(&self) -> bool {
        self.lens.iter().all(|&l| l == 0)
    }

    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Positions every row has room for before storage grows.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Layers the cache holds keys and values for.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    pub(super) fn layers(&self) -> usize {
        self.layers.len()
    }

    /// Bytes that `rows` rows of `positions` positions take (keys and values of every
    /// attention layer, the state of every recurrent one).
    fn bytes(&self, rows: usize, positions: usize) -> u64 {
        let per_position = (self.attention_layers()
            * 2
            * self.kv_heads
            * self.head_dim
            * self.dtype.size_in_bytes()) as u64;
        let recurrent_layers = (self.layers.len() - self.attention_layers()) as u64;
        let per_row = recurrent_layers * self.recurrent.map_or(0, |s| s.bytes());
        per_position
            .saturating_mul(positions as u64)
            .saturating_add(per_row)
            .saturating_mul(rows as u64)
    }

    /// Refuses, before anything is allocated, `rows` rows of up to `positions` positions each
    /// (capped at the cache's length, in its growth steps) where this machine's memory cannot
    /// hold them. Host memory only: a GPU's is not checked here.
    pub fn check_fits(&self, rows: usize, positions: usize) -> Result<()> {
        let positions = positions
            .min(self.max_len)
            .div_ceil(GROWTH_STEP)
            .saturating_mul(GROWTH_STEP)
            .min(self.max_len);
        self.check_growth(
            &format!("decoding {rows} rows of up to {positions} tokens (their key/value cache)"),
            self.bytes(rows, positions),
        )
    }

    /// Refuses growing the cache by `bytes` where the machine does not have them now: the
    /// last check before an allocation, whatever the caller estimated up front.
    fn check_growth(&self, what: &str, bytes: u64) -> Result<()> {
        if !self.device.is_cpu() {
            return Ok(());
        }
        crate::memory::check_fits_now(what, bytes, "ask for fewer candidates or fewer tokens")
    }

    /// Adds an empty row and returns its index.
    pub fn add_row(&mut self) -> Result<usize> {
        self.check_growth(
            "another row of the key/value cache",
            self.bytes(1, self.capacity),
        )?;
        for layer in &mut self.layers {
            match layer {
                LayerRows::Attention(rows) => rows.push(RowKv {
                    keys: Tensor::zeros(
                        (self.kv_heads, self.capacity, self.head_dim),
                        self.dtype,
                        &self.device,
                    )?,
                    values: Tensor::zeros(
                        (self.kv_heads, self.capacity, self.head_dim),
                        self.dtype,
                        &self.device,
                    )?,
                }),
                LayerRows::Recurrent(rows) => rows.push(RecurrentRow::new(
                    self.recurrent
                        .as_ref()
                        .expect("recurrent layers have a shape"),
                    &self.device,
                )?),
            }
        }
        self.lens.push(0);
        Ok(self.lens.len() - 1)
    }

    /// Appends `copies` rows that start as exact copies of `row` (a shared prompt prefilled once).
    pub fn fork(&mut self, row: usize, copies: usize) -> Result<()> {
        self.check_growth(
            &format!("{copies} more rows of the key/value cache"),
            self.bytes(copies, self.capacity),
        )?;
        for layer in &mut self.layers {
            match layer {
                LayerRows::Attention(rows) => {
                    let source = rows[row].clone();
                    for _ in 0..copies {
                        rows.push(RowKv {
                            keys: source.keys.copy()?,
                            values: source.values.copy()?,
                        });
                    }
                }
                LayerRows::Recurrent(rows) => {
                    let source = rows[row].copy_state();
                    rows.extend(std::iter::repeat_n(source, copies));
                }
            }
        }
        let len = self.lens[row];
        self.lens.extend(std::iter::repeat_n(len, copies));
        Ok(())
    }

    /// A one-row cache holding the first `len` positions of `row` (a prompt prefix that later
    /// requests can start from, see [`KvCache::add_row_from`]). Recurrent layers hold only
    /// their state at the row's end, so a cache with them gives only the whole row.
    pub fn prefix_of(&self, row: usize, len: usize) -> Result<KvCache> {
        let len = len.min(self.lens[row]);
        if self.has_recurrent_layers() && len != self.lens[row] {
            return Err(EngineError::InvalidSetting(format!(
                "a recurrent model's cache cannot give the first {len} of {} positions",
                self.lens[row]
            )));
        }
        let mut prefix = KvCache::new(
            self.layers.len(),
            self.kv_heads,
            self.head_dim,
            self.max_len,
            self.dtype,
            &self.device,
        );
        prefix.recurrent = self.recurrent;
        prefix.rollback = self.rollback;
        for (layer, rows) in self.layers.iter().enumerate() {
            prefix.layers[layer] = match rows {
                LayerRows::Attention(rows) => LayerRows::Attention(vec![RowKv {
                    keys: rows[row].keys.narrow(1, 0, len)?.copy()?,
                    values: rows[row].values.narrow(1, 0, len)?.copy()?,
                }]),
                LayerRows::Recurrent(rows) => LayerRows::Recurrent(vec![rows[row].copy_state()]),
            };
        }
        prefix.lens.push(len);
        prefix.capacity = len;
        Ok(prefix)
    }

    /// Adds a row that starts with the first `len` positions of `source`'s row 0 (a cache
    /// of the same model), and returns its index.
    pub fn add_row_from(&mut self, source: &KvCache, len: usize) -> Result<usize> {
        let len = len.min(source.lens.first().copied().unwrap_or(0));
        if source.layers.len() != self.layers.len()
            || (source.kv_heads, source.head_dim) != (self.kv_heads, self.head_dim)
            || source.recurrent != self.recurrent
        {
            return Err(EngineError::InvalidSetting(
                "a cached prefix from another model cannot start this row".into(),
            ));
        }
        if self.has_recurrent_layers() && Some(&len) != source.lens.first() {
            return Err(EngineError::InvalidSetting(
                "a recurrent model's row can only start from a whole cached prefix".into(),
            ));
        }
        let longest = self.lens.iter().max().copied().unwrap_or(0);
        self.reserve(len.saturating_sub(longest))?;
        let row = self.add_row()?;
        for (rows, from) in self.layers.iter_mut().zip(&source.layers) {
            match (rows, from) {
                (LayerRows::Attention(rows), LayerRows::Attention(from)) => {
                    let from = &from[0];
                    rows[row]
                        .keys
                        .slice_set(&from.keys.narrow(1, 0, len)?.contiguous()?, 1, 0)?;
                    rows[row].values.slice_set(
                        &from.values.narrow(1, 0, len)?.contiguous()?,
                        1,
                        0,
                    )?;
                }
                (LayerRows::Recurrent(rows), LayerRows::Recurrent(from)) => {
                    rows[row] = from[0].copy_state();
                }
                _ => unreachable!("both caches have the same layer kinds"),
            }
        }
        self.lens[row] = len;
        Ok(row)
    }

    /// Keeps only `rows`, in that order (drops finished candidates, reorders for the caller).
    pub fn select(&mut self, rows: &[usize]) {
        for layer in &mut self.layers {
            layer.select(rows);
        }
        self.lens = rows.iter().map(|&r| self.lens[r]).collect();
    }

    /// Every row's whole key and value storage for `layer` (`[kv_heads, capacity, head_dim]`,
    /// contiguous), for kernels that write new positions themselves.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    pub(super) fn layer_storage(&self, layer: usize) -> Vec<(&Tensor, &Tensor)> {
        match &self.layers[layer] {
            LayerRows::Attention(rows) => rows.iter().map(|r| (&r.keys, &r.values)).collect(),
            LayerRows::Recurrent(_) => Vec::new(),
        }
    }

    /// Forgets every position of `row` from `len` on (rejected speculative tokens). A
    /// recurrent layer returns to its state at `len`, which must lie within its last pass of
    /// a few tokens (what speculative verification feeds).
    pub fn truncate(&mut self, row: usize, len: usize) -> Result<()> {
        let current = self.lens[row];
        if let Some(shape) = self.recurrent {
            for layer in &mut self.layers {
                if let LayerRows::Recurrent(rows) = layer {
                    rows[row].truncate(&shape, current, len)?;
                }
            }
        }
        self.lens[row] = current.min(len);
        Ok(())
    }

    pub fn clear(&mut self) {
        for layer in &mut self.layers {
            layer.clear();
        }
        self.lens.clear();
    }

    /// Makes room for `extra` more positions in every row, or says why it can't.
    pub fn reserve(&mut self, extra: usize) -> Result<()> {
        let needed = self.lens.iter().max().copied().unwrap_or(0) + extra;
        if needed > self.max_len {
            return Err(EngineError::PromptTooLong {
                prompt_tokens: needed,
                context_length: self.max_len,
            });
        }
        if needed <= self.capacity {
            return Ok(());
        }
        let new_capacity = (needed.max(self.capacity * 2))
            .div_ceil(GROWTH_STEP)
            .saturating_mul(GROWTH_STEP)
            .min(self.max_len);
        self.check_growth(
            &format!(
                "growing the key/value cache to {new_capacity} tokens for {} rows",
                self.rows()
            ),
            self.bytes(self.rows(), new_capacity - self.capacity),
        )?;
        for layer in &mut self.layers {
            if let LayerRows::Attention(rows) = layer {
                for row in rows.iter_mut() {
                    row.keys = grow(&row.keys, new_capacity)?;
                    row.values = grow(&row.values, new_capacity)?;
                }
            }
        }
        self.capacity = new_capacity;
        Ok(())
    }

    /// Writes `keys`/`values` (`[kv_heads, t, head_dim]`) for `row` at its current end and
    /// returns views of everything cached for the row, including the new positions.
    /// The row's length only advances through [`KvCache::advance`], once every layer is done.
    pub fn append(
        &mut self,
        layer: usize,
        row: usize,
        keys: &Tensor,
        values: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let start = self.lens[row];
        let t = keys.dim(1)?;
        let LayerRows::Attention(rows) = &self.layers[layer] else {
            unreachable!("layer {layer} keeps a recurrent state");
        };
        let slot = &rows[row];
        slot.keys.slice_set(&keys.contiguous()?, 1, start)?;
        slot.values.slice_set(&values.contiguous()?, 1, start)?;
        Ok((
            slot.keys.narrow(1, 0, start + t)?,
            slot.values.narrow(1, 0, start + t)?,
        ))
    }

    pub fn advance(&mut self, row: usize, t: usize) {
        self.lens[row] += t;
    }
}

fn grow(t: &Tensor, capacity: usize) -> Result<Tensor> {
    let (heads, old, dim) = t.dims3()?;
    let bigger = Tensor::zeros((heads, capacity, dim), t.dtype(), t.device())?;
    if old > 0 {
        bigger.slice_set(t, 1, 0)?;
    }
    Ok(bigger)
}
