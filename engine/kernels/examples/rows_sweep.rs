//! Time of one quantized product for m = 1..=16 activation rows on one thread: what each
//! extra position of a speculative verification pass costs in the kernels alone, random
//! valid blocks. By default the Q4_K 8960x1536 up projection of Qwen2.5-1.5B; `q6k 151936`
//! gives its Q6_K output matrix, `q4k 1536 8960` its down projection.
//!
//! `cargo run --release -p k2-kernels --example rows_sweep [-- REPEATS [q4k|q6k|q8_0 [ROWS [COLS]]]]`
use k2_kernels::{set_num_threads, BlockFormat, QuantMatrix};
use std::time::Instant;
fn main() {
    set_num_threads(1);
    let arg = |i: usize| std::env::args().nth(i);
    let f = match arg(2).as_deref() {
        None | Some("q4k") => BlockFormat::Q4K,
        Some("q6k") => BlockFormat::Q6K,
        Some("q8_0") => BlockFormat::Q8_0,
        Some(other) => panic!("unknown format {other}: q4k, q6k or q8_0"),
    };
    let rows: usize = arg(3).and_then(|v| v.parse().ok()).unwrap_or(8960);
    let cols: usize = arg(4).and_then(|v| v.parse().ok()).unwrap_or(1536);
    let mut s = 0x1234_5678u64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let bb = f.block_bytes();
    let mut bytes = vec![0u8; rows * cols / f.block_size() * bb];
    for b in bytes.chunks_exact_mut(bb) {
        for v in b.iter_mut() {
            *v = next() as u8;
        }
        let d = half::f16::from_f32(0.003).to_bits().to_le_bytes();
        // The blocks' f16 scales (random bits could be NaN or subnormal).
        match f {
            BlockFormat::Q4K => {
                b[0..2].copy_from_slice(&d);
                b[2..4].copy_from_slice(&d);
            }
            BlockFormat::Q6K => b[bb - 2..].copy_from_slice(&d),
            _ => b[0..2].copy_from_slice(&d),
        }
    }
    let w = QuantMatrix::from_ggml(f, &bytes, rows, cols).unwrap();
    let reps: usize = arg(1).and_then(|v| v.parse().ok()).unwrap_or(20);
    for m in 1..=16usize {
        let x: Vec<f32> = (0..m * cols)
            .map(|i| ((i * 7919) % 1000) as f32 * 0.001 - 0.5)
            .collect();
        let mut y = vec![0f32; m * rows];
        w.matmul(&x, m, &mut y);
        let t = Instant::now();
        for _ in 0..reps {
            w.matmul(&x, m, &mut y);
        }
        let us = t.elapsed().as_secs_f64() * 1e6 / reps as f64;
        println!("m={m:2}: {us:8.0} us, {:6.0} us/row", us / m as f64);
    }
}
