//! AVX2 (+FMA, F16C) fallback kernels for x86 CPUs without AVX-512 VNNI.
//!
//! Same tiles as the AVX-512 kernels; a 64-byte weight vector is processed as two
//! 32-byte halves (rows 0..8, rows 8..16), one pass over the tile per half (the
//! second pass hits L1/L2). Without VNNI the u8 x i8 dot is `vpmaddubsw` (i16,
//! saturating) + `vpmaddwd` by ones: exact for quants <= 64 (4/5/6-bit). 8-bit
//! B32 weights (Q8_0 + 128) would saturate, so they are re-centred (`w ^ 0x80` =
//! w - 128 as i8) and use the abs/sign trick; the +128·Σx is added back through
//! the block sums.

// Kernels index several per-row register arrays in lockstep by `r`.
#![allow(clippy::needless_range_loop)]

use core::arch::x86_64::*;

use crate::act::{Act32, ActK};
use crate::pack::*;
use crate::prefetch::{next_tile_block, wanted};

/// Activation rows per kernel call (16 ymm registers).
const MR2: usize = 4;

#[inline(always)]
unsafe fn bcast4(p: *const i8) -> __m256i {
    // SAFETY: caller guarantees p..p+4 is inside the activation buffer.
    unsafe { _mm256_set1_epi32(p.cast::<i32>().read_unaligned()) }
}

#[inline(always)]
unsafe fn load256(p: *const u8) -> __m256i {
    // SAFETY: caller guarantees 32 readable bytes at p.
    unsafe { _mm256_loadu_si256(p.cast()) }
}

#[inline(always)]
unsafe fn load_f16x8(p: *const u8) -> __m256 {
    // SAFETY: caller guarantees 16 readable bytes at p.
    unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
}

/// acc += Σ4 w(u8, <= 64) · x(i8) per i32 lane.
#[inline(always)]
unsafe fn dot_u8(acc: __m256i, w: __m256i, x: __m256i) -> __m256i {
    // SAFETY: register-only AVX2 arithmetic.
    unsafe {
        let p = _mm256_maddubs_epi16(w, x);
        _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)))
    }
}

/// acc += Σ4 w(i8) · x(i8) per i32 lane (abs/sign trick).
#[inline(always)]
unsafe fn dot_i8(acc: __m256i, w: __m256i, x: __m256i) -> __m256i {
    // SAFETY: register-only AVX2 arithmetic.
    unsafe { dot_u8(acc, _mm256_abs_epi8(w), _mm256_sign_epi8(x, w)) }
}

macro_rules! by_mr2 {
    ($n:expr, $f:ident [$($g:expr),*] ($($arg:expr),*)) => {
        match $n {
            1 => $f::<1 $(, $g)*>($($arg),*),
            2 => $f::<2 $(, $g)*>($($arg),*),
            3 => $f::<3 $(, $g)*>($($arg),*),
            4 => $f::<4 $(, $g)*>($($arg),*),
            n => panic!("unsupported row block {n}"),
        }
    };
}

pub(crate) fn tile_b32(p: &Packed, t: usize, a: &Act32, i0: usize, out: &mut [[f32; TR]]) {
    let (nb, cols) = (p.nb, p.cols);
    let tile = p.tile(t);
    assert!(tile.len() == nb * p.kind.tile_bytes() && cols == nb * 32);
    for (c, o) in out.chunks_mut(MR2).enumerate() {
        let i = i0 + c * MR2;
        let end = i + o.len();
        assert!(a.qs.len() >= end * cols && a.d.len() >= end * nb && a.s.len() >= end * nb);
        for h in 0..2 {
            // SAFETY: sizes checked above; AVX2/FMA/F16C enabled at compile time.
            unsafe {
                match p.kind {
                    Kind::B32x4 => by_mr2!(o.len(), b32[4](tile, nb, a, cols, i, h, o)),
                    Kind::B32x5 => by_mr2!(o.len(), b32[5](tile, nb, a, cols, i, h, o)),
                    _ => by_mr2!(o.len(), b32[8](tile, nb, a, cols, i, h, o)),
                }
            }
        }
    }
}

