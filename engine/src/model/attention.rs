//! Grouped-query self-attention over a ragged batch: projections run once for all rows'
//! tokens (the weights are read once), attention runs per row against that row's cache.

use candle_core::{Device, Tensor};

use super::config::ModelConfig;
use super::decode_attention;
use super::kv_cache::KvCache;
use super::rope::Rope;
use super::step::StepInputs;
use super::Attention;
use crate::error::Result;

/// Spans up to this many tokens (speculative verification, short prompts) attend query by
/// query; longer ones (prefill) in one masked matmul.
pub(crate) const QUERY_BY_QUERY_MAX: usize = 16;

/// Whether a span of `t` new tokens attends query by query (on CUDA: in the fused kernels).
pub(super) fn is_short(t: usize) -> bool {
    t > 0 && t <= QUERY_BY_QUERY_MAX
}

/// `h`: `[n, hidden]` normalized hidden states of all rows' new tokens, row after row as
/// described by `spans` (`(start, count)` per cache row); `(cos, sin)`: the layer's rotary
/// tables for those tokens (angle zero in NoPE layers). Returns `[n, heads * head_dim]`.
#[allow(clippy::too_many_arguments)]
pub(super) fn self_attention(
    config: &ModelConfig,
    rope: &Rope,
    (cos, sin): (&Tensor, &Tensor),
    block: &Attention,
    h: &Tensor,
    cache: &mut KvCache,
    layer: usize,
    step: &StepInputs,
) -> Result<Tensor> {
    let spans = &step.spans;
    let (heads, kv_heads, head_dim) = (config.num_heads, config.num_kv_heads, config.head_dim);
    let geometry = Geometry {
        heads,
        kv_heads,
        group: heads / kv_heads,
        head_dim,
        scale: match config.switches.multipliers.attention {
            Some(scale) => f64::from(scale),
            None => 1.0 / (head_dim as f64).sqrt(),
        },
    };
    let mut qkv = block.qkv.forward(h)?;
    if let Some(norm) = &block.qk_norm {
        // Before rotary embedding, as every family with these norms trains them.
        let eps = config.rms_norm_eps;
        qkv[0] = super::head_rms_norm(&qkv[0], &norm.q, heads, eps)?;
        qkv[1] = super::head_rms_norm(&qkv[1], &norm.k, kv_heads, eps)?;
    }
    let (q, k, v) = (&qkv[0], &qkv[1], &qkv[2]);
    #[cfg(feature = "cuda")]
    if h.device().is_cuda() && cache.dtype() == candle_core::DType::F32 {
        // The combining kernel quantizes in blocks of 32 only; a gated output is changed
        // after it, so it must not offer a quantized form.
        let for_q8 =
            block.o.int8_input() == Some(super::linear::Int8Blocks::Of32) && block.gate.is_none();
        let io = (cache, layer, step, for_q8);
        return cuda_self_attention(q, k, v, rope, (cos, sin), io, &geometry);
    }
    let q = rope
        .apply(&heads_major(q, heads, head_dim)?, cos, sin)?
        .squeeze(0)?;
    let k = rope
        .apply(&heads_major(k, kv_heads, head_dim)?, cos, sin)?
        .squeeze(0)?;
    let v = heads_major(v, kv_heads, head_dim)?.squeeze(0)?;
    // New keys and values go into the cache first (it needs `&mut`), then rows attend.
    let mut work = Vec::with_capacity(spans.len());
    for (row, &(start, t)) in spans.iter().enumerate() {
        if t == 0 {
            continue;
        }
        work.push(RowWork::append(
            cache,
            layer,
            row,
            q.narrow(1, start, t)?,
            &k.narrow(1, start, t)?,
            &v.narrow(1, start, t)?,
        )?);
    }
    let outputs = attend_rows(&work, &geometry, h.device())?;
    Ok(Tensor::cat(&outputs, 0)?)
}

/// `[t, count * head_dim]` token rows → `[1, count, t, head_dim]`, contiguous (the layout
/// rotary embedding and the matmul attention take).
fn heads_major(x: &Tensor, count: usize, head_dim: usize) -> Result<Tensor> {
    let t = x.dim(0)?;
    Ok(x.contiguous()?
        .reshape((t, count, head_dim))?
        .transpose(0, 1)?
        .contiguous()?
        .unsqueeze(0)?)
}

