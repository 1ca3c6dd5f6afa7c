//! The gated delta rule: the recurrence of Gated DeltaNet layers (Qwen3.5's linear attention,
//! the hybrid-models issue), for one value head, on the CPU.
//!
//! A head keeps a state `S` of `key_dim × value_dim` (`S[i][j]`: key component `i`, value
//! component `j`) instead of a key/value cache. For each token, with `q` and `k` l2-normalized
//! (and `q` scaled by `1/√key_dim`), a log-decay `g <= 0` and a write strength `beta`:
//!
//! 1. `S = e^g S` (decay);
//! 2. `d = beta (v - Sᵀk)` (what the state predicts for `k`, corrected towards `v`);
//! 3. `S = S + k dᵀ` (write);
//! 4. `o = Sᵀq` (read, after the write).
//!
//! [`recurrent`] runs that token by token (decoding). [`chunked`] computes the same thing a
//! chunk of tokens at a time (prefill): within a chunk the corrections `d` solve one unit
//! lower-triangular system, so the state is read and written once per chunk instead of once
//! per token. Both are checked against transformers' own `torch_chunk_gated_delta_rule` and
//! `torch_recurrent_gated_delta_rule` (`tests/fixtures/qwen35/delta-rule/`).

/// The sizes of one head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadDims {
    pub key_dim: usize,
    pub value_dim: usize,
}

/// One head's inputs for `tokens` consecutive tokens: `q`, `k` `[tokens, key_dim]` (raw: see
/// [`normalize_queries_and_keys`]), `v` `[tokens, value_dim]`, `g` and `beta` `[tokens]`.
pub struct HeadInputs<'a> {
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub g: &'a [f32],
    pub beta: &'a [f32],
}

impl<'a> HeadInputs<'a> {
    fn tokens(&self) -> usize {
        self.g.len()
    }

    /// The inputs of tokens `from..to`.
    pub fn span(&self, dims: HeadDims, from: usize, to: usize) -> HeadInputs<'a> {
        let (dk, dv) = (dims.key_dim, dims.value_dim);
        HeadInputs {
            q: &self.q[from * dk..to * dk],
            k: &self.k[from * dk..to * dk],
            v: &self.v[from * dv..to * dv],
            g: &self.g[from..to],
            beta: &self.beta[from..to],
        }
    }
}

/// The l2 norm's epsilon, as transformers' `l2norm` (llama.cpp uses the model's RMS norm
/// epsilon, 1e-6 in every released Qwen3.5).
const L2_EPS: f32 = 1e-6;

/// Each token's query and key divided by its l2 norm, and the query by `√key_dim` too: the
/// form both recurrences take.
pub fn normalize_queries_and_keys(q: &mut [f32], k: &mut [f32], key_dim: usize) {
    let scale = 1.0 / (key_dim as f32).sqrt();
    for (x, extra) in [(q, scale), (k, 1.0)] {
        for row in x.chunks_exact_mut(key_dim) {
            let norm = 1.0 / (row.iter().map(|v| v * v).sum::<f32>() + L2_EPS).sqrt();
            row.iter_mut().for_each(|v| *v *= norm * extra);
        }
    }
}

/// Token by token: updates `state` and writes each token's output to `out`
/// (`[tokens, value_dim]`). `q` and `k` must be normalized.
pub fn recurrent(state: &mut [f32], dims: HeadDims, x: &HeadInputs<'_>, out: &mut [f32]) {
    let (dk, dv) = (dims.key_dim, dims.value_dim);
    let mut d = vec![0f32; dv];
    for t in 0..x.tokens() {
        let (q, k, v) = (
            &x.q[t * dk..][..dk],
            &x.k[t * dk..][..dk],
            &x.v[t * dv..][..dv],
        );
        // Two sweeps over the state instead of four: decay with the read of `Sᵀk`, then
        // the write with the read of `Sᵀq` (the same arithmetic in the same order).
        let decay = x.g[t].exp();
        d.copy_from_slice(v);
        for (i, row) in state.chunks_exact_mut(dv).enumerate() {
            for (dj, s) in d.iter_mut().zip(row) {
                *s *= decay;
                *dj -= *s * k[i];
            }
        }
        d.iter_mut().for_each(|dj| *dj *= x.beta[t]);
        let o = &mut out[t * dv..][..dv];
        o.fill(0.0);
        for (i, row) in state.chunks_exact_mut(dv).enumerate() {
            for ((s, dj), oj) in row.iter_mut().zip(&d).zip(o.iter_mut()) {
                *s += k[i] * dj;
                *oj += *s * q[i];
            }
        }
    }
}

