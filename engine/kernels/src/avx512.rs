//! AVX-512 VNNI kernels over the packed tiles (compiled only when the build target
//! has AVX-512 F/BW/VNNI; `.cargo/config.toml` builds with `target-cpu=native`).
//!
//! Register layout: one zmm = the 16 rows of a tile (one i32/f32 lane per row).
//! Each weight vector (4 consecutive weights x 16 rows, u8) meets a 4-byte
//! broadcast of the activation quants in `vpdpbusd` (u8 x i8 → i32), once per
//! activation row: `MR` activation rows (1..=4) reuse every weight load, which is
//! the register blocking that makes prefill compute-bound instead of load-bound.
//! Two partial accumulators per row halve the `vpdpbusd` dependency chains.

use core::arch::x86_64::*;

use crate::act::{Act32, ActK};
use crate::pack::*;
use crate::prefetch::{next_tile_block, wanted};

/// Broadcasts 4 activation quants (one dword) to all lanes.
#[inline(always)]
unsafe fn bcast4(p: *const i8) -> __m512i {
    // SAFETY: caller guarantees p..p+4 is inside the activation buffer.
    unsafe { _mm512_set1_epi32(p.cast::<i32>().read_unaligned()) }
}

/// Loads 16 f16 values (32-byte aligned) as 16 f32 lanes.
#[inline(always)]
unsafe fn load_f16x16(p: *const u8) -> __m512 {
    // SAFETY: caller guarantees 32 readable bytes at p.
    unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p.cast())) }
}

#[inline(always)]
unsafe fn load512(p: *const u8) -> __m512i {
    // SAFETY: caller guarantees 64 readable bytes at p (64-byte aligned tiles).
    unsafe { _mm512_load_si512(p.cast()) }
}

#[inline(always)]
unsafe fn store_acc<const MR: usize>(acc: &[__m512; MR], out: &mut [[f32; TR]]) {
    for r in 0..MR {
        // SAFETY: out has MR rows of 16 f32 (checked by the dispatcher).
        unsafe {
            let o = out[r].as_mut_ptr();
            _mm512_storeu_ps(o, _mm512_add_ps(_mm512_loadu_ps(o), acc[r]));
        }
    }
}

/// The second partial accumulator: its own registers when MR <= 2 (dependency
/// chains are the bottleneck), else the first one (registers are).
macro_rules! dp_second {
    ($s0:ident, $s1:ident, $r:ident, $w:expr, $x:expr) => {{
        let acc = if MR <= 2 { &mut $s1[$r] } else { &mut $s0[$r] };
        *acc = _mm512_dpbusd_epi32(*acc, $w, $x);
    }};
}

/// Dispatches on the number of activation rows (1..=4) to a monomorphized kernel.
macro_rules! by_mr {
    ($out:expr, $f:ident [$($g:expr),*] ($($arg:expr),*)) => {
        match $out.len() {
            1 => $f::<1 $(, $g)*>($($arg),*),
            2 => $f::<2 $(, $g)*>($($arg),*),
            3 => $f::<3 $(, $g)*>($($arg),*),
            4 => $f::<4 $(, $g)*>($($arg),*),
            5 => $f::<5 $(, $g)*>($($arg),*),
            6 => $f::<6 $(, $g)*>($($arg),*),
            7 => $f::<7 $(, $g)*>($($arg),*),
            8 => $f::<8 $(, $g)*>($($arg),*),
            n => panic!("unsupported row block {n}"),
        }
    };
}

