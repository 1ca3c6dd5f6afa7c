//! K2 Tutor CPU kernels: quantized matrix products over GGML block formats.
//!
//! * [`QuantMatrix::from_ggml`] repacks raw GGML rows into 16-row interleaved tiles
//!   (see `pack.rs`); [`QuantMatrix::matmul`] quantizes the activations once to 8
//!   bits (`act.rs`) and runs integer dot-product kernels: AVX-512 VNNI
//!   (`avx512.rs`) when the build target has it, portable scalar code
//!   (`scalar.rs`) otherwise.
//! * [`dequantize`] is the scalar reference dequantizer of raw GGML bytes.
//!
//! Accuracy: matmul results match `dequantize` + f32 dot up to the error of
//! 8-bit activation quantization (≈ 1e-3 of `‖x‖·‖w_row‖`, tests allow 5e-3).

mod act;
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx512f",
    target_feature = "avx512bw",
    target_feature = "avx512vnni"
))]
mod avx512;
mod formats;
mod pack;
mod reference;
mod scalar;
mod threading;

use std::cell::RefCell;

pub use formats::BlockFormat;
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

/// Whether this build runs the AVX-512 VNNI kernels (chosen at compile time).
pub const SIMD: bool = cfg!(all(
    target_arch = "x86_64",
    target_feature = "avx512f",
    target_feature = "avx512bw",
    target_feature = "avx512vnni"
));

/// Activation rows processed together per weight tile (register blocking).
const MR: usize = 8;

/// `f(tile, i0, out)`: the 16 outputs of a row tile for activation rows `i0..i0 + out.len()`.
type TileFn<'a> = dyn Fn(usize, usize, &mut [[f32; TR]]) + Sync + 'a;

/// A weight matrix (`rows` x `cols`) repacked for fast `x · Wᵀ`.
pub struct QuantMatrix {
    p: Packed,
}

#[derive(Default)]
struct Scratch {
    a32: Act32,
    ak: ActK,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl QuantMatrix {
    /// Takes raw GGML bytes (row-major: `rows` rows of `cols / block_size` blocks)
    /// and repacks them into 16-row tiles. All formats are re-encoded exactly;
    /// Q5_0/Q5_1/Q5_K/Q6_K quants are widened to 8 bits (faster kernels, more
    /// bytes), F16/BF16 are converted to f32.
    pub fn from_ggml(
        format: BlockFormat,
        bytes: &[u8],
        rows: usize,
        cols: usize,
    ) -> Result<Self, KernelError> {
        Ok(QuantMatrix {
            p: Packed::new(format, bytes, rows, cols)?,
        })
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
        let (rows, cols) = (self.p.rows, self.p.cols);
        assert!(x.len() >= m * cols, "x too short: {} < {m}x{cols}", x.len());
        assert!(y.len() >= m * rows, "y too short: {} < {m}x{rows}", y.len());
        if m == 0 || rows == 0 {
            return;
        }
        let p = &self.p;
        if p.kind == Kind::F32 {
            self.run_tiles(m, y, &|t, i0, out| {
                for (r, o) in out.iter_mut().enumerate() {
                    let xi = &x[(i0 + r) * cols..][..cols];
                    for (l, ol) in o.iter_mut().enumerate() {
                        let row = t * TR + l;
                        if row < rows {
                            *ol = scalar::dot_f32(xi, &p.f32data[row * cols..][..cols]);
                        }
                    }
                }
            });
            return;
        }
        SCRATCH.with(|s| {
            // A nested call on the same thread (not expected) gets fresh buffers.
            let mut fresh = Scratch::default();
            let mut guard = s.try_borrow_mut();
            let s: &mut Scratch = match guard.as_mut() {
                Ok(g) => g,
                Err(_) => &mut fresh,
            };
            match p.kind {
                Kind::B32x8 | Kind::B32x4 => {
                    s.a32.quantize(x, m, cols);
                    let a = &s.a32;
                    self.run_tiles(m, y, &|t, i0, out| tile_b32(p, t, a, i0, out, simd));
                }
                Kind::K4 | Kind::K8 => {
                    s.ak.quantize(x, m, cols);
                    let a = &s.ak;
                    self.run_tiles(m, y, &|t, i0, out| tile_k(p, t, a, i0, out, simd));
                }
                Kind::Q6K => {
                    s.ak.quantize(x, m, cols);
                    let a = &s.ak;
                    self.run_tiles(m, y, &|t, i0, out| tile_q6k(p, t, a, i0, out, simd));
                }
                Kind::F32 => unreachable!(),
            }
        });
    }

    /// Splits the row tiles into chunks spread over the threads; each chunk owns the
    /// matching column range of every output row. `f(tile, i0, out)` computes the
    /// 16 outputs of tile `tile` for activation rows `i0..i0 + out.len()`.
    fn run_tiles(&self, m: usize, y: &mut [f32], f: &TileFn) {
        let (rows, n_tiles) = (self.p.rows, self.p.n_tiles);
        let threads = num_threads();
        // Work estimate in weight bytes touched; tiny matmuls stay on the caller.
        let work = self.size_bytes().saturating_mul(m.min(64));
        let n_chunks = if threads <= 1 || work < 64 * 1024 {
            1
        } else {
            (threads * 4).min(n_tiles)
        };
        let bounds: Vec<usize> = (0..=n_chunks).map(|c| c * n_tiles / n_chunks).collect();
        // Per chunk: (first tile, last tile, one output slice per activation row).
        let mut chunks: Vec<(usize, usize, Vec<&mut [f32]>)> = (0..n_chunks)
            .map(|c| (bounds[c], bounds[c + 1], Vec::with_capacity(m)))
            .collect();
        for yrow in y.chunks_exact_mut(rows).take(m) {
            let mut rest = yrow;
            for ch in chunks.iter_mut() {
                let width = (ch.1 * TR).min(rows) - ch.0 * TR;
                let (a, b) = rest.split_at_mut(width);
                ch.2.push(a);
                rest = b;
            }
        }
        threading::for_each(chunks, threads, |(t0, t1, mut outs)| {
            let mut buf = [[0f32; TR]; MR];
            for t in t0..t1 {
                let off = (t - t0) * TR;
                let valid = (rows - t * TR).min(TR);
                let mut i0 = 0;
                while i0 < m {
                    let mr = (m - i0).min(MR);
                    let out = &mut buf[..mr];
                    for o in out.iter_mut() {
                        *o = [0.0; TR];
                    }
                    f(t, i0, out);
                    for (r, o) in out.iter().enumerate() {
                        outs[i0 + r][off..off + valid].copy_from_slice(&o[..valid]);
                    }
                    i0 += mr;
                }
            }
        });
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
    let _ = simd;
    scalar::tile_q6k(p, t, a, i0, out)
}

/// Runs an empty parallel section over `n` items (benchmarks the dispatch cost).
#[doc(hidden)]
pub fn dispatch_probe(n: usize) {
    threading::for_each((0..n).collect(), num_threads(), |i: usize| {
        std::hint::black_box(i);
    });
}
