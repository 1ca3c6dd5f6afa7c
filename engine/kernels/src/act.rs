//! Activation quantization: each matmul quantizes its f32 input rows once to 8-bit
//! blocks so that the inner loops are integer dot products (u8 weights x i8
//! activations, `vpdpbusd` on AVX-512 VNNI).
//!
//! * [`Act32`]: 32-element blocks (for the 32-block weight formats): scale `d`,
//!   `s = d * sum(q)` (folds the weight offset/min term into one multiply).
//! * [`ActK`]: 256-element super-blocks (for K-quants): one scale per 256 plus
//!   integer sums per 16 and per 32 elements (for the K-quant min/offset terms).
//!
//! Symmetric scale `d = amax / 127`, round-to-nearest-even (vectorizes to
//! `vrndscaleps`).

/// 32-block quantized activations for `m` rows of `cols` values.
#[derive(Default)]
pub(crate) struct Act32 {
    pub qs: Vec<i8>,
    pub d: Vec<f32>,
    pub s: Vec<f32>,
}

/// 256-block quantized activations for `m` rows of `cols` values.
#[derive(Default)]
pub(crate) struct ActK {
    pub qs: Vec<i8>,
    pub d: Vec<f32>,
    /// 16 sums of 16 consecutive quants per super-block.
    pub bs16: Vec<i16>,
    /// 8 sums of 32 consecutive quants per super-block.
    pub bs32: Vec<i16>,
}

#[inline]
fn quantize_block(x: &[f32], q: &mut [i8]) -> f32 {
    let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
    let d = amax / 127.0;
    let id = if amax > 0.0 { 127.0 / amax } else { 0.0 };
    for (q, &v) in q.iter_mut().zip(x) {
        *q = (v * id).round_ties_even() as i8;
    }
    d
}

impl Act32 {
    pub fn quantize(&mut self, x: &[f32], m: usize, cols: usize) {
        let nb = cols / 32;
        self.qs.resize(m * cols, 0);
        self.d.resize(m * nb, 0.0);
        self.s.resize(m * nb, 0.0);
        for (bi, (xb, qb)) in x[..m * cols]
            .chunks_exact(32)
            .zip(self.qs.chunks_exact_mut(32))
            .enumerate()
        {
            let d = quantize_block(xb, qb);
            let sum: i32 = qb.iter().map(|&v| v as i32).sum();
            self.d[bi] = d;
            self.s[bi] = d * sum as f32;
        }
    }
}

impl ActK {
    pub fn quantize(&mut self, x: &[f32], m: usize, cols: usize) {
        let nb = cols / 256;
        self.qs.resize(m * cols, 0);
        self.d.resize(m * nb, 0.0);
        self.bs16.resize(m * nb * 16, 0);
        self.bs32.resize(m * nb * 8, 0);
        for (bi, (xb, qb)) in x[..m * cols]
            .chunks_exact(256)
            .zip(self.qs.chunks_exact_mut(256))
            .enumerate()
        {
            self.d[bi] = quantize_block(xb, qb);
            for (j, q16) in qb.chunks_exact(16).enumerate() {
                self.bs16[bi * 16 + j] = q16.iter().map(|&v| v as i16).sum();
            }
            for j in 0..8 {
                self.bs32[bi * 8 + j] = self.bs16[bi * 16 + 2 * j] + self.bs16[bi * 16 + 2 * j + 1];
            }
        }
    }
}
