//! Correctness tests: every format, random valid blocks → `from_ggml` →
//! `matmul` (SIMD and scalar paths) vs the f32 reference (`dequantize` + f64 dot).
//!
//! Tolerance: each |y - y_ref| <= 1e-2 · ‖x_i‖·‖w_r‖ (worst case of 8-bit
//! activation quantization with outliers in a block), and the RMS of
//! (y - y_ref) / (‖x_i‖·‖w_r‖) over a matmul <= 5e-3 (≈ 2e-3 for 32-wide rows with an outlier,
//! ≈ 2e-4 for real widths);
//! SIMD vs scalar: 1e-4 of the same bound.

use k2_kernels::{dequantize, set_num_threads, BlockFormat, QuantMatrix};

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

fn put_f16(b: &mut [u8], off: usize, v: f32) {
    b[off..off + 2].copy_from_slice(&half::f16::from_f32(v).to_bits().to_le_bytes());
}

/// Random valid GGML bytes for a rows x cols matrix.
fn random_bytes(f: BlockFormat, rows: usize, cols: usize, rng: &mut Rng) -> Vec<u8> {
    let nblocks = rows * cols / f.block_size();
    let bb = f.block_bytes();
    let mut out = vec![0u8; nblocks * bb];
    for b in out.chunks_exact_mut(bb) {
        for v in b.iter_mut() {
            *v = rng.next() as u8;
        }
        let d = (0.002 + 0.02 * rng.f().abs()) * if rng.f() < 0.0 { -1.0 } else { 1.0 };
        match f {
            BlockFormat::F32 => b.copy_from_slice(&rng.f().to_le_bytes()),
            BlockFormat::F16 => put_f16(b, 0, rng.f()),
            BlockFormat::BF16 => {
                b.copy_from_slice(&half::bf16::from_f32(rng.f()).to_bits().to_le_bytes())
            }
            BlockFormat::Q4_0 | BlockFormat::Q5_0 | BlockFormat::Q8_0 => put_f16(b, 0, d),
            BlockFormat::Q4_1 | BlockFormat::Q5_1 => {
                put_f16(b, 0, d);
                put_f16(b, 2, 0.1 * rng.f());
            }
            BlockFormat::Q4K | BlockFormat::Q5K => {
                put_f16(b, 0, d.abs() * 0.1);
                put_f16(b, 2, d.abs() * 0.05);
            }
            BlockFormat::Q6K => put_f16(b, 208, d * 0.1),
        }
    }
    out
}

fn random_x(m: usize, cols: usize, rng: &mut Rng) -> Vec<f32> {
    (0..m * cols)
        .map(|i| {
            let v = rng.f();
            // A few outliers, as in real activations.
            if i % 97 == 5 {
                v * 20.0
            } else {
                v
            }
        })
        .collect()
}

fn check(f: BlockFormat, rows: usize, cols: usize, ms: &[usize], seed: u64) {
    let mut rng = Rng(seed);
    let bytes = random_bytes(f, rows, cols, &mut rng);
    let mut w = vec![0f32; rows * cols];
    dequantize(f, &bytes, &mut w).unwrap();
    let qm = QuantMatrix::from_ggml(f, &bytes, rows, cols).unwrap();
    assert_eq!((qm.rows(), qm.cols(), qm.format()), (rows, cols, f));
    assert!(qm.size_bytes() > 0);
    // dequantize_row is bit-exact.
    let mut row = vec![0f32; cols];
    for r in 0..rows {
        qm.dequantize_row(r, &mut row);
        for (a, b) in row.iter().zip(&w[r * cols..(r + 1) * cols]) {
            assert_eq!(a.to_bits(), b.to_bits(), "{f} dequantize_row {r}");
        }
    }
    let wn: Vec<f64> = (0..rows)
        .map(|r| {
            w[r * cols..(r + 1) * cols]
                .iter()
                .map(|&v| (v as f64).powi(2))
                .sum::<f64>()
                .sqrt()
        })
        .collect();
    for &m in ms {
        let x = random_x(m, cols, &mut rng);
        let mut y = vec![f32::NAN; m * rows];
        let mut ys = vec![f32::NAN; m * rows];
        let mut sq = 0f64;
        qm.matmul(&x, m, &mut y);
        qm.matmul_scalar(&x, m, &mut ys);
        for i in 0..m {
            let xi = &x[i * cols..(i + 1) * cols];
            let xn = xi.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
            for r in 0..rows {
                let wr = &w[r * cols..(r + 1) * cols];
                let yref: f64 = xi.iter().zip(wr).map(|(&a, &b)| a as f64 * b as f64).sum();
                let bound = xn * wn[r] + 1e-9;
                let (got, gots) = (y[i * rows + r] as f64, ys[i * rows + r] as f64);
                sq += ((got - yref) / bound).powi(2);
                assert!(
                    (got - yref).abs() <= 1e-2 * bound,
                    "{f} {rows}x{cols} m={m} y[{i},{r}] = {got}, ref {yref}, bound {bound}"
                );
                assert!(
                    (got - gots).abs() <= 1e-4 * bound,
                    "{f} {rows}x{cols} m={m} simd {got} vs scalar {gots}"
                );
            }
        }
        let rms = (sq / (m * rows) as f64).sqrt();
        assert!(rms <= 5e-3, "{f} {rows}x{cols} m={m} rms rel error {rms}");
    }
}

