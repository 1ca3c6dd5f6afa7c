//! K2 Tutor CPU kernels: quantized matrix products over GGML block formats.
//!
//! * [`QuantMatrix::from_ggml`] repacks raw GGML rows into 16-row interleaved tiles
//!   (`pack.rs`); [`QuantMatrix::matmul`] quantizes the activations once to 8
//!   bits (`act.rs`) and runs integer dot-product kernels, picked at compile time:
//!   AVX-512 VNNI (`avx512.rs`), else AVX2+FMA+F16C (`avx2.rs`), else portable
//!   scalar code (`scalar.rs`, same math; also the test oracle for the others).
//! * Work is split by row tiles over a small spinning thread pool (`threading.rs`).
//! * [`dequantize`] is the scalar reference dequantizer of raw GGML bytes (checked
//!   bit-exact against ggml's own dequantizers on random blocks of all 8 formats).
//!
//! Accuracy: matmul results match `dequantize` + f32 dot up to the error of
//! 8-bit activation quantization: typically ≈ 2e-4 of `‖x‖·‖w_row‖`; tests allow
//! 1e-2 per output and 5e-3 RMS.

mod act;
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma",
    target_feature = "f16c",
    not(all(
        target_feature = "avx512f",
        target_feature = "avx512bw",
        target_feature = "avx512vnni"
    ))
))]
mod avx2;
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx512f",
    target_feature = "avx512bw",
    target_feature = "avx512vnni"
))]
mod avx512;
mod formats;
mod pack;
mod prefetch;
mod reference;
mod scalar;
mod threading;

use std::cell::RefCell;
use std::sync::Arc;

pub use formats::BlockFormat;
pub use prefetch::set_enabled as set_weight_prefetch;
pub use reference::dequantize;
pub use threading::{num_threads, set_num_threads};

use act::{Act32, ActK};
use pack::{Kind, Packed, TR};

/// Error of matrix construction / dequantization (bad sizes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelError(pub String);

impl std::fmt::Display for KernelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "kernel error: {}", self.0)
    }
}

impl std::error::Error for KernelError {}

/// Whether this build runs SIMD kernels (AVX-512 VNNI, else AVX2+FMA+F16C;
/// chosen at compile time).
pub const SIMD: bool = cfg!(all(
    target_arch = "x86_64",
    any(
        all(
            target_feature = "avx512f",
            target_feature = "avx512bw",
            target_feature = "avx512vnni"
        ),
        all(
            target_feature = "avx2",
            target_feature = "fma",
            target_feature = "f16c"
        )
    )
));

/// Activation rows processed together per weight tile (register blocking).
const MR: usize = 8;

/// A weight matrix (`rows` x `cols`) repacked for fast `x · Wᵀ`.
pub struct QuantMatrix {
    p: Arc<Packed>,
}

/// Quantized (or, for F32 weights, copied) activations of one matmul call.
enum ActBuf {
    A32(Act32),
    K(ActK),
    F32(Vec<f32>),
}

thread_local! {
    /// Reused activation buffers (taken back when no worker still holds them).
    static SCRATCH: RefCell<Option<Arc<ActBuf>>> = const { RefCell::new(None) };
}

/// The caller's output buffer, written by the chunks of one call (disjoint row
/// ranges) while the caller waits in `threading::run`.
struct OutPtr(*mut f32);
// SAFETY: chunks write disjoint ranges, and only while `threading::run` (which
// borrows the caller's `&mut` output for its whole duration) has not returned.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// One matmul call, shared with the workers: chunk `c` = row tiles
/// `c * n_tiles / n_chunks..(c + 1) * n_tiles / n_chunks`.
struct MatmulTask {
    p: Arc<Packed>,
    act: Arc<ActBuf>,
    m: usize,
    simd: bool,
    n_chunks: usize,
    /// `m x rows` results (row-major), see [`OutPtr`].
    y: OutPtr,
}

