//! Portable scalar kernels over the packed tiles. Same integer math as the SIMD
//! kernels (so they double as their test oracle), and the fallback on targets
//! without AVX-512 VNNI. Each computes `out[r][lane] += x[i0 + r] · w[tile row lane]`
//! for `r < out.len()`.

use crate::act::{Act32, ActK};
use crate::pack::*;
use crate::reference::f16_at;

#[inline]
fn dot_u8_i8(w: &[u8], x: &[i8]) -> i32 {
    w.iter().zip(x).map(|(&a, &b)| a as i32 * b as i32).sum()
}

/// Unpacks the 16 rows x `n` u8 quants of one sub-block (8-bit layout).
#[inline]
fn unpack8<const N: usize>(q: &[u8]) -> [[u8; N]; TR] {
    let mut w = [[0u8; N]; TR];
    for (l, wl) in w.iter_mut().enumerate() {
        for (e, v) in wl.iter_mut().enumerate() {
            *v = q[pos8(l, e)];
        }
    }
    w
}

/// Unpacks the 16 rows x 32 quants of one nibble-packed sub-block.
#[inline]
fn unpack4(q: &[u8]) -> [[u8; 32]; TR] {
    let mut w = [[0u8; 32]; TR];
    for (l, wl) in w.iter_mut().enumerate() {
        for (e, v) in wl.iter_mut().enumerate() {
            let (p, hi) = pos4(l, e);
            *v = if hi { q[p] >> 4 } else { q[p] & 0x0F };
        }
    }
    w
}

pub(crate) fn tile_b32(p: &Packed, t: usize, act: &Act32, i0: usize, out: &mut [[f32; TR]]) {
    let (nb, cols, tb) = (p.nb, p.cols, p.kind.tile_bytes());
    let tile = p.tile(t);
    for kb in 0..nb {
        let blk = &tile[kb * tb..][..tb];
        let w = match p.kind {
            Kind::B32x8 => unpack8::<32>(&blk[B32_Q..]),
            Kind::B32x4 => unpack4(&blk[B32_Q..]),
            _ => {
                let mut w = [[0u8; 32]; TR];
                for (l, wl) in w.iter_mut().enumerate() {
                    for (e, v) in wl.iter_mut().enumerate() {
                        *v = q5_get(blk, l, e);
                    }
                }
                w
            }
        };
        for (r, o) in out.iter_mut().enumerate() {
            let i = i0 + r;
            let xq = &act.qs[i * cols + kb * 32..][..32];
            let (dx, sx) = (act.d[i * nb + kb], act.s[i * nb + kb]);
            for l in 0..TR {
                let d = f16_at(blk, B32_D + 2 * l);
                let m = f16_at(blk, B32_M + 2 * l);
                let dot = dot_u8_i8(&w[l], xq);
                o[l] += dot as f32 * (d * dx) + m * sx;
            }
        }
    }
}

pub(crate) fn tile_k(p: &Packed, t: usize, act: &ActK, i0: usize, out: &mut [[f32; TR]]) {
    let (nb, cols, tb) = (p.nb, p.cols, p.kind.tile_bytes());
    let tile = p.tile(t);
    for kb in 0..nb {
        let blk = &tile[kb * tb..][..tb];
        let mut w = [[[0u8; 32]; TR]; 8];
        for (j, wj) in w.iter_mut().enumerate() {
            *wj = if p.kind == Kind::K8 {
                unpack8::<32>(&blk[K_Q + j * 512..])
            } else {
                unpack4(&blk[K_Q + j * 256..])
            };
        }
        for (r, o) in out.iter_mut().enumerate() {
            let i = i0 + r;
            let xq = &act.qs[i * cols + kb * 256..][..256];
            let dx = act.d[i * nb + kb];
            let bs = &act.bs32[(i * nb + kb) * 8..][..8];
            for l in 0..TR {
                let (mut isum, mut msum) = (0i32, 0i32);
                for j in 0..8 {
                    let sc = blk[K_SC + j * 16 + l] as i32;
                    let mn = blk[K_MN + (j / 2) * 32 + l * 2 + (j % 2)] as i32;
                    isum += sc * dot_u8_i8(&w[j][l], &xq[j * 32..][..32]);
                    msum += mn * bs[j] as i32;
                }
                let d = f16_at(blk, K_D + 2 * l);
                let dmin = f16_at(blk, K_DMIN + 2 * l);
                o[l] += (isum as f32 * d - msum as f32 * dmin) * dx;
            }
        }
    }
}

pub(crate) fn tile_q6k(p: &Packed, t: usize, act: &ActK, i0: usize, out: &mut [[f32; TR]]) {
    let (nb, cols, tb) = (p.nb, p.cols, p.kind.tile_bytes());
    let tile = p.tile(t);
    for kb in 0..nb {
        let blk = &tile[kb * tb..][..tb];
        let mut w = [[[0u8; 16]; TR]; 16];
        for (j, wj) in w.iter_mut().enumerate() {
            for (l, wl) in wj.iter_mut().enumerate() {
                for (e, v) in wl.iter_mut().enumerate() {
                    *v = q6_get(&blk[Q6_Q + j * 192..], l, e);
                }
            }
        }
        for (r, o) in out.iter_mut().enumerate() {
            let i = i0 + r;
            let xq = &act.qs[i * cols + kb * 256..][..256];
            let dx = act.d[i * nb + kb];
            let bs = &act.bs16[(i * nb + kb) * 16..][..16];
            for l in 0..TR {
                let (mut isum, mut msum) = (0i32, 0i32);
                for j in 0..16 {
                    let sc = blk[Q6_SC + j * 16 + l] as i8 as i32;
                    isum += sc * dot_u8_i8(&w[j][l], &xq[j * 16..][..16]);
                    msum += sc * bs[j] as i32;
                }
                let d = f16_at(blk, Q6_D + 2 * l);
                o[l] += (isum - 32 * msum) as f32 * (d * dx);
            }
        }
    }
}

/// Plain f32 dot product with 16 independent lanes (auto-vectorizes).
#[inline]
pub(crate) fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let ca = a.chunks_exact(16);
    let cb = b.chunks_exact(16);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..16 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}