/// On CUDA, every query of a short span (decoding, verification) goes through the fused
/// kernels of `cuda_attention`, all rows in two launches, straight from the projections
/// (rotary embedding included); prefill spans take the matmul path.
#[cfg(feature = "cuda")]
#[allow(clippy::too_many_arguments)]
fn cuda_self_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    rope: &Rope,
    (cos, sin): (&Tensor, &Tensor),
    (cache, layer, step, for_q8): (&mut KvCache, usize, &StepInputs, bool),
    geometry: &Geometry,
) -> Result<Tensor> {
    use super::cuda_attention::{write_and_attend, LaneGeometry};

    let spans = &step.spans;
    let fused = match &step.lanes {
        None => None,
        Some(table) => {
            let lane_geometry = LaneGeometry {
                heads: geometry.heads,
                kv_heads: geometry.kv_heads,
                head_dim: geometry.head_dim,
                scale: geometry.scale as f32,
                interleaved_rope: rope.interleaved(),
            };
            Some(write_and_attend(
                (q, k, v),
                (cos, sin),
                table,
                layer,
                &lane_geometry,
                for_q8,
            )?)
        }
    };
    // Decoding and verification: every span is short, and the fused result holds them in
    // order, so it is the output as it stands (no copies; and the o projection finds the
    // int8 form the kernels left for it, see `cuda_q8::offer`).
    let all_short = spans.iter().all(|&(_, t)| t == 0 || is_short(t));
    if let (true, Some(fused)) = (all_short, &fused) {
        return Ok(fused.clone());
    }
    // Spans in order: short ones are slices of the fused result, long ones attend as on CPU.
    // Consecutive short spans are consecutive lanes of the fused result, so they go in as
    // one slice: a server's step of 63 decoding rows and one prompt then joins 3 pieces per
    // layer, not 64 (a copy launch each).
    let (heads, kv_heads, head_dim) = (geometry.heads, geometry.kv_heads, geometry.head_dim);
    let mut outputs = Vec::with_capacity(spans.len());
    let mut lane = 0;
    // Lanes of the fused result not yet in `outputs`: from `lane - pending` to `lane`.
    let mut pending = 0;
    for (row, &(start, t)) in spans.iter().enumerate() {
        if t == 0 {
            continue;
        }
        if let (true, Some(_)) = (is_short(t), &fused) {
            lane += t;
            pending += t;
            continue;
        }
        if let (true, Some(fused)) = (pending > 0, &fused) {
            outputs.push(fused.narrow(0, lane - pending, pending)?);
            pending = 0;
        }
        let (cos, sin) = (cos.narrow(0, start, t)?, sin.narrow(0, start, t)?);
        let rows = |x: &Tensor, count| heads_major(&x.narrow(0, start, t)?, count, head_dim);
        let q_span = rope.apply(&rows(q, heads)?, &cos, &sin)?.squeeze(0)?;
        let k_span = rope.apply(&rows(k, kv_heads)?, &cos, &sin)?.squeeze(0)?;
        let v_span = rows(v, kv_heads)?.squeeze(0)?;
        let work = RowWork::append(cache, layer, row, q_span, &k_span, &v_span)?;
        outputs.push(attend_row(&work, geometry)?);
    }
    if let (true, Some(fused)) = (pending > 0, &fused) {
        outputs.push(fused.narrow(0, lane - pending, pending)?);
    }
    Ok(if outputs.len() == 1 {
        outputs.pop().expect("one output")
    } else {
        Tensor::cat(&outputs, 0)?
    })
}

#[derive(Clone, Copy)]
struct Geometry {
    heads: usize,
    kv_heads: usize,
    group: usize,
    head_dim: usize,
    scale: f64,
}

/// One row's attention inputs: its new queries and everything cached for it.
struct RowWork {
    q: Tensor,
    keys: Tensor,
    values: Tensor,
    past: usize,
    t: usize,
}