pub(crate) fn tile_b32(p: &Packed, t: usize, a: &Act32, i0: usize, out: &mut [[f32; TR]]) {
    let (nb, cols) = (p.nb, p.cols);
    let tile = p.tile(t);
    let end = i0 + out.len();
    // The unsafe kernels index activations and tiles by these sizes.
    assert!(a.qs.len() >= end * cols && a.d.len() >= end * nb && a.s.len() >= end * nb);
    assert!(tile.len() == nb * p.kind.tile_bytes() && cols == nb * 32);
    // SAFETY: sizes checked above; AVX-512 F/BW/VNNI are enabled at compile time.
    unsafe {
        match p.kind {
            Kind::B32x4 => by_mr!(out, b32[4](tile, nb, a, cols, i0, out)),
            Kind::B32x5 => by_mr!(out, b32[5](tile, nb, a, cols, i0, out)),
            _ => by_mr!(out, b32[8](tile, nb, a, cols, i0, out)),
        }
    }
}

/// 32-blocks: y += d·dx·Σ(q·qx) + m·sx per block.
#[inline(always)]
unsafe fn b32<const MR: usize, const BITS: u32>(
    tile: &[u8],
    nb: usize,
    a: &Act32,
    cols: usize,
    i0: usize,
    out: &mut [[f32; TR]],
) {
    // SAFETY: see tile_b32: every pointer below stays inside `tile` / `a`.
    unsafe {
        let tb = match BITS {
            4 => 320,
            5 => 384,
            _ => 576,
        };
        let base = tile.as_ptr();
        let qx: [*const i8; MR] = core::array::from_fn(|r| a.qs.as_ptr().add((i0 + r) * cols));
        let dx: [*const f32; MR] = core::array::from_fn(|r| a.d.as_ptr().add((i0 + r) * nb));
        let sx: [*const f32; MR] = core::array::from_fn(|r| a.s.as_ptr().add((i0 + r) * nb));
        let nib = _mm512_set1_epi8(0x0F);
        let bit4 = _mm512_set1_epi8(0x10);
        let mut facc = [_mm512_setzero_ps(); MR];
        let prefetch = wanted(MR);
        for kb in 0..nb {
            let blk = base.add(kb * tb);
            if prefetch {
                next_tile_block(blk, nb * tb, tb);
            }
            let q = blk.add(B32_Q);
            let mut s0 = [_mm512_setzero_si512(); MR];
            let mut s1 = [_mm512_setzero_si512(); MR];
            if BITS <= 5 {
                // 5th bits of groups v (low nibbles) and v + 4 (high nibbles) are
                // bits v and v + 4 of `hb`: shift them to bit 4 and merge.
                let hb = if BITS == 5 {
                    load512(blk.add(B32_H))
                } else {
                    nib
                };
                for v in 0..4 {
                    let w = load512(q.add(v * 64));
                    let mut lo = _mm512_and_si512(w, nib);
                    let mut hi = _mm512_and_si512(_mm512_srli_epi16::<4>(w), nib);
                    if BITS == 5 {
                        let (hl, hh) = match v {
                            0 => (_mm512_slli_epi16::<4>(hb), hb),
                            1 => (_mm512_slli_epi16::<3>(hb), _mm512_srli_epi16::<1>(hb)),
                            2 => (_mm512_slli_epi16::<2>(hb), _mm512_srli_epi16::<2>(hb)),
                            _ => (_mm512_slli_epi16::<1>(hb), _mm512_srli_epi16::<3>(hb)),
                        };
                        // 0xF8: a | (b & c)
                        lo = _mm512_ternarylogic_epi32::<0xF8>(lo, hl, bit4);
                        hi = _mm512_ternarylogic_epi32::<0xF8>(hi, hh, bit4);
                    }
                    for r in 0..MR {
                        let x = qx[r].add(kb * 32 + 4 * v);
                        s0[r] = _mm512_dpbusd_epi32(s0[r], lo, bcast4(x));
                        dp_second!(s0, s1, r, hi, bcast4(x.add(16)));
                    }
                }
            } else {
                for g in 0..8 {
                    let w = load512(q.add(g * 64));
                    for r in 0..MR {
                        let x = bcast4(qx[r].add(kb * 32 + 4 * g));
                        if g % 2 == 0 {
                            s0[r] = _mm512_dpbusd_epi32(s0[r], w, x);
                        } else {
                            dp_second!(s0, s1, r, w, x);
                        }
                    }
                }
            }
            let d = load_f16x16(blk.add(B32_D));
            let m = load_f16x16(blk.add(B32_M));
            for r in 0..MR {
                let s = _mm512_cvtepi32_ps(_mm512_add_epi32(s0[r], s1[r]));
                let ddx = _mm512_mul_ps(d, _mm512_set1_ps(*dx[r].add(kb)));
                facc[r] = _mm512_fmadd_ps(s, ddx, facc[r]);
                facc[r] = _mm512_fmadd_ps(m, _mm512_set1_ps(*sx[r].add(kb)), facc[r]);
            }
        }
        store_acc::<MR>(&facc, out);
    }
}

