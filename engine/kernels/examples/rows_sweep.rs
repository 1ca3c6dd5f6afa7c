//! Time of one Q4_K 8960x1536 product (the MLP's up projection of Qwen2.5-1.5B) for
//! m = 1..=16 activation rows on one thread: what each extra position of a speculative
//! verification pass costs in the kernels alone, random valid blocks.
//!
//! `cargo run --release -p k2-kernels --example rows_sweep [-- REPEATS]`
use k2_kernels::{set_num_threads, BlockFormat, QuantMatrix};
use std::time::Instant;
fn main() {
    set_num_threads(1);
    let (rows, cols) = (8960usize, 1536usize);
    let f = BlockFormat::Q4K;
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
        b[0..2].copy_from_slice(&d);
        b[2..4].copy_from_slice(&d);
    }
    let w = QuantMatrix::from_ggml(f, &bytes, rows, cols).unwrap();
    let reps: usize = std::env::args()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
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