impl RowWork {
    /// Each new query (`[heads, 1, head_dim]`) with exactly the keys and values it may see:
    /// the query at span position `i` sees the cache up to and including itself.
    fn queries_with_what_they_see(&self) -> Result<Vec<(Tensor, Tensor, Tensor)>> {
        (0..self.t)
            .map(|i| {
                let seen = self.past + i + 1;
                Ok((
                    self.q.narrow(1, i, 1)?,
                    self.keys.narrow(1, 0, seen)?,
                    self.values.narrow(1, 0, seen)?,
                ))
            })
            .collect()
    }

    /// Appends the row's new keys/values (`[kv_heads, t, head_dim]`) to its cache and pairs
    /// its queries (`[heads, t, head_dim]`) with everything now cached.
    fn append(
        cache: &mut KvCache,
        layer: usize,
        row: usize,
        q: Tensor,
        k: &Tensor,
        v: &Tensor,
    ) -> Result<RowWork> {
        let past = cache.len(row);
        let t = q.dim(1)?;
        let (keys, values) = cache.append(layer, row, k, v)?;
        Ok(RowWork {
            q,
            keys,
            values,
            past,
            t,
        })
    }
}

/// Each row's `[t, heads * head_dim]`, in row order. On CPU, rows are split over two threads
/// by their work (queries × cached positions): rows are independent, and the matmul pool's
/// threads are idle while attention runs. Each row's arithmetic is the same either way.
fn attend_rows(work: &[RowWork], geometry: &Geometry, device: &Device) -> Result<Vec<Tensor>> {
    let threads = k2_kernels::num_threads().min(2);
    let total: usize = work.iter().map(|w| w.t * (w.past + w.t)).sum();
    // Below this much work a thread costs more than it saves.
    const PARALLEL_MIN_WORK: usize = 2048;
    if let ([lone], true) = (work, matches!(device, Device::Cpu) && threads >= 2) {
        // One row verifying several positions (speculation in a single generation): its
        // key/value heads split over the two threads instead, where there is enough work.
        // A lone query (plain decoding) measured no faster split.
        if lone.t >= 2
            && total >= SPLIT_HEADS_MIN_WORK
            && geometry.kv_heads >= 2
            && is_short(lone.t)
        {
            if let Some(out) = attend_row_split_heads(lone, geometry)? {
                return Ok(vec![out]);
            }
        }
    }
    if !matches!(device, Device::Cpu) || threads < 2 || work.len() < 2 || total < PARALLEL_MIN_WORK
    {
        return work.iter().map(|w| attend_row(w, geometry)).collect();
    }
    // The first rows up to half the work on a helper thread, the rest here.
    let mut acc = 0;
    let split = work
        .iter()
        .position(|w| {
            acc += w.t * (w.past + w.t);
            acc * 2 >= total
        })
        .map_or(work.len(), |i| (i + 1).min(work.len() - 1));
    let (first, second) = work.split_at(split);
    std::thread::scope(|scope| {
        let helper = scope.spawn(|| {
            first
                .iter()
                .map(|w| attend_row(w, geometry))
                .collect::<Result<Vec<_>>>()
        });
        let mine = second
            .iter()
            .map(|w| attend_row(w, geometry))
            .collect::<Result<Vec<_>>>();
        let mut outputs = helper
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
        outputs.extend(mine?);
        Ok(outputs)
    })
}

/// Queries × cached positions from which one row's heads are split over two threads. Passes
/// of 5 positions over the 1.5B, 2 threads (`multipos_probe`, `K2_CONTEXT`): 1,000 cached
/// positions 56 ms against 64 split or not, 2,000: 67 against 89, 300: no gain.
const SPLIT_HEADS_MIN_WORK: usize = 3072;

