//! Repacking raw GGML rows into row-interleaved tiles.
//!
//! Rows are grouped in tiles of [`TR`] = 16 (the last tile zero-padded). Along `k`
//! a tile is a sequence of *tile blocks*, one per weight block, each 64-byte
//! aligned and contiguous, so one thread streams one contiguous region.
//!
//! Inside a tile block the quants are stored as 64-byte vectors holding 4
//! consecutive weights of each of the 16 rows (`byte = row * 4 + e`): one
//! `vpdpbusd` against a broadcast 4-byte activation group then produces the 16
//! row partial sums in the 16 int32 lanes — no horizontal reductions, and one
//! activation load serves 16 rows. 4-bit formats pair group `v` (low nibble) with
//! group `v + 4` (high nibble) of the same 32-weight sub-block, so both halves of
//! a byte share one scale. Per-row scales/mins are stored as 16-lane vectors too.
//!
//! Internal kinds (all exact re-encodings, no requantization):
//! * `B32x8`: 32-blocks, u8 quants, per-block f16 `d` and `m`, value = d*q + m.
//!   Q8_0 (q+128, m = -128d): 36 vs 34 bytes per row-block.
//! * `B32x4`: same with nibble quants: Q4_0 (m = -8d), Q4_1 — same size as GGML.
//! * `B32x5`: nibbles as `B32x4` plus one 64-byte vector of 5th bits (bit `g` of
//!   byte `row * 4 + e` = 5th bit of weight `4g + e`): Q5_0 (m = -16d), Q5_1;
//!   24 vs 22/24 bytes. (Widening to 8 bits would give a simpler kernel but 1.5x
//!   the bytes, and decode is bandwidth-bound; prefill keeps ample margin.)
//! * `K4`: Q4_K super-blocks (d, dmin, 8 u8 scales, 8 u8 mins, nibbles), 148 B/row-block.
//! * `K8`: Q5_K widened to 8-bit quants.
//! * `Q6K`: Q6_K, 6-bit quants split into two nibble vectors + one 2-bit vector per
//!   16-weight sub-block (see [`q6_pos`]), i8 scales: 212 vs 210 bytes per row-block.
//! * `F32`: F32/F16/BF16 kept as plain row-major f32.

use crate::reference::{f16_at, k_scale_min, q5_values, q6_value};
use crate::{BlockFormat, KernelError};

/// Rows per tile (one int32 lane per row in a 512-bit register).
pub(crate) const TR: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    F32,
    B32x8,
    B32x4,
    B32x5,
    K4,
    K8,
    Q6K,
}

// Byte offsets inside tile blocks.
pub(crate) const B32_D: usize = 0;
pub(crate) const B32_M: usize = 32;
pub(crate) const B32_Q: usize = 64;
pub(crate) const B32_H: usize = 320; // B32x5: 5th bits
pub(crate) const K_D: usize = 0;
pub(crate) const K_DMIN: usize = 32;
pub(crate) const K_SC: usize = 64; // [8 sub-blocks][16 rows] u8
pub(crate) const K_MN: usize = 192; // [4 pairs][16 rows][2] u8
pub(crate) const K_Q: usize = 320;
pub(crate) const Q6_D: usize = 0;
pub(crate) const Q6_SC: usize = 64; // [16 sub-blocks][16 rows] i8
pub(crate) const Q6_Q: usize = 320; // [16 sub-blocks][192 bytes], see `q6_pos`

impl Kind {
    fn of(format: BlockFormat) -> Kind {
        match format {
            BlockFormat::F32 | BlockFormat::F16 | BlockFormat::BF16 => Kind::F32,
            BlockFormat::Q8_0 => Kind::B32x8,
            BlockFormat::Q5_0 | BlockFormat::Q5_1 => Kind::B32x5,
            BlockFormat::Q4_0 | BlockFormat::Q4_1 => Kind::B32x4,
            BlockFormat::Q4K => Kind::K4,
            BlockFormat::Q5K => Kind::K8,
            BlockFormat::Q6K => Kind::Q6K,
        }
    }
    /// Weights per tile block along k.
    pub(crate) fn block(self) -> usize {
        match self {
            Kind::F32 => 1,
            Kind::B32x8 | Kind::B32x4 | Kind::B32x5 => 32,
            Kind::K4 | Kind::K8 | Kind::Q6K => 256,
        }
    }
    /// Bytes per tile block (a multiple of 64).
    pub(crate) fn tile_bytes(self) -> usize {
        match self {
            Kind::F32 => 0,
            Kind::B32x8 => 576,
            Kind::B32x4 => 320,
            Kind::B32x5 => 384,
            Kind::K4 => 2368,
            Kind::K8 => 4416,
            Kind::Q6K => 3392,
        }
    }
}