const MS: [usize; 7] = [1, 2, 3, 4, 7, 16, 33];

#[test]
fn all_formats_small_shapes() {
    for (n, f) in BlockFormat::ALL.iter().enumerate() {
        let bs = f.block_size().max(32);
        let k = if bs == 256 {
            [256, 512, 768]
        } else {
            [32, 96, 320]
        };
        for (s, &(rows, cols)) in [(37, k[0]), (16, k[1]), (5, k[2]), (1, k[0])]
            .iter()
            .enumerate()
        {
            check(*f, rows, cols, &MS, 1 + (n * 10 + s) as u64 * 7919);
        }
    }
}

#[test]
fn multithreaded_larger_shapes() {
    for (n, f) in BlockFormat::ALL.iter().enumerate() {
        let cols = if f.block_size() == 256 { 1536 } else { 896 };
        for threads in [1, 2, 3] {
            set_num_threads(threads);
            check(
                *f,
                203,
                cols,
                &[1, 5, 33],
                99 + n as u64 * 31 + threads as u64,
            );
        }
    }
    set_num_threads(0);
}

#[test]
fn errors_not_panics() {
    for f in BlockFormat::ALL {
        let bs = f.block_size();
        let bb = f.block_bytes();
        let cols = bs.max(32) * 2;
        let good = vec![0u8; 3 * cols / bs * bb];
        assert!(QuantMatrix::from_ggml(f, &good, 3, cols).is_ok());
        assert!(QuantMatrix::from_ggml(f, &good[1..], 3, cols).is_err());
        assert!(QuantMatrix::from_ggml(f, &good, 2, cols).is_err());
        assert!(QuantMatrix::from_ggml(f, &[], 0, cols).is_ok());
        if bs > 1 {
            assert!(QuantMatrix::from_ggml(f, &good, 3, cols + 1).is_err());
            let mut out = vec![0f32; cols + 1];
            assert!(dequantize(f, &good, &mut out).is_err());
        }
        let mut out = vec![0f32; 3 * cols];
        assert!(dequantize(f, &good, &mut out).is_ok());
        assert!(dequantize(f, &good[..good.len() - 1], &mut out).is_err());
        let e = QuantMatrix::from_ggml(f, &good[1..], 3, cols)
            .err()
            .unwrap();
        assert!(!e.to_string().is_empty());
    }
}

#[test]
fn format_metadata() {
    for f in BlockFormat::ALL {
        assert_eq!(BlockFormat::from_ggml_type(f.ggml_type()), Some(f));
        assert!(!f.name().is_empty());
    }
    assert_eq!(BlockFormat::from_ggml_type(12), Some(BlockFormat::Q4K));
    assert_eq!(BlockFormat::Q6K.block_bytes(), 210);
    assert_eq!(BlockFormat::from_ggml_type(999), None);
}

#[test]
fn known_values() {
    // Q8_0 block: d = 0.5, q = 0..31 - 16.
    let mut b = vec![0u8; 34];
    b[..2].copy_from_slice(&half::f16::from_f32(0.5).to_bits().to_le_bytes());
    for j in 0..32 {
        b[2 + j] = (j as i8 - 16) as u8;
    }
    let mut out = [0f32; 32];
    dequantize(BlockFormat::Q8_0, &b, &mut out).unwrap();
    for (j, v) in out.iter().enumerate() {
        assert_eq!(*v, (j as f32 - 16.0) * 0.5);
    }
    // Matmul with a one-hot x picks a weight (up to activation quantization: exact here).
    let qm = QuantMatrix::from_ggml(BlockFormat::Q8_0, &b, 1, 32).unwrap();
    let mut x = [0f32; 32];
    x[3] = 2.0;
    let mut y = [0f32; 1];
    qm.matmul(&x, 1, &mut y);
    assert!((y[0] - 2.0 * (3.0 - 16.0) * 0.5).abs() < 1e-3, "{}", y[0]);
}

#[test]
fn concurrent_callers_agree() {
    // Several threads sharing one matrix (and the pool) get the single-call result.
    let mut rng = Rng(4242);
    let (rows, cols) = (333, 1024);
    let bytes = random_bytes(BlockFormat::Q4K, rows, cols, &mut rng);
    let qm = QuantMatrix::from_ggml(BlockFormat::Q4K, &bytes, rows, cols).unwrap();
    let x = random_x(3, cols, &mut rng);
    let mut want = vec![0f32; 3 * rows];
    qm.matmul(&x, 3, &mut want);
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                for _ in 0..20 {
                    let mut y = vec![0f32; 3 * rows];
                    qm.matmul(&x, 3, &mut y);
                    assert_eq!(y, want);
                }
            });
        }
    });
}

#[test]
fn quant_matrix_is_send_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<QuantMatrix>();
    assert_send_sync::<k2_kernels::KernelError>();
}