pub(crate) fn tile_k(p: &Packed, t: usize, a: &ActK, i0: usize, out: &mut [[f32; TR]]) {
    let (nb, cols) = (p.nb, p.cols);
    let tile = p.tile(t);
    let end = i0 + out.len();
    assert!(a.qs.len() >= end * cols && a.d.len() >= end * nb && a.bs32.len() >= end * nb * 8);
    assert!(tile.len() == nb * p.kind.tile_bytes() && cols == nb * 256);
    // SAFETY: sizes checked above; AVX-512 F/BW/VNNI are enabled at compile time.
    unsafe {
        if p.kind == Kind::K4 {
            by_mr!(out, kq[true](tile, nb, a, cols, i0, out))
        } else {
            by_mr!(out, kq[false](tile, nb, a, cols, i0, out))
        }
    }
}

/// Q4_K / Q5_K: y += dx·(d·Σ_j sc_j·Σ(q·qx) − dmin·Σ_j mn_j·bsum_j) per super-block.
/// The sub-block sums are scaled in int32 (`vpmulld`); the mins term uses
/// `vpdpwssd` on (mn_2p, mn_2p+1) x (bsum_2p, bsum_2p+1) pairs.
#[inline(always)]
unsafe fn kq<const MR: usize, const B4: bool>(
    tile: &[u8],
    nb: usize,
    a: &ActK,
    cols: usize,
    i0: usize,
    out: &mut [[f32; TR]],
) {
    // SAFETY: see tile_k: every pointer below stays inside `tile` / `a`.
    unsafe {
        let tb = if B4 { 2368 } else { 4416 };
        let base = tile.as_ptr();
        let qx: [*const i8; MR] = core::array::from_fn(|r| a.qs.as_ptr().add((i0 + r) * cols));
        let dx: [*const f32; MR] = core::array::from_fn(|r| a.d.as_ptr().add((i0 + r) * nb));
        let bs: [*const i16; MR] = core::array::from_fn(|r| a.bs32.as_ptr().add((i0 + r) * nb * 8));
        let nib = _mm512_set1_epi8(0x0F);
        let mut facc = [_mm512_setzero_ps(); MR];
        let prefetch = wanted(MR);
        for kb in 0..nb {
            let blk = base.add(kb * tb);
            if prefetch {
                next_tile_block(blk, nb * tb, tb);
            }
            let mut bacc = [_mm512_setzero_si512(); MR];
            for j in 0..8 {
                let mut s0 = [_mm512_setzero_si512(); MR];
                let mut s1 = [_mm512_setzero_si512(); MR];
                if B4 {
                    let q = blk.add(K_Q + j * 256);
                    for v in 0..4 {
                        let w = load512(q.add(v * 64));
                        let lo = _mm512_and_si512(w, nib);
                        let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(w), nib);
                        for r in 0..MR {
                            let x = qx[r].add(kb * 256 + j * 32 + 4 * v);
                            s0[r] = _mm512_dpbusd_epi32(s0[r], lo, bcast4(x));
                            dp_second!(s0, s1, r, hi, bcast4(x.add(16)));
                        }
                    }
                } else {
                    let q = blk.add(K_Q + j * 512);
                    for g in 0..8 {
                        let w = load512(q.add(g * 64));
                        for r in 0..MR {
                            let x = bcast4(qx[r].add(kb * 256 + j * 32 + 4 * g));
                            if g % 2 == 0 {
                                s0[r] = _mm512_dpbusd_epi32(s0[r], w, x);
                            } else {
                                dp_second!(s0, s1, r, w, x);
                            }
                        }
                    }
                }
                let sc = _mm512_cvtepu8_epi32(_mm_loadu_si128(blk.add(K_SC + j * 16).cast()));
                for r in 0..MR {
                    let s = _mm512_add_epi32(s0[r], s1[r]);
                    bacc[r] = _mm512_add_epi32(bacc[r], _mm512_mullo_epi32(s, sc));
                }
            }
            let mut macc = [_mm512_setzero_si512(); MR];
            for pp in 0..4 {
                let mn = _mm512_cvtepu8_epi16(_mm256_loadu_si256(blk.add(K_MN + pp * 32).cast()));
                for r in 0..MR {
                    let b = bs[r].add(kb * 8 + 2 * pp).cast::<i32>().read_unaligned();
                    macc[r] = _mm512_dpwssd_epi32(macc[r], mn, _mm512_set1_epi32(b));
                }
            }
            let d = load_f16x16(blk.add(K_D));
            let dmin = load_f16x16(blk.add(K_DMIN));
            for r in 0..MR {
                let mterm = _mm512_mul_ps(_mm512_cvtepi32_ps(macc[r]), dmin);
                let v = _mm512_fmsub_ps(_mm512_cvtepi32_ps(bacc[r]), d, mterm);
                facc[r] = _mm512_fmadd_ps(v, _mm512_set1_ps(*dx[r].add(kb)), facc[r]);
            }
        }
        store_acc::<MR>(&facc, out);
    }
}