/// A byte buffer whose start is 64-byte aligned (over-allocates by 64 bytes and
/// offsets into the Vec; avoids unsafe allocation code).
pub(crate) struct AlignedBuf {
    buf: Vec<u8>,
    off: usize,
    len: usize,
}

impl AlignedBuf {
    fn zeroed(len: usize) -> Self {
        let buf = vec![0u8; len + 64];
        let off = buf.as_ptr().align_offset(64).min(64);
        AlignedBuf { buf, off, len }
    }
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.buf[self.off..self.off + self.len]
    }
    fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.buf[self.off..self.off + self.len]
    }
}

pub(crate) struct Packed {
    pub kind: Kind,
    pub src: BlockFormat,
    pub rows: usize,
    pub cols: usize,
    pub n_tiles: usize,
    /// Tile blocks per tile (cols / kind.block()).
    pub nb: usize,
    pub data: AlignedBuf,
    pub f32data: Vec<f32>,
}

/// Position of weight `e` (0..32) of row lane `l` in an 8-bit 32-weight sub-block.
#[inline]
pub(crate) fn pos8(l: usize, e: usize) -> usize {
    (e / 4) * 64 + l * 4 + (e % 4)
}

/// Position (byte, is_high_nibble) of weight `e` (0..32) of row lane `l` in a
/// nibble-packed 32-weight sub-block.
#[inline]
pub(crate) fn pos4(l: usize, e: usize) -> (usize, bool) {
    let g = e % 16;
    ((g / 4) * 64 + l * 4 + (g % 4), e >= 16)
}

/// Q6_K sub-block (16 weights x 16 rows, 192 bytes): weight `e` (0..16) of row lane
/// `l`, group `g = e / 4`: its low 4 bits are in the low (g < 2) or high (g >= 2)
/// nibble of byte `(g % 2) * 64 + l * 4 + e % 4`, its top 2 bits are bits
/// `2g..2g+2` of byte `128 + l * 4 + e % 4`. Returns (nibble byte, high nibble?, 2-bit byte, shift).
#[inline]
pub(crate) fn q6_pos(l: usize, e: usize) -> (usize, bool, usize, u32) {
    let g = e / 4;
    let b = l * 4 + e % 4;
    ((g % 2) * 64 + b, g >= 2, 128 + b, 2 * g as u32)
}

#[inline]
pub(crate) fn q6_get(q: &[u8], l: usize, e: usize) -> u8 {
    let (nb, hi, hb, sh) = q6_pos(l, e);
    let n = if hi { q[nb] >> 4 } else { q[nb] & 0x0F };
    n | (((q[hb] >> sh) & 3) << 4)
}

/// 5-bit weight `e` of row lane `l` of a `B32x5` tile block.
#[inline]
pub(crate) fn q5_get(blk: &[u8], l: usize, e: usize) -> u8 {
    let (p, hi) = pos4(l, e);
    let byte = blk[B32_Q + p];
    let nib = if hi { byte >> 4 } else { byte & 0x0F };
    nib | (((blk[B32_H + l * 4 + e % 4] >> (e / 4)) & 1) << 4)
}

impl Packed {
    pub(crate) fn tile(&self, t: usize) -> &[u8] {
        let tl = self.nb * self.kind.tile_bytes();
        &self.data.as_slice()[t * tl..(t + 1) * tl]
    }

    /// A copy holding the first `rows` rows (a multiple of the tile height, or all rows).
    pub(crate) fn top_rows(&self, rows: usize) -> Packed {
        let rows = rows.min(self.rows);
        let n_tiles = rows.div_ceil(TR);
        let tile_len = self.nb * self.kind.tile_bytes();
        let mut data = AlignedBuf::zeroed(n_tiles * tile_len);
        data.as_mut_slice()
            .copy_from_slice(&self.data.as_slice()[..n_tiles * tile_len]);
        Packed {
            kind: self.kind,
            src: self.src,
            rows,
            cols: self.cols,
            n_tiles,
            nb: self.nb,
            data,
            f32data: self.f32data[..(rows * self.cols).min(self.f32data.len())].to_vec(),
        }
    }

    pub(crate) fn size_bytes(&self) -> usize {
        self.data.len + self.f32data.len() * 4
    }