/// Chunks of `chunk` tokens (the last may be shorter): the same results as [`recurrent`] up
/// to rounding. `q` and `k` must be normalized.
///
/// Within a chunk starting from state `S0`, with `c_t` the sum of the log-decays up to token
/// `t` and `γ(t, s) = e^(c_t - c_s)`:
/// - `d_t = beta_t (v_t - e^(c_t) S0ᵀk_t - Σ_{s<t} γ(t, s) (k_s·k_t) d_s)`: forward
///   substitution down the chunk;
/// - `o_t = e^(c_t) S0ᵀq_t + Σ_{s<=t} γ(t, s) (k_s·q_t) d_s`;
/// - the state after the chunk is `e^(c_last) S0 + Σ_s γ(last, s) k_s d_sᵀ`.
pub fn chunked(
    state: &mut [f32],
    dims: HeadDims,
    x: &HeadInputs<'_>,
    chunk: usize,
    out: &mut [f32],
) {
    let (dk, dv) = (dims.key_dim, dims.value_dim);
    let tokens = x.tokens();
    let mut start = 0;
    while start < tokens {
        let n = chunk.min(tokens - start);
        let q = &x.q[start * dk..][..n * dk];
        let k = &x.k[start * dk..][..n * dk];
        let v = &x.v[start * dv..][..n * dv];
        let mut c = vec![0f32; n];
        let mut sum = 0.0;
        for (ct, g) in c.iter_mut().zip(&x.g[start..start + n]) {
            sum += g;
            *ct = sum;
        }
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
        let key = |t: usize| &k[t * dk..][..dk];
        let query = |t: usize| &q[t * dk..][..dk];
        // S0ᵀx for a key-sized x.
        let read = |x: &[f32], into: &mut [f32]| {
            into.fill(0.0);
            for (i, row) in state.chunks_exact(dv).enumerate() {
                for (o, s) in into.iter_mut().zip(row) {
                    *o += s * x[i];
                }
            }
        };
        // The corrections d, [n, value_dim].
        let mut d = vec![0f32; n * dv];
        let mut s0_k = vec![0f32; dv];
        for t in 0..n {
            read(key(t), &mut s0_k);
            let (done, rest) = d.split_at_mut(t * dv);
            let dt = &mut rest[..dv];
            let from_start = c[t].exp();
            for ((o, vj), sj) in dt.iter_mut().zip(&v[t * dv..][..dv]).zip(&s0_k) {
                *o = vj - from_start * sj;
            }
            for s in 0..t {
                let w = (c[t] - c[s]).exp() * dot(key(s), key(t));
                for (o, ds) in dt.iter_mut().zip(&done[s * dv..][..dv]) {
                    *o -= w * ds;
                }
            }
            let beta = x.beta[start + t];
            dt.iter_mut().for_each(|o| *o *= beta);
        }
        // Outputs, from the state at the chunk's start and the chunk's own writes.
        let mut s0_q = vec![0f32; dv];
        for t in 0..n {
            read(query(t), &mut s0_q);
            let o = &mut out[(start + t) * dv..][..dv];
            let from_start = c[t].exp();
            for (oj, sj) in o.iter_mut().zip(&s0_q) {
                *oj = from_start * sj;
            }
            for s in 0..=t {
                let w = (c[t] - c[s]).exp() * dot(key(s), query(t));
                for (oj, ds) in o.iter_mut().zip(&d[s * dv..][..dv]) {
                    *oj += w * ds;
                }
            }
        }
        // The state after the chunk.
        let last = c[n - 1];
        let decay = last.exp();
        state.iter_mut().for_each(|s| *s *= decay);
        for s in 0..n {
            let w = (last - c[s]).exp();
            let ks = key(s);
            for (i, row) in state.chunks_exact_mut(dv).enumerate() {
                let ki = w * ks[i];
                for (sj, ds) in row.iter_mut().zip(&d[s * dv..][..dv]) {
                    *sj += ki * ds;
                }
            }
        }
        start += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// transformers' inputs and results (`scripts/fixtures/qwen35_fixtures.py delta`).
    struct Fixture {
        tokens: usize,
        heads: usize,
        dims: HeadDims,
        dir: PathBuf,
    }

    impl Fixture {
        fn load() -> Fixture {
            let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/fixtures/qwen35/delta-rule");
            let meta: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(dir.join("case.json")).unwrap())
                    .unwrap();
            let get = |key: &str| meta[key].as_u64().unwrap() as usize;
            Fixture {
                tokens: get("tokens"),
                heads: get("heads"),
                dims: HeadDims {
                    key_dim: get("key_dim"),
                    value_dim: get("value_dim"),
                },
                dir,
            }
        }

        fn array(&self, name: &str) -> Vec<f32> {
            std::fs::read(self.dir.join(format!("{name}.f32")))
                .unwrap()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        }

        /// One head's column of a `[tokens, heads, width]` array.
        fn head(&self, all: &[f32], head: usize, width: usize) -> Vec<f32> {
            (0..self.tokens)
                .flat_map(|t| all[(t * self.heads + head) * width..][..width].to_vec())
                .collect()
        }

        /// One head's `[key_dim, value_dim]` state.
        fn state(&self, all: &[f32], head: usize) -> Vec<f32> {
            let size = self.dims.key_dim * self.dims.value_dim;
            all[head * size..][..size].to_vec()
        }
    }

    /// One head's inputs, owned: normalized q and k, and the raw v, g, beta.
    struct OwnedHead([Vec<f32>; 5]);

    impl OwnedHead {
        fn load(f: &Fixture, head: usize) -> OwnedHead {
            let (dk, dv) = (f.dims.key_dim, f.dims.value_dim);
            let mut q = f.head(&f.array("q"), head, dk);
            let mut k = f.head(&f.array("k"), head, dk);
            normalize_queries_and_keys(&mut q, &mut k, dk);
            OwnedHead([
                q,
                k,
                f.head(&f.array("v"), head, dv),
                f.head(&f.array("g"), head, 1),
                f.head(&f.array("beta"), head, 1),
            ])
        }

        fn inputs(&self) -> HeadInputs<'_> {
            let [q, k, v, g, beta] = &self.0;
            HeadInputs { q, k, v, g, beta }
        }
    }

    fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn qwen35_delta_rule_matches_transformers_token_by_token_and_in_chunks() {
        let f = Fixture::load();
        let dv = f.dims.value_dim;
        let expected_out = f.array("recurrent_out");
        let expected_state = f.array("recurrent_state");
        for head in 0..f.heads {
            let owned = OwnedHead::load(&f, head);
            let x = owned.inputs();
            let want_out = f.head(&expected_out, head, dv);
            let want_state = f.state(&expected_state, head);
            for chunk in [None, Some(64), Some(7)] {
                let mut state = f.state(&f.array("initial_state"), head);
                let mut out = vec![0f32; f.tokens * dv];
                match chunk {
                    None => recurrent(&mut state, f.dims, &x, &mut out),
                    Some(size) => chunked(&mut state, f.dims, &x, size, &mut out),
                }
                let (out_err, state_err) = (
                    max_abs_diff(&out, &want_out),
                    max_abs_diff(&state, &want_state),
                );
                assert!(
                    out_err < 1e-4,
                    "head {head}, chunk {chunk:?}: output {out_err}"
                );
                assert!(
                    state_err < 1e-4,
                    "head {head}, chunk {chunk:?}: state {state_err}"
                );
            }
        }
        // transformers' chunked form agrees with its recurrent one (the fixture's own check).
        assert!(max_abs_diff(&f.array("chunked_out"), &expected_out) < 1e-5);
    }

    #[test]
    fn qwen35_delta_rule_prefill_in_chunks_then_decoding_continues_the_same_state() {
        let f = Fixture::load();
        let dv = f.dims.value_dim;
        let owned = OwnedHead::load(&f, 1);
        let all = owned.inputs();
        let split = 70;
        let part = |from: usize, to: usize| all.span(f.dims, from, to);
        let initial = f.state(&f.array("initial_state"), 1);
        let mut whole_state = initial.clone();
        let mut whole = vec![0f32; f.tokens * dv];
        recurrent(&mut whole_state, f.dims, &part(0, f.tokens), &mut whole);

        let mut state = initial;
        let mut out = vec![0f32; f.tokens * dv];
        chunked(
            &mut state,
            f.dims,
            &part(0, split),
            64,
            &mut out[..split * dv],
        );
        for t in split..f.tokens {
            recurrent(
                &mut state,
                f.dims,
                &part(t, t + 1),
                &mut out[t * dv..(t + 1) * dv],
            );
        }
        assert!(max_abs_diff(&out, &whole) < 1e-4);
        assert!(max_abs_diff(&state, &whole_state) < 1e-4);
    }
}