pub(crate) fn tile_q6k(p: &Packed, t: usize, a: &ActK, i0: usize, out: &mut [[f32; TR]]) {
    let (nb, cols) = (p.nb, p.cols);
    let tile = p.tile(t);
    let end = i0 + out.len();
    assert!(a.qs.len() >= end * cols && a.d.len() >= end * nb && a.bs16.len() >= end * nb * 16);
    assert!(tile.len() == nb * p.kind.tile_bytes() && cols == nb * 256);
    // SAFETY: sizes checked above; AVX-512 F/BW/VNNI are enabled at compile time.
    unsafe { by_mr!(out, q6k[](tile, nb, a, cols, i0, out)) }
}

/// Q6_K: y += d·dx·Σ_j sc_j·(Σ(q·qx) − 32·bsum16_j); the −32 offset is the initial
/// value of each sub-block accumulator, so no separate mins pass is needed.
#[inline(always)]
unsafe fn q6k<const MR: usize>(
    tile: &[u8],
    nb: usize,
    a: &ActK,
    cols: usize,
    i0: usize,
    out: &mut [[f32; TR]],
) {
    // SAFETY: see tile_q6k: every pointer below stays inside `tile` / `a`.
    unsafe {
        let tb = 3392;
        let nib = _mm512_set1_epi8(0x0F);
        let top = _mm512_set1_epi8(0x30);
        let base = tile.as_ptr();
        let qx: [*const i8; MR] = core::array::from_fn(|r| a.qs.as_ptr().add((i0 + r) * cols));
        let dx: [*const f32; MR] = core::array::from_fn(|r| a.d.as_ptr().add((i0 + r) * nb));
        let bs: [*const i16; MR] =
            core::array::from_fn(|r| a.bs16.as_ptr().add((i0 + r) * nb * 16));
        let mut facc = [_mm512_setzero_ps(); MR];
        let prefetch = wanted(MR);
        for kb in 0..nb {
            let blk = base.add(kb * tb);
            if prefetch {
                next_tile_block(blk, nb * tb, tb);
            }
            let mut bacc = [_mm512_setzero_si512(); MR];
            for j in 0..16 {
                let q = blk.add(Q6_Q + j * 192);
                // Rebuild the 4 u8 weight vectors (groups 0..4) from 2 nibble
                // vectors + 1 vector of 2-bit tops: w = nibble | (top & 0x30).
                let n0 = load512(q);
                let n1 = load512(q.add(64));
                let h = load512(q.add(128));
                // 0xF8: a | (b & c)
                let w4 = [
                    _mm512_ternarylogic_epi32::<0xF8>(
                        _mm512_and_si512(n0, nib),
                        _mm512_slli_epi16::<4>(h),
                        top,
                    ),
                    _mm512_ternarylogic_epi32::<0xF8>(
                        _mm512_and_si512(n1, nib),
                        _mm512_slli_epi16::<2>(h),
                        top,
                    ),
                    _mm512_ternarylogic_epi32::<0xF8>(
                        _mm512_and_si512(_mm512_srli_epi16::<4>(n0), nib),
                        h,
                        top,
                    ),
                    _mm512_ternarylogic_epi32::<0xF8>(
                        _mm512_and_si512(_mm512_srli_epi16::<4>(n1), nib),
                        _mm512_srli_epi16::<2>(h),
                        top,
                    ),
                ];
                let mut s0: [__m512i; MR] = core::array::from_fn(|r| {
                    _mm512_set1_epi32(-32 * *bs[r].add(kb * 16 + j) as i32)
                });
                let mut s1 = [_mm512_setzero_si512(); MR];
                for (g, &w) in w4.iter().enumerate() {
                    for r in 0..MR {
                        let x = bcast4(qx[r].add(kb * 256 + j * 16 + 4 * g));
                        if g % 2 == 0 {
                            s0[r] = _mm512_dpbusd_epi32(s0[r], w, x);
                        } else {
                            dp_second!(s0, s1, r, w, x);
                        }
                    }
                }
                let sc = _mm512_cvtepi8_epi32(_mm_loadu_si128(blk.add(Q6_SC + j * 16).cast()));
                for r in 0..MR {
                    let s = _mm512_add_epi32(s0[r], s1[r]);
                    bacc[r] = _mm512_add_epi32(bacc[r], _mm512_mullo_epi32(s, sc));
                }
            }
            let d = load_f16x16(blk.add(Q6_D));
            for r in 0..MR {
                let ddx = _mm512_mul_ps(d, _mm512_set1_ps(*dx[r].add(kb)));
                facc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(bacc[r]), ddx, facc[r]);
            }
        }
        store_acc::<MR>(&facc, out);
    }
}