    pub(crate) fn new(
        format: BlockFormat,
        bytes: &[u8],
        rows: usize,
        cols: usize,
    ) -> Result<Packed, KernelError> {
        let bs = format.block_size();
        let bb = format.block_bytes();
        if cols == 0 || !cols.is_multiple_of(bs) {
            return Err(KernelError(format!(
                "{}: cols {cols} is not a positive multiple of the block size {bs}",
                format.name()
            )));
        }
        let nbs = cols / bs;
        let expect = rows
            .checked_mul(nbs)
            .and_then(|v| v.checked_mul(bb))
            .ok_or_else(|| KernelError("matrix size overflows".into()))?;
        if bytes.len() != expect {
            return Err(KernelError(format!(
                "{}: expected {expect} bytes for {rows}x{cols}, got {}",
                format.name(),
                bytes.len()
            )));
        }
        let kind = Kind::of(format);
        let n_tiles = rows.div_ceil(TR);
        let mut p = Packed {
            kind,
            src: format,
            rows,
            cols,
            n_tiles,
            nb: cols / kind.block(),
            data: AlignedBuf::zeroed(0),
            f32data: Vec::new(),
        };
        if kind == Kind::F32 {
            p.f32data = vec![0.0; rows * cols];
            crate::reference::dequantize(format, bytes, &mut p.f32data)?;
            return Ok(p);
        }
        let tb = kind.tile_bytes();
        let tile_len = p.nb * tb;
        p.data = AlignedBuf::zeroed(n_tiles * tile_len);
        let data = p.data.as_mut_slice();
        for r in 0..rows {
            let (t, l) = (r / TR, r % TR);
            for kb in 0..nbs {
                let b = &bytes[(r * nbs + kb) * bb..][..bb];
                let dst = &mut data[t * tile_len + kb * tb..][..tb];
                pack_block(format, b, l, dst);
            }
        }
        Ok(p)
    }

    /// Dequantizes row `row` from the tiles (bit-exact with the reference).
    pub(crate) fn dequantize_row(&self, row: usize, out: &mut [f32]) {
        let cols = self.cols;
        if self.kind == Kind::F32 {
            out[..cols].copy_from_slice(&self.f32data[row * cols..][..cols]);
            return;
        }
        let tile = self.tile(row / TR);
        let l = row % TR;
        let tb = self.kind.tile_bytes();
        let bsz = self.kind.block();
        for kb in 0..self.nb {
            let blk = &tile[kb * tb..][..tb];
            let o = &mut out[kb * bsz..][..bsz];
            match self.kind {
                Kind::B32x8 | Kind::B32x4 | Kind::B32x5 => {
                    let d = f16_at(blk, B32_D + 2 * l);
                    let m = f16_at(blk, B32_M + 2 * l);
                    for (e, v) in o.iter_mut().enumerate() {
                        let q = match self.kind {
                            Kind::B32x8 => blk[B32_Q + pos8(l, e)],
                            Kind::B32x5 => q5_get(blk, l, e),
                            _ => {
                                let (p, hi) = pos4(l, e);
                                let byte = blk[B32_Q + p];
                                if hi {
                                    byte >> 4
                                } else {
                                    byte & 0x0F
                                }
                            }
                        };
                        *v = match self.src {
                            BlockFormat::Q8_0 => (q as i32 - 128) as f32 * d,
                            BlockFormat::Q5_0 => (q as i32 - 16) as f32 * d,
                            BlockFormat::Q4_0 => (q as i32 - 8) as f32 * d,
                            _ => q as f32 * d + m,
                        };
                    }
                }
                Kind::K4 | Kind::K8 => {
                    let d = f16_at(blk, K_D + 2 * l);
                    let dmin = f16_at(blk, K_DMIN + 2 * l);
                    for j in 0..8 {
                        let sc = blk[K_SC + j * 16 + l];
                        let mn = blk[K_MN + (j / 2) * 32 + l * 2 + (j % 2)];
                        let d1 = d * sc as f32;
                        let m1 = dmin * mn as f32;
                        for e in 0..32 {
                            let q = if self.kind == Kind::K8 {
                                blk[K_Q + j * 512 + pos8(l, e)]
                            } else {
                                let (p, hi) = pos4(l, e);
                                let byte = blk[K_Q + j * 256 + p];
                                if hi {
                                    byte >> 4
                                } else {
                                    byte & 0x0F
                                }
                            };
                            o[j * 32 + e] = d1 * q as f32 - m1;
                        }
                    }
                }
                Kind::Q6K => {
                    let d = f16_at(blk, Q6_D + 2 * l);
                    for j in 0..16 {
                        let sc = blk[Q6_SC + j * 16 + l] as i8;
                        for e in 0..16 {
                            let q = q6_get(&blk[Q6_Q + j * 192..], l, e);
                            o[j * 16 + e] = d * sc as f32 * (q as i32 - 32) as f32;
                        }
                    }
                }
                Kind::F32 => unreachable!(),
            }
        }
    }
}