impl MatmulTask {
    /// Computes chunk `c` into the output.
    fn compute(&self, c: usize) {
        let p = &*self.p;
        let (rows, cols, m) = (p.rows, p.cols, self.m);
        let t0 = c * p.n_tiles / self.n_chunks;
        let t1 = (c + 1) * p.n_tiles / self.n_chunks;
        let mut buf = [[0f32; TR]; MR];
        for t in t0..t1 {
            let valid = (rows - t * TR).min(TR);
            let mut i0 = 0;
            while i0 < m {
                let mr = (m - i0).min(MR);
                let out = &mut buf[..mr];
                for o in out.iter_mut() {
                    *o = [0.0; TR];
                }
                match &*self.act {
                    ActBuf::A32(a) => tile_b32(p, t, a, i0, out, self.simd),
                    ActBuf::K(a) if p.kind == Kind::Q6K => tile_q6k(p, t, a, i0, out, self.simd),
                    ActBuf::K(a) => tile_k(p, t, a, i0, out, self.simd),
                    ActBuf::F32(x) => {
                        for (r, o) in out.iter_mut().enumerate() {
                            let xi = &x[(i0 + r) * cols..][..cols];
                            for (l, ol) in o.iter_mut().enumerate().take(valid) {
                                let row = t * TR + l;
                                *ol = scalar::dot_f32(xi, &p.f32data[row * cols..][..cols]);
                            }
                        }
                    }
                }
                for (r, o) in out.iter().enumerate() {
                    // SAFETY: row i0 + r < m and rows t*TR..t*TR+valid < rows are inside
                    // the m x rows output; this chunk alone writes these row tiles.
                    unsafe {
                        let dst = self.y.0.add((i0 + r) * rows + t * TR);
                        std::ptr::copy_nonoverlapping(o.as_ptr(), dst, valid);
                    }
                }
                i0 += mr;
            }
        }
    }
}

impl threading::Task for MatmulTask {
    fn run(&self, c: usize) {
        self.compute(c);
    }
}

impl QuantMatrix {
    /// Takes raw GGML bytes (row-major: `rows` rows of `cols / block_size` blocks)
    /// and repacks them into 16-row tiles. All formats are re-encoded exactly
    /// (Q5_K quants are widened to 8 bits; F16/BF16 are converted to f32).
    pub fn from_ggml(
        format: BlockFormat,
        bytes: &[u8],
        rows: usize,
        cols: usize,
    ) -> Result<Self, KernelError> {
        Ok(QuantMatrix {
            p: Arc::new(Packed::new(format, bytes, rows, cols)?),
        })
    }

    /// A matrix of the first `rows` rows (whole 16-row tiles are copied; `rows` is rounded
    /// up to a multiple of 16 and capped at the matrix's rows).
    pub fn top_rows(&self, rows: usize) -> QuantMatrix {
        QuantMatrix {
            p: Arc::new(self.p.top_rows(rows.div_ceil(TR) * TR)),
        }
    }

    pub fn rows(&self) -> usize {
        self.p.rows
    }
    pub fn cols(&self) -> usize {
        self.p.cols
    }
    pub fn format(&self) -> BlockFormat {
        self.p.src
    }
    /// Bytes held by the repacked weights.
    pub fn size_bytes(&self) -> usize {
        self.p.size_bytes()
    }

    /// Dequantizes row `row` into `out` (len >= cols); bit-exact with [`dequantize`].
    pub fn dequantize_row(&self, row: usize, out: &mut [f32]) {
        assert!(row < self.p.rows, "row {row} out of range");
        assert!(out.len() >= self.p.cols, "output too short");
        self.p.dequantize_row(row, out);
    }

    /// `y (m x rows) = x (m x cols) · Wᵀ`, row-major f32.
    /// Panics if `x` or `y` is shorter than `m * cols` / `m * rows`.
    pub fn matmul(&self, x: &[f32], m: usize, y: &mut [f32]) {
        self.matmul_impl(x, m, y, SIMD);
    }

    /// Same as [`matmul`](Self::matmul) through the portable scalar kernels
    /// (for tests and benchmarks).
    #[doc(hidden)]
    pub fn matmul_scalar(&self, x: &[f32], m: usize, y: &mut [f32]) {
        self.matmul_impl(x, m, y, false);
    }