#[inline(always)]
unsafe fn b32<const MR: usize, const BITS: u32>(
    tile: &[u8],
    nb: usize,
    a: &Act32,
    cols: usize,
    i0: usize,
    h: usize,
    out: &mut [[f32; TR]],
) {
    // SAFETY: see tile_b32: every pointer below stays inside `tile` / `a`.
    unsafe {
        let tb = match BITS {
            4 => 320,
            5 => 384,
            _ => 576,
        };
        let bit4 = _mm256_set1_epi8(0x10);
        let base = tile.as_ptr();
        let qx: [*const i8; MR] = core::array::from_fn(|r| a.qs.as_ptr().add((i0 + r) * cols));
        let nib = _mm256_set1_epi8(0x0F);
        let flip = _mm256_set1_epi8(-128);
        let mut facc = [_mm256_setzero_ps(); MR];
        let prefetch = wanted(MR);
        for kb in 0..nb {
            let blk = base.add(kb * tb);
            // The first half's walk streams the weights; the second finds them cached.
            if prefetch && h == 0 {
                next_tile_block(blk, nb * tb, tb);
            }
            let q = blk.add(B32_Q + 32 * h);
            let mut s = [_mm256_setzero_si256(); MR];
            if BITS <= 5 {
                let hb = if BITS == 5 {
                    load256(blk.add(B32_H + 32 * h))
                } else {
                    nib
                };
                for v in 0..4 {
                    let w = load256(q.add(v * 64));
                    let mut lo = _mm256_and_si256(w, nib);
                    let mut hi = _mm256_and_si256(_mm256_srli_epi16::<4>(w), nib);
                    if BITS == 5 {
                        let (hl, hh) = match v {
                            0 => (_mm256_slli_epi16::<4>(hb), hb),
                            1 => (_mm256_slli_epi16::<3>(hb), _mm256_srli_epi16::<1>(hb)),
                            2 => (_mm256_slli_epi16::<2>(hb), _mm256_srli_epi16::<2>(hb)),
                            _ => (_mm256_slli_epi16::<1>(hb), _mm256_srli_epi16::<3>(hb)),
                        };
                        lo = _mm256_or_si256(lo, _mm256_and_si256(hl, bit4));
                        hi = _mm256_or_si256(hi, _mm256_and_si256(hh, bit4));
                    }
                    for r in 0..MR {
                        let x = qx[r].add(kb * 32 + 4 * v);
                        s[r] = dot_u8(s[r], lo, bcast4(x));
                        s[r] = dot_u8(s[r], hi, bcast4(x.add(16)));
                    }
                }
            } else {
                for g in 0..8 {
                    let w = _mm256_xor_si256(load256(q.add(g * 64)), flip);
                    for r in 0..MR {
                        s[r] = dot_i8(s[r], w, bcast4(qx[r].add(kb * 32 + 4 * g)));
                    }
                }
            }
            let d = load_f16x8(blk.add(B32_D + 16 * h));
            let mut m = load_f16x8(blk.add(B32_M + 16 * h));
            if BITS == 8 {
                // Σw·x = Σ(w-128)·x + 128·Σx.
                m = _mm256_fmadd_ps(d, _mm256_set1_ps(128.0), m);
            }
            for r in 0..MR {
                let i = (i0 + r) * nb + kb;
                let ddx = _mm256_mul_ps(d, _mm256_set1_ps(a.d[i]));
                facc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[r]), ddx, facc[r]);
                facc[r] = _mm256_fmadd_ps(m, _mm256_set1_ps(a.s[i]), facc[r]);
            }
        }
        store::<MR>(&facc, h, out);
    }
}

#[inline(always)]
unsafe fn store<const MR: usize>(acc: &[__m256; MR], h: usize, out: &mut [[f32; TR]]) {
    for r in 0..MR {
        // SAFETY: out has MR rows of 16 f32; h * 8 + 8 <= 16.
        unsafe {
            let o = out[r].as_mut_ptr().add(8 * h);
            _mm256_storeu_ps(o, _mm256_add_ps(_mm256_loadu_ps(o), acc[r]));
        }
    }
}