/// Writes one GGML block `b` as row lane `l` of tile block `dst`.
fn pack_block(format: BlockFormat, b: &[u8], l: usize, dst: &mut [u8]) {
    match format {
        BlockFormat::Q8_0
        | BlockFormat::Q5_0
        | BlockFormat::Q5_1
        | BlockFormat::Q4_0
        | BlockFormat::Q4_1 => {
            let d = half::f16::from_bits(u16::from_le_bytes([b[0], b[1]]));
            let mut q = [0u8; 32];
            // The offset is folded into m = -zero_point * d; exact in f16 (a power-of-two
            // multiple) unless |d| is absurdly large (> 511 for Q8_0).
            let m = match format {
                BlockFormat::Q8_0 => {
                    for (e, qv) in q.iter_mut().enumerate() {
                        *qv = (b[2 + e] as i8 as i16 + 128) as u8;
                    }
                    half::f16::from_f32(d.to_f32() * -128.0)
                }
                BlockFormat::Q5_0 => {
                    q = q5_values(format, b);
                    half::f16::from_f32(d.to_f32() * -16.0)
                }
                BlockFormat::Q5_1 => {
                    q = q5_values(format, b);
                    half::f16::from_bits(u16::from_le_bytes([b[2], b[3]]))
                }
                BlockFormat::Q4_0 | BlockFormat::Q4_1 => {
                    let o = if format == BlockFormat::Q4_0 { 2 } else { 4 };
                    for j in 0..16 {
                        q[j] = b[o + j] & 0x0F;
                        q[j + 16] = b[o + j] >> 4;
                    }
                    if format == BlockFormat::Q4_0 {
                        half::f16::from_f32(d.to_f32() * -8.0)
                    } else {
                        half::f16::from_bits(u16::from_le_bytes([b[2], b[3]]))
                    }
                }
                _ => unreachable!(),
            };
            dst[B32_D + 2 * l..][..2].copy_from_slice(&d.to_bits().to_le_bytes());
            dst[B32_M + 2 * l..][..2].copy_from_slice(&m.to_bits().to_le_bytes());
            if format != BlockFormat::Q8_0 {
                for (e, &qv) in q.iter().enumerate() {
                    let (p, hi) = pos4(l, e);
                    let nib = qv & 0x0F;
                    dst[B32_Q + p] |= if hi { nib << 4 } else { nib };
                    if qv > 0x0F {
                        dst[B32_H + l * 4 + e % 4] |= 1 << (e / 4);
                    }
                }
            } else {
                let qd = &mut dst[B32_Q..];
                for (e, &qv) in q.iter().enumerate() {
                    qd[pos8(l, e)] = qv;
                }
            }
        }
        BlockFormat::Q4K | BlockFormat::Q5K => {
            dst[K_D + 2 * l..][..2].copy_from_slice(&b[0..2]);
            dst[K_DMIN + 2 * l..][..2].copy_from_slice(&b[2..4]);
            let scales = &b[4..16];
            let (qh, qs) = if format == BlockFormat::Q5K {
                (Some(&b[16..48]), &b[48..176])
            } else {
                (None, &b[16..144])
            };
            for j in 0..8 {
                let (sc, mn) = k_scale_min(scales, j);
                dst[K_SC + j * 16 + l] = sc;
                dst[K_MN + (j / 2) * 32 + l * 2 + (j % 2)] = mn;
                let c = j / 2;
                for e in 0..32 {
                    let byte = qs[32 * c + e];
                    let mut q = if j % 2 == 0 { byte & 0x0F } else { byte >> 4 };
                    if let Some(qh) = qh {
                        q |= ((qh[e] >> j) & 1) << 4;
                        dst[K_Q + j * 512 + pos8(l, e)] = q;
                    } else {
                        let (p, hi) = pos4(l, e);
                        dst[K_Q + j * 256 + p] |= if hi { q << 4 } else { q };
                    }
                }
            }
        }
        BlockFormat::Q6K => {
            dst[Q6_D + 2 * l..][..2].copy_from_slice(&b[208..210]);
            for j in 0..16 {
                dst[Q6_SC + j * 16 + l] = b[192 + j];
            }
            let (ql, qh) = (&b[0..128], &b[128..192]);
            for e in 0..256 {
                let q = q6_value(ql, qh, e);
                let (nb, hi, hb, sh) = q6_pos(l, e % 16);
                let sub = &mut dst[Q6_Q + (e / 16) * 192..];
                sub[nb] |= if hi { (q & 0x0F) << 4 } else { q & 0x0F };
                sub[hb] |= (q >> 4) << sh;
            }
        }
        BlockFormat::F32 | BlockFormat::F16 | BlockFormat::BF16 => unreachable!(),
    }
}
