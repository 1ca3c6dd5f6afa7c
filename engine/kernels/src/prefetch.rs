//! Software prefetch of the weights a SIMD kernel will read next.
//!
//! The packed tiles lie one after another, and a kernel walks a tile's blocks in order, so
//! while it multiplies block `kb` of tile `t` it asks for block `kb` of tile `t + 1`, one
//! tile ahead. With several activation rows (a speculative verification pass, prefill,
//! batched rows) a block costs enough `vpdpbusd` work that, without this, the weights'
//! stream from memory and the arithmetic take turns instead of overlapping: a pass over 6
//! positions of Qwen2.5-1.5B Q4_K_M took 62 ms without it and 42 ms with it on 2 Zen 5
//! cores (BENCHMARKS.md, "Cross-candidate drafting on CPU"). One activation row is bound by
//! memory alone and the hardware's prefetchers do at least as well by themselves, so
//! kernels call this from two rows on (`wanted`).

#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};
use std::sync::atomic::{AtomicBool, Ordering};

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns the prefetch off or on for the whole process: for benchmarks that measure what it
/// gains in the same process (`multipos_probe`). On by default.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether a kernel over `rows` activation rows should prefetch (see the module's notes).
#[allow(dead_code)] // Only the SIMD kernels ask.
#[inline(always)]
pub(crate) fn wanted(rows: usize) -> bool {
    rows > 1 && ENABLED.load(Ordering::Relaxed)
}

/// Asks for the block at the same offset of the next tile (`tile_bytes` further on) to be
/// brought into L2. Past the last tile the addresses are harmless: a prefetch never faults.
#[cfg(target_arch = "x86_64")]
#[allow(dead_code)] // Only the SIMD kernels ask.
#[inline(always)]
pub(crate) fn next_tile_block(block: *const u8, tile_bytes: usize, block_bytes: usize) {
    let ahead = block.wrapping_add(tile_bytes);
    let mut off = 0;
    while off < block_bytes {
        // SAFETY: a prefetch is a hint: it reads nothing the program sees and cannot fault,
        // whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T1>(ahead.wrapping_add(off).cast()) };
        off += 64;
    }
}