pub(crate) fn tile_k(p: &Packed, t: usize, a: &ActK, i0: usize, out: &mut [[f32; TR]]) {
    let (nb, cols) = (p.nb, p.cols);
    let tile = p.tile(t);
    assert!(tile.len() == nb * p.kind.tile_bytes() && cols == nb * 256);
    for (c, o) in out.chunks_mut(MR2).enumerate() {
        let i = i0 + c * MR2;
        let end = i + o.len();
        assert!(a.qs.len() >= end * cols && a.d.len() >= end * nb && a.bs32.len() >= end * nb * 8);
        for h in 0..2 {
            // SAFETY: sizes checked above; AVX2/FMA/F16C enabled at compile time.
            unsafe {
                if p.kind == Kind::K4 {
                    by_mr2!(o.len(), kq[true](tile, nb, a, cols, i, h, o))
                } else {
                    by_mr2!(o.len(), kq[false](tile, nb, a, cols, i, h, o))
                }
            }
        }
    }
}

#[inline(always)]
unsafe fn kq<const MR: usize, const B4: bool>(
    tile: &[u8],
    nb: usize,
    a: &ActK,
    cols: usize,
    i0: usize,
    h: usize,
    out: &mut [[f32; TR]],
) {
    // SAFETY: see tile_k: every pointer below stays inside `tile` / `a`.
    unsafe {
        let tb = if B4 { 2368 } else { 4416 };
        let base = tile.as_ptr();
        let qx: [*const i8; MR] = core::array::from_fn(|r| a.qs.as_ptr().add((i0 + r) * cols));
        let nib = _mm256_set1_epi8(0x0F);
        let mut facc = [_mm256_setzero_ps(); MR];
        let prefetch = wanted(MR);
        for kb in 0..nb {
            let blk = base.add(kb * tb);
            // The first half's walk streams the weights; the second finds them cached.
            if prefetch && h == 0 {
                next_tile_block(blk, nb * tb, tb);
            }
            let mut bacc = [_mm256_setzero_si256(); MR];
            for j in 0..8 {
                let mut s = [_mm256_setzero_si256(); MR];
                if B4 {
                    let q = blk.add(K_Q + j * 256 + 32 * h);
                    for v in 0..4 {
                        let w = load256(q.add(v * 64));
                        let lo = _mm256_and_si256(w, nib);
                        let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(w), nib);
                        for r in 0..MR {
                            let x = qx[r].add(kb * 256 + j * 32 + 4 * v);
                            s[r] = dot_u8(s[r], lo, bcast4(x));
                            s[r] = dot_u8(s[r], hi, bcast4(x.add(16)));
                        }
                    }
                } else {
                    let q = blk.add(K_Q + j * 512 + 32 * h);
                    for g in 0..8 {
                        let w = load256(q.add(g * 64));
                        for r in 0..MR {
                            s[r] = dot_u8(s[r], w, bcast4(qx[r].add(kb * 256 + j * 32 + 4 * g)));
                        }
                    }
                }
                let sc =
                    _mm256_cvtepu8_epi32(_mm_loadl_epi64(blk.add(K_SC + j * 16 + 8 * h).cast()));
                for r in 0..MR {
                    bacc[r] = _mm256_add_epi32(bacc[r], _mm256_mullo_epi32(s[r], sc));
                }
            }
            let mut macc = [_mm256_setzero_si256(); MR];
            for pp in 0..4 {
                let mn =
                    _mm256_cvtepu8_epi16(_mm_loadu_si128(blk.add(K_MN + pp * 32 + 16 * h).cast()));
                for r in 0..MR {
                    let b = a.bs32.as_ptr().add(((i0 + r) * nb + kb) * 8 + 2 * pp);
                    let b = _mm256_set1_epi32(b.cast::<i32>().read_unaligned());
                    macc[r] = _mm256_add_epi32(macc[r], _mm256_madd_epi16(mn, b));
                }
            }
            let d = load_f16x8(blk.add(K_D + 16 * h));
            let dmin = load_f16x8(blk.add(K_DMIN + 16 * h));
            for r in 0..MR {
                let mterm = _mm256_mul_ps(_mm256_cvtepi32_ps(macc[r]), dmin);
                let v = _mm256_fmsub_ps(_mm256_cvtepi32_ps(bacc[r]), d, mterm);
                let dx = _mm256_set1_ps(a.d[(i0 + r) * nb + kb]);
                facc[r] = _mm256_fmadd_ps(v, dx, facc[r]);
            }
        }
        store::<MR>(&facc, h, out);
    }
}

