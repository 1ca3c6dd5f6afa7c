//! Matmul benchmark (plain std::time, `harness = false`).
//!
//! `CARGO_TARGET_DIR=/work/target-kernels cargo bench -p k2-kernels --bench matmul [-- FILTER]`
//!
//! * m = 1 (decode): GB/s of GGML weight bytes streamed per matmul. Several copies
//!   of each matrix (> 128 MiB in all) are cycled so that weights come from DRAM,
//!   not from the 32 MiB L3.
//! * m = 128 (prefill): GFLOP/s (2·m·rows·cols per matmul).
//! * baseline: the crate's portable scalar kernels (`matmul_scalar`), same threads.

use k2_kernels::{num_threads, BlockFormat, QuantMatrix};
use std::time::{Duration, Instant};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn f(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

fn random_bytes(f: BlockFormat, rows: usize, cols: usize, rng: &mut Rng) -> Vec<u8> {
    let bb = f.block_bytes();
    let mut out = vec![0u8; rows * cols / f.block_size() * bb];
    for b in out.chunks_exact_mut(bb) {
        for v in b.iter_mut() {
            *v = rng.next() as u8;
        }
        let d = half::f16::from_f32(0.001 + 0.01 * rng.f().abs())
            .to_bits()
            .to_le_bytes();
        let off = if f == BlockFormat::Q6K { 208 } else { 0 };
        b[off..off + 2].copy_from_slice(&d);
        if matches!(
            f,
            BlockFormat::Q4_1 | BlockFormat::Q4K | BlockFormat::Q5K | BlockFormat::Q5_1
        ) {
            b[2..4].copy_from_slice(&d);
        }
    }
    out
}

/// Seconds per call of `f`: the best mean over batches of ~10 ms, run for at
/// least `min` (best-of filters out interference from other processes).
fn time(min: Duration, mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    f();
    let one = t.elapsed().as_secs_f64().max(1e-7);
    let batch = ((0.01 / one) as usize).max(1);
    let t0 = Instant::now();
    let mut best = f64::MAX;
    let mut n = 0;
    while t0.elapsed() < min || n < 3 {
        let tb = Instant::now();
        for _ in 0..batch {
            f();
        }
        best = best.min(tb.elapsed().as_secs_f64() / batch as f64);
        n += 1;
    }
    best
}

fn main() {
    if let Some(n) = std::env::var("K2_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        k2_kernels::set_num_threads(n);
    }
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_default();
    let shapes_k = [(1536, 1536), (256, 1536), (8960, 1536), (1536, 8960)];
    let cases: Vec<(BlockFormat, (usize, usize))> =
        [BlockFormat::Q4K, BlockFormat::Q6K, BlockFormat::Q8_0]
            .iter()
            .flat_map(|&f| shapes_k.iter().map(move |&s| (f, s)))
            .chain([
                (BlockFormat::Q5_0, (896, 896)),
                (BlockFormat::Q5_0, (4864, 896)),
                (BlockFormat::Q4_1, (576, 576)),
                (BlockFormat::Q4_1, (1536, 576)),
                (BlockFormat::Q4_1, (49152, 576)),
            ])
            .collect();
    println!(
        "threads: {}, SIMD kernels: {}",
        num_threads(),
        k2_kernels::SIMD
    );
    println!("| format | rows x cols | m=1 µs | m=1 GB/s | scalar GB/s | speedup | m=128 ms | m=128 GFLOP/s | scalar GFLOP/s | speedup |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut rng = Rng(0x9E3779B97F4A7C15);
    for (f, (rows, cols)) in cases {
        let name = format!("{} {rows}x{cols}", f.name());
        if !name.contains(filter.as_str()) {
            continue;
        }
        let bytes = random_bytes(f, rows, cols, &mut rng);
        let ggml_bytes = bytes.len() as f64;
        let copies = std::env::var("K2_COPIES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(((128 << 20) / bytes.len()).clamp(1, 512));
        let mats: Vec<QuantMatrix> = (0..copies)
            .map(|_| QuantMatrix::from_ggml(f, &bytes, rows, cols).unwrap())
            .collect();
        drop(bytes);
        let x: Vec<f32> = (0..128 * cols).map(|_| rng.f()).collect();
        let mut y = vec![0f32; 128 * rows];
        let mut i = 0;
        let t1 = time(Duration::from_millis(400), || {
            mats[i % copies].matmul(&x, 1, &mut y);
            i += 1;
        });
        let t1s = time(Duration::from_millis(200), || {
            mats[i % copies].matmul_scalar(&x, 1, &mut y);
            i += 1;
        });
        let m = 128;
        let flop = 2.0 * (m * rows * cols) as f64;
        let tm = time(Duration::from_millis(400), || mats[0].matmul(&x, m, &mut y));
        let tms = time(Duration::from_millis(200), || {
            mats[0].matmul_scalar(&x, m, &mut y)
        });
        println!(
            "| {} | {rows}x{cols} | {:.1} | {:.1} | {:.1} | {:.1}x | {:.2} | {:.0} | {:.1} | {:.1}x |",
            f.name(),
            t1 * 1e6,
            ggml_bytes / t1 / 1e9,
            ggml_bytes / t1s / 1e9,
            t1s / t1,
            tm * 1e3,
            flop / tm / 1e9,
            flop / tms / 1e9,
            tms / tm
        );
    }
    for n in [2, 8] {
        let t = time(Duration::from_millis(200), || k2_kernels::dispatch_probe(n));
        println!("dispatch probe: empty parallel section, {n} items: {:.2} µs", t * 1e6);
    }
    // Per-call overhead: a tiny matmul (single-threaded path) and a small threaded one.
    let small = |rows: usize, cols: usize| {
        let mut rng = Rng(7);
        let b = random_bytes(BlockFormat::Q8_0, rows, cols, &mut rng);
        QuantMatrix::from_ggml(BlockFormat::Q8_0, &b, rows, cols).unwrap()
    };
    for (rows, cols) in [(64, 64), (256, 576), (576, 576)] {
        let q = small(rows, cols);
        let x = vec![0.5f32; cols];
        let mut y = vec![0f32; rows];
        let t = time(Duration::from_millis(200), || q.matmul(&x, 1, &mut y));
        println!(
            "call overhead probe: Q8_0 {rows}x{cols} m=1: {:.2} µs/call",
            t * 1e6
        );
    }
}
