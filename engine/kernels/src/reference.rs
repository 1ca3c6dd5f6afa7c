//! Scalar reference dequantization of raw GGML blocks, written from the GGML
//! block-format definitions. This is the ground truth for every test; it is kept
//! deliberately simple (one block at a time, no SIMD).

use crate::{BlockFormat, KernelError};

#[inline]
pub(crate) fn f16_at(b: &[u8], off: usize) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([b[off], b[off + 1]])).to_f32()
}

/// The 6-bit (scale, min) pair of sub-block `j` (0..8) of a Q4_K/Q5_K super-block,
/// packed in the 12 `scales` bytes: sub-blocks 0..4 keep their low 6 bits in bytes
/// 0..8, sub-blocks 4..8 split 4 low bits (bytes 8..12) + 2 high bits (top of 0..8).
#[inline]
pub(crate) fn k_scale_min(scales: &[u8], j: usize) -> (u8, u8) {
    if j < 4 {
        (scales[j] & 63, scales[j + 4] & 63)
    } else {
        (
            (scales[j + 4] & 0x0F) | ((scales[j - 4] >> 6) << 4),
            (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4),
        )
    }
}

/// Dequantizes one block of `format` (`b.len() == block_bytes`, `out.len() == block_size`).
pub(crate) fn dequantize_block(format: BlockFormat, b: &[u8], out: &mut [f32]) {
    match format {
        BlockFormat::F32 => out[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        BlockFormat::F16 => out[0] = f16_at(b, 0),
        BlockFormat::BF16 => {
            out[0] = half::bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32()
        }
        BlockFormat::Q4_0 => {
            // d: f16, qs[16]: element j in the low nibble of qs[j], j+16 in the high one.
            let d = f16_at(b, 0);
            for j in 0..16 {
                let q = b[2 + j];
                out[j] = ((q & 0x0F) as i32 - 8) as f32 * d;
                out[j + 16] = ((q >> 4) as i32 - 8) as f32 * d;
            }
        }
        BlockFormat::Q4_1 => {
            let (d, m) = (f16_at(b, 0), f16_at(b, 2));
            for j in 0..16 {
                let q = b[4 + j];
                out[j] = (q & 0x0F) as f32 * d + m;
                out[j + 16] = (q >> 4) as f32 * d + m;
            }
        }
        BlockFormat::Q5_0 | BlockFormat::Q5_1 => {
            let q5 = q5_values(format, b);
            if format == BlockFormat::Q5_0 {
                let d = f16_at(b, 0);
                for j in 0..32 {
                    out[j] = (q5[j] as i32 - 16) as f32 * d;
                }
            } else {
                let (d, m) = (f16_at(b, 0), f16_at(b, 2));
                for j in 0..32 {
                    out[j] = q5[j] as f32 * d + m;
                }
            }
        }
        BlockFormat::Q8_0 => {
            let d = f16_at(b, 0);
            for j in 0..32 {
                out[j] = (b[2 + j] as i8) as f32 * d;
            }
        }
        BlockFormat::Q4K | BlockFormat::Q5K => {
            // d, dmin: f16; scales[12]; (Q5_K: qh[32]); qs[128]. Each 64-element chunk c
            // uses 32 bytes of qs: low nibbles = sub-block 2c, high nibbles = 2c+1.
            let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
            let scales = &b[4..16];
            let (qh, qs) = if format == BlockFormat::Q5K {
                (Some(&b[16..48]), &b[48..176])
            } else {
                (None, &b[16..144])
            };
            for c in 0..4 {
                for half_ in 0..2 {
                    let j = 2 * c + half_;
                    let (sc, mn) = k_scale_min(scales, j);
                    let d1 = d * sc as f32;
                    let m1 = dmin * mn as f32;
                    for l in 0..32 {
                        let byte = qs[32 * c + l];
                        let mut q = if half_ == 0 { byte & 0x0F } else { byte >> 4 } as u32;
                        if let Some(qh) = qh {
                            q |= (((qh[l] >> j) & 1) as u32) << 4;
                        }
                        out[32 * j + l] = d1 * q as f32 - m1;
                    }
                }
            }
        }
        BlockFormat::Q6K => {
            // ql[128], qh[64], scales: i8[16], d: f16. value = d * sc[l/16] * (q6 - 32).
            let ql = &b[0..128];
            let qh = &b[128..192];
            let sc = &b[192..208];
            let d = f16_at(b, 208);
            for (e, o) in out.iter_mut().enumerate().take(256) {
                let q = q6_value(ql, qh, e);
                *o = d * (sc[e / 16] as i8) as f32 * (q as i32 - 32) as f32;
            }
        }
    }
}

/// The 5-bit unsigned values of a Q5_0/Q5_1 block (qh is a little-endian u32 whose
/// bit j is the 5th bit of element j).
pub(crate) fn q5_values(format: BlockFormat, b: &[u8]) -> [u8; 32] {
    let o = if format == BlockFormat::Q5_0 { 2 } else { 4 };
    let qh = u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    let qs = &b[o + 4..o + 20];
    let mut q = [0u8; 32];
    for j in 0..16 {
        q[j] = (qs[j] & 0x0F) | ((((qh >> j) & 1) as u8) << 4);
        q[j + 16] = (qs[j] >> 4) | ((((qh >> (j + 16)) & 1) as u8) << 4);
    }
    q
}

/// The unsigned 6-bit value (0..64) of element `e` (0..256) of a Q6_K block.
/// Layout: each 128-element half h uses ql[64h..64h+64] and qh[32h..32h+32]; within
/// it element 32*s + l (s in 0..4, l in 0..32) takes the low (s<2) / high (s>=2)
/// nibble of ql[64h + 32*(s&1) + l] and bits 2s..2s+2 of qh[32h + l].
#[inline]
pub(crate) fn q6_value(ql: &[u8], qh: &[u8], e: usize) -> u8 {
    let h = e / 128;
    let s = (e % 128) / 32;
    let l = e % 32;
    let lb = ql[64 * h + 32 * (s & 1) + l];
    let lo = if s < 2 { lb & 0x0F } else { lb >> 4 };
    let hi = (qh[32 * h + l] >> (2 * s)) & 3;
    lo | (hi << 4)
}

/// Scalar reference dequantization of raw GGML bytes (`out.len()` weights).
pub fn dequantize(format: BlockFormat, bytes: &[u8], out: &mut [f32]) -> Result<(), KernelError> {
    let bs = format.block_size();
    let bb = format.block_bytes();
    if !out.len().is_multiple_of(bs) {
        return Err(KernelError(format!(
            "{}: {} weights is not a multiple of the block size {bs}",
            format.name(),
            out.len()
        )));
    }
    let nblocks = out.len() / bs;
    if bytes.len() != nblocks * bb {
        return Err(KernelError(format!(
            "{}: expected {} bytes for {} weights, got {}",
            format.name(),
            nblocks * bb,
            out.len(),
            bytes.len()
        )));
    }
    for (b, o) in bytes.chunks_exact(bb).zip(out.chunks_exact_mut(bs)) {
        dequantize_block(format, b, o);
    }
    Ok(())
}
