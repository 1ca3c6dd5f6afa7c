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

/// Quantizes one block (`x.len()` a multiple of 16) to `q`, writes the sum of every
/// 16 quants to `sums16`, returns the scale.
#[inline]
fn quantize_block(x: &[f32], q: &mut [i8], sums16: &mut [i16]) -> f32 {
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx512f",
        target_feature = "avx512bw",
        target_feature = "avx512vnni"
    ))]
    {
        crate::avx512::quantize_block(x, q, sums16)
    }
    #[cfg(not(all(
        target_arch = "x86_64",
        target_feature = "avx512f",
        target_feature = "avx512bw",
        target_feature = "avx512vnni"
    )))]
    {
        quantize_block_scalar(x, q, sums16)
    }
}

#[allow(dead_code)] // unused when the AVX-512 version is compiled in
pub(crate) fn quantize_block_scalar(x: &[f32], q: &mut [i8], sums16: &mut [i16]) -> f32 {
    // 8 independent lanes so the max reduction vectorizes (a plain fold is serial).
    let mut lanes = [0f32; 8];
    for c in x.chunks_exact(8) {
        for (l, &v) in lanes.iter_mut().zip(c) {
            let a = v.abs();
            *l = if a > *l { a } else { *l };
        }
    }
    let amax = lanes.iter().fold(0f32, |a, &v| a.max(v));
    let d = amax / 127.0;
    let id = if amax > 0.0 { 127.0 / amax } else { 0.0 };
    for (q, &v) in q.iter_mut().zip(x) {
        *q = (v * id).round_ties_even() as i8;
    }
    for (s, c) in sums16.iter_mut().zip(q.chunks_exact(16)) {
        *s = c.iter().map(|&v| v as i16).sum();
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
            let mut s16 = [0i16; 2];
            let d = quantize_block(xb, qb, &mut s16);
            self.d[bi] = d;
            self.s[bi] = d * (s16[0] + s16[1]) as f32;
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
            self.d[bi] = quantize_block(xb, qb, &mut self.bs16[bi * 16..][..16]);
            for j in 0..8 {
                self.bs32[bi * 8 + j] = self.bs16[bi * 16 + 2 * j] + self.bs16[bi * 16 + 2 * j + 1];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simd_quantization_matches_scalar() {
        let mut s = 12345u32;
        for n in [32usize, 256] {
            for case in 0..50 {
                let x: Vec<f32> = (0..n)
                    .map(|_| {
                        s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                        let v = (s >> 8) as f32 / (1 << 24) as f32 - 0.5;
                        if case == 0 {
                            0.0
                        } else {
                            v * (case as f32)
                        }
                    })
                    .collect();
                let (mut q1, mut q2) = (vec![0i8; n], vec![0i8; n]);
                let (mut s1, mut s2) = (vec![0i16; n / 16], vec![0i16; n / 16]);
                let d1 = quantize_block(&x, &mut q1, &mut s1);
                let d2 = quantize_block_scalar(&x, &mut q2, &mut s2);
                assert_eq!(d1.to_bits(), d2.to_bits());
                assert_eq!(q1, q2);
                assert_eq!(s1, s2);
                for (i, &v) in x.iter().enumerate() {
                    assert!((v - q1[i] as f32 * d1).abs() <= d1 * 0.5 + 1e-6);
                }
            }
        }
    }
}