/// AVX-512 version of `act::quantize_block_scalar` (same results: `vcvtps2dq`
/// rounds to nearest even like `round_ties_even`).
pub(crate) fn quantize_block(x: &[f32], q: &mut [i8], sums16: &mut [i16]) -> f32 {
    let n = x.len() / 16;
    assert!(x.len() == n * 16 && q.len() >= n * 16 && sums16.len() >= n);
    // SAFETY: the loads/stores below cover x[..16n] and q[..16n], checked above.
    unsafe {
        let absmask = _mm512_set1_epi32(0x7FFF_FFFF);
        let mut mx = _mm512_setzero_ps();
        for c in 0..n {
            let v = _mm512_loadu_ps(x.as_ptr().add(16 * c));
            let a = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v), absmask));
            mx = _mm512_max_ps(mx, a);
        }
        let amax = _mm512_reduce_max_ps(mx);
        let d = amax / 127.0;
        let id = _mm512_set1_ps(if amax > 0.0 { 127.0 / amax } else { 0.0 });
        for (c, s) in sums16.iter_mut().enumerate().take(n) {
            let v = _mm512_mul_ps(_mm512_loadu_ps(x.as_ptr().add(16 * c)), id);
            let i = _mm512_cvtps_epi32(v);
            _mm_storeu_si128(q.as_mut_ptr().add(16 * c).cast(), _mm512_cvtsepi32_epi8(i));
            *s = _mm512_reduce_add_epi32(i) as i16;
        }
        d
    }
}