/// One short row's attention as [`attend_row`] computes it, the first half of the key/value
/// heads on a helper thread: `[t, heads * head_dim]`, the same bits (each head's arithmetic
/// is unchanged), or `None` where the tensors are not f32 on the CPU.
fn attend_row_split_heads(work: &RowWork, geometry: &Geometry) -> Result<Option<Tensor>> {
    let Geometry {
        heads,
        kv_heads,
        group,
        head_dim,
        scale,
    } = *geometry;
    let queries = work.queries_with_what_they_see()?;
    let heads_of = |range: std::ops::Range<usize>| -> Result<Option<Vec<Vec<f32>>>> {
        queries
            .iter()
            .map(|(q, k, v)| {
                decode_attention::attend_one_heads(q, k, v, group, scale as f32, range.clone())
            })
            .collect()
    };
    let half = kv_heads / 2;
    let (first, second) = std::thread::scope(|scope| {
        let helper = scope.spawn(|| heads_of(0..half));
        let mine = heads_of(half..kv_heads);
        let theirs = helper
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (theirs, mine)
    });
    let (Some(first), Some(second)) = (first?, second?) else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(work.t * heads * head_dim);
    for (a, b) in first.into_iter().zip(second) {
        out.extend(a);
        out.extend(b);
    }
    Ok(Some(Tensor::from_vec(
        out,
        (work.t, heads * head_dim),
        &Device::Cpu,
    )?))
}

/// One row's attention: `[t, heads * head_dim]`.
fn attend_row(work: &RowWork, geometry: &Geometry) -> Result<Tensor> {
    let Geometry {
        heads,
        kv_heads,
        group,
        head_dim,
        scale,
    } = *geometry;
    let RowWork {
        q: q_span,
        keys,
        values,
        past,
        t,
    } = work;
    let (past, t) = (*past, *t);
    if t <= QUERY_BY_QUERY_MAX {
        // Each query alone against exactly the keys it may see: the same operations, on
        // the same shapes, as decoding that token by itself. Speculative verification
        // then reproduces plain decoding bit for bit (a masked multi-query matmul takes
        // other gemm paths, and the rounding difference grows through the layers).
        let mut outputs = Vec::with_capacity(t);
        for (q_one, keys_seen, values_seen) in work.queries_with_what_they_see()? {
            if let Some(out) =
                decode_attention::attend_one(&q_one, &keys_seen, &values_seen, group, scale as f32)?
            {
                outputs.push(out);
                continue;
            }
            let out = attend(
                &q_one,
                &keys_seen,
                &values_seen,
                None,
                (kv_heads, group, 1, head_dim, scale),
            )?;
            outputs.push(
                out.reshape((heads, head_dim))?
                    .reshape((1, heads * head_dim))?,
            );
        }
        Ok(Tensor::cat(&outputs, 0)?)
    } else {
        let mask = causal_mask(group, t, past, q_span.device())?;
        let out = attend(
            q_span,
            keys,
            values,
            Some(&mask),
            (kv_heads, group, t, head_dim, scale),
        )?;
        Ok(out
            .reshape((heads, t, head_dim))?
            .transpose(0, 1)?
            .reshape((t, heads * head_dim))?)
    }
}

/// Softmax attention of `q` (`[heads, t, head_dim]`) over `keys`/`values`
/// (`[kv_heads, len, head_dim]`). Queries sharing a key/value head are stacked so one matmul
/// serves the whole group. Returns `[kv_heads, group * t, head_dim]`.
fn attend(
    q: &Tensor,
    keys: &Tensor,
    values: &Tensor,
    mask: Option<&Tensor>,
    (kv_heads, group, t, head_dim, scale): (usize, usize, usize, usize, f64),
) -> Result<Tensor> {
    let q = q.contiguous()?.reshape((kv_heads, group * t, head_dim))?;
    let scores = (q.matmul(&keys.t()?)? * scale)?;
    let scores = match mask {
        Some(mask) => scores.broadcast_add(mask)?,
        None => scores,
    };
    let weights = candle_nn::ops::softmax_last_dim(&scores)?;
    Ok(weights.matmul(values)?)
}

/// `[group * t, past + t]`: query i (absolute position past + i) sees keys 0..=past + i.
fn causal_mask(group: usize, t: usize, past: usize, device: &Device) -> Result<Tensor> {
    let total = past + t;
    let mut mask = Vec::with_capacity(group * t * total);
    for _ in 0..group {
        for i in 0..t {
            mask.extend((0..total).map(|j| {
                if j <= past + i {
                    0.0f32
                } else {
                    f32::NEG_INFINITY
                }
            }));
        }
    }
    Ok(Tensor::from_vec(mask, (group * t, total), device)?)
}