    fn matmul_impl(&self, x: &[f32], m: usize, y: &mut [f32], simd: bool) {
        let (rows, cols, n_tiles) = (self.p.rows, self.p.cols, self.p.n_tiles);
        assert!(x.len() >= m * cols, "x too short: {} < {m}x{cols}", x.len());
        assert!(y.len() >= m * rows, "y too short: {} < {m}x{rows}", y.len());
        if m == 0 || rows == 0 {
            return;
        }
        // Activations: reuse this thread's buffers when no worker still holds them.
        let mut act = SCRATCH
            .with(|s| s.borrow_mut().take())
            .unwrap_or_else(|| Arc::new(ActBuf::F32(Vec::new())));
        let a = Arc::get_mut(&mut act);
        let a = match a {
            Some(a) => a,
            None => {
                act = Arc::new(ActBuf::F32(Vec::new()));
                Arc::get_mut(&mut act).expect("fresh Arc")
            }
        };
        match self.p.kind {
            Kind::F32 => {
                if !matches!(a, ActBuf::F32(_)) {
                    *a = ActBuf::F32(Vec::new());
                }
                if let ActBuf::F32(v) = a {
                    v.clear();
                    v.extend_from_slice(&x[..m * cols]);
                }
            }
            Kind::B32x8 | Kind::B32x4 | Kind::B32x5 => {
                if !matches!(a, ActBuf::A32(_)) {
                    *a = ActBuf::A32(Act32::default());
                }
                if let ActBuf::A32(v) = a {
                    v.quantize(x, m, cols);
                }
            }
            Kind::K4 | Kind::K8 | Kind::Q6K => {
                if !matches!(a, ActBuf::K(_)) {
                    *a = ActBuf::K(ActK::default());
                }
                if let ActBuf::K(v) = a {
                    v.quantize(x, m, cols);
                }
            }
        }
        let threads = num_threads();
        // Work estimate in weight bytes touched; small matmuls stay on the caller.
        let work = self.size_bytes().saturating_mul(m.min(64));
        let n_chunks = if threads <= 1 || work < 96 * 1024 {
            1
        } else if m == 1 {
            // Decode: chunks of ~48 KiB of weights. Each thread streams its own
            // contiguous lane of chunks (threading.rs), then helps the others: a
            // busy or descheduled core costs at most the chunk it holds.
            let tile = self.size_bytes() / n_tiles;
            let per = (48 * 1024 / tile.max(1)).max(1);
            n_tiles.div_ceil(per).max(threads.min(n_tiles))
        } else {
            // 4 contiguous chunks per thread, claimed dynamically.
            (threads * 4).min(n_tiles.div_ceil(2)).max(1)
        };
        let task = MatmulTask {
            p: self.p.clone(),
            act,
            m,
            simd,
            n_chunks,
            y: OutPtr(y.as_mut_ptr()),
        };
        let task = if n_chunks == 1 {
            task.compute(0);
            task
        } else {
            let task = Arc::new(task);
            // Returns once every chunk is done: `y` is complete and no longer written.
            threading::run(task.clone(), n_chunks, threads);
            match Arc::try_unwrap(task) {
                Ok(t) => t,
                Err(_) => return, // a worker still holds it: leave the buffers to it
            }
        };
        SCRATCH.with(|s| *s.borrow_mut() = Some(task.act));
    }
}

#[inline]
fn tile_b32(p: &Packed, t: usize, a: &Act32, i0: usize, out: &mut [[f32; TR]], simd: bool) {
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx512f",
        target_feature = "avx512bw",
        target_feature = "avx512vnni"
    ))]
    if simd {
        return avx512::tile_b32(p, t, a, i0, out);
    }
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma",
        target_feature = "f16c",
        not(all(
            target_feature = "avx512f",
            target_feature = "avx512bw",
            target_feature = "avx512vnni"
        ))
    ))]
    if simd {
        return avx2::tile_b32(p, t, a, i0, out);
    }
    let _ = simd;
    scalar::tile_b32(p, t, a, i0, out)
}

#[inline]
fn tile_k(p: &Packed, t: usize, a: &ActK, i0: usize, out: &mut [[f32; TR]], simd: bool) {
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx512f",
        target_feature = "avx512bw",
        target_feature = "avx512vnni"
    ))]
    if simd {
        return avx512::tile_k(p, t, a, i0, out);
    }
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma",
        target_feature = "f16c",
        not(all(
            target_feature = "avx512f",
            target_feature = "avx512bw",
            target_feature = "avx512vnni"
        ))
    ))]
    if simd {
        return avx2::tile_k(p, t, a, i0, out);
    }
    let _ = simd;
    scalar::tile_k(p, t, a, i0, out)
}

#[inline]
fn tile_q6k(p: &Packed, t: usize, a: &ActK, i0: usize, out: &mut [[f32; TR]], simd: bool) {
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx512f",
        target_feature = "avx512bw",
        target_feature = "avx512vnni"
    ))]
    if simd {
        return avx512::tile_q6k(p, t, a, i0, out);
    }
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma",
        target_feature = "f16c",
        not(all(
            target_feature = "avx512f",
            target_feature = "avx512bw",
            target_feature = "avx512vnni"
        ))
    ))]
    if simd {
        return avx2::tile_q6k(p, t, a, i0, out);
    }
    let _ = simd;
    scalar::tile_q6k(p, t, a, i0, out)
}

/// Runs an empty parallel section over `n` chunks (benchmarks the dispatch cost).
#[doc(hidden)]
pub fn dispatch_probe(n: usize) {
    struct Nop;
    impl threading::Task for Nop {
        fn run(&self, c: usize) {
            std::hint::black_box(c);
        }
    }
    threading::run(Arc::new(Nop), n, num_threads());
}

/// Quantizes `m x cols` activations the way matmul does (benchmarks that step).
#[doc(hidden)]
pub fn quantize_probe(x: &[f32], m: usize, cols: usize, kquant: bool) {
    if kquant {
        let mut a = ActK::default();
        a.quantize(x, m, cols);
        std::hint::black_box(&a.qs);
    } else {
        let mut a = Act32::default();
        a.quantize(x, m, cols);
        std::hint::black_box(&a.qs);
    }
}