pub(crate) fn tile_q6k(p: &Packed, t: usize, a: &ActK, i0: usize, out: &mut [[f32; TR]]) {
    let (nb, cols) = (p.nb, p.cols);
    let tile = p.tile(t);
    assert!(tile.len() == nb * p.kind.tile_bytes() && cols == nb * 256);
    for (c, o) in out.chunks_mut(MR2).enumerate() {
        let i = i0 + c * MR2;
        let end = i + o.len();
        assert!(a.qs.len() >= end * cols && a.d.len() >= end * nb && a.bs16.len() >= end * nb * 16);
        for h in 0..2 {
            // SAFETY: sizes checked above; AVX2/FMA/F16C enabled at compile time.
            unsafe { by_mr2!(o.len(), q6k[](tile, nb, a, cols, i, h, o)) }
        }
    }
}

#[inline(always)]
unsafe fn q6k<const MR: usize>(
    tile: &[u8],
    nb: usize,
    a: &ActK,
    cols: usize,
    i0: usize,
    h: usize,
    out: &mut [[f32; TR]],
) {
    // SAFETY: see tile_q6k: every pointer below stays inside `tile` / `a`.
    unsafe {
        let base = tile.as_ptr();
        let qx: [*const i8; MR] = core::array::from_fn(|r| a.qs.as_ptr().add((i0 + r) * cols));
        let nib = _mm256_set1_epi8(0x0F);
        let top = _mm256_set1_epi8(0x30);
        let mut facc = [_mm256_setzero_ps(); MR];
        let prefetch = wanted(MR);
        for kb in 0..nb {
            let blk = base.add(kb * 3392);
            // The first half's walk streams the weights; the second finds them cached.
            if prefetch && h == 0 {
                next_tile_block(blk, nb * 3392, 3392);
            }
            let mut bacc = [_mm256_setzero_si256(); MR];
            for j in 0..16 {
                let q = blk.add(Q6_Q + j * 192 + 32 * h);
                let n0 = load256(q);
                let n1 = load256(q.add(64));
                let hb = load256(q.add(128));
                let w4 = [
                    _mm256_or_si256(
                        _mm256_and_si256(n0, nib),
                        _mm256_and_si256(_mm256_slli_epi16::<4>(hb), top),
                    ),
                    _mm256_or_si256(
                        _mm256_and_si256(n1, nib),
                        _mm256_and_si256(_mm256_slli_epi16::<2>(hb), top),
                    ),
                    _mm256_or_si256(
                        _mm256_and_si256(_mm256_srli_epi16::<4>(n0), nib),
                        _mm256_and_si256(hb, top),
                    ),
                    _mm256_or_si256(
                        _mm256_and_si256(_mm256_srli_epi16::<4>(n1), nib),
                        _mm256_and_si256(_mm256_srli_epi16::<2>(hb), top),
                    ),
                ];
                let mut s: [__m256i; MR] = core::array::from_fn(|r| {
                    _mm256_set1_epi32(-32 * a.bs16[((i0 + r) * nb + kb) * 16 + j] as i32)
                });
                for (g, &w) in w4.iter().enumerate() {
                    for r in 0..MR {
                        s[r] = dot_u8(s[r], w, bcast4(qx[r].add(kb * 256 + j * 16 + 4 * g)));
                    }
                }
                let sc =
                    _mm256_cvtepi8_epi32(_mm_loadl_epi64(blk.add(Q6_SC + j * 16 + 8 * h).cast()));
                for r in 0..MR {
                    bacc[r] = _mm256_add_epi32(bacc[r], _mm256_mullo_epi32(s[r], sc));
                }
            }
            let d = load_f16x8(blk.add(Q6_D + 16 * h));
            for r in 0..MR {
                let ddx = _mm256_mul_ps(d, _mm256_set1_ps(a.d[(i0 + r) * nb + kb]));
                facc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(bacc[r]), ddx, facc[r]);
            }
        }
        store::<MR>(&facc, h, out);
    }
}
